//! One trace across three institutions' processes: a desk's admin opens an incident on its
//! own node (`fedmesh node` process), which asks the coordinator (another process) where the
//! provider's node is and delivers the incident there (a third process). Each process exports
//! its spans to the same in-test OTLP receiver; they share the caller's trace id and link to
//! each other as parent and children through the W3C `traceparent` in gRPC metadata.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::common;
use crate::common::otlp::Span;
use crate::common::{fedmesh, free_port, signal, spawn_demo, wait_exit, wait_file};
use fedmesh::federation::Manifest;
use fedmesh_grpc::ClientPem;
use fedmesh_proto::pb;

fn spawn(args: &[&str], settings: &[String]) -> Child {
    let mut command = fedmesh();
    command.args(args);
    for setting in settings {
        command.args(["--set", setting]);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn channel(endpoint: &str, manifest: &Manifest, party: usize) -> fedmesh_grpc::GrpcChannel {
    let member = &manifest.members[party];
    let pem = ClientPem {
        ca: std::fs::read(&manifest.ca).unwrap(),
        cert: std::fs::read(&member.admin_cert).unwrap(),
        key: std::fs::read(&member.admin_key).unwrap(),
    };
    fedmesh_grpc::connect_pem(endpoint, &pem, fedmesh_grpc::ClientOptions::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalating_an_incident_is_one_trace_across_three_processes() {
    let (collector, spans) = common::otlp::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The demo writes the PKI and configurations, and makes unistra a tenant of rennes2.
    let mut demo = spawn_demo(dir.path(), 2, Stdio::piped());
    wait_file(&dir.path().join("federation.json"), &mut demo);
    // Once it printed its banner, its seeding is done.
    let mut banner = String::new();
    let mut out = std::io::BufReader::new(demo.stdout.take().unwrap());
    while !banner.contains("Press Ctrl-C") {
        assert!(
            std::io::BufRead::read_line(&mut out, &mut banner).unwrap() > 0,
            "{banner}"
        );
    }
    signal(&demo, "INT");
    std::io::Read::read_to_string(&mut out, &mut banner).unwrap();
    assert!(wait_exit(&mut demo, Duration::from_secs(30)).success());
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(dir.path().join("federation.json")).unwrap())
            .unwrap();

    let otlp = format!("telemetry.otlp_endpoint=http://{collector}");
    let (coordinator_port, unistra_port, rennes2_port) = (free_port(), free_port(), free_port());
    let coordinator_endpoint = format!("coordinator.endpoint=https://localhost:{coordinator_port}");
    let mut parties = vec![spawn(
        &[
            "coordinator",
            "--config",
            manifest.coordinator.config.to_str().unwrap(),
        ],
        &[
            format!("listen=127.0.0.1:{coordinator_port}"),
            otlp.clone(),
            "metrics.enabled=false".into(),
        ],
    )];
    for (member, port) in [(0, unistra_port), (1, rennes2_port)] {
        parties.push(spawn(
            &[
                "node",
                "--config",
                manifest.members[member].config.to_str().unwrap(),
            ],
            &[
                format!("listen=127.0.0.1:{port}"),
                coordinator_endpoint.clone(),
                otlp.clone(),
                "metrics.enabled=false".into(),
                "coordinator.retry_initial_ms=50".into(),
            ],
        ));
    }

    // Wait until the coordinator knows rennes2's node at its new address (else the request
    // would be queued and delivered later, outside the desk's call).
    let coordinator = channel(
        &format!("https://localhost:{coordinator_port}"),
        &manifest,
        0,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let node = pb::registry_service_client::RegistryServiceClient::new(coordinator.clone())
            .get_node(pb::GetNodeRequest {
                member_id: "rennes2".into(),
            })
            .await
            .ok()
            .and_then(|r| r.into_inner().node);
        if node.is_some_and(|n| n.endpoint.ends_with(&format!(":{rennes2_port}"))) {
            break;
        }
        assert!(Instant::now() < deadline, "rennes2's node never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The desk's call carries a trace context of its own.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let root_span = "00f067aa0ba902b7";
    let unistra = channel(&format!("https://localhost:{unistra_port}"), &manifest, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    let incident = loop {
        let mut request = tonic::Request::new(pb::OpenIncidentRequest {
            request_id: "traced".into(),
            offer_id: "rennes2.collab".into(),
            priority: pb::Priority::P2 as i32,
            summary: "Traced escalation".into(),
            ..Default::default()
        });
        request.metadata_mut().insert(
            "traceparent",
            format!("00-{trace_id}-{root_span}-01").parse().unwrap(),
        );
        let answer = pb::incident_service_client::IncidentServiceClient::new(unistra.clone())
            .open_incident(request)
            .await;
        // Until rennes2's node has registered its new address, the request is queued.
        if let Ok(answer) = answer.map(tonic::Response::into_inner)
            && !answer.queued
        {
            break answer.incident.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the incident was never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(incident.incident_id.contains("-rennes2-"));

    // Stopping flushes every exporter.
    for party in &mut parties {
        signal(party, "TERM");
    }
    for party in &mut parties {
        assert!(wait_exit(party, Duration::from_secs(30)).success());
    }
    let find = |spans: &[Span], name: &str, instance: &str, parent: &str| {
        spans
            .iter()
            .find(|s| {
                s.trace_id == trace_id
                    && s.name == name
                    && s.instance == instance
                    && s.parent_span_id == parent
            })
            .cloned()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let (desk, registry, provider) = loop {
        let received = spans.lock().unwrap().clone();
        // The first successful attempt's span on unistra's node, child of the desk's span.
        let desk = received
            .iter()
            .filter(|s| {
                s.trace_id == trace_id
                    && s.name == "fedmesh.v1.IncidentService/OpenIncident"
                    && s.instance == "unistra"
                    && s.parent_span_id == root_span
            })
            .find_map(|desk| {
                let registry = received.iter().find(|s| {
                    s.name == "fedmesh.v1.RegistryService/GetNode"
                        && s.service == "fedmesh-coordinator"
                        && s.parent_span_id == desk.span_id
                })?;
                let provider = find(
                    &received,
                    "fedmesh.v1.IncidentService/OpenIncident",
                    "rennes2",
                    &desk.span_id,
                )?;
                Some((desk.clone(), registry.clone(), provider))
            });
        if let Some(found) = desk {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "no linked spans in trace {trace_id}: {received:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(desk.service, "fedmesh-node");
    assert_eq!(registry.trace_id, trace_id);
    assert_eq!(provider.trace_id, trace_id);
    assert_eq!(provider.service, "fedmesh-node");
}
