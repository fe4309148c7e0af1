//! Prometheus metrics, served at `GET /metrics` on the admin listener.
//! Owned by the `App` (no global registry), so tests can run several
//! servers in one process.

use std::sync::RwLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

// Labels borrow `'static` strings so that counting a request allocates
// nothing: endpoints are route templates (a fixed set), interned once.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant: &'static str,
    alg: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

type HistogramFamily = Family<EndpointLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    tokens: Family<TokenLabels, Counter>,
    client_auth_failures: Counter,
    rate_limited: Counter,
    pool: Family<PoolLabels, Gauge>,
    endpoints: RwLock<Vec<&'static Endpoint>>,
    /// Past `MAX_ENDPOINTS` (made when first needed: no empty series).
    other: std::sync::OnceLock<&'static Endpoint>,
}

/// One endpoint's metrics, resolved once: counting a request is a short
/// scan and two updates, with no label hashing or allocation.
pub struct Endpoint {
    name: &'static str,
    latency: Histogram,
    /// The request counters of this endpoint by (method, status): a
    /// handful each.
    counters: RwLock<Vec<(&'static str, u16, Counter)>>,
}

impl Endpoint {
    pub fn name(&self) -> &'static str {
        self.name
    }
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~4 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let tokens = Family::<TokenLabels, Counter>::default();
        let client_auth_failures = Counter::default();
        let rate_limited = Counter::default();
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "http_requests",
            "HTTP requests by endpoint, method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by endpoint",
            latency.clone(),
        );
        registry.register(
            "tokens_issued",
            "Access tokens issued by grant and signing algorithm",
            tokens.clone(),
        );
        registry.register(
            "client_auth_failures",
            "Failed client authentications at the token endpoint",
            client_auth_failures.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit",
            rate_limited.clone(),
        );
        registry.register(
            "db_pool_connections",
            "Database pool connections by state",
            pool.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            tokens,
            client_auth_failures,
            rate_limited,
            pool,
            endpoints: Default::default(),
            other: Default::default(),
        }
    }
}

/// The label for an HTTP method: the standard ones, or `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD", "PATCH"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// Route templates are bounded by the router, so interning them leaks a
/// fixed, small amount of memory once; anything past the bound is `other`.
const MAX_ENDPOINTS: usize = 64;

fn leak_endpoint(name: &str, latency: &HistogramFamily) -> &'static Endpoint {
    let name: &'static str = Box::leak(name.to_owned().into_boxed_str());
    Box::leak(Box::new(Endpoint {
        name,
        latency: latency
            .get_or_create(&EndpointLabels { endpoint: name })
            .clone(),
        counters: RwLock::default(),
    }))
}

impl Metrics {
    /// The `'static` label of a route template.
    /// The metrics of a route template (or of `unmatched`).
    pub fn endpoint(&self, endpoint: &str) -> &'static Endpoint {
        if let Ok(all) = self.endpoints.read() {
            if let Some(e) = all.iter().find(|e| e.name == endpoint) {
                return e;
            }
        }
        let other = || {
            *self
                .other
                .get_or_init(|| leak_endpoint("other", &self.latency))
        };
        let Ok(mut all) = self.endpoints.write() else {
            return other();
        };
        if let Some(e) = all.iter().find(|e| e.name == endpoint) {
            return e;
        }
        if all.len() >= MAX_ENDPOINTS {
            return other();
        }
        let e = leak_endpoint(endpoint, &self.latency);
        all.push(e);
        e
    }

    pub fn request(&self, endpoint: &Endpoint, method: &'static str, status: u16, seconds: f64) {
        endpoint.latency.observe(seconds);
        if let Ok(counters) = endpoint.counters.read() {
            if let Some((.., c)) = counters
                .iter()
                .find(|(m, s, _)| *s == status && *m == method)
            {
                c.inc();
                return;
            }
        }
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.name,
                method,
                status,
            })
            .clone();
        counter.inc();
        if let Ok(mut counters) = endpoint.counters.write() {
            if !counters
                .iter()
                .any(|(m, s, _)| *s == status && *m == method)
            {
                counters.push((method, status, counter));
            }
        }
    }

    pub fn token_issued(&self, grant: &'static str, alg: &'static str) {
        self.tokens.get_or_create(&TokenLabels { grant, alg }).inc();
    }

    pub fn client_auth_failure(&self) {
        self.client_auth_failures.inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The text exposition format, with the pool gauges read now.
    pub fn render(&self, pool_size: u32, pool_idle: u32) -> String {
        for (state, n) in [
            ("open", pool_size),
            ("idle", pool_idle),
            ("in_use", pool_size.saturating_sub(pool_idle)),
        ] {
            self.pool
                .get_or_create(&PoolLabels {
                    state: state.to_owned(),
                })
                .set(i64::from(n));
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
