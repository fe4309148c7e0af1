//! PostgreSQL, the production store: many Tessera instances share one
//! database. Cross-instance decisions (key generation and rotation) take a
//! transaction-scoped advisory lock.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use super::StoreResult;
use super::sql::{shared_store_impl, upsert_user_once};

/// `pg_advisory_xact_lock` key for the signing-key records ("tessKEYS").
const KEYS_LOCK: i64 = 0x7465_7373_4b45_5953;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub async fn open(url: &str, settings: &super::PoolSettings) -> StoreResult<Self> {
        let statement_timeout = format!("{}s", settings.statement_timeout.as_secs());
        // Statements are prepared once per connection, and after five runs
        // PostgreSQL may settle on a generic plan made with the statistics
        // of that moment. Made while a table was still empty, such a plan
        // scans it (a sequential scan of `refresh_families` on every
        // refresh), and a connection keeps it as the table grows:
        // `bench/soak.sh` lost half its throughput in ten minutes that way.
        // Custom plans are made with the values and the current size, for a
        // few tens of microseconds of planning per statement.
        let options: PgConnectOptions = url.parse::<PgConnectOptions>()?.options([
            ("statement_timeout", statement_timeout.as_str()),
            ("plan_cache_mode", "force_custom_plan"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| super::StoreError::Other(e.into()))
    }

    async fn begin_locked(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(KEYS_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

impl PostgresStore {
    /// `IN` a JSON array of strings bound as `$1`: one statement whatever
    /// the number of items; `= ANY` of an array computed once keeps the
    /// plan an index lookup per item.
    const HASH_LIST: &'static str = "= ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))";

    /// `rows` rows of `cols` numbered parameters, from `$1`.
    fn rows_of_parameters(rows: usize, cols: usize) -> String {
        super::sql::values_list(1, rows, cols)
    }

    /// A transaction that writes: row locks taken by the conditional UPDATEs serialize racing redemptions.
    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }
}

upsert_user_once!(PostgresStore);
shared_store_impl!(PostgresStore);
