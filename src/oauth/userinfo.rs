//! `/userinfo` (OIDC Core §5.3) and the access-token check it shares with
//! any resource server: signature against a published key, `typ: at+jwt`
//! (an ID token is not an access token), issuer, expiry, not revoked.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::error::{ErrorCode, OAuthError};

/// The claims Tessera reads from its own access tokens.
#[derive(Debug, Deserialize)]
pub struct AccessToken {
    pub iss: String,
    pub sub: String,
    pub client_id: String,
    pub jti: String,
    #[serde(default)]
    pub scope: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: i64,
    /// A string or an array of strings (RFC 7519 §4.1.3).
    #[serde(default)]
    pub aud: Value,
    /// Present on user tokens, absent on client-credentials tokens.
    #[serde(default)]
    pub auth_time: Option<i64>,
}

/// Why a bearer request failed (RFC 6750 §3.1).
#[derive(Debug)]
pub enum BearerError {
    /// No token at all: a challenge without an error attribute.
    Missing,
    /// RFC 6750 `invalid_request` (e.g. a token in two places).
    Request(&'static str),
    /// RFC 6750 `invalid_token`.
    Token(&'static str),
    /// RFC 6750 `insufficient_scope`.
    Scope,
    Internal(OAuthError),
}

impl From<OAuthError> for BearerError {
    fn from(e: OAuthError) -> Self {
        Self::Internal(e)
    }
}

/// Validates one of Tessera's access tokens as a resource server would,
/// and refuses a revoked one (from the in-memory revoked set: no query).
pub fn check_access_token(app: &App, token: &str, now: i64) -> Result<AccessToken, BearerError> {
    let claims = verify_access_token(app, token, now).map_err(BearerError::Token)?;
    if app.revoked.is_revoked(&claims.jti) {
        return Err(BearerError::Token("revoked token"));
    }
    Ok(claims)
}

/// Signature against a published (non-retired) key, `typ: at+jwt`, `iss`,
/// expiry; not the revocation.
pub fn verify_access_token(app: &App, token: &str, now: i64) -> Result<AccessToken, &'static str> {
    verify_access_token_with(&app.keys.current(), &app.config.issuer, token, now)
}

/// `verify_access_token` against a key set and issuer.
pub fn verify_access_token_with(
    keys: &crate::token::keys::KeySet,
    issuer: &str,
    token: &str,
    now: i64,
) -> Result<AccessToken, &'static str> {
    let bad = |why: &'static str| why;
    let header = jsonwebtoken::decode_header(token).map_err(|_| bad("malformed token"))?;
    if header.typ.as_deref() != Some(crate::token::jwt::ACCESS_TOKEN_TYP) {
        return Err(bad("not an access token"));
    }
    let (alg, key) = header
        .kid
        .as_deref()
        .and_then(|kid| keys.verifier(kid))
        .ok_or(bad("unknown signing key"))?;
    if alg.jsonwebtoken() != header.alg {
        return Err(bad("algorithm does not match the key"));
    }
    let mut validation = jsonwebtoken::Validation::new(alg.jsonwebtoken());
    validation.set_issuer(&[issuer]);
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<AccessToken>(token, key, &validation)
        .map_err(|_| bad("invalid or expired token"))?
        .claims;
    if claims.exp <= now {
        return Err(bad("expired token"));
    }
    Ok(claims)
}

/// Finds the one bearer token of a request: the `Authorization` header or
/// (POST) the form body's `access_token`; never the query string.
pub fn bearer<'a>(
    authorization: Option<&'a str>,
    form_token: Option<&'a str>,
) -> Result<&'a str, BearerError> {
    let from_header = match authorization {
        Some(h) => {
            let (scheme, token) = h
                .split_once(' ')
                .ok_or(BearerError::Request("malformed Authorization header"))?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(BearerError::Request("use the Bearer scheme"));
            }
            Some(token.trim())
        }
        None => None,
    };
    match (from_header, form_token) {
        (Some(_), Some(_)) => Err(BearerError::Request(
            "the token was sent in more than one place",
        )),
        (Some(t), None) | (None, Some(t)) if !t.is_empty() => Ok(t),
        _ => Err(BearerError::Missing),
    }
}

/// The claims of the token's user, by granted scope.
pub async fn userinfo(app: &App, token: &str) -> Result<Map<String, Value>, BearerError> {
    let claims = check_access_token(app, token, app.now())?;
    let scopes = claims.scope.split(' ');
    if !scopes.clone().any(|s| s == "openid") {
        return Err(BearerError::Scope);
    }
    let user = app
        .store
        .get_user(&claims.sub)
        .await
        .map_err(OAuthError::from)?
        .filter(|u| u.disabled_at.is_none())
        .ok_or(BearerError::Token(
            "the user no longer exists or is disabled",
        ))?;
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.sub));
    out.extend(crate::oauth::grant::user_claims(&user, scopes));
    Ok(out)
}

impl BearerError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Missing => None,
            Self::Request(_) => Some(ErrorCode::InvalidRequest),
            Self::Token(_) => Some(ErrorCode::InvalidToken),
            Self::Scope => Some(ErrorCode::InsufficientScope),
            Self::Internal(e) => Some(e.code),
        }
    }
}
