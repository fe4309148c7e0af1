//! Prometheus metrics, served at `GET /metrics` on the admin listener.
//! Owned by the `App` (no global registry), so tests can run several
//! servers in one process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
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

type HistogramFamily = Family<EndpointLabels, Latency, fn() -> Latency>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    tokens: Family<TokenLabels, Counter>,
    client_auth_failures: Counter,
    rate_limited: Counter,
    pool: Family<PoolLabels, Gauge>,
    /// Read on every request without a lock; replaced (under `adding`)
    /// when a route is first seen.
    endpoints: ArcSwap<Vec<&'static Endpoint>>,
    /// Serializes the rare additions to `endpoints` and to the endpoints'
    /// counters.
    adding: Mutex<()>,
    /// Past `MAX_ENDPOINTS` (made when first needed: no empty series).
    other: std::sync::OnceLock<&'static Endpoint>,
}

/// One endpoint's metrics, resolved once: counting a request is a short
/// scan and two updates, with no label hashing or allocation.
pub struct Endpoint {
    name: &'static str,
    latency: Latency,
    /// The request counters of this endpoint by (method, status): a
    /// handful each; read without a lock, replaced when one is added.
    counters: ArcSwap<Vec<(&'static str, u16, Counter)>>,
}

impl Endpoint {
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Upper bounds of the latency buckets, in seconds: 0.25 ms … ~4 s.
const LATENCY_BOUNDS: [f64; 15] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096,
];

/// A request-latency histogram observed with two relaxed atomic adds.
/// prometheus-client's `Histogram` takes a write lock per observation,
/// which every worker thread contends for on every request. The count is
/// the sum of the buckets, so a scrape always sees `_count` equal to the
/// `+Inf` bucket; `_sum` may lag an observation in flight.
#[derive(Clone, Debug, Default)]
pub struct Latency(Arc<LatencyCells>);

#[derive(Debug, Default)]
struct LatencyCells {
    /// Per bucket (not cumulative), the last one past every bound (`+Inf`).
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Latency {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(cell) = self.0.buckets.get(bucket) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.0.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// (sum in seconds, count, per-bucket counts with their upper bounds).
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let counts: Vec<u64> = self
            .0
            .buckets
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let bounds = LATENCY_BOUNDS.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds.zip(counts.iter().copied()).collect();
        let sum = Duration::from_nanos(self.0.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
        (sum, counts.iter().sum(), buckets)
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(Latency::default);
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
            adding: Mutex::new(()),
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
        counters: ArcSwap::default(),
    }))
}

impl Metrics {
    /// The `'static` label of a route template.
    /// The metrics of a route template (or of `unmatched`).
    pub fn endpoint(&self, endpoint: &str) -> &'static Endpoint {
        if let Some(e) = self.endpoints.load().iter().find(|e| e.name == endpoint) {
            return e;
        }
        let other = || {
            *self
                .other
                .get_or_init(|| leak_endpoint("other", &self.latency))
        };
        let Ok(_adding) = self.adding.lock() else {
            return other();
        };
        let all = self.endpoints.load_full();
        if let Some(e) = all.iter().find(|e| e.name == endpoint) {
            return e;
        }
        if all.len() >= MAX_ENDPOINTS {
            return other();
        }
        let e = leak_endpoint(endpoint, &self.latency);
        let mut grown = Vec::clone(&all);
        grown.push(e);
        self.endpoints.store(Arc::new(grown));
        e
    }

    pub fn request(
        &self,
        endpoint: &Endpoint,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        endpoint.latency.observe(elapsed);
        let counters = endpoint.counters.load();
        if let Some((.., c)) = counters
            .iter()
            .find(|(m, s, _)| *s == status && *m == method)
        {
            c.inc();
            return;
        }
        drop(counters);
        let counter = self
            .requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.name,
                method,
                status,
            })
            .clone();
        counter.inc();
        if let Ok(_adding) = self.adding.lock() {
            let all = endpoint.counters.load_full();
            if !all.iter().any(|(m, s, _)| *s == status && *m == method) {
                let mut grown = Vec::clone(&all);
                grown.push((method, status, counter));
                endpoint.counters.store(Arc::new(grown));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition of one endpoint's histogram: cumulative buckets,
    /// `_count` equal to `+Inf`, `_sum` in seconds.
    #[test]
    fn latency_is_exposed_as_a_cumulative_histogram() {
        let metrics = Metrics::default();
        let jwks = metrics.endpoint("/jwks");
        for (method, status, elapsed) in [
            ("GET", 200, Duration::from_micros(100)),
            ("GET", 200, Duration::from_micros(250)),
            ("GET", 304, Duration::from_millis(3)),
            ("POST", 405, Duration::from_secs(10)),
        ] {
            metrics.request(jwks, method, status, elapsed);
        }
        let text = metrics.render(4, 3);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        let series = r#"tessera_http_request_duration_seconds"#;
        let labels = r#"endpoint="/jwks""#;
        assert_eq!(
            line(&format!("{series}_count{{{labels}}}")).as_deref(),
            Some("4"),
            "{text}"
        );
        let sum: Option<f64> =
            line(&format!("{series}_sum{{{labels}}}")).and_then(|v| v.parse().ok());
        assert!(
            sum.is_some_and(|sum| (sum - 10.003_35).abs() < 1e-9),
            "{sum:?}"
        );
        for (le, count) in [
            ("0.00025", "2"),
            ("0.002", "2"),
            ("0.004", "3"),
            ("4.096", "3"),
            ("+Inf", "4"),
        ] {
            assert_eq!(
                line(&format!(r#"{series}_bucket{{le="{le}",{labels}}}"#)).as_deref(),
                Some(count),
                "le={le}"
            );
        }
        assert_eq!(
            line(r#"tessera_http_requests_total{endpoint="/jwks",method="GET",status="200"}"#)
                .as_deref(),
            Some("2")
        );
    }
}
