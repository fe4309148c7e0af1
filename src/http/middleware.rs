//! Cross-cutting layers: request metrics and logs (path and status only:
//! query strings carry codes and tokens, so they are never logged), and
//! security headers.

use std::time::Instant;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;

use crate::app::AppState;

/// Every request to the public listener goes through this one layer (one
/// boxed future per request, not three): the header limits, then
/// `TESSERA_RATE_LIMIT_PER_IP`, measured and logged like every answer.
pub async fn public_edge(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let observed = Observed::start(&app, &request);
    let response = match too_many_headers(&request) {
        Some(refused) => refused,
        None => limit_per_ip(&app, request, next).await,
    };
    observed.finish(&app, response)
}

/// The admin listener's: the header limits, measured and logged.
pub async fn admin_edge(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let observed = Observed::start(&app, &request);
    let response = match too_many_headers(&request) {
        Some(refused) => refused,
        None => next.run(request).await,
    };
    observed.finish(&app, response)
}

/// Request metrics and logs: path and status only (query strings carry
/// codes and tokens, so they are never logged).
struct Observed {
    start: Instant,
    endpoint: &'static crate::metrics::Endpoint,
    method: &'static str,
}

impl Observed {
    fn start(app: &crate::app::App, request: &Request) -> Self {
        Self {
            start: Instant::now(),
            // Resolved before the request moves on: the endpoint's metrics.
            endpoint: app.metrics.endpoint(
                request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str),
            ),
            method: crate::metrics::method_label(request.method().as_str()),
        }
    }

    fn finish(self, app: &crate::app::App, mut response: Response) -> Response {
        let status = response.status();
        let elapsed = self.start.elapsed();
        app.metrics.request(
            self.endpoint,
            self.method,
            status.as_u16(),
            elapsed.as_secs_f64(),
        );
        tracing::debug!(
            method = self.method,
            endpoint = self.endpoint.name(),
            status = status.as_u16(),
            micros = elapsed.as_micros() as u64,
            "request"
        );
        response.headers_mut().insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// The source address of a request (`ratelimit::client_ip`: the peer, or
/// behind `TESSERA_TRUSTED_PROXIES` the forwarded one), for the handlers
/// that count or record it. Worked out when a handler asks, not for every
/// request.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_ip(app, &parts.headers, &parts.extensions)))
    }
}

/// The source address of a request, behind `TESSERA_TRUSTED_PROXIES`.
pub fn client_ip(
    app: &crate::app::App,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Option<IpAddr> {
    let peer = extensions.get::<ConnectInfo<SocketAddr>>()?.0;
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    Some(crate::ratelimit::client_ip(
        peer,
        forwarded,
        &app.config.trusted_proxies,
    ))
}

/// `TESSERA_RATE_LIMIT_PER_IP` on the public listener (health checks
/// excepted): over it, 429 with `Retry-After`.
async fn limit_per_ip(app: &crate::app::App, request: Request, next: Next) -> Response {
    if app.per_ip.is_off() {
        return next.run(request).await;
    }
    let Some(ip) = client_ip(app, request.headers(), request.extensions()) else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path != "/healthz" && path != "/readyz" {
        if let Err(wait) = app.per_ip.take(&ip, std::time::Instant::now()) {
            app.metrics.rate_limited();
            return crate::error::OAuthError {
                retry_after: Some(wait),
                ..crate::error::OAuthError::new(
                    crate::error::ErrorCode::TemporarilyUnavailable,
                    "too many requests from this address; retry later",
                )
            }
            .into_response();
        }
    }
    next.run(request).await
}

/// Header limits: more than `MAX_HEADERS` headers or `MAX_HEADER_BYTES` of
/// them is refused with 431 before any handler runs.
pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

fn too_many_headers(request: &Request) -> Option<Response> {
    let headers = request.headers();
    if headers.len() > MAX_HEADERS {
        return Some(headers_too_large());
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (bytes > MAX_HEADER_BYTES).then(headers_too_large)
}

fn headers_too_large() -> Response {
    (
        axum::http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request headers too large\n",
    )
        .into_response()
}
