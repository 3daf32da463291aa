//! No one starves the others: an idle-connection flood does not keep legitimate peers from
//! their handshakes, and one identity cannot hold more than its share of server streams.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_tests::{TestFederation, port_of, wait_for};
use tokio::net::TcpStream;
use tonic::Code;

/// Opens `initial` idle TCP connections to `port` (never a byte sent), then one more every
/// 10 ms, holding them all until aborted; `ready` is notified once the first `initial` are
/// open.
fn idle_flood(
    port: u16,
    initial: usize,
    ready: Arc<tokio::sync::Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..initial {
            if let Ok(socket) = TcpStream::connect(("127.0.0.1", port)).await {
                held.push(socket);
            }
        }
        ready.notify_one();
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if let Ok(socket) = TcpStream::connect(("127.0.0.1", port)).await {
                held.push(socket);
            }
        }
    })
}

#[tokio::test]
async fn an_idle_connection_flood_does_not_delay_a_legitimate_call() {
    // Default limits: 128 pending handshakes, 10 s to complete one.
    let fed = TestFederation::start(1).await;
    let node = fed.member(0);
    let ready = Arc::new(tokio::sync::Notify::new());
    // Three times the pending-handshake pool, and 100 more a second while the call runs.
    let flood = idle_flood(port_of(&node.endpoint), 384, Arc::clone(&ready));
    tokio::time::timeout(Duration::from_secs(30), ready.notified())
        .await
        .expect("the flood could not open its connections");

    let started = std::time::Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(3),
        NodeServiceClient::new(fed.as_admin(node)).who_am_i(pb::WhoAmIRequest {}),
    )
    .await;
    flood.abort();
    let answer = answer
        .unwrap_or_else(|_| {
            panic!("WhoAmI did not answer within 3 s under an idle-connection flood")
        })
        .expect("WhoAmI under an idle-connection flood");
    assert!(!answer.into_inner().identity.is_empty());
    eprintln!("WhoAmI under the flood: {:?}", started.elapsed());
}

async fn watch(
    channel: fedmesh_grpc::GrpcChannel,
) -> Result<tonic::Streaming<pb::WatchCatalogueResponse>, tonic::Status> {
    CatalogueServiceClient::new(channel)
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn an_identity_past_its_stream_limit_is_refused_and_others_are_not() {
    let fed = TestFederation::start_with(1, &["limits.max_streams_per_identity=3"], &[]).await;
    // The member's admin, at the coordinator.
    let coordinator = fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(0).admin_cert,
        &fed.member(0).admin_key,
    );
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(
            watch(coordinator.clone())
                .await
                .expect("a stream within the limit"),
        );
    }
    let refused = watch(coordinator.clone()).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("limits.max_streams_per_identity"),
        "{}",
        refused.message()
    );

    // Another identity (the member's node, which also holds its catalogue cache's stream)
    // is still served.
    let node = fed.channel(
        &fed.coordinator().endpoint,
        &fed.member(0).node_cert,
        &fed.member(0).node_key,
    );
    let mut other = watch(node).await.expect("another identity is served");
    other.message().await.expect("its stream answers");

    // Closing one stream gives its place back.
    drop(open.pop());
    let reopened = wait_for(
        "a closed stream's place to be given back",
        Duration::from_secs(5),
        || {
            let coordinator = coordinator.clone();
            async move { watch(coordinator).await.ok() }
        },
    )
    .await;
    drop(reopened);
}
