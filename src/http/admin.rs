//! The admin listener: client registration (RFC 7591 metadata) and users
//! (list, show, disable, end sessions, withdraw consents) behind
//! `Authorization: Bearer $TESSERA_ADMIN_TOKEN`, and the unauthenticated
//! operational endpoints (`/metrics`, `/healthz`) of an internal listener.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{AdminLimits, ClientList, EventList, OAuthErrorBody, UserList};
use crate::app::AppState;
use crate::audit::{Actor, By, Event, EventType};
use crate::oauth::client::{MetadataError, MetadataRequest};
use crate::oauth::clients::{self, ClientOpError, DEFAULT_PAGE};
use crate::oauth::users::{self, UserOpError};

pub const BODY_LIMIT: usize = 1024 * 1024;

/// The admin listener's routes and their OpenAPI description (without
/// `/openapi.json`'s content, which `http::routers` adds once both
/// listeners are described).
pub fn router(app: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let guarded = OpenApiRouter::new()
        .routes(routes!(create_client, list_clients))
        .routes(routes!(show_client, replace_client, delete_client))
        .routes(routes!(rotate_secret))
        .routes(routes!(list_users))
        .routes(routes!(show_user))
        .routes(routes!(disable_user))
        .routes(routes!(enable_user))
        .routes(routes!(end_sessions))
        .routes(routes!(withdraw_consent))
        .routes(routes!(list_events))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            require_admin,
        ));
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(super::openapi::openapi_json))
        // The same check as the public listener's (documented there).
        .route("/healthz", get(super::public::healthz))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(super::middleware::Edge::admin(app.clone()))
        .with_state(app)
        .split_for_parts()
}

/// A query string; one that does not parse (a repeated parameter, say) is
/// refused with the admin API's JSON error, not axum's text.
struct AdminQuery<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for AdminQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(q)) => Ok(Self(q)),
            Err(e) => Err(error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &e.body_text(),
            )),
        }
    }
}

/// Changes made through this API are recorded as the admin API's.
fn by(app: &AppState) -> By<'_> {
    By {
        audit: &app.audit,
        actor: Actor::AdminApi,
    }
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// RFC 6750 §3: a missing or wrong token is 401 with a Bearer challenge.
/// An unset admin token refuses everything. The comparison is constant-time.
async fn require_admin(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let allowed = match (&app.config.admin_token, presented) {
        (Some(expected), Some(token)) => expected.ct_eq(token),
        _ => false,
    };
    if !allowed {
        let ip = super::middleware::client_ip(&app, request.headers(), request.extensions());
        // Failed attempts per address are limited (the right token always
        // gets in): past the limit, 429 and no event for each attempt.
        if let Some(ip) = ip {
            if let Err(wait) = app.admin_failures.take(&ip, std::time::Instant::now()) {
                app.metrics.rate_limited();
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "temporarily_unavailable",
                    "too many failed authentications from this address; retry later",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                return response;
            }
        }
        let mut event = Event::new(EventType::AdminAuthFailed, app.now())
            .with("method", request.method().as_str())
            .with("path", request.uri().path())
            .with("token_presented", presented.is_some());
        if let Some(ip) = ip {
            event = event.with("ip", ip.to_string());
        }
        app.audit.record(event);
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a valid admin bearer token is required",
        );
        let challenge = if presented.is_some() {
            "Bearer realm=\"tessera-admin\", error=\"invalid_token\""
        } else {
            "Bearer realm=\"tessera-admin\""
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return response;
    }
    next.run(request).await
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin resource")
}

fn op_error(e: ClientOpError) -> Response {
    match e {
        ClientOpError::Metadata(m) => error(StatusCode::BAD_REQUEST, m.code(), &m.to_string()),
        ClientOpError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "no such client"),
        ClientOpError::IdMismatch => error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            &e.to_string(),
        ),
        ClientOpError::BadCursor => {
            error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string())
        }
        ClientOpError::Store(e) => crate::error::OAuthError::internal(e).into_response(),
        ClientOpError::Other(e) => crate::error::OAuthError::internal(e).into_response(),
    }
}

/// A client view that may carry a fresh secret: never cached.
fn with_secret(status: StatusCode, view: clients::ClientView) -> Response {
    let mut response = (status, axum::Json(view)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The body as RFC 7591 metadata; malformed JSON is `invalid_client_metadata`.
fn metadata(body: &Bytes) -> Result<MetadataRequest, ClientOpError> {
    serde_json::from_slice(body).map_err(|e| {
        ClientOpError::Metadata(MetadataError::InvalidClientMetadata(format!(
            "the body is not valid client metadata JSON: {e}"
        )))
    })
}

/// RFC 7591 §3.1: register a client; 201 with the secret shown this once.
#[utoipa::path(
    post,
    path = "/admin/clients",
    tag = "admin",
    summary = "Register a client (RFC 7591 metadata)",
    request_body(content = crate::oauth::client::MetadataRequest, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The client, with `client_secret` (shown this once) when confidential",
            body = crate::oauth::clients::ClientView),
        (status = 400, description = "`invalid_client_metadata` or `invalid_redirect_uri`", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn create_client(State(app): State<AppState>, body: Bytes) -> Response {
    let result = async {
        let request = metadata(&body)?;
        clients::create(
            app.store.as_ref(),
            by(&app),
            request,
            &app.signing_algs,
            app.now(),
        )
        .await
    }
    .await;
    match result {
        Ok(view) => with_secret(StatusCode::CREATED, view),
        Err(e) => op_error(e),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// From 1 to 200; 50 when omitted.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/admin/clients",
    tag = "admin",
    summary = "A page of clients (never with secrets)",
    params(ListQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The page and the next page's cursor", body = ClientList),
        (status = 400, description = "`invalid_request`: bad `limit` or `cursor`", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn list_clients(
    State(app): State<AppState>,
    AdminQuery(q): AdminQuery<ListQuery>,
) -> Response {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=clients::MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "limit must be a whole number from 1 to 200",
                );
            }
        },
    };
    match clients::list(
        app.store.as_ref(),
        q.cursor.as_deref().filter(|c| !c.is_empty()),
        limit,
    )
    .await
    {
        Ok((page, next)) => {
            axum::Json(json!({"clients": page, "next_cursor": next})).into_response()
        }
        Err(e) => op_error(e),
    }
}

#[utoipa::path(
    get,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    summary = "One client",
    params(("client_id" = String, Path, description = "The client id (22 base64url characters)")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The client (without secret)", body = crate::oauth::clients::ClientView),
        (status = 404, description = "No such client", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn show_client(State(app): State<AppState>, Path(client_id): Path<String>) -> Response {
    match app.store.get_client(&client_id).await {
        Ok(Some(record)) => axum::Json(clients::ClientView::new(&record, None)).into_response(),
        Ok(None) => op_error(ClientOpError::NotFound),
        Err(e) => op_error(e.into()),
    }
}

/// Full replace: omitted fields take their defaults.
#[utoipa::path(
    put,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    summary = "Replace a client's metadata (omitted fields take their defaults)",
    params(("client_id" = String, Path, description = "The client id (22 base64url characters)")),
    request_body(content = crate::oauth::client::MetadataRequest, content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The new metadata, with a new `client_secret` when the client becomes confidential",
            body = crate::oauth::clients::ClientView),
        (status = 400, description = "`invalid_client_metadata` (a body `client_id` that differs from the path included) \
            or `invalid_redirect_uri`", body = OAuthErrorBody),
        (status = 404, description = "No such client", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn replace_client(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let request = metadata(&body)?;
        clients::replace(
            app.store.as_ref(),
            by(&app),
            &client_id,
            request,
            &app.signing_algs,
            app.now(),
        )
        .await
    }
    .await;
    app.clients.forget(&client_id);
    match result {
        Ok(view) => with_secret(StatusCode::OK, view),
        Err(e) => op_error(e),
    }
}

#[utoipa::path(
    delete,
    path = "/admin/clients/{client_id}",
    tag = "admin",
    summary = "Delete a client and everything issued to it",
    params(("client_id" = String, Path, description = "The client id (22 base64url characters)")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such client", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn delete_client(State(app): State<AppState>, Path(client_id): Path<String>) -> Response {
    let result = clients::delete(app.store.as_ref(), by(&app), &client_id, app.now()).await;
    app.clients.forget(&client_id);
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => op_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/admin/clients/{client_id}/secret",
    tag = "admin",
    summary = "Rotate a confidential client's secret (the old one stops working at once)",
    params(("client_id" = String, Path, description = "The client id (22 base64url characters)")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The client and its new `client_secret`, shown this once",
            body = crate::oauth::clients::ClientView),
        (status = 400, description = "`invalid_client_metadata`: a public client has no secret", body = OAuthErrorBody),
        (status = 404, description = "No such client", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn rotate_secret(State(app): State<AppState>, Path(client_id): Path<String>) -> Response {
    let result = clients::rotate_secret(app.store.as_ref(), by(&app), &client_id, app.now()).await;
    app.clients.forget(&client_id);
    match result {
        Ok(view) => with_secret(StatusCode::OK, view),
        Err(e) => op_error(e),
    }
}

fn user_error(e: UserOpError) -> Response {
    match e {
        UserOpError::NotFound => error(StatusCode::NOT_FOUND, "not_found", "no such user"),
        UserOpError::NoConsent => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "this user has not consented to this client",
        ),
        UserOpError::BadCursor => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
        UserOpError::Store(e) => crate::error::OAuthError::from(e).into_response(),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UserQuery {
    /// Only the user with this address (case ignored).
    email: Option<String>,
    /// From 1 to 200; 50 when omitted.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// `GET /admin/users?email=&limit=&cursor=`
#[utoipa::path(
    get,
    path = "/admin/users",
    tag = "admin",
    summary = "A page of users, by `sub`",
    params(UserQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The page and the next page's cursor", body = UserList),
        (status = 400, description = "`invalid_request`: bad `limit` or `cursor`", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn list_users(State(app): State<AppState>, AdminQuery(q): AdminQuery<UserQuery>) -> Response {
    let limit = match q.limit.as_deref() {
        None => users::DEFAULT_PAGE,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=users::MAX_PAGE).contains(&n) => n,
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "limit must be a whole number from 1 to 200",
                );
            }
        },
    };
    let email = q.email.as_deref().filter(|e| !e.is_empty());
    let cursor = q.cursor.as_deref().filter(|c| !c.is_empty());
    match users::list(app.store.as_ref(), email, cursor, limit).await {
        Ok((page, next)) => axum::Json(json!({"users": page, "next_cursor": next})).into_response(),
        Err(e) => user_error(e),
    }
}

#[utoipa::path(
    get,
    path = "/admin/users/{sub}",
    tag = "admin",
    summary = "A user with upstream links, live sessions, consents and refresh-token families",
    params(("sub" = String, Path, description = "The user's Tessera subject")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The user", body = crate::store::UserDetails),
        (status = 404, description = "No such user", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn show_user(State(app): State<AppState>, Path(sub): Path<String>) -> Response {
    match app.store.user_details(&sub, app.now()).await {
        Ok(Some(details)) => axum::Json(details).into_response(),
        Ok(None) => user_error(UserOpError::NotFound),
        Err(e) => user_error(e.into()),
    }
}

#[utoipa::path(
    post,
    path = "/admin/users/{sub}/disable",
    tag = "admin",
    summary = "Disable a user: sessions end, refresh tokens are revoked, sign-in is refused",
    params(("sub" = String, Path, description = "The user's Tessera subject")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The user", body = crate::store::UserSummary),
        (status = 404, description = "No such user", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn disable_user(State(app): State<AppState>, Path(sub): Path<String>) -> Response {
    match users::set_disabled(app.store.as_ref(), by(&app), &sub, true, app.now()).await {
        Ok(user) => {
            app.logouts_queued.notify_one();
            axum::Json(user).into_response()
        }
        Err(e) => user_error(e),
    }
}

#[utoipa::path(
    post,
    path = "/admin/users/{sub}/enable",
    tag = "admin",
    summary = "Enable a disabled user",
    params(("sub" = String, Path, description = "The user's Tessera subject")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The user", body = crate::store::UserSummary),
        (status = 404, description = "No such user", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn enable_user(State(app): State<AppState>, Path(sub): Path<String>) -> Response {
    match users::set_disabled(app.store.as_ref(), by(&app), &sub, false, app.now()).await {
        Ok(user) => axum::Json(user).into_response(),
        Err(e) => user_error(e),
    }
}

#[utoipa::path(
    delete,
    path = "/admin/users/{sub}/sessions",
    tag = "admin",
    summary = "End every browser session of a user (back-channel logout is sent)",
    params(("sub" = String, Path, description = "The user's Tessera subject")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such user", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn end_sessions(State(app): State<AppState>, Path(sub): Path<String>) -> Response {
    match users::end_sessions(app.store.as_ref(), by(&app), &sub, app.now()).await {
        Ok(_) => {
            app.logouts_queued.notify_one();
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => user_error(e),
    }
}

#[utoipa::path(
    delete,
    path = "/admin/users/{sub}/consents/{client_id}",
    tag = "admin",
    summary = "Withdraw a user's consent to a client and revoke what it was granted",
    params(("sub" = String, Path, description = "The user's Tessera subject"), ("client_id" = String, Path, description = "The client id (22 base64url characters)")),
    security(("admin_token" = [])),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 404, description = "No such user, or no consent to this client", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn withdraw_consent(
    State(app): State<AppState>,
    Path((sub, client_id)): Path<(String, String)>,
) -> Response {
    let now = app.now();
    match users::withdraw_consent(
        app.store.as_ref(),
        by(&app),
        Some(&app),
        &sub,
        &client_id,
        now,
    )
    .await
    {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => user_error(e),
    }
}

/// `GET /admin/events?type=&client_id=&sub=&since=&cursor=&limit=`: oldest
/// first. What this instance recorded is written before it answers.
#[utoipa::path(
    get,
    path = "/admin/events",
    tag = "admin",
    summary = "Audit events, oldest first",
    params(crate::audit::ListQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The page and the next page's cursor", body = EventList),
        (status = 400, description = "`invalid_request`: bad `type`, `since`, `limit` or `cursor`", body = OAuthErrorBody),
        AdminLimits,
    ),
)]
async fn list_events(
    State(app): State<AppState>,
    AdminQuery(q): AdminQuery<crate::audit::ListQuery>,
) -> Response {
    app.audit.flush().await;
    match crate::audit::list(app.store.as_ref(), &q).await {
        Ok((page, next)) => {
            axum::Json(json!({"events": page, "next_cursor": next})).into_response()
        }
        Err(crate::audit::ListError::Store(e)) => crate::error::OAuthError::from(e).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus / OpenMetrics text",
    responses(
        (status = 200, description = "The metrics", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    ),
)]
async fn metrics(State(app): State<AppState>) -> Response {
    let (size, idle) = app.store.pool_stats();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(size, idle),
    )
        .into_response()
}
