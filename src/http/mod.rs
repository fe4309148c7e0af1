//! HTTP: routes, extractors and response shaping (axum only: no SQL, no
//! crypto). `public` is the OAuth/OIDC surface, `admin` the admin API.

pub mod admin;
mod browser;
pub mod cors;
mod middleware;
pub use middleware::MAX_HEADER_BYTES;
pub mod openapi;
pub mod public;

use axum::Router;

/// The public and the admin listener's routers; the admin one serves the
/// OpenAPI document of both (`GET /openapi.json`), built once here.
/// `admin_addr` is where the admin listener is bound.
pub fn routers(app: crate::app::AppState, admin_addr: std::net::SocketAddr) -> (Router, Router) {
    let (public, public_api) = public::router(app.clone());
    let (admin, admin_api) = admin::router(app.clone());
    let document = openapi::document(
        public_api,
        admin_api,
        &app.config.issuer,
        &format!("http://{admin_addr}"),
    );
    (
        public,
        admin.layer(axum::Extension(openapi::Document(document))),
    )
}
