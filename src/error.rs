//! The OAuth error type: exactly the codes the standards define, and the one
//! `IntoResponse` that gives each its status, `WWW-Authenticate` where the
//! RFC asks, and `Cache-Control: no-store`.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1,
/// RFC 8707 §2 and OpenID Connect Core §3.1.2.6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// "The request is missing a required parameter, includes an unsupported
    /// parameter value (other than grant type), repeats a parameter, includes
    /// multiple credentials, utilizes more than one mechanism for
    /// authenticating the client, or is otherwise malformed."
    InvalidRequest,
    /// "Client authentication failed (e.g., unknown client, no client
    /// authentication included, or unsupported authentication method)."
    InvalidClient,
    /// "The provided authorization grant … or refresh token is invalid,
    /// expired, revoked, does not match the redirection URI used in the
    /// authorization request, or was issued to another client."
    InvalidGrant,
    /// "The authenticated client is not authorized to use this authorization
    /// grant type."
    UnauthorizedClient,
    /// "The authorization grant type is not supported by the authorization
    /// server."
    UnsupportedGrantType,
    /// "The requested scope is invalid, unknown, malformed, or exceeds the
    /// scope granted by the resource owner."
    InvalidScope,
    /// RFC 8707: "The requested resource is invalid, missing, unknown, or
    /// malformed."
    InvalidTarget,
    /// "The resource owner or authorization server denied the request."
    AccessDenied,
    /// "The authorization server does not support obtaining an authorization
    /// code using this method."
    UnsupportedResponseType,
    /// RFC 7009: "The authorization server does not support the revocation of
    /// the presented token type."
    UnsupportedTokenType,
    /// RFC 6750: "The access token provided is expired, revoked, malformed,
    /// or invalid for other reasons."
    InvalidToken,
    /// RFC 6750: "The request requires higher privileges than provided by the
    /// access token."
    InsufficientScope,
    /// OIDC: "The Authorization Server requires End-User authentication."
    LoginRequired,
    /// OIDC: "The Authorization Server requires End-User consent."
    ConsentRequired,
    /// OIDC: "The Authorization Server requires End-User interaction of some form."
    InteractionRequired,
    /// OIDC: "The OP does not support use of the request parameter."
    RequestNotSupported,
    /// OIDC: "The OP does not support use of the request_uri parameter."
    RequestUriNotSupported,
    /// "The authorization server encountered an unexpected condition that
    /// prevented it from fulfilling the request."
    ServerError,
    /// "The authorization server is currently unable to handle the request due
    /// to a temporary overloading or maintenance of the server."
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An OAuth error response (RFC 6749 §5.2).
#[derive(Debug)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Cow<'static, str>,
    /// The client tried HTTP Basic: a 401 carries `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// Over a rate limit: 429 with `Retry-After`.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }

    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    pub fn invalid_client(d: impl Into<Cow<'static, str>>, basic_tried: bool) -> Self {
        Self {
            basic_challenge: basic_tried,
            ..Self::new(ErrorCode::InvalidClient, d)
        }
    }

    /// Logs an unexpected failure once, with its cause chain, and answers
    /// without revealing it: 503 when the database is out of reach, else 500.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        let unavailable = err
            .downcast_ref::<StoreError>()
            .is_some_and(|e| matches!(e, StoreError::Unavailable(_)));
        if unavailable {
            tracing::warn!(error = format!("{err:#}"), "database unavailable");
            Self::new(
                ErrorCode::TemporarilyUnavailable,
                "the service is temporarily unavailable; retry shortly",
            )
        } else {
            tracing::error!(error = format!("{err:#}"), "internal error");
            Self::new(ErrorCode::ServerError, "internal error")
        }
    }

    pub fn overloaded() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "too many client authentications in progress; retry shortly",
        )
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        Self::internal(e)
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// The headers every token-endpoint answer carries (RFC 6749 §5.1).
pub fn no_store(headers: &mut axum::http::HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        let status = if self.retry_after.is_some() {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            self.code.status()
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        no_store(headers);
        if self.basic_challenge && status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tessera\", charset=\"UTF-8\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
