//! No one starves the others: an idle-connection flood does not keep legitimate peers from
//! their handshakes, and one identity cannot hold more than its share of server streams.

use std::sync::Arc;
use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_tests::{TestFederation, port_of};
use tokio::net::TcpStream;

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
