//! Cross-cutting layers: request metrics and logs (path and status only:
//! query strings carry codes and tokens, so they are never logged), and
//! security headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

pub async fn observe(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    // Resolved before the request moves on: a `'static` label, no clone.
    let endpoint = app.metrics.intern(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let method = crate::metrics::method_label(request.method().as_str());
    let mut response = next.run(request).await;
    let status = response.status();
    let elapsed = start.elapsed();
    app.metrics
        .request(endpoint, method, status.as_u16(), elapsed.as_secs_f64());
    tracing::debug!(
        method,
        endpoint,
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
