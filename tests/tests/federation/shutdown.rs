//! A server stops promptly even with long-lived streams open: the streams end with
//! `UNAVAILABLE` (clients reconnect elsewhere or later) instead of holding the drain open; a
//! restarted party waits for its address when another socket holds it for a moment.

use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_tests::TestFederation;
use tonic::Code;

#[tokio::test]
async fn open_watches_end_and_do_not_hold_the_shutdown() {
    // A grace far longer than the test's patience: if the watches held the drain, stopping
    // would take a minute.
    let mut fed = TestFederation::start_with(1, &[], &["limits.shutdown_grace_ms=60000"]).await;
    let node = fed.as_admin(fed.member(0));
    let mut catalogue = CatalogueServiceClient::new(node.clone())
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut journal = JournalServiceClient::new(node)
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    // Both streams are live: they sent their caught-up markers.
    while !catalogue.message().await.unwrap().unwrap().caught_up {}
    while !matches!(
        journal.message().await.unwrap().unwrap().event,
        Some(pb::watch_response::Event::CaughtUp(_))
    ) {}

    tokio::time::timeout(Duration::from_secs(20), fed.running.stop_member(0))
        .await
        .expect("the node did not stop while watches were open")
        .unwrap();
    for (name, ended) in [
        ("catalogue", catalogue.message().await.map(|_| ())),
        ("journal", journal.message().await.map(|_| ())),
    ] {
        let status = ended.expect_err(name);
        assert_eq!(status.code(), Code::Unavailable, "{name}: {status:?}");
    }
}

#[tokio::test]
async fn a_restart_waits_for_its_address_to_be_free() {
    let mut fed = TestFederation::start_with(1, &[], &[]).await;
    fed.running.stop_coordinator().await.unwrap();
    // Other sockets take the coordinator's gRPC port while it is down, for 700 ms, then its
    // metrics port for 700 ms more.
    let metrics = fed.coordinator().metrics.clone().unwrap();
    let metrics_addr = metrics
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let grpc = std::net::TcpListener::bind(fed.running.coordinator_addr()).unwrap();
    let metrics = std::net::TcpListener::bind(&metrics_addr).unwrap();
    let released = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop(grpc);
        tokio::time::sleep(Duration::from_millis(700)).await;
        drop(metrics);
    });
    fed.running.restart_coordinator().await.unwrap();
    assert!(released.is_finished(), "restarted while a port was taken");
    // It serves again, on its addresses.
    pb::registry_service_client::RegistryServiceClient::new(fed.as_admin(fed.coordinator()))
        .list_nodes(pb::ListNodesRequest::default())
        .await
        .unwrap();
    assert!(std::net::TcpStream::connect(&metrics_addr).is_ok());
}
