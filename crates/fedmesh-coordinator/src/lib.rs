//! The fedmesh coordinator, run by the consortium: the registry of member nodes (and the
//! federation CRL they enforce), the federation catalogue and metrics.
//!
//! - [`config`]: the coordinator's configuration file and its defaults.
//! - [`registry`]: `RegistryService`: registration, heartbeats, liveness, CRL distribution.
//! - [`liveness`]: when a node is stale, allowing for the coordinator's own delays.
//! - [`replication`]: following every node's journal into the catalogue, tenancy histories
//!   and usage and availability records.
//! - [`monitoring`]: what the coordinator's `/metrics` reports of its state.
//! - [`dashboard`]: the HTTPS dashboard and its JSON API.
//! - [`metrics`]: `MetricsService`: federation figures and monthly SLA compliance.
//! - [`Coordinator`]: opens the database, binds, serves until shut down.
#![forbid(unsafe_code)]

pub mod config;
pub mod dashboard;
pub mod liveness;
pub mod metrics;
pub mod monitoring;
pub mod registry;
pub mod replication;

use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_core::Identity;
use fedmesh_grpc::{AccessPolicy, Foundation, GrpcServer, with_message_limits};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use fedmesh_tls::ReloadableServerConfig;

pub use config::CoordinatorConfig;

/// Why the coordinator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] fedmesh_core::config::ConfigError),
    /// The database, TLS material or listener could not be opened.
    #[error(transparent)]
    Start(#[from] fedmesh_grpc::StartError),
    /// The database failed when flushed at shutdown.
    #[error(transparent)]
    Store(#[from] fedmesh_store::StoreError),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] fedmesh_grpc::ServeError),
}

/// A coordinator bound to its address, ready to serve.
#[derive(Debug)]
pub struct Coordinator {
    server: GrpcServer,
    local_addr: SocketAddr,
    store: Store,
    tls: ReloadableServerConfig,
    replicator: replication::Replicator,
    metrics: Option<(fedmesh_grpc::metrics::Metrics, tokio::net::TcpListener)>,
    dashboard: Option<dashboard::Dashboard>,
    cert: std::path::PathBuf,
    compaction: fedmesh_grpc::compaction::CompactionConfig,
    storage: fedmesh_grpc::server::StorageConfig,
    retention: fedmesh_grpc::retention::RetentionConfig,
}

impl Coordinator {
    /// Validates the configuration, loads TLS, binds the listener and opens the database. A
    /// failed first start leaves no data directory behind.
    pub async fn bind(config: CoordinatorConfig) -> Result<Self, CoordinatorError> {
        let data_dir = config.data_dir.clone();
        fedmesh_grpc::server::without_leftovers(&data_dir, Self::start(config)).await
    }

    async fn start(config: CoordinatorConfig) -> Result<Self, CoordinatorError> {
        let validated = config.validate()?;
        config.clock.apply()?;
        let Foundation {
            store,
            tls,
            listener,
            local_addr,
            info,
        } = Foundation::open(
            Identity::coordinator(validated.federation.clone()),
            &config.data_dir,
            &config.storage,
            &config.limits,
            &config.tls,
            config.listen,
        )
        .await?;
        // Coordinators before schema 3 kept an index of every record id counted; the cursors
        // alone count each record once now.
        if store.drop_record_index()? {
            tracing::info!(
                "dropped the index of record ids, which the coordinator no longer keeps"
            );
        }
        let tls_handle = tls.clone();
        let limits = config.limits.clone();
        let registered = std::sync::Arc::new(tokio::sync::Notify::new());
        let staleness =
            liveness::Staleness::new(Duration::from_millis(config.registry.stale_after_ms));
        let policy = AccessPolicy::coordinator(validated.federation.clone());
        let removed = policy.removed();
        removed.replace(store.removed_members()?.into_iter().map(|m| m.member_id));
        let metrics = if config.metrics.enabled {
            let listener = fedmesh_grpc::metrics::Metrics::bind(config.metrics.listen).await?;
            let metrics = fedmesh_grpc::metrics::Metrics::new(monitoring::snapshot(
                store.clone(),
                config.tls.cert.clone(),
                staleness.clone(),
            ));
            Some((metrics, listener))
        } else {
            None
        };
        let replicator = replication::Replicator {
            federation: validated.federation.clone(),
            store: store.clone(),
            tls: config.tls.clone(),
            interval: Duration::from_millis(config.registry.heartbeat_interval_ms),
            staleness: staleness.clone(),
            retry_initial: Duration::from_millis(config.replication.retry_initial_ms),
            retry_max: Duration::from_millis(config.replication.retry_max_ms),
            registered: registered.clone(),
            removed: removed.clone(),
            rejections: metrics
                .as_ref()
                .map(|(m, _)| m.rejections())
                .unwrap_or_default(),
        };
        let dashboard = if config.dashboard.enabled {
            Some(
                dashboard::Dashboard::bind(
                    &config.dashboard,
                    tls.clone(),
                    policy.clone(),
                    store.clone(),
                    staleness.clone(),
                )
                .await?,
            )
        } else {
            None
        };
        let server = GrpcServer::new(listener, tls, limits.clone(), policy, info);
        let registry = registry::RegistryApi::new(
            store.clone(),
            &config,
            staleness.clone(),
            registered,
            registry::Offboarding {
                removed,
                connections: server.connections(),
                identity: Identity::coordinator(validated.federation.clone()).to_uri(),
            },
        );
        let server = match &metrics {
            Some((m, _)) => server.with_metrics(m.clone()),
            None => server,
        };
        let cert = config.tls.cert.clone();
        let server = server.with_store_health(store.watch_write_health());
        let server = server.with_status(fedmesh_grpc::node_info::StatusFn(std::sync::Arc::new(
            move || pb::GetNodeStatusResponse {
                certificate_expire_time: fedmesh_tls::config::cert_not_after(&cert)
                    .ok()
                    .map(|seconds| prost_types::Timestamp { seconds, nanos: 0 }),
                ..Default::default()
            },
        )));
        let catalogue =
            fedmesh_grpc::catalogue::CatalogueApi::new(store.clone(), server.stopping());
        let server = server
            .add_service(
                "fedmesh.v1.RegistryService",
                with_message_limits!(
                    pb::registry_service_server::RegistryServiceServer::new(registry),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.CatalogueService",
                with_message_limits!(
                    pb::catalogue_service_server::CatalogueServiceServer::new(catalogue),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.MetricsService",
                with_message_limits!(
                    pb::metrics_service_server::MetricsServiceServer::new(
                        metrics::MetricsApi::new(store.clone(), staleness.clone())
                    ),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.AdminService",
                with_message_limits!(
                    pb::admin_service_server::AdminServiceServer::new(
                        fedmesh_grpc::backup::AdminApi::new(
                            store.clone(),
                            fedmesh_core::Role::Coordinator,
                            limits.max_encoding_message_bytes,
                        )
                    ),
                    limits
                ),
            );
        tracing::info!(addr = %local_addr, data_dir = %config.data_dir.display(), "coordinator listening");
        Ok(Self {
            server,
            local_addr,
            store,
            tls: tls_handle,
            replicator,
            metrics,
            dashboard,
            cert: config.tls.cert.clone(),
            compaction: config.catalogue.clone(),
            storage: config.storage.clone(),
            retention: config.retention.clone(),
        })
    }

    /// The address of the HTTPS dashboard, when enabled.
    pub fn dashboard_addr(&self) -> Option<SocketAddr> {
        self.dashboard
            .as_ref()
            .and_then(dashboard::Dashboard::local_addr)
    }

    /// The address of the `/metrics` listener, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(_, listener)| listener.local_addr().ok())
    }

    /// The address the coordinator listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The TLS configuration in force; `reload()` re-reads certificate, key, CA and CRL for
    /// new connections (SIGHUP in the binary).
    pub fn tls(&self) -> ReloadableServerConfig {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes, drains calls in progress, and flushes the database.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), CoordinatorError> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        // How late the coordinator's own timers fire: the allowance of its staleness rule.
        let lateness = tokio::spawn(liveness::probe(
            self.replicator.staleness.clone(),
            stop_rx.clone(),
        ));
        let replication = tokio::spawn(self.replicator.run(stop_rx.clone()));
        let probe = tokio::spawn(fedmesh_grpc::store_probe::run(
            self.store.clone(),
            std::time::Duration::from_millis(self.storage.probe_interval_ms),
            stop_rx.clone(),
        ));
        let defrag = tokio::spawn(fedmesh_grpc::defrag::run(
            self.store.clone(),
            self.storage,
            stop_rx.clone(),
        ));
        let compaction = tokio::spawn(fedmesh_grpc::compaction::run(
            self.store.clone(),
            vec![fedmesh_store::compact::LogKind::Catalogue],
            self.compaction,
            stop_rx.clone(),
        ));
        let retention = tokio::spawn(fedmesh_grpc::retention::run(
            self.store.clone(),
            self.retention,
            stop_rx.clone(),
        ));
        let dashboard = self
            .dashboard
            .map(|dashboard| tokio::spawn(dashboard.serve(stop_rx.clone())));
        let expiry = tokio::spawn(fedmesh_grpc::expiry::watch_certificate(
            self.cert,
            stop_rx.clone(),
        ));
        let rotation = tokio::spawn(fedmesh_grpc::expiry::follow_rotation(
            self.tls.clone(),
            stop_rx.clone(),
        ));
        // The coordinator's own listener follows its CRL file (which `fedmesh certs revoke`
        // rewrites) as the nodes follow the coordinator.
        let connections = self.server.connections();
        let crl = self.tls.files().crl.clone().map(|path| {
            let (tls, mut stop) = (self.tls.clone(), stop_rx.clone());
            tokio::spawn(async move {
                loop {
                    if let Ok((der, _)) = fedmesh_tls::config::load_crl_der(&path) {
                        fedmesh_grpc::connections::enforce_crl(
                            &tls,
                            &connections,
                            &der,
                            "the CRL file",
                        );
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(10)) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                }
            })
        });
        let metrics = self.metrics.map(|(metrics, listener)| {
            let mut stop = stop_rx;
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                if let Err(error) = metrics.serve(listener, stopped).await {
                    tracing::error!(%error, "the metrics listener failed");
                }
            })
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        let result = self.server.serve(shutdown).await;
        let _ = replication.await;
        let _ = compaction.await;
        let _ = defrag.await;
        let _ = probe.await;
        let _ = retention.await;
        for task in [
            metrics,
            dashboard,
            Some(expiry),
            Some(rotation),
            crl,
            Some(lateness),
        ]
        .into_iter()
        .flatten()
        {
            let _ = task.await;
        }
        self.store.flush().await?;
        tracing::info!("coordinator stopped, database flushed");
        Ok(result?)
    }
}
