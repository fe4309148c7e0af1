//! Checking the upstream's ID token, as the numbered list of OpenID Connect
//! Core §3.1.3.7 (steps 1, 8 and 12–13 do not apply: no encryption, no
//! MAC algorithms, no `acr`/`max_age` request to the upstream).

use serde::Deserialize;
use serde_json::Value;

use super::jwks::UpstreamKeys;

/// Seconds of clock skew tolerated on `exp` and `iat`.
pub const LEEWAY: i64 = 60;

/// Google issues ID tokens with either spelling of its issuer.
const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Why an upstream ID token was refused (logged, never shown to the user).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("malformed ID token")]
    Malformed,
    #[error("signature does not verify against the upstream's keys")]
    BadSignature,
    #[error("unknown signing key {0}")]
    UnknownKey(String),
    #[error("algorithm {0} is not accepted")]
    Algorithm(String),
    #[error("issuer {0} is not the upstream")]
    Issuer(String),
    #[error("audience does not name Tessera's client")]
    Audience,
    #[error("azp names another client")]
    AuthorizedParty,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("nonce does not match")]
    Nonce,
    #[error("no subject")]
    Subject,
}

/// Who signed in upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// `false` when the claim is false or missing.
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    /// Google Workspace domain (`hd`), if any.
    pub hosted_domain: Option<String>,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
}

/// What the ID token must match.
pub struct Expected<'a> {
    /// The configured upstream issuer.
    pub issuer: &'a str,
    /// Tessera's client id at the upstream.
    pub client_id: &'a str,
    /// The nonce Tessera sent with this login.
    pub nonce: &'a str,
    /// Algorithms the upstream advertises (`id_token_signing_alg_values_supported`).
    pub algs: &'a [jsonwebtoken::Algorithm],
    pub now: i64,
}

fn accepted_issuer(expected: &str, iss: &str) -> bool {
    iss == expected || (GOOGLE_ISSUERS.contains(&expected) && GOOGLE_ISSUERS.contains(&iss))
}

/// Verifies `token`; `keys` may refetch the upstream's JWKS on an unknown `kid`.
pub async fn verify(
    token: &str,
    keys: &UpstreamKeys,
    expected: &Expected<'_>,
) -> Result<UpstreamIdentity, IdTokenError> {
    let header_b64 = token.split('.').next().ok_or(IdTokenError::Malformed)?;
    let header: Header = crate::secret::b64url_decode(header_b64)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(IdTokenError::Malformed)?;
    // 6–7. Signed, with an asymmetric algorithm the upstream advertises
    // (RS256 when it says nothing); never `none` or a MAC.
    let alg: jsonwebtoken::Algorithm = header
        .alg
        .parse()
        .map_err(|_| IdTokenError::Algorithm(header.alg.clone()))?;
    let allowed = if expected.algs.is_empty() {
        &[jsonwebtoken::Algorithm::RS256][..]
    } else {
        expected.algs
    };
    if !allowed.contains(&alg)
        || matches!(
            alg,
            jsonwebtoken::Algorithm::HS256
                | jsonwebtoken::Algorithm::HS384
                | jsonwebtoken::Algorithm::HS512
        )
    {
        return Err(IdTokenError::Algorithm(header.alg));
    }
    let kid = header.kid.unwrap_or_default();
    let key = keys
        .get(&kid, alg)
        .await
        .ok_or(IdTokenError::UnknownKey(kid))?;

    // jsonwebtoken checks the signature; the claims are checked below, in
    // the order of the specification, so each failure is named.
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenError::BadSignature,
            _ => IdTokenError::Malformed,
        })?
        .claims;

    // 2. `iss` is the upstream's issuer.
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !accepted_issuer(expected.issuer, iss) {
        return Err(IdTokenError::Issuer(iss.to_owned()));
    }
    // 3. `aud` contains Tessera's client id.
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    // 4–5. Several audiences need an `azp`, which must be Tessera.
    let azp = claims.get("azp").and_then(Value::as_str);
    if (audiences.len() > 1 && azp.is_none()) || azp.is_some_and(|a| a != expected.client_id) {
        return Err(IdTokenError::AuthorizedParty);
    }
    // 9. Not expired.
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(IdTokenError::Malformed)?;
    if exp.saturating_add(LEEWAY) < expected.now {
        return Err(IdTokenError::Expired);
    }
    // 10. `iat` not in the future.
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(IdTokenError::Malformed)?;
    if iat > expected.now.saturating_add(LEEWAY) {
        return Err(IdTokenError::IssuedInFuture);
    }
    // 11. The nonce Tessera sent, compared in constant time.
    let nonce = claims
        .get("nonce")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !crate::secret::ct_eq(nonce.as_bytes(), expected.nonce.as_bytes()) {
        return Err(IdTokenError::Nonce);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 255)
        .ok_or(IdTokenError::Subject)?;
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 2048)
            .map(str::to_owned)
    };
    // Some providers send `email_verified` as a string.
    let email_verified = match claims.get("email_verified") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s == "true",
        _ => false,
    };
    Ok(UpstreamIdentity {
        issuer: expected.issuer.to_owned(),
        subject: subject.to_owned(),
        email: text("email"),
        email_verified,
        name: text("name"),
        picture: text("picture"),
        hosted_domain: text("hd").map(|d| d.to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_google_issuer_spellings_are_accepted_only_for_google() {
        assert!(accepted_issuer(
            "https://accounts.google.com",
            "accounts.google.com"
        ));
        assert!(accepted_issuer(
            "https://accounts.google.com",
            "https://accounts.google.com"
        ));
        assert!(!accepted_issuer(
            "https://idp.example.com",
            "accounts.google.com"
        ));
        assert!(!accepted_issuer(
            "https://idp.example.com",
            "https://idp.example.com/"
        ));
    }
}
