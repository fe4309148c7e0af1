//! `POST /introspect` (RFC 7662). Any authenticated confidential client may
//! introspect (resource servers register as clients); public clients get
//! 401 `invalid_client`. A live access token is answered from memory: its
//! signature, claims and the in-memory revoked set (`oauth::revoked`), and
//! its user's email from a short-lived cache. Anything expired, revoked,
//! malformed, not `typ: at+jwt` (an ID token is not an access token) or
//! signed by a retired key is `{"active": false}`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use crate::app::App;
use crate::error::OAuthError;
use crate::oauth::client::AuthMethod;
use crate::oauth::form::Params;
use crate::oauth::revocation::refresh_first;
use crate::oauth::token_endpoint::{Caller, authenticate_client};
use crate::oauth::userinfo::check_access_token;
use crate::secret::sha256_b64;

/// The introspection response (RFC 7662 §2.2).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// A string or an array of strings.
    #[schema(value_type = Option<Object>)]
    pub aud: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

pub async fn introspect(
    app: &App,
    params: &Params,
    caller: &Caller<'_>,
) -> Result<Introspection, OAuthError> {
    let client = authenticate_client(app, params, caller).await?;
    if client.metadata.token_endpoint_auth_method == AuthMethod::None {
        return Err(OAuthError::invalid_client(
            "public clients cannot introspect tokens",
            caller.authorization.is_some(),
        ));
    }
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = app.now();
    let found = if refresh_first(params) {
        match refresh(app, token, now).await? {
            Some(i) => Some(i),
            None => access(app, token, now).await?,
        }
    } else {
        match access(app, token, now).await? {
            Some(i) => Some(i),
            None => refresh(app, token, now).await?,
        }
    };
    Ok(found.unwrap_or_default())
}

async fn access(app: &App, token: &str, now: i64) -> Result<Option<Introspection>, OAuthError> {
    let Ok(claims) = check_access_token(app, token, now) else {
        return Ok(None);
    };
    // Client-credentials tokens have no user (`sub` is the client id).
    let username = match claims.auth_time {
        Some(_) => app.usernames.get(app, &claims.sub, now).await?,
        None => None,
    };
    Ok(Some(Introspection {
        active: true,
        scope: Some(claims.scope),
        client_id: Some(claims.client_id),
        username,
        token_type: Some("Bearer"),
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        sub: Some(claims.sub),
        aud: Some(claims.aud),
        iss: Some(claims.iss),
    }))
}

async fn refresh(app: &App, token: &str, now: i64) -> Result<Option<Introspection>, OAuthError> {
    let Some(found) = app
        .store
        .find_refresh(&sha256_b64(token.as_bytes()))
        .await?
    else {
        return Ok(None);
    };
    let live = !found.used
        && !found.family_revoked
        && found.token.expires_at > now
        && found.family.expires_at > now
        && found.user.disabled_at.is_none();
    if !live {
        // Known, but not active: the answer is the same as for garbage.
        return Ok(Some(Introspection::default()));
    }
    let aud: Value = serde_json::from_str(&found.family.audience).map_err(OAuthError::internal)?;
    Ok(Some(Introspection {
        active: true,
        scope: Some(found.family.scope),
        client_id: Some(found.family.client_id),
        username: found.user.email,
        token_type: Some("refresh_token"),
        exp: Some(found.token.expires_at.min(found.family.expires_at)),
        iat: Some(found.token.created_at),
        sub: Some(found.family.sub),
        aud: Some(aud),
        iss: Some(app.config.issuer.clone()),
    }))
}

/// Users' emails for `username`, kept for a minute so that introspecting a
/// live access token needs no query; bounded (cleared when full).
#[derive(Default)]
pub struct Usernames {
    cache: Mutex<HashMap<String, (Option<String>, i64)>>,
}

const USERNAME_TTL: i64 = 60;
const USERNAME_CAPACITY: usize = 10_000;

impl Usernames {
    async fn get(&self, app: &App, sub: &str, now: i64) -> Result<Option<String>, OAuthError> {
        if let Some((email, at)) = self.lock().get(sub) {
            if now - at < USERNAME_TTL {
                return Ok(email.clone());
            }
        }
        let email = app.store.get_user(sub).await?.and_then(|u| u.email);
        let mut cache = self.lock();
        if cache.len() >= USERNAME_CAPACITY {
            cache.clear();
        }
        cache.insert(sub.to_owned(), (email.clone(), now));
        Ok(email)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<String>, i64)>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
