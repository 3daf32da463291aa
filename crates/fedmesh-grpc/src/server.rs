//! One gRPC server: TLS listener, explicit limits, the auth and deadline layers, health,
//! reflection and graceful shutdown. Nodes and the coordinator differ only in the services
//! they add.

use std::future::Future;
use std::time::Duration;

use fedmesh_tls::{ListenerLimits, ReloadableServerConfig, tls_incoming};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tonic::service::RoutesBuilder;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tower::ServiceBuilder;

use crate::auth::{AccessPolicy, AuthLayer};
use crate::deadline::DeadlineLayer;
use crate::node_info::{NodeInfoService, ServerInfo};
use crate::stream::Stopping;
use fedmesh_proto::pb::node_service_server::NodeServiceServer;

/// Section `[storage]` of the node and coordinator configuration files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// sled's page cache, in MiB. The process's memory follows it: sled holds several times
    /// this much as the data grows (BENCHMARKS.md, "Soak").
    pub cache_mb: u64,
    /// The database is rewritten online when its files are more than this many times its live
    /// data (0: never; `fedmesh admin defrag` still works on a stopped process).
    pub defrag_ratio: u64,
    /// ... and at least this many MiB.
    pub defrag_min_mb: u64,
    /// How often that is checked, in milliseconds (also once at start).
    pub defrag_check_ms: u64,
    /// How often sled's background thread flushes and frees one segment of replaced pages, in
    /// milliseconds ([`fedmesh_store::CLEAN_INTERVAL_MS`]): it bounds how fast the files give
    /// space back.
    pub clean_interval_ms: u64,
    /// How often the database is probed with a small write, in milliseconds: a database that
    /// refuses writes (a full disk) is reported (health `NOT_SERVING`, `fedmesh status`, the
    /// `fedmesh_store_writable` metric) and opened again until it accepts them.
    pub probe_interval_ms: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            cache_mb: fedmesh_store::CACHE_BYTES / (1024 * 1024),
            defrag_ratio: 8,
            defrag_min_mb: 256,
            defrag_check_ms: 3_600_000,
            clean_interval_ms: fedmesh_store::CLEAN_INTERVAL_MS,
            probe_interval_ms: 10_000,
        }
    }
}

impl StorageConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !(1..=65_536).contains(&self.cache_mb) {
            return Err((
                "storage.cache_mb".to_owned(),
                format!("{} is not between 1 and 65536", self.cache_mb),
            ));
        }
        if self.defrag_ratio == 1 {
            return Err((
                "storage.defrag_ratio".to_owned(),
                "1 would rewrite the database at every check: use 0 (never) or at least 2".into(),
            ));
        }
        if self.probe_interval_ms == 0 {
            return Err((
                "storage.probe_interval_ms".to_owned(),
                "must be positive".into(),
            ));
        }
        if !(1..=60_000).contains(&self.clean_interval_ms) {
            return Err((
                "storage.clean_interval_ms".to_owned(),
                format!("{} is not between 1 and 60000", self.clean_interval_ms),
            ));
        }
        if self.defrag_check_ms == 0 {
            return Err((
                "storage.defrag_check_ms".to_owned(),
                "must be positive".into(),
            ));
        }
        Ok(())
    }

    /// When the database is rewritten online.
    pub fn bloat(&self) -> fedmesh_store::defrag::Bloat {
        fedmesh_store::defrag::Bloat {
            ratio: self.defrag_ratio,
            min_bytes: self.defrag_min_mb.saturating_mul(1024 * 1024),
        }
    }

    /// The store options these settings give, on a server with `limits`: a journal entry
    /// must fit one `Watch` response, which followers must accept.
    pub fn options(&self, limits: &ServerLimits) -> fedmesh_store::StoreOptions {
        fedmesh_store::StoreOptions {
            cache_bytes: self.cache_mb * 1024 * 1024,
            clean_interval_ms: self.clean_interval_ms,
            max_entry_bytes: limits
                .max_encoding_message_bytes
                .min(FOLLOWER_MESSAGE_BYTES)
                .saturating_sub(WATCH_ENVELOPE_BYTES),
        }
    }
}

/// Section `[clock]` of the node and coordinator configuration files: the federation's clock
/// ([`fedmesh_core::clock`]). For soaks and rehearsals only: a production party leaves it
/// alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// How many seconds of business time (months, SLA clocks, retention) pass in one second of
    /// the system clock, from `anchor_unix_ms` on. 1: the system clock.
    pub speed: f64,
    /// The system instant (Unix milliseconds) from which the clock runs faster; 0: the first
    /// start of a party in this process. Give every process of a soak the same value.
    pub anchor_unix_ms: u64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            speed: 1.0,
            anchor_unix_ms: 0,
        }
    }
}

impl ClockConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.speed.is_finite() || !(1.0..=1_000_000.0).contains(&self.speed) {
            return Err((
                "clock.speed".to_owned(),
                format!("{} is not between 1 and 1000000", self.speed),
            ));
        }
        Ok(())
    }

    /// Sets this process's clock. A party of a process whose clock already runs at this speed
    /// with no anchor of its own joins it.
    pub fn apply(&self) -> Result<(), fedmesh_core::config::ConfigError> {
        use fedmesh_core::clock;
        if self.speed == 1.0 {
            return Ok(());
        }
        let anchor = match (self.anchor_unix_ms, clock::acceleration()) {
            (0, Some(running)) if running.speed == self.speed => return Ok(()),
            (0, _) => std::time::SystemTime::now(),
            (ms, _) => std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
        };
        clock::accelerate(clock::Acceleration {
            anchor,
            speed: self.speed,
        })
        .map_err(|e| fedmesh_core::config::ConfigError::Invalid {
            key: "clock.speed".to_owned(),
            message: e.to_string(),
        })?;
        tracing::warn!(
            speed = self.speed,
            "the federation's clock runs faster than the system's: for soaks and rehearsals only"
        );
        Ok(())
    }
}

/// What a `WatchResponse` adds around the journal entry it carries (its field key and length).
const WATCH_ENVELOPE_BYTES: usize = 16;

/// The largest message a follower (the coordinator, a subscriber's node) accepts: tonic's
/// default decoding limit, which fedmesh's clients keep. A journal entry must fit it whatever
/// the node's own `limits.max_encoding_message_bytes`.
const FOLLOWER_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The limits every fedmesh gRPC server enforces. Section `[limits]` of the node and
/// coordinator configuration files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerLimits {
    /// Largest request message accepted, in bytes; larger ones get `OUT_OF_RANGE`.
    pub max_decoding_message_bytes: usize,
    /// Largest response message sent, in bytes.
    pub max_encoding_message_bytes: usize,
    /// HTTP/2 streams (calls) one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Calls one connection may have in progress at once; further calls wait.
    pub max_concurrent_calls_per_connection: usize,
    /// Largest HTTP/2 header list (metadata) accepted, in bytes.
    pub max_header_list_bytes: u32,
    /// Streams a client may open and reset before the server has accepted them; beyond that
    /// the connection is ended with `GOAWAY` (the HTTP/2 "rapid reset" attack).
    pub max_pending_reset_streams: usize,
    /// Time a client has to complete its TLS handshake, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Time a client has, once connected, to send its TLS ClientHello, in milliseconds
    /// (capped by `handshake_timeout_ms`). Until then its connection is idle and is the
    /// first closed when the pending pool is full.
    pub client_hello_timeout_ms: u64,
    /// TLS handshakes in progress at once. When full, the oldest connection that has not
    /// sent its ClientHello is closed for a new one; if every one has, further connections
    /// wait.
    pub max_pending_handshakes: usize,
    /// Pending TLS handshakes one source address may hold, so that one source cannot take
    /// the whole pool with handshakes it starts and never finishes.
    pub max_pending_handshakes_per_address: usize,
    /// Server streams (watches, backups, reflection sessions) one caller identity may have
    /// open at once; past it a new one is refused with `RESOURCE_EXHAUSTED`.
    pub max_streams_per_identity: usize,
    /// Longest a unary call (or a stream until its first response) may take, in milliseconds.
    pub request_timeout_ms: u64,
    /// Interval of HTTP/2 keep-alive pings to detect dead peers, in milliseconds.
    pub keepalive_interval_ms: u64,
    /// On shutdown, how long calls in progress may take to finish before they are cut, in
    /// milliseconds.
    pub shutdown_grace_ms: u64,
    /// Calls per second one peer (certificate identity) may make; beyond its burst, calls are
    /// shed with `RESOURCE_EXHAUSTED`.
    pub max_calls_per_second_per_peer: u32,
    /// Calls one peer may make at once above its rate.
    pub max_call_burst_per_peer: u32,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_decoding_message_bytes: 4 * 1024 * 1024,
            max_encoding_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 128,
            max_concurrent_calls_per_connection: 64,
            max_header_list_bytes: 16 * 1024,
            max_pending_reset_streams: 20,
            handshake_timeout_ms: 10_000,
            client_hello_timeout_ms: 2_000,
            max_pending_handshakes: 128,
            max_pending_handshakes_per_address: 32,
            max_streams_per_identity: 32,
            request_timeout_ms: 30_000,
            keepalive_interval_ms: 30_000,
            shutdown_grace_ms: 10_000,
            max_calls_per_second_per_peer: 200,
            max_call_burst_per_peer: 400,
        }
    }
}

impl ServerLimits {
    /// Checks that every limit is usable; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let positive: [(&str, u64); 16] = [
            (
                "max_decoding_message_bytes",
                self.max_decoding_message_bytes as u64,
            ),
            (
                "max_encoding_message_bytes",
                self.max_encoding_message_bytes as u64,
            ),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            (
                "max_concurrent_calls_per_connection",
                self.max_concurrent_calls_per_connection as u64,
            ),
            (
                "max_header_list_bytes",
                u64::from(self.max_header_list_bytes),
            ),
            (
                "max_pending_reset_streams",
                self.max_pending_reset_streams as u64,
            ),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("client_hello_timeout_ms", self.client_hello_timeout_ms),
            ("max_pending_handshakes", self.max_pending_handshakes as u64),
            (
                "max_pending_handshakes_per_address",
                self.max_pending_handshakes_per_address as u64,
            ),
            (
                "max_streams_per_identity",
                self.max_streams_per_identity as u64,
            ),
            ("request_timeout_ms", self.request_timeout_ms),
            ("keepalive_interval_ms", self.keepalive_interval_ms),
            ("shutdown_grace_ms", self.shutdown_grace_ms),
            (
                "max_calls_per_second_per_peer",
                u64::from(self.max_calls_per_second_per_peer),
            ),
            (
                "max_call_burst_per_peer",
                u64::from(self.max_call_burst_per_peer),
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err((format!("limits.{key}"), "must be greater than 0".to_owned()));
            }
        }
        Ok(())
    }
}

/// Applies the message size limits of a [`ServerLimits`] to a generated service server.
#[macro_export]
macro_rules! with_message_limits {
    ($server:expr, $limits:expr) => {
        $server
            .max_decoding_message_size($limits.max_decoding_message_bytes)
            .max_encoding_message_size($limits.max_encoding_message_bytes)
    };
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The reflection service could not load the descriptor sets.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The HTTP/2 server failed.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Why a server could not open what it serves from.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not fit the certificate.
    #[error(transparent)]
    Config(#[from] fedmesh_core::config::ConfigError),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] fedmesh_store::StoreError),
    /// TLS material could not be loaded.
    #[error(transparent)]
    Tls(#[from] fedmesh_tls::TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another listener (metrics, dashboard) could not be bound; `key` is its config key.
    #[error("config key `{key}`: cannot listen on {addr}: {source}")]
    BindOther {
        /// The config key of the address (`metrics.listen`).
        key: &'static str,
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What a node or the coordinator opens before it serves: its database, its TLS configuration
/// (whose certificate must be `identity`'s), and its listener, bound so that the port is known
/// before serving starts.
#[derive(Debug)]
pub struct Foundation {
    /// The database.
    pub store: fedmesh_store::Store,
    /// The TLS configuration in force.
    pub tls: ReloadableServerConfig,
    /// The bound listener.
    pub listener: TcpListener,
    /// Its address (useful with port 0).
    pub local_addr: std::net::SocketAddr,
    /// What the server says about itself.
    pub info: ServerInfo,
}

/// Runs a server's start-up; when it fails and `data_dir` did not exist before, removes what
/// it created, so that a failed first start (a port in use, a wrong certificate) leaves no
/// database directory behind to puzzle over.
pub async fn without_leftovers<T, E>(
    data_dir: &std::path::Path,
    start: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let fresh = !data_dir.exists();
    let started = start.await;
    if started.is_err()
        && fresh
        && data_dir.exists()
        && let Err(error) = std::fs::remove_dir_all(data_dir)
    {
        tracing::warn!(dir = %data_dir.display(), %error, "could not remove the data directory of a failed start");
    }
    started
}

impl Foundation {
    /// Opens the database in `data_dir` (journal entries bounded by `limits`), loads `tls` (refusing a certificate that is not
    /// `identity`'s, named as config key `tls.cert`) and binds `listen`.
    pub async fn open(
        identity: fedmesh_core::Identity,
        data_dir: &std::path::Path,
        storage: &StorageConfig,
        limits: &ServerLimits,
        tls: &fedmesh_tls::TlsFiles,
        listen: std::net::SocketAddr,
    ) -> Result<Self, StartError> {
        let config = ReloadableServerConfig::load(tls.clone())?;
        let actual = fedmesh_tls::config::cert_identity(&tls.cert)?;
        if actual != identity {
            return Err(fedmesh_core::config::ConfigError::Invalid {
                key: "tls.cert".to_owned(),
                message: format!("the certificate is for {actual}, this server is {identity}"),
            }
            .into());
        }
        let bind_error = |source| StartError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        // Last: a start that fails on its certificate or its port creates no database.
        let store = fedmesh_store::Store::open_with(data_dir, storage.options(limits))?;
        let info = ServerInfo {
            identity,
            schema_version: store.schema_version()?,
            started_at: std::time::SystemTime::now(),
        };
        Ok(Self {
            store,
            tls: config,
            listener,
            local_addr,
            info,
        })
    }
}

/// A gRPC server ready to serve on a bound listener.
#[derive(Debug)]
pub struct GrpcServer {
    listener: TcpListener,
    tls: ReloadableServerConfig,
    limits: ServerLimits,
    policy: AccessPolicy,
    routes: RoutesBuilder,
    service_names: Vec<&'static str>,
    info: ServerInfo,
    stopping: tokio::sync::watch::Sender<bool>,
    stopping_rx: Stopping,
    metrics: Option<crate::metrics::Metrics>,
    status: Option<crate::node_info::StatusFn>,
    store_health: Option<crate::node_info::StoreHealth>,
    connections: crate::connections::Connections,
}

impl GrpcServer {
    /// A server on an already bound listener (so callers know the port before it serves).
    pub fn new(
        listener: TcpListener,
        tls: ReloadableServerConfig,
        limits: ServerLimits,
        policy: AccessPolicy,
        info: ServerInfo,
    ) -> Self {
        let (stopping, stopping_rx) = Stopping::new();
        Self {
            listener,
            tls,
            limits,
            policy,
            routes: RoutesBuilder::default(),
            service_names: Vec::new(),
            info,
            stopping,
            stopping_rx,
            metrics: None,
            status: None,
            store_health: None,
            connections: crate::connections::Connections::default(),
        }
    }

    /// The server's open connections (to close those of revoked peers).
    pub fn connections(&self) -> crate::connections::Connections {
        self.connections.clone()
    }

    /// Answers `NodeService.GetNodeStatus` with what `status` reports.
    pub fn with_status(mut self, status: crate::node_info::StatusFn) -> Self {
        self.status = Some(status);
        self
    }

    /// Reports `NOT_SERVING` (the server as a whole, and each fedmesh service but
    /// `NodeService`, kept for diagnosis) while `store_health` says the database refuses
    /// writes, and the reason in `GetNodeStatus`.
    pub fn with_store_health(mut self, store_health: crate::node_info::StoreHealth) -> Self {
        self.store_health = Some(store_health);
        self
    }

    /// Counts every call into `metrics` (see [`crate::metrics::MetricsLayer`]).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The signal long-lived streams of this server's services end on.
    pub fn stopping(&self) -> Stopping {
        self.stopping_rx.clone()
    }

    /// Adds a service; `name` is its fully qualified name, reported by the health service.
    pub fn add_service<S>(mut self, name: &'static str, service: S) -> Self
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Response = http::Response<tonic::body::Body>,
                Error = std::convert::Infallible,
            > + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.routes.add_service(service);
        self.service_names.push(name);
        self
    }

    /// Serves until `shutdown` completes, then stops accepting, reports `NOT_SERVING`, and
    /// waits for calls in progress to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let limits = self.limits;
        let (health, health_service) = tonic_health::server::health_reporter();
        health.set_service_status("", ServingStatus::Serving).await;
        for name in &self.service_names {
            health
                .set_service_status(*name, ServingStatus::Serving)
                .await;
        }
        let node_info = with_message_limits!(
            NodeServiceServer::new(NodeInfoService::new(
                self.info,
                self.status,
                self.store_health.clone()
            )),
            limits
        );
        health
            .set_service_status("fedmesh.v1.NodeService", ServingStatus::Serving)
            .await;
        // Reflection lists only what this server serves, not every service of the contract.
        let mut advertised: Vec<&str> = self.service_names.clone();
        advertised.extend([
            "fedmesh.v1.NodeService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]);
        let mut routes = self.routes;
        routes
            .add_service(node_info)
            .add_service(with_message_limits!(health_service, limits))
            .add_service(reflection(&advertised).build_v1()?)
            .add_service(reflection(&advertised).build_v1alpha()?);

        let connections = self.connections.clone();
        let incoming = tokio_stream::StreamExt::map(
            tls_incoming(
                self.listener,
                self.tls,
                ListenerLimits {
                    handshake_timeout: Duration::from_millis(limits.handshake_timeout_ms),
                    client_hello_timeout: Duration::from_millis(limits.client_hello_timeout_ms),
                    max_pending_handshakes: limits.max_pending_handshakes,
                    max_pending_handshakes_per_address: limits.max_pending_handshakes_per_address,
                },
            ),
            move |accepted| accepted.map(|stream| connections.track(stream)),
        );

        // Outermost first: count every call (refused ones too), refuse unauthenticated or
        // unauthorized calls before anything else runs for them, then bound the time of what
        // is admitted.
        let layers = ServiceBuilder::new()
            .option_layer(self.metrics.map(crate::metrics::MetricsLayer::new))
            // Undecodable requests count and answer as the client's error.
            .layer(crate::malformed::MalformedLayer)
            .layer(AuthLayer::new(self.policy))
            // Then shed a peer's calls beyond its rate before they cost anything.
            .layer(crate::rate::RateLayer::new(
                limits.max_calls_per_second_per_peer,
                limits.max_call_burst_per_peer,
            ))
            // Then refuse a stream past the caller's share before its handler starts; the
            // place is held until the response body is dropped (the stream ended or its client
            // went away).
            .layer(crate::stream_limit::StreamLimitLayer::new(
                limits.max_streams_per_identity,
            ))
            .layer(DeadlineLayer::new(Duration::from_millis(
                limits.request_timeout_ms,
            )));

        // The database's write health, reflected until shutdown.
        let store_watch = self.store_health.map(|mut store_health| {
            let health = health.clone();
            let mut names = self.service_names.clone();
            names.push("");
            tokio::spawn(async move {
                loop {
                    let status = if store_health.borrow_and_update().is_some() {
                        ServingStatus::NotServing
                    } else {
                        ServingStatus::Serving
                    };
                    for name in &names {
                        health.set_service_status(*name, status).await;
                    }
                    if store_health.changed().await.is_err() {
                        return;
                    }
                }
            })
        });
        let shutdown_health = health.clone();
        let mut all_names = self.service_names.clone();
        all_names.extend(["", "fedmesh.v1.NodeService"]);
        let stopping = self.stopping;
        let (drain_started_tx, drain_started) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async move {
            shutdown.await;
            if let Some(watch) = store_watch {
                watch.abort();
            }
            tracing::info!(
                grace_ms = limits.shutdown_grace_ms,
                "shutting down: draining calls in progress"
            );
            for name in all_names {
                shutdown_health
                    .set_service_status(name, ServingStatus::NotServing)
                    .await;
            }
            // Streams end now rather than hold the drain open.
            let _ = stopping.send(true);
            let _ = drain_started_tx.send(());
        };
        let grace = Duration::from_millis(limits.shutdown_grace_ms);
        let deadline = async move {
            if drain_started.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };

        let serving = Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .concurrency_limit_per_connection(limits.max_concurrent_calls_per_connection)
            .http2_max_header_list_size(limits.max_header_list_bytes)
            .http2_max_pending_accept_reset_streams(Some(limits.max_pending_reset_streams))
            .http2_keepalive_interval(Some(Duration::from_millis(limits.keepalive_interval_ms)))
            .http2_keepalive_timeout(Some(Duration::from_millis(limits.keepalive_interval_ms)))
            .layer(layers)
            .add_routes(routes.routes())
            .serve_with_incoming_shutdown(incoming, shutdown);
        tokio::select! {
            result = serving => result?,
            () = deadline => {
                tracing::warn!(grace_ms = limits.shutdown_grace_ms, "calls still in progress after the shutdown grace: closing them");
            }
        }
        Ok(())
    }
}

fn reflection(services: &[&str]) -> tonic_reflection::server::Builder<'static> {
    services.iter().fold(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fedmesh_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
        |builder, name| builder.with_service_name(*name),
    )
}
