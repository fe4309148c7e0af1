//! The authorization-code grant (RFC 6749 §4.1.3, RFC 7636 §4.5–4.6): the
//! code is spent in the same transaction that writes what it issues; a
//! second use revokes what the first issued.

use crate::app::App;
use crate::error::OAuthError;
use crate::oauth::authorize::pkce_matches;
use crate::oauth::client::GrantType;
use crate::oauth::form::Params;
use crate::oauth::resource;
use crate::oauth::token_endpoint::TokenResponse;
use crate::secret::{random_token, sha256_b64};
use crate::store::{ClientRecord, Family, FoundCode, Issued, Spend, SpendKind, Spent};

use super::{Owner, UserTokens, invalid_grant, mint, narrow_audience, new_refresh_token, redeem};

pub async fn grant(
    app: &App,
    client: &ClientRecord,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    // (5) `scope` is not a parameter of this request: the code carries it.
    // (6) `resource` may narrow the audiences the code was granted.
    let requested = params.all("resource");
    let requested = if requested.is_empty() {
        Vec::new()
    } else {
        resource::audiences(&app.config, &requested)?
    };
    // (7) The grant.
    let code = params
        .get("code")
        .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
    let redirect_uri = params
        .get("redirect_uri")
        .ok_or_else(|| OAuthError::invalid_request("redirect_uri is required"))?;
    let verifier = params
        .get("code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is required (PKCE)"))?;
    let code_hash = sha256_b64(code.as_bytes());
    let Some(found) = app.lookups.code(code_hash.clone()).await? else {
        return Err(invalid_grant("the code is not valid"));
    };
    // Checked and signed outside the write transaction; the code is then
    // claimed, and what was issued written, in one transaction.
    let owner = Owner {
        client_id: &found.code.client_id,
        sub: &found.code.sub,
        presented_by: &client.client_id,
    };
    let planned = if found.used {
        Err(invalid_grant(
            "the code was already used; what it issued is revoked",
        ))
    } else {
        plan(app, client, &found, &requested, redirect_uri, verifier, now)
    };
    let (issued, response) = match planned {
        Ok(done) => done,
        Err(e) => {
            // A refused code is spent all the same (no second guess at
            // PKCE), and a used one revokes what its first use issued.
            redeem(app, spend(code_hash, now, None), &owner).await?;
            return Err(e);
        }
    };
    match redeem(app, spend(code_hash, now, Some(issued)), &owner).await? {
        Spent::Claimed => Ok(response),
        Spent::Unknown | Spent::Revoked => Err(invalid_grant("the code is not valid")),
        Spent::Replayed => Err(invalid_grant(
            "the code was already used; what it issued is revoked",
        )),
    }
}

/// (7) The checks of RFC 6749 §4.1.3 and RFC 7636 §4.6, then the tokens.
fn plan(
    app: &App,
    client: &ClientRecord,
    found: &FoundCode,
    requested: &[String],
    redirect_uri: &str,
    verifier: &str,
    now: i64,
) -> Result<(Issued, TokenResponse), OAuthError> {
    let (stored, user) = (&found.code, &found.user);
    if stored.client_id != client.client_id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if stored.expires_at <= now {
        return Err(invalid_grant("the code has expired"));
    }
    if stored.redirect_uri != redirect_uri {
        return Err(invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce_matches(verifier, &stored.code_challenge) {
        return Err(invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    if user.disabled_at.is_some() {
        return Err(invalid_grant("the user is disabled"));
    }
    let granted: Vec<String> =
        serde_json::from_str(&stored.audience).map_err(OAuthError::internal)?;
    let audience = narrow_audience(requested, &granted)?;
    let minted = mint(
        app,
        &UserTokens {
            client,
            user,
            sid: stored.sid.as_deref(),
            scope: &stored.scope,
            openid: stored.scope.split(' ').any(|s| s == "openid"),
            audience: &audience,
            auth_time: stored.auth_time,
            nonce: stored.nonce.as_deref(),
        },
        now,
    )?;
    let (family, refresh) = if client.metadata.allows_grant(GrantType::RefreshToken) {
        let family = Family {
            id: random_token(16),
            client_id: client.client_id.clone(),
            sub: user.sub.clone(),
            sid: stored.sid.clone(),
            scope: stored.scope.clone(),
            audience: stored.audience.clone(),
            auth_time: stored.auth_time,
            created_at: now,
            expires_at: now.saturating_add_unsigned(app.config.refresh_token_max_ttl.as_secs()),
        };
        let refresh = new_refresh_token(app, &family.id, family.expires_at, now);
        (Some(family), Some(refresh))
    } else {
        (None, None)
    };
    Ok(minted.issue(app, stored.scope.clone(), family, refresh))
}

fn spend(hash: String, now: i64, issued: Option<Issued>) -> Spend {
    Spend {
        kind: SpendKind::Code,
        hash,
        now,
        issued,
    }
}
