//! `fedmesh report list|show|adjust|contest|answer`: the monthly reports of closed months, on
//! one's own node (a provider's reports of its offers, a subscriber's reports of its tenancies,
//! mirrored from the providers), and their corrections. Texts in reports come from the other
//! party: printed inert.

use anyhow::Result;
use clap::Subcommand;
use fedmesh_core::usage::Month;
use fedmesh_proto::pb;
use fedmesh_proto::pb::report_service_client::ReportServiceClient;

use crate::cli::{Connection, call};
use crate::json;
use crate::say;

/// `fedmesh report ...`.
#[derive(Debug, Clone, Subcommand)]
pub enum ReportCommand {
    /// Lists the reports your node holds.
    List {
        /// Only reports of this offer.
        #[arg(long)]
        offer: Option<String>,
        /// Only reports of this tenancy.
        #[arg(long)]
        subscription: Option<String>,
        /// Only reports of this month (2026-11).
        #[arg(long)]
        month: Option<Month>,
    },
    /// Shows one report (`<offer_id>/<yyyy-mm>` or `<subscription_id>/<yyyy-mm>`).
    Show {
        /// The report id.
        report_id: String,
    },
    /// Corrects a closed month of a tenancy of your offer (provider): charged, or credited
    /// with a negative amount, on the statement of this month.
    Adjust {
        /// The tenancy.
        #[arg(long)]
        subscription: String,
        /// The closed month corrected (2026-11).
        #[arg(long)]
        month: Month,
        /// The amount in the offer's currency (-50 or 12.5).
        #[arg(long, allow_negative_numbers = true)]
        amount: f64,
        /// The quantity corrected, for the record.
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        quantity: f64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Your request id, to retry safely (a random one by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Contests a report of your tenancy (subscriber): your node delivers it to the provider.
    Contest {
        /// The report id.
        report_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Your request id, to retry safely (a random one by default).
        #[arg(long)]
        request_id: Option<String>,
    },
    /// Answers a contestation of a report of your offer (provider).
    Answer {
        /// The report id.
        report_id: String,
        /// The contestation's sequence in the report's history.
        #[arg(long)]
        contestation: u64,
        /// The answer.
        #[arg(long)]
        answer: String,
        /// Your request id, to retry safely (a random one by default).
        #[arg(long)]
        request_id: Option<String>,
    },
}

fn request_id(given: Option<String>) -> Result<String> {
    given.map_or_else(crate::admin::new_request_id, Ok)
}

fn percent(value: f64) -> String {
    format!("{value:.3} %")
}

fn money(m: Option<&pb::Money>) -> String {
    m.map_or_else(String::new, |m| {
        format!("{:.6} {}", m.amount_micros as f64 / 1e6, m.currency_code)
    })
}

fn scope(report: &pb::MonthlyReport) -> &'static str {
    match report.scope() {
        pb::ReportScope::Offer => "offer",
        pb::ReportScope::Tenancy => "tenancy",
        pb::ReportScope::Unspecified => "?",
    }
}

fn month_of(report: &pb::MonthlyReport) -> String {
    Month::from_proto("month", report.month.as_ref()).map_or_else(|e| e, |m| m.to_string())
}

/// Runs `fedmesh report ...`.
pub async fn report(connect: &Connection, command: ReportCommand, json_out: bool) -> Result<()> {
    let mut client = ReportServiceClient::new(connect.channel()?);
    let endpoint = &connect.endpoint;
    match command {
        ReportCommand::List {
            offer,
            subscription,
            month,
        } => {
            let mut request = pb::ListReportsRequest {
                offer_id: offer.unwrap_or_default(),
                subscription_id: subscription.unwrap_or_default(),
                month: month.map(Month::to_proto),
                page_size: 1000,
                ..Default::default()
            };
            let mut reports = Vec::new();
            loop {
                let page = call(endpoint, client.list_reports(request.clone())).await?;
                reports.extend(page.reports);
                if page.next_page_token.is_empty() {
                    break;
                }
                request.page_token = page.next_page_token;
            }
            if json_out {
                return json::print(
                    "fedmesh.v1.ListReportsResponse",
                    &pb::ListReportsResponse {
                        reports,
                        next_page_token: String::new(),
                    },
                );
            }
            if reports.is_empty() {
                say!("no monthly report (no month of these offers or tenancies has closed)");
            }
            for r in &reports {
                let compliance = r.compliance.clone().unwrap_or_default();
                say!(
                    "{:<36} {:<8} {} {:<8} SLA {}  history {}",
                    r.report_id,
                    month_of(r),
                    scope(r),
                    r.subscriber_member_id,
                    if compliance.sla_met { "met" } else { "missed" },
                    r.history.len()
                );
            }
        }
        ReportCommand::Show { report_id } => {
            let report = call(
                endpoint,
                client.get_report(pb::GetReportRequest { report_id }),
            )
            .await?
            .report
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MonthlyReport", &report);
            }
            show(&report);
        }
        ReportCommand::Adjust {
            subscription,
            month,
            amount,
            quantity,
            reason,
            request_id: id,
        } => {
            let report = call(
                endpoint,
                client.issue_adjustment(pb::IssueAdjustmentRequest {
                    request_id: request_id(id)?,
                    subscription_id: subscription,
                    month: Some(month.to_proto()),
                    amount: Some(pb::Money {
                        currency_code: String::new(),
                        amount_micros: (amount * 1e6).round() as i64,
                    }),
                    quantity,
                    reason,
                }),
            )
            .await?
            .report
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MonthlyReport", &report);
            }
            if let Some(event) = report.history.last() {
                say!(
                    "adjustment {} recorded on {}: {} on the statement of this month",
                    event.adjustment_id,
                    report.report_id,
                    money(event.amount.as_ref())
                );
            }
        }
        ReportCommand::Contest {
            report_id,
            reason,
            request_id: id,
        } => {
            let answer = call(
                endpoint,
                client.contest_report(pb::ContestReportRequest {
                    request_id: request_id(id)?,
                    report_id: report_id.clone(),
                    reason,
                }),
            )
            .await?;
            if json_out {
                return json::print("fedmesh.v1.ContestReportResponse", &answer);
            }
            if answer.queued {
                say!(
                    "{report_id} contested: queued, the provider's node is unreachable; it is delivered when it answers"
                );
            } else {
                say!("{report_id} contested: recorded by the provider");
            }
        }
        ReportCommand::Answer {
            report_id,
            contestation,
            answer,
            request_id: id,
        } => {
            let report = call(
                endpoint,
                client.answer_contestation(pb::AnswerContestationRequest {
                    request_id: request_id(id)?,
                    report_id,
                    contestation_sequence: contestation,
                    answer,
                }),
            )
            .await?
            .report
            .unwrap_or_default();
            if json_out {
                return json::print("fedmesh.v1.MonthlyReport", &report);
            }
            say!(
                "answered contestation #{contestation} of {}",
                report.report_id
            );
        }
    }
    Ok(())
}

fn show(r: &pb::MonthlyReport) {
    say!("report {} ({} report)", r.report_id, scope(r));
    say!(
        "  month {} ({}), closed {}",
        month_of(r),
        r.time_zone,
        crate::times::local(r.close_time.as_ref())
    );
    say!("  offer {} of {}", r.offer_id, r.provider_member_id);
    if !r.subscription_id.is_empty() {
        say!(
            "  tenancy {} of {}",
            r.subscription_id,
            r.subscriber_member_id
        );
    }
    if let Some(m) = &r.metrics {
        say!(
            "  tenants {}, users {}, storage {}, requests {}",
            m.tenant_count,
            m.user_count,
            crate::reports::storage(m.storage_bytes as f64),
            m.request_count
        );
    }
    for t in &r.metric_totals {
        let value = |v: f64| crate::reports::metric_value(&t.metric, v);
        say!(
            "  {:<16} {} tenants, latest values summed {}, largest {}, sum {}",
            t.metric,
            t.tenant_count,
            value(t.sum_of_last_values),
            value(t.max_value),
            value(t.sum_value)
        );
    }
    for a in &r.tenant_usage {
        say!(
            "  {:<16} latest {}, largest {}, sum {} ({} records)",
            a.metric,
            a.last_value,
            a.max_value,
            a.sum_value,
            a.record_count
        );
    }
    if let Some(c) = &r.compliance {
        let a = c.availability.clone().unwrap_or_default();
        say!(
            "  availability in window {} (SLA {}: {}), outside {} (SLO {}: {})",
            percent(a.in_window_availability_percent),
            percent(c.availability_sla_percent),
            if c.sla_met { "met" } else { "missed" },
            percent(a.out_of_window_availability_percent),
            percent(c.availability_slo_percent),
            if c.slo_met { "met" } else { "missed" }
        );
        say!(
            "  requests handled in time {}/{} = {} (target {}: {})",
            c.requests_in_time,
            c.request_count,
            percent(c.requests_in_time_percent),
            percent(c.request_handling_target_percent),
            if c.request_target_met {
                "met"
            } else {
                "missed"
            }
        );
    }
    if let Some(i) = &r.incidents {
        let per: Vec<String> = i
            .by_priority
            .iter()
            .map(|p| {
                let priority = p.priority().as_str_name().trim_start_matches("PRIORITY_");
                format!("{priority}: {}", p.opened_count)
            })
            .collect();
        say!(
            "  incidents opened {} ({}), open at month end {}",
            i.opened_count,
            per.join(", "),
            i.open_at_month_end
        );
    }
    for o in &r.outages {
        say!("  outage: {}", o.description);
    }
    if let Some(s) = &r.statement {
        for line in &s.lines {
            say!(
                "  {:>20}  {}",
                money(line.amount.as_ref()),
                line.description
            );
        }
        say!("  {:>20}  total", money(s.total.as_ref()));
    }
    for e in &r.history {
        say!(
            "  #{} {} by {}: {} {}",
            e.sequence,
            e.kind()
                .as_str_name()
                .split('_')
                .skip_while(|w| *w != "KIND")
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase(),
            e.actor,
            e.reason,
            money(e.amount.as_ref())
        );
    }
}
