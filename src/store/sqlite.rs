//! SQLite, the embedded default: one file, WAL journal, foreign keys on,
//! `synchronous = NORMAL` (durable across process crashes; a power loss may
//! drop the last transactions, never corrupt the file), and a busy timeout.
//! Writes that read first use `BEGIN IMMEDIATE`: a deferred transaction that
//! upgrades to a writer fails with SQLITE_BUSY instead of waiting.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool, Transaction};

use super::StoreResult;
use super::sql::{shared_store_impl, upsert_user_once};

pub struct SqliteStore {
    pool: SqlitePool,
    /// SQLite has one writer at a time. Write transactions queue here, in
    /// order, instead of in SQLite's busy handler, which polls with sleeps
    /// of up to 100 ms and turns contention into long tails.
    writer: Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction holding this process's writer slot.
pub struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _slot: tokio::sync::OwnedMutexGuard<()>,
}

impl WriteTx {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

impl SqliteStore {
    pub async fn open(path: &Path, settings: &super::PoolSettings) -> StoreResult<Self> {
        // `journal_mode` is not set on every connection: WAL is persistent,
        // and the pragma needs an exclusive lock that the busy timeout does
        // not wait for, so a CLI opening the database next to a busy server
        // would fail with "database is locked". It is set once, below.
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.statement_timeout)
            // Statement journals (a multi-row UPDATE inside a transaction
            // keeps one, to undo itself alone) and temporary indexes stay in
            // memory instead of spilling into files that are created and
            // deleted per batch.
            .pragma("temp_store", "memory");
        // No memory map (`mmap_size`): reads then copy pages that another
        // connection's write invalidated, but a map is torn down and faulted
        // back in by every connection each time a checkpoint grows the file,
        // and that cost more: `bench/grants.sh` redeemed codes 10–30% faster
        // without it, the soak was no slower (session 5).
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.max_connections)
            // A connection to a local file does not go stale; the default
            // ping on every acquire cost a round trip to the connection's
            // worker thread per query.
            .test_before_acquire(false)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await?;
        ensure_wal(&pool).await?;
        Ok(Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// sqlx's SQLite migrator takes no lock: two processes starting on one
    /// file would both apply migration 1. Running it inside an immediate
    /// transaction (each migration becomes a savepoint) serializes them.
    async fn run_migrations(&self) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::migrate!("migrations/sqlite")
            .run_direct(&mut *tx)
            .await
            .map_err(|e| super::StoreError::Other(e.into()))?;
        tx.commit().await?;
        Ok(())
    }

    /// SQLite has one writer at a time: an immediate transaction is the lock.
    async fn begin_locked(&self) -> StoreResult<WriteTx> {
        self.begin_write().await
    }
}

/// Switches a new database file to WAL (once; the mode is persistent),
/// retrying while another process holds the lock the switch needs.
async fn ensure_wal(pool: &SqlitePool) -> StoreResult<()> {
    let mut delay = Duration::from_millis(10);
    let mut mode = String::new();
    for _ in 0..40 {
        // The pragma answers the mode in force: "wal" once switched; the
        // old mode while another connection prevents the switch.
        match sqlx::query_as::<_, (String,)>("PRAGMA journal_mode = WAL")
            .fetch_one(pool)
            .await
        {
            Ok((m,)) if m.eq_ignore_ascii_case("wal") => return Ok(()),
            Ok((m,)) => mode = m,
            Err(e) => match super::StoreError::from(e) {
                super::StoreError::Unavailable(_) => {}
                other => return Err(other),
            },
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(500));
    }
    Err(super::StoreError::Other(anyhow::anyhow!(
        "cannot switch the SQLite database to WAL mode (journal_mode is {mode})"
    )))
}

impl SqliteStore {
    /// `IN` a JSON array of strings bound as `$1`: one statement whatever
    /// the number of items, and the planner probes the key's index for each.
    const HASH_LIST: &'static str = "IN (SELECT value FROM json_each($1))";

    /// `rows` rows of `cols` anonymous parameters (`(?, ?), (?, ?)`), bound
    /// in order. SQLite looks a named or numbered parameter up by a linear
    /// search when it is bound, so binding many `$n` costs the square of
    /// their count.
    fn rows_of_parameters(rows: usize, cols: usize) -> String {
        let row = format!("({})", vec!["?"; cols].join(", "));
        vec![row; rows].join(", ")
    }

    /// A transaction that writes: immediate, so read-then-write races wait instead of failing with SQLITE_BUSY.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let slot = self.writer.clone().lock_owned().await;
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            _slot: slot,
        })
    }
}

upsert_user_once!(SqliteStore);
shared_store_impl!(SqliteStore);
