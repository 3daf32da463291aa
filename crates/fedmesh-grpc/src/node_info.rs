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
    }
}

/// The `NodeService` implementation.
#[derive(Debug, Clone)]
pub struct NodeInfoService {
    info: ServerInfo,
}

impl NodeInfoService {
    /// Serves `info`.
    pub fn new(info: ServerInfo) -> Self {
        Self { info }
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
        Ok(Response::new(pb::GetNodeInfoResponse {
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
        }))
    }
}
