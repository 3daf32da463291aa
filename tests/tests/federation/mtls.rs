//! Who gets in: mutual TLS refusals, the identity each role is seen with, and the
//! authorization table, over real sockets.

use fedmesh_proto::pb;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_tests::{TestFederation, read};
use fedmesh_tls::pki::{Pki, Validity};
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::Code;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

async fn whoami(channel: fedmesh_grpc::GrpcChannel) -> Result<pb::WhoAmIResponse, tonic::Status> {
    NodeServiceClient::new(channel)
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(tonic::Response::into_inner)
}

/// A refused TLS client sees its first call fail (under TLS 1.3 the handshake completes on the
/// client side before the server's alert arrives).
fn assert_refused(result: Result<pb::WhoAmIResponse, tonic::Status>, what: &str) {
    match result {
        Ok(me) => panic!("{what}: the call succeeded as {}", me.identity),
        Err(status) => assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Internal
            ),
            "{what}: unexpected status {status:?}"
        ),
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let fed = TestFederation::start(1).await;
    let endpoint = &fed.member(0).endpoint;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(fed.ca_pem()))
        .domain_name("localhost");
    let channel = Endpoint::from_shared(endpoint.clone())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_lazy();
    let channel = tonic::service::interceptor::InterceptedService::new(
        channel,
        fedmesh_grpc::trace::TraceContext,
    );
    assert_refused(whoami(channel).await, "no client certificate");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let fed = TestFederation::start(1).await;
    let other_dir = tempfile::tempdir().unwrap();
    // Same federation name, same identity: only the CA differs.
    let other = Pki::init(
        other_dir.path(),
        &fed.running.manifest.federation.parse().unwrap(),
        30,
    )
    .unwrap();
    let impostor = other
        .issue(
            &fed.uri("member/unistra/admin/ops").parse().unwrap(),
            &[],
            Validity::days_from_now(1),
        )
        .unwrap();
    let channel = fed.channel(
        &fed.member(0).endpoint,
        &impostor.cert_path,
        &impostor.key_path,
    );
    assert_refused(whoami(channel).await, "certificate from another CA");
}

#[tokio::test]
async fn an_expired_certificate_is_refused() {
    let fed = TestFederation::start(1).await;
    let now = time::OffsetDateTime::now_utc();
    let expired = fed.issue_with(
        &fed.uri("member/unistra/admin/late"),
        Validity {
            not_before: now - time::Duration::days(10),
            not_after: now - time::Duration::days(1),
        },
    );
    let channel = fed.channel(
        &fed.member(0).endpoint,
        &expired.cert_path,
        &expired.key_path,
    );
    assert_refused(whoami(channel).await, "expired certificate");
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_once_the_crl_is_reloaded() {
    let fed = TestFederation::start(1).await;
    let endpoint = fed.member(0).endpoint.clone();
    let admin = fed.issue(&fed.uri("member/unistra/admin/leaver"));
    let me = whoami(fed.channel(&endpoint, &admin.cert_path, &admin.key_path))
        .await
        .expect("valid before revocation");
    assert_eq!(me.identity, fed.uri("member/unistra/admin/leaver"));

    let revoked = fed
        .running
        .pki
        .revoke(&String::from_utf8(read(&admin.cert_path)).unwrap())
        .unwrap();
    assert_eq!(revoked, fed.uri("member/unistra/admin/leaver"));
    fed.running.reload_tls().unwrap();

    let fresh = fed.channel(&endpoint, &admin.cert_path, &admin.key_path);
    assert_refused(whoami(fresh).await, "revoked certificate");
    // Everyone else still gets in.
    let ops = whoami(fed.as_admin(fed.member(0))).await.unwrap();
    assert_eq!(ops.identity, fed.uri("member/unistra/admin/ops"));
}

#[tokio::test]
async fn nodes_follow_the_coordinators_crl_without_a_reload() {
    let fed = TestFederation::start_with(1, &[], &["coordinator.crl_refresh_ms=200"]).await;
    let endpoint = fed.member(0).endpoint.clone();
    let admin = fed.issue(&fed.uri("member/unistra/admin/leaver"));
    whoami(fed.channel(&endpoint, &admin.cert_path, &admin.key_path))
        .await
        .expect("valid before revocation");
    // Revoked on the coordinator's PKI only: the node's own files do not change.
    fed.running
        .pki
        .revoke(&String::from_utf8(read(&admin.cert_path)).unwrap())
        .unwrap();
    let started = std::time::Instant::now();
    fedmesh_tests::wait_for(
        "the node to refuse the revoked certificate",
        std::time::Duration::from_secs(10),
        || {
            let fresh = fed.channel(&endpoint, &admin.cert_path, &admin.key_path);
            async move { whoami(fresh).await.err() }
        },
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // Everyone else still gets in.
    whoami(fed.as_admin(fed.member(0))).await.unwrap();
}

#[tokio::test]
async fn connections_of_a_revoked_peer_are_closed() {
    use pb::journal_service_client::JournalServiceClient;
    let fed = TestFederation::start_with(1, &[], &["coordinator.crl_refresh_ms=200"]).await;
    let endpoint = fed.member(0).endpoint.clone();
    let admin = fed.issue(&fed.uri("member/unistra/admin/leaver"));
    // A long-lived watch, open before the revocation: quiet until the next heartbeat (15 s).
    let mut watch =
        JournalServiceClient::new(fed.channel(&endpoint, &admin.cert_path, &admin.key_path))
            .watch(pb::WatchRequest::default())
            .await
            .unwrap()
            .into_inner();
    loop {
        let message = watch.message().await.unwrap().unwrap();
        if matches!(message.event, Some(pb::watch_response::Event::CaughtUp(_))) {
            break;
        }
    }
    fed.running
        .pki
        .revoke(&String::from_utf8(read(&admin.cert_path)).unwrap())
        .unwrap();
    // Within the CRL refresh the node closes the connection: the stream fails well before
    // its next heartbeat would arrive.
    let ended = tokio::time::timeout(std::time::Duration::from_secs(8), watch.message())
        .await
        .expect("the connection of the revoked peer stayed open");
    assert!(ended.is_err(), "the stream should fail, got {ended:?}");
    // The node still serves everyone else.
    whoami(fed.as_admin(fed.member(0))).await.unwrap();
}

#[tokio::test]
async fn a_certificate_with_two_uri_sans_is_refused_with_the_reason() {
    let fed = TestFederation::start(1).await;
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![
        SanType::URI(fed.uri("member/unistra/admin/ops").try_into().unwrap()),
        SanType::URI(fed.uri("coordinator").try_into().unwrap()),
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(1);
    let cert = fed.running.pki.sign(&mut params, &key).unwrap();
    let channel = fed.channel_pem(
        &fed.member(0).endpoint,
        cert.into_bytes(),
        key.serialize_pem().into_bytes(),
    );
    let status = whoami(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("2 URI subject alternative names"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn each_role_is_seen_with_its_identity() {
    let fed = TestFederation::start(2).await;
    let unistra = fed.member(0);
    let cases = [
        (
            fed.uri("member/unistra/admin/ops"),
            unistra.admin_cert.clone(),
            unistra.admin_key.clone(),
            pb::Role::Admin,
            "unistra",
            "ops",
        ),
        (
            fed.uri("member/unistra/node"),
            unistra.node_cert.clone(),
            unistra.node_key.clone(),
            pb::Role::Node,
            "unistra",
            "",
        ),
        (
            fed.uri("member/rennes2/node"),
            fed.member(1).node_cert.clone(),
            fed.member(1).node_key.clone(),
            pb::Role::Node,
            "rennes2",
            "",
        ),
        (
            fed.uri("coordinator"),
            fed.coordinator().node_cert.clone(),
            fed.coordinator().node_key.clone(),
            pb::Role::Coordinator,
            "",
            "",
        ),
    ];
    for (identity, cert, key, role, member, name) in cases {
        let me = whoami(fed.channel(&unistra.endpoint, &cert, &key))
            .await
            .unwrap_or_else(|s| panic!("{identity}: {s:?}"));
        assert_eq!(me.identity, identity);
        assert_eq!(me.role(), role, "{identity}");
        assert_eq!(me.member_id, member, "{identity}");
        assert_eq!(me.name, name, "{identity}");
        assert_eq!(me.federation, fed.running.manifest.federation);
        assert_eq!(me.server_member_id, "unistra");
    }
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    let me = whoami(fed.channel(&unistra.endpoint, &agent.cert_path, &agent.key_path))
        .await
        .unwrap();
    assert_eq!(
        (me.role(), me.member_id.as_str(), me.name.as_str()),
        (pb::Role::Agent, "unistra", "probe")
    );

    // A consortium operator is seen as one, on a node as on the coordinator.
    let operator = fed.issue(&fed.uri("operator/alice"));
    let me = whoami(fed.channel(&unistra.endpoint, &operator.cert_path, &operator.key_path))
        .await
        .unwrap();
    assert_eq!(
        (me.role(), me.member_id.as_str(), me.name.as_str()),
        (pb::Role::Operator, "", "alice")
    );

    // The coordinator answers too, and says it is the coordinator; the test federation calls
    // it as the consortium operator `ops`.
    let me = whoami(fed.as_admin(fed.coordinator())).await.unwrap();
    assert_eq!(me.server_member_id, "");
    assert_eq!(me.identity, fed.uri("operator/ops"));
}

#[tokio::test]
async fn the_authorization_table_denies_by_role_and_by_member() {
    use pb::offer_service_client::OfferServiceClient;
    use pb::registry_service_client::RegistryServiceClient;
    use pb::usage_service_client::UsageServiceClient;

    let fed = TestFederation::start(2).await;
    let unistra = fed.member(0);
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    let agent_channel = fed.channel(&unistra.endpoint, &agent.cert_path, &agent.key_path);

    // An agent may not call an admin RPC...
    let status = OfferServiceClient::new(agent_channel.clone())
        .publish_offer(pb::PublishOfferRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("role agent may not call /fedmesh.v1.OfferService/PublishOffer"),
        "{}",
        status.message()
    );
    // ...but passes authorization for reporting (an empty batch stores nothing).
    let answer = UsageServiceClient::new(agent_channel)
        .report_usage(pb::ReportUsageRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((answer.accepted_count, answer.duplicate_count), (0, 0));

    // A node may not publish offers on another node.
    let rennes2_node = fed.channel(
        &unistra.endpoint,
        &fed.member(1).node_cert,
        &fed.member(1).node_key,
    );
    let status = OfferServiceClient::new(rennes2_node)
        .publish_offer(pb::PublishOfferRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    // An admin manages only its own member's node...
    let rennes2_admin = fed.channel(
        &unistra.endpoint,
        &fed.member(1).admin_cert,
        &fed.member(1).admin_key,
    );
    let refused = [
        NodeServiceClient::new(rennes2_admin.clone())
            .get_node_status(pb::GetNodeStatusRequest {})
            .await
            .map(drop),
        OfferServiceClient::new(rennes2_admin.clone())
            .list_offers(pb::ListOffersRequest::default())
            .await
            .map(drop),
    ];
    for result in refused {
        let status = result.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("this node belongs to unistra"),
            "{}",
            status.message()
        );
    }
    // ...but any identity of the federation may diagnose any node: health, reflection, who
    // am I, what is this node.
    let rennes2_agent = fed.issue(&fed.uri("member/rennes2/agent/probe"));
    for (who, channel) in [
        ("rennes2's admin", rennes2_admin),
        (
            "rennes2's agent",
            fed.channel(
                &unistra.endpoint,
                &rennes2_agent.cert_path,
                &rennes2_agent.key_path,
            ),
        ),
    ] {
        let me = whoami(channel.clone()).await.unwrap();
        assert_eq!(me.server_member_id, "unistra", "{who}");
        let info = NodeServiceClient::new(channel.clone())
            .get_node_info(pb::GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.member_id, "unistra", "{who}");
        let health = tonic_health::pb::health_client::HealthClient::new(channel.clone())
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            health.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{who}"
        );
        let mut reflection =
            tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(
                channel.clone(),
            );
        let request = tonic_reflection::pb::v1::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(
                tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
                    String::new(),
                ),
            ),
        };
        let answer = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner()
            .message()
            .await
            .unwrap();
        assert!(answer.is_some(), "{who}: no reflection answer");
        // Nothing else: the agent may not report usage on another member's node.
        let status = UsageServiceClient::new(channel)
            .report_usage(pb::ReportUsageRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{who}: {status:?}");
    }

    // Only nodes register with the coordinator.
    let status = RegistryServiceClient::new(fed.as_admin(fed.coordinator()))
        .register_node(pb::RegisterNodeRequest {
            endpoint: "https://localhost:1".into(),
            software_version: "0.1.0".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

/// Between institutions a client checks who answers, not only the host name: every node
/// certificate of the demo names `localhost`, yet a node cannot pass for another.
#[tokio::test]
async fn a_node_cannot_answer_for_another_member() {
    let fed = TestFederation::start(2).await;
    let unistra = fed.member(0);
    let files = fedmesh_tls::TlsFiles {
        ca: unistra.ca.clone(),
        cert: unistra.node_cert.clone(),
        key: unistra.node_key.clone(),
        crl: None,
    };
    let rennes2_endpoint = &fed.member(1).endpoint;
    let federation: fedmesh_core::FederationName = fed.running.manifest.federation.parse().unwrap();
    let expecting = |member: &str| {
        fedmesh_grpc::connect_to(
            rennes2_endpoint,
            &files,
            fedmesh_grpc::ClientOptions::default(),
            fedmesh_core::Identity::node(federation.clone(), member.parse().unwrap()),
        )
        .unwrap()
    };
    let me = whoami(expecting("rennes2")).await.unwrap();
    assert_eq!(me.server_member_id, "rennes2");
    let status = whoami(expecting("rouen")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        format!("{status:?}").contains("not spiffe://demo.fedmesh/member/rouen/node"),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_rotated_certificate_is_picked_up_without_restart_or_failing_calls() {
    use pb::journal_service_client::JournalServiceClient;
    use rustls::pki_types::pem::PemObject as _;
    let fed = TestFederation::start(1).await;
    let node = fed.member(0);
    let port = fedmesh_tests::port_of(&node.endpoint);
    let before = fedmesh_tests::served_certificate(port, &fed.ca_pem(), b"h2").await;
    // A call in progress: a journal watch opened before the rotation.
    let mut watch = JournalServiceClient::new(fed.as_admin(node))
        .watch(pb::WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    loop {
        let message = watch.message().await.unwrap().unwrap();
        if matches!(message.event, Some(pb::watch_response::Event::CaughtUp(_))) {
            break;
        }
    }
    // The operator issues a new certificate and key over the old files.
    let identity: fedmesh_core::Identity = fed.uri("member/unistra/node").parse().unwrap();
    let issued = fed
        .running
        .pki
        .issue(
            &identity,
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            fedmesh_tls::pki::Validity::days_from_now(30),
        )
        .unwrap();
    assert_eq!(issued.cert_path, node.node_cert, "the node's own files");
    let expected = rustls::pki_types::CertificateDer::pem_file_iter(&issued.cert_path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec();
    assert_ne!(expected, before);
    fedmesh_tests::wait_for(
        "new connections to get the new certificate",
        std::time::Duration::from_secs(10),
        || async {
            (fedmesh_tests::served_certificate(port, &fed.ca_pem(), b"h2").await == expected)
                .then_some(())
        },
    )
    .await;
    // The call in progress goes on, and new calls work.
    let still = tokio::time::timeout(std::time::Duration::from_millis(500), watch.message()).await;
    assert!(
        still.is_err(),
        "the watch is still open and quiet: {still:?}"
    );
    whoami(fed.as_admin(node)).await.unwrap();
}
