//! The exact TLS verdicts the node and coordinator listeners give, read from a raw TLS client:
//! each refused client learns why, and a valid one is answered.

use fedmesh_tests::{TestFederation, port_of, read, tls_client, tls_outcome};
use fedmesh_tls::pki::{Pki, Validity};
use rustls::version::{TLS12, TLS13};

fn assert_refused(outcome: Result<(), String>, expected: &str, what: &str) {
    match outcome {
        Ok(()) => panic!("{what}: the server accepted the client"),
        Err(error) => assert!(
            error.contains(expected),
            "{what}: expected `{expected}`, got `{error}`"
        ),
    }
}

#[tokio::test]
async fn both_listeners_refuse_each_bad_client_with_its_reason() {
    let fed = TestFederation::start(1).await;
    let ca = fed.ca_pem();
    let admin = fed.member(0);
    let now = time::OffsetDateTime::now_utc();
    let expired = fed.issue_with(
        &fed.uri("member/unistra/admin/late"),
        Validity {
            not_before: now - time::Duration::days(10),
            not_after: now - time::Duration::days(1),
        },
    );
    let revoked = fed.issue(&fed.uri("member/unistra/admin/leaver"));
    fed.running
        .pki
        .revoke(&String::from_utf8(read(&revoked.cert_path)).unwrap())
        .unwrap();
    fed.running.reload_tls().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::init(
        other_dir.path(),
        &fed.running.manifest.federation.parse().unwrap(),
        30,
    )
    .unwrap();
    let foreign = other
        .issue(
            &fed.uri("member/unistra/admin/ops").parse().unwrap(),
            &[],
            Validity::days_from_now(1),
        )
        .unwrap();

    for (party, endpoint) in [
        ("node", &fed.member(0).endpoint),
        ("coordinator", &fed.coordinator().endpoint),
    ] {
        let port = port_of(endpoint);
        let valid = tls_outcome(
            port,
            tls_client(&ca, Some((&admin.admin_cert, &admin.admin_key)), &[&TLS13]),
        )
        .await;
        assert_eq!(
            valid,
            Ok(()),
            "{party}: a valid admin certificate is answered"
        );
        assert_refused(
            tls_outcome(port, tls_client(&ca, None, &[&TLS13])).await,
            "CertificateRequired",
            &format!("{party}: no certificate"),
        );
        assert_refused(
            tls_outcome(
                port,
                tls_client(
                    &ca,
                    Some((&foreign.cert_path, &foreign.key_path)),
                    &[&TLS13],
                ),
            )
            .await,
            // The impostor CA carries the federation CA's very name, so the chain resolves and
            // its signature is what fails.
            "DecryptError",
            &format!("{party}: another CA"),
        );
        assert_refused(
            tls_outcome(
                port,
                tls_client(
                    &ca,
                    Some((&expired.cert_path, &expired.key_path)),
                    &[&TLS13],
                ),
            )
            .await,
            "CertificateExpired",
            &format!("{party}: expired"),
        );
        assert_refused(
            tls_outcome(
                port,
                tls_client(
                    &ca,
                    Some((&revoked.cert_path, &revoked.key_path)),
                    &[&TLS13],
                ),
            )
            .await,
            "CertificateRevoked",
            &format!("{party}: revoked"),
        );
        assert_refused(
            tls_outcome(
                port,
                tls_client(&ca, Some((&admin.admin_cert, &admin.admin_key)), &[&TLS12]),
            )
            .await,
            "ProtocolVersion",
            &format!("{party}: TLS 1.2"),
        );
    }
}
