//! Prometheus metrics, served at `GET /metrics` on the admin listener.
//! Owned by the `App` (no global registry), so tests can run several
//! servers in one process.

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
    grant: String,
    alg: String,
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
    endpoints: std::sync::RwLock<std::collections::HashMap<String, &'static str>>,
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

impl Metrics {
    /// The `'static` label of a route template.
    pub fn intern(&self, endpoint: &str) -> &'static str {
        if let Ok(map) = self.endpoints.read() {
            if let Some(e) = map.get(endpoint) {
                return e;
            }
        }
        let Ok(mut map) = self.endpoints.write() else {
            return "other";
        };
        if map.len() >= MAX_ENDPOINTS {
            return "other";
        }
        let leaked: &'static str = Box::leak(endpoint.to_owned().into_boxed_str());
        map.insert(endpoint.to_owned(), leaked);
        leaked
    }

    pub fn request(&self, endpoint: &'static str, method: &'static str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels { endpoint })
            .observe(seconds);
    }

    pub fn token_issued(&self, grant: &str, alg: &str) {
        self.tokens
            .get_or_create(&TokenLabels {
                grant: grant.to_owned(),
                alg: alg.to_owned(),
            })
            .inc();
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
