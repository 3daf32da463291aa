//! Prometheus metrics of a node or the coordinator, served in the OpenMetrics text format on
//! `/metrics` (plain HTTP, its own port, loopback by default).
//!
//! - Every gRPC call, counted by service, method and status code, with a latency histogram
//!   (by [`MetricsLayer`], outermost, so refused calls count too). The code is the one in the
//!   response headers (errors are trailers-only responses); a call that fails after its
//!   headers — a stream ending in error — counts as `OK`. The methods are those of the
//!   authorization table; a call to any other path counts under `service="unknown",
//!   method="unknown"`, so that a client cannot add series by inventing paths. Each method's
//!   series are found once, so that counting a call builds no labels.
//! - State gauges read from the store at each scrape (a [`Snapshot`] the party provides):
//!   journal revision, outbox depth and age, replication lag, open incidents by SLA state,
//!   tenants and users per offer, node liveness, certificate expiry.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tower::{Layer, Service};

/// Section `[metrics]` of a node or coordinator configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Address of the plain-HTTP `/metrics` listener (keep it on loopback or a management
    /// network: it is not authenticated).
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

impl MetricsConfig {
    /// The coordinator's default: the same, on port 9465.
    pub fn coordinator() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9465)),
            ..Self::default()
        }
    }
}

/// Labels of a call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// Fully qualified gRPC service.
    pub service: String,
    /// Method.
    pub method: String,
    /// Status code name (`OK`, `NOT_FOUND`, ...).
    pub code: String,
}

/// Labels of a method.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// Fully qualified gRPC service.
    pub service: String,
    /// Method.
    pub method: String,
}

/// The offer a value is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OfferLabel {
    /// The offer id.
    pub offer: String,
}

/// The member a value is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemberLabel {
    /// The member id.
    pub member: String,
}

/// The state a value counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// The state.
    pub state: String,
}

/// Labels of an entry a follower refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RejectionLabels {
    /// The member whose journal (or, on a node, `coordinator` for its catalogue) the entry
    /// came from: a followed source, never a value the entry itself chose.
    pub member: String,
    /// Why ([`fedmesh_core::trust::Reason::label`]).
    pub reason: String,
}

/// The entries this party's followers refused (`fedmesh_replication_rejected_total`): the
/// coordinator's replication, a node's mirrors and its catalogue cache count here. Clones
/// share the counts.
#[derive(Clone, Debug, Default)]
pub struct Rejections(Family<RejectionLabels, Counter>);

impl Rejections {
    /// Logs and counts an entry from `member` refused for `rejected`.
    pub fn refuse(&self, member: &str, revision: u64, rejected: &fedmesh_core::trust::Rejected) {
        tracing::warn!(member, revision, reason = rejected.reason.label(), error = %rejected, "refused a replicated entry");
        self.0
            .get_or_create(&RejectionLabels {
                member: member.to_owned(),
                reason: rejected.reason.label().to_owned(),
            })
            .inc();
    }

    /// How many entries from `member` were refused for `reason`.
    pub fn count(&self, member: &str, reason: fedmesh_core::trust::Reason) -> u64 {
        self.0
            .get_or_create(&RejectionLabels {
                member: member.to_owned(),
                reason: reason.label().to_owned(),
            })
            .get()
    }
}

/// What a scrape reports of the party's state; unset values are not reported.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Last durable journal revision (nodes).
    pub journal_revision: Option<u64>,
    /// Requests waiting in the outbox (nodes).
    pub outbox_depth: Option<u64>,
    /// Age of the oldest waiting request, in seconds (nodes).
    pub outbox_oldest_age_seconds: Option<f64>,
    /// Per followed node: journal revisions not yet applied (coordinator).
    pub replication_lag: Vec<(String, f64)>,
    /// Registered nodes by liveness (`active`, `stale`) (coordinator).
    pub nodes: Vec<(String, f64)>,
    /// Open incidents by SLA state of their worst clock (`on_time`, `at_risk`, `breached`).
    pub open_incidents: Vec<(String, f64)>,
    /// Tenants per offer.
    pub tenants: Vec<(String, f64)>,
    /// Latest reported active users per offer.
    pub active_users: Vec<(String, f64)>,
    /// When the party's certificate expires (Unix seconds).
    pub certificate_expiry: Option<f64>,
    /// Whether the party's database accepts writes (1) or refuses them (0).
    pub store_writable: Option<f64>,
    /// How much longer than its staleness limit a node may stay silent, for the
    /// coordinator's own recent delays, in seconds (coordinator).
    pub heartbeat_allowance_seconds: Option<f64>,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The metrics of one party.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The series of one method's calls, created at its first call.
struct MethodSeries {
    service: &'static str,
    method: &'static str,
    latency: OnceLock<Histogram>,
    /// By status code, in gRPC's numbering (0 to 16).
    codes: [OnceLock<Counter>; 17],
}

impl MethodSeries {
    fn new(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            latency: OnceLock::new(),
            codes: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

/// The service and method labels of calls to a path that is no method of the contract.
const UNKNOWN: &str = "unknown";

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    latency: Family<MethodLabels, Histogram>,
    /// The known methods' series, then the unknown paths'.
    methods: Vec<MethodSeries>,
    /// `/service/method` → index in `methods`.
    paths: HashMap<String, usize>,
    journal_revision: FloatGauge,
    outbox_depth: FloatGauge,
    outbox_age: FloatGauge,
    replication_lag: Family<MemberLabel, FloatGauge>,
    nodes: Family<StateLabel, FloatGauge>,
    incidents: Family<StateLabel, FloatGauge>,
    tenants: Family<OfferLabel, FloatGauge>,
    users: Family<OfferLabel, FloatGauge>,
    cert_expiry: FloatGauge,
    store_writable: FloatGauge,
    heartbeat_allowance: FloatGauge,
    rejections: Rejections,
    snapshot: Box<dyn Fn() -> Snapshot + Send + Sync>,
}

impl Metrics {
    /// The metrics of a party whose state `snapshot` reads at each scrape.
    pub fn new(snapshot: impl Fn() -> Snapshot + Send + Sync + 'static) -> Self {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let latency = Family::<MethodLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let mut methods: Vec<MethodSeries> = fedmesh_core::authz::RULES
            .iter()
            .map(|rule| MethodSeries::new(rule.service, rule.method))
            .collect();
        let paths = methods
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("/{}/{}", m.service, m.method), i))
            .collect();
        methods.push(MethodSeries::new(UNKNOWN, UNKNOWN));
        let inner = Inner {
            methods,
            paths,
            journal_revision: FloatGauge::default(),
            outbox_depth: FloatGauge::default(),
            outbox_age: FloatGauge::default(),
            replication_lag: Family::default(),
            nodes: Family::default(),
            incidents: Family::default(),
            tenants: Family::default(),
            users: Family::default(),
            cert_expiry: FloatGauge::default(),
            store_writable: FloatGauge::default(),
            heartbeat_allowance: FloatGauge::default(),
            rejections: Rejections::default(),
            calls,
            latency,
            registry: Registry::default(),
            snapshot: Box::new(snapshot),
        };
        registry.register(
            "fedmesh_rpc_requests",
            "gRPC calls served, by service, method and status code",
            inner.calls.clone(),
        );
        registry.register(
            "fedmesh_rpc_duration_seconds",
            "Time to the response headers of gRPC calls, by service and method",
            inner.latency.clone(),
        );
        registry.register(
            "fedmesh_journal_revision",
            "Last durable revision of the node's journal",
            inner.journal_revision.clone(),
        );
        registry.register(
            "fedmesh_outbox_depth",
            "Requests to other members' nodes waiting in the outbox",
            inner.outbox_depth.clone(),
        );
        registry.register(
            "fedmesh_outbox_oldest_age_seconds",
            "Age of the oldest request waiting in the outbox",
            inner.outbox_age.clone(),
        );
        registry.register(
            "fedmesh_replication_lag_revisions",
            "Journal revisions of a node not yet applied by the coordinator",
            inner.replication_lag.clone(),
        );
        registry.register(
            "fedmesh_nodes",
            "Registered nodes by liveness",
            inner.nodes.clone(),
        );
        registry.register(
            "fedmesh_incidents_open",
            "Open incidents by the state of their worst SLA clock",
            inner.incidents.clone(),
        );
        registry.register(
            "fedmesh_tenants",
            "Active or suspended tenants per offer",
            inner.tenants.clone(),
        );
        registry.register(
            "fedmesh_active_users",
            "Latest reported active users per offer",
            inner.users.clone(),
        );
        registry.register(
            "fedmesh_certificate_expiry_timestamp_seconds",
            "When this party's certificate expires",
            inner.cert_expiry.clone(),
        );
        registry.register(
            "fedmesh_store_writable",
            "Whether this party's database accepts writes (1) or refuses them (0: a full disk, an I/O error)",
            inner.store_writable.clone(),
        );
        registry.register(
            "fedmesh_heartbeat_allowance_seconds",
            "How much longer than registry.stale_after_ms a node may stay silent before it is stale: the coordinator's own recent delay in answering heartbeats",
            inner.heartbeat_allowance.clone(),
        );
        registry.register(
            "fedmesh_replication_rejected",
            "Replicated entries refused because their source may not say them, by source member and reason",
            inner.rejections.0.clone(),
        );
        Self {
            inner: Arc::new(Inner { registry, ..inner }),
        }
    }

    /// The counts of refused replicated entries, which this party's followers add to.
    pub fn rejections(&self) -> Rejections {
        self.inner.rejections.clone()
    }

    /// Which series the calls of `path` (`/service/method`) count under.
    fn method_of(&self, path: &str) -> usize {
        self.inner
            .paths
            .get(path)
            .copied()
            .unwrap_or(self.inner.methods.len() - 1)
    }

    /// Counts one call to `path` that ended with `code` after `seconds` (the layer does it for
    /// every call it sees).
    pub fn observe(&self, path: &str, code: tonic::Code, seconds: f64) {
        self.count(self.method_of(path), code, seconds);
    }

    fn count(&self, method: usize, code: tonic::Code, seconds: f64) {
        let inner = &self.inner;
        let Some(series) = inner.methods.get(method) else {
            return;
        };
        let index = usize::try_from(i32::from(code)).unwrap_or(2);
        if let Some(counter) = series.codes.get(index) {
            counter
                .get_or_init(|| {
                    inner
                        .calls
                        .get_or_create(&CallLabels {
                            service: series.service.to_owned(),
                            method: series.method.to_owned(),
                            code: code_name(code).to_owned(),
                        })
                        .clone()
                })
                .inc();
        }
        series
            .latency
            .get_or_init(|| {
                inner
                    .latency
                    .get_or_create(&MethodLabels {
                        service: series.service.to_owned(),
                        method: series.method.to_owned(),
                    })
                    .clone()
            })
            .observe(seconds);
    }

    /// The metrics in the OpenMetrics text format, with the state read now.
    pub fn render(&self) -> String {
        let s = (self.inner.snapshot)();
        let i = &self.inner;
        let set = |g: &FloatGauge, v: Option<f64>| {
            g.set(v.unwrap_or(f64::NAN));
        };
        set(&i.journal_revision, s.journal_revision.map(|v| v as f64));
        set(&i.outbox_depth, s.outbox_depth.map(|v| v as f64));
        set(&i.outbox_age, s.outbox_oldest_age_seconds);
        set(&i.cert_expiry, s.certificate_expiry);
        set(&i.store_writable, s.store_writable);
        set(&i.heartbeat_allowance, s.heartbeat_allowance_seconds);
        fn fill<L: Clone + std::hash::Hash + Eq>(
            family: &Family<L, FloatGauge>,
            values: &[(String, f64)],
            label: impl Fn(String) -> L,
        ) {
            family.clear();
            for (key, value) in values {
                // `+ 0.0` turns a negative zero (the sum of nothing) into 0.
                family.get_or_create(&label(key.clone())).set(*value + 0.0);
            }
        }
        fill(&i.replication_lag, &s.replication_lag, |member| {
            MemberLabel { member }
        });
        fill(&i.nodes, &s.nodes, |state| StateLabel { state });
        fill(&i.incidents, &s.open_incidents, |state| StateLabel {
            state,
        });
        fill(&i.tenants, &s.tenants, |offer| OfferLabel { offer });
        fill(&i.users, &s.active_users, |offer| OfferLabel { offer });
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &i.registry).is_err() {
            tracing::error!("encoding the metrics failed");
        }
        // Gauges a party does not have are left out rather than reported as NaN.
        out.lines()
            .filter(|l| !l.ends_with(" NaN"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Serves `/metrics` on `listener` until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = self.clone();
                async move {
                    (
                        [(
                            http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics.render(),
                    )
                }
            }),
        );
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
    }

    /// Binds the metrics listener at `addr`, the `metrics.listen` key (before serving, so the
    /// port is known); a taken address is reported as such, naming the key.
    pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, crate::StartError> {
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| crate::StartError::BindOther {
                key: "metrics.listen",
                addr,
                source,
            })
    }
}

/// Counts every call with its status code and latency.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// A layer recording into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Counted<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service built by [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: Metrics,
}

impl<S, B, R> Service<http::Request<B>> for Counted<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        CountedFuture {
            method: self.metrics.method_of(request.uri().path()),
            metrics: self.metrics.clone(),
            started: Instant::now(),
            inner: self.inner.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Counted`] call, which counts it when it ends.
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        metrics: Metrics,
        method: usize,
        started: Instant,
    }
}

impl<F, R, E> Future for CountedFuture<F>
where
    F: Future<Output = Result<http::Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Poll::Ready(result) = this.inner.poll(cx) else {
            return Poll::Pending;
        };
        let code = match &result {
            Ok(response) => response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32),
            Err(_) => tonic::Code::Internal,
        };
        this.metrics
            .count(*this.method, code, this.started.elapsed().as_secs_f64());
        Poll::Ready(result)
    }
}

/// A status code as gRPC spells it (`NOT_FOUND`).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_zero_is_rendered_as_zero() {
        let metrics = Metrics::new(|| Snapshot {
            active_users: vec![("unistra.otp".into(), -0.0)],
            ..Default::default()
        });
        let text = metrics.render();
        let line = text
            .lines()
            .find(|l| l.starts_with("fedmesh_active_users{"))
            .unwrap_or_else(|| panic!("{text}"));
        assert!(!line.contains("-0"), "{line}");
    }

    #[test]
    fn calls_and_state_are_rendered() {
        let metrics = Metrics::new(|| Snapshot {
            journal_revision: Some(42),
            tenants: vec![("rennes2.collab".into(), 3.0)],
            ..Default::default()
        });
        metrics.observe(
            "/fedmesh.v1.OfferService/GetOffer",
            tonic::Code::NotFound,
            0.002,
        );
        metrics.observe("/fedmesh.v1.OfferService/GetOffer", tonic::Code::Ok, 0.001);
        metrics.observe(
            "/fedmesh.v1.OfferService/GetOffer",
            tonic::Code::NotFound,
            0.004,
        );
        // Invented paths add no series.
        metrics.observe("/made.Up/One", tonic::Code::Unimplemented, 0.001);
        metrics.observe("/made.Up/Two", tonic::Code::Unimplemented, 0.001);
        let text = metrics.render();
        assert!(
            text.contains(
                "fedmesh_rpc_requests_total{service=\"fedmesh.v1.OfferService\",method=\"GetOffer\",code=\"NOT_FOUND\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fedmesh_rpc_requests_total{service=\"fedmesh.v1.OfferService\",method=\"GetOffer\",code=\"OK\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fedmesh_rpc_duration_seconds_count{service=\"fedmesh.v1.OfferService\",method=\"GetOffer\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "fedmesh_rpc_requests_total{service=\"unknown\",method=\"unknown\",code=\"UNIMPLEMENTED\"} 2"
            ),
            "{text}"
        );
        assert!(!text.contains("made.Up"), "{text}");
        assert!(
            !text.contains("method=\"ListOffers\""),
            "a method's series appear at its first call: {text}"
        );
        assert!(text.contains("fedmesh_journal_revision 42"), "{text}");
        assert!(
            text.contains("fedmesh_tenants{offer=\"rennes2.collab\"} 3"),
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("fedmesh_outbox_depth ")),
            "unset gauges are left out: {text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
    }
}
