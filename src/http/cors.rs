//! CORS (PRODUCT.md): `/jwks` and discovery allow any origin; `/token`,
//! `/revoke` and `/userinfo` allow the origins of registered redirect URIs.
//! Never with credentials.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::{App, AppState};
use crate::store::Store;

/// Anyone may read public keys and metadata (`/jwks` and discovery set
/// `Access-Control-Allow-Origin: *` themselves: the answer does not depend
/// on the origin, so no `Vary`); this answers their rare preflight.
pub async fn preflight() -> impl IntoResponse {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET"),
            (header::ACCESS_CONTROL_ALLOW_HEADERS, "*"),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
}

/// The registered redirect-URI origins, re-read every few seconds.
#[derive(Default)]
pub struct OriginCache {
    cached: Mutex<Option<(Instant, Vec<String>)>>,
}

const ORIGIN_TTL: Duration = Duration::from_secs(5);

impl OriginCache {
    async fn allows(&self, store: &dyn Store, origin: &str) -> bool {
        if let Ok(cached) = self.cached.lock() {
            if let Some((at, origins)) = cached.as_ref() {
                if at.elapsed() < ORIGIN_TTL {
                    return origins.iter().any(|o| o == origin);
                }
            }
        }
        let Ok(origins) = store.redirect_origins().await else {
            return false;
        };
        let allowed = origins.iter().any(|o| o == origin);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), origins));
        }
        allowed
    }
}

/// The request's `Origin` when it is one a registered client redirects to.
async fn allowed_origin<'h>(app: &App, request: &'h HeaderMap) -> Option<&'h HeaderValue> {
    let origin = request.get(header::ORIGIN)?;
    allows(app, origin).await.then_some(origin)
}

async fn allows(app: &App, origin: &HeaderValue) -> bool {
    let Ok(text) = origin.to_str() else {
        return false;
    };
    app.cors_origins.allows(app.store.as_ref(), text).await
}

/// The answer of `/token`, `/revoke` or `/userinfo` to a browser app (an
/// SPA) on the origin of a registered redirect URI: it may read it. The
/// answer depends on `Origin`, so it says so (`Vary`) to every cache.
pub async fn registered(app: &App, request: &HeaderMap, response: Response) -> Response {
    let origin = request.get(header::ORIGIN).cloned();
    with_origin(app, origin, response).await
}

async fn with_origin(app: &App, origin: Option<HeaderValue>, mut response: Response) -> Response {
    let allowed = match origin {
        Some(origin) if allows(app, &origin).await => Some(origin),
        _ => None,
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    response
}

/// Which CORS rule a public path follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `/jwks` and the discovery documents: any origin.
    Anyone,
    /// `/token`, `/revoke`, `/userinfo`: registered origins.
    Registered,
}

impl Rule {
    pub fn of(path: &str) -> Option<Self> {
        match path {
            "/jwks"
            | "/.well-known/openid-configuration"
            | "/.well-known/oauth-authorization-server" => Some(Self::Anyone),
            "/token" | "/revoke" | "/userinfo" => Some(Self::Registered),
            _ => None,
        }
    }
}

/// Whether an answer still needs its CORS headers: those the handlers make
/// carry them (`Access-Control-Allow-Origin`, or `Vary: origin` when the
/// origin is not allowed); those made before a handler ran (413 for a body
/// too large, 431, the per-address 429) do not.
pub fn missing(response: &Response) -> bool {
    let headers = response.headers();
    !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        && !headers.contains_key(header::VARY)
}

/// The CORS headers of an answer made before its handler ran, so that a
/// browser app can read why it was refused. `Anyone` needs no lookup and
/// is added by the caller; this is the registered-origin rule.
pub async fn refusal(app: AppState, origin: HeaderValue, response: Response) -> Response {
    with_origin(&app, Some(origin), response).await
}

/// The preflight of those endpoints: methods and headers are granted only
/// to a registered origin; any other gets no CORS header and the browser
/// refuses the call.
pub async fn registered_preflight(State(app): State<AppState>, request: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let allowed = allowed_origin(&app, &request).await.cloned();
    let headers = response.headers_mut();
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "origin, access-control-request-method, access-control-request-headers",
        ),
    );
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
    }
    response
}
