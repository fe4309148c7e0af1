//! Tessera: an OAuth 2.1 / OpenID Connect authorization server that brokers
//! sign-in to an upstream OpenID provider and mints its own signed tokens.
//!
//! The map:

/// `App`, `AppState` and the injected clock.
pub mod app;
/// Audit events: log lines and the `audit_events` table.
pub mod audit;
/// The command line: `serve` (default), `migrate`, `client …`, `keys …`.
pub mod cli;
/// Settings from the TOML file and `TESSERA_*` variables, typed and validated.
pub mod config;
/// The OAuth error type and its one `IntoResponse`.
pub mod error;
/// axum routes and response shaping for the public and admin listeners.
pub mod http;
/// Prometheus metrics owned by the app.
pub mod metrics;
/// The protocol, framework-free: parameters, clients, scopes, grants.
pub mod oauth;
/// Rate limits and the source address behind trusted proxies.
pub mod ratelimit;
/// Secret types, random tokens, stored digests.
pub mod secret;
/// Binding listeners, background tasks, graceful shutdown.
pub mod serve;
/// The `Store` trait and its SQLite and PostgreSQL implementations.
pub mod store;
/// Signing keys, rotation, JWKS and JWTs.
pub mod token;
/// Tessera as an OpenID Connect client of its upstream (Google).
pub mod upstream;
