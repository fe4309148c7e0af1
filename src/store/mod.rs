//! Storage: one `Store` trait, one method per query, implemented for SQLite
//! (`sqlite.rs`, the embedded default) and PostgreSQL (`postgres.rs`). The SQL
//! both share is written once, in `sql.rs`; each backend adds only what truly
//! differs (connection set-up, migrations, write locks).

pub mod group;
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

/// A person, known by Tessera's own subject.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct User {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub disabled_at: Option<i64>,
}

/// A user as the admin API lists it.
#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UserSummary {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub disabled_at: Option<i64>,
}

/// A user and everything that hangs off it (`GET /admin/users/{sub}`).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UserDetails {
    #[serde(flatten)]
    pub user: UserSummary,
    pub upstream_links: Vec<UpstreamLinkView>,
    /// Live sessions (not ended, not expired).
    pub sessions: Vec<SessionView>,
    pub consents: Vec<ConsentView>,
    /// Refresh-token families not yet expired, revoked ones included.
    pub refresh_families: Vec<FamilyView>,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UpstreamLinkView {
    pub issuer: String,
    pub subject: String,
    pub created_at: i64,
    pub last_login_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SessionView {
    pub sid: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    pub scope: String,
    pub granted_at: i64,
    pub updated_at: i64,
}

#[derive(Clone, Debug, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FamilyView {
    pub id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// An audit event as stored (`GET /admin/events`).
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventRecord {
    pub id: i64,
    pub at: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub client_id: Option<String>,
    pub sub: Option<String>,
    /// What else the event records (never a secret, code or token).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Which audit events to list: every given field must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter<'a> {
    pub kind: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub sub: Option<&'a str>,
    /// At or after this time (unix seconds).
    pub since: Option<i64>,
    /// After this event id (the cursor).
    pub after: Option<i64>,
}

/// What the upstream said about who signed in.
#[derive(Clone, Debug)]
pub struct UpstreamProfile {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
}

/// A browser flow in flight: an upstream login (state, nonce, PKCE) or a
/// consent page waiting for its answer. Keyed by the hash of a random
/// ticket; bound to the browser by the hash of a cookie; single use.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PendingRequest {
    pub state_hash: String,
    pub browser_hash: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// The `/authorize` request to resume, JSON.
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A browser session (single sign-on).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Session {
    pub id_hash: String,
    pub sid: String,
    pub sub: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A back-channel logout to deliver (Back-Channel Logout 1.0).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct LogoutDelivery {
    pub sid: String,
    pub client_id: String,
    pub sub: String,
    pub created_at: i64,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// An authorization code as stored (hash only).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct CodeRecord {
    pub code_hash: String,
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
    pub redirect_uri: String,
    pub scope: String,
    /// JSON array of audiences.
    pub audience: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Everything one authorization grant issued, refreshed along one chain.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Family {
    pub id: String,
    pub client_id: String,
    pub sub: String,
    pub sid: Option<String>,
    pub scope: String,
    pub audience: String,
    pub auth_time: i64,
    pub created_at: i64,
    pub expires_at: i64,
}

/// A refresh token as stored (hash only).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a grant issued, to be written in the same transaction that
/// consumed the code or refresh token.
#[derive(Clone, Debug)]
pub struct Issued {
    /// A new family (code grant with refresh) — `None` on refresh.
    pub family: Option<Family>,
    pub refresh: Option<RefreshRecord>,
    pub access_jti: String,
    pub access_exp: i64,
}

/// A code as found before it is spent: the tokens are signed outside the
/// write transaction (a signature can take a millisecond; the write lock
/// should not), then `Store::spend` claims it.
#[derive(Clone, Debug)]
pub struct FoundCode {
    pub code: CodeRecord,
    pub user: User,
    pub used: bool,
}

/// A refresh token as found before it is spent.
#[derive(Clone, Debug)]
pub struct FoundRefresh {
    pub token: RefreshRecord,
    pub family: Family,
    pub family_revoked: bool,
    pub user: User,
    pub used: bool,
}

/// A single-use credential to spend, and what redeeming it issued.
#[derive(Clone, Debug)]
pub struct Spend {
    pub kind: SpendKind,
    /// SHA-256 of the code or refresh token.
    pub hash: String,
    pub now: i64,
    /// `None`: a refused redemption. A code is burnt all the same (no second
    /// guess at PKCE); a refresh token is not spent, only checked for replay.
    pub issued: Option<Issued>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpendKind {
    Code,
    Refresh,
}

/// What spending a single-use credential did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spent {
    /// Claimed now, and what it issued is written.
    Claimed,
    /// Used before: a replay. What it (or its family) issued is now revoked.
    Replayed,
    /// Its family was revoked meanwhile: nothing issued.
    Revoked,
    /// Not known.
    Unknown,
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
                    // statement_timeout
                    || c == "57014"
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

    /// Finds the user linked to (issuer, subject) and refreshes the profile,
    /// or creates a user with a new random `sub` and links it. Never links
    /// by email.
    async fn upsert_user(&self, profile: &UpstreamProfile, now: i64) -> StoreResult<User>;
    async fn get_user(&self, sub: &str) -> StoreResult<Option<User>>;

    async fn insert_pending(&self, pending: &PendingRequest) -> StoreResult<()>;
    /// Removes and returns a live pending request: each ticket works once.
    async fn take_pending(&self, state_hash: &str, now: i64)
    -> StoreResult<Option<PendingRequest>>;

    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// A live session: not ended, not expired, its user not disabled.
    async fn get_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>>;
    /// Ends a live session and queues a back-channel logout for each client
    /// it signed in to that registered a `backchannel_logout_uri`, in one
    /// transaction. Answers the session ended, `None` when it was not live.
    async fn end_session(&self, id_hash: &str, now: i64) -> StoreResult<Option<Session>>;

    /// The scopes a user granted a client.
    async fn get_consent(&self, sub: &str, client_id: &str) -> StoreResult<Option<String>>;
    async fn save_consent(
        &self,
        sub: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()>;

    /// Stores a code and records that its session signed in to the client
    /// (for back-channel logout).
    async fn insert_code(&self, code: &CodeRecord) -> StoreResult<()>;
    /// Reads a code and its user, without claiming it.
    async fn find_code(&self, code_hash: &str) -> StoreResult<Option<FoundCode>> {
        let hashes = [code_hash.to_owned()];
        Ok(self.find_codes(&hashes).await?.into_iter().next())
    }
    /// Reads the codes of a batch (see `store::group::GroupRead`) with one
    /// statement; those not found are absent from the answer, in any order.
    async fn find_codes(&self, code_hashes: &[String]) -> StoreResult<Vec<FoundCode>>;
    /// Reads a refresh token, its family and user, without spending it.
    async fn find_refresh(&self, token_hash: &str) -> StoreResult<Option<FoundRefresh>> {
        let hashes = [token_hash.to_owned()];
        Ok(self.find_refreshes(&hashes).await?.into_iter().next())
    }
    /// Reads the refresh tokens of a batch with one statement; those not
    /// found are absent from the answer, in any order.
    async fn find_refreshes(&self, token_hashes: &[String]) -> StoreResult<Vec<FoundRefresh>>;
    /// Spends a batch of codes and refresh tokens in one transaction (group
    /// commit, see `store::group`), answering one `Spent` per item, in order.
    /// Each item is claimed with a conditional UPDATE and what it issued is
    /// written beside it; an item used before is a replay and revokes what
    /// its first use issued (RFC 6749 §4.1.2, RFC 9700 §4.14.2). Two items of
    /// one batch with the same hash: the first wins, the others are replays.
    async fn spend(&self, batch: &[Spend]) -> StoreResult<Vec<Spent>>;
    /// Whether an access token's `jti` was revoked.
    async fn is_revoked(&self, jti: &str) -> StoreResult<bool>;
    /// Revokes one access token until its expiry (`exp`).
    async fn revoke_access_token(&self, jti: &str, exp: i64, now: i64) -> StoreResult<()>;
    /// Revokes a refresh-token family and the access tokens issued with its
    /// refresh tokens (RFC 7009 §2.1); answers those still live, `(jti, exp)`.
    async fn revoke_family(
        &self,
        family_id: &str,
        now: i64,
        reason: &str,
    ) -> StoreResult<Vec<(String, i64)>>;
    /// Access tokens revoked at or after `since` and not yet expired at `now`,
    /// as `(jti, exp)`.
    async fn revoked_since(&self, since: i64, now: i64) -> StoreResult<Vec<(String, i64)>>;
    /// Users ordered by `sub`, after `after`; `email` matches exactly,
    /// ignoring case.
    async fn list_users(
        &self,
        email: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<UserSummary>>;
    async fn user_details(&self, sub: &str, now: i64) -> StoreResult<Option<UserDetails>>;
    /// Disables (ending every session, queuing back-channel logouts) or
    /// enables a user; `false` when no such user.
    async fn set_user_disabled(&self, sub: &str, disabled: bool, now: i64) -> StoreResult<bool>;
    /// Ends a user's live sessions (queuing their back-channel logouts);
    /// answers how many.
    async fn end_user_sessions(&self, sub: &str, now: i64) -> StoreResult<u64>;
    /// Withdraws a user's consent to a client and revokes the refresh
    /// families (and their access tokens) of that user and client. `None`
    /// when there was no such consent; else the access tokens revoked.
    async fn delete_consent(
        &self,
        sub: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<Vec<(String, i64)>>>;
    /// Leases up to `limit` back-channel logouts that are due (and not
    /// leased by another instance) until `lease_until`.
    async fn claim_logout_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> StoreResult<Vec<LogoutDelivery>>;
    /// A delivery is done (delivered, or given up): removes it.
    async fn finish_logout_delivery(&self, sid: &str, client_id: &str) -> StoreResult<()>;
    /// A delivery failed and will be tried again at `next_attempt_at`.
    async fn retry_logout_delivery(
        &self,
        sid: &str,
        client_id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// Writes audit events (one statement).
    async fn insert_events(&self, events: &[crate::audit::Event]) -> StoreResult<()>;
    /// Audit events in the order they were written.
    async fn list_events(
        &self,
        filter: &EventFilter<'_>,
        limit: u32,
    ) -> StoreResult<Vec<EventRecord>>;
    /// Deletes what has expired by `now`, `batch` rows per statement and
    /// transaction (short write locks), until nothing is left; safe to run
    /// on several instances at once. Answers the rows deleted.
    /// Audit events older than `audit_retention` seconds go too.
    async fn delete_expired(&self, now: i64, batch: i64, audit_retention: i64) -> StoreResult<u64>;
    /// Reads the key records under an exclusive database lock, asks `plan`
    /// what to change, and applies it in the same transaction. Returns what
    /// was applied.
    async fn change_keys(&self, plan: &KeyPlanner<'_>) -> StoreResult<Vec<KeyChange>>;
}

/// The pool's size and time limits.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub connect_timeout: std::time::Duration,
    pub statement_timeout: std::time::Duration,
}

fn pool_settings(config: &Config) -> PoolSettings {
    PoolSettings {
        max_connections: config.database_max_connections,
        connect_timeout: config.database_connect_timeout,
        statement_timeout: config.database_statement_timeout,
    }
}

/// Opens the store the configuration names.
pub async fn connect(config: &Config) -> StoreResult<Arc<dyn Store>> {
    Ok(match &config.database_url {
        DatabaseUrl::Sqlite(path) => {
            Arc::new(SqliteStore::open(path, &pool_settings(config)).await?)
        }
        DatabaseUrl::Postgres(url) => {
            Arc::new(PostgresStore::open(url, &pool_settings(config)).await?)
        }
    })
}
