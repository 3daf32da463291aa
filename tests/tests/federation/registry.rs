//! The coordinator's registry as members and operators see it: registration, heartbeats,
//! staleness, paging, validation, persistence.

use std::time::{Duration, SystemTime};

use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_tests::{STALE_AFTER_MS, TestFederation, wait_for};
use tonic::Code;

const PATIENCE: Duration = Duration::from_secs(10);

async fn list(
    client: &mut RegistryServiceClient<fedmesh_grpc::GrpcChannel>,
) -> Vec<pb::RegisteredNode> {
    client
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .map(|r| r.into_inner().nodes)
        .unwrap_or_default()
}

fn heartbeat_of(node: &pb::RegisteredNode) -> SystemTime {
    node.last_heartbeat_at
        .and_then(|t| SystemTime::try_from(t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[tokio::test]
async fn nodes_register_heartbeat_and_go_stale_when_stopped() {
    let mut fed = TestFederation::start(3).await;
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));

    let nodes = wait_for("all three nodes to register", PATIENCE, || {
        let mut registry = registry.clone();
        async move {
            let nodes = list(&mut registry).await;
            (nodes.len() == 3).then_some(nodes)
        }
    })
    .await;
    let members: Vec<&str> = nodes.iter().map(|n| n.member_id.as_str()).collect();
    assert_eq!(
        members,
        ["rennes2", "rouen", "unistra"],
        "ordered by member id"
    );
    for node in &nodes {
        let manifest = fed
            .running
            .manifest
            .members
            .iter()
            .find(|m| m.member_id.as_deref() == Some(node.member_id.as_str()))
            .unwrap();
        assert_eq!(node.endpoint, manifest.endpoint);
        assert_eq!(
            node.identity,
            fed.uri(&format!("member/{}/node", node.member_id))
        );
        assert_eq!(node.software_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(node.status(), pb::NodeStatus::Active);
    }

    // Heartbeats move the last-heard time forward.
    let first = heartbeat_of(&nodes[2]);
    wait_for("a later heartbeat from unistra", PATIENCE, || {
        let mut registry = registry.clone();
        async move {
            let node = registry
                .get_node(pb::GetNodeRequest {
                    member_id: "unistra".into(),
                })
                .await
                .ok()?
                .into_inner()
                .node?;
            (heartbeat_of(&node) > first).then_some(())
        }
    })
    .await;

    // Stop unistra: it goes stale; the others stay active.
    let unistra = fed
        .running
        .manifest
        .members
        .iter()
        .position(|m| m.member_id.as_deref() == Some("unistra"))
        .unwrap();
    fed.running.stop_member(unistra).await.unwrap();
    let nodes = wait_for(
        "unistra to be reported stale",
        PATIENCE + Duration::from_millis(STALE_AFTER_MS),
        || {
            let mut registry = registry.clone();
            async move {
                let nodes = list(&mut registry).await;
                nodes
                    .iter()
                    .any(|n| n.member_id == "unistra" && n.status() == pb::NodeStatus::Stale)
                    .then_some(nodes)
            }
        },
    )
    .await;
    for node in nodes.iter().filter(|n| n.member_id != "unistra") {
        assert_eq!(node.status(), pb::NodeStatus::Active, "{}", node.member_id);
    }
    let status = registry
        .get_node(pb::GetNodeRequest {
            member_id: "unistra".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .node
        .unwrap()
        .status();
    assert_eq!(status, pb::NodeStatus::Stale);
}

#[tokio::test]
async fn the_registry_pages_and_survives_a_restart() {
    let fed = TestFederation::start(3).await;
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    wait_for("all three nodes to register", PATIENCE, || {
        let mut registry = registry.clone();
        async move { (list(&mut registry).await.len() == 3).then_some(()) }
    })
    .await;

    let first = registry
        .list_nodes(pb::ListNodesRequest {
            page_size: 2,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.nodes.len(), 2);
    assert!(!first.next_page_token.is_empty());
    let second = registry
        .list_nodes(pb::ListNodesRequest {
            page_size: 2,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .nodes
            .iter()
            .map(|n| n.member_id.as_str())
            .collect::<Vec<_>>(),
        ["unistra"]
    );
    assert!(second.next_page_token.is_empty());

    // The registry is on disk: after the federation stops, the coordinator's database holds it.
    let data = fed.dir().join("coordinator/data");
    let (running, _dir) = fed.into_parts();
    running.shutdown().await.unwrap();
    let store = fedmesh_store::Store::open(&data).unwrap();
    let stored = store.list_nodes("", 10).unwrap();
    assert_eq!(stored.len(), 3);
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let fed = TestFederation::start(1).await;
    let coordinator = fed.coordinator().endpoint.clone();
    let node = fed.member(0);
    let mut as_node =
        RegistryServiceClient::new(fed.channel(&coordinator, &node.node_cert, &node.node_key));

    for (endpoint, version, field) in [
        ("http://localhost:1", "0.1.0", "endpoint"),
        ("https://localhost", "0.1.0", "endpoint"),
        ("", "0.1.0", "endpoint"),
        ("https://localhost:1", "", "software_version"),
        ("https://localhost:1", "1.0 beta", "software_version"),
    ] {
        let status = as_node
            .register_node(pb::RegisterNodeRequest {
                endpoint: endpoint.into(),
                software_version: version.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{endpoint} {version}: {status:?}"
        );
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{}",
            status.message()
        );
    }

    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    let status = registry
        .get_node(pb::GetNodeRequest {
            member_id: "Not A Member".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("member_id:"),
        "{}",
        status.message()
    );
    let status = registry
        .get_node(pb::GetNodeRequest {
            member_id: "lille".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    for (page_size, page_token, field) in [(-1, "", "page_size"), (0, "%%%", "page_token")] {
        let status = registry
            .list_nodes(pb::ListNodesRequest {
                page_size,
                page_token: page_token.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status.message().starts_with(&format!("{field}:")),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn the_crl_is_served_and_follows_revocations() {
    let fed = TestFederation::start(1).await;
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    let before = registry
        .get_crl(pb::GetCrlRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!before.crl_der.is_empty());
    assert!(before.this_update.is_some());

    let leaver = fed.issue(&fed.uri("member/unistra/admin/leaver"));
    fed.running
        .pki
        .revoke(&std::fs::read_to_string(&leaver.cert_path).unwrap())
        .unwrap();
    let after = registry
        .get_crl(pb::GetCrlRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(
        after.crl_der, before.crl_der,
        "a revocation re-issues the CRL"
    );
    assert!(
        after.crl_der.len() > before.crl_der.len(),
        "the new CRL lists the revoked certificate"
    );
}
