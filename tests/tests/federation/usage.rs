//! Usage and availability over real mTLS: a provider's agent reports, retries are counted once,
//! conflicting content is refused, each tenant sees only its own figures (through its own
//! node), and the coordinator's figures equal what was reported.

use std::time::Duration;

use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient as Client;
use fedmesh_tests::{TestFederation, example_offer, wait_for};
use tonic::Code;

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
const OFFER: &str = "unistra.collab";
const HOUR: i64 = 3600;

/// 5 October 2026, 00:00 in Paris (a Monday), in seconds.
const OCT_5: i64 = 1_791_151_200;

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn period(start: i64, end: i64) -> Option<pb::Period> {
    Some(pb::Period {
        start_time: Some(ts(start)),
        end_time: Some(ts(end)),
    })
}

fn record(id: &str, subscription: &str, metric: &str, value: f64, start: i64) -> pb::UsageRecord {
    pb::UsageRecord {
        record_id: id.into(),
        offer_id: OFFER.into(),
        subscription_id: subscription.into(),
        metric: metric.into(),
        value,
        period: period(start, start + HOUR),
        ..Default::default()
    }
}

fn october() -> pb::YearMonth {
    pb::YearMonth {
        year: 2026,
        month: 10,
    }
}

fn agent(fed: &TestFederation) -> Client<Channel> {
    let agent = fed.issue(&fed.uri("member/unistra/agent/probe"));
    Client::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &agent.cert_path,
        &agent.key_path,
    ))
}

/// The coordinator's October figures of the offer, once it counts `requests` requests.
async fn coordinator_october(
    metrics: &MetricsServiceClient<Channel>,
    requests: i64,
) -> pb::OfferMonthMetrics {
    wait_for(
        "the coordinator's October figures",
        Duration::from_secs(15),
        || {
            let mut metrics = metrics.clone();
            async move {
                let m = metrics
                    .get_offer_metrics(pb::GetOfferMetricsRequest {
                        offer_id: OFFER.into(),
                        from_month: Some(october()),
                        to_month: Some(october()),
                    })
                    .await
                    .ok()?
                    .into_inner();
                let month = m.months.into_iter().next()?;
                (month.request_count == requests).then_some(month)
            }
        },
    )
    .await
}

/// Publishes unistra's collaboration offer (automatic approval) and subscribes `members`
/// through their own admins and nodes; returns their subscription ids once mirrored.
async fn federation_with_tenants(members: &[usize]) -> (TestFederation, Vec<String>) {
    federation_with_tenants_on(TestFederation::start(3).await, members).await
}

async fn federation_with_tenants_on(
    fed: TestFederation,
    members: &[usize],
) -> (TestFederation, Vec<String>) {
    OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(example_offer("collaboration")),
            etag: String::new(),
        })
        .await
        .unwrap();
    let mut ids = Vec::new();
    for &member in members {
        let mut own_node = SubscriptionServiceClient::new(fed.as_admin(fed.member(member)));
        let subscription = own_node
            .request_subscription(pb::RequestSubscriptionRequest {
                request_id: format!("req-{member}"),
                offer_id: OFFER.into(),
                user_count: 300,
                contact_email: "dsi@example.org".into(),
                accepted_terms_version: example_offer("collaboration").terms_version,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .subscription
            .unwrap();
        assert_eq!(subscription.state(), pb::SubscriptionState::Active);
        let id = subscription.subscription_id.clone();
        wait_for(
            "the tenancy mirrored on the subscriber",
            Duration::from_secs(10),
            || {
                let mut own_node = own_node.clone();
                let id = id.clone();
                async move {
                    own_node
                        .get_subscription(pb::GetSubscriptionRequest {
                            subscription_id: id,
                        })
                        .await
                        .ok()
                }
            },
        )
        .await;
        ids.push(subscription.subscription_id);
    }
    (fed, ids)
}

#[tokio::test]
async fn reports_are_idempotent_and_conflicts_store_nothing() {
    let (fed, ids) = federation_with_tenants(&[RENNES2]).await;
    let mut agent = agent(&fed);
    let sub = &ids[0];
    let batch = vec![
        record("r1", sub, "active_users", 120.0, OCT_5 + 9 * HOUR),
        record("r2", sub, "requests", 1000.0, OCT_5 + 9 * HOUR),
        record("r3", sub, "documents", 42.0, OCT_5 + 9 * HOUR),
    ];
    let first = agent
        .report_usage(pb::ReportUsageRequest {
            records: batch.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.accepted_count, first.duplicate_count), (3, 0));
    assert!(first.rejections.is_empty(), "{:?}", first.rejections);

    // The agent retries the whole batch (its answer was lost): nothing is counted twice.
    let retry = agent
        .report_usage(pb::ReportUsageRequest { records: batch })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((retry.accepted_count, retry.duplicate_count), (0, 3));

    // Other content under a known id: the whole batch is refused, the new record too.
    let conflict = agent
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                record("r4", sub, "requests", 5.0, OCT_5 + 10 * HOUR),
                record("r2", sub, "requests", 999.0, OCT_5 + 9 * HOUR),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(conflict.code(), Code::AlreadyExists, "{conflict:?}");
    assert!(conflict.message().contains("r2"), "{}", conflict.message());

    // Records that fail their checks are refused one by one, with the field named.
    let mixed = agent
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                record("r5", sub, "requests", 7.0, OCT_5 + 11 * HOUR),
                record("r6", sub, "cpu_seconds", 1.0, OCT_5 + 11 * HOUR),
                pb::UsageRecord {
                    offer_id: "rouen.video".into(),
                    ..record("r7", sub, "requests", 1.0, OCT_5 + 11 * HOUR)
                },
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mixed.accepted_count, 1);
    let reasons: Vec<(&str, &str)> = mixed
        .rejections
        .iter()
        .map(|r| (r.record_id.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].0 == "r6" && reasons[0].1.starts_with("records[1].metric"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == "r7" && reasons[1].1.starts_with("records[2].offer_id"),
        "{reasons:?}"
    );

    // More than 1,000 records per call is refused as a whole.
    let too_many = (0..1001)
        .map(|i| record(&format!("big-{i}"), sub, "requests", 1.0, OCT_5))
        .collect();
    let status = agent
        .report_usage(pb::ReportUsageRequest { records: too_many })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().starts_with("records:"),
        "{}",
        status.message()
    );

    // What the provider's admin sees: r1..r3 and r5, once each; not r4.
    let usage = Client::new(fed.as_admin(fed.member(UNISTRA)))
        .get_usage(pb::GetUsageRequest {
            offer_id: OFFER.into(),
            month: Some(october()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let requests = usage
        .aggregates
        .iter()
        .find(|a| a.metric == "requests")
        .unwrap();
    assert_eq!((requests.sum_value, requests.record_count), (1007.0, 2));
    assert_eq!(usage.aggregates.len(), 3);
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_usage() {
    let (fed, ids) = federation_with_tenants(&[RENNES2, ROUEN]).await;
    let (rennes2, rouen) = (&ids[0], &ids[1]);
    agent(&fed)
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                record("a", rennes2, "active_users", 100.0, OCT_5 + 9 * HOUR),
                record("b", rouen, "active_users", 200.0, OCT_5 + 9 * HOUR),
            ],
        })
        .await
        .unwrap();
    // rennes2's admin asks its own node, which asks the provider's node as rennes2.
    let mut rennes2_admin = Client::new(fed.as_admin(fed.member(RENNES2)));
    let seen = rennes2_admin
        .get_usage(pb::GetUsageRequest {
            offer_id: OFFER.into(),
            month: Some(october()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let tenants: Vec<&str> = seen
        .aggregates
        .iter()
        .map(|a| a.subscription_id.as_str())
        .collect();
    assert_eq!(tenants, [rennes2.as_str()]);
    // Asking for the other tenant's subscription by id yields nothing either.
    let other = rennes2_admin
        .get_usage(pb::GetUsageRequest {
            offer_id: OFFER.into(),
            month: Some(october()),
            subscription_id: rouen.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.aggregates.is_empty(), "{other:?}");
    // The other tenant's cost statement does not exist for rennes2's node.
    let rennes2_node = fed.channel(
        &fed.member(UNISTRA).endpoint,
        &fed.member(RENNES2).node_cert,
        &fed.member(RENNES2).node_key,
    );
    let statement = Client::new(rennes2_node)
        .get_cost_statement(pb::GetCostStatementRequest {
            subscription_id: rouen.clone(),
            period: Some(pb::DateRange {
                start_date: Some(pb::LocalDate {
                    year: 2026,
                    month: 10,
                    day: 1,
                }),
                end_date: Some(pb::LocalDate {
                    year: 2026,
                    month: 10,
                    day: 31,
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(statement.code(), Code::NotFound);
    // An agent cannot read usage, and a member that is no tenant is told the offer does
    // not exist.
    let agent_read = agent(&fed)
        .get_usage(pb::GetUsageRequest {
            offer_id: OFFER.into(),
            month: Some(october()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(agent_read.code(), Code::PermissionDenied);
    let outsider = fed.issue(&fed.uri("member/caen/node"));
    let outsider = Client::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &outsider.cert_path,
        &outsider.key_path,
    ))
    .get_availability(pb::GetAvailabilityRequest {
        offer_id: OFFER.into(),
        month: Some(october()),
    })
    .await
    .unwrap_err();
    assert_eq!(outsider.code(), Code::NotFound);
}

#[tokio::test]
async fn figures_reach_the_subscriber_and_the_coordinator() {
    let (fed, ids) = federation_with_tenants(&[RENNES2]).await;
    let sub = &ids[0];
    let mut agent = agent(&fed);
    agent
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                record("u1", sub, "active_users", 250.0, OCT_5 + 9 * HOUR),
                record("u2", sub, "active_users", 280.0, OCT_5 + 33 * HOUR),
                record("u3", sub, "requests", 4000.0, OCT_5 + 9 * HOUR),
                record("u4", sub, "storage_bytes", 1e9, OCT_5 + 9 * HOUR),
            ],
        })
        .await
        .unwrap();
    // Tuesday 6 October, 17:00–19:00: one hour inside the window, one outside.
    let report = agent
        .report_availability(pb::ReportAvailabilityRequest {
            records: vec![pb::AvailabilityRecord {
                record_id: "o1".into(),
                offer_id: OFFER.into(),
                observation: Some(pb::availability_record::Observation::Outage(pb::Outage {
                    period: period(OCT_5 + 41 * HOUR, OCT_5 + 43 * HOUR),
                    description: "database failover".into(),
                    incident_id: String::new(),
                })),
                ..Default::default()
            }],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.accepted_count, 1, "{report:?}");

    // The subscriber's admin, through its own node.
    let availability = Client::new(fed.as_admin(fed.member(RENNES2)))
        .get_availability(pb::GetAvailabilityRequest {
            offer_id: OFFER.into(),
            month: Some(october()),
        })
        .await
        .unwrap()
        .into_inner();
    let summary = availability.availability.unwrap();
    assert_eq!(summary.in_window_downtime.unwrap().seconds, HOUR);
    assert_eq!(summary.out_of_window_downtime.unwrap().seconds, HOUR);
    assert_eq!(availability.outages.len(), 1);

    // The coordinator replicates the records and computes the same figures.
    let mut metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    let october_metrics = coordinator_october(&metrics, 4000).await;
    assert_eq!(october_metrics.user_count, 280);
    assert_eq!(october_metrics.storage_bytes, 1_000_000_000);
    assert_eq!(october_metrics.tenant_count, 0, "approved after October");
    let member = metrics
        .get_member_metrics(pb::GetMemberMetricsRequest {
            member_id: "rennes2".into(),
            month: Some(october()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(member.subscribed.len(), 1, "{member:?}");
    let tenancy = &member.subscribed[0];
    assert_eq!(
        (
            tenancy.offer_id.as_str(),
            tenancy.user_count,
            tenancy.request_count
        ),
        (OFFER, 280, 4000)
    );
    assert!(member.provided.is_empty(), "{member:?}");
    let provider = metrics
        .get_member_metrics(pb::GetMemberMetricsRequest {
            member_id: "unistra".into(),
            month: Some(october()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(provider.provided.len(), 1);
    assert_eq!(provider.provided[0].metrics.unwrap().request_count, 4000);
    let unknown = metrics
        .get_member_metrics(pb::GetMemberMetricsRequest {
            member_id: "caen".into(),
            month: None,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let sla = wait_for(
        "the coordinator's availability",
        Duration::from_secs(15),
        || {
            let mut metrics = metrics.clone();
            async move {
                let offers = metrics
                    .get_sla_compliance(pb::GetSlaComplianceRequest {
                        offer_id: OFFER.into(),
                        month: Some(october()),
                    })
                    .await
                    .ok()?
                    .into_inner()
                    .offers;
                offers
                    .into_iter()
                    .find(|o| o.availability.as_ref().is_some_and(|a| a.outage_count == 1))
            }
        },
    )
    .await;
    assert_eq!(sla.availability, Some(summary));
    assert!(sla.availability_sla_percent > 0.0);
    let unknown = metrics
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: "unistra.nothing".into(),
            from_month: Some(october()),
            to_month: None,
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let reversed = metrics
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: OFFER.into(),
            from_month: Some(october()),
            to_month: Some(pb::YearMonth {
                year: 2026,
                month: 9,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(reversed.code(), Code::InvalidArgument);
    assert!(
        reversed.message().starts_with("to_month"),
        "{}",
        reversed.message()
    );
}

#[tokio::test]
async fn capacity_and_cost_statements() {
    let (fed, ids) = federation_with_tenants(&[RENNES2]).await;
    let sub = &ids[0];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    agent(&fed)
        .report_usage(pb::ReportUsageRequest {
            records: vec![pb::UsageRecord {
                period: period(now - 120, now - 60),
                ..record("now-users", sub, "active_users", 180.0, 0)
            }],
        })
        .await
        .unwrap();
    let capacity = Client::new(fed.as_admin(fed.member(UNISTRA)))
        .get_capacity(pb::GetCapacityRequest {
            offer_id: OFFER.into(),
            trend_months: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capacity.tenant_count, 1);
    assert_eq!(capacity.tenants[0].active_users, 180.0);
    assert_eq!(capacity.tenants[0].declared_users, 300);
    assert_eq!(capacity.trend.len(), 3);
    assert_eq!(capacity.trend[2].tenant_count, 1);

    // The subscriber's admin gets its statement through its own node.
    let statement = Client::new(fed.as_admin(fed.member(RENNES2)))
        .get_cost_statement(pb::GetCostStatementRequest {
            subscription_id: sub.clone(),
            period: Some(pb::DateRange {
                start_date: Some(pb::LocalDate {
                    year: 2026,
                    month: 1,
                    day: 1,
                }),
                end_date: Some(pb::LocalDate {
                    year: 2030,
                    month: 12,
                    day: 31,
                }),
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        statement.code(),
        Code::InvalidArgument,
        "five years is too long"
    );
    let this_year = fedmesh_core::calendar::civil_from_days(now / 86_400).0;
    let statement = Client::new(fed.as_admin(fed.member(RENNES2)))
        .get_cost_statement(pb::GetCostStatementRequest {
            subscription_id: sub.clone(),
            period: Some(pb::DateRange {
                start_date: Some(pb::LocalDate {
                    year: this_year - 1,
                    month: 1,
                    day: 1,
                }),
                end_date: Some(pb::LocalDate {
                    year: this_year + 1,
                    month: 12,
                    day: 31,
                }),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .statement
        .unwrap();
    let kinds: Vec<pb::CostLineKind> = statement.lines.iter().map(|l| l.kind()).collect();
    assert_eq!(
        kinds,
        [
            pb::CostLineKind::SetupFee,
            pb::CostLineKind::TenantFee,
            pb::CostLineKind::UserFee
        ],
        "{statement:?}"
    );
    assert!(
        statement.lines[2].description.contains("180 users"),
        "{statement:?}"
    );
    let total: i64 = statement
        .lines
        .iter()
        .map(|l| l.amount.as_ref().unwrap().amount_micros)
        .sum();
    assert_eq!(statement.total.unwrap().amount_micros, total);
    assert_eq!(statement.subscriber_member_id, "rennes2");
}

#[tokio::test]
async fn journal_pages_stay_under_a_mebibyte() {
    use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
    let (fed, ids) = federation_with_tenants(&[RENNES2]).await;
    let mut agent = agent(&fed);
    for b in 0..8 {
        let records = (0..1000)
            .map(|i| {
                record(
                    &format!("batch-{b}-record-{i:04}-{}", "x".repeat(60)),
                    &ids[0],
                    "requests",
                    1.0,
                    OCT_5 + i64::from(i) * 60,
                )
            })
            .collect();
        let answer = agent
            .report_usage(pb::ReportUsageRequest { records })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.accepted_count, 1000);
    }
    let mut journal = JournalServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    let mut request = pb::ListEntriesRequest {
        page_size: 100,
        entity_kinds: vec![pb::EntityKind::UsageRecord as i32],
        ..Default::default()
    };
    let mut pages = Vec::new();
    loop {
        let page = journal
            .list_entries(request.clone())
            .await
            .unwrap()
            .into_inner();
        let bytes: usize = page.entries.iter().map(prost::Message::encoded_len).sum();
        assert!(bytes <= 1024 * 1024, "a page of {bytes} bytes");
        pages.push(page.entries.len());
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    assert!(pages.len() > 1, "{pages:?}");
    assert_eq!(pages.iter().sum::<usize>(), 8, "{pages:?}");
}

/// A batch whose journal entry would not fit in one message of the node's (here 32 KiB) is
/// refused whole: followers could never receive it, and replication would stop there. A
/// smaller batch is stored and reaches the coordinator.
#[tokio::test]
async fn a_batch_too_large_to_replicate_is_refused_whole() {
    let fed =
        TestFederation::start_with(3, &[], &["limits.max_encoding_message_bytes=32768"]).await;
    let (fed, ids) = federation_with_tenants_on(fed, &[RENNES2]).await;
    let mut agent = agent(&fed);
    let batch = |n: usize, prefix: &str| pb::ReportUsageRequest {
        records: (0..n)
            .map(|i| {
                record(
                    &format!("{prefix}-{i}"),
                    &ids[0],
                    "requests",
                    1.0,
                    OCT_5 + i as i64 * 60,
                )
            })
            .collect(),
    };
    let refused = agent.report_usage(batch(1000, "big")).await.unwrap_err();
    assert_eq!(refused.code(), Code::OutOfRange, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("limits.max_encoding_message_bytes"),
        "{}",
        refused.message()
    );
    let admin = Client::new(fed.as_admin(fed.member(UNISTRA)));
    let usage = || {
        let mut admin = admin.clone();
        async move {
            admin
                .get_usage(pb::GetUsageRequest {
                    offer_id: OFFER.into(),
                    month: Some(october()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .aggregates
        }
    };
    assert!(usage().await.is_empty(), "nothing was stored");

    let stored = agent
        .report_usage(batch(100, "small"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.accepted_count, 100);
    assert_eq!(usage().await[0].sum_value, 100.0);
    let metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    coordinator_october(&metrics, 100).await;
}
