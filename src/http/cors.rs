//! CORS (PRODUCT.md): `/jwks` and discovery allow any origin; `/token`
//! allows the origins of registered redirect URIs. Never with credentials.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::AppState;

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
    async fn allows(&self, app: &AppState, origin: &str) -> bool {
        if let Ok(cached) = self.cached.lock() {
            if let Some((at, origins)) = cached.as_ref() {
                if at.elapsed() < ORIGIN_TTL {
                    return origins.iter().any(|o| o == origin);
                }
            }
        }
        let Ok(origins) = app.store.redirect_origins().await else {
            return false;
        };
        let allowed = origins.iter().any(|o| o == origin);
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some((Instant::now(), origins));
        }
        allowed
    }
}

/// Browser apps (SPAs) registered with a redirect URI on their origin may
/// call these endpoints.
pub fn registered_origins(app: AppState, cache: std::sync::Arc<OriginCache>) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::async_predicate(
            move |origin: HeaderValue, _parts| {
                let app = app.clone();
                let cache = cache.clone();
                async move {
                    match origin.to_str() {
                        Ok(origin) => cache.allows(&app, origin).await,
                        Err(_) => false,
                    }
                }
            },
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600))
}
