//! Prometheus metrics on every party: calls by service, method and code, and state gauges.

use fedmesh_proto::pb;
use fedmesh_proto::pb::node_service_client::NodeServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_tests::{TestFederation, http_get};

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

#[tokio::test]
async fn nodes_and_the_coordinator_expose_their_metrics() {
    let fed = TestFederation::start(2).await;
    let unistra = fed.member(0);
    let channel = fed.as_admin(unistra);
    NodeServiceClient::new(channel.clone())
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap();
    for _ in 0..2 {
        OfferServiceClient::new(channel.clone())
            .get_offer(pb::GetOfferRequest {
                offer_id: "unistra.nothing".into(),
            })
            .await
            .unwrap_err();
    }
    // rennes2's admin is refused on unistra's node: counted too.
    OfferServiceClient::new(fed.channel(
        &unistra.endpoint,
        &fed.member(1).admin_cert,
        &fed.member(1).admin_key,
    ))
    .list_offers(pb::ListOffersRequest::default())
    .await
    .unwrap_err();

    let (status, text) = http_get(unistra.metrics.as_deref().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(
            &text,
            "fedmesh_rpc_requests_total{service=\"fedmesh.v1.OfferService\",method=\"GetOffer\",code=\"NOT_FOUND\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "fedmesh_rpc_requests_total{service=\"fedmesh.v1.NodeService\",method=\"WhoAmI\",code=\"OK\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "fedmesh_rpc_requests_total{service=\"fedmesh.v1.OfferService\",method=\"ListOffers\",code=\"PERMISSION_DENIED\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("fedmesh_rpc_duration_seconds_bucket{le="),
        "{text}"
    );
    assert_eq!(value(&text, "fedmesh_outbox_depth "), Some(0.0), "{text}");
    assert_eq!(
        value(&text, "fedmesh_incidents_open{state=\"breached\"} "),
        Some(0.0),
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = value(&text, "fedmesh_certificate_expiry_timestamp_seconds ").unwrap();
    assert!(expiry > now + 86_400.0, "{expiry}");
    assert!(
        value(&text, "fedmesh_journal_revision ").is_some(),
        "{text}"
    );

    let (status, text) = http_get(fed.coordinator().metrics.as_deref().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        value(&text, "fedmesh_nodes{state=\"active\"} "),
        Some(2.0),
        "{text}"
    );
    assert!(
        text.contains("fedmesh_replication_lag_revisions{member=\"unistra\"}"),
        "{text}"
    );
    // The allowance the coordinator takes for its own delays, never more than the limit.
    let allowance = value(&text, "fedmesh_heartbeat_allowance_seconds ").unwrap();
    assert!(
        (0.0..=fedmesh_tests::STALE_AFTER_MS as f64 / 1000.0).contains(&allowance),
        "{text}"
    );
    assert!(
        text.contains("method=\"RegisterNode\",code=\"OK\""),
        "registrations are calls too: {text}"
    );
    let (status, _) = http_get(
        &unistra
            .metrics
            .as_deref()
            .unwrap()
            .replace("/metrics", "/other"),
    )
    .await;
    assert_eq!(status, 404);
}
