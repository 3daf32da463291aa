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

use std::collections::{BTreeMap, HashMap};

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
    /// The usage service of `member`'s node; `peers` reaches providers' nodes.
    pub fn new(store: Store, member: MemberId, peers: Peers) -> Self {
        Self {
            store,
            member,
            peers,
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

    fn tenancies(&self, offer_id: &str) -> Result<Vec<pb::Subscription>, ServiceError> {
        Ok(self.store.list_subscriptions("", usize::MAX, |s| {
            s.offer_id == offer_id && s.provider_member_id == self.member.as_str()
        })?)
    }

    /// Checks and files a batch; the offers of the batch are looked up once each.
    fn file<R>(
        &self,
        records: Vec<R>,
        mut check: impl FnMut(usize, R, &OfferContext) -> Result<Filed, String>,
        offer_of: impl Fn(&R) -> String,
        record_id: impl Fn(&R) -> String,
    ) -> Result<(Vec<Filed>, Vec<pb::RecordRejection>), ServiceError> {
        if records.len() > MAX_BATCH {
            return Err(ServiceError::invalid(
                "records",
                format!("at most {MAX_BATCH} records per call"),
            ));
        }
        let mut offers: HashMap<String, Option<OfferContext>> = HashMap::new();
        let mut filed = Vec::with_capacity(records.len());
        let mut rejections = Vec::new();
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
            match outcome {
                Ok(f) => filed.push(f),
                Err(reason) => rejections.push(pb::RecordRejection {
                    record_id: id,
                    reason,
                }),
            }
        }
        Ok((filed, rejections))
    }

    async fn store(&self, filed: Vec<Filed>) -> Result<(i32, i32), ServiceError> {
        let store = self.store.clone();
        let member = self.member.to_string();
        let stored = tokio::task::spawn_blocking(move || store.store_records(&member, filed))
            .await
            .map_err(|e| ServiceError::Unavailable(format!("storing the batch failed: {e}")))??;
        if let Some(revision) = stored.revision {
            self.store.journal_durable(revision).await?;
        }
        Ok((stored.accepted as i32, stored.duplicates as i32))
    }
}

/// An offer of this node, looked up once per batch.
struct OfferContext {
    offer: pb::Offer,
    calendar: fedmesh_core::calendar::Calendar,
    tenancies: Vec<pb::Subscription>,
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
        let (now, time) = (now(), stamp_time());
        let (filed, rejections) = self.file(
            records,
            |i, mut record, context| {
                usage::check_usage(i, &mut record, &context.offer, &context.tenancies, now)?;
                record.record_time = Some(time);
                record.reported_by = reporter.clone();
                let month = usage::usage_month(&record, &context.calendar).key();
                Ok(Filed::Usage(record, month))
            },
            |r| r.offer_id.clone(),
            |r| r.record_id.clone(),
        )?;
        let (accepted_count, duplicate_count) = self.store(filed).await?;
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
        let (now, time) = (now(), stamp_time());
        let (filed, rejections) = self.file(
            records,
            |i, mut record, _| {
                usage::check_availability(i, &record, now)?;
                record.record_time = Some(time);
                record.reported_by = reporter.clone();
                let month = Month::of_day(usage::observed_at(&record).div_euclid(86_400)).key();
                Ok(Filed::Availability(record, month))
            },
            |r| r.offer_id.clone(),
            |r| r.record_id.clone(),
        )?;
        let (accepted_count, duplicate_count) = self.store(filed).await?;
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
        let records = figures::month_usage(&self.store, &offer.offer_id, month)
            .map_err(ServiceError::from)?;
        let aggregates = usage::aggregate(records.iter().filter(|r| {
            visible.contains_key(&r.subscription_id)
                && (body.subscription_id.is_empty() || r.subscription_id == body.subscription_id)
                && (body.metrics.is_empty() || body.metrics.contains(&r.metric))
        }));
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
            let records = figures::month_usage(&self.store, &offer.offer_id, month)
                .map_err(ServiceError::from)?;
            for agg in usage::aggregate(&records) {
                latest.insert((agg.subscription_id, agg.metric), agg.last_value);
            }
            let m = figures::month_metrics(&records, &tenancies, month, &cal);
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
        let cal = calendar_of(&offer);
        let mut users = BTreeMap::new();
        let mut month = Month::of_day(period.first);
        while month.first_day() <= period.last {
            let records = figures::month_usage(&self.store, &offer.offer_id, month)
                .map_err(ServiceError::from)?;
            let largest = records
                .iter()
                .filter(|r| {
                    r.subscription_id == subscription.subscription_id && r.metric == "active_users"
                })
                .map(|r| r.value)
                .fold(None, |max: Option<f64>, v| {
                    Some(max.map_or(v, |m| m.max(v)))
                });
            if let Some(largest) = largest {
                users.insert(month, largest);
            }
            month = month.next();
        }
        let statement = cost::statement(&offer, &subscription, &cal, period, &users, now());
        Ok(Response::new(pb::GetCostStatementResponse {
            statement: Some(statement),
        }))
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
