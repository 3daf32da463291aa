//! Reaching other members' nodes: their endpoints come from the coordinator's registry and
//! are remembered, so that the node still reaches them while the coordinator is down.

use fedmesh_core::{FederationName, Identity, MemberId};
use fedmesh_grpc::ClientOptions;
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_store::Store;
use fedmesh_tls::TlsFiles;

/// How long a registry lookup may take when the endpoint is already known.
const KNOWN_ENDPOINT_LOOKUP: std::time::Duration = std::time::Duration::from_millis(1000);
/// How long a registry lookup may take when it is the only way to find the endpoint.
const UNKNOWN_ENDPOINT_LOOKUP: std::time::Duration = std::time::Duration::from_secs(4);

/// Where other members' nodes are, and channels to them.
#[derive(Debug, Clone)]
pub struct Peers {
    federation: FederationName,
    store: Store,
    coordinator: Option<Channel>,
    tls: TlsFiles,
    options: ClientOptions,
    removed: fedmesh_grpc::RemovedMembers,
}

impl Peers {
    /// Peers of `federation` found through `coordinator` (when configured), reached with
    /// `tls`.
    pub fn new(
        federation: FederationName,
        store: Store,
        coordinator: Option<Channel>,
        tls: TlsFiles,
        options: ClientOptions,
        removed: fedmesh_grpc::RemovedMembers,
    ) -> Self {
        Self {
            federation,
            store,
            coordinator,
            tls,
            options,
            removed,
        }
    }

    /// Whether `member` was removed from the federation: it is no longer reached.
    pub fn is_removed(&self, member: &str) -> bool {
        self.removed.contains(member)
    }

    /// A channel to `member`'s node (which must prove it is that member's node), or why
    /// there is none now.
    pub async fn channel(&self, member: &str) -> Result<Channel, String> {
        if self.is_removed(member) {
            return Err(format!("member {member} was removed from the federation"));
        }
        let member_id: MemberId = member
            .parse()
            .map_err(|e: fedmesh_core::IdentityError| e.to_string())?;
        let endpoint = self.endpoint(member).await?;
        let expected = Identity::node(self.federation.clone(), member_id);
        fedmesh_grpc::connect_to(&endpoint, &self.tls, self.options.clone(), expected)
            .map_err(|e| e.to_string())
    }

    async fn endpoint(&self, member: &str) -> Result<String, String> {
        let remembered = self
            .store
            .peer_endpoint(member)
            .map_err(|e| e.to_string())?;
        if let Some(coordinator) = &self.coordinator {
            // With an endpoint already known, an unreachable coordinator may not hold the call
            // up: its answer is waited for briefly, then the cached one is used.
            let patience = if remembered.is_some() {
                KNOWN_ENDPOINT_LOOKUP
            } else {
                UNKNOWN_ENDPOINT_LOOKUP
            };
            let mut registry = RegistryServiceClient::new(coordinator.clone());
            let lookup = registry.get_node(pb::GetNodeRequest {
                member_id: member.to_owned(),
            });
            match tokio::time::timeout(patience, lookup).await {
                Ok(Ok(response)) => {
                    if let Some(node) = response.into_inner().node {
                        if remembered.as_deref() != Some(node.endpoint.as_str())
                            && let Err(error) = self.store.set_peer_endpoint(member, &node.endpoint)
                        {
                            tracing::warn!(%error, member, "cannot remember a peer endpoint");
                        }
                        return Ok(node.endpoint);
                    }
                }
                Ok(Err(status)) => {
                    tracing::debug!(member, code = ?status.code(), "registry lookup failed, using the remembered endpoint")
                }
                Err(_) => {
                    tracing::debug!(
                        member,
                        "registry lookup too slow, using the remembered endpoint"
                    )
                }
            }
        }
        remembered.ok_or_else(|| format!("no known endpoint for {member}'s node"))
    }
}
