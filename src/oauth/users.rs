//! Operations on users for the admin API and the `tessera user …` CLI:
//! list (search by email, cursor pages), show, disable / enable, end
//! sessions, withdraw a consent.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::app::App;
use crate::audit::{By, Event, EventType};
use crate::store::{Store, StoreError, UserSummary};

pub const DEFAULT_PAGE: u32 = 50;
pub const MAX_PAGE: u32 = 200;

#[derive(Debug, thiserror::Error)]
pub enum UserOpError {
    #[error("no such user")]
    NotFound,
    #[error("no such consent")]
    NoConsent,
    #[error("cursor is not one this server gave")]
    BadCursor,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A page of users and the opaque cursor of the next one.
pub async fn list(
    store: &dyn Store,
    email: Option<&str>,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<UserSummary>, Option<String>), UserOpError> {
    let after = match cursor {
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(UserOpError::BadCursor)?,
        ),
        None => None,
    };
    let limit = limit.clamp(1, MAX_PAGE);
    let page = store.list_users(email, after.as_deref(), limit).await?;
    let next = (page.len() == limit as usize)
        .then(|| {
            page.last()
                .map(|u| URL_SAFE_NO_PAD.encode(u.sub.as_bytes()))
        })
        .flatten();
    Ok((page, next))
}

/// Disables or enables a user. Disabled: sign-in and refresh refused, every
/// session ended at once.
pub async fn set_disabled(
    store: &dyn Store,
    by: By<'_>,
    sub: &str,
    disabled: bool,
    now: i64,
) -> Result<UserSummary, UserOpError> {
    if !store.set_user_disabled(sub, disabled, now).await? {
        return Err(UserOpError::NotFound);
    }
    let details = store
        .user_details(sub, now)
        .await?
        .ok_or(UserOpError::NotFound)?;
    let kind = if disabled {
        EventType::UserDisabled
    } else {
        EventType::UserEnabled
    };
    by.record(Event::new(kind, now).subject(sub));
    Ok(details.user)
}

pub async fn end_sessions(
    store: &dyn Store,
    by: By<'_>,
    sub: &str,
    now: i64,
) -> Result<u64, UserOpError> {
    if store.get_user(sub).await?.is_none() {
        return Err(UserOpError::NotFound);
    }
    let n = store.end_user_sessions(sub, now).await?;
    by.record(
        Event::new(EventType::UserSessionsEnded, now)
            .subject(sub)
            .with("sessions", n),
    );
    Ok(n)
}

/// Withdraws a consent; the refresh tokens of that user and client die, and
/// the access tokens issued along them are revoked (this instance knows at
/// once when `app` is given; others within a second).
pub async fn withdraw_consent(
    store: &dyn Store,
    by: By<'_>,
    app: Option<&App>,
    sub: &str,
    client_id: &str,
    now: i64,
) -> Result<(), UserOpError> {
    let revoked = store
        .delete_consent(sub, client_id, now)
        .await?
        .ok_or(UserOpError::NoConsent)?;
    let n = revoked.len();
    if let Some(app) = app {
        app.revoked.insert(revoked);
    }
    by.record(
        Event::new(EventType::ConsentWithdrawn, now)
            .subject(sub)
            .client(client_id)
            .with("access_tokens_revoked", n),
    );
    Ok(())
}
