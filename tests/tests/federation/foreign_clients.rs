//! Admins diagnose with tools that are not ours: Python's grpcio (reflection v1alpha) and
//! grpcurl. Both must list, describe and health-check a node and the coordinator over mTLS
//! with the certificates the federation hands out. The tools are installed by
//! `scripts/test.sh` (`tests/python/requirements.txt`).

use fedmesh_tests::{TestFederation, run_tool};

fn probe_script() -> String {
    format!("{}/python/probe.py", env!("CARGO_MANIFEST_DIR"))
}

fn host_port(endpoint: &str) -> &str {
    endpoint.trim_start_matches("https://")
}

#[tokio::test]
async fn python_grpcio_lists_describes_and_health_checks_a_node() {
    let fed = TestFederation::start(1).await;
    let node = fed.member(0);
    let (ca, cert, key) = (
        node.ca.display().to_string(),
        node.admin_cert.display().to_string(),
        node.admin_key.display().to_string(),
    );
    let script = probe_script();
    let target = host_port(&node.endpoint).to_owned();
    let output = tokio::task::spawn_blocking(move || {
        run_tool(
            "python3",
            &[
                &script,
                &target,
                &ca,
                &cert,
                &key,
                "fedmesh.v1.NodeService",
                "WhoAmI",
            ],
        )
    })
    .await
    .unwrap();
    let seen: serde_json::Value =
        serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));
    let services: Vec<&str> = seen["services"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    for expected in [
        "fedmesh.v1.NodeService",
        "fedmesh.v1.OfferService",
        "fedmesh.v1.SubscriptionService",
        "fedmesh.v1.UsageService",
        "fedmesh.v1.IncidentService",
        "fedmesh.v1.JournalService",
        "fedmesh.v1.ReportService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(&expected),
            "{expected} not listed: {services:?}"
        );
    }
    assert!(
        !services.contains(&"fedmesh.v1.RegistryService"),
        "a node does not serve the registry"
    );
    assert_eq!(seen["method"]["input"], ".fedmesh.v1.WhoAmIRequest");
    assert_eq!(seen["method"]["output"], ".fedmesh.v1.WhoAmIResponse");
    assert_eq!(seen["health"]["(server)"], "SERVING");
    assert_eq!(seen["health"]["fedmesh.v1.NodeService"], "SERVING");
    assert_eq!(seen["without_certificate"], "UNAVAILABLE");
}

#[tokio::test]
async fn grpcurl_lists_describes_and_calls_the_coordinator_and_a_node() {
    let fed = TestFederation::start(1).await;
    let party_args = |party: &fedmesh::federation::PartyManifest| {
        vec![
            "-cacert".to_owned(),
            party.ca.display().to_string(),
            "-cert".to_owned(),
            party.admin_cert.display().to_string(),
            "-key".to_owned(),
            party.admin_key.display().to_string(),
            host_port(&party.endpoint).to_owned(),
        ]
    };
    let node = party_args(fed.member(0));
    let coordinator = party_args(fed.coordinator());
    let grpcurl = |base: &[String], extra: &[&str]| {
        let mut args: Vec<&str> = base.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        run_tool("grpcurl", &args)
    };
    let (node_list, describe, whoami, health, coordinator_list, nodes) =
        tokio::task::spawn_blocking(move || {
            (
                grpcurl(&node, &["list"]),
                grpcurl(&node, &["describe", "fedmesh.v1.NodeService.WhoAmI"]),
                grpcurl(&node, &["fedmesh.v1.NodeService/WhoAmI"]),
                grpcurl(&node, &["grpc.health.v1.Health/Check"]),
                grpcurl(&coordinator, &["list"]),
                grpcurl(&coordinator, &["fedmesh.v1.RegistryService/ListNodes"]),
            )
        })
        .await
        .unwrap();
    assert!(
        node_list.lines().any(|l| l == "fedmesh.v1.OfferService"),
        "{node_list}"
    );
    assert!(
        describe.contains(
            "rpc WhoAmI ( .fedmesh.v1.WhoAmIRequest ) returns ( .fedmesh.v1.WhoAmIResponse )"
        ),
        "{describe}"
    );
    let me: serde_json::Value = serde_json::from_str(&whoami).unwrap();
    assert_eq!(me["identity"], fed.uri("member/unistra/admin/ops"));
    assert_eq!(me["role"], "ROLE_ADMIN");
    assert!(health.contains("\"SERVING\""), "{health}");
    for expected in [
        "fedmesh.v1.RegistryService",
        "fedmesh.v1.CatalogueService",
        "fedmesh.v1.MetricsService",
    ] {
        assert!(
            coordinator_list.lines().any(|l| l == expected),
            "{expected}: {coordinator_list}"
        );
    }
    // The node registers within moments; ListNodes shows at least the call working.
    assert!(nodes.starts_with('{'), "{nodes}");
}

/// grpcurl 1.8 and grpcio speak reflection v1alpha; newer grpcurl and most other tools speak
/// v1. Both are served.
#[tokio::test]
async fn reflection_v1_lists_and_resolves_symbols() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let fed = TestFederation::start(0).await;
    let mut client = ServerReflectionClient::new(fed.as_admin(fed.coordinator()));
    let ask = |request: MessageRequest| {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };
    let mut answers = client
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = answers
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response)
    else {
        panic!("no list of services");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"fedmesh.v1.RegistryService".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.contains(&"fedmesh.v1.OfferService".to_owned()),
        "the coordinator does not serve offers: {names:?}"
    );

    let mut answers = client
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "fedmesh.v1.RegistryService.ListNodes".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) = answers
        .message()
        .await
        .unwrap()
        .and_then(|r| r.message_response)
    else {
        panic!("symbol not resolved");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
