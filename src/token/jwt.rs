//! JWTs Tessera signs: the compact JWS serialization (RFC 7515 §7.1) over
//! keys held in memory, and the RFC 9068 access-token claims.

use serde::Serialize;

use super::keys::SigningKey;
use crate::secret::b64url;

/// `BASE64URL(header) || '.' || BASE64URL(claims) || '.' || BASE64URL(signature)`
/// with the protected header `{"alg","typ","kid"}`.
pub fn sign(key: &SigningKey, typ: &str, claims: &impl Serialize) -> anyhow::Result<String> {
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'static str,
        typ: &'a str,
        kid: &'a str,
    }
    let header = serde_json::to_vec(&Header {
        alg: key.alg.as_str(),
        typ,
        kid: &key.kid,
    })?;
    let claims = serde_json::to_vec(claims)?;
    let mut out = String::with_capacity((header.len() + claims.len()) * 4 / 3 + 400);
    out.push_str(&b64url(&header));
    out.push('.');
    out.push_str(&b64url(&claims));
    let signature = key.sign(out.as_bytes())?;
    out.push('.');
    out.push_str(&b64url(&signature));
    Ok(out)
}

/// `aud`: one value is a string, several an array (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 {
            Self::One(list.remove(0))
        } else {
            Self::Many(list)
        }
    }
}

/// RFC 9068 §2.2: the claims of a JWT access token.
#[derive(Debug, Serialize)]
pub struct AccessClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: &'a str,
    pub scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// RFC 9068 §2.1: `typ` of an access token.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Signs an access token with the active key for `alg`.
pub fn mint_access_token(
    keys: &super::keys::KeySet,
    alg: super::Alg,
    claims: &AccessClaims<'_>,
) -> anyhow::Result<String> {
    let key = keys
        .signer(alg)
        .ok_or_else(|| anyhow::anyhow!("no active {alg} signing key"))?;
    sign(key, ACCESS_TOKEN_TYP, claims)
}

/// OIDC Core §2, §3.1.3.6: the claims of an ID token.
#[derive(Debug, Serialize)]
pub struct IdClaims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    pub at_hash: String,
    pub azp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    #[serde(flatten)]
    pub profile: serde_json::Map<String, serde_json::Value>,
}

/// OIDC Core §3.1.3.6 `at_hash`: the left half of the hash of the access
/// token's ASCII, with the hash of the ID token's algorithm (SHA-256 for
/// RS256/ES256; SHA-512 for EdDSA with Ed25519, as openid-client checks).
pub fn at_hash(alg: super::Alg, access_token: &str) -> String {
    let algorithm = match alg {
        super::Alg::RS256 | super::Alg::ES256 => &aws_lc_rs::digest::SHA256,
        super::Alg::EdDSA => &aws_lc_rs::digest::SHA512,
    };
    let digest = aws_lc_rs::digest::digest(algorithm, access_token.as_bytes());
    let bytes = digest.as_ref();
    b64url(bytes.get(..bytes.len() / 2).unwrap_or(bytes))
}

/// Signs an ID token with the active key for `alg`.
pub fn mint_id_token(
    keys: &super::keys::KeySet,
    alg: super::Alg,
    claims: &IdClaims<'_>,
) -> anyhow::Result<String> {
    let key = keys
        .signer(alg)
        .ok_or_else(|| anyhow::anyhow!("no active {alg} signing key"))?;
    sign(key, "JWT", claims)
}

/// Back-Channel Logout 1.0 §2.4: the claims of a logout token (no `nonce`).
#[derive(Debug, Serialize)]
pub struct LogoutClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    pub events: serde_json::Value,
}

/// Back-Channel Logout 1.0 §2.4: `typ` of a logout token.
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// The `events` member of a logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Signs a logout token like the client's ID tokens (`alg`).
pub fn mint_logout_token(
    keys: &super::keys::KeySet,
    alg: super::Alg,
    claims: &LogoutClaims<'_>,
) -> anyhow::Result<String> {
    let key = keys
        .signer(alg)
        .ok_or_else(|| anyhow::anyhow!("no active {alg} signing key"))?;
    sign(key, LOGOUT_TOKEN_TYP, claims)
}
