//! Keeping the node in the coordinator's registry: register, then heartbeat at the interval the
//! coordinator asks for. Failures are retried with exponential backoff and jitter; a
//! coordinator that lost the registration (NOT_FOUND on heartbeat) gets a new one.
//!
//! The node also keeps a copy of the registry (every node's endpoint) in its database,
//! refreshed at registration and every [`REGISTRY_REFRESH_HEARTBEATS`] heartbeats, so that it
//! reaches other members while the coordinator is unreachable, even those it never called.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_grpc::SOFTWARE_VERSION;
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use tokio::sync::watch;
use tonic::Code;

/// Heartbeats between two refreshes of the cached registry.
pub const REGISTRY_REFRESH_HEARTBEATS: u32 = 10;

/// What the registration loop needs.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The channel to the coordinator.
    pub channel: Channel,
    /// The endpoint this node advertises.
    pub endpoint: String,
    /// First retry delay.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// The node's store, whose journal revision each heartbeat reports.
    pub store: fedmesh_store::Store,
    /// Where the outcome of the last exchange with the coordinator is kept.
    pub link: Link,
}

/// The outcome of the node's last exchange with the coordinator.
#[derive(Debug, Clone, Default)]
pub struct LinkState {
    /// When the coordinator last answered.
    pub last_contact: Option<std::time::SystemTime>,
    /// The last error, when the last exchange failed.
    pub error: Option<String>,
}

/// Shared [`LinkState`].
pub type Link = std::sync::Arc<std::sync::Mutex<LinkState>>;

fn record(link: &Link, outcome: Result<(), &tonic::Status>) {
    let mut state = match link.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    match outcome {
        Ok(()) => {
            state.last_contact = Some(std::time::SystemTime::now());
            state.error = None;
        }
        Err(status) => {
            state.error = Some(format!("{:?}: {}", status.code(), status.message()));
        }
    }
}

/// Exponential backoff with jitter, reset after a success.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.current = self.initial;
    }

    /// The next delay: uniformly in [current/2, current], then doubles up to the maximum.
    pub(crate) fn next(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = base / 2;
        half + half.mul_f64(unit_random())
    }
}

/// A random number in [0, 1), independent between calls, tasks and processes (so that nodes
/// restarted together do not retry together): std's randomly keyed hasher, no extra crate.
pub(crate) fn unit_random() -> f64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0);
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// A periodic interval spread by ±10 %, so that nodes started together drift apart instead of
/// calling the coordinator in step.
pub(crate) fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + 0.2 * unit_random())
}

impl Registration {
    /// Runs until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut client = RegistryServiceClient::new(self.channel.clone());
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        let mut registered: Option<Duration> = None;
        let mut heartbeats = 0u32;
        loop {
            let delay = match registered {
                None => match self
                    .register(&mut client)
                    .await
                    .inspect(|_| record(&self.link, Ok(())))
                    .inspect_err(|s| record(&self.link, Err(s)))
                {
                    Ok(interval) => {
                        backoff.reset();
                        registered = Some(interval);
                        heartbeats = 0;
                        jittered(interval)
                    }
                    Err(status)
                        if matches!(
                            status.code(),
                            Code::InvalidArgument | Code::PermissionDenied
                        ) =>
                    {
                        // Retrying cannot help: the configuration or the certificate is wrong.
                        tracing::error!(code = ?status.code(), error = status.message(), "the coordinator refuses this node's registration; fix the configuration and restart");
                        return;
                    }
                    Err(status) => {
                        let delay = backoff.next();
                        tracing::warn!(code = ?status.code(), error = status.message(), retry_in_ms = delay.as_millis() as u64, "registration with the coordinator failed");
                        delay
                    }
                },
                Some(interval) => {
                    match client
                        .heartbeat(pb::HeartbeatRequest {
                            // What anti-entropy and the replication-lag metric compare with.
                            journal_revision: self
                                .store
                                .journal_bounds()
                                .map_or(0, |(_, last)| last),
                        })
                        .await
                        .inspect(|_| record(&self.link, Ok(())))
                        .inspect_err(|s| record(&self.link, Err(s)))
                    {
                        Ok(response) => {
                            backoff.reset();
                            heartbeats = heartbeats.wrapping_add(1);
                            // Only after a heartbeat went through: a coordinator that does not
                            // answer is not asked for more.
                            if heartbeats.is_multiple_of(REGISTRY_REFRESH_HEARTBEATS) {
                                self.cache_registry(&mut client).await;
                            }
                            // The coordinator may ask for another pace at any time.
                            if let Some(asked) = response
                                .into_inner()
                                .heartbeat_interval
                                .and_then(|d| Duration::try_from(d).ok())
                                .filter(|d| !d.is_zero())
                            {
                                registered = Some(asked);
                                jittered(asked)
                            } else {
                                jittered(interval)
                            }
                        }
                        Err(status) if status.code() == Code::NotFound => {
                            tracing::warn!(
                                "coordinator lost this node's registration, registering again"
                            );
                            registered = None;
                            Duration::ZERO
                        }
                        Err(status) => {
                            let delay = backoff.next().min(interval);
                            tracing::warn!(code = ?status.code(), error = status.message(), retry_in_ms = delay.as_millis() as u64, "heartbeat failed");
                            delay
                        }
                    }
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|stopped| *stopped) => return,
            }
        }
    }

    /// Copies every node's endpoint from the registry into the database.
    async fn cache_registry(&self, client: &mut RegistryServiceClient<Channel>) {
        let mut page_token = String::new();
        loop {
            let page = match client
                .list_nodes(pb::ListNodesRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                })
                .await
            {
                Ok(page) => page.into_inner(),
                Err(status) => {
                    tracing::debug!(code = ?status.code(), "cannot refresh the cached registry now");
                    return;
                }
            };
            for node in &page.nodes {
                if let Err(error) = self
                    .store
                    .set_peer_endpoint(&node.member_id, &node.endpoint)
                {
                    tracing::warn!(%error, "cannot cache the registry");
                    return;
                }
            }
            if page.next_page_token.is_empty() {
                return;
            }
            page_token = page.next_page_token;
        }
    }

    async fn register(
        &self,
        client: &mut RegistryServiceClient<Channel>,
    ) -> Result<Duration, tonic::Status> {
        let response = client
            .register_node(pb::RegisterNodeRequest {
                endpoint: self.endpoint.clone(),
                software_version: SOFTWARE_VERSION.to_owned(),
            })
            .await?
            .into_inner();
        let interval = response
            .heartbeat_interval
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(10));
        tracing::info!(endpoint = %self.endpoint, heartbeat_ms = interval.as_millis() as u64, "registered with the coordinator");
        // Registered means the registry copy is fresh too (the link reports up after this).
        self.cache_registry(client).await;
        Ok(interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_maximum_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut previous_cap = Duration::ZERO;
        for _ in 0..10 {
            let cap = backoff.current;
            let delay = backoff.next();
            assert!(
                delay >= cap / 2 && delay <= cap,
                "{delay:?} not within [{:?}, {cap:?}]",
                cap / 2
            );
            assert!(cap >= previous_cap);
            previous_cap = cap;
        }
        assert_eq!(backoff.current, Duration::from_millis(1000));
        backoff.reset();
        assert_eq!(backoff.current, Duration::from_millis(100));
    }
}
