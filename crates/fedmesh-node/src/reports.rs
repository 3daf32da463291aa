//! `ReportService`: the monthly reports this node holds, for its own admins: on a provider's
//! node the reports of its offers' closed months (offer and tenancy reports), on a
//! subscriber's node its own tenancies' reports, mirrored from the providers. Anyone else
//! finds none (`NOT_FOUND`, as for a report that does not exist).

use fedmesh_core::calendar::Calendar;
use fedmesh_core::cost::Days;
use fedmesh_core::text::{self, Lines};
use fedmesh_core::usage::Month;
use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::error::page_size;
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::{Store, WriteError};
use tonic::{Request, Response, Status};

use crate::outbox::Forwarder;
use crate::subscriptions::request_key;

/// The longest reason of an adjustment, contestation or answer.
const MAX_REASON: usize = 2000;

/// The service.
#[derive(Debug, Clone)]
pub struct ReportApi {
    store: Store,
    member: MemberId,
    forwarder: Forwarder,
}

impl ReportApi {
    /// The reports held by `member`'s node; contestations of this member's tenancy reports go
    /// to their providers through `forwarder`.
    pub fn new(store: Store, member: MemberId, forwarder: Forwarder) -> Self {
        Self {
            store,
            member,
            forwarder,
        }
    }

    /// Appends an event to one of this provider's reports, idempotently by `key`.
    async fn append(
        &self,
        report_id: &str,
        key: &[u8],
        event: impl FnOnce(&pb::MonthlyReport, u64) -> Result<pb::ReportEvent, ServiceError>,
    ) -> Result<pb::MonthlyReport, ServiceError> {
        match self
            .store
            .append_report_event(self.member.as_str(), report_id, key, event)
        {
            Ok((report, revision)) => {
                self.store.journal_durable(revision).await?;
                Ok(report)
            }
            Err(WriteError::Repeated(_)) => self
                .store
                .get_report(report_id)?
                .ok_or_else(|| no_report(report_id)),
            Err(WriteError::Rejected(None)) => Err(no_report(report_id)),
            Err(WriteError::Rejected(Some(e))) => Err(e),
            Err(WriteError::Store(e)) => Err(e.into()),
        }
    }

    /// Whether `caller` reads this node's reports: its own member's admins only.
    fn reads(&self, caller: &Identity) -> bool {
        caller.role() == Role::Admin && caller.member() == Some(&self.member)
    }
}

fn no_report(report_id: &str) -> ServiceError {
    ServiceError::NotFound(format!("report {report_id} not found"))
}

/// A required one-line text of at most [`MAX_REASON`] characters, inert.
fn reason<'a>(field: &str, value: &'a str) -> Result<&'a str, ServiceError> {
    if value.trim().is_empty() {
        return Err(ServiceError::invalid(field, "required"));
    }
    if value.chars().count() > MAX_REASON {
        return Err(ServiceError::invalid(
            field,
            format!("at most {MAX_REASON} characters"),
        ));
    }
    text::check(field, value, Lines::One)?;
    Ok(value)
}

/// The instant of an event, on the clock statements are reckoned with (an adjustment lands
/// on the statement of the day it was issued).
fn now_stamp() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: fedmesh_grpc::figures::now(),
        nanos: 0,
    }
}

/// The adjustment lines of `subscription_id` issued on the days `days` (local days of `cal`):
/// what the statement of those days carries, from the histories of the tenancy's reports.
pub(crate) fn adjustment_lines(
    store: &Store,
    subscription_id: &str,
    days: Days,
    cal: &Calendar,
) -> Result<Vec<pb::CostLine>, fedmesh_store::StoreError> {
    let reports = store.list_reports("", usize::MAX, |r| {
        r.subscription_id == subscription_id && r.scope == pb::ReportScope::Tenancy as i32
    })?;
    let mut lines = Vec::new();
    for report in reports {
        let corrected = Month::from_proto("month", report.month.as_ref()).ok();
        for event in &report.history {
            let day = event.event_time.as_ref().map(|t| cal.local_day(t.seconds));
            if event.kind() != pb::ReportEventKind::Adjusted
                || !day.is_some_and(|d| (days.first..=days.last).contains(&d))
            {
                continue;
            }
            lines.push(pb::CostLine {
                kind: pb::CostLineKind::Adjustment as i32,
                description: format!(
                    "adjustment {} of {}: {}",
                    event.adjustment_id,
                    corrected.map_or_else(String::new, |m| m.to_string()),
                    event.reason
                ),
                quantity: event.quantity,
                unit_price: None,
                amount: event.amount.clone(),
                corrected_month: report.month,
                reason: event.reason.clone(),
            });
        }
    }
    Ok(lines)
}

#[tonic::async_trait]
impl pb::report_service_server::ReportService for ReportApi {
    async fn list_reports(
        &self,
        request: Request<pb::ListReportsRequest>,
    ) -> Result<Response<pb::ListReportsResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 100, 1000)?;
        let month = body
            .month
            .as_ref()
            .map(|m| fedmesh_grpc::figures::month_field("month", Some(m)))
            .transpose()?;
        let scope = match pb::ReportScope::try_from(body.scope) {
            Ok(scope) => scope,
            Err(_) => return Err(ServiceError::invalid("scope", "unknown scope").into()),
        };
        if !self.reads(&identity) {
            return Ok(Response::new(pb::ListReportsResponse::default()));
        }
        let keep = |r: &pb::MonthlyReport| {
            (body.offer_id.is_empty() || r.offer_id == body.offer_id)
                && (body.subscription_id.is_empty() || r.subscription_id == body.subscription_id)
                && month.is_none_or(|m| {
                    Month::from_proto("month", r.month.as_ref()).is_ok_and(|rm| rm == m)
                })
                && (scope == pb::ReportScope::Unspecified || r.scope == scope as i32)
        };
        let mut reports = self
            .store
            .list_reports(&body.page_token, size + 1, keep)
            .map_err(ServiceError::from)?;
        let next_page_token = if reports.len() > size {
            reports.truncate(size);
            reports
                .last()
                .map(|r| r.report_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListReportsResponse {
            reports,
            next_page_token,
        }))
    }

    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        if body.report_id.is_empty() {
            return Err(ServiceError::invalid("report_id", "required").into());
        }
        if !self.reads(&identity) {
            return Err(no_report(&body.report_id).into());
        }
        let report = self
            .store
            .get_report(&body.report_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| no_report(&body.report_id))?;
        Ok(Response::new(pb::GetReportResponse {
            report: Some(report),
        }))
    }

    async fn issue_adjustment(
        &self,
        request: Request<pb::IssueAdjustmentRequest>,
    ) -> Result<Response<pb::IssueAdjustmentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key = request_key(&identity, "IssueAdjustment", &body.request_id)?;
        let month = fedmesh_grpc::figures::month_field("month", body.month.as_ref())?;
        let why = reason("reason", &body.reason)?.to_owned();
        let missing = || ServiceError::no_subscription(&body.subscription_id);
        let subscription = self
            .store
            .get_subscription(&body.subscription_id)
            .map_err(ServiceError::from)?
            .filter(|_| self.reads(&identity))
            .ok_or_else(missing)?;
        // A tenancy of this member's with another provider (its mirrored copy): only the
        // provider's admins correct its reports; the subscriber contests them.
        if subscription.provider_member_id != self.member.as_str() {
            return Err(ServiceError::PermissionDenied(format!(
                "subscription_id: tenancy {} is provided by {}: only its admins adjust its reports; contest the report instead",
                subscription.subscription_id, subscription.provider_member_id
            ))
            .into());
        }
        let offer = self
            .store
            .get_offer(&subscription.offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(missing)?;
        let currency = offer
            .pricing
            .as_ref()
            .map(|p| p.currency_code.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "EUR".to_owned());
        let mut amount = body.amount.unwrap_or_default();
        if amount.currency_code.is_empty() {
            amount.currency_code = currency.clone();
        }
        if amount.currency_code != currency {
            return Err(ServiceError::invalid(
                "amount.currency_code",
                format!("must be the offer's currency, {currency}"),
            )
            .into());
        }
        if amount.amount_micros == 0 && body.quantity == 0.0 {
            return Err(ServiceError::invalid(
                "amount",
                "an adjustment corrects an amount or a quantity: both are 0",
            )
            .into());
        }
        if !body.quantity.is_finite() {
            return Err(ServiceError::invalid("quantity", "must be a number").into());
        }
        let report_id = format!("{}/{month}", subscription.subscription_id);
        if self
            .store
            .get_report(&report_id)
            .map_err(ServiceError::from)?
            .is_none()
        {
            return Err(ServiceError::FailedPrecondition(format!(
                "month: {month} of tenancy {} has no report (it is not closed, or the tenancy was not served in it): correct an open month with usage records",
                subscription.subscription_id
            ))
            .into());
        }
        let actor = identity.to_string();
        let report = self
            .append(&report_id, &key, |report, sequence| {
                Ok(pb::ReportEvent {
                    kind: pb::ReportEventKind::Adjusted as i32,
                    event_time: Some(now_stamp()),
                    actor,
                    reason: why,
                    amount: Some(amount),
                    quantity: body.quantity,
                    adjustment_id: format!("{}/a{sequence}", report.report_id),
                    ..Default::default()
                })
            })
            .await?;
        Ok(Response::new(pb::IssueAdjustmentResponse {
            report: Some(report),
        }))
    }

    async fn contest_report(
        &self,
        request: Request<pb::ContestReportRequest>,
    ) -> Result<Response<pb::ContestReportResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key = request_key(&identity, "ContestReport", &body.request_id)?;
        let why = reason("reason", &body.reason)?.to_owned();
        let report = self
            .store
            .get_report(&body.report_id)
            .map_err(ServiceError::from)?
            .filter(|r| r.scope == pb::ReportScope::Tenancy as i32)
            .ok_or_else(|| no_report(&body.report_id))?;
        if identity.role() == Role::Admin {
            // This member's admin contests its tenancy's report (a mirrored copy): its
            // provider's node records it, reached now or through the outbox.
            if identity.member() != Some(&self.member)
                || report.subscriber_member_id != self.member.as_str()
            {
                return Err(no_report(&body.report_id).into());
            }
            let provider = report.provider_member_id.clone();
            if let Some((code, message)) = self
                .forwarder
                .refusal(&provider, &body.request_id)
                .map_err(ServiceError::from)?
            {
                return Err(ServiceError::Peer {
                    member: provider,
                    code,
                    message,
                }
                .into());
            }
            if self
                .store
                .request_record(&key)
                .map_err(ServiceError::from)?
                == Some(fedmesh_store::journal::QUEUED.to_owned())
            {
                return Ok(Response::new(pb::ContestReportResponse {
                    report: None,
                    queued: true,
                }));
            }
            let delivered = self
                .forwarder
                .send_report(&provider, "ContestReport", &body, &identity)
                .await?;
            self.store
                .set_request_record(
                    &key,
                    if delivered.is_some() {
                        &body.report_id
                    } else {
                        fedmesh_store::journal::QUEUED
                    },
                )
                .map_err(ServiceError::from)?;
            return Ok(Response::new(pb::ContestReportResponse {
                queued: delivered.is_none(),
                report: delivered,
            }));
        }
        // On the provider's node: the subscriber member's node, for its own tenancy.
        let subscriber = identity.member().map(|m| m.to_string()).unwrap_or_default();
        if identity.role() != Role::Node
            || report.provider_member_id != self.member.as_str()
            || report.subscriber_member_id != subscriber
        {
            return Err(no_report(&body.report_id).into());
        }
        // The subscriber's admin its node acts for.
        let actor = fedmesh_grpc::acting::actor(&identity).to_string();
        let report = self
            .append(&body.report_id, &key, |_, _| {
                Ok(pb::ReportEvent {
                    kind: pb::ReportEventKind::Contested as i32,
                    event_time: Some(now_stamp()),
                    actor,
                    reason: why,
                    ..Default::default()
                })
            })
            .await?;
        Ok(Response::new(pb::ContestReportResponse {
            report: Some(report),
            queued: false,
        }))
    }

    async fn answer_contestation(
        &self,
        request: Request<pb::AnswerContestationRequest>,
    ) -> Result<Response<pb::AnswerContestationResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key = request_key(&identity, "AnswerContestation", &body.request_id)?;
        let answer = reason("answer", &body.answer)?.to_owned();
        let found = self
            .store
            .get_report(&body.report_id)
            .map_err(ServiceError::from)?
            .filter(|r| r.provider_member_id == self.member.as_str() && self.reads(&identity))
            .ok_or_else(|| no_report(&body.report_id))?;
        let contested = found.history.iter().any(|e| {
            e.sequence == body.contestation_sequence && e.kind() == pb::ReportEventKind::Contested
        });
        if !contested {
            return Err(ServiceError::invalid(
                "contestation_sequence",
                format!(
                    "{} is not a contestation in the history of {}",
                    body.contestation_sequence, body.report_id
                ),
            )
            .into());
        }
        let actor = identity.to_string();
        let report = self
            .append(&body.report_id, &key, |_, _| {
                Ok(pb::ReportEvent {
                    kind: pb::ReportEventKind::Answered as i32,
                    event_time: Some(now_stamp()),
                    actor,
                    reason: answer,
                    answers_sequence: body.contestation_sequence,
                    ..Default::default()
                })
            })
            .await?;
        Ok(Response::new(pb::AnswerContestationResponse {
            report: Some(report),
        }))
    }
}
