//! Journals that compact: a follower down across a compaction is told so, resyncs from a
//! snapshot and ends with exact figures; one restarted during its resync too; a catalogue
//! cache sees what changed while it was away; and a snapshot item a member may not say is
//! refused as a journal entry would be.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::catalogue_service_client::CatalogueServiceClient;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient;
use fedmesh_tests::proxy::{FaultProxy, Toxics};
use fedmesh_tests::{TestFederation, example_offer, wait_for};

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const OFFER: &str = "unistra.collab";
/// 5 October 2026, 00:00 in Paris.
const OCT_5: i64 = 1_791_151_200;
/// Every node compacts its journal to its last entry, at once, ten times a second.
const COMPACT_AT_ONCE: [&str; 4] = [
    "journal.keep_entries=1",
    "journal.keep_days=0",
    "journal.max_keep_days=0",
    "journal.compact_interval_ms=100",
];

async fn october_requests(coordinator: Channel) -> Option<i64> {
    let month = pb::YearMonth {
        year: 2026,
        month: 10,
    };
    let metrics = MetricsServiceClient::new(coordinator)
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: OFFER.into(),
            from_month: Some(month),
            to_month: Some(month),
        })
        .await
        .ok()?
        .into_inner();
    metrics.months.into_iter().next().map(|m| m.request_count)
}

/// Opens an incident on `tenancy` as its subscriber (on its own node); the incident's id.
async fn open_incident(subscriber: Channel, tenancy: &str) -> String {
    pb::incident_service_client::IncidentServiceClient::new(subscriber)
        .open_incident(pb::OpenIncidentRequest {
            request_id: "inc-1".into(),
            offer_id: OFFER.into(),
            provider_member_id: "unistra".into(),
            subscription_id: tenancy.to_owned(),
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
        .incident_id
}

/// An offer of unistra's with a tenancy of rennes2's, known to the coordinator; returns the
/// tenancy id.
async fn provider_with_tenant(fed: &TestFederation) -> String {
    let offer = fed.publish(UNISTRA, example_offer("collaboration")).await;
    fed.subscribe(RENNES2, &offer).await
}

/// Reports `batches` batches of 20 one-request records from `first`; how many were accepted.
async fn report(fed: &TestFederation, tenancy: &str, first: u32, batches: u32) -> i64 {
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    let mut agent = UsageServiceClient::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &agent.cert_path,
        &agent.key_path,
    ));
    let mut accepted = 0;
    for batch in first..first + batches {
        let records = (0..20)
            .map(|i| pb::UsageRecord {
                record_id: format!("r{batch}-{i}"),
                offer_id: OFFER.into(),
                subscription_id: tenancy.into(),
                metric: "requests".into(),
                value: 1.0,
                period: Some(pb::Period {
                    start_time: Some(prost_types::Timestamp {
                        seconds: OCT_5 + i64::from(batch) * 60,
                        nanos: 0,
                    }),
                    end_time: Some(prost_types::Timestamp {
                        seconds: OCT_5 + i64::from(batch) * 60 + 60,
                        nanos: 0,
                    }),
                }),
                ..Default::default()
            })
            .collect();
        accepted += i64::from(
            agent
                .report_usage(pb::ReportUsageRequest { records })
                .await
                .unwrap()
                .into_inner()
                .accepted_count,
        );
    }
    accepted
}

/// Waits until unistra's journal holds nothing at or below `revision` any more.
async fn compacted_past(fed: &TestFederation, revision: u64) -> u64 {
    let journal = JournalServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    wait_for(
        "unistra's journal compacted past the coordinator's cursor",
        Duration::from_secs(10),
        || {
            let mut journal = journal.clone();
            async move {
                let info = journal
                    .get_journal_info(pb::GetJournalInfoRequest {})
                    .await
                    .ok()?
                    .into_inner();
                (info.first_revision > revision + 1).then_some(info.first_revision)
            }
        },
    )
    .await
}

async fn last_revision(fed: &TestFederation) -> u64 {
    JournalServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .get_journal_info(pb::GetJournalInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .last_revision
}

async fn wait_exact(coordinator: &Channel, expected: i64, what: &str) {
    wait_for(what, Duration::from_secs(30), || {
        let coordinator = coordinator.clone();
        async move { (october_requests(coordinator).await? == expected).then_some(()) }
    })
    .await;
}

/// The coordinator is down while unistra's journal compacts past its cursor. A watch from a
/// compacted revision answers `OUT_OF_RANGE` with the compaction point in the metadata; the
/// restarted coordinator resyncs from unistra's snapshot, and its totals equal what unistra
/// acknowledged, then follow live.
#[tokio::test]
async fn a_coordinator_down_across_a_compaction_resyncs_with_exact_totals() {
    let mut fed = TestFederation::start_with(2, &[], &COMPACT_AT_ONCE).await;
    let tenancy = provider_with_tenant(&fed).await;
    let coordinator = fed.as_admin(fed.coordinator());
    let mut acknowledged = report(&fed, &tenancy, 0, 5).await;
    wait_exact(
        &coordinator,
        acknowledged,
        "the first records at the coordinator",
    )
    .await;

    fed.running.stop_coordinator().await.unwrap();
    let stopped_at = last_revision(&fed).await;
    acknowledged += report(&fed, &tenancy, 5, 20).await;
    let first = compacted_past(&fed, stopped_at).await;

    // What a follower with an old cursor is told.
    let refused = JournalServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .watch(pb::WatchRequest {
            since_revision: stopped_at,
            entity_kinds: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    assert!(refused.message().contains("GetSnapshot"), "{refused:?}");
    let point = fedmesh_grpc::error::compact_revision(&refused).expect("the compaction point");
    assert!(point + 1 >= first, "{point} {first}");

    fed.running.restart_coordinator().await.unwrap();
    wait_exact(
        &coordinator,
        acknowledged,
        "the coordinator's totals after its resync",
    )
    .await;
    // And live from the snapshot's revision: new records count once.
    acknowledged += report(&fed, &tenancy, 25, 3).await;
    wait_exact(&coordinator, acknowledged, "live records after the resync").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(october_requests(coordinator).await, Some(acknowledged));
}

/// The coordinator resyncs from unistra through a link that cuts every connection before the
/// snapshot is complete: it counts part of it, again and again, and is stopped in the middle.
/// Restarted over a sound link, it ends with exactly what unistra acknowledged.
#[tokio::test]
async fn a_coordinator_restarted_during_its_resync_counts_each_record_once() {
    let mut fed = TestFederation::start_with(2, &[], &COMPACT_AT_ONCE).await;
    let inbound = FaultProxy::start(fed.running.member_addr(UNISTRA).unwrap()).await;
    fed.running
        .restart_member_with(UNISTRA, &[format!("advertise={}", inbound.endpoint())])
        .await
        .unwrap();
    let tenancy = provider_with_tenant(&fed).await;
    let coordinator = fed.as_admin(fed.coordinator());
    let mut acknowledged = report(&fed, &tenancy, 0, 2).await;
    wait_exact(
        &coordinator,
        acknowledged,
        "the first records at the coordinator",
    )
    .await;

    fed.running.stop_coordinator().await.unwrap();
    let stopped_at = last_revision(&fed).await;
    // About 200 KB of records: several times what the cut link lets through.
    acknowledged += report(&fed, &tenancy, 2, 80).await;
    compacted_past(&fed, stopped_at).await;
    inbound.set(Toxics {
        data_limit: Some(48 * 1024),
        ..Toxics::default()
    });
    fed.running.restart_coordinator().await.unwrap();
    let partial = wait_for(
        "the coordinator in the middle of its resync",
        Duration::from_secs(30),
        || {
            let coordinator = coordinator.clone();
            async move {
                let counted = october_requests(coordinator).await?;
                (counted > 0 && counted < acknowledged).then_some(counted)
            }
        },
    )
    .await;
    fed.running.stop_coordinator().await.unwrap();
    inbound.set(Toxics::default());
    fed.running.restart_coordinator().await.unwrap();
    wait_exact(
        &coordinator,
        acknowledged,
        "exact totals after the interrupted resync",
    )
    .await;
    assert!(partial < acknowledged);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(october_requests(coordinator).await, Some(acknowledged));
}

async fn cached_offer(channel: Channel, offer_id: &str) -> Option<pb::CatalogueOffer> {
    CatalogueServiceClient::new(channel)
        .get_catalogue_offer(pb::GetCatalogueOfferRequest {
            offer_id: offer_id.into(),
        })
        .await
        .ok()?
        .into_inner()
        .offer
}

/// Rennes2's node is down while unistra withdraws an offer and the coordinator's catalogue
/// log compacts past rennes2's cursor: a watch from that cursor is told so, and the restarted
/// node's cache reloads the catalogue and shows the offer withdrawn.
#[tokio::test]
async fn a_catalogue_cache_down_across_a_compaction_sees_a_withdrawn_offer() {
    let coordinator_settings = [
        "catalogue.keep_entries=1",
        "catalogue.keep_days=0",
        "catalogue.max_keep_days=0",
        "catalogue.compact_interval_ms=100",
    ];
    let mut fed = TestFederation::start_with(2, &coordinator_settings, &[]).await;
    fed.publish(UNISTRA, example_offer("collaboration")).await;
    let rennes2 = fed.as_admin(fed.member(RENNES2));
    wait_for(
        "the offer in rennes2's cache",
        Duration::from_secs(10),
        || cached_offer(rennes2.clone(), OFFER),
    )
    .await;
    fed.running.stop_member(RENNES2).await.unwrap();
    let coordinator = fed.as_admin(fed.coordinator());
    let before = CatalogueServiceClient::new(coordinator.clone())
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .last_revision;
    pb::offer_service_client::OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .withdraw_offer(pb::WithdrawOfferRequest {
            offer_id: OFFER.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // One change more, so that the withdrawal is not the head (which always stays).
    fed.publish(UNISTRA, example_offer("otp")).await;
    let refused = wait_for(
        "the coordinator's catalogue compacted past rennes2's cursor",
        Duration::from_secs(10),
        || {
            let coordinator = coordinator.clone();
            async move {
                let answer = CatalogueServiceClient::new(coordinator)
                    .watch_catalogue(pb::WatchCatalogueRequest {
                        since_revision: before,
                        ..Default::default()
                    })
                    .await;
                answer.err()
            }
        },
    )
    .await;
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");
    assert!(fedmesh_grpc::error::compact_revision(&refused).is_some());

    fed.running.restart_member(RENNES2).await.unwrap();
    wait_for(
        "the offer withdrawn in rennes2's cache",
        Duration::from_secs(20),
        || {
            let rennes2 = rennes2.clone();
            async move {
                let offer = cached_offer(rennes2, OFFER).await?.offer?;
                (offer.status == pb::OfferStatus::Withdrawn as i32).then_some(())
            }
        },
    )
    .await;
}

/// Rennes2's node turns hostile and answers every follower that its journal was compacted:
/// the coordinator and its tenant unistra's node resync from its snapshot. The snapshot claims
/// rouen's offer and names a maintenance window in rouen's namespace: each such item is
/// refused as a journal entry would be (counted in `fedmesh_replication_rejected_total`) and
/// changes nothing, while rennes2's honest items after them are applied.
#[tokio::test]
async fn a_hostile_snapshot_item_is_refused_as_a_journal_entry_would_be() {
    use fedmesh_proto::pb::journal_entry::Payload;
    use fedmesh_tests::hostile::{HostileNode, entry, rejected};
    const ROUEN: usize = 2;
    let mut fed = TestFederation::start(3).await;
    fed.running.seed_example_offers().await.unwrap();
    // Unistra becomes a tenant of rennes2's collaboration platform, and opens incidents.
    fed.running.seed_example_usage().await.unwrap();
    fed.running.seed_example_incidents().await.unwrap();
    let (coordinator, unistra, rennes2) = (
        fed.coordinator().clone(),
        fed.member(UNISTRA).clone(),
        fed.member(RENNES2).clone(),
    );
    let at_coordinator = fed.as_admin(&coordinator);
    let collab = wait_for(
        "rennes2.collab at the coordinator",
        Duration::from_secs(10),
        || cached_offer(at_coordinator.clone(), "rennes2.collab"),
    )
    .await;
    let pod = wait_for(
        "rouen.pod at the coordinator",
        Duration::from_secs(10),
        || cached_offer(at_coordinator.clone(), "rouen.pod"),
    )
    .await;
    let pod = pod.offer.unwrap();
    assert_eq!(fed.member(ROUEN).member_id.as_deref(), Some("rouen"));

    let mut stolen = pod.clone();
    stolen.provider_member_id = "rennes2".into();
    stolen.service_name = "Video (new provider)".into();
    let window = |id: &str, summary: &str| pb::MaintenanceWindow {
        maintenance_id: id.into(),
        offer_id: "rennes2.collab".into(),
        provider_member_id: "rennes2".into(),
        period: Some(pb::Period {
            start_time: Some(prost_types::Timestamp {
                seconds: 4_102_444_800,
                nanos: 0,
            }),
            end_time: Some(prost_types::Timestamp {
                seconds: 4_102_452_000,
                nanos: 0,
            }),
        }),
        summary: summary.into(),
        ..Default::default()
    };
    let foreign = window("MW-20991231-rouen-7", "Moved: see https://phishing.example");
    let honest_window = window("MW-20991231-rennes2-900", "Planned upgrade");
    let mut honest_offer = collab.offer.clone().unwrap();
    honest_offer.service_name = "Collaboration (resynced)".into();

    fed.running.stop_member(RENNES2).await.unwrap();
    let hostile = HostileNode::start(&fed, &rennes2).await;
    hostile.serve_compacted(
        "forged-snapshot",
        40,
        vec![
            entry(40, Payload::Offer(stolen)),
            entry(40, Payload::MaintenanceWindow(foreign.clone())),
            entry(40, Payload::Offer(honest_offer)),
            entry(40, Payload::MaintenanceWindow(honest_window.clone())),
        ],
    );
    hostile.register(&fed, &rennes2).await;

    // The coordinator applies the honest offer, which came after the refused items.
    wait_for(
        "rennes2's honest offer from its snapshot at the coordinator",
        Duration::from_secs(20),
        || {
            let channel = at_coordinator.clone();
            async move {
                let offer = cached_offer(channel, "rennes2.collab").await?.offer?;
                (offer.service_name == "Collaboration (resynced)").then_some(())
            }
        },
    )
    .await;
    let after = cached_offer(at_coordinator.clone(), "rouen.pod")
        .await
        .and_then(|c| c.offer);
    assert_eq!(after, Some(pod), "rouen's offer is rouen's");
    let (_, page) = fedmesh_tests::http_get(coordinator.metrics.as_ref().unwrap()).await;
    assert!(
        rejected(&page, "rennes2", "foreign_id") >= 2,
        "the claimed offer and the foreign window refused at the coordinator:\n{page}"
    );

    // Unistra's mirror takes rennes2's honest window, not the one in rouen's namespace.
    let at_unistra = fed.as_admin(&unistra);
    let windows = || {
        let channel = at_unistra.clone();
        async move {
            pb::offer_service_client::OfferServiceClient::new(channel)
                .list_maintenance(pb::ListMaintenanceRequest {
                    offer_id: "rennes2.collab".into(),
                    page_size: 500,
                    ..Default::default()
                })
                .await
                .ok()
                .map(|r| r.into_inner().maintenance_windows)
        }
    };
    wait_for(
        "rennes2's honest window mirrored on unistra's node from the snapshot",
        Duration::from_secs(20),
        || async {
            windows()
                .await?
                .iter()
                .any(|w| w.maintenance_id == honest_window.maintenance_id)
                .then_some(())
        },
    )
    .await;
    assert!(
        !windows()
            .await
            .unwrap()
            .iter()
            .any(|w| w.maintenance_id == foreign.maintenance_id),
        "a window in rouen's namespace is not mirrored"
    );
    let (_, page) = fedmesh_tests::http_get(unistra.metrics.as_ref().unwrap()).await;
    assert_eq!(rejected(&page, "rennes2", "foreign_id"), 1, "{page}");
    drop(hostile);
}

/// Rennes2's node, a tenant of unistra's, is down while unistra suspends the tenancy and
/// resolves rennes2's incident, and unistra's journal compacts past what rennes2 mirrored.
/// Restarted, rennes2's node resyncs from unistra's snapshot: its copies reach unistra's
/// current state.
#[tokio::test]
async fn a_subscriber_mirror_down_across_a_compaction_resyncs() {
    let mut fed = TestFederation::start_with(2, &[], &COMPACT_AT_ONCE).await;
    let tenancy = provider_with_tenant(&fed).await;
    let (provider, subscriber) = (
        fed.as_admin(fed.member(UNISTRA)),
        fed.as_admin(fed.member(RENNES2)),
    );
    let incident = open_incident(subscriber.clone(), &tenancy).await;
    let mirrored = || {
        let (subscriber, tenancy, incident) =
            (subscriber.clone(), tenancy.clone(), incident.clone());
        async move {
            let subscription = SubscriptionServiceClient::new(subscriber.clone())
                .get_subscription(pb::GetSubscriptionRequest {
                    subscription_id: tenancy,
                })
                .await
                .ok()?
                .into_inner()
                .subscription?;
            let incident = pb::incident_service_client::IncidentServiceClient::new(subscriber)
                .get_incident(pb::GetIncidentRequest {
                    incident_id: incident,
                })
                .await
                .ok()?
                .into_inner()
                .incident?;
            Some((subscription.state(), incident.status()))
        }
    };
    wait_for(
        "the tenancy and the incident mirrored on rennes2's node",
        Duration::from_secs(10),
        || async {
            (mirrored().await? == (pb::SubscriptionState::Active, pb::IncidentStatus::New))
                .then_some(())
        },
    )
    .await;

    fed.running.stop_member(RENNES2).await.unwrap();
    let stopped_at = last_revision(&fed).await;
    SubscriptionServiceClient::new(provider.clone())
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "suspend-1".into(),
            subscription_id: tenancy.clone(),
            reason: "Unpaid invoice".into(),
        })
        .await
        .unwrap();
    let mut desk = pb::incident_service_client::IncidentServiceClient::new(provider);
    desk.acknowledge_incident(pb::AcknowledgeIncidentRequest {
        request_id: "ack-1".into(),
        incident_id: incident.clone(),
        comment: String::new(),
    })
    .await
    .unwrap();
    desk.set_incident_status(pb::SetIncidentStatusRequest {
        request_id: "resolve-1".into(),
        incident_id: incident.clone(),
        status: pb::IncidentStatus::Resolved as i32,
        comment: String::new(),
        resolution: "Certificate renewed".into(),
    })
    .await
    .unwrap();
    // One change more, so that the resolution is not the head (which always stays).
    fed.publish(UNISTRA, example_offer("otp")).await;
    compacted_past(&fed, stopped_at).await;

    fed.running.restart_member(RENNES2).await.unwrap();
    wait_for(
        "rennes2's copies at unistra's current state after its resync",
        Duration::from_secs(20),
        || async {
            (mirrored().await?
                == (
                    pb::SubscriptionState::Suspended,
                    pb::IncidentStatus::Resolved,
                ))
                .then_some(())
        },
    )
    .await;
}

/// Maintenance windows announced on `OFFER`, as `channel`'s node lists them.
async fn windows_on(channel: Channel) -> Option<Vec<pb::MaintenanceWindow>> {
    let mut windows = pb::offer_service_client::OfferServiceClient::new(channel)
        .list_maintenance(pb::ListMaintenanceRequest {
            offer_id: OFFER.into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner()
        .maintenance_windows;
    windows.sort_by(|a, b| a.maintenance_id.cmp(&b.maintenance_id));
    Some(windows)
}

/// Announces a maintenance window on `OFFER` as unistra's admin, with a description of about
/// 3 KiB (so that a few dozen make a snapshot several times what a cut link lets through).
async fn announce(fed: &TestFederation, n: i64) -> pb::MaintenanceWindow {
    let start = 4_102_444_800 + n * 86_400;
    let description = (0..40)
        .map(|line| {
            format!("Step {line} of window {n}: the storage nodes are upgraded one by one.\n")
        })
        .collect::<String>();
    pb::offer_service_client::OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .announce_maintenance(pb::AnnounceMaintenanceRequest {
            request_id: format!("mw-{n}"),
            offer_id: OFFER.into(),
            period: Some(pb::Period {
                start_time: Some(prost_types::Timestamp {
                    seconds: start,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: start + 7_200,
                    nanos: 0,
                }),
            }),
            summary: format!("Storage upgrade {n}"),
            description,
        })
        .await
        .unwrap()
        .into_inner()
        .maintenance_window
        .unwrap()
}

/// Rennes2's node, a tenant of unistra's, is down while unistra suspends the tenancy, resolves
/// rennes2's incident and announces maintenance windows, and unistra's journal compacts past
/// what rennes2 mirrored. Restarted behind a link that cuts every connection before unistra's
/// snapshot is complete, rennes2's node mirrors part of it again and again, and is stopped in
/// the middle. Restarted over a sound link, its copies equal unistra's, one per id, and it
/// follows unistra's live changes from there.
#[tokio::test]
async fn a_subscriber_mirror_restarted_during_its_resync_ends_with_the_providers_state() {
    const WINDOWS: usize = 24;
    let mut fed = TestFederation::start_with(2, &[], &COMPACT_AT_ONCE).await;
    let inbound = FaultProxy::start(fed.running.member_addr(UNISTRA).unwrap()).await;
    fed.running
        .restart_member_with(UNISTRA, &[format!("advertise={}", inbound.endpoint())])
        .await
        .unwrap();
    let tenancy = provider_with_tenant(&fed).await;
    let (provider, subscriber) = (
        fed.as_admin(fed.member(UNISTRA)),
        fed.as_admin(fed.member(RENNES2)),
    );
    let incident = open_incident(subscriber.clone(), &tenancy).await;
    let states = |channel: Channel| {
        let (tenancy, incident) = (tenancy.clone(), incident.clone());
        async move {
            let subscription = SubscriptionServiceClient::new(channel.clone())
                .get_subscription(pb::GetSubscriptionRequest {
                    subscription_id: tenancy,
                })
                .await
                .ok()?
                .into_inner()
                .subscription?;
            let incident = pb::incident_service_client::IncidentServiceClient::new(channel)
                .get_incident(pb::GetIncidentRequest {
                    incident_id: incident,
                })
                .await
                .ok()?
                .into_inner()
                .incident?;
            Some((subscription, incident))
        }
    };
    wait_for(
        "the tenancy and the incident mirrored on rennes2's node",
        Duration::from_secs(10),
        || async {
            let (s, i) = states(subscriber.clone()).await?;
            (s.state() == pb::SubscriptionState::Active && i.status() == pb::IncidentStatus::New)
                .then_some(())
        },
    )
    .await;

    fed.running.stop_member(RENNES2).await.unwrap();
    let stopped_at = last_revision(&fed).await;
    SubscriptionServiceClient::new(provider.clone())
        .suspend_subscription(pb::SuspendSubscriptionRequest {
            request_id: "suspend-1".into(),
            subscription_id: tenancy.clone(),
            reason: "Unpaid invoice".into(),
        })
        .await
        .unwrap();
    let mut desk = pb::incident_service_client::IncidentServiceClient::new(provider.clone());
    desk.acknowledge_incident(pb::AcknowledgeIncidentRequest {
        request_id: "ack-1".into(),
        incident_id: incident.clone(),
        comment: String::new(),
    })
    .await
    .unwrap();
    desk.set_incident_status(pb::SetIncidentStatusRequest {
        request_id: "resolve-1".into(),
        incident_id: incident.clone(),
        status: pb::IncidentStatus::Resolved as i32,
        comment: String::new(),
        resolution: "Certificate renewed".into(),
    })
    .await
    .unwrap();
    for n in 0..WINDOWS as i64 {
        announce(&fed, n).await;
    }
    compacted_past(&fed, stopped_at).await;
    let announced = windows_on(provider.clone()).await.unwrap();
    assert_eq!(announced.len(), WINDOWS);

    // About 75 KB of windows: a link that cuts every connection after 24 KiB lets rennes2's
    // node mirror the first few, again and again; it is stopped in the middle.
    inbound.set(Toxics {
        data_limit: Some(24 * 1024),
        ..Toxics::default()
    });
    fed.running.restart_member(RENNES2).await.unwrap();
    let partial = wait_for(
        "rennes2's node in the middle of its resync",
        Duration::from_secs(30),
        || async {
            let mirrored = windows_on(subscriber.clone()).await?.len();
            (mirrored > 0 && mirrored < WINDOWS).then_some(mirrored)
        },
    )
    .await;
    fed.running.stop_member(RENNES2).await.unwrap();
    inbound.set(Toxics::default());
    fed.running.restart_member(RENNES2).await.unwrap();

    let windows = wait_for(
        "every window mirrored on rennes2's node after the interrupted resync",
        Duration::from_secs(30),
        || async {
            let mirrored = windows_on(subscriber.clone()).await?;
            (mirrored.len() >= WINDOWS).then_some(mirrored)
        },
    )
    .await;
    assert!(partial < WINDOWS);
    assert_eq!(
        windows, announced,
        "one copy of each window, as unistra has it"
    );
    let (tenancy_copy, incident_copy) = states(subscriber.clone()).await.unwrap();
    let (tenancy_held, incident_held) = states(provider.clone()).await.unwrap();
    assert_eq!(tenancy_copy.state(), pb::SubscriptionState::Suspended);
    assert_eq!(
        tenancy_copy, tenancy_held,
        "the tenancy as unistra holds it"
    );
    assert_eq!(incident_copy.status(), pb::IncidentStatus::Resolved);
    assert_eq!(
        incident_copy.events.len(),
        incident_held.events.len(),
        "the incident's history as unistra holds it"
    );

    // Live from the snapshot's revision: a new window is mirrored once.
    let live = announce(&fed, WINDOWS as i64).await;
    let windows = wait_for(
        "a window announced after the resync mirrored on rennes2's node",
        Duration::from_secs(20),
        || async {
            let mirrored = windows_on(subscriber.clone()).await?;
            mirrored
                .iter()
                .any(|w| w.maintenance_id == live.maintenance_id)
                .then_some(mirrored)
        },
    )
    .await;
    assert_eq!(windows.len(), WINDOWS + 1);
    assert_eq!(windows, windows_on(provider).await.unwrap());
}

/// The whole catalogue as `channel`'s node serves it (withdrawn offers too), by offer id.
async fn catalogue_on(channel: Channel) -> Option<Vec<pb::CatalogueOffer>> {
    let statuses = vec![
        pb::OfferStatus::Pilot as i32,
        pb::OfferStatus::Available as i32,
        pb::OfferStatus::Deprecated as i32,
        pb::OfferStatus::Withdrawn as i32,
    ];
    let mut client = CatalogueServiceClient::new(channel);
    let (mut offers, mut token) = (Vec::new(), String::new());
    loop {
        let page = client
            .search_offers(pb::SearchOffersRequest {
                page_size: 500,
                page_token: token,
                statuses: statuses.clone(),
                ..Default::default()
            })
            .await
            .ok()?
            .into_inner();
        offers.extend(page.offers);
        if page.next_page_token.is_empty() {
            return Some(offers);
        }
        token = page.next_page_token;
    }
}

fn offer_ids(offers: &[pb::CatalogueOffer]) -> Vec<String> {
    offers
        .iter()
        .filter_map(|o| o.offer.as_ref().map(|o| o.offer_id.clone()))
        .collect()
}

/// Publishes a copy of the example video offer as `unistra.<service_id>`.
async fn publish_extra(fed: &TestFederation, service_id: &str) {
    let mut offer = example_offer("video");
    offer.service_id = service_id.into();
    fed.publish(UNISTRA, offer).await;
}

/// Rennes2's node is down while unistra withdraws its collaboration offer (which rennes2's
/// tenancy keeps in the catalogue), withdraws its OTP offer (which the coordinator's retention
/// then removes from the catalogue) and publishes 30 offers, and the coordinator's catalogue
/// log compacts past rennes2's cursor. Restarted behind a link to the coordinator that cuts
/// every connection before the catalogue is complete, rennes2's cache reloads part of it again
/// and again, and the node is stopped in the middle. Restarted over a sound link, its cache
/// holds what the coordinator's catalogue holds, once each: the collaboration offer withdrawn,
/// the OTP offer gone, the new offers there; then it follows live changes.
#[tokio::test]
async fn a_catalogue_cache_restarted_during_its_resync_ends_with_the_catalogue() {
    const EXTRA: usize = 30;
    let coordinator_settings = [
        "catalogue.keep_entries=1",
        "catalogue.keep_days=0",
        "catalogue.max_keep_days=0",
        "catalogue.compact_interval_ms=100",
        "retention.ended_days=0",
        "retention.interval_ms=100",
    ];
    let mut fed = TestFederation::start_with(2, &coordinator_settings, &[]).await;
    provider_with_tenant(&fed).await;
    fed.publish(UNISTRA, example_offer("otp")).await;
    let (rennes2, coordinator) = (
        fed.as_admin(fed.member(RENNES2)),
        fed.as_admin(fed.coordinator()),
    );
    wait_for(
        "both offers in rennes2's cache",
        Duration::from_secs(10),
        || async {
            (offer_ids(&catalogue_on(rennes2.clone()).await?) == [OFFER, "unistra.otp"])
                .then_some(())
        },
    )
    .await;
    fed.running.stop_member(RENNES2).await.unwrap();
    let before = CatalogueServiceClient::new(coordinator.clone())
        .watch_catalogue(pb::WatchCatalogueRequest::default())
        .await
        .unwrap()
        .into_inner()
        .message()
        .await
        .unwrap()
        .unwrap()
        .last_revision;
    let mut offers =
        pb::offer_service_client::OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    for offer_id in [OFFER, "unistra.otp"] {
        offers
            .withdraw_offer(pb::WithdrawOfferRequest {
                offer_id: offer_id.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let extras: Vec<String> = (0..EXTRA).map(|n| format!("extra{n:02}")).collect();
    for service_id in &extras {
        publish_extra(&fed, service_id).await;
    }
    let expected: Vec<String> = [OFFER.to_owned()]
        .into_iter()
        .chain(extras.iter().map(|s| format!("unistra.{s}")))
        .collect();
    let catalogue = wait_for(
        "the coordinator's catalogue without the OTP offer, with the new ones",
        Duration::from_secs(20),
        || async {
            let catalogue = catalogue_on(coordinator.clone()).await?;
            (offer_ids(&catalogue) == expected).then_some(catalogue)
        },
    )
    .await;
    let withdrawn = |catalogue: &[pb::CatalogueOffer]| {
        catalogue
            .iter()
            .filter_map(|c| c.offer.as_ref())
            .find(|o| o.offer_id == OFFER)
            .map(|o| o.status())
    };
    assert_eq!(withdrawn(&catalogue), Some(pb::OfferStatus::Withdrawn));
    let refused = wait_for(
        "the coordinator's catalogue compacted past rennes2's cursor",
        Duration::from_secs(10),
        || {
            let coordinator = coordinator.clone();
            async move {
                CatalogueServiceClient::new(coordinator)
                    .watch_catalogue(pb::WatchCatalogueRequest {
                        since_revision: before,
                        ..Default::default()
                    })
                    .await
                    .err()
            }
        },
    )
    .await;
    assert_eq!(refused.code(), tonic::Code::OutOfRange, "{refused:?}");

    // Some 30 offers of about 2.5 KB: a link that cuts every connection after 24 KiB lets
    // rennes2's cache reload the first few, again and again; the node is stopped in the middle.
    let link = FaultProxy::start(fed.running.coordinator_addr()).await;
    link.set(Toxics {
        data_limit: Some(24 * 1024),
        ..Toxics::default()
    });
    fed.running
        .restart_member_with(
            RENNES2,
            &[format!("coordinator.endpoint={}", link.endpoint())],
        )
        .await
        .unwrap();
    let partial = wait_for(
        "rennes2's cache in the middle of its reload",
        Duration::from_secs(30),
        || async {
            let cached = offer_ids(&catalogue_on(rennes2.clone()).await?);
            let new = cached.iter().filter(|id| id.contains(".extra")).count();
            (new > 0 && new < EXTRA).then_some(new)
        },
    )
    .await;
    fed.running.stop_member(RENNES2).await.unwrap();
    link.set(Toxics::default());
    fed.running.restart_member(RENNES2).await.unwrap();

    let cached = wait_for(
        "rennes2's cache equal to the coordinator's catalogue after the interrupted reload",
        Duration::from_secs(30),
        || async {
            let cached = catalogue_on(rennes2.clone()).await?;
            (offer_ids(&cached) == expected
                && withdrawn(&cached) == Some(pb::OfferStatus::Withdrawn))
            .then_some(cached)
        },
    )
    .await;
    assert!(partial < EXTRA);
    let offers_of = |catalogue: &[pb::CatalogueOffer]| {
        catalogue
            .iter()
            .map(|c| c.offer.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(offers_of(&cached), offers_of(&catalogue));
    assert!(cached_offer(rennes2.clone(), "unistra.otp").await.is_none());

    // Live from the reload: a new offer reaches the cache, once.
    publish_extra(&fed, "live").await;
    let cached = wait_for(
        "an offer published after the reload in rennes2's cache",
        Duration::from_secs(20),
        || async {
            let cached = catalogue_on(rennes2.clone()).await?;
            offer_ids(&cached)
                .contains(&"unistra.live".to_owned())
                .then_some(cached)
        },
    )
    .await;
    assert_eq!(cached.len(), EXTRA + 2);
}
