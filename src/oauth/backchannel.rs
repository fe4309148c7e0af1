//! OpenID Connect Back-Channel Logout 1.0: when a browser session ends (the
//! user signs out, an admin ends the user's sessions or disables the user),
//! every client the session signed in to that registered a
//! `backchannel_logout_uri` gets a logout token POSTed to it.
//!
//! The deliveries are rows of `logout_deliveries`, written in the same
//! transaction that ends the session (a durable outbox: a restart loses
//! none, and the user's logout never waits on a client). Each instance runs
//! `deliver_due` every second and at once when it queued something itself;
//! a delivery is leased to one instance while it is tried. A client that
//! does not answer 2xx is tried again with exponential back-off; after
//! `MAX_ATTEMPTS`, or a 4xx that says the token itself is refused, it is
//! given up and an audit event records why.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::app::App;
use crate::audit::{Event, EventType};
use crate::secret::random_token;
use crate::store::LogoutDelivery;
use crate::token::jwt;

/// A logout token is valid this long (it is minted at each attempt).
const TOKEN_TTL: i64 = 120;
/// How long one instance holds a delivery while it tries it.
const LEASE: i64 = 60;
/// Deliveries leased at once by one instance.
pub const CLAIM: u32 = 32;
/// Tries before a delivery is given up: with the back-off below, a client
/// down for about an hour still gets its logout.
pub const MAX_ATTEMPTS: i64 = 12;
/// Seconds to wait for a client's answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The wait after the `attempts`-th failure: 2, 4, 8 … seconds, capped at
/// 2048 (about half an hour).
pub fn backoff(attempts: i64) -> i64 {
    1i64 << attempts.clamp(1, 11)
}

/// The HTTP client that delivers logout tokens: no redirects (a logout URI
/// that redirects is misconfigured), a short timeout, no cookies.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("tessera/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// Delivers what is due; answers how many deliveries were leased.
pub async fn deliver_due(app: &Arc<App>) -> anyhow::Result<usize> {
    let now = app.now();
    let due = app
        .store
        .claim_logout_deliveries(now, now + LEASE, CLAIM)
        .await?;
    let n = due.len();
    let mut tasks = tokio::task::JoinSet::new();
    for delivery in due {
        let app = app.clone();
        tasks.spawn(async move {
            if let Err(e) = deliver(&app, &delivery).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    client_id = %delivery.client_id,
                    "back-channel logout bookkeeping failed; the lease will expire and it is retried"
                );
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(n)
}

/// What one attempt came to.
enum Attempt {
    Delivered,
    /// Worth another try (network error, timeout, 5xx, 408, 429).
    Failed(String),
    /// The client refused the token itself, or cannot be notified any more.
    Refused(String),
}

async fn deliver(app: &App, d: &LogoutDelivery) -> anyhow::Result<()> {
    let store = app.store.as_ref();
    let attempt = attempt(app, d).await;
    let now = app.now();
    let give_up = |reason: String| {
        app.audit.record(
            Event::new(EventType::BackchannelLogoutFailed, now)
                .client(&d.client_id)
                .subject(&d.sub)
                .with("sid", d.sid.as_str())
                .with("attempts", d.attempts + 1)
                .with("reason", reason),
        );
    };
    match attempt {
        Attempt::Delivered => {
            tracing::debug!(client_id = %d.client_id, "back-channel logout delivered");
            store.finish_logout_delivery(&d.sid, &d.client_id).await?;
        }
        Attempt::Refused(reason) => {
            give_up(reason);
            store.finish_logout_delivery(&d.sid, &d.client_id).await?;
        }
        Attempt::Failed(reason) if d.attempts + 1 >= MAX_ATTEMPTS => {
            give_up(reason);
            store.finish_logout_delivery(&d.sid, &d.client_id).await?;
        }
        Attempt::Failed(reason) => {
            tracing::info!(
                client_id = %d.client_id,
                attempts = d.attempts + 1,
                reason = %reason,
                "back-channel logout not delivered; will retry"
            );
            store
                .retry_logout_delivery(&d.sid, &d.client_id, now + backoff(d.attempts + 1), &reason)
                .await?;
        }
    }
    Ok(())
}

async fn attempt(app: &App, d: &LogoutDelivery) -> Attempt {
    let client = match app.store.get_client(&d.client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Attempt::Refused("the client was deleted".into()),
        Err(e) => return Attempt::Failed(format!("database: {e}")),
    };
    let Some(uri) = client.metadata.backchannel_logout_uri.as_deref() else {
        return Attempt::Refused("the client no longer has a backchannel_logout_uri".into());
    };
    let now = app.now();
    let token = match jwt::mint_logout_token(
        &app.keys.current(),
        client.metadata.id_token_signed_response_alg,
        &jwt::LogoutClaims {
            iss: &app.config.issuer,
            aud: &client.client_id,
            iat: now,
            exp: now + TOKEN_TTL,
            jti: random_token(16),
            sub: &d.sub,
            sid: Some(&d.sid),
            events: json!({ jwt::BACKCHANNEL_LOGOUT_EVENT: {} }),
        },
    ) {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(format!("signing: {e:#}")),
    };
    let sent = app
        .backchannel
        .post(uri)
        .header(reqwest::header::CACHE_CONTROL, "no-store")
        .form(&[("logout_token", token.as_str())])
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => Attempt::Delivered,
        Ok(r) => {
            let status = r.status();
            let why = format!("the client answered {}", status.as_u16());
            if status.is_client_error()
                && status != reqwest::StatusCode::REQUEST_TIMEOUT
                && status != reqwest::StatusCode::TOO_MANY_REQUESTS
            {
                Attempt::Refused(why)
            } else {
                Attempt::Failed(why)
            }
        }
        // reqwest's errors name the URL, never the body (the token).
        Err(e) if e.is_timeout() => Attempt::Failed("the client did not answer in time".into()),
        Err(e) => Attempt::Failed(format!("cannot reach the client: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_caps() {
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(2), 4);
        assert_eq!(backoff(5), 32);
        assert_eq!(backoff(11), 2048);
        assert_eq!(backoff(40), 2048);
        assert_eq!(backoff(0), 2);
        let total: i64 = (1..MAX_ATTEMPTS).map(backoff).sum();
        assert!(total > 3600, "{total}");
    }
}
