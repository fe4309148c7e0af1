//! Cross-cutting layers: request metrics and logs (path and status only:
//! query strings carry codes and tokens, so they are never logged), and
//! security headers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::response::Response;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::app::AppState;

/// Every request goes through this one layer: the header limits, then on
/// the public listener `TESSERA_RATE_LIMIT_PER_IP`, measured and logged
/// like every answer. A hand-written tower layer rather than `from_fn`,
/// which clones the rest of the stack into a `Next` and boxes a future on
/// every request.
#[derive(Clone)]
pub struct Edge {
    app: AppState,
    public: bool,
}

impl Edge {
    /// The public listener's edge (with the per-address limit).
    pub fn public(app: AppState) -> Self {
        Self { app, public: true }
    }

    /// The admin listener's edge.
    pub fn admin(app: AppState) -> Self {
        Self { app, public: false }
    }
}

impl<S> Layer<S> for Edge {
    type Service = EdgeService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EdgeService {
            inner,
            edge: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct EdgeService<S> {
    inner: S,
    edge: Edge,
}

impl<S> Service<Request> for EdgeService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let app = &self.edge.app;
        let observed = Observed::start(app, &request);
        let public = self.edge.public;
        // A browser's request to a CORS path: kept in case the answer is
        // made before its handler runs (no `Origin`, nothing to keep).
        let cors = if public {
            request.headers().get(header::ORIGIN).and_then(|origin| {
                crate::http::cors::Rule::of(request.uri().path()).map(|rule| (rule, origin.clone()))
            })
        } else {
            None
        };
        let refused = too_many_headers(&request)
            .or_else(|| public.then(|| limit_per_ip(app, &request)).flatten());
        let state = match refused {
            Some(answer) => State::Answered {
                answer: Some(answer),
            },
            None => State::Inner {
                future: self.inner.call(request),
            },
        };
        EdgeFuture {
            state,
            app: app.clone(),
            observed: Some(observed),
            cors,
        }
    }
}

pin_project! {
    /// The answer of the rest of the stack (or the edge's own refusal),
    /// given its CORS headers when nothing else did, and measured.
    pub struct EdgeFuture<F> {
        #[pin]
        state: State<F>,
        app: AppState,
        observed: Option<Observed>,
        cors: Option<(crate::http::cors::Rule, HeaderValue)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Inner { #[pin] future: F },
        Answered { answer: Option<Response> },
        // Rare (a refusal to a browser on a registered-origin path): boxed.
        Cors { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = loop {
            let mut response = match this.state.as_mut().project() {
                StateProj::Inner { future } => match future.poll(cx) {
                    Poll::Ready(Ok(response)) => response,
                    Poll::Ready(Err(never)) => match never {},
                    Poll::Pending => return Poll::Pending,
                },
                StateProj::Answered { answer } => answer.take().unwrap_or_else(|| {
                    // Polled again after it answered: a caller's bug,
                    // answered as a server error rather than a panic.
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }),
                StateProj::Cors { future } => match future.as_mut().poll(cx) {
                    Poll::Ready(response) => break response,
                    Poll::Pending => return Poll::Pending,
                },
            };
            match this.cors.take() {
                Some((rule, origin)) if crate::http::cors::missing(&response) => match rule {
                    crate::http::cors::Rule::Anyone => {
                        response.headers_mut().insert(
                            header::ACCESS_CONTROL_ALLOW_ORIGIN,
                            HeaderValue::from_static("*"),
                        );
                        break response;
                    }
                    crate::http::cors::Rule::Registered => {
                        let future = crate::http::cors::refusal(this.app.clone(), origin, response);
                        this.state.set(State::Cors {
                            future: Box::pin(future),
                        });
                    }
                },
                _ => break response,
            }
        };
        Poll::Ready(Ok(match this.observed.take() {
            Some(observed) => observed.finish(this.app, response),
            None => response,
        }))
    }
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
        app.metrics
            .request(self.endpoint, self.method, status.as_u16(), elapsed);
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
fn limit_per_ip(app: &crate::app::App, request: &Request) -> Option<Response> {
    if app.per_ip.is_off() {
        return None;
    }
    let ip = client_ip(app, request.headers(), request.extensions())?;
    let path = request.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return None;
    }
    let wait = app.per_ip.take(&ip, std::time::Instant::now()).err()?;
    app.metrics.rate_limited();
    Some(
        crate::error::OAuthError {
            retry_after: Some(wait),
            ..crate::error::OAuthError::new(
                crate::error::ErrorCode::TemporarilyUnavailable,
                "too many requests from this address; retry later",
            )
        }
        .into_response(),
    )
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
