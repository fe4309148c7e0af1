//! The application: settings, store, keys and the services every request
//! uses, built once at start and shared as `AppState(Arc<App>)`.

use std::sync::Arc;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::oauth::client_auth::SecretVerifier;
use crate::oauth::clients::ClientCache;
use crate::store::Store;
use crate::store::group::{GroupCommit, GroupRead};
use crate::token::Alg;
use crate::token::keys::{KeyDir, KeySet, Keys};
use crate::token::rotation;

/// The time source. Protocol code takes `now` as an argument; this is where
/// handlers get it, and where tests can step past a lifetime.
pub trait Clock: Send + Sync + 'static {
    /// Unix seconds.
    fn now(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }
}

pub struct App {
    pub config: Config,
    /// `Cache-Control` of `/jwks` and discovery (`TESSERA_JWKS_MAX_AGE`).
    pub public_cache_control: axum::http::HeaderValue,
    pub store: Arc<dyn Store>,
    /// Where codes and refresh tokens are spent (group commit).
    pub spends: GroupCommit,
    /// Codes and refresh tokens are read through this, batched.
    pub lookups: GroupRead,
    /// Security-relevant events, to the log and the database.
    pub audit: crate::audit::Audit,
    /// Delivers back-channel logout tokens to clients.
    pub backchannel: reqwest::Client,
    /// Wakes the back-channel logout sender when this instance queued one.
    pub logouts_queued: tokio::sync::Notify,
    /// Revoked access tokens, kept in step with the database by `serve`.
    pub revoked: crate::oauth::revoked::RevokedJtis,
    /// Users' emails for introspection's `username`.
    pub usernames: crate::oauth::introspection::Usernames,
    pub keys: Keys,
    pub clients: ClientCache,
    /// The origins of registered redirect URIs, for CORS.
    pub cors_origins: crate::http::cors::OriginCache,
    pub verifier: SecretVerifier,
    /// `TESSERA_RATE_LIMIT_PER_IP` (burst twice that) on the public listener.
    pub per_ip: crate::ratelimit::Limiter<std::net::IpAddr>,
    /// `TESSERA_RATE_LIMIT_PER_CLIENT` (burst twice that) for authenticated
    /// confidential clients.
    pub per_client: crate::ratelimit::Limiter<String>,
    /// Failed admin authentications per source address
    /// (`TESSERA_RATE_LIMIT_FAILED_AUTH` a minute).
    pub admin_failures: crate::ratelimit::Limiter<std::net::IpAddr>,
    pub metrics: Metrics,
    pub clock: Arc<dyn Clock>,
    /// The upstream OpenID provider; `None` when no upstream client is configured.
    pub upstream: Option<Arc<crate::upstream::Upstream>>,
    /// Algorithms Tessera signs with: RS256, the access-token algorithm, and
    /// any a registered client asked for its ID tokens.
    pub signing_algs: Vec<Alg>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<App>);

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

/// The algorithms the configuration puts in use.
pub fn configured_algs(config: &Config) -> Vec<Alg> {
    let mut algs = vec![Alg::RS256];
    if !algs.contains(&config.access_token_alg) {
        algs.push(config.access_token_alg);
    }
    algs
}

impl App {
    /// Connects, migrates, makes sure every algorithm in use has an active
    /// key (under the database lock), and loads the key set.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = crate::store::connect(&config).await?;
        store.migrate().await?;
        let mut signing_algs = configured_algs(&config);
        for alg in store.client_id_token_algs().await? {
            if !signing_algs.contains(&alg) {
                signing_algs.push(alg);
            }
        }
        let dir = KeyDir::new(&config.keys_dir);
        let audit = crate::audit::Audit::start(store.clone());
        ensure_keys(store.as_ref(), &audit, &dir, &signing_algs, clock.now()).await?;
        let records = store.list_keys().await?;
        let set = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || KeySet::build(&dir, records)).await??
        };
        let failures_per_minute = config.rate_limit_failed_auth;
        let verifier =
            tokio::task::spawn_blocking(move || SecretVerifier::new(failures_per_minute)).await??;
        let upstream = crate::upstream::Upstream::from_config(&config)?.map(Arc::new);
        // SQLite has one writer: one batch at a time. PostgreSQL commits
        // several side by side.
        let parallel = match &config.database_url {
            crate::config::DatabaseUrl::Sqlite(_) => 1,
            crate::config::DatabaseUrl::Postgres(_) => 4,
        };
        let revoked = crate::oauth::revoked::RevokedJtis::default();
        revoked.poll(store.as_ref(), clock.now()).await?;
        Ok(Self {
            revoked,
            audit,
            backchannel: crate::oauth::backchannel::http_client()?,
            logouts_queued: tokio::sync::Notify::new(),
            usernames: Default::default(),
            upstream,
            spends: GroupCommit::start(store.clone(), parallel),
            // Reads do not wait for one another, even on SQLite.
            lookups: GroupRead::start(store.clone(), parallel.max(2)),
            store,
            keys: Keys::new(dir, set),
            clients: ClientCache::default(),
            cors_origins: Default::default(),
            verifier,
            per_ip: crate::ratelimit::Limiter::new(
                f64::from(config.rate_limit_per_ip),
                2.0 * f64::from(config.rate_limit_per_ip),
            ),
            per_client: crate::ratelimit::Limiter::new(
                f64::from(config.rate_limit_per_client),
                2.0 * f64::from(config.rate_limit_per_client),
            ),
            admin_failures: crate::ratelimit::Limiter::per_minute(config.rate_limit_failed_auth),
            metrics: Metrics::default(),
            clock,
            signing_algs,
            public_cache_control: crate::http::public::cache_control(&config),
            config,
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }
}

/// Generates the missing keys under the database lock, so that instances
/// starting together agree on one active key per algorithm.
pub async fn ensure_keys(
    store: &dyn Store,
    audit: &crate::audit::Audit,
    dir: &KeyDir,
    algs: &[Alg],
    now: i64,
) -> anyhow::Result<()> {
    let dir = dir.clone();
    let algs = algs.to_vec();
    let changes = store
        .change_keys(&move |records| rotation::ensure(records, &algs, &dir, now))
        .await?;
    crate::audit::key_changes(
        audit,
        &changes,
        crate::audit::EventType::KeyCreated,
        None,
        now,
    );
    Ok(())
}
