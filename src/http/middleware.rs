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
    let endpoint = request.extensions().get::<MatchedPath>().cloned();
    let endpoint = endpoint.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let status = response.status();
    let elapsed = start.elapsed();
    app.metrics.request(
        endpoint,
        method.as_str(),
        status.as_u16(),
        elapsed.as_secs_f64(),
    );
    tracing::debug!(%method, endpoint = endpoint, status = status.as_u16(), micros = elapsed.as_micros() as u64, "request");
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}
