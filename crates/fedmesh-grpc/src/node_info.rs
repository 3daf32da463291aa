//! `NodeService`, served by nodes and the coordinator alike: who the caller is, what the server
//! is.

use std::time::SystemTime;

use fedmesh_core::{Identity, Role};
use fedmesh_proto::pb;
use tonic::{Request, Response, Status};

use crate::auth::caller;

/// What a server says about itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The server's own identity.
    pub identity: Identity,
    /// The schema version of its database.
    pub schema_version: u32,
    /// When the process started.
    pub started_at: SystemTime,
}

/// The software version of this build.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

fn role(role: Role) -> pb::Role {
    match role {
        Role::Node => pb::Role::Node,
        Role::Admin => pb::Role::Admin,
        Role::Agent => pb::Role::Agent,
        Role::Coordinator => pb::Role::Coordinator,
        Role::Operator => pb::Role::Operator,
    }
}

/// What a party reports in `GetNodeStatus` besides its info.
#[derive(Clone)]
pub struct StatusFn(pub std::sync::Arc<dyn Fn() -> pb::GetNodeStatusResponse + Send + Sync>);

impl std::fmt::Debug for StatusFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusFn")
    }
}

/// The `NodeService` implementation.
#[derive(Debug, Clone)]
pub struct NodeInfoService {
    info: ServerInfo,
    status: Option<StatusFn>,
    store_health: Option<StoreHealth>,
}

/// Whether the server's database accepts writes ([`fedmesh_store::Store::watch_write_health`]).
pub type StoreHealth = tokio::sync::watch::Receiver<Option<fedmesh_store::health::WriteFailure>>;

impl NodeInfoService {
    /// Serves `info`, and `status` for `GetNodeStatus` with what `store_health` says.
    pub fn new(
        info: ServerInfo,
        status: Option<StatusFn>,
        store_health: Option<StoreHealth>,
    ) -> Self {
        Self {
            info,
            status,
            store_health,
        }
    }

    fn info(&self) -> pb::GetNodeInfoResponse {
        pb::GetNodeInfoResponse {
            identity: self.info.identity.to_uri(),
            member_id: self
                .info
                .identity
                .member()
                .map(ToString::to_string)
                .unwrap_or_default(),
            software_version: SOFTWARE_VERSION.to_owned(),
            schema_version: self.info.schema_version,
            started_at: Some(self.info.started_at.into()),
        }
    }
}

#[tonic::async_trait]
impl pb::node_service_server::NodeService for NodeInfoService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let identity = caller(&request)?;
        Ok(Response::new(pb::WhoAmIResponse {
            identity: identity.to_uri(),
            federation: identity.federation.to_string(),
            role: role(identity.role()).into(),
            member_id: identity
                .member()
                .map(ToString::to_string)
                .unwrap_or_default(),
            name: identity.name().unwrap_or_default().to_owned(),
            server_member_id: self
                .info
                .identity
                .member()
                .map(ToString::to_string)
                .unwrap_or_default(),
        }))
    }

    async fn get_node_info(
        &self,
        _request: Request<pb::GetNodeInfoRequest>,
    ) -> Result<Response<pb::GetNodeInfoResponse>, Status> {
        Ok(Response::new(self.info()))
    }

    async fn get_node_status(
        &self,
        _request: Request<pb::GetNodeStatusRequest>,
    ) -> Result<Response<pb::GetNodeStatusResponse>, Status> {
        let mut status = self.status.as_ref().map(|f| (f.0)()).unwrap_or_default();
        status.info = Some(self.info());
        if let Some(failure) = self.store_health.as_ref().and_then(|h| h.borrow().clone()) {
            status.storage_problem = failure.reason;
            status.storage_problem_since = Some(prost_types::Timestamp {
                seconds: failure.since_unix,
                nanos: 0,
            });
        }
        Ok(Response::new(status))
    }
}
