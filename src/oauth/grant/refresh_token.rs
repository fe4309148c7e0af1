//! The refresh-token grant (RFC 6749 §6) with strict rotation: each use
//! returns a new refresh token and spends the old one; a spent token
//! presented again revokes its whole family (RFC 9700 §4.14.2).

use crate::app::App;
use crate::error::{ErrorCode, OAuthError};
use crate::oauth::form::Params;
use crate::oauth::token_endpoint::TokenResponse;
use crate::oauth::{resource, scope};
use crate::secret::sha256_b64;
use crate::store::{ClientRecord, FoundRefresh, Issued, Spend, SpendKind, Spent};

use super::{Owner, UserTokens, invalid_grant, mint, narrow_audience, new_refresh_token, redeem};

pub async fn grant(
    app: &App,
    client: &ClientRecord,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    // (5) A requested scope may only narrow, and narrows only this access token.
    let requested_scope = match params.get("scope") {
        Some(s) => Some(scope::parse(s).map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?),
        None => None,
    };
    // (6) Resources may narrow the family's audiences.
    let requested = params.all("resource");
    let requested = if requested.is_empty() {
        Vec::new()
    } else {
        resource::audiences(&app.config, &requested)?
    };
    // (7) The grant.
    let token = params
        .get("refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;

    let token_hash = sha256_b64(token.as_bytes());
    let Some(found) = app.lookups.refresh(token_hash.clone()).await? else {
        return Err(invalid_grant("the refresh token is not valid"));
    };
    let owner = Owner {
        client_id: &found.family.client_id,
        sub: &found.family.sub,
        presented_by: &client.client_id,
    };
    if found.used {
        // A replay: spending it again revokes the family.
        redeem(app, spend(token_hash, now, None), &owner).await?;
        return Err(invalid_grant(
            "the refresh token was already used; its family is revoked",
        ));
    }
    if found.family_revoked {
        return Err(invalid_grant("the refresh token was revoked"));
    }
    // Checked and signed outside the write transaction; a refusal here
    // leaves the token unspent.
    let (issued, response) = plan(
        app,
        client,
        &found,
        requested_scope.as_deref(),
        &requested,
        now,
    )?;
    match redeem(app, spend(token_hash, now, Some(issued)), &owner).await? {
        Spent::Claimed => Ok(response),
        Spent::Unknown | Spent::Revoked => Err(invalid_grant("the refresh token was revoked")),
        Spent::Replayed => Err(invalid_grant(
            "the refresh token was already used; its family is revoked",
        )),
    }
}

fn plan(
    app: &App,
    client: &ClientRecord,
    found: &FoundRefresh,
    requested_scope: Option<&[String]>,
    requested: &[String],
    now: i64,
) -> Result<(Issued, TokenResponse), OAuthError> {
    let (family, stored, user) = (&found.family, &found.token, &found.user);
    if family.client_id != client.client_id {
        return Err(invalid_grant(
            "the refresh token was issued to another client",
        ));
    }
    if stored.expires_at <= now || family.expires_at <= now {
        return Err(invalid_grant("the refresh token has expired"));
    }
    if user.disabled_at.is_some() {
        return Err(invalid_grant("the user is disabled"));
    }
    let granted: Vec<&str> = family.scope.split(' ').filter(|s| !s.is_empty()).collect();
    let scope = match requested_scope {
        Some(scopes) => {
            if let Some(s) = scopes.iter().find(|s| !granted.contains(&s.as_str())) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    format!("scope {s} was not granted"),
                ));
            }
            scopes.join(" ")
        }
        None => family.scope.clone(),
    };
    let granted_audience: Vec<String> =
        serde_json::from_str(&family.audience).map_err(OAuthError::internal)?;
    let audience = narrow_audience(requested, &granted_audience)?;
    let minted = mint(
        app,
        &UserTokens {
            client,
            user,
            sid: family.sid.as_deref(),
            scope: &scope,
            // OIDC Core §12.2: a new ID token when `openid` was granted.
            openid: granted.contains(&"openid"),
            audience: &audience,
            auth_time: family.auth_time,
            nonce: None,
        },
        now,
    )?;
    let refresh = new_refresh_token(app, &family.id, family.expires_at, now);
    Ok(minted.issue(app, scope, None, Some(refresh)))
}

fn spend(hash: String, now: i64, issued: Option<Issued>) -> Spend {
    Spend {
        kind: SpendKind::Refresh,
        hash,
        now,
        issued,
    }
}
