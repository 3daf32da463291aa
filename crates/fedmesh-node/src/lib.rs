//! A fedmesh member node: the gRPC services an institution exposes to the federation, and its
//! registration with the coordinator.
//!
//! - [`crl`]: the federation CRL, followed from the coordinator.
//! - [`config`]: the node's configuration file and its defaults.
//! - [`offers`]: `OfferService`, the member's offers.
//! - [`journal`]: `JournalService`, how other parties follow this node's changes.
//! - [`catalogue_cache`]: the cached federation catalogue, served while the coordinator is down.
//! - [`subscriptions`]: `SubscriptionService`, the provider side of tenancies.
//! - [`usage`]: `UsageService`, usage and availability reports and the figures from them.
//! - [`closing`]: closing the months of the member's offers into monthly reports.
//! - [`reports`]: `ReportService`, the monthly reports the node holds.
//! - [`outbox`], [`peers`]: this member's own tenancy requests, sent or queued, and mirrored.
//! - [`registration`]: registering with the coordinator and heartbeating.
//! - [`Node`]: opens the database, binds, serves until shut down.
//!
//! - [`incidents`]: `IncidentService`, escalation between institutions with SLA clocks.
//! - [`metrics`]: what the node's `/metrics` reports of its state.
//! - [`notify`]: incident and maintenance events posted to the institution's helpdesk.
#![forbid(unsafe_code)]

mod archived;
pub mod catalogue_cache;
pub mod closing;
pub mod config;
pub mod crl;
pub mod incidents;
pub mod journal;
pub mod metrics;
pub mod notify;
pub mod offers;
pub mod outbox;
pub mod peers;
pub mod registration;
pub mod reports;
pub mod subscriptions;
pub mod usage;

use std::net::SocketAddr;
use std::time::Duration;

use fedmesh_core::Identity;
use fedmesh_grpc::{AccessPolicy, ClientOptions, Foundation, GrpcServer, with_message_limits};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use fedmesh_tls::ReloadableServerConfig;
use tokio::sync::watch;

pub use config::NodeConfig;

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] fedmesh_core::config::ConfigError),
    /// The database, TLS material or listener could not be opened.
    #[error(transparent)]
    Start(#[from] fedmesh_grpc::StartError),
    /// The database failed when flushed at shutdown.
    #[error(transparent)]
    Store(#[from] fedmesh_store::StoreError),
    /// The coordinator endpoint or client certificate is unusable.
    #[error(transparent)]
    Client(#[from] fedmesh_grpc::client::ClientError),
    /// The gRPC server failed.
    #[error(transparent)]
    Serve(#[from] fedmesh_grpc::ServeError),
}

/// A node bound to its address, ready to serve.
#[derive(Debug)]
pub struct Node {
    server: GrpcServer,
    local_addr: SocketAddr,
    store: Store,
    tls: ReloadableServerConfig,
    registration: Option<registration::Registration>,
    catalogue: Option<catalogue_cache::CatalogueFollower>,
    crl: Option<crl::CrlFollower>,
    forwarder: outbox::Forwarder,
    incidents: incidents::IncidentApi,
    clock_check: Duration,
    idempotency: config::Idempotency,
    compaction: fedmesh_grpc::compaction::CompactionConfig,
    storage: fedmesh_grpc::server::StorageConfig,
    retention: fedmesh_grpc::retention::RetentionConfig,
    closer: closing::Closer,
    close_check: Duration,
    notifier: Option<notify::Notifier>,
    metrics: Option<(fedmesh_grpc::metrics::Metrics, tokio::net::TcpListener)>,
    cert: std::path::PathBuf,
}

impl Node {
    /// Validates the configuration, loads TLS, binds the listener and opens the database. A
    /// failed first start leaves no data directory behind.
    pub async fn bind(config: NodeConfig) -> Result<Self, NodeError> {
        let data_dir = config.data_dir.clone();
        fedmesh_grpc::server::without_leftovers(&data_dir, Self::start(config)).await
    }

    async fn start(config: NodeConfig) -> Result<Self, NodeError> {
        let validated = config.validate()?;
        config.clock.apply()?;
        let Foundation {
            store,
            tls,
            listener,
            local_addr,
            info,
        } = Foundation::open(
            Identity::node(validated.federation.clone(), validated.member.clone()),
            &config.data_dir,
            &config.storage,
            &config.limits,
            &config.tls,
            config.listen,
        )
        .await?;
        let tls_handle = tls.clone();
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| format!("https://localhost:{}", local_addr.port()));
        let retry_initial = Duration::from_millis(config.coordinator.retry_initial_ms);
        let retry_max = Duration::from_millis(config.coordinator.retry_max_ms);
        let coordinator = match &config.coordinator.endpoint {
            None => None,
            Some(endpoint) => Some(fedmesh_grpc::connect_to(
                endpoint,
                &config.tls,
                ClientOptions::default(),
                Identity::coordinator(validated.federation.clone()),
            )?),
        };
        let link = registration::Link::default();
        let registration = coordinator
            .clone()
            .map(|channel| registration::Registration {
                channel,
                endpoint: advertise.clone(),
                retry_initial,
                retry_max,
                store: store.clone(),
                link: link.clone(),
            });
        let policy = AccessPolicy::node(validated.federation.clone(), validated.member.clone());
        let removed = policy.removed();
        // Removed members are refused from the first call, before the follower's first refresh.
        removed.replace(
            store
                .removed_members()
                .map_err(NodeError::from)?
                .into_iter()
                .map(|m| m.member_id),
        );
        let peers = peers::Peers::new(
            validated.federation.clone(),
            store.clone(),
            coordinator.clone(),
            config.tls.clone(),
            ClientOptions::default(),
            removed.clone(),
        );
        let usage_api = usage::UsageApi::new(
            store.clone(),
            validated.member.clone(),
            peers.clone(),
            config.usage.close_after_days,
        );
        let metrics = if config.metrics.enabled {
            let listener = fedmesh_grpc::metrics::Metrics::bind(config.metrics.listen).await?;
            let metrics = fedmesh_grpc::metrics::Metrics::new(metrics::snapshot(
                store.clone(),
                validated.member.clone(),
                config.tls.cert.clone(),
            ));
            Some((metrics, listener))
        } else {
            None
        };
        let rejections = metrics
            .as_ref()
            .map(|(m, _)| m.rejections())
            .unwrap_or_default();
        let forwarder = outbox::Forwarder::new(
            store.clone(),
            peers,
            validated.member.clone(),
            retry_initial,
            retry_max,
            rejections.clone(),
        );
        let crl = coordinator.clone().map(|channel| crl::CrlFollower {
            channel,
            tls: tls.clone(),
            interval: Duration::from_millis(config.coordinator.crl_refresh_ms),
            file: config.data_dir.join("federation-crl.der"),
            connections: Default::default(),
            removed,
            store: store.clone(),
            member: validated.member.clone(),
            coordinator: Identity::coordinator(validated.federation.clone()).to_uri(),
        });
        let catalogue = coordinator.map(|channel| catalogue_cache::CatalogueFollower {
            channel,
            store: store.clone(),
            retry_initial,
            retry_max,
            rejections,
        });
        let limits = config.limits.clone();
        let server = GrpcServer::new(listener, tls, limits.clone(), policy, info);
        let server = match &metrics {
            Some((m, _)) => server.with_metrics(m.clone()),
            None => server,
        };
        let crl = crl.map(|follower| crl::CrlFollower {
            connections: server.connections(),
            ..follower
        });
        let server = server.with_store_health(store.watch_write_health());
        let server = server.with_status(metrics::status(
            store.clone(),
            validated.member.clone(),
            config.tls.cert.clone(),
            config.coordinator.endpoint.is_some().then_some(link),
        ));
        let offers = offers::OfferApi::new(store.clone(), validated.member.clone());
        let incident_api = incidents::IncidentApi::new(
            store.clone(),
            validated.member.clone(),
            Identity::node(validated.federation.clone(), validated.member.clone()).to_string(),
            forwarder.clone(),
            config.incidents.clone(),
            server.stopping(),
        );
        let notifier = notify::Notifier::new(
            store.clone(),
            validated.member.clone(),
            &config.notifications,
        )
        .map_err(|message| fedmesh_core::config::ConfigError::Invalid {
            key: "notifications".to_owned(),
            message,
        })?;
        let journal =
            journal::JournalApi::new(store.clone(), validated.member.clone(), server.stopping());
        let catalogue_api =
            fedmesh_grpc::catalogue::CatalogueApi::new(store.clone(), server.stopping());
        let server = server
            .add_service(
                "fedmesh.v1.OfferService",
                with_message_limits!(
                    pb::offer_service_server::OfferServiceServer::new(offers),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.SubscriptionService",
                with_message_limits!(
                    pb::subscription_service_server::SubscriptionServiceServer::new(
                        subscriptions::SubscriptionApi::new(
                            store.clone(),
                            validated.member.clone(),
                            forwarder.clone(),
                        )
                    ),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.UsageService",
                with_message_limits!(
                    pb::usage_service_server::UsageServiceServer::new(usage_api),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.IncidentService",
                with_message_limits!(
                    pb::incident_service_server::IncidentServiceServer::new(incident_api.clone()),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.JournalService",
                with_message_limits!(
                    pb::journal_service_server::JournalServiceServer::new(journal),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.CatalogueService",
                with_message_limits!(
                    pb::catalogue_service_server::CatalogueServiceServer::new(catalogue_api),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.ReportService",
                with_message_limits!(
                    pb::report_service_server::ReportServiceServer::new(reports::ReportApi::new(
                        store.clone(),
                        validated.member.clone(),
                        forwarder.clone(),
                    )),
                    limits
                ),
            )
            .add_service(
                "fedmesh.v1.AdminService",
                with_message_limits!(
                    pb::admin_service_server::AdminServiceServer::new(
                        fedmesh_grpc::backup::AdminApi::new(
                            store.clone(),
                            fedmesh_core::Role::Admin,
                            limits.max_encoding_message_bytes,
                        )
                    ),
                    limits
                ),
            );
        let closer = closing::Closer::new(
            store.clone(),
            validated.member.clone(),
            config.usage.close_after_days,
        );
        tracing::info!(member = %validated.member, addr = %local_addr, advertise = %advertise, data_dir = %config.data_dir.display(), "node listening");
        Ok(Self {
            server,
            local_addr,
            store,
            tls: tls_handle,
            registration,
            catalogue,
            crl,
            forwarder,
            incidents: incident_api,
            clock_check: Duration::from_millis(config.incidents.clock_check_interval_ms),
            idempotency: config.idempotency.clone(),
            compaction: config.journal.clone(),
            storage: config.storage.clone(),
            retention: config.retention.clone(),
            closer,
            close_check: Duration::from_millis(config.usage.close_check_interval_ms),
            notifier,
            metrics,
            cert: config.tls.cert.clone(),
        })
    }

    /// The address the node listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the `/metrics` listener, when enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(_, listener)| listener.local_addr().ok())
    }

    /// The TLS configuration in force; `reload()` re-reads certificate, key, CA and CRL for
    /// new connections (SIGHUP in the binary).
    pub fn tls(&self) -> ReloadableServerConfig {
        self.tls.clone()
    }

    /// Serves until `shutdown` completes: stops heartbeating, drains calls in progress, and
    /// flushes the database.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), NodeError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let registration = self
            .registration
            .map(|registration| tokio::spawn(registration.run(stop_rx.clone())));
        let catalogue = self
            .catalogue
            .map(|follower| tokio::spawn(follower.run(stop_rx.clone())));
        let crl = self
            .crl
            .map(|follower| tokio::spawn(follower.run(stop_rx.clone())));
        let forwarder = Some(tokio::spawn(self.forwarder.run(stop_rx.clone())));
        let expiry = Some(tokio::spawn(fedmesh_grpc::expiry::watch_certificate(
            self.cert,
            stop_rx.clone(),
        )));
        let rotation = Some(tokio::spawn(fedmesh_grpc::expiry::follow_rotation(
            self.tls.clone(),
            stop_rx.clone(),
        )));
        let clocks = Some(tokio::spawn(
            self.incidents
                .watch_clocks(self.clock_check, stop_rx.clone()),
        ));
        let notifier = self
            .notifier
            .map(|notifier| tokio::spawn(notifier.run(stop_rx.clone())));
        let requests = Some(tokio::spawn(expire_requests(
            self.store.clone(),
            self.idempotency,
            stop_rx.clone(),
        )));
        let compaction = Some(tokio::spawn(fedmesh_grpc::compaction::run(
            self.store.clone(),
            vec![
                fedmesh_store::compact::LogKind::Journal,
                fedmesh_store::compact::LogKind::Catalogue,
            ],
            self.compaction,
            stop_rx.clone(),
        )));
        let probe = Some(tokio::spawn(fedmesh_grpc::store_probe::run(
            self.store.clone(),
            Duration::from_millis(self.storage.probe_interval_ms),
            stop_rx.clone(),
        )));
        let defrag = Some(tokio::spawn(fedmesh_grpc::defrag::run(
            self.store.clone(),
            self.storage,
            stop_rx.clone(),
        )));
        let retention = Some(tokio::spawn(fedmesh_grpc::retention::run(
            self.store.clone(),
            self.retention,
            stop_rx.clone(),
        )));
        let closing = Some(tokio::spawn(
            self.closer.run(self.close_check, stop_rx.clone()),
        ));
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
        for task in [
            registration,
            catalogue,
            crl,
            forwarder,
            clocks,
            notifier,
            requests,
            compaction,
            defrag,
            probe,
            retention,
            closing,
            metrics,
            expiry,
            rotation,
        ]
        .into_iter()
        .flatten()
        {
            let _ = task.await;
        }
        self.store.flush().await?;
        tracing::info!("node stopped, database flushed");
        Ok(result?)
    }
}

/// Removes idempotency records older than the retention, at start and then every interval.
async fn expire_requests(
    store: Store,
    settings: config::Idempotency,
    mut stop: watch::Receiver<bool>,
) {
    let retention = i64::from(settings.retention_days) * 86_400;
    loop {
        let before = fedmesh_grpc::figures::now() - retention;
        let sweep = store.clone();
        match tokio::task::spawn_blocking(move || sweep.expire_requests(before)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(expired)) => {
                tracing::info!(
                    expired,
                    retention_days = settings.retention_days,
                    "idempotency records expired"
                );
            }
            Ok(Err(error)) => tracing::error!(%error, "cannot expire idempotency records"),
            Err(error) => tracing::error!(%error, "the idempotency sweep failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(settings.sweep_interval_ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
