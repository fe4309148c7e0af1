//! The client-credentials grant (RFC 6749 §4.4): a confidential client gets
//! an access token for itself; `sub` is its `client_id`, and no refresh
//! token is issued (§4.4.3).

use crate::app::App;
use crate::error::{ErrorCode, OAuthError};
use crate::oauth::form::Params;
use crate::oauth::resource;
use crate::oauth::scope::{self, OPENID_SCOPES};
use crate::oauth::token_endpoint::TokenResponse;
use crate::store::ClientRecord;
use crate::token::jwt;

/// (5) The granted scope: the requested scopes in request order, each
/// registered for the client; none requested = every registered scope
/// except the OpenID ones (there is no user here to speak of).
pub fn granted_scope(client: &ClientRecord, requested: Option<&str>) -> Result<String, OAuthError> {
    let invalid = |d: &'static str| OAuthError::new(ErrorCode::InvalidScope, d);
    let Some(requested) = requested else {
        let scopes: Vec<&str> = client
            .metadata
            .scopes()
            .filter(|s| !OPENID_SCOPES.contains(s))
            .collect();
        return Ok(scopes.join(" "));
    };
    let scopes = scope::parse(requested).map_err(invalid)?;
    for s in &scopes {
        if OPENID_SCOPES.contains(&s.as_str()) {
            return Err(invalid(
                "OpenID Connect scopes need a signed-in user, not client credentials",
            ));
        }
        if !client.metadata.scopes().any(|r| r == s) {
            return Err(invalid(
                "a requested scope is not registered for this client",
            ));
        }
    }
    Ok(scopes.join(" "))
}

pub fn grant(
    app: &App,
    client: &ClientRecord,
    params: &Params,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let scope = granted_scope(client, params.get("scope"))?;
    // (6) Resource indicators → `aud`.
    let audience =
        jwt::Audience::from_list(resource::audiences(&app.config, &params.all("resource"))?);
    // (7) Nothing more to check: the client authenticated and may use this grant.
    let ttl = app.config.access_token_ttl.as_secs();
    let jti = crate::secret::random_token(16);
    let access_token = jwt::mint_access_token(
        &app.keys.current(),
        app.config.access_token_alg,
        &jwt::AccessClaims {
            iss: &app.config.issuer,
            sub: &client.client_id,
            aud: &audience,
            exp: now.saturating_add_unsigned(ttl),
            iat: now,
            jti: jti.clone(),
            client_id: &client.client_id,
            scope: &scope,
            auth_time: None,
        },
    )
    .map_err(OAuthError::internal)?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: None,
        id_token: None,
        sub: client.client_id.clone(),
        jti,
    })
}
