//! The public listener: the OAuth 2.1 / OpenID Connect endpoints.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::options;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cors;
use super::middleware::ClientIp;
use super::openapi::{
    BearerErrorBody, IntrospectForm, InvalidClient, JwkSet, OAuthErrorBody, PublicLimits,
    RevokeForm, ServerMetadata, TokenForm, UserinfoClaims, UserinfoForm,
};
use crate::app::{App, AppState};
use crate::error::{OAuthError, no_store};
use crate::oauth::form::{self, Params};
use crate::oauth::token_endpoint::{self, Caller, SUPPORTED_GRANTS};

/// RFC 6749 §3.1: bodies past this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The public listener's routes and their OpenAPI description.
pub fn router(app: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let documents = OpenApiRouter::new()
        .routes(routes!(jwks))
        .routes(routes!(openid_configuration))
        .routes(routes!(oauth_authorization_server))
        .route("/jwks", options(cors::preflight))
        .route(
            "/.well-known/openid-configuration",
            options(cors::preflight),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            options(cors::preflight),
        );
    // CORS for registered origins is answered by these handlers
    // (`cors::registered`) and their preflight routes.
    let api = OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(revoke))
        .routes(routes!(userinfo))
        .route("/token", options(cors::registered_preflight))
        .route("/revoke", options(cors::registered_preflight))
        .route("/userinfo", options(cors::registered_preflight));
    // The documents and health checks read no body: the limit (an
    // extension on each request) is set where bodies are read.
    let with_bodies = OpenApiRouter::new()
        .merge(api)
        .routes(routes!(super::browser::authorize))
        .routes(routes!(introspect))
        .routes(routes!(super::browser::callback))
        .routes(routes!(super::browser::consent))
        .routes(routes!(super::browser::logout))
        .layer(DefaultBodyLimit::max(BODY_LIMIT));
    OpenApiRouter::new()
        .merge(documents)
        .merge(with_bodies)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .layer(super::middleware::Edge::public(app.clone()))
        .with_state(app)
        .split_for_parts()
}

/// The form body of a client's POST (RFC 6749 §3.2: only
/// "application/x-www-form-urlencoded"; a repeated parameter is refused).
fn form_body(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    if !form::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)) {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(body)
}

fn caller(headers: &HeaderMap, ClientIp(ip): ClientIp) -> Caller<'_> {
    Caller {
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        ip,
    }
}

/// JSON with `Cache-Control: no-store` (RFC 6749 §5.1, RFC 7662 §2.2).
fn json_no_store(value: impl serde::Serialize) -> Response {
    let mut response = axum::Json(value).into_response();
    no_store(response.headers_mut());
    response
}

/// RFC 6749 §3.2, §5: the token endpoint.
#[utoipa::path(
    post,
    path = "/token",
    tag = "oauth",
    summary = "Token endpoint: authorization_code, refresh_token, client_credentials",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Tokens (RFC 6749 §5.1)", body = crate::oauth::token_endpoint::TokenResponse),
        (status = 400, description = "`invalid_request`, `unsupported_grant_type`, `unauthorized_client`, \
            `invalid_scope`, `invalid_target` or `invalid_grant` (RFC 6749 §5.2)", body = OAuthErrorBody),
        InvalidClient,
        PublicLimits,
    ),
)]
async fn token(
    State(app): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // (1) The form, then the checks of `token_endpoint::exchange`.
    let response = match form_body(&headers, &body) {
        Ok(params) => match token_endpoint::exchange(&app, &params, &caller(&headers, ip)).await {
            Ok(response) => json_no_store(response),
            Err(e) => e.into_response(),
        },
        Err(e) => e.into_response(),
    };
    cors::registered(&app, &headers, response).await
}

/// RFC 7009: revocation. 200 with an empty body whether or not the token
/// was known (§2.2).
#[utoipa::path(
    post,
    path = "/revoke",
    tag = "oauth",
    summary = "Revoke an access or refresh token (RFC 7009)",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    security((), ("client_secret_basic" = [])),
    responses(
        (status = 200, description = "Revoked, or unknown: the same answer (RFC 7009 §2.2)"),
        (status = 400, description = "`invalid_request` or `unsupported_token_type`", body = OAuthErrorBody),
        InvalidClient,
        PublicLimits,
    ),
)]
async fn revoke(
    State(app): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = match form_body(&headers, &body) {
        Ok(params) => {
            match crate::oauth::revocation::revoke(&app, &params, &caller(&headers, ip)).await {
                Ok(()) => {
                    let mut response = StatusCode::OK.into_response();
                    no_store(response.headers_mut());
                    response
                }
                Err(e) => e.into_response(),
            }
        }
        Err(e) => e.into_response(),
    };
    cors::registered(&app, &headers, response).await
}

/// RFC 7662: introspection, for confidential clients.
#[utoipa::path(
    post,
    path = "/introspect",
    tag = "oauth",
    summary = "Token introspection for confidential clients (RFC 7662)",
    request_body(content = IntrospectForm, content_type = "application/x-www-form-urlencoded"),
    security(("client_secret_basic" = [])),
    responses(
        (status = 200, description = "`active` and, when active, the token's claims (RFC 7662 §2.2)",
            body = crate::oauth::introspection::Introspection),
        (status = 400, description = "`invalid_request`", body = OAuthErrorBody),
        InvalidClient,
        PublicLimits,
    ),
)]
async fn introspect(
    State(app): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = match form_body(&headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match crate::oauth::introspection::introspect(&app, &params, &caller(&headers, ip)).await {
        Ok(response) => json_no_store(response),
        Err(e) => e.into_response(),
    }
}

/// OIDC Core §5.3: the signed-in user's claims, by the token's scopes.
/// RFC 6750 §2: the token in the header, or (POST) the form body; never
/// the query string.
#[utoipa::path(
    method(get, post),
    path = "/userinfo",
    tag = "openid",
    summary = "The signed-in user's claims (OpenID Connect Core §5.3)",
    request_body(content = Option<UserinfoForm>, content_type = "application/x-www-form-urlencoded",
        description = "POST only: the token in the form instead of the header (RFC 6750 §2.2)"),
    security(("access_token" = [])),
    responses(
        (status = 200, description = "Claims allowed by the token's scopes", body = UserinfoClaims),
        (status = 400, description = "`invalid_request` (e.g. a token both in the header and the form)", body = BearerErrorBody,
            headers(("WWW-Authenticate" = String))),
        (status = 401, description = "No token (empty body) or `invalid_token`", body = BearerErrorBody,
            headers(("WWW-Authenticate" = String))),
        (status = 403, description = "`insufficient_scope`: the token lacks `openid`", body = BearerErrorBody,
            headers(("WWW-Authenticate" = String))),
        PublicLimits,
    ),
)]
async fn userinfo(
    State(app): State<AppState>,
    method: axum::http::Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = userinfo_answer(&app, &method, &headers, &body).await;
    cors::registered(&app, &headers, response).await
}

async fn userinfo_answer(
    app: &App,
    method: &axum::http::Method,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    use crate::oauth::userinfo::{self as ui, BearerError};
    let form;
    let form_token = if method == axum::http::Method::POST
        && form::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes))
    {
        form = Params::parse(body).ok();
        form.as_ref().and_then(|f| f.get("access_token"))
    } else {
        None
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let result = match ui::bearer(authorization, form_token) {
        Ok(token) => ui::userinfo(app, token).await,
        Err(e) => Err(e),
    };
    let (status, challenge, description) = match result {
        Ok(claims) => {
            let mut r = axum::Json(claims).into_response();
            no_store(r.headers_mut());
            return r;
        }
        Err(BearerError::Internal(e)) => return e.into_response(),
        Err(BearerError::Missing) => (
            StatusCode::UNAUTHORIZED,
            "Bearer realm=\"tessera\"".to_owned(),
            None,
        ),
        Err(BearerError::Request(d)) => (
            StatusCode::BAD_REQUEST,
            "Bearer realm=\"tessera\", error=\"invalid_request\"".to_owned(),
            Some(d),
        ),
        Err(BearerError::Token(d)) => (
            StatusCode::UNAUTHORIZED,
            format!("Bearer realm=\"tessera\", error=\"invalid_token\", error_description=\"{d}\""),
            Some(d),
        ),
        Err(BearerError::Scope) => (
            StatusCode::FORBIDDEN,
            "Bearer realm=\"tessera\", error=\"insufficient_scope\", scope=\"openid\"".to_owned(),
            Some("the token was not granted the openid scope"),
        ),
    };
    let body = match (&description, status) {
        (Some(d), StatusCode::BAD_REQUEST) => {
            json!({"error": "invalid_request", "error_description": d})
        }
        (Some(d), StatusCode::FORBIDDEN) => {
            json!({"error": "insufficient_scope", "error_description": d})
        }
        (Some(d), _) => json!({"error": "invalid_token", "error_description": d}),
        // RFC 6750 §3.1: no credentials, no error code.
        (None, _) => json!({}),
    };
    let mut r = (status, axum::Json(body)).into_response();
    no_store(r.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// RFC 7517 §5: the JWK Set, serialized once per key change and served from memory.
#[utoipa::path(
    get,
    path = "/jwks",
    tag = "oauth",
    summary = "The public signing keys (JWK Set)",
    responses(
        (status = 200, description = "Every published key: pending, active and retiring",
            body = JwkSet, headers(("Cache-Control" = String))),
        PublicLimits,
    ),
)]
async fn jwks(State(app): State<AppState>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, app.public_cache_control.clone()),
            // CORS: anyone may read public keys (no `Vary`: the answer is the same for all).
            (
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ),
        ],
        app.keys.current().jwks.clone(),
    )
        .into_response()
}

/// `Cache-Control` of the public documents: as long as a pending key waits
/// before signing (`TESSERA_JWKS_MAX_AGE`), so every cache sees a new key
/// first. Built once per `App`; a static value clones without touching a
/// shared reference count on the hottest path.
pub fn cache_control(config: &crate::config::Config) -> HeaderValue {
    let value: &'static str =
        Box::leak(format!("public, max-age={}", config.jwks_max_age.as_secs()).into_boxed_str());
    HeaderValue::from_static(value)
}

/// The authorization server metadata (RFC 8414 §2, OIDC Discovery §3): one
/// document for both well-known paths, naming only what is implemented.
pub fn metadata(app: &App) -> serde_json::Value {
    let issuer = &app.config.issuer;
    let algs: Vec<&str> = app.signing_algs.iter().map(|a| a.as_str()).collect();
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "authorization_endpoint": format!("{issuer}/authorize"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "revocation_endpoint": format!("{issuer}/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "grant_types_supported": SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "sid",
                             "email", "email_verified", "name", "picture"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "authorization_response_iss_parameter_supported": true,
    })
}

/// OpenID Connect Discovery 1.0 §4.
#[utoipa::path(
    get,
    path = "/.well-known/openid-configuration",
    tag = "openid",
    summary = "OpenID Provider metadata",
    responses(
        (status = 200, description = "The metadata (the same document as RFC 8414's)", body = ServerMetadata),
        PublicLimits,
    ),
)]
async fn openid_configuration(State(app): State<AppState>) -> Response {
    discovery(&app)
}

/// RFC 8414 §3.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = "oauth",
    summary = "Authorization server metadata (RFC 8414)",
    responses(
        (status = 200, description = "The metadata", body = ServerMetadata),
        PublicLimits,
    ),
)]
async fn oauth_authorization_server(State(app): State<AppState>) -> Response {
    discovery(&app)
}

fn discovery(app: &App) -> Response {
    let mut response = axum::Json(metadata(app)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, app.public_cache_control.clone());
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Process up and database answering.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process is up and the database answers",
    responses(
        (status = 200, description = "`ok`", body = String),
        (status = 503, description = "The database does not answer", body = String),
    ),
)]
pub(super) async fn healthz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database not answering");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
    }
}

/// Also every signing key loaded and, when an upstream is configured, its
/// discovery document read (retried in the background until it is).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: database, signing keys and upstream discovery",
    responses(
        (status = 200, description = "`ready`", body = String),
        (status = 503, description = "What is not ready yet", body = String),
    ),
)]
async fn readyz(State(app): State<AppState>) -> Response {
    if app.store.ping().await.is_err() {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response();
    }
    if !app.keys.current().has_all_signers(&app.signing_algs) {
        return (StatusCode::SERVICE_UNAVAILABLE, "signing keys not loaded\n").into_response();
    }
    if app.upstream.as_ref().is_some_and(|u| !u.is_ready()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream discovery not done yet\n",
        )
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}
