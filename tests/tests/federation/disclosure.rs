//! The coordinator's disclosure table (`docs/security.md`, "What each role sees"), as a matrix:
//! every coordinator read RPC × every kind of caller. The consortium (an operator, the
//! coordinator's own identity) sees everything; a member sees its own tenancies and incidents
//! in full and of the others only per-offer counts; an agent reads nothing there.

use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_tests::{TestFederation, wait_for};
use tonic::Code;

/// Who calls, and what it should see of unistra's two incidents on rennes2's offer and of
/// unistra's tenancies.
struct Caller {
    what: &'static str,
    channel: fedmesh_grpc::GrpcChannel,
    /// Open incidents it lists (unistra's two on rennes2.collab, or none).
    open_incidents: usize,
    /// Whether it reads unistra's tenancies in unistra's member metrics.
    unistra_tenancies: bool,
}

fn month_now() -> pb::YearMonth {
    let (y, m, _) =
        fedmesh_core::calendar::civil_from_days(fedmesh_grpc::figures::now().div_euclid(86_400));
    pb::YearMonth {
        year: y,
        month: m as i32,
    }
}

#[tokio::test]
async fn every_coordinator_read_shows_each_caller_what_its_role_allows() {
    let federation = TestFederation::start(3).await;
    federation.running.seed_example_offers().await.unwrap();
    federation.running.seed_example_usage().await.unwrap();
    let incidents = federation
        .running
        .seed_example_incidents()
        .await
        .unwrap()
        .len();
    assert_eq!(incidents, 2);
    let coordinator = federation.coordinator().clone();
    let endpoint = coordinator.endpoint.clone();
    let (unistra, rennes2, rouen) = (
        federation.member(0).clone(),
        federation.member(1).clone(),
        federation.member(2).clone(),
    );
    let as_party =
        |cert: &std::path::Path, key: &std::path::Path| federation.channel(&endpoint, cert, key);
    let operator = federation.as_admin(&coordinator);
    // The incidents reach the coordinator.
    wait_for(
        "unistra's incidents at the coordinator",
        Duration::from_secs(15),
        || {
            let mut metrics = MetricsServiceClient::new(operator.clone());
            async move {
                let open = metrics
                    .list_open_incidents(pb::ListOpenIncidentsRequest::default())
                    .await
                    .ok()?
                    .into_inner()
                    .incidents;
                (open.len() == incidents).then_some(())
            }
        },
    )
    .await;

    let callers = [
        Caller {
            what: "a consortium operator",
            channel: operator.clone(),
            open_incidents: 2,
            unistra_tenancies: true,
        },
        Caller {
            what: "the coordinator's own identity",
            channel: as_party(&coordinator.node_cert, &coordinator.node_key),
            open_incidents: 2,
            unistra_tenancies: true,
        },
        Caller {
            what: "unistra's admin (the subscriber)",
            channel: as_party(&unistra.admin_cert, &unistra.admin_key),
            open_incidents: 2,
            unistra_tenancies: true,
        },
        Caller {
            what: "unistra's node",
            channel: as_party(&unistra.node_cert, &unistra.node_key),
            open_incidents: 2,
            unistra_tenancies: true,
        },
        Caller {
            what: "rennes2's admin (the provider)",
            channel: as_party(&rennes2.admin_cert, &rennes2.admin_key),
            open_incidents: 2,
            unistra_tenancies: false,
        },
        Caller {
            what: "rennes2's node",
            channel: as_party(&rennes2.node_cert, &rennes2.node_key),
            open_incidents: 2,
            unistra_tenancies: false,
        },
        Caller {
            what: "rouen's admin (another tenant)",
            channel: as_party(&rouen.admin_cert, &rouen.admin_key),
            open_incidents: 0,
            unistra_tenancies: false,
        },
    ];
    let month = month_now();
    for caller in &callers {
        let what = caller.what;
        let mut metrics = MetricsServiceClient::new(caller.channel.clone());
        // Counts per offer: the same for every reader.
        let summary = metrics
            .get_federation_summary(pb::GetFederationSummaryRequest::default())
            .await
            .unwrap_or_else(|s| panic!("{what}: GetFederationSummary: {s:?}"))
            .into_inner();
        assert_eq!(summary.member_count, 3, "{what}");
        let offer = metrics
            .get_offer_metrics(pb::GetOfferMetricsRequest {
                offer_id: "rennes2.collab".into(),
                from_month: Some(month),
                to_month: Some(month),
            })
            .await
            .unwrap_or_else(|s| panic!("{what}: GetOfferMetrics: {s:?}"))
            .into_inner();
        assert_eq!(offer.months.len(), 1, "{what}");
        for rpc in ["GetSlaCompliance", "GetIncidentStatistics"] {
            let answered = if rpc == "GetSlaCompliance" {
                metrics
                    .get_sla_compliance(pb::GetSlaComplianceRequest {
                        offer_id: "rennes2.collab".into(),
                        month: Some(month),
                    })
                    .await
                    .map(|r| r.into_inner().offers.len())
            } else {
                metrics
                    .get_incident_statistics(pb::GetIncidentStatisticsRequest {
                        offer_id: "rennes2.collab".into(),
                        month: Some(month),
                    })
                    .await
                    .map(|r| r.into_inner().offers.len())
            };
            assert_eq!(
                answered.unwrap_or_else(|s| panic!("{what}: {rpc}: {s:?}")),
                1
            );
        }
        // Who is a tenant of what: the member itself and the consortium.
        let member = metrics
            .get_member_metrics(pb::GetMemberMetricsRequest {
                member_id: "unistra".into(),
                month: Some(month),
            })
            .await
            .unwrap_or_else(|s| panic!("{what}: GetMemberMetrics: {s:?}"))
            .into_inner();
        assert_eq!(
            !member.subscribed.is_empty(),
            caller.unistra_tenancies,
            "{what} reading unistra's tenancies: {member:?}"
        );
        assert_eq!(member.provided.len(), 1, "{what}: unistra's offer counts");
        // Incidents: the parties and the consortium.
        let open = metrics
            .list_open_incidents(pb::ListOpenIncidentsRequest::default())
            .await
            .unwrap_or_else(|s| panic!("{what}: ListOpenIncidents: {s:?}"))
            .into_inner()
            .incidents;
        assert_eq!(open.len(), caller.open_incidents, "{what}: {open:?}");
        // The directory and the catalogue are the federation's.
        let nodes = pb::registry_service_client::RegistryServiceClient::new(caller.channel.clone())
            .list_nodes(pb::ListNodesRequest::default())
            .await
            .unwrap_or_else(|s| panic!("{what}: ListNodes: {s:?}"))
            .into_inner()
            .nodes;
        assert_eq!(nodes.len(), 3, "{what}");
        pb::catalogue_service_client::CatalogueServiceClient::new(caller.channel.clone())
            .get_catalogue_offer(pb::GetCatalogueOfferRequest {
                offer_id: "rennes2.collab".into(),
            })
            .await
            .unwrap_or_else(|s| panic!("{what}: GetCatalogueOffer: {s:?}"));
    }

    // An agent reports usage on its own node and reads nothing on the coordinator.
    let agent = federation.issue(&federation.uri("member/unistra/agent/probe"));
    let agent = federation.channel(&endpoint, &agent.cert_path, &agent.key_path);
    let mut metrics = MetricsServiceClient::new(agent.clone());
    let refused = [
        metrics
            .get_federation_summary(pb::GetFederationSummaryRequest::default())
            .await
            .map(|_| ()),
        metrics
            .list_open_incidents(pb::ListOpenIncidentsRequest::default())
            .await
            .map(|_| ()),
        metrics
            .get_member_metrics(pb::GetMemberMetricsRequest {
                member_id: "unistra".into(),
                month: Some(month),
            })
            .await
            .map(|_| ()),
        pb::registry_service_client::RegistryServiceClient::new(agent)
            .list_nodes(pb::ListNodesRequest::default())
            .await
            .map(|_| ()),
    ];
    for outcome in refused {
        assert_eq!(
            outcome.map_err(|s| s.code()),
            Err(Code::PermissionDenied),
            "an agent reads nothing on the coordinator"
        );
    }
}
