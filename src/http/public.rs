//! The public listener: the OAuth 2.1 / OpenID Connect endpoints.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::cors;
use crate::app::{App, AppState};
use crate::error::{OAuthError, no_store};
use crate::oauth::form::{self, Params};
use crate::oauth::token_endpoint::{self, SUPPORTED_GRANTS};

/// RFC 6749 §3.1: bodies past this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(app: AppState) -> Router {
    let cache_control = public_cache_control(&app);
    let documents = Router::new()
        .route(
            "/jwks",
            get(move |State(app): State<AppState>| jwks(app, cache_control.clone()))
                .options(cors::preflight),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery).options(cors::preflight),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery).options(cors::preflight),
        )
        .layer(cors::public_documents());
    let cors_origins = Arc::new(cors::OriginCache::default());
    let api = Router::new()
        .route("/token", post(token))
        .layer(cors::registered_origins(app.clone(), cors_origins));
    Router::new()
        .merge(documents)
        .merge(api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            super::middleware::observe,
        ))
        .with_state(app)
}

/// RFC 6749 §3.2, §5: the token endpoint.
async fn token(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    // (1) RFC 6749 §3.2: "application/x-www-form-urlencoded" in the body.
    if !form::is_form(headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes)) {
        return OAuthError::invalid_request("the body must be application/x-www-form-urlencoded")
            .into_response();
    }
    let params = match Params::parse(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match token_endpoint::exchange(&app, &params, authorization).await {
        Ok(response) => {
            let mut response = axum::Json(response).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => e.into_response(),
    }
}

/// RFC 7517 §5: the JWK Set, serialized once per key change and served from memory.
async fn jwks(app: AppState, cache_control: HeaderValue) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, cache_control),
        ],
        app.keys.current().jwks.clone(),
    )
        .into_response()
}

/// `Cache-Control` of the public documents: as long as a pending key waits
/// before signing (`TESSERA_JWKS_MAX_AGE`), so every cache sees a new key first.
fn public_cache_control(app: &App) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "public, max-age={}",
        app.config.jwks_max_age.as_secs()
    ))
    .unwrap_or(HeaderValue::from_static("no-cache"))
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
        "grant_types_supported": SUPPORTED_GRANTS.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "authorization_response_iss_parameter_supported": true,
        "tls_client_certificate_bound_access_tokens": false,
    })
}

async fn discovery(State(app): State<AppState>) -> Response {
    let mut response = axum::Json(metadata(&app)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, public_cache_control(&app));
    response
}

/// Process up and database answering.
async fn healthz(State(app): State<AppState>) -> Response {
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
