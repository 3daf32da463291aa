//! `MetricsService`: the federation's figures, computed from what the coordinator replicated
//! — the registry, the catalogue, tenancy histories (without contact data) and every
//! provider's usage and availability records and incidents (without texts or people).
//!
//! What each caller sees (`docs/security.md`, "What each role sees"): the consortium (its
//! operators and the coordinator itself) everything; a member its own tenancies and
//! incidents in full, and of the others only per-offer counts — never who is a tenant of what
//! or who opened which incident.

use std::time::SystemTime;

use fedmesh_core::Identity;
use fedmesh_core::liveness::Liveness;
use fedmesh_core::usage::{self, Month};
use fedmesh_grpc::error::{bounded_page, page_after, page_size};
use fedmesh_grpc::figures::{self, calendar_of, month_field};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct MetricsApi {
    store: Store,
    staleness: crate::liveness::Staleness,
}

impl MetricsApi {
    /// Figures from `store`; `staleness` says when a node is down.
    pub fn new(store: Store, staleness: crate::liveness::Staleness) -> Self {
        Self { store, staleness }
    }

    fn offer(&self, offer_id: &str) -> Result<pb::Offer, ServiceError> {
        self.store
            .catalogue_offer(offer_id)?
            .and_then(|c| c.offer)
            .ok_or_else(|| ServiceError::no_offer(offer_id))
    }

    /// The offers a request is about: one by id, or every offer of the catalogue that is not
    /// withdrawn.
    fn offers(&self, offer_id: &str) -> Result<Vec<pb::Offer>, ServiceError> {
        if !offer_id.is_empty() {
            return Ok(vec![self.offer(offer_id)?]);
        }
        Ok(self.store.live_catalogue_offers()?)
    }
}

/// Whether `viewer` may see who the parties of something between `provider` and `subscriber`
/// are: the consortium, or one of the two members.
fn party_or_consortium(viewer: &Identity, provider: &str, subscriber: &str) -> bool {
    viewer.is_consortium()
        || viewer
            .member()
            .is_some_and(|m| m.as_str() == provider || m.as_str() == subscriber)
}

impl MetricsApi {
    /// The offer report of `offer_id`'s `month`, once the provider closed it: the figures of
    /// a closed month are read from it (its records' buckets are gone).
    fn report(
        &self,
        offer_id: &str,
        month: Month,
    ) -> Result<Option<pb::MonthlyReport>, ServiceError> {
        Ok(self.store.get_report(&format!("{offer_id}/{month}"))?)
    }

    fn tenancies(&self, offer_id: &str) -> Result<Vec<pb::Subscription>, ServiceError> {
        Ok(self
            .store
            .tenancies(offer_id)?
            .into_iter()
            .filter_map(|t| t.subscription)
            .collect())
    }
}

#[tonic::async_trait]
impl pb::metrics_service_server::MetricsService for MetricsApi {
    async fn get_federation_summary(
        &self,
        _request: Request<pb::GetFederationSummaryRequest>,
    ) -> Result<Response<pb::GetFederationSummaryResponse>, Status> {
        let now = SystemTime::now();
        let judged = self.staleness.at(now);
        let nodes = self
            .store
            .list_nodes("", usize::MAX)
            .map_err(ServiceError::from)?;
        let nodes_up = nodes
            .iter()
            .filter(|n| judged.of(n) == Liveness::Active)
            .count();
        let members: std::collections::BTreeSet<&str> =
            nodes.iter().map(|n| n.member_id.as_str()).collect();
        let offers = self.offers("")?;
        let count = |status: pb::OfferStatus| {
            offers.iter().filter(|o| o.status == status as i32).count() as i32
        };
        let mut tenant_count = 0;
        let mut user_count = 0;
        for offer in &offers {
            tenant_count += self
                .store
                .tenancy_counts(&offer.offer_id)
                .map_err(ServiceError::from)?
                .0;
            user_count += figures::latest_active_users(&self.store, offer)
                .map_err(ServiceError::from)?
                .round() as i64;
        }
        Ok(Response::new(pb::GetFederationSummaryResponse {
            member_count: members.len() as i32,
            node_count: nodes.len() as i32,
            nodes_up: nodes_up as i32,
            offer_count: offers.len() as i32,
            available_offer_count: count(pb::OfferStatus::Available),
            pilot_offer_count: count(pb::OfferStatus::Pilot),
            tenant_count,
            user_count,
            generate_time: Some(now.into()),
        }))
    }

    async fn get_offer_metrics(
        &self,
        request: Request<pb::GetOfferMetricsRequest>,
    ) -> Result<Response<pb::GetOfferMetricsResponse>, Status> {
        let body = request.into_inner();
        let offer = self.offer(&body.offer_id)?;
        let cal = calendar_of(&offer);
        let from = month_field("from_month", body.from_month.as_ref())?;
        let to = match body.to_month {
            None => figures::current_month(&cal),
            Some(_) => month_field("to_month", body.to_month.as_ref())?,
        };
        let tenancies = self.tenancies(&offer.offer_id)?;
        let mut months = Vec::new();
        for month in figures::months(from, to)? {
            if let Some(metrics) = self.report(&offer.offer_id, month)?.and_then(|r| r.metrics) {
                months.push(metrics);
                continue;
            }
            let records = figures::month_usage(&self.store, &offer.offer_id, month)
                .map_err(ServiceError::from)?;
            months.push(figures::month_metrics(&records, &tenancies, month, &cal));
        }
        Ok(Response::new(pb::GetOfferMetricsResponse {
            offer_id: offer.offer_id,
            provider_member_id: offer.provider_member_id,
            months,
        }))
    }

    async fn get_member_metrics(
        &self,
        request: Request<pb::GetMemberMetricsRequest>,
    ) -> Result<Response<pb::GetMemberMetricsResponse>, Status> {
        let viewer = caller(&request)?.clone();
        let body = request.into_inner();
        let member: fedmesh_core::MemberId =
            body.member_id
                .parse()
                .map_err(|e: fedmesh_core::IdentityError| {
                    ServiceError::invalid("member_id", e.to_string())
                })?;
        if self
            .store
            .get_node(member.as_str())
            .map_err(ServiceError::from)?
            .is_none()
        {
            return Err(ServiceError::no_member(member.as_str()).into());
        }
        let default_calendar = calendar_of(&pb::Offer::default());
        let month = match body.month {
            None => figures::current_month(&default_calendar),
            Some(_) => month_field("month", body.month.as_ref())?,
        };
        let mut provided = Vec::new();
        let mut subscribed = Vec::new();
        let all = self.store.catalogue_offers().map_err(ServiceError::from)?;
        for offer in all.into_iter().filter_map(|c| c.offer) {
            let tenancies = self.tenancies(&offer.offer_id)?;
            let mine: Vec<&pb::Subscription> = tenancies
                .iter()
                .filter(|s| s.subscriber_member_id == member.as_str())
                .collect();
            let is_provider = offer.provider_member_id == member.as_str()
                && offer.status != pb::OfferStatus::Withdrawn as i32;
            if !is_provider && mine.is_empty() {
                continue;
            }
            let records = figures::month_usage(&self.store, &offer.offer_id, month)
                .map_err(ServiceError::from)?;
            if is_provider {
                let cal = calendar_of(&offer);
                let metrics = match self.report(&offer.offer_id, month)?.and_then(|r| r.metrics) {
                    Some(closed) => closed,
                    None => figures::month_metrics(&records, &tenancies, month, &cal),
                };
                provided.push(pb::ProvidedOffer {
                    offer_id: offer.offer_id.clone(),
                    service_name: offer.service_name.clone(),
                    metrics: Some(metrics),
                });
            }
            // Who is a tenant of what is the member's own (and the consortium's) to read.
            let shown = viewer.is_consortium() || viewer.member() == Some(&member);
            for tenancy in mine.into_iter().filter(|_| shown) {
                let aggregates = usage::aggregate(
                    records
                        .iter()
                        .filter(|r| r.subscription_id == tenancy.subscription_id),
                );
                let figure = |metric: &str, sum: bool| {
                    aggregates
                        .iter()
                        .find(|a| a.metric == metric)
                        .map_or(0, |a| {
                            (if sum { a.sum_value } else { a.last_value }).round() as i64
                        })
                };
                subscribed.push(pb::SubscribedOffer {
                    subscription_id: tenancy.subscription_id.clone(),
                    offer_id: offer.offer_id.clone(),
                    provider_member_id: offer.provider_member_id.clone(),
                    state: tenancy.state,
                    user_count: figure("active_users", false),
                    storage_bytes: figure("storage_bytes", false),
                    request_count: figure("requests", true),
                });
            }
        }
        Ok(Response::new(pb::GetMemberMetricsResponse {
            member_id: member.to_string(),
            month: Some(month.to_proto()),
            provided,
            subscribed,
        }))
    }

    async fn get_incident_statistics(
        &self,
        request: Request<pb::GetIncidentStatisticsRequest>,
    ) -> Result<Response<pb::GetIncidentStatisticsResponse>, Status> {
        let body = request.into_inner();
        let month: Month = month_field("month", body.month.as_ref())?;
        let offers = self
            .offers(&body.offer_id)?
            .iter()
            .map(|offer| match self.report(&offer.offer_id, month)? {
                Some(pb::MonthlyReport {
                    incidents: Some(closed),
                    ..
                }) => Ok(closed),
                _ => Ok(figures::incident_statistics(&self.store, offer, month)?),
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        Ok(Response::new(pb::GetIncidentStatisticsResponse { offers }))
    }

    async fn list_open_incidents(
        &self,
        request: Request<pb::ListOpenIncidentsRequest>,
    ) -> Result<Response<pb::ListOpenIncidentsResponse>, Status> {
        let viewer = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 100, 1000)?;
        let after = page_after(&body.page_token, |t| t.starts_with("INC-"))?;
        let at = figures::now();
        let offers: std::collections::HashMap<String, figures::ClockRules> = self
            .offers(&body.offer_id)?
            .iter()
            .map(|o| (o.offer_id.clone(), figures::ClockRules::of(o)))
            .collect();
        // One page read from the store (not every incident of every offer), its clocks
        // computed with each offer's calendar.
        let incidents = self
            .store
            .list_incidents(after, size + 1, |i| {
                offers.contains_key(&i.offer_id)
                    && party_or_consortium(&viewer, &i.provider_member_id, &i.subscriber_member_id)
                    && fedmesh_core::incident::is_open(i)
                    && i.escalation_level >= body.min_escalation_level
            })
            .map_err(ServiceError::from)?
            .into_iter()
            .filter_map(|mut i| {
                i.sla_clocks = offers.get(&i.offer_id)?.clocks(&i, at);
                i.events.clear();
                Some(i)
            })
            .collect();
        let (incidents, next_page_token) =
            bounded_page(incidents, size, self.store.max_entry_bytes(), |i| {
                i.incident_id.clone()
            });
        Ok(Response::new(pb::ListOpenIncidentsResponse {
            incidents,
            next_page_token,
        }))
    }

    async fn get_sla_compliance(
        &self,
        request: Request<pb::GetSlaComplianceRequest>,
    ) -> Result<Response<pb::GetSlaComplianceResponse>, Status> {
        let body = request.into_inner();
        let month: Month = month_field("month", body.month.as_ref())?;
        let offers = self
            .offers(&body.offer_id)?
            .iter()
            .map(|offer| match self.report(&offer.offer_id, month)? {
                Some(pb::MonthlyReport {
                    compliance: Some(closed),
                    ..
                }) => Ok(closed),
                _ => Ok(figures::sla_compliance(&self.store, offer, month)?),
            })
            .collect::<Result<Vec<_>, ServiceError>>()?;
        Ok(Response::new(pb::GetSlaComplianceResponse { offers }))
    }
}
