//! `fedmesh nodes list|show`: the coordinator's registry of member nodes, as its operators and
//! every member's admins may read it — endpoint, liveness, last heartbeat, software version
//! and journal revision.

use anyhow::Result;
use clap::Subcommand;
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;

use crate::cli::{Connection, call};
use crate::{json, say};

/// `fedmesh nodes ...` (on the coordinator).
#[derive(Debug, Subcommand)]
pub enum NodesCommand {
    /// Every registered node, by member id.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One member's node.
    Show {
        /// The member id.
        member: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `fedmesh nodes` subcommand.
pub async fn nodes(connect: &Connection, command: NodesCommand) -> Result<()> {
    let endpoint = &connect.endpoint;
    let mut client = RegistryServiceClient::new(connect.channel()?);
    let now = fedmesh_grpc::figures::now();
    match command {
        NodesCommand::List { json } => {
            let mut nodes = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = call(
                    endpoint,
                    client.list_nodes(pb::ListNodesRequest {
                        page_size: 500,
                        page_token,
                    }),
                )
                .await?;
                nodes.extend(page.nodes);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            nodes.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            if json {
                let list = pb::ListNodesResponse {
                    nodes,
                    next_page_token: String::new(),
                };
                return json::print("fedmesh.v1.ListNodesResponse", &list);
            }
            if nodes.is_empty() {
                say!("no node is registered");
                return Ok(());
            }
            let width = nodes
                .iter()
                .map(|n| n.member_id.chars().count())
                .max()
                .unwrap_or(0)
                .max("MEMBER".len());
            say!(
                "{:width$}  {:6}  {:>14}  {:10}  {:>8}  ENDPOINT",
                "MEMBER",
                "STATUS",
                "LAST HEARTBEAT",
                "VERSION",
                "REVISION"
            );
            for node in &nodes {
                say!(
                    "{:width$}  {:6}  {:>14}  {:10}  {:>8}  {}",
                    node.member_id,
                    status(node),
                    heartbeat(node, now),
                    node.software_version,
                    node.journal_revision,
                    node.endpoint
                );
            }
        }
        NodesCommand::Show { member, json } => {
            let node = call(
                endpoint,
                client.get_node(pb::GetNodeRequest { member_id: member }),
            )
            .await?
            .node
            .unwrap_or_default();
            if json {
                return json::print("fedmesh.v1.RegisteredNode", &node);
            }
            say!("member:          {}", node.member_id);
            say!("identity:        {}", node.identity);
            say!("endpoint:        {}", node.endpoint);
            say!("status:          {}", status(&node));
            say!("last heartbeat:  {}", heartbeat(&node, now));
            say!(
                "registered:      {}",
                node.registered_at
                    .map_or("never".to_owned(), |t| crate::times::local(Some(&t)))
            );
            say!("version:         {}", node.software_version);
            say!("journal:         revision {}", node.journal_revision);
        }
    }
    Ok(())
}

fn status(node: &pb::RegisteredNode) -> &'static str {
    match node.status() {
        pb::NodeStatus::Active => "active",
        pb::NodeStatus::Stale => "STALE",
        pb::NodeStatus::Unspecified => "?",
    }
}

/// How long ago the node's last heartbeat was, e.g. `4 s ago`.
fn heartbeat(node: &pb::RegisteredNode, now: i64) -> String {
    node.last_heartbeat_at
        .as_ref()
        .map_or("never".to_owned(), |at| crate::times::from_now(at, now))
}
