//! `UsageService`: the member's agents report usage and availability of its offers; each
//! party reads what concerns it.
//!
//! - Reports are stored a batch per transaction, journaled (the coordinator replicates them)
//!   and durable before the answer. A record id already stored with the same content counts
//!   as a duplicate; with other content the whole batch answers `ALREADY_EXISTS`. Records that
//!   fail their checks are refused one by one (`rejections`), the others stored.
//! - On the provider's node: its own admins see every tenant; a subscriber member's node sees
//!   its own tenants and the availability of offers it is a tenant of; anyone else gets the
//!   `NOT_FOUND` an unknown offer gets.
//! - On a subscriber's node: its admin asks about another member's offer, and the node asks the
//!   provider's node (as itself, so the provider scopes the answer to this member).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fedmesh_core::closing;
use fedmesh_core::cost::{self, Days};
use fedmesh_core::usage::{self, MAX_BATCH, Month};
use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::figures::{self, calendar_of, month_field, now};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_proto::pb::usage_service_client::UsageServiceClient;
use fedmesh_store::Store;
use fedmesh_store::usage::Filed;
use tonic::{Request, Response, Status};

use crate::peers::Peers;

/// The service.
#[derive(Debug, Clone)]
pub struct UsageApi {
    store: Store,
    member: MemberId,
    peers: Peers,
    close_after_days: u32,
}

/// A checked batch: what to store, what was refused, and the months it touches.
struct Batch {
    filed: Vec<Filed>,
    rejections: Vec<pb::RecordRejection>,
    /// The closed months records were refused for.
    closed: BTreeSet<(String, Month)>,
    /// How many records were refused for a closed month.
    closed_count: usize,
    /// The (offer, month on its calendar) of every record to store: checked again when the
    /// batch is stored, under the lock closing takes.
    months: BTreeSet<(String, u32)>,
}

/// What a caller may see of one of this node's offers.
enum Scope {
    /// Every tenant (this member's admins and agents, the coordinator).
    All,
    /// The tenancies of this subscriber member.
    Subscriber(String),
}

impl Scope {
    fn sees(&self, subscription: &pb::Subscription) -> bool {
        match self {
            Self::All => true,
            Self::Subscriber(member) => &subscription.subscriber_member_id == member,
        }
    }
}

impl UsageApi {
    /// The usage service of `member`'s node; `peers` reaches providers' nodes; the months of
    /// its offers close `close_after_days` after they end.
    pub fn new(store: Store, member: MemberId, peers: Peers, close_after_days: u32) -> Self {
        Self {
            store,
            member,
            peers,
            close_after_days,
        }
    }

    fn is_local(&self, offer_id: &str) -> bool {
        fedmesh_core::offer::provider_of(offer_id).is_some_and(|p| p == self.member)
    }

    /// The provider's node of a remote offer, for this member's admin only.
    async fn provider(
        &self,
        caller: &Identity,
        offer_id: &str,
    ) -> Result<(String, UsageServiceClient<fedmesh_grpc::GrpcChannel>), ServiceError> {
        let provider = fedmesh_core::offer::provider_of(offer_id).ok_or_else(|| {
            ServiceError::invalid("offer_id", "not an offer id (<member>.<service_id>)")
        })?;
        if caller.role() != Role::Admin {
            return Err(ServiceError::no_offer(offer_id));
        }
        let channel = self.peers.channel(provider.as_str()).await.map_err(|e| {
            ServiceError::Unavailable(format!("cannot reach {provider}'s node: {e}"))
        })?;
        Ok((provider.to_string(), UsageServiceClient::new(channel)))
    }

    /// One of this node's offers, and what `caller` may see of it.
    fn local_offer(
        &self,
        caller: &Identity,
        offer_id: &str,
    ) -> Result<(pb::Offer, Scope), ServiceError> {
        let offer = self
            .store
            .get_offer(offer_id)?
            .ok_or_else(|| ServiceError::no_offer(offer_id))?;
        let scope = match caller.role() {
            Role::Admin | Role::Agent | Role::Coordinator => Scope::All,
            Role::Operator => return Err(ServiceError::no_offer(offer_id)),
            Role::Node => {
                let member = caller.member().map(|m| m.to_string()).unwrap_or_default();
                let tenant = self
                    .tenancies(offer_id)?
                    .iter()
                    .any(|s| s.subscriber_member_id == member && usage::has_tenant(s.state));
                if !tenant {
                    return Err(ServiceError::no_offer(offer_id));
                }
                Scope::Subscriber(member)
            }
        };
        Ok((offer, scope))
    }

    /// The offer report of `offer_id`'s `month` once the month closed: its figures are read
    /// from the reports from then on.
    fn offer_report(
        &self,
        offer_id: &str,
        month: Month,
    ) -> Result<Option<pb::MonthlyReport>, ServiceError> {
        Ok(self.store.get_report(&format!("{offer_id}/{month}"))?)
    }

    /// The tenancy reports of `offer_id`'s closed `month`.
    fn tenancy_reports(
        &self,
        offer_id: &str,
        month: Month,
    ) -> Result<Vec<pb::MonthlyReport>, ServiceError> {
        let month = month.to_proto();
        Ok(self.store.list_reports("", usize::MAX, |r| {
            r.offer_id == offer_id
                && r.scope == pb::ReportScope::Tenancy as i32
                && r.month.as_ref() == Some(&month)
        })?)
    }

    fn tenancies(&self, offer_id: &str) -> Result<Vec<pb::Subscription>, ServiceError> {
        Ok(self.store.list_subscriptions("", usize::MAX, |s| {
            s.offer_id == offer_id && s.provider_member_id == self.member.as_str()
        })?)
    }

    /// Checks and files a batch; the offers of the batch are looked up once each. A record of
    /// a closed month (on its offer's calendar, at `now`) is refused after its other checks.
    fn file<R>(
        &self,
        records: Vec<R>,
        now: fedmesh_core::span::Secs,
        mut check: impl FnMut(usize, R, &OfferContext) -> Result<Filed, String>,
        offer_of: impl Fn(&R) -> String,
        record_id: impl Fn(&R) -> String,
    ) -> Result<Batch, ServiceError> {
        if records.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "records",
                format!("at most {MAX_BATCH} records per call"),
            ));
        }
        let mut offers: HashMap<String, Option<OfferContext>> = HashMap::new();
        let mut batch = Batch {
            filed: Vec::with_capacity(records.len()),
            rejections: Vec::new(),
            closed: BTreeSet::new(),
            closed_count: 0,
            months: BTreeSet::new(),
        };
        let mut closed_months: HashMap<(String, Month), bool> = HashMap::new();
        for (i, record) in records.into_iter().enumerate() {
            let offer_id = offer_of(&record);
            if !offers.contains_key(&offer_id) {
                let context = match self.is_local(&offer_id) {
                    true => self.store.get_offer(&offer_id)?.map(|offer| {
                        Ok::<_, ServiceError>(OfferContext {
                            calendar: calendar_of(&offer),
                            tenancies: self.tenancies(&offer_id)?,
                            offer,
                        })
                    }),
                    false => None,
                }
                .transpose()?;
                offers.insert(offer_id.clone(), context);
            }
            let id = record_id(&record);
            let outcome = match offers.get(&offer_id).and_then(Option::as_ref) {
                None => Err(format!(
                    "records[{i}].offer_id: no offer {offer_id} of {} on this node",
                    self.member
                )),
                Some(context) => check(i, record, context),
            };
            let filed = match outcome {
                Ok(f) => f,
                Err(reason) => {
                    batch.rejections.push(pb::RecordRejection {
                        record_id: id,
                        reason,
                    });
                    continue;
                }
            };
            let Some(context) = offers.get(&offer_id).and_then(Option::as_ref) else {
                continue;
            };
            let (month, field) = closing_month(&filed, &context.calendar, i);
            let key = (offer_id.clone(), month);
            let closed = match closed_months.get(&key) {
                Some(&closed) => closed,
                None => {
                    let closed = self.store.closed_month(&offer_id, month.key())?.is_some()
                        || closing::is_closed(&context.calendar, month, self.close_after_days, now);
                    closed_months.insert(key.clone(), closed);
                    closed
                }
            };
            if closed {
                batch.rejections.push(pb::RecordRejection {
                    record_id: id,
                    reason: closing::refusal(&field, &offer_id, month, self.member.as_str()),
                });
                batch.closed_count += 1;
                batch.closed.insert(key);
                continue;
            }
            batch.months.insert((offer_id, month.key()));
            batch.filed.push(filed);
        }
        Ok(batch)
    }

    /// Stores a checked batch: `Ok(None)` when one of its months closed meanwhile (check it
    /// again: those records are refused now). A call whose every record falls in a closed
    /// month answers `FAILED_PRECONDITION` naming the months.
    /// Checks, files and stores a reported batch: the accepted and duplicate counts and the
    /// rejections. A month that closed between the check and the store makes the batch checked
    /// again, once; twice, the caller is asked to send it again (`ABORTED`).
    async fn report<R: Clone>(
        &self,
        records: Vec<R>,
        check: impl Fn(
            usize,
            R,
            &OfferContext,
            fedmesh_core::span::Secs,
            prost_types::Timestamp,
        ) -> Result<Filed, String>,
        offer_of: impl Fn(&R) -> String,
        record_id: impl Fn(&R) -> String,
    ) -> Result<(i32, i32, Vec<pb::RecordRejection>), ServiceError> {
        for _ in 0..2 {
            let (now, time) = (now(), stamp_time());
            let batch = self.file(
                records.clone(),
                now,
                |i, record, context| check(i, record, context, now, time),
                &offer_of,
                &record_id,
            )?;
            let rejections = batch.rejections.clone();
            if let Some((accepted, duplicates)) = self.store(batch).await? {
                return Ok((accepted, duplicates, rejections));
            }
        }
        Err(ServiceError::Aborted(
            "months kept closing while the batch was stored: send it again".into(),
        ))
    }

    async fn store(&self, batch: Batch) -> Result<Option<(i32, i32)>, ServiceError> {
        if batch.filed.is_empty()
            && batch.closed_count > 0
            && batch.closed_count == batch.rejections.len()
        {
            let months: Vec<(String, Month)> = batch.closed.into_iter().collect();
            return Err(ServiceError::FailedPrecondition(closing::all_closed(
                &months,
            )));
        }
        let store = self.store.clone();
        let member = self.member.to_string();
        let months: Vec<(String, u32)> = batch.months.into_iter().collect();
        let filed = batch.filed;
        let stored =
            tokio::task::spawn_blocking(move || store.store_open_records(&member, filed, &months))
                .await
                .map_err(|e| ServiceError::Unavailable(format!("storing the batch failed: {e}")))?;
        let stored = match stored {
            Err(fedmesh_store::usage::RecordError::Closed { .. }) => return Ok(None),
            other => other?,
        };
        if let Some(revision) = stored.revision {
            self.store.journal_durable(revision).await?;
        }
        Ok(Some((stored.accepted as i32, stored.duplicates as i32)))
    }
}

/// An offer of this node, looked up once per batch.
struct OfferContext {
    offer: pb::Offer,
    calendar: fedmesh_core::calendar::Calendar,
    tenancies: Vec<pb::Subscription>,
}

/// The month a filed record belongs to on its offer's calendar, which closes, and the field
/// that says so.
fn closing_month(
    filed: &Filed,
    cal: &fedmesh_core::calendar::Calendar,
    i: usize,
) -> (Month, String) {
    match filed {
        Filed::Usage(record, _) => (
            usage::usage_month(record, cal),
            format!("records[{i}].period.start_time"),
        ),
        Filed::Availability(record, _) => (
            Month::of_day(cal.local_day(usage::observed_at(record))),
            match record.observation {
                Some(pb::availability_record::Observation::Outage(_)) => {
                    format!("records[{i}].outage.period.start_time")
                }
                _ => format!("records[{i}].probe.probe_time"),
            },
        ),
    }
}

fn stamp_time() -> prost_types::Timestamp {
    fedmesh_core::clock::now_timestamp()
}

#[tonic::async_trait]
impl pb::usage_service_server::UsageService for UsageApi {
    async fn report_usage(
        &self,
        request: Request<pb::ReportUsageRequest>,
    ) -> Result<Response<pb::ReportUsageResponse>, Status> {
        let reporter = caller(&request)?.to_string();
        let records = request.into_inner().records;
        // A month that closes while the batch is stored refuses its records: checked again.
        let (accepted_count, duplicate_count, rejections) = self
            .report(
                records,
                |i, mut record, context, now, time| {
                    usage::check_usage(i, &mut record, &context.offer, &context.tenancies, now)?;
                    record.record_time = Some(time);
                    record.reported_by = reporter.clone();
                    let month = usage::usage_month(&record, &context.calendar).key();
                    Ok(Filed::Usage(record, month))
                },
                |r| r.offer_id.clone(),
                |r| r.record_id.clone(),
            )
            .await?;
        Ok(Response::new(pb::ReportUsageResponse {
            accepted_count,
            duplicate_count,
            rejections,
        }))
    }

    async fn report_availability(
        &self,
        request: Request<pb::ReportAvailabilityRequest>,
    ) -> Result<Response<pb::ReportAvailabilityResponse>, Status> {
        let reporter = caller(&request)?.to_string();
        let records = request.into_inner().records;
        let (accepted_count, duplicate_count, rejections) = self
            .report(
                records,
                |i, mut record, _, now, time| {
                    usage::check_availability(i, &record, now)?;
                    record.record_time = Some(time);
                    record.reported_by = reporter.clone();
                    let month = Month::of_day(usage::observed_at(&record).div_euclid(86_400)).key();
                    Ok(Filed::Availability(record, month))
                },
                |r| r.offer_id.clone(),
                |r| r.record_id.clone(),
            )
            .await?;
        Ok(Response::new(pb::ReportAvailabilityResponse {
            accepted_count,
            duplicate_count,
            rejections,
        }))
    }

    async fn get_usage(
        &self,
        request: Request<pb::GetUsageRequest>,
    ) -> Result<Response<pb::GetUsageResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let month = month_field("month", body.month.as_ref())?;
        if !self.is_local(&body.offer_id) {
            let (provider, mut client) = self.provider(&identity, &body.offer_id).await?;
            return client
                .get_usage(body)
                .await
                .map_err(|s| peer(&provider, s).into());
        }
        let (offer, scope) = self.local_offer(&identity, &body.offer_id)?;
        let visible: HashMap<String, pb::Subscription> = self
            .tenancies(&offer.offer_id)
            .map_err(Status::from)?
            .into_iter()
            .filter(|s| scope.sees(s))
            .map(|s| (s.subscription_id.clone(), s))
            .collect();
        let wanted = |subscription_id: &str, metric: &str| {
            visible.contains_key(subscription_id)
                && (body.subscription_id.is_empty() || subscription_id == body.subscription_id)
                && (body.metrics.is_empty() || body.metrics.iter().any(|m| m == metric))
        };
        let aggregates = if self.offer_report(&offer.offer_id, month)?.is_some() {
            // A closed month: its tenancy reports hold the aggregates.
            let mut aggregates: Vec<pb::UsageAggregate> = self
                .tenancy_reports(&offer.offer_id, month)?
                .into_iter()
                .flat_map(|r| r.tenant_usage)
                .filter(|a| wanted(&a.subscription_id, &a.metric))
                .collect();
            aggregates.sort_by(|a, b| {
                (&a.subscription_id, &a.metric).cmp(&(&b.subscription_id, &b.metric))
            });
            aggregates
        } else {
            let records = figures::month_usage(&self.store, &offer.offer_id, month)
                .map_err(ServiceError::from)?;
            usage::aggregate(
                records
                    .iter()
                    .filter(|r| wanted(&r.subscription_id, &r.metric)),
            )
        };
        Ok(Response::new(pb::GetUsageResponse {
            offer_id: offer.offer_id,
            month: Some(month.to_proto()),
            aggregates,
        }))
    }

    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let month = month_field("month", body.month.as_ref())?;
        if !self.is_local(&body.offer_id) {
            let (provider, mut client) = self.provider(&identity, &body.offer_id).await?;
            return client
                .get_availability(body)
                .await
                .map_err(|s| peer(&provider, s).into());
        }
        let (offer, _) = self.local_offer(&identity, &body.offer_id)?;
        if let Some(report) = self.offer_report(&offer.offer_id, month)? {
            // A closed month: the figures of its report.
            let compliance = report.compliance.unwrap_or_default();
            return Ok(Response::new(pb::GetAvailabilityResponse {
                availability: compliance.availability,
                availability_sla_percent: compliance.availability_sla_percent,
                availability_slo_percent: compliance.availability_slo_percent,
                outages: report.outages,
            }));
        }
        let (summary, outages) =
            figures::month_availability(&self.store, &offer, month).map_err(ServiceError::from)?;
        let engagement = offer.engagement.unwrap_or_default();
        Ok(Response::new(pb::GetAvailabilityResponse {
            availability: Some(summary),
            availability_sla_percent: engagement.availability_sla_percent,
            availability_slo_percent: engagement.availability_slo_percent,
            outages,
        }))
    }

    async fn get_capacity(
        &self,
        request: Request<pb::GetCapacityRequest>,
    ) -> Result<Response<pb::GetCapacityResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let months = match body.trend_months {
            0 => 6,
            n if n < 0 || n as usize > figures::MAX_MONTHS => {
                return Err(ServiceError::invalid(
                    "trend_months",
                    format!("must be 0 (6 months) to {}", figures::MAX_MONTHS),
                )
                .into());
            }
            n => n as usize,
        };
        if !self.is_local(&body.offer_id) {
            return Err(ServiceError::no_offer(&body.offer_id).into());
        }
        let (offer, _) = self.local_offer(&identity, &body.offer_id)?;
        let cal = calendar_of(&offer);
        let tenancies = self.tenancies(&offer.offer_id)?;
        let current = figures::current_month(&cal);
        let mut month = current;
        for _ in 1..months {
            month = month.previous();
        }
        let mut trend = Vec::with_capacity(months);
        let mut latest: BTreeMap<(String, String), f64> = BTreeMap::new();
        for _ in 0..months {
            let m = match self.offer_report(&offer.offer_id, month)? {
                // A closed month: its reports.
                Some(report) => {
                    for report in self.tenancy_reports(&offer.offer_id, month)? {
                        for agg in report.tenant_usage {
                            latest.insert((agg.subscription_id, agg.metric), agg.last_value);
                        }
                    }
                    report.metrics.unwrap_or_default()
                }
                None => {
                    let records = figures::month_usage(&self.store, &offer.offer_id, month)
                        .map_err(ServiceError::from)?;
                    for agg in usage::aggregate(&records) {
                        latest.insert((agg.subscription_id, agg.metric), agg.last_value);
                    }
                    figures::month_metrics(&records, &tenancies, month, &cal)
                }
            };
            trend.push(pb::CapacityPoint {
                month: m.month,
                tenant_count: m.tenant_count,
                active_users: m.user_count as f64,
                storage_bytes: m.storage_bytes as f64,
                requests: m.request_count as f64,
            });
            month = month.next();
        }
        let holding: Vec<&pb::Subscription> = tenancies
            .iter()
            .filter(|s| fedmesh_core::subscription::occupies_capacity(s))
            .collect();
        let declared = offer.capacity.unwrap_or_default();
        let tenant_count = holding.len() as i32;
        let value = |s: &pb::Subscription, metric: &str| {
            latest
                .get(&(s.subscription_id.clone(), metric.to_owned()))
                .copied()
                .unwrap_or(0.0)
        };
        Ok(Response::new(pb::GetCapacityResponse {
            offer_id: offer.offer_id.clone(),
            tenant_count,
            tenant_use_percent: if declared.max_tenants > 0 {
                100.0 * f64::from(tenant_count) / f64::from(declared.max_tenants)
            } else {
                0.0
            },
            declared: Some(declared),
            tenants: holding
                .iter()
                .map(|s| pb::TenantCapacityUse {
                    subscription_id: s.subscription_id.clone(),
                    subscriber_member_id: s.subscriber_member_id.clone(),
                    declared_users: s.user_count,
                    active_users: value(s, "active_users"),
                    storage_bytes: value(s, "storage_bytes"),
                })
                .collect(),
            trend,
        }))
    }

    async fn get_cost_statement(
        &self,
        request: Request<pb::GetCostStatementRequest>,
    ) -> Result<Response<pb::GetCostStatementResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let period = Days::from_proto("period", body.period.as_ref()).map_err(|message| {
            let (field, message) = message.split_once(": ").unwrap_or(("period", &message));
            ServiceError::invalid(field, message)
        })?;
        let missing = || ServiceError::no_subscription(&body.subscription_id);
        // Who may see the tenancy is decided first, as for every subscription id: what is
        // looked up next (its offer, its provider's node) must not tell anyone else it exists.
        let subscription = crate::subscriptions::find_visible(
            &self.store,
            &identity,
            &self.member,
            &body.subscription_id,
        )?;
        if subscription.provider_member_id != self.member.as_str() {
            // A tenancy of this member on another member's offer: the provider computes it,
            // asked by this node for this member's admin only.
            if subscription.subscriber_member_id != self.member.as_str()
                || identity.role() != Role::Admin
            {
                return Err(missing().into());
            }
            let (provider, mut client) = self.provider(&identity, &subscription.offer_id).await?;
            return client
                .get_cost_statement(body)
                .await
                .map_err(|s| peer(&provider, s).into());
        }
        let offer = self
            .store
            .get_offer(&subscription.offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(missing)?;
        let statement = self.statement(&offer, &subscription, period)?;
        Ok(Response::new(pb::GetCostStatementResponse {
            statement: Some(statement),
        }))
    }
}

impl UsageApi {
    /// The statement of `subscription` over `period`: the lines of the closed months the
    /// period covers whole come from their tenancy reports, the rest is computed from the
    /// offer's grid, the tenancy's history and its usage (or, for a closed month the period
    /// covers in part, the usage of its report).
    fn statement(
        &self,
        offer: &pb::Offer,
        subscription: &pb::Subscription,
        period: Days,
    ) -> Result<pb::CostStatement, ServiceError> {
        let cal = calendar_of(offer);
        let mut users = BTreeMap::new();
        // Runs of days computed live, and the report lines of whole closed months, in order.
        let mut segments: Vec<Result<Days, Vec<pb::CostLine>>> = Vec::new();
        let live = |segments: &mut Vec<Result<Days, Vec<pb::CostLine>>>, days: Days| match segments
            .last_mut()
        {
            Some(Ok(run)) if run.last + 1 == days.first => run.last = days.last,
            _ => segments.push(Ok(days)),
        };
        let mut month = Month::of_day(period.first);
        while month.first_day() <= period.last {
            let whole = Days::month(month);
            let days = Days {
                first: whole.first.max(period.first),
                last: whole.last.min(period.last),
            };
            if self.offer_report(&offer.offer_id, month)?.is_some() {
                let report = self
                    .store
                    .get_report(&format!("{}/{month}", subscription.subscription_id))?;
                if days == whole {
                    segments.push(Err(report
                        .and_then(|r| r.statement)
                        .map(|s| s.lines)
                        .unwrap_or_default()));
                } else {
                    let largest = report
                        .iter()
                        .flat_map(|r| &r.tenant_usage)
                        .filter(|a| a.metric == "active_users")
                        .map(|a| a.max_value)
                        .reduce(f64::max);
                    if let Some(largest) = largest {
                        users.insert(month, largest);
                    }
                    live(&mut segments, days);
                }
            } else {
                let records = figures::month_usage(&self.store, &offer.offer_id, month)
                    .map_err(ServiceError::from)?;
                let largest = records
                    .iter()
                    .filter(|r| {
                        r.subscription_id == subscription.subscription_id
                            && r.metric == "active_users"
                    })
                    .map(|r| r.value)
                    .reduce(f64::max);
                if let Some(largest) = largest {
                    users.insert(month, largest);
                }
                live(&mut segments, days);
            }
            month = month.next();
        }
        let at = now();
        let mut statement =
            cost::statement(offer, subscription, &cal, period, &BTreeMap::new(), at);
        let mut lines = Vec::new();
        for segment in segments {
            match segment {
                Ok(days) => {
                    lines
                        .extend(cost::statement(offer, subscription, &cal, days, &users, at).lines);
                    // Adjustments of closed months issued on these days.
                    lines.extend(crate::reports::adjustment_lines(
                        &self.store,
                        &subscription.subscription_id,
                        days,
                        &cal,
                    )?);
                }
                Err(closed) => lines.extend(closed),
            }
        }
        statement.lines = lines;
        let total = statement
            .lines
            .iter()
            .map(|l| l.amount.as_ref().map_or(0, |m| m.amount_micros))
            .sum();
        if let Some(money) = statement.total.as_mut() {
            money.amount_micros = total;
        }
        Ok(statement)
    }
}

/// A provider node's refusal, passed on with its code.
fn peer(provider: &str, status: Status) -> ServiceError {
    ServiceError::Peer {
        member: provider.to_owned(),
        code: status.code(),
        message: status.message().to_owned(),
    }
}
