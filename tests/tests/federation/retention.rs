//! Ended things leave the hot trees: an incident closed longer ago than the retention of
//! ended things (here 0 days: at the next pass) leaves the provider's, the subscriber's and the
//! coordinator's trees for their archives, and requests naming it are answered clearly.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::incident_service_client::IncidentServiceClient;
use fedmesh_tests::{TestFederation, example_offer, wait_for};

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const OFFER: &str = "unistra.collab";

/// Ended things are archived at once, ten times a second, everywhere.
const RETIRE_AT_ONCE: [&str; 2] = ["retention.ended_days=0", "retention.interval_ms=100"];

async fn incident(channel: Channel, id: &str) -> Result<pb::Incident, tonic::Status> {
    IncidentServiceClient::new(channel)
        .get_incident(pb::GetIncidentRequest {
            incident_id: id.into(),
        })
        .await
        .map(|r| r.into_inner().incident.unwrap_or_default())
}

/// Incidents opened on unistra.collab this month, as the coordinator counts them.
async fn opened_this_month(coordinator: Channel) -> Option<i32> {
    let (year, month, _) =
        fedmesh_core::calendar::civil_from_days(fedmesh_grpc::figures::now().div_euclid(86_400));
    pb::metrics_service_client::MetricsServiceClient::new(coordinator)
        .get_incident_statistics(pb::GetIncidentStatisticsRequest {
            offer_id: OFFER.into(),
            month: Some(pb::YearMonth {
                year,
                month: month as i32,
            }),
        })
        .await
        .ok()?
        .into_inner()
        .offers
        .first()
        .map(|o| o.opened_count)
}

fn archived(data: &std::path::Path, id: &str) -> Option<pb::Incident> {
    let year = fedmesh_core::retention::year_of(fedmesh_grpc::figures::now());
    let shelf = data.join(format!("archive/incidents/{year}"));
    fedmesh_store::archive::read_latest(&shelf)
        .ok()?
        .into_iter()
        .find_map(|item| match item.payload {
            Some(pb::journal_entry::Payload::Incident(i)) if i.incident_id == id => Some(i),
            _ => None,
        })
}

#[tokio::test]
async fn a_closed_incident_leaves_the_hot_trees_for_the_archive() {
    let nodes = [
        RETIRE_AT_ONCE[0],
        RETIRE_AT_ONCE[1],
        "incidents.reopen_within_days=0",
    ];
    let fed = TestFederation::start_with(2, &RETIRE_AT_ONCE, &nodes).await;
    let offer = fed.publish(UNISTRA, example_offer("collaboration")).await;
    let (provider, subscriber) = (
        fed.as_admin(fed.member(UNISTRA)),
        fed.as_admin(fed.member(RENNES2)),
    );
    let coordinator = fed.as_admin(fed.coordinator());
    let tenancy = fed.subscribe(RENNES2, &offer).await;
    let mut desk = IncidentServiceClient::new(subscriber.clone());
    let id = desk
        .open_incident(pb::OpenIncidentRequest {
            request_id: "inc-1".into(),
            offer_id: OFFER.into(),
            provider_member_id: "unistra".into(),
            subscription_id: tenancy,
            priority: pb::Priority::P3 as i32,
            summary: "Users cannot log in".into(),
            description: "Since 9:00, every login ends on an error page.".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap()
        .incident_id;
    wait_for(
        "the open incident counted at the coordinator",
        Duration::from_secs(10),
        || async { (opened_this_month(coordinator.clone()).await? == 1).then_some(()) },
    )
    .await;

    // Resolved by the provider, closed by the subscriber: ended.
    let mut support = IncidentServiceClient::new(provider.clone());
    support
        .acknowledge_incident(pb::AcknowledgeIncidentRequest {
            request_id: "ack-1".into(),
            incident_id: id.clone(),
            comment: String::new(),
        })
        .await
        .unwrap();
    support
        .set_incident_status(pb::SetIncidentStatusRequest {
            request_id: "resolve-1".into(),
            incident_id: id.clone(),
            status: pb::IncidentStatus::Resolved as i32,
            comment: String::new(),
            resolution: "Certificate renewed".into(),
        })
        .await
        .unwrap();
    let close = pb::CloseIncidentRequest {
        request_id: "close-1".into(),
        incident_id: id.clone(),
        comment: "Works again".into(),
    };
    let closed = desk
        .close_incident(close.clone())
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(closed.status(), pb::IncidentStatus::Closed);

    // It leaves the provider's and the subscriber's trees: reading it says it was archived.
    for (who, channel) in [("unistra", &provider), ("rennes2", &subscriber)] {
        let refused = wait_for(
            &format!("the closed incident archived on {who}'s node"),
            Duration::from_secs(10),
            || {
                let channel = channel.clone();
                let id = id.clone();
                async move { incident(channel, &id).await.err() }
            },
        )
        .await;
        assert_eq!(
            refused.code(),
            tonic::Code::FailedPrecondition,
            "{refused:?}"
        );
        assert!(refused.message().contains("archived"), "{refused:?}");
    }
    // A retry of a request naming it gets the same clear answer, and creates nothing.
    let retried = desk.close_incident(close).await.unwrap_err();
    assert_eq!(
        retried.code(),
        tonic::Code::FailedPrecondition,
        "{retried:?}"
    );
    let listed = desk
        .list_incidents(pb::ListIncidentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert!(listed.is_empty(), "{listed:?}");
    // The provider's archive holds it as it was closed.
    let data = |index: usize| fed.member(index).config.parent().unwrap().join("data");
    let kept = archived(&data(UNISTRA), &id).expect("the incident in unistra's archive");
    assert_eq!(kept.status(), pb::IncidentStatus::Closed);
    assert!(
        archived(&data(RENNES2), &id).is_some(),
        "rennes2's copy archived"
    );

    // The coordinator archives its copy by its own retention: it leaves its counts.
    let coordinator_data = fed.coordinator().config.parent().unwrap().join("data");
    wait_for(
        "the closed incident in the coordinator's archive",
        Duration::from_secs(10),
        || async { archived(&coordinator_data, &id) },
    )
    .await;
    wait_for(
        "the incident gone from the coordinator's counts",
        Duration::from_secs(10),
        || async { (opened_this_month(coordinator.clone()).await? == 0).then_some(()) },
    )
    .await;
}
