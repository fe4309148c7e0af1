//! Storage: one `Store` trait, one method per query, implemented for SQLite
//! (`sqlite.rs`, the embedded default) and PostgreSQL (`postgres.rs`). The SQL
//! both share is written once, in `sql.rs`; each backend adds only what truly
//! differs (connection set-up, migrations, write locks).

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, DatabaseUrl};
use crate::oauth::client::ClientMetadata;
use crate::token::Alg;

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// A registered client as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientRecord {
    pub client_id: String,
    /// Argon2id PHC string; `None` for public clients.
    pub secret_hash: Option<String>,
    pub metadata: ClientMetadata,
    pub client_id_issued_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Pending,
    Active,
    Retiring,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Active => "active",
            KeyState::Retiring => "retiring",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => KeyState::Pending,
            "active" => KeyState::Active,
            "retiring" => KeyState::Retiring,
            "retired" => KeyState::Retired,
            _ => return None,
        })
    }

    /// Whether the key is in the JWKS.
    pub fn is_published(self) -> bool {
        self != KeyState::Retired
    }
}

/// A signing key's record (the private key is a file, see `token::keys`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub kid: String,
    pub alg: Alg,
    pub state: KeyState,
    pub created_at: i64,
    pub activated_at: Option<i64>,
    pub retiring_at: Option<i64>,
    pub retired_at: Option<i64>,
}

/// A change to the key records, planned by `token::rotation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    Insert(KeyRecord),
    Transition { kid: String, to: KeyState, at: i64 },
}

impl KeyChange {
    pub fn transition(kid: &str, to: KeyState, at: i64) -> Self {
        Self::Transition {
            kid: kid.to_owned(),
            to,
            at,
        }
    }
}

/// Plans key changes from the records read under the lock.
pub type KeyPlanner<'a> = dyn Fn(&[KeyRecord]) -> anyhow::Result<Vec<KeyChange>> + Send + Sync + 'a;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: worth a retry (503).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let unavailable = match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => true,
            // SQLite: SQLITE_BUSY (5) / SQLITE_LOCKED (6) after the busy timeout;
            // PostgreSQL: class 08 (connection), 53 (resources), 57P (shutdown).
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c == "5"
                    || c == "6"
                    || c.starts_with("08")
                    || c.starts_with("53")
                    || c.starts_with("57P")
            }),
            _ => false,
        };
        if unavailable {
            StoreError::Unavailable(e)
        } else {
            StoreError::Database(e)
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything Tessera keeps. Times are unix seconds.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A round trip to the database (for `/healthz`).
    async fn ping(&self) -> StoreResult<()>;

    /// Connections open and idle in the pool (for `/metrics`).
    fn pool_stats(&self) -> (u32, u32);

    /// Applies the migrations in `migrations/{backend}`.
    async fn migrate(&self) -> StoreResult<()>;

    /// `false` when the id is taken.
    async fn insert_client(&self, client: &ClientRecord) -> StoreResult<bool>;
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    /// Clients in registration order, after the `(issued_at, client_id)` cursor.
    async fn list_clients(
        &self,
        after: Option<(i64, &str)>,
        limit: u32,
    ) -> StoreResult<Vec<ClientRecord>>;
    /// Replaces metadata and secret hash; `false` when the client is gone.
    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool>;
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
    /// Distinct `id_token_signed_response_alg` values of registered clients.
    async fn client_id_token_algs(&self) -> StoreResult<Vec<Alg>>;

    /// The web origins (`scheme://host[:port]`) of every registered redirect
    /// URI: the browsers allowed to call `/token` cross-origin.
    async fn redirect_origins(&self) -> StoreResult<Vec<String>>;

    async fn list_keys(&self) -> StoreResult<Vec<KeyRecord>>;
    /// Reads the key records under an exclusive database lock, asks `plan`
    /// what to change, and applies it in the same transaction. Returns what
    /// was applied.
    async fn change_keys(&self, plan: &KeyPlanner<'_>) -> StoreResult<Vec<KeyChange>>;
}

/// Opens the store the configuration names.
pub async fn connect(config: &Config) -> StoreResult<Arc<dyn Store>> {
    Ok(match &config.database_url {
        DatabaseUrl::Sqlite(path) => {
            Arc::new(SqliteStore::open(path, config.database_max_connections).await?)
        }
        DatabaseUrl::Postgres(url) => {
            Arc::new(PostgresStore::open(url, config.database_max_connections).await?)
        }
    })
}
