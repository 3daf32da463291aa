//! No thundering herd: 50 member nodes reach the coordinator through a counting proxy; the
//! coordinator goes down for several seconds and comes back. While it is down, each node's
//! attempts stay at the normal heartbeat pace or back off (about a dozen per node, not one per
//! retry tick); when it is back, the nodes
//! come back spread over time by their jitter, not all in the same instant; and every node is
//! seen alive again.

use std::time::{Duration, Instant};

use fedmesh::federation::{FederationSpec, RunningFederation};
use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_tests::proxy::FaultProxy;

const NODES: usize = 50;
const DOWN: Duration = Duration::from_secs(6);

async fn active_nodes(running: &RunningFederation) -> usize {
    let admin = &running.manifest.members[0];
    let pem = fedmesh_grpc::ClientPem {
        ca: std::fs::read(&running.manifest.ca).unwrap(),
        cert: std::fs::read(&admin.admin_cert).unwrap(),
        key: std::fs::read(&admin.admin_key).unwrap(),
    };
    let channel = fedmesh_grpc::connect_pem(
        &running.manifest.coordinator.endpoint,
        &pem,
        fedmesh_grpc::ClientOptions::default(),
    )
    .unwrap();
    RegistryServiceClient::new(channel)
        .list_nodes(pb::ListNodesRequest {
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .map(|r| {
            r.into_inner()
                .nodes
                .iter()
                .filter(|n| n.status() == pb::NodeStatus::Active)
                .count()
        })
        .unwrap_or(0)
}

async fn wait_all_active(running: &RunningFederation, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if active_nodes(running).await == NODES {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not every node came back: {} of {NODES} active",
            active_nodes(running).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_nodes_come_back_spread_out_after_a_coordinator_restart() {
    let dir = tempfile::tempdir().unwrap();
    // The proxy exists before the coordinator: it is pointed at it once it listens.
    let proxy = FaultProxy::start("127.0.0.1:9".parse().unwrap()).await;
    let mut spec = FederationSpec::new(dir.path(), NODES);
    spec.coordinator_settings = vec![
        "registry.heartbeat_interval_ms=1000".into(),
        "registry.stale_after_ms=4000".into(),
        "metrics.enabled=false".into(),
        "dashboard.enabled=false".into(),
    ];
    spec.node_settings = vec![
        format!("coordinator.endpoint={}", proxy.endpoint()),
        "coordinator.retry_initial_ms=250".into(),
        "coordinator.retry_max_ms=4000".into(),
        "metrics.enabled=false".into(),
    ];
    let mut running = RunningFederation::start(spec).await.unwrap();
    proxy.retarget(running.coordinator_addr());
    wait_all_active(&running, Duration::from_secs(60)).await;

    // Down for DOWN: every connection attempt through the proxy is counted.
    running.stop_coordinator().await.unwrap();
    let before = proxy.accepted();
    tokio::time::sleep(DOWN).await;
    let while_down = proxy.accepted() - before;

    // Back: connections per 100 ms over the next 8 s.
    running.restart_coordinator().await.unwrap();
    let mut buckets = Vec::new();
    let mut last = proxy.accepted();
    for _ in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = proxy.accepted();
        buckets.push(now - last);
        last = now;
    }
    let back_in = wait_all_active(&running, Duration::from_secs(30)).await;
    let after: u64 = buckets.iter().sum();
    let peak = buckets.iter().copied().max().unwrap_or(0);
    eprintln!(
        "{NODES} nodes: {while_down} connection attempts during {DOWN:?} down ({:.1} per node); \
         {after} connections in the 8 s after the restart, at most {peak} in any 100 ms; \
         all active {back_in:?} after that; per 100 ms: {buckets:?}",
        while_down as f64 / NODES as f64
    );
    // No amplification: a node's heartbeat keeps its normal pace (one per interval, 6 here)
    // and its catalogue watch backs off (250 ms doubling: 5 attempts), so about 11 attempts
    // per node; a client retrying at its initial delay on its three links would make 72.
    assert!(
        while_down <= (NODES as u64) * 20,
        "{while_down} attempts from {NODES} nodes in {DOWN:?}: retries are not backing off"
    );
    // Jitter: the nodes do not all come back in the same 100 ms.
    assert!(
        peak <= (NODES as u64) / 2,
        "{peak} of {NODES} nodes reconnected within 100 ms: a herd ({buckets:?})"
    );
    // ... but spread over at least half a heartbeat interval.
    let spread = buckets.iter().filter(|n| **n > 0).count();
    assert!(
        spread >= 5,
        "reconnections within {spread} × 100 ms: {buckets:?}"
    );
    // Back once each: no retry storm after the restart either.
    assert!(
        (NODES as u64 / 2..=NODES as u64 * 3).contains(&after),
        "{after} connections after the restart: {buckets:?}"
    );
}
