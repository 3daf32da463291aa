//! A hostile member on the indirect paths: its node (its real certificate, its own registered
//! endpoint) serves a crafted journal to the coordinator and to its tenant's node. Whatever it
//! journals, no other member's offer, incident, tenancy or maintenance window changes, every
//! refused entry is counted by member and reason, and the follower goes on with the member's
//! next entries while honest members keep converging.

use std::time::Duration;

use fedmesh_proto::pb;
use fedmesh_proto::pb::journal_entry::Payload;
use fedmesh_tests::hostile::{HostileNode, entry};
use fedmesh_tests::{TestFederation, http_get, wait_for, without_live_clocks};

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;

/// A federation of unistra, rennes2 and rouen with the demo's offers, unistra a tenant of
/// rennes2's collaboration platform with two incidents open on it.
async fn seeded() -> (TestFederation, Vec<String>) {
    let federation = TestFederation::start(3).await;
    federation.running.seed_example_offers().await.unwrap();
    federation.running.seed_example_usage().await.unwrap();
    let incidents = federation.running.seed_example_incidents().await.unwrap();
    assert_eq!(incidents.len(), 2, "the two example incidents were opened");
    (federation, incidents)
}

async fn catalogue_offer(
    federation: &TestFederation,
    party: &fedmesh::federation::PartyManifest,
    offer_id: &str,
) -> Option<pb::CatalogueOffer> {
    pb::catalogue_service_client::CatalogueServiceClient::new(federation.as_admin(party))
        .get_catalogue_offer(pb::GetCatalogueOfferRequest {
            offer_id: offer_id.into(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().offer)
}

async fn open_incidents(federation: &TestFederation) -> Vec<pb::Incident> {
    let coordinator = federation.channel(
        &federation.coordinator().endpoint,
        &federation.coordinator().admin_cert,
        &federation.coordinator().admin_key,
    );
    pb::metrics_service_client::MetricsServiceClient::new(coordinator)
        .list_open_incidents(pb::ListOpenIncidentsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .incidents
}

/// The value of `fedmesh_replication_rejected_total{member,reason}` on a `/metrics` page.
fn rejected(page: &str, member: &str, reason: &str) -> u64 {
    let prefix =
        format!("fedmesh_replication_rejected_total{{member=\"{member}\",reason=\"{reason}\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// What rouen's crafted journal says: rennes2's offer under rouen's name with a 1 % SLA and
/// a phishing contact, an offer of rouen's claiming rennes2 as provider, an offer a publish
/// would refuse, rennes2's incident re-owned, a tenancy, a usage record and a monthly report
/// of rennes2's offer, an entry whose kind lies, a revision that goes backward — and last an honest new offer.
fn forged_journal(
    stolen_offer: &pb::Offer,
    stolen_incident: &pb::Incident,
    own: &pb::Offer,
) -> Vec<pb::JournalEntry> {
    let mut fake = stolen_offer.clone();
    fake.provider_member_id = "rouen".into();
    fake.service_name = "Collaboration (new contact)".into();
    if let Some(e) = fake.engagement.as_mut() {
        e.availability_sla_percent = 1.0;
    }
    if let Some(c) = fake
        .support
        .as_mut()
        .and_then(|s| s.single_point_of_contact.as_mut())
    {
        c.email = "support@phishing.example".into();
    }
    let mut lent = own.clone();
    lent.offer_id = "rouen.lent".into();
    lent.service_id = "lent".into();
    lent.provider_member_id = "rennes2".into();
    let mut broken = own.clone();
    broken.offer_id = "rouen.broken".into();
    broken.service_id = "broken".into();
    if let Some(e) = broken.engagement.as_mut() {
        e.availability_sla_percent = 250.0;
    }
    let mut incident = stolen_incident.clone();
    incident.provider_member_id = "rouen".into();
    incident.offer_id = own.offer_id.clone();
    incident.subscription_id = "rouen.s1".into();
    incident.status = pb::IncidentStatus::Closed as i32;
    let tenancy = pb::Subscription {
        subscription_id: "rennes2.s999".into(),
        offer_id: "rennes2.collab".into(),
        provider_member_id: "rouen".into(),
        subscriber_member_id: "unistra".into(),
        state: pb::SubscriptionState::Active as i32,
        user_count: 1_000_000,
        ..Default::default()
    };
    let usage = pb::UsageRecordBatch {
        records: vec![pb::UsageRecord {
            record_id: "forged-1".into(),
            offer_id: "rennes2.collab".into(),
            subscription_id: "rennes2.s1".into(),
            metric: "requests".into(),
            value: 1e9,
            period: Some(pb::Period {
                start_time: Some(prost_types::Timestamp {
                    seconds: 1_780_000_000,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: 1_780_000_060,
                    nanos: 0,
                }),
            }),
            ..Default::default()
        }],
    };
    // rennes2's October report, as rouen would like it read: rennes2 missing its SLA.
    let report = pb::MonthlyReport {
        report_id: "rennes2.collab/2026-10".into(),
        scope: pb::ReportScope::Offer as i32,
        offer_id: "rennes2.collab".into(),
        provider_member_id: "rennes2".into(),
        month: Some(pb::YearMonth {
            year: 2026,
            month: 10,
        }),
        compliance: Some(pb::OfferSlaCompliance {
            offer_id: "rennes2.collab".into(),
            availability: Some(pb::AvailabilitySummary::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut lying_kind = entry(8, Payload::Offer(own.clone()));
    lying_kind.entity_kind = pb::EntityKind::Subscription as i32;
    let mut honest = own.clone();
    honest.offer_id = "rouen.honest".into();
    honest.service_id = "honest".into();
    vec![
        entry(1, Payload::Offer(fake)),
        entry(2, Payload::Offer(lent)),
        entry(3, Payload::Offer(broken)),
        entry(4, Payload::Incident(incident)),
        entry(5, Payload::Subscription(tenancy)),
        entry(6, Payload::UsageRecords(usage)),
        entry(7, Payload::MonthlyReport(report)),
        lying_kind,
        // Backward: below what this stream already sent.
        entry(2, Payload::Offer(stolen_offer.clone())),
        entry(9, Payload::Offer(honest)),
    ]
}

/// Rouen's node replaces rennes2's offer and re-owns one of rennes2's incidents in the
/// journal the coordinator follows: the coordinator refuses every such entry (counted by
/// reason), applies rouen's honest offer after them, and rennes2's offer, incidents and
/// figures stay rennes2's — at the coordinator, in unistra's cached catalogue, after a journal
/// that changes identity and then serves an entry too large to receive, and while rennes2
/// keeps publishing.
#[tokio::test]
async fn a_hostile_journal_changes_nothing_of_another_member_at_the_coordinator() {
    let (mut federation, incidents) = seeded().await;
    let coordinator = federation.coordinator().clone();
    let (unistra, rennes2, rouen) = (
        federation.member(UNISTRA).clone(),
        federation.member(RENNES2).clone(),
        federation.member(ROUEN).clone(),
    );
    let collab = wait_for(
        "rennes2.collab at the coordinator",
        Duration::from_secs(10),
        || catalogue_offer(&federation, &coordinator, "rennes2.collab"),
    )
    .await;
    let own = wait_for(
        "rouen.pod at the coordinator",
        Duration::from_secs(10),
        || catalogue_offer(&federation, &coordinator, "rouen.pod"),
    )
    .await;
    let stolen = wait_for(
        "rennes2's incidents at the coordinator",
        Duration::from_secs(10),
        || {
            let federation = &federation;
            let incidents = &incidents;
            async move {
                let open = open_incidents(federation).await;
                open.into_iter().find(|i| i.incident_id == incidents[0])
            }
        },
    )
    .await;
    let before_open = open_incidents(&federation).await.len();

    // Rouen's real node stops; a hostile one with rouen's certificate takes its place.
    federation.running.stop_member(ROUEN).await.unwrap();
    let hostile = HostileNode::start(&federation, &rouen).await;
    hostile.serve(
        "forged-journal-1",
        forged_journal(
            collab.offer.as_ref().unwrap(),
            &stolen,
            own.offer.as_ref().unwrap(),
        ),
    );
    hostile.register(&federation, &rouen).await;

    // The follower goes on past every refused entry to rouen's honest offer.
    wait_for(
        "rouen.honest at the coordinator",
        Duration::from_secs(15),
        || catalogue_offer(&federation, &coordinator, "rouen.honest"),
    )
    .await;
    let metrics = coordinator.metrics.clone().unwrap();
    let (_, page) = http_get(&metrics).await;
    for honest in ["unistra", "rennes2"] {
        assert!(
            !page.contains(&format!("rejected_total{{member=\"{honest}\"")),
            "an honest member's journal has nothing refused: {page}"
        );
    }
    for (reason, at_least) in [
        ("foreign_id", 3),
        ("not_owner", 3),
        ("invalid", 2),
        ("backward", 1),
    ] {
        assert!(
            rejected(&page, "rouen", reason) >= at_least,
            "rouen's entries refused for {reason}: {}\n{page}",
            rejected(&page, "rouen", reason)
        );
    }

    // Nothing of rennes2's changed.
    let after = catalogue_offer(&federation, &coordinator, "rennes2.collab")
        .await
        .unwrap();
    assert_eq!(after.offer, collab.offer, "rennes2's offer is rennes2's");
    assert_eq!(
        (after.tenant_count, after.user_count),
        (collab.tenant_count, collab.user_count),
        "a forged tenancy counts no tenant"
    );
    for refused in ["rouen.lent", "rouen.broken"] {
        assert!(
            catalogue_offer(&federation, &coordinator, refused)
                .await
                .is_none(),
            "{refused} was refused"
        );
    }
    let october =
        pb::metrics_service_client::MetricsServiceClient::new(federation.as_admin(&coordinator))
            .get_sla_compliance(pb::GetSlaComplianceRequest {
                offer_id: "rennes2.collab".into(),
                month: Some(pb::YearMonth {
                    year: 2026,
                    month: 10,
                }),
            })
            .await
            .unwrap()
            .into_inner();
    assert!(
        october.offers.iter().all(|c| c.sla_met),
        "rouen's report of rennes2's month is not read: {october:?}"
    );
    let open = open_incidents(&federation).await;
    assert_eq!(open.len(), before_open, "no open incident vanished");
    let kept = open
        .iter()
        .find(|i| i.incident_id == stolen.incident_id)
        .unwrap();
    assert_eq!(kept.provider_member_id, "rennes2");

    // A journal that changes identity is read again from its start: still nothing passes.
    let mut entries = forged_journal(
        collab.offer.as_ref().unwrap(),
        &stolen,
        own.offer.as_ref().unwrap(),
    );
    let mut later = own.offer.clone().unwrap();
    later.offer_id = "rouen.later".into();
    later.service_id = "later".into();
    entries.push(entry(10, Payload::Offer(later)));
    // Then an entry larger than any message the coordinator accepts (5 MiB): rouen's own
    // replication stops there; nobody else's does (below).
    let mut oversized = own.offer.clone().unwrap();
    oversized.offer_id = "rouen.oversized".into();
    oversized.service_id = "oversized".into();
    if let Some(d) = oversized.description.as_mut() {
        d.en = "x".repeat(5 * 1024 * 1024);
    }
    entries.push(entry(11, Payload::Offer(oversized)));
    // Its node comes back elsewhere (a new endpoint: the coordinator's follower reconnects)
    // with a journal of another identity.
    drop(hostile);
    let hostile = HostileNode::start(&federation, &rouen).await;
    hostile.serve("forged-journal-2", entries);
    hostile.register(&federation, &rouen).await;
    wait_for(
        "rouen.later at the coordinator",
        Duration::from_secs(15),
        || catalogue_offer(&federation, &coordinator, "rouen.later"),
    )
    .await;
    let after = catalogue_offer(&federation, &coordinator, "rennes2.collab")
        .await
        .unwrap();
    assert_eq!(after.offer, collab.offer);

    assert!(
        catalogue_offer(&federation, &coordinator, "rouen.oversized")
            .await
            .is_none()
    );

    // Honest members keep converging: rennes2 publishes a new version, which reaches the
    // coordinator and unistra's cached catalogue.
    let mut update = collab.offer.clone().unwrap();
    update.version = "2".into();
    let published =
        pb::offer_service_client::OfferServiceClient::new(federation.as_admin(&rennes2))
            .publish_offer(pb::PublishOfferRequest {
                etag: update.etag.clone(),
                offer: Some(update),
            })
            .await
            .unwrap()
            .into_inner()
            .offer
            .unwrap();
    for party in [&coordinator, &unistra] {
        wait_for(
            "rennes2's new version in the catalogue",
            Duration::from_secs(10),
            || async {
                catalogue_offer(&federation, party, "rennes2.collab")
                    .await
                    .and_then(|c| c.offer)
                    .filter(|o| o.version == "2" && o.provider_member_id == "rennes2")
            },
        )
        .await;
    }
    assert_eq!(published.provider_member_id, "rennes2");
    drop(hostile);
}

/// Rennes2's node, provider of unistra, serves unistra's node a journal that names other
/// providers' maintenance windows, unistra's own window, another subscriber's tenancy and
/// incident: unistra's node mirrors none of it, counts each, and mirrors rennes2's honest
/// window that follows.
#[tokio::test]
async fn a_hostile_provider_cannot_touch_what_its_tenant_holds_of_others() {
    let (mut federation, incidents) = seeded().await;
    let (unistra, rennes2, rouen) = (
        federation.member(UNISTRA).clone(),
        federation.member(RENNES2).clone(),
        federation.member(ROUEN).clone(),
    );
    let period = |from: i64, hours: i64| pb::Period {
        start_time: Some(prost_types::Timestamp {
            seconds: from,
            nanos: 0,
        }),
        end_time: Some(prost_types::Timestamp {
            seconds: from + hours * 3600,
            nanos: 0,
        }),
    };
    let soon = fedmesh_grpc::figures::now() + 86_400;
    // Unistra announces a window on its own offer; rouen, of which unistra becomes a tenant,
    // announces one on its offer.
    let announce = |party: &fedmesh::federation::PartyManifest, offer: &str| {
        let channel = federation.as_admin(party);
        let offer = offer.to_owned();
        async move {
            pb::offer_service_client::OfferServiceClient::new(channel)
                .announce_maintenance(pb::AnnounceMaintenanceRequest {
                    request_id: format!("mw-{offer}"),
                    offer_id: offer,
                    period: Some(period(soon, 2)),
                    summary: "Planned upgrade".into(),
                    description: String::new(),
                })
                .await
                .unwrap()
                .into_inner()
                .maintenance_window
                .unwrap()
        }
    };
    let own_window = announce(&unistra, "unistra.otp").await;
    let requested = pb::subscription_service_client::SubscriptionServiceClient::new(
        federation.as_admin(&unistra),
    )
    .request_subscription(pb::RequestSubscriptionRequest {
        request_id: "pod-1".into(),
        offer_id: "rouen.pod".into(),
        user_count: 100,
        contact_email: "dsi@unistra.example".into(),
        accepted_terms_version: fedmesh_tests::example_offer("video").terms_version,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .subscription
    .unwrap();
    pb::subscription_service_client::SubscriptionServiceClient::new(federation.as_admin(&rouen))
        .approve_subscription(pb::ApproveSubscriptionRequest {
            request_id: "approve-1".into(),
            subscription_id: requested.subscription_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let rouen_window = announce(&rouen, "rouen.pod").await;
    let unistra_admin = federation.as_admin(&unistra);
    let windows = |offer: &'static str| {
        let channel = unistra_admin.clone();
        async move {
            pb::offer_service_client::OfferServiceClient::new(channel)
                .list_maintenance(pb::ListMaintenanceRequest {
                    offer_id: offer.into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .maintenance_windows
        }
    };
    wait_for(
        "rouen's window mirrored on unistra's node",
        Duration::from_secs(10),
        || async {
            windows("rouen.pod")
                .await
                .contains(&rouen_window)
                .then_some(())
        },
    )
    .await;
    let incident = |id: &str| {
        let channel = unistra_admin.clone();
        let id = id.to_owned();
        async move {
            pb::incident_service_client::IncidentServiceClient::new(channel)
                .get_incident(pb::GetIncidentRequest { incident_id: id })
                .await
                .unwrap()
                .into_inner()
                .incident
                .map(without_live_clocks)
                .unwrap()
        }
    };
    let incident_before = incident(&incidents[1]).await;

    // Rennes2's node turns hostile.
    federation.running.stop_member(RENNES2).await.unwrap();
    let hostile = HostileNode::start(&federation, &rennes2).await;
    let forge = |mut w: pb::MaintenanceWindow| {
        w.offer_id = "rennes2.collab".into();
        w.provider_member_id = "rennes2".into();
        w.summary = "Moved: see https://phishing.example".into();
        w.period = Some(period(soon + 3600, 30));
        w
    };
    let mut other_subscriber = incident_before.clone();
    other_subscriber.subscriber_member_id = "rouen".into();
    other_subscriber.summary = "rewritten".into();
    let tenancy = pb::Subscription {
        subscription_id: "rennes2.s777".into(),
        offer_id: "rennes2.collab".into(),
        provider_member_id: "rennes2".into(),
        subscriber_member_id: "rouen".into(),
        state: pb::SubscriptionState::Active as i32,
        ..Default::default()
    };
    let mut honest = forge(own_window.clone());
    honest.maintenance_id = "MW-20991231-rennes2-900".into();
    honest.summary = "Planned upgrade".into();
    hostile.serve(
        "forged-journal",
        vec![
            entry(1, Payload::MaintenanceWindow(forge(rouen_window.clone()))),
            entry(2, Payload::MaintenanceWindow(forge(own_window.clone()))),
            entry(3, Payload::Incident(other_subscriber)),
            entry(4, Payload::Subscription(tenancy)),
            entry(5, Payload::MaintenanceWindow(honest.clone())),
        ],
    );
    hostile.register(&federation, &rennes2).await;

    wait_for(
        "rennes2's honest window mirrored on unistra's node",
        Duration::from_secs(15),
        || async {
            windows("rennes2.collab")
                .await
                .contains(&honest)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        windows("unistra.otp").await,
        vec![own_window],
        "unistra's own window"
    );
    assert_eq!(
        windows("rouen.pod").await,
        vec![rouen_window],
        "rouen's window"
    );
    assert_eq!(
        incident(&incidents[1]).await,
        incident_before,
        "unistra's incident"
    );
    let (_, page) = http_get(unistra.metrics.as_ref().unwrap()).await;
    assert_eq!(rejected(&page, "rennes2", "foreign_id"), 2, "{page}");
    assert_eq!(rejected(&page, "rennes2", "not_party"), 2, "{page}");
    drop(hostile);
}
