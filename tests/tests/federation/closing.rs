//! Closing months over real mTLS: a provider's node closes last month when its grace period is
//! over, writes its reports once, refuses its late records, and the subscriber's node and the
//! coordinator receive what each may see — with the figures the live computation gave before.

use std::time::Duration;

use fedmesh_core::calendar::{self, Calendar};
use fedmesh_core::usage::Month;
use fedmesh_grpc::GrpcChannel as Channel;
use fedmesh_proto::pb;
use fedmesh_proto::pb::journal_service_client::JournalServiceClient;
use fedmesh_proto::pb::metrics_service_client::MetricsServiceClient;
use fedmesh_proto::pb::offer_service_client::OfferServiceClient;
use fedmesh_proto::pb::report_service_client::ReportServiceClient;
use fedmesh_proto::pb::subscription_service_client::SubscriptionServiceClient;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient;
use fedmesh_tests::{TestFederation, example_offer, wait_for};
use tonic::Code;

const UNISTRA: usize = 0;
const RENNES2: usize = 1;
const ROUEN: usize = 2;
const OFFER: &str = "unistra.collab";
const HOUR: i64 = 3600;

fn ts(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

fn usage(id: &str, subscription: &str, metric: &str, value: f64, start: i64) -> pb::UsageRecord {
    pb::UsageRecord {
        record_id: id.into(),
        offer_id: OFFER.into(),
        subscription_id: subscription.into(),
        metric: metric.into(),
        value,
        period: Some(pb::Period {
            start_time: Some(ts(start)),
            end_time: Some(ts(start + HOUR)),
        }),
        ..Default::default()
    }
}

/// Last month on the offer's calendar (Paris), and the instant 9:00 on its 5th.
fn last_month() -> (Month, i64) {
    let cal = Calendar::from_proto("calendar", &calendar::default_proto()).unwrap();
    let month = Month::of_day(cal.local_day(fedmesh_grpc::figures::now())).previous();
    (month, month.span(&cal).start + 4 * 24 * HOUR + 9 * HOUR)
}

async fn subscribe(fed: &TestFederation, member: usize) -> String {
    let mut own_node = SubscriptionServiceClient::new(fed.as_admin(fed.member(member)));
    let id = own_node
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
        .unwrap()
        .subscription_id;
    wait_for("the tenancy mirrored", Duration::from_secs(10), || {
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
    })
    .await;
    id
}

/// What each party sees of the month: the provider's usage and availability, the subscriber's
/// statement (through its own node), the coordinator's compliance and offer figures.
#[derive(Debug, PartialEq)]
struct Seen {
    usage: Vec<pb::UsageAggregate>,
    availability: Option<pb::AvailabilitySummary>,
    outages: Vec<pb::Outage>,
    statement_lines: Vec<pb::CostLine>,
    compliance: Option<pb::AvailabilitySummary>,
    requests: i64,
}

async fn seen(fed: &TestFederation, subscription: &str, month: Month) -> Seen {
    let mut provider = UsageServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    let usage = provider
        .get_usage(pb::GetUsageRequest {
            offer_id: OFFER.into(),
            month: Some(month.to_proto()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .aggregates;
    let availability = provider
        .get_availability(pb::GetAvailabilityRequest {
            offer_id: OFFER.into(),
            month: Some(month.to_proto()),
        })
        .await
        .unwrap()
        .into_inner();
    let statement = UsageServiceClient::new(fed.as_admin(fed.member(RENNES2)))
        .get_cost_statement(pb::GetCostStatementRequest {
            subscription_id: subscription.into(),
            period: Some(fedmesh_core::cost::Days::month(month).to_proto()),
        })
        .await
        .unwrap()
        .into_inner()
        .statement
        .unwrap();
    let mut metrics = MetricsServiceClient::new(fed.as_admin(fed.coordinator()));
    let compliance = metrics
        .get_sla_compliance(pb::GetSlaComplianceRequest {
            offer_id: OFFER.into(),
            month: Some(month.to_proto()),
        })
        .await
        .unwrap()
        .into_inner()
        .offers
        .pop()
        .and_then(|c| c.availability);
    let requests = metrics
        .get_offer_metrics(pb::GetOfferMetricsRequest {
            offer_id: OFFER.into(),
            from_month: Some(month.to_proto()),
            to_month: Some(month.to_proto()),
        })
        .await
        .unwrap()
        .into_inner()
        .months
        .pop()
        .map_or(0, |m| m.request_count);
    Seen {
        usage,
        availability: availability.availability,
        outages: availability.outages,
        statement_lines: statement.lines,
        compliance,
        requests,
    }
}

fn journal_as(
    fed: &TestFederation,
    party: &fedmesh::federation::PartyManifest,
) -> JournalServiceClient<Channel> {
    JournalServiceClient::new(fed.channel(
        &fed.member(UNISTRA).endpoint,
        &party.node_cert,
        &party.node_key,
    ))
}

/// The reports in unistra's journal that `party`'s node identity may read.
async fn reports_seen_by(
    fed: &TestFederation,
    party: &fedmesh::federation::PartyManifest,
) -> Vec<String> {
    journal_as(fed, party)
        .list_entries(pb::ListEntriesRequest {
            entity_kinds: vec![pb::EntityKind::MonthlyReport as i32],
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .filter_map(|e| match e.payload {
            Some(pb::journal_entry::Payload::MonthlyReport(r)) => Some(r.report_id),
            _ => None,
        })
        .collect()
}

/// A federation where unistra's offer has two tenants (rennes2's, rouen's) with usage and an
/// outage reported last month; returns the tenancies, the month and an instant in it.
struct Reported {
    fed: TestFederation,
    rennes2: String,
    rouen: String,
    month: Month,
    at: i64,
    agent: fedmesh_tls::pki::Issued,
}

impl Reported {
    fn agent(&self) -> UsageServiceClient<Channel> {
        UsageServiceClient::new(self.fed.channel(
            &self.fed.member(UNISTRA).endpoint,
            &self.agent.cert_path,
            &self.agent.key_path,
        ))
    }
}

async fn last_month_reported() -> Reported {
    let fed = TestFederation::start(3).await;
    OfferServiceClient::new(fed.as_admin(fed.member(UNISTRA)))
        .publish_offer(pb::PublishOfferRequest {
            offer: Some(example_offer("collaboration")),
            etag: String::new(),
        })
        .await
        .unwrap();
    let rennes2 = subscribe(&fed, RENNES2).await;
    let rouen = subscribe(&fed, ROUEN).await;
    let (month, at) = last_month();
    let agent_cert = fed.issue(&fed.uri("member/unistra/agent/meter"));
    let reported = Reported {
        fed,
        rennes2,
        rouen,
        month,
        at,
        agent: agent_cert,
    };
    let (rennes2, rouen) = (&reported.rennes2, &reported.rouen);
    let stored = reported
        .agent()
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                usage("a1", rennes2, "active_users", 120.0, at),
                usage("a2", rennes2, "active_users", 140.0, at + 24 * HOUR),
                usage("q1", rennes2, "requests", 500.0, at),
                usage("b1", rouen, "active_users", 80.0, at),
                usage("q2", rouen, "requests", 250.0, at),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.accepted_count, 5, "{:?}", stored.rejections);
    reported
        .agent()
        .report_availability(pb::ReportAvailabilityRequest {
            records: vec![pb::AvailabilityRecord {
                record_id: "o1".into(),
                offer_id: OFFER.into(),
                observation: Some(pb::availability_record::Observation::Outage(pb::Outage {
                    period: Some(pb::Period {
                        start_time: Some(ts(at + HOUR)),
                        end_time: Some(ts(at + 3 * HOUR)),
                    }),
                    description: "storage failover".into(),
                    incident_id: String::new(),
                })),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    reported
}

#[tokio::test]
async fn a_closed_month_is_reported_once_to_each_party_with_the_live_figures() {
    let Reported {
        mut fed,
        rennes2,
        rouen,
        month,
        at,
        agent: agent_cert,
    } = last_month_reported().await;
    let agent = |fed: &TestFederation| {
        UsageServiceClient::new(fed.channel(
            &fed.member(UNISTRA).endpoint,
            &agent_cert.cert_path,
            &agent_cert.key_path,
        ))
    };
    // The live figures, once the coordinator counts every request.
    let live = wait_for(
        "the coordinator's live figures",
        Duration::from_secs(15),
        || {
            let (fed, rennes2) = (&fed, rennes2.clone());
            async move {
                let seen = seen(fed, &rennes2, month).await;
                (seen.requests == 750 && seen.compliance == seen.availability).then_some(seen)
            }
        },
    )
    .await;
    assert_eq!(live.usage.len(), 4, "{:?}", live.usage);
    assert!(live.availability.is_some());

    // The grace period ends: the node closes last month as it starts.
    fed.running
        .restart_member_with(UNISTRA, &["usage.close_after_days=0".to_owned()])
        .await
        .unwrap();
    let mut own_reports = ReportServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    let list = |client: &mut ReportServiceClient<Channel>| {
        let mut client = client.clone();
        async move {
            client
                .list_reports(pb::ListReportsRequest {
                    month: Some(month.to_proto()),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .reports
        }
    };
    let reports = wait_for("the month's reports", Duration::from_secs(10), || {
        let mut client = own_reports.clone();
        async move {
            let reports = list(&mut client).await;
            (reports.len() == 3).then_some(reports)
        }
    })
    .await;
    let ids: Vec<&str> = reports.iter().map(|r| r.report_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            format!("{OFFER}/{month}"),
            format!("{rennes2}/{month}"),
            format!("{rouen}/{month}")
        ]
    );
    let offer_report = &reports[0];
    assert_eq!(offer_report.scope(), pb::ReportScope::Offer);
    assert!(offer_report.subscriber_member_id.is_empty() && offer_report.tenant_usage.is_empty());
    assert_eq!(
        offer_report.metrics.as_ref().map(|m| m.request_count),
        Some(750)
    );

    // A late record of the closed month is refused alone, naming the month; a call of only
    // such records answers FAILED_PRECONDITION.
    let now = fedmesh_grpc::figures::now();
    let mixed = agent(&fed)
        .report_usage(pb::ReportUsageRequest {
            records: vec![
                usage("late", &rennes2, "requests", 9.0, at),
                usage("fresh", &rennes2, "requests", 9.0, now - 2 * HOUR),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mixed.accepted_count, 1, "{:?}", mixed.rejections);
    assert_eq!(mixed.rejections.len(), 1);
    let reason = &mixed.rejections[0].reason;
    assert!(
        reason.starts_with(&format!("records[0].period.start_time: month {month}"))
            && reason.contains("adjustment"),
        "{reason}"
    );
    let refused = agent(&fed)
        .report_usage(pb::ReportUsageRequest {
            records: vec![usage("late-2", &rennes2, "requests", 9.0, at)],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains(&month.to_string()),
        "{}",
        refused.message()
    );

    // Each party sees its own: rennes2's node its tenancy's report, the coordinator the offer
    // report only.
    assert_eq!(
        reports_seen_by(&fed, fed.member(RENNES2)).await,
        [format!("{rennes2}/{month}")]
    );
    assert_eq!(
        reports_seen_by(&fed, fed.coordinator()).await,
        [format!("{OFFER}/{month}")]
    );
    let mut subscriber_reports = ReportServiceClient::new(fed.as_admin(fed.member(RENNES2)));
    let mirrored = wait_for(
        "the tenancy report mirrored",
        Duration::from_secs(15),
        || {
            let mut client = subscriber_reports.clone();
            async move {
                let reports = list(&mut client).await;
                (!reports.is_empty()).then_some(reports)
            }
        },
    )
    .await;
    assert_eq!(mirrored.len(), 1, "only its own tenancy's report");
    assert_eq!(mirrored[0], reports[1], "the provider's report, as written");
    let other = subscriber_reports
        .get_report(pb::GetReportRequest {
            report_id: format!("{rouen}/{month}"),
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);

    // Both parties read the same figures as before closing, now from the reports (the
    // provider's records of the month left its database).
    let closed = seen(&fed, &rennes2, month).await;
    assert_eq!(closed, live);

    // The dashboard shows the offer's last closed month from its report.
    let url = fed.coordinator().dashboard.clone().unwrap();
    let (base, token) = url.split_once("/?token=").unwrap();
    let (url, ca, bearer) = (
        format!("{base}/api/overview"),
        fed.ca_pem(),
        format!("Authorization: Bearer {token}\r\n"),
    );
    let expected = offer_report.compliance.clone().unwrap();
    let shown = wait_for(
        "the last closed month on the dashboard",
        Duration::from_secs(15),
        || {
            let (url, ca, bearer) = (url.clone(), ca.clone(), bearer.clone());
            async move {
                let (_, body) = fedmesh_tests::https_get(&url, &ca, None, &bearer).await;
                let json: serde_json::Value = serde_json::from_str(&body).ok()?;
                let closed = json["offers"][0]["last_closed"].clone();
                closed.is_object().then_some(closed)
            }
        },
    )
    .await;
    assert_eq!(shown["month"], month.to_string());
    assert_eq!(shown["sla_met"], expected.sla_met);
    assert_eq!(
        shown["in_window_percent"].as_f64(),
        expected
            .availability
            .map(|a| a.in_window_availability_percent)
    );

    // Closing again (a restart) writes no second report.
    fed.running.restart_member(UNISTRA).await.unwrap();
    own_reports = ReportServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    assert_eq!(list(&mut own_reports).await, reports);
    assert_eq!(reports_seen_by(&fed, fed.coordinator()).await.len(), 1);
    assert_eq!(seen(&fed, &rennes2, month).await, live);
}

/// The history of report `id` as `member`'s node holds it, once it has `len` events.
async fn history_on(
    fed: &TestFederation,
    member: usize,
    id: &str,
    len: usize,
) -> Vec<pb::ReportEvent> {
    let client = ReportServiceClient::new(fed.as_admin(fed.member(member)));
    wait_for(
        &format!("{len} events in the history of {id} on member {member}'s node"),
        Duration::from_secs(15),
        || {
            let mut client = client.clone();
            let id = id.to_owned();
            async move {
                let report = client
                    .get_report(pb::GetReportRequest { report_id: id })
                    .await
                    .ok()?
                    .into_inner()
                    .report?;
                (report.history.len() == len).then_some(report.history)
            }
        },
    )
    .await
}

#[tokio::test]
async fn closed_months_are_corrected_by_adjustments_and_contested_through_the_outbox() {
    let Reported {
        mut fed,
        rennes2,
        month,
        ..
    } = last_month_reported().await;
    fed.running
        .restart_member_with(UNISTRA, &["usage.close_after_days=0".to_owned()])
        .await
        .unwrap();
    let report_id = format!("{rennes2}/{month}");
    history_on(&fed, UNISTRA, &report_id, 0).await;
    let mut provider = ReportServiceClient::new(fed.as_admin(fed.member(UNISTRA)));
    let adjustment =
        |request_id: &str, month: Month, reason: &str, currency: &str| pb::IssueAdjustmentRequest {
            request_id: request_id.into(),
            subscription_id: rennes2.clone(),
            month: Some(month.to_proto()),
            amount: Some(pb::Money {
                currency_code: currency.into(),
                amount_micros: -50_000_000,
            }),
            quantity: -120.0,
            reason: reason.into(),
        };

    // Bad adjustments: the field is named, an open month is a precondition.
    for (request, code, field) in [
        (
            adjustment("x1", month, "", ""),
            Code::InvalidArgument,
            "reason",
        ),
        (
            adjustment("x2", month, "refund", "USD"),
            Code::InvalidArgument,
            "amount.currency_code",
        ),
        (
            adjustment("x3", month.next(), "refund", ""),
            Code::FailedPrecondition,
            "month",
        ),
    ] {
        let refused = provider.issue_adjustment(request).await.unwrap_err();
        assert_eq!(refused.code(), code, "{}", refused.message());
        assert!(
            refused.message().starts_with(field),
            "{}",
            refused.message()
        );
    }

    // The provider's admin adjusts the closed month; a retry changes nothing.
    let reason = "requests counted twice on the 5th";
    let adjusted = provider
        .issue_adjustment(adjustment("adj-1", month, reason, ""))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(adjusted.history.len(), 1);
    let event = &adjusted.history[0];
    assert_eq!(event.kind(), pb::ReportEventKind::Adjusted);
    assert_eq!(event.adjustment_id, format!("{report_id}/a1"));
    let again = provider
        .issue_adjustment(adjustment("adj-1", month, reason, ""))
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(again, adjusted, "the retry answers with the first result");

    // It is on the next statement (this month's), with its reason and the month it
    // corrects, as the subscriber reads it through its own node.
    let today = fedmesh_grpc::figures::now().div_euclid(86_400);
    let statement = UsageServiceClient::new(fed.as_admin(fed.member(RENNES2)))
        .get_cost_statement(pb::GetCostStatementRequest {
            subscription_id: rennes2.clone(),
            period: Some(
                fedmesh_core::cost::Days {
                    first: today - 1,
                    last: today + 1,
                }
                .to_proto(),
            ),
        })
        .await
        .unwrap()
        .into_inner()
        .statement
        .unwrap();
    let line = statement
        .lines
        .iter()
        .find(|l| l.kind() == pb::CostLineKind::Adjustment)
        .unwrap_or_else(|| panic!("no adjustment line: {statement:?}"));
    assert_eq!(line.reason, reason);
    assert_eq!(line.corrected_month, Some(month.to_proto()));
    assert_eq!(
        line.amount.as_ref().map(|m| m.amount_micros),
        Some(-50_000_000)
    );
    // The subscriber's node receives the report's history.
    history_on(&fed, RENNES2, &report_id, 1).await;

    // The subscriber contests through its own node; the provider answers.
    let mut subscriber = ReportServiceClient::new(fed.as_admin(fed.member(RENNES2)));
    let contest = |request_id: &str| pb::ContestReportRequest {
        request_id: request_id.into(),
        report_id: report_id.clone(),
        reason: "our users were on holiday that week".into(),
    };
    let contested = subscriber
        .contest_report(contest("c1"))
        .await
        .unwrap()
        .into_inner();
    assert!(!contested.queued);
    let history = contested.report.unwrap().history;
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].kind(), pb::ReportEventKind::Contested);
    assert!(
        history[1].actor.contains("member/rennes2"),
        "{}",
        history[1].actor
    );
    let wrong = provider
        .answer_contestation(pb::AnswerContestationRequest {
            request_id: "ans-0".into(),
            report_id: report_id.clone(),
            contestation_sequence: 1,
            answer: "no".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert!(wrong.message().starts_with("contestation_sequence"));
    provider
        .answer_contestation(pb::AnswerContestationRequest {
            request_id: "ans-1".into(),
            report_id: report_id.clone(),
            contestation_sequence: 2,
            answer: "the adjustment of the 5th covers it".into(),
        })
        .await
        .unwrap();
    let mirrored = history_on(&fed, RENNES2, &report_id, 3).await;
    assert_eq!(mirrored[2].kind(), pb::ReportEventKind::Answered);
    assert_eq!(mirrored[2].answers_sequence, 2);
    // Another member cannot contest rennes2's report, and rouen's node does not hold it.
    let foreign = ReportServiceClient::new(fed.as_admin(fed.member(ROUEN)))
        .contest_report(contest("c9"))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);

    // The provider's node down: the contestation waits in the outbox, then arrives.
    fed.running.stop_member(UNISTRA).await.unwrap();
    let queued = subscriber
        .contest_report(contest("c2"))
        .await
        .unwrap()
        .into_inner();
    assert!(queued.queued && queued.report.is_none());
    fed.running.restart_member(UNISTRA).await.unwrap();
    let arrived = history_on(&fed, RENNES2, &report_id, 4).await;
    assert_eq!(arrived[3].kind(), pb::ReportEventKind::Contested);
    // The coordinator never receives a tenancy report, nor its history.
    assert_eq!(
        reports_seen_by(&fed, fed.coordinator()).await,
        [format!("{OFFER}/{month}")]
    );
}
