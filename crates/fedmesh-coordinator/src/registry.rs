//! `RegistryService`: member nodes register and heartbeat; everyone reads the directory and the
//! federation CRL. The member id always comes from the caller's certificate.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use fedmesh_core::liveness::Liveness;
use fedmesh_core::{MemberId, Role};
use fedmesh_grpc::error::{bounded_page, page_size};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tonic::{Request, Response, Status};

use crate::config::CoordinatorConfig;

const MAX_VERSION_LEN: usize = 64;
const MAX_REASON_LEN: usize = 500;

/// What the registry needs to offboard a member at once: the removed set the auth layer
/// checks, the open connections to close, and its own identity (the actor of the tenancy
/// changes it records).
#[derive(Debug, Clone)]
pub struct Offboarding {
    /// The set the auth layer refuses.
    pub removed: fedmesh_grpc::RemovedMembers,
    /// The server's open connections.
    pub connections: fedmesh_grpc::connections::Connections,
    /// The coordinator's identity URI.
    pub identity: String,
}

/// The registry service.
#[derive(Debug, Clone)]
pub struct RegistryApi {
    store: Store,
    heartbeat_interval: Duration,
    staleness: crate::liveness::Staleness,
    crl: Option<PathBuf>,
    registered: std::sync::Arc<tokio::sync::Notify>,
    offboarding: Offboarding,
}

impl RegistryApi {
    /// A registry over `store`, with the intervals and CRL of `config` and the staleness rule
    /// `staleness` (which each heartbeat's handling time feeds); `registered` is notified at
    /// each registration and removal.
    pub fn new(
        store: Store,
        config: &CoordinatorConfig,
        staleness: crate::liveness::Staleness,
        registered: std::sync::Arc<tokio::sync::Notify>,
        offboarding: Offboarding,
    ) -> Self {
        Self {
            registered,
            offboarding,
            store,
            heartbeat_interval: Duration::from_millis(config.registry.heartbeat_interval_ms),
            staleness,
            crl: config.tls.crl.clone(),
        }
    }

    /// The entry with its status derived from the time of its last heartbeat.
    fn with_status(
        mut node: pb::RegisteredNode,
        judged: &crate::liveness::Judgement,
    ) -> pb::RegisteredNode {
        node.status = match judged.of(&node) {
            Liveness::Active => pb::NodeStatus::Active,
            Liveness::Stale => pb::NodeStatus::Stale,
        }
        .into();
        node
    }
}

/// The member id of a calling node (the authorization table lets only nodes through).
fn calling_member<T>(request: &Request<T>) -> Result<MemberId, Status> {
    let identity = caller(request)?;
    match (identity.role(), identity.member()) {
        (Role::Node, Some(member)) => Ok(member.clone()),
        _ => Err(ServiceError::PermissionDenied("only member nodes register".into()).into()),
    }
}

fn validate_endpoint(endpoint: &str) -> Result<(), ServiceError> {
    fedmesh_core::endpoint::validate(endpoint)
        .map_err(|message| ServiceError::invalid("endpoint", message))
}

fn validate_version(version: &str) -> Result<(), ServiceError> {
    let field = "software_version";
    if version.is_empty() || version.len() > MAX_VERSION_LEN {
        return Err(ServiceError::invalid(
            field,
            format!("must be 1 to {MAX_VERSION_LEN} bytes"),
        ));
    }
    if !version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c))
    {
        return Err(ServiceError::invalid(
            field,
            "must be a semantic version (letters, digits, '.', '-', '+')",
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::registry_service_server::RegistryService for RegistryApi {
    async fn register_node(
        &self,
        request: Request<pb::RegisterNodeRequest>,
    ) -> Result<Response<pb::RegisterNodeResponse>, Status> {
        let member = calling_member(&request)?;
        let identity = caller(&request)?.to_uri();
        let body = request.into_inner();
        validate_endpoint(&body.endpoint)?;
        validate_version(&body.software_version)?;
        let now = SystemTime::now();
        let previous = self
            .store
            .get_node(member.as_str())
            .map_err(ServiceError::from)?;
        let node = pb::RegisteredNode {
            member_id: member.to_string(),
            identity,
            endpoint: body.endpoint,
            software_version: body.software_version,
            registered_at: previous
                .as_ref()
                .and_then(|p| p.registered_at)
                .or_else(|| Some(now.into())),
            last_heartbeat_at: Some(now.into()),
            status: pb::NodeStatus::Active.into(),
            journal_revision: previous.map(|p| p.journal_revision).unwrap_or_default(),
        };
        self.store.put_node(&node).map_err(ServiceError::from)?;
        self.store.flush().await.map_err(ServiceError::from)?;
        tracing::info!(member = %member, endpoint = %node.endpoint, version = %node.software_version, "node registered");
        self.registered.notify_one();
        Ok(Response::new(pb::RegisterNodeResponse {
            node: Some(node),
            heartbeat_interval: prost_types::Duration::try_from(self.heartbeat_interval).ok(),
            stale_after: prost_types::Duration::try_from(self.staleness.stale_after()).ok(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let started = std::time::Instant::now();
        let member = calling_member(&request)?;
        let body = request.into_inner();
        let mut node = self
            .store
            .get_node(member.as_str())
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::NotFound(format!("no registration of member {member}")))?;
        let now = SystemTime::now();
        node.last_heartbeat_at = Some(now.into());
        node.journal_revision = body.journal_revision;
        self.store.put_node(&node).map_err(ServiceError::from)?;
        self.store.flush().await.map_err(ServiceError::from)?;
        // What this heartbeat waited here delays the node's next one as much.
        self.staleness.record_answer(started.elapsed());
        tracing::debug!(member = %member, "heartbeat");
        Ok(Response::new(pb::HeartbeatResponse {
            recorded_at: Some(now.into()),
            heartbeat_interval: prost_types::Duration::try_from(self.heartbeat_interval).ok(),
        }))
    }

    async fn get_node(
        &self,
        request: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::GetNodeResponse>, Status> {
        let member_id = request.into_inner().member_id;
        let member: MemberId = member_id
            .parse()
            .map_err(|e: fedmesh_core::IdentityError| {
                ServiceError::invalid("member_id", e.to_string())
            })?;
        let node = self
            .store
            .get_node(member.as_str())
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::no_member(member.as_str()))?;
        Ok(Response::new(pb::GetNodeResponse {
            node: Some(Self::with_status(
                node,
                &self.staleness.at(SystemTime::now()),
            )),
        }))
    }

    async fn list_nodes(
        &self,
        request: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let body = request.into_inner();
        let size = page_size(body.page_size, 100, 1000)?;
        if !body.page_token.is_empty() && body.page_token.parse::<MemberId>().is_err() {
            return Err(
                ServiceError::invalid("page_token", "not a token from a previous page").into(),
            );
        }
        // One more than asked tells whether another page follows.
        let judged = self.staleness.at(SystemTime::now());
        let nodes = self
            .store
            .list_nodes(&body.page_token, size + 1)
            .map_err(ServiceError::from)?
            .into_iter()
            .map(|n| Self::with_status(n, &judged))
            .collect();
        let (nodes, next_page_token) =
            bounded_page(nodes, size, self.store.max_entry_bytes(), |n| {
                n.member_id.clone()
            });
        Ok(Response::new(pb::ListNodesResponse {
            nodes,
            next_page_token,
        }))
    }

    async fn get_crl(
        &self,
        _request: Request<pb::GetCrlRequest>,
    ) -> Result<Response<pb::GetCrlResponse>, Status> {
        let removed_members = self.store.removed_members().map_err(ServiceError::from)?;
        let Some(path) = &self.crl else {
            return Ok(Response::new(pb::GetCrlResponse {
                removed_members,
                ..Default::default()
            }));
        };
        let (crl_der, this_update) = fedmesh_tls::config::load_crl_der(path).map_err(|e| {
            tracing::error!(error = %e, "cannot read the federation crl");
            ServiceError::Unavailable("the federation CRL cannot be read on the coordinator".into())
        })?;
        Ok(Response::new(pb::GetCrlResponse {
            crl_der,
            this_update: Some(prost_types::Timestamp {
                seconds: this_update,
                nanos: 0,
            }),
            removed_members,
        }))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let body = request.into_inner();
        let member: MemberId =
            body.member_id
                .parse()
                .map_err(|e: fedmesh_core::IdentityError| {
                    ServiceError::invalid("member_id", e.to_string())
                })?;
        let reason = body.reason.trim();
        if reason.is_empty() || reason.len() > MAX_REASON_LEN {
            return Err(ServiceError::invalid(
                "reason",
                format!("must be 1 to {MAX_REASON_LEN} bytes"),
            )
            .into());
        }
        // Every member's admins read it.
        fedmesh_core::text::check("reason", reason, fedmesh_core::text::Lines::One)
            .map_err(ServiceError::from)?;
        let now = SystemTime::now();
        let removed = self
            .store
            .remove_member(&pb::RemovedMember {
                member_id: member.to_string(),
                removed_at: Some(now.into()),
                reason: reason.to_owned(),
            })
            .map_err(ServiceError::from)?;
        // Refused from now on, and cut off where connected.
        self.offboarding.removed.insert(member.as_str());
        let closed = self.offboarding.connections.close_member(member.as_str());
        // Its offers leave the catalogue; its tenancies, as provider or subscriber, end.
        let (withdrawn, last) = self
            .store
            .withdraw_provider(member.as_str())
            .map_err(ServiceError::from)?;
        let at: prost_types::Timestamp = now.into();
        let ended = self
            .store
            .change_tenancies(|tenancy| {
                let subscription = tenancy.subscription.as_ref()?;
                let next = fedmesh_core::subscription::offboard(
                    subscription,
                    member.as_str(),
                    &self.offboarding.identity,
                    &removed.reason,
                    at,
                    at,
                )?;
                Some(fedmesh_store::Tenancy {
                    occupies: fedmesh_core::subscription::occupies_capacity(&next),
                    subscription: Some(next),
                    ..tenancy.clone()
                })
            })
            .map_err(ServiceError::from)?;
        self.store.flush().await.map_err(ServiceError::from)?;
        if let Some(revision) = last {
            self.store
                .catalogue_durable(revision)
                .await
                .map_err(ServiceError::from)?;
        }
        self.registered.notify_one();
        tracing::warn!(member = %member, reason = %removed.reason, withdrawn, tenancies = ended.len(), closed, "member removed from the federation");
        Ok(Response::new(pb::RemoveMemberResponse {
            removed: Some(removed),
            withdrawn_offers: i32::try_from(withdrawn).unwrap_or(i32::MAX),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_short_semver_like_strings() {
        assert!(validate_version("0.1.0").is_ok());
        assert!(validate_version("1.2.3-rc.1+build5").is_ok());
        for bad in ["", "1.0 beta", &"9".repeat(65), "1.0;drop"] {
            let err = validate_version(bad).unwrap_err().to_string();
            assert!(err.starts_with("software_version:"), "{bad}: {err}");
        }
    }
}
