//! `POST /revoke` (RFC 7009). Confidential clients authenticate, public
//! clients identify themselves with `client_id`. A refresh token revokes
//! its whole family and the access tokens issued along it (§2.1); an access
//! token is revoked until its own expiry. Only the client a token was
//! issued to can revoke it; for any other client, and for tokens Tessera
//! does not know, the answer is the same 200 (§2.2): the endpoint leaks
//! nothing.

use crate::app::App;
use crate::audit::{Event, EventType};
use crate::error::OAuthError;
use crate::oauth::form::Params;
use crate::oauth::token_endpoint::{Caller, authenticate_client};
use crate::oauth::userinfo::verify_access_token;
use crate::secret::sha256_b64;
use crate::store::ClientRecord;

/// Which kind of token to try first (`token_type_hint`, RFC 7009 §2.1):
/// honoured as an order, never trusted — the other kind is tried next.
pub fn refresh_first(params: &Params) -> bool {
    params.get("token_type_hint") == Some("refresh_token")
}

pub async fn revoke(app: &App, params: &Params, caller: &Caller<'_>) -> Result<(), OAuthError> {
    let client = authenticate_client(app, params, caller).await?;
    let token = params
        .get("token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    let now = app.now();
    if refresh_first(params) {
        if !revoke_refresh(app, &client, token, now).await? {
            revoke_access(app, &client, token, now).await?;
        }
    } else if !revoke_access(app, &client, token, now).await? {
        revoke_refresh(app, &client, token, now).await?;
    }
    Ok(())
}

/// `true` when `token` is one of Tessera's live access tokens (revoked now
/// if `client` holds it).
async fn revoke_access(
    app: &App,
    client: &ClientRecord,
    token: &str,
    now: i64,
) -> Result<bool, OAuthError> {
    let Ok(claims) = verify_access_token(app, token, now) else {
        return Ok(false);
    };
    if claims.client_id == client.client_id {
        app.store
            .revoke_access_token(&claims.jti, claims.exp, now)
            .await?;
        app.revoked.insert([(claims.jti.clone(), claims.exp)]);
        app.audit.record(
            Event::new(EventType::TokenRevoked, now)
                .client(&client.client_id)
                .subject(&claims.sub)
                .with("token_type", "access_token")
                .with("jti", claims.jti.as_str()),
        );
    }
    Ok(true)
}

/// `true` when `token` is a refresh token Tessera knows (its family revoked
/// now if `client` holds it).
async fn revoke_refresh(
    app: &App,
    client: &ClientRecord,
    token: &str,
    now: i64,
) -> Result<bool, OAuthError> {
    let Some(found) = app
        .store
        .find_refresh(&sha256_b64(token.as_bytes()))
        .await?
    else {
        return Ok(false);
    };
    if found.family.client_id == client.client_id && !found.family_revoked {
        let revoked = app
            .store
            .revoke_family(&found.family.id, now, "revoked")
            .await?;
        let n = revoked.len();
        app.revoked.insert(revoked);
        app.audit.record(
            Event::new(EventType::TokenRevoked, now)
                .client(&client.client_id)
                .subject(&found.family.sub)
                .with("token_type", "refresh_token")
                .with("family_id", found.family.id.as_str())
                .with("access_tokens_revoked", n),
        );
    }
    Ok(true)
}
