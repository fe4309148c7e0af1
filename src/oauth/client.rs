//! Client registration (RFC 7591 §2): the metadata an admin submits, its
//! defaults, and the checks that make it consistent. Used by the admin API
//! and the `tessera client` subcommands alike.

use serde::{Deserialize, Serialize};

use super::redirect_uri;
use super::scope;
use crate::token::Alg;

/// The grants Tessera implements. No implicit, no password (RFC 9700 §2.1.2, §2.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl GrantType {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "authorization_code" => Self::AuthorizationCode,
            "refresh_token" => Self::RefreshToken,
            "client_credentials" => Self::ClientCredentials,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

/// `token_endpoint_auth_method` (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl AuthMethod {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "client_secret_basic" => Self::ClientSecretBasic,
            "client_secret_post" => Self::ClientSecretPost,
            "none" => Self::None,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    pub fn is_confidential(self) -> bool {
        self != Self::None
    }
}

/// The effective metadata of a registered client: what is stored and echoed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub grant_types: Vec<GrantType>,
    pub response_types: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
    pub scope: String,
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(with = "alg_str")]
    #[schema(value_type = String, example = "RS256")]
    pub id_token_signed_response_alg: Alg,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: bool,
    pub skip_consent: bool,
}

impl ClientMetadata {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registered scopes, in registration order.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

mod alg_str {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::token::Alg;

    pub fn serialize<S: Serializer>(alg: &Alg, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(alg.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Alg, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|()| serde::de::Error::custom(format!("unknown algorithm {s}")))
    }
}

/// What an admin submits (RFC 7591 §2). Unknown members are ignored, and so
/// are `client_id` and `client_secret` (Tessera assigns both).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct MetadataRequest {
    pub client_name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
    pub token_endpoint_auth_method: Option<String>,
    pub scope: Option<String>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub id_token_signed_response_alg: Option<String>,
    pub backchannel_logout_uri: Option<String>,
    pub backchannel_logout_session_required: Option<bool>,
    pub skip_consent: Option<bool>,
    /// Only read by `PUT`, which requires it to match the path.
    pub client_id: Option<String>,
}

/// RFC 7591 §3.2.2 errors.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("{0}")]
    InvalidRedirectUri(String),
    #[error("{0}")]
    InvalidClientMetadata(String),
}

impl MetadataError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRedirectUri(_) => "invalid_redirect_uri",
            Self::InvalidClientMetadata(_) => "invalid_client_metadata",
        }
    }
}

const MAX_NAME: usize = 200;
const MAX_URIS: usize = 50;

fn meta(msg: impl Into<String>) -> MetadataError {
    MetadataError::InvalidClientMetadata(msg.into())
}

impl MetadataRequest {
    /// Applies the defaults of PRODUCT.md and checks consistency.
    /// `signing_algs` are the algorithms Tessera holds keys for.
    pub fn validate(self, signing_algs: &[Alg]) -> Result<ClientMetadata, MetadataError> {
        let grant_types = self.grant_types()?;
        let has_code = grant_types.contains(&GrantType::AuthorizationCode);

        let response_types = match self.response_types {
            None if has_code => vec!["code".to_owned()],
            None => Vec::new(),
            Some(list) => dedup(list),
        };
        if let Some(other) = response_types.iter().find(|r| *r != "code") {
            return Err(meta(format!(
                "response_type `{other}` is not supported: only `code`"
            )));
        }
        if has_code == response_types.is_empty() {
            return Err(meta(
                "response_types [\"code\"] goes with the authorization_code grant, and only with it",
            ));
        }

        let token_endpoint_auth_method = match self.token_endpoint_auth_method.as_deref() {
            None => AuthMethod::ClientSecretBasic,
            Some(m) => AuthMethod::parse(m).ok_or_else(|| {
                meta(format!(
                    "token_endpoint_auth_method `{m}` is not one of client_secret_basic, client_secret_post, none"
                ))
            })?,
        };
        if token_endpoint_auth_method == AuthMethod::None
            && grant_types.contains(&GrantType::ClientCredentials)
        {
            return Err(meta(
                "a public client (token_endpoint_auth_method none) cannot use client_credentials",
            ));
        }

        let redirect_uris = dedup(self.redirect_uris.unwrap_or_default());
        if has_code && redirect_uris.is_empty() {
            return Err(MetadataError::InvalidRedirectUri(
                "the authorization_code grant needs at least one redirect_uri".into(),
            ));
        }
        if !has_code && !redirect_uris.is_empty() {
            return Err(MetadataError::InvalidRedirectUri(
                "redirect_uris are used only with the authorization_code grant".into(),
            ));
        }
        check_uris(
            &redirect_uris,
            "redirect_uri",
            MetadataError::InvalidRedirectUri,
        )?;

        let post_logout_redirect_uris = dedup(self.post_logout_redirect_uris.unwrap_or_default());
        check_uris(
            &post_logout_redirect_uris,
            "post_logout_redirect_uri",
            MetadataError::InvalidClientMetadata,
        )?;

        let scope = match self.scope {
            None if has_code => "openid profile email".to_owned(),
            None => String::new(),
            Some(s) => scope::parse(&s)
                .map_err(|e| meta(format!("scope: {e}")))?
                .join(" "),
        };

        let id_token_signed_response_alg = match self.id_token_signed_response_alg.as_deref() {
            None => Alg::RS256,
            Some(a) => a
                .parse()
                .ok()
                .filter(|a| signing_algs.contains(a))
                .ok_or_else(|| {
                    let known: Vec<_> = signing_algs.iter().map(|a| a.as_str()).collect();
                    meta(format!(
                        "id_token_signed_response_alg `{a}` is not one of {}",
                        known.join(", ")
                    ))
                })?,
        };

        if let Some(uri) = &self.backchannel_logout_uri {
            redirect_uri::check_web_uri(uri)
                .map_err(|e| meta(format!("backchannel_logout_uri: {e}")))?;
        }

        let client_name = match self.client_name {
            Some(n) if n.chars().count() > MAX_NAME || n.chars().any(char::is_control) => {
                return Err(meta(format!(
                    "client_name must be at most {MAX_NAME} printable characters"
                )));
            }
            Some(n) if n.trim().is_empty() => None,
            other => other,
        };

        Ok(ClientMetadata {
            client_name,
            redirect_uris,
            grant_types,
            response_types,
            token_endpoint_auth_method,
            scope,
            post_logout_redirect_uris,
            id_token_signed_response_alg,
            backchannel_logout_uri: self.backchannel_logout_uri,
            backchannel_logout_session_required: self
                .backchannel_logout_session_required
                .unwrap_or(false),
            skip_consent: self.skip_consent.unwrap_or(false),
        })
    }

    fn grant_types(&self) -> Result<Vec<GrantType>, MetadataError> {
        let names = match &self.grant_types {
            None => return Ok(vec![GrantType::AuthorizationCode]),
            Some(list) => dedup(list.clone()),
        };
        if names.is_empty() {
            return Err(meta("grant_types must name at least one grant"));
        }
        let grants = names
            .iter()
            .map(|g| {
                GrantType::parse(g).ok_or_else(|| {
                    meta(format!(
                        "grant_type `{g}` is not supported: use authorization_code, refresh_token or client_credentials"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if grants.contains(&GrantType::RefreshToken)
            && !grants.contains(&GrantType::AuthorizationCode)
        {
            return Err(meta(
                "refresh_token is allowed only together with authorization_code",
            ));
        }
        Ok(grants)
    }
}

fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn check_uris(
    uris: &[String],
    what: &str,
    error: fn(String) -> MetadataError,
) -> Result<(), MetadataError> {
    if uris.len() > MAX_URIS {
        return Err(error(format!("at most {MAX_URIS} {what}s")));
    }
    for uri in uris {
        redirect_uri::check_registered(uri).map_err(|e| error(format!("{what} `{uri}`: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used)]
    use super::*;

    fn request(json: serde_json::Value) -> MetadataRequest {
        serde_json::from_value(json).unwrap()
    }

    const ALGS: &[Alg] = &[Alg::RS256];

    #[test]
    fn omitted_fields_take_the_rfc7591_defaults() {
        let m = request(serde_json::json!({"redirect_uris": ["https://app.example/cb"]}))
            .validate(ALGS)
            .unwrap();
        assert_eq!(m.grant_types, vec![GrantType::AuthorizationCode]);
        assert_eq!(m.response_types, vec!["code"]);
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
        assert_eq!(m.scope, "openid profile email");
        assert_eq!(m.id_token_signed_response_alg, Alg::RS256);
        assert!(!m.skip_consent);
    }

    #[test]
    fn a_machine_client_has_no_response_types_and_no_scope_by_default() {
        let m = request(serde_json::json!({"grant_types": ["client_credentials"]}))
            .validate(ALGS)
            .unwrap();
        assert!(m.response_types.is_empty());
        assert_eq!(m.scope, "");
    }

    #[test]
    fn inconsistent_metadata_is_refused_with_the_rfc7591_code() {
        let cases = [
            (
                serde_json::json!({"grant_types": ["implicit"]}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"grant_types": ["password"]}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"grant_types": ["refresh_token"]}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"grant_types": ["client_credentials"], "response_types": ["code"]}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "none"}),
                "invalid_client_metadata",
            ),
            (
                serde_json::json!({"redirect_uris": ["https://a.example/cb"], "id_token_signed_response_alg": "HS256"}),
                "invalid_client_metadata",
            ),
            (serde_json::json!({}), "invalid_redirect_uri"),
            (
                serde_json::json!({"redirect_uris": ["http://app.example/cb"]}),
                "invalid_redirect_uri",
            ),
            (
                serde_json::json!({"redirect_uris": ["https://app.example/cb#x"]}),
                "invalid_redirect_uri",
            ),
            (
                serde_json::json!({"redirect_uris": ["/relative"]}),
                "invalid_redirect_uri",
            ),
            (
                serde_json::json!({"redirect_uris": ["myapp:/cb"]}),
                "invalid_redirect_uri",
            ),
        ];
        for (json, code) in cases {
            let err = request(json.clone()).validate(ALGS).unwrap_err();
            assert_eq!(err.code(), code, "{json}");
        }
    }
}
