//! Every server limit is explicit; these tests configure small ones and show what a client
//! meets when it goes past them.

use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::registry_service_client::RegistryServiceClient;
use fedmesh_tests::TestFederation;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::Code;

#[tokio::test]
async fn a_request_over_the_message_size_limit_is_refused() {
    let fed = TestFederation::start_with(0, &["limits.max_decoding_message_bytes=1024"], &[]).await;
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    let small = registry
        .get_node(pb::GetNodeRequest {
            member_id: "a".repeat(60),
        })
        .await
        .unwrap_err();
    assert_eq!(
        small.code(),
        Code::NotFound,
        "under the limit the call is handled: {small:?}"
    );
    let status = registry
        .get_node(pb::GetNodeRequest {
            member_id: "a".repeat(2000),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("1024"), "{}", status.message());
}

#[tokio::test]
async fn metadata_over_the_header_list_limit_is_refused() {
    let fed = TestFederation::start_with(0, &["limits.max_header_list_bytes=2048"], &[]).await;
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    let mut small = tonic::Request::new(pb::GetCrlRequest {});
    small
        .metadata_mut()
        .insert("x-note", "a".repeat(100).parse().unwrap());
    registry
        .get_crl(small)
        .await
        .expect("small metadata passes");

    let mut request = tonic::Request::new(pb::GetCrlRequest {});
    request
        .metadata_mut()
        .insert("x-padding", "a".repeat(8 * 1024).parse().unwrap());
    let status = registry.get_crl(request).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert!(
        matches!(
            status.code(),
            Code::Internal | Code::Unavailable | Code::ResourceExhausted | Code::Unknown
        ),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_the_handshake_timeout() {
    let fed = TestFederation::start_with(0, &["limits.handshake_timeout_ms=200"], &[]).await;
    let port = fed
        .coordinator()
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap();
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    // Send nothing; the server must close the connection on its own.
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer))
        .await
        .expect("the server did not close a connection that never started its handshake");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected end of stream, got {read:?}"
    );
}

#[tokio::test]
async fn a_client_hello_is_awaited_only_briefly() {
    // The full handshake may take 30 s; the ClientHello must come within 200 ms.
    let fed = TestFederation::start_with(
        0,
        &[
            "limits.handshake_timeout_ms=30000",
            "limits.client_hello_timeout_ms=200",
        ],
        &[],
    )
    .await;
    let port = fedmesh_tests::port_of(&fed.coordinator().endpoint);
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer))
        .await
        .expect("a connection without a ClientHello was kept past the ClientHello timeout");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "expected end of stream, got {read:?}"
    );
}

#[tokio::test]
async fn limits_are_validated_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = fedmesh::federation::FederationSpec::new(dir.path(), 0);
    spec.coordinator_settings = vec!["limits.request_timeout_ms=0".to_owned()];
    let err = fedmesh::federation::RunningFederation::start(spec)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("limits.request_timeout_ms"), "{err}");
}

#[tokio::test]
async fn a_handshake_past_its_client_hello_keeps_its_place_and_later_connections_wait() {
    // One handshake at a time, 300 ms to complete it.
    let fed = TestFederation::start_with(
        0,
        &[
            "limits.max_pending_handshakes=1",
            "limits.handshake_timeout_ms=300",
        ],
        &[],
    )
    .await;
    let port = fedmesh_tests::port_of(&fed.coordinator().endpoint);
    // A connection that sends its ClientHello and then stalls takes the only place: unlike an
    // idle one (tests/federation/starvation.rs), it is not closed to make room...
    let config = fedmesh_tests::tls_client(&fed.ca_pem(), None, &[&rustls::version::TLS13]);
    let mut hello = Vec::new();
    rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
    )
    .unwrap()
    .write_tls(&mut hello)
    .unwrap();
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stalled.write_all(&hello).await.unwrap();
    // The server answers the ClientHello: the connection holds its place.
    let mut buffer = [0u8; 64];
    assert!(stalled.read(&mut buffer).await.unwrap() > 0);
    // ...so a real client is served only once the stalled handshake has timed out, not refused.
    let started = std::time::Instant::now();
    let mut registry = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    registry
        .get_crl(pb::GetCrlRequest {})
        .await
        .expect("served after the place frees");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "the call did not wait for the handshake place ({:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_flooding_peer_is_shed_and_other_peers_are_not() {
    let fed = TestFederation::start_with(
        0,
        &[
            "limits.max_calls_per_second_per_peer=5",
            "limits.max_call_burst_per_peer=5",
        ],
        &[],
    )
    .await;
    let mut flooder = RegistryServiceClient::new(fed.as_admin(fed.coordinator()));
    let mut shed = 0;
    let mut served = 0;
    for _ in 0..30 {
        match flooder.get_crl(pb::GetCrlRequest {}).await {
            Ok(_) => served += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert!(
                    status.message().contains("rate limit"),
                    "{}",
                    status.message()
                );
                shed += 1;
            }
        }
    }
    assert!(served >= 5 && shed >= 15, "served {served}, shed {shed}");
    // Another peer is not affected, and the coordinator still serves.
    let other = fed.issue(&fed.uri("member/rouen/admin/ops"));
    let mut other = RegistryServiceClient::new(fed.channel(
        &fed.coordinator().endpoint,
        &other.cert_path,
        &other.key_path,
    ));
    for _ in 0..5 {
        other.get_crl(pb::GetCrlRequest {}).await.unwrap();
    }
    // The flooder gets its rate back after a pause.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    flooder.get_crl(pb::GetCrlRequest {}).await.unwrap();
}
