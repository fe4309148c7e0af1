//! The authorization request (RFC 6749 §4.1.1, OIDC Core §3.1.2.1,
//! RFC 7636 §4.3): who may be sent back where, and what is asked.
//!
//! Validation happens in two stages. Until the client and the redirect URI
//! are trusted, an error is shown on a page and never redirected (RFC 6749
//! §4.1.2.1, RFC 9700 §4.11.1). After, every error goes back to the client
//! as `error`, `error_description`, `state` and `iss` (RFC 9207).

use serde::{Deserialize, Serialize};

use super::client::GrantType;
use super::form::Params;
use super::{redirect_uri, resource, scope};
use crate::config::Config;
use crate::error::{ErrorCode, OAuthError};
use crate::store::ClientRecord;

/// Why a request cannot even be redirected back: shown as an HTML page.
#[derive(Debug, PartialEq, Eq)]
pub enum PageError {
    UnknownClient,
    MissingRedirectUri,
    UnregisteredRedirectUri,
    /// A malformed query, a repeated `client_id` or `redirect_uri`.
    Malformed(String),
}

impl PageError {
    pub fn message(&self) -> String {
        match self {
            Self::UnknownClient => "The application that sent you here is not registered.".into(),
            Self::MissingRedirectUri => {
                "The request does not say where to send you back (redirect_uri).".into()
            }
            Self::UnregisteredRedirectUri => {
                "The address to send you back to is not registered for this application.".into()
            }
            Self::Malformed(m) => m.clone(),
        }
    }
}

/// `prompt` (OIDC Core §3.1.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub none: bool,
    pub login: bool,
    pub consent: bool,
    pub select_account: bool,
}

/// A validated authorization request: everything needed to issue a code,
/// kept across the upstream login and the consent page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// Granted scopes, request order, deduplicated.
    pub scope: Vec<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub audience: Vec<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
}

/// Where an error after the redirect URI is trusted goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorTarget {
    pub redirect_uri: String,
    pub state: Option<String>,
}

const MAX_STATE: usize = 2048;

/// Stage 1: the client and its redirect URI.
pub fn trusted_redirect(
    client: Option<&ClientRecord>,
    params: &Params,
) -> Result<ErrorTarget, PageError> {
    let client = client.ok_or(PageError::UnknownClient)?;
    let requested = params
        .get("redirect_uri")
        .ok_or(PageError::MissingRedirectUri)?;
    if !client
        .metadata
        .redirect_uris
        .iter()
        .any(|registered| redirect_uri::matches(registered, requested))
    {
        return Err(PageError::UnregisteredRedirectUri);
    }
    Ok(ErrorTarget {
        redirect_uri: requested.to_owned(),
        state: params
            .get("state")
            .filter(|s| s.len() <= MAX_STATE)
            .map(str::to_owned),
    })
}

fn invalid(d: &'static str) -> OAuthError {
    OAuthError::invalid_request(d)
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`.
pub fn is_pkce_value(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn prompt(value: Option<&str>) -> Result<Prompt, OAuthError> {
    let mut p = Prompt::default();
    for v in value
        .unwrap_or_default()
        .split(' ')
        .filter(|v| !v.is_empty())
    {
        match v {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            "select_account" => p.select_account = true,
            _ => return Err(invalid("prompt has an unknown value")),
        }
    }
    if p.none && (p.login || p.consent || p.select_account) {
        return Err(invalid("prompt=none cannot be combined with another value"));
    }
    Ok(p)
}

/// Stage 2: the rest, once errors can be redirected.
pub fn validate(
    config: &Config,
    client: &ClientRecord,
    target: &ErrorTarget,
    params: &Params,
) -> Result<AuthorizeRequest, OAuthError> {
    if params.get("request").is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.get("request_uri").is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match params.get("response_type") {
        None => return Err(invalid("response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if params.get("response_mode").is_some_and(|m| m != "query") {
        return Err(invalid("only response_mode=query is supported"));
    }
    if !client.metadata.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for the authorization_code grant",
        ));
    }
    if params.get("state").is_some_and(|s| s.len() > MAX_STATE) {
        return Err(invalid("state is too long"));
    }
    let scopes = scope::parse(
        params
            .get("scope")
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidScope, "scope is required"))?,
    )
    .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e))?;
    if scopes.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope is required",
        ));
    }
    if let Some(s) = scopes
        .iter()
        .find(|s| !client.metadata.scopes().any(|r| r == s.as_str()))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("scope {s} is not registered for this client"),
        ));
    }
    // RFC 7636 §4.3, OAuth 2.1: PKCE with S256, for every client.
    let challenge = params
        .get("code_challenge")
        .ok_or_else(|| invalid("code_challenge is required (PKCE, S256)"))?;
    match params.get("code_challenge_method") {
        Some("S256") => {}
        None => return Err(invalid("code_challenge_method=S256 is required")),
        Some(_) => return Err(invalid("only code_challenge_method=S256 is supported")),
    }
    if !is_pkce_value(challenge) {
        return Err(invalid(
            "code_challenge must be 43 to 128 unreserved characters",
        ));
    }
    let audience = resource::audiences(config, &params.all("resource"))?;
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| invalid("max_age must be a non-negative number of seconds"))?,
        ),
    };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_STATE) {
        return Err(invalid("nonce is too long"));
    }
    Ok(AuthorizeRequest {
        client_id: client.client_id.clone(),
        redirect_uri: target.redirect_uri.clone(),
        state: target.state.clone(),
        scope: scopes,
        code_challenge: challenge.to_owned(),
        nonce,
        audience,
        prompt: prompt(params.get("prompt"))?,
        max_age,
    })
}

/// The authorization response or error, as a redirect URL (RFC 6749
/// §4.1.2, §4.1.2.1; RFC 9207 `iss` on both).
pub fn redirect_url(
    target: &ErrorTarget,
    issuer: &str,
    outcome: Result<&str, &OAuthError>,
) -> String {
    let mut url = target.redirect_uri.clone();
    let mut query = form_urlencoded::Serializer::new(String::new());
    match outcome {
        Ok(code) => {
            query.append_pair("code", code);
        }
        Err(e) => {
            query.append_pair("error", e.code.as_str());
            query.append_pair("error_description", &e.description);
        }
    }
    if let Some(state) = &target.state {
        query.append_pair("state", state);
    }
    query.append_pair("iss", issuer);
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&query.finish());
    url
}

/// RFC 7636 §4.6: `BASE64URL(SHA256(code_verifier)) == code_challenge`.
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    crate::secret::ct_eq(
        crate::secret::b64url(digest.as_ref()).as_bytes(),
        challenge.as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verifier_matches_only_its_s256_challenge() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K9uhyUPf5y2cNpTQvpQ3nP0CJo",
            "jFJ5owK9BMosC5BZe7GT7EBmwJC2OlXa1zyf-EDuX8U"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K9uhyUPf5y2cNpTQvpQ3nP0CJx",
            "jFJ5owK9BMosC5BZe7GT7EBmwJC2OlXa1zyf-EDuX8U"
        ));
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert!(prompt(Some("none")).is_ok());
        assert!(prompt(Some("login consent")).is_ok());
        assert!(prompt(Some("none login")).is_err());
        assert!(prompt(Some("bogus")).is_err());
    }

    #[test]
    fn errors_go_back_with_state_and_iss() {
        let t = ErrorTarget {
            redirect_uri: "https://app.example/cb?x=1".into(),
            state: Some("s t".into()),
        };
        let e = OAuthError::new(ErrorCode::AccessDenied, "no");
        assert_eq!(
            redirect_url(&t, "https://id.example", Err(&e)),
            "https://app.example/cb?x=1&error=access_denied&error_description=no&state=s+t&iss=https%3A%2F%2Fid.example"
        );
    }
}
