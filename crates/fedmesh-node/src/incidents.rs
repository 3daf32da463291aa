//! `IncidentService`: escalation from a subscriber institution's level-1 desk to the
//! provider's single point of contact, with SLA clocks in the provider's service time.
//!
//! - On the subscriber's node, its admins open incidents against offers their member is a
//!   tenant of, and comment, answer, close, reopen or re-prioritize them: each request goes to
//!   the provider's node now, or waits in the durable outbox (`queued`). The provider's copy
//!   is mirrored here (from the answer, then by following the provider's journal).
//! - On the provider's node, the subscriber's node acts for its member, and the provider's
//!   admins acknowledge, assign and move the status. A clock watcher raises at-risk and
//!   breach events; a breach escalates (the coordinator follows the journal).
//! - Every write carries a request id: a retry returns the first result.
//! - Anyone else is answered `NOT_FOUND`, as for an incident that does not exist.

use std::time::Duration;

use fedmesh_core::incident::{self, Action, Party};
use fedmesh_core::span::Secs;
use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::error::{bounded_page, page_after, page_size};
use fedmesh_grpc::figures::{calendar_of, now};
use fedmesh_grpc::stream::{ResponseStream, Stopping, spawn_stream, stopping_status};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::config::IncidentSettings;
use crate::outbox::Forwarder;
use crate::subscriptions::request_key;

/// The most queued openings a `ListIncidents` answer adds to its first page.
const MAX_QUEUED_LISTED: usize = 100;

/// How many open incidents the SLA clock check decodes at a time.
const CLOCK_CHECK_PAGE: usize = 100;

/// The service.
#[derive(Debug, Clone)]
pub struct IncidentApi {
    store: Store,
    member: MemberId,
    node: String,
    forwarder: Forwarder,
    settings: IncidentSettings,
    stopping: Stopping,
}

impl IncidentApi {
    /// The incidents of `member`'s node (whose identity is `node`); `forwarder` carries this
    /// member's own requests to providers; watches end when `stopping` fires.
    pub fn new(
        store: Store,
        member: MemberId,
        node: String,
        forwarder: Forwarder,
        settings: IncidentSettings,
        stopping: Stopping,
    ) -> Self {
        Self {
            store,
            member,
            node,
            forwarder,
            settings,
            stopping,
        }
    }

    fn reopen_within(&self) -> Secs {
        Secs::from(self.settings.reopen_within_days) * 86_400
    }

    /// The offer of an incident: this node's own, or the cached catalogue's copy.
    fn offer(&self, offer_id: &str) -> Option<pb::Offer> {
        if let Ok(Some(offer)) = self.store.get_offer(offer_id) {
            return Some(offer);
        }
        self.store.catalogue_offer(offer_id).ok().flatten()?.offer
    }

    /// The incident with its clocks computed now (kept as stored when the offer is unknown).
    fn with_clocks(&self, mut incident: pb::Incident, at: Secs) -> pb::Incident {
        if let Some(offer) = self.offer(&incident.offer_id) {
            let engagement = offer.engagement.clone().unwrap_or_default();
            incident.sla_clocks = incident::clocks(
                &incident,
                &engagement,
                &calendar_of(&offer),
                at,
                self.settings.at_risk_share,
            );
        }
        incident
    }

    /// Whether `caller` may see `incident` here: this member's admins see all (the provider's
    /// incidents and the mirrors of their own), a subscriber member's node its own.
    fn visible(&self, caller: &Identity, incident: &pb::Incident) -> bool {
        match caller.role() {
            Role::Admin => caller.member() == Some(&self.member),
            Role::Node => caller
                .member()
                .is_some_and(|m| m.as_str() == incident.subscriber_member_id),
            Role::Agent | Role::Coordinator | Role::Operator => false,
        }
    }

    /// What `caller` receives of `incident`.
    fn shaped(&self, caller: &Identity, incident: pb::Incident) -> pb::Incident {
        let incident = self.with_clocks(incident, now());
        if caller.role() == Role::Node {
            incident::redact_for_subscriber(incident)
        } else {
            incident
        }
    }

    /// The size past which an incident's history is full: [`incident::MAX_HISTORY_BYTES`], or
    /// the journal-entry limit less [`incident::ENDING_ROOM`] when that is lower, which leaves
    /// the actions that end a full incident room to be written.
    fn history_limit(&self) -> usize {
        incident::MAX_HISTORY_BYTES.min(
            self.store
                .max_entry_bytes()
                .saturating_sub(incident::ENDING_ROOM),
        )
    }

    /// The incident `id` if `caller` may see it; an archived one is answered as such.
    fn find(&self, caller: &Identity, id: &str) -> Result<pb::Incident, ServiceError> {
        if let Some(incident) = self
            .store
            .get_incident(id)?
            .filter(|i| self.visible(caller, i))
        {
            return Ok(incident);
        }
        let archived = crate::archived::answer(
            &self.store,
            caller,
            &self.member,
            pb::EntityKind::Incident,
            id,
        )?;
        Err(archived.unwrap_or_else(|| ServiceError::no_incident(id)))
    }

    /// Applies `action` to an incident of this node's offers, idempotently under the
    /// caller's `request_id`.
    async fn act_here(
        &self,
        caller: &Identity,
        party: Party,
        rpc: &str,
        request_id: &str,
        incident_id: &str,
        action: Action,
    ) -> Result<pb::Incident, ServiceError> {
        let key = request_key(caller, rpc, request_id)?;
        let at = now();
        // The person behind the call: the subscriber's admin its node acts for, or the caller.
        let actor = fedmesh_grpc::acting::actor(caller).to_string();
        let actor_member = caller.member().map(|m| m.to_string()).unwrap_or_default();
        let written = self.store.update_incident(
            self.member.as_str(),
            incident_id,
            Some(&key),
            |current, _| {
                let current = current
                    .filter(|i| self.visible(caller, i))
                    .ok_or_else(|| ServiceError::no_incident(incident_id))?;
                let next = incident::act(
                    &current,
                    party,
                    &actor,
                    &actor_member,
                    action.clone(),
                    at,
                    self.reopen_within(),
                )?;
                incident::has_room(&next, &action, self.history_limit())?;
                Ok::<_, ServiceError>(self.with_clocks(next, at))
            },
        );
        let incident = match written {
            Ok((incident, revision)) => {
                self.store.journal_durable(revision).await?;
                tracing::info!(incident = %incident.incident_id, rpc, actor = %actor, "incident changed");
                incident
            }
            Err(fedmesh_store::WriteError::Repeated(id)) => self.find(caller, &id)?,
            Err(other) => return Err(other.into()),
        };
        Ok(self.shaped(caller, incident))
    }

    /// A change asked by a party: on this node's own incident, applied here (the caller's
    /// node acting for the subscriber, or this member's admin for the provider); on a mirrored
    /// incident of this member, forwarded to the provider's node (or queued). Returns the
    /// incident and whether the request was queued.
    async fn change<M: prost::Message>(
        &self,
        caller: &Identity,
        rpc: &str,
        request_id: &str,
        incident_id: &str,
        forwarded: &M,
        action: Action,
    ) -> Result<(pb::Incident, bool), ServiceError> {
        let current = self.find(caller, incident_id)?;
        if current.provider_member_id == self.member.as_str() {
            let party = if caller.role() == Role::Admin {
                Party::Provider
            } else {
                Party::Subscriber
            };
            let incident = self
                .act_here(caller, party, rpc, request_id, incident_id, action)
                .await?;
            return Ok((incident, false));
        }
        // This member's own incident on another member's offer.
        if caller.role() != Role::Admin {
            return Err(ServiceError::no_incident(incident_id));
        }
        // Fields and rights are checked here, so that a request that cannot succeed is not
        // queued; the status is the provider's to judge (this copy may lag behind it).
        match incident::act(
            &current,
            Party::Subscriber,
            "",
            "",
            action.clone(),
            now(),
            Secs::MAX / 2,
        ) {
            Err(
                refused @ (incident::Refused::Invalid { .. } | incident::Refused::NotAllowed(_)),
            ) => {
                return Err(refused.into());
            }
            // A history this copy already finds full is full at the provider too (its copy
            // is at least as long, its limit at most MAX_HISTORY_BYTES): refused now rather
            // than queued to be refused later.
            Ok(next) => {
                incident::has_room(&next, &action, incident::MAX_HISTORY_BYTES)?;
            }
            Err(incident::Refused::Status(_)) => {}
        }
        let key = request_key(caller, rpc, request_id)?;
        let delivered = self
            .forwarder
            .send_incident(&current.provider_member_id, rpc, forwarded, caller)
            .await?;
        match delivered {
            Some(incident) => {
                self.store.set_request_record(&key, &incident.incident_id)?;
                Ok((self.shaped(caller, incident), false))
            }
            None => Ok((self.shaped(caller, current), true)),
        }
    }

    /// The incidents this member's admins opened that wait in the outbox for their provider's
    /// node, as provisional incidents marked `queued`, oldest first.
    fn queued_openings(&self) -> Result<Vec<pb::Incident>, fedmesh_store::StoreError> {
        use prost::Message as _;
        Ok(self
            .store
            .outbox()?
            .into_iter()
            .filter(|(_, item)| item.rpc == "OpenIncident")
            .filter_map(|(_, item)| {
                let request = pb::OpenIncidentRequest::decode(item.request.as_slice()).ok()?;
                Some(pb::Incident {
                    request_id: request.request_id,
                    offer_id: request.offer_id,
                    subscription_id: request.subscription_id,
                    provider_member_id: item.provider_member_id,
                    subscriber_member_id: self.member.to_string(),
                    r#type: request.r#type,
                    priority: request.priority,
                    status: pb::IncidentStatus::New as i32,
                    summary: request.summary,
                    description: request.description,
                    reporter: item.acting_for,
                    create_time: Some(prost_types::Timestamp {
                        seconds: item.queued_at,
                        nanos: 0,
                    }),
                    queued: true,
                    ..Default::default()
                })
            })
            .collect())
    }

    /// This member's admin opens an incident on another member's offer: forwarded to the
    /// provider's node now, or queued.
    async fn open_as_subscriber(
        &self,
        caller: &Identity,
        request: pb::OpenIncidentRequest,
    ) -> Result<pb::OpenIncidentResponse, ServiceError> {
        incident::check_open(&request)?;
        let key = request_key(caller, "OpenIncident", &request.request_id)?;
        let provider = fedmesh_core::offer::provider_of(&request.offer_id).ok_or_else(|| {
            ServiceError::invalid("offer_id", "not an offer id (<member>.<service_id>)")
        })?;
        if provider == self.member {
            return Err(ServiceError::FailedPrecondition(
                "incidents are opened by tenants of the offer, not by its provider".into(),
            ));
        }
        let tenancy = self
            .store
            .list_subscriptions("", usize::MAX, |s| {
                s.offer_id == request.offer_id
                    && s.subscriber_member_id == self.member.as_str()
                    && fedmesh_core::usage::is_served(s.state())
                    && (request.subscription_id.is_empty()
                        || s.subscription_id == request.subscription_id)
            })?
            .pop()
            .ok_or_else(|| {
                ServiceError::FailedPrecondition(format!(
                    "{} holds no active tenancy on {}",
                    self.member, request.offer_id
                ))
            })?;
        let mirrored = |request_id: &str| -> Result<Option<pb::Incident>, ServiceError> {
            Ok(self
                .store
                .list_incidents("", usize::MAX, |i| {
                    i.request_id == request_id && i.subscriber_member_id == self.member.as_str()
                })?
                .pop())
        };
        let forwarded = pb::OpenIncidentRequest {
            provider_member_id: provider.to_string(),
            subscription_id: tenancy.subscription_id.clone(),
            ..request.clone()
        };
        let queued = pb::OpenIncidentResponse {
            incident: Some(pb::Incident {
                request_id: request.request_id.clone(),
                offer_id: request.offer_id.clone(),
                subscription_id: tenancy.subscription_id.clone(),
                provider_member_id: provider.to_string(),
                subscriber_member_id: self.member.to_string(),
                r#type: request.r#type,
                priority: request.priority,
                status: pb::IncidentStatus::New as i32,
                summary: request.summary.clone(),
                description: request.description.clone(),
                reporter: caller.to_string(),
                create_time: Some(prost_types::Timestamp {
                    seconds: fedmesh_grpc::figures::now(),
                    nanos: 0,
                }),
                queued: true,
                ..Default::default()
            }),
            queued: true,
        };
        if self.store.request_record(&key)?.is_some() {
            if let Some(incident) = mirrored(&request.request_id)? {
                return Ok(pb::OpenIncidentResponse {
                    incident: Some(self.shaped(caller, incident)),
                    queued: false,
                });
            }
            if let Some((code, message)) = self
                .forwarder
                .refusal(provider.as_str(), &request.request_id)?
            {
                return Err(ServiceError::Peer {
                    member: provider.to_string(),
                    code,
                    message,
                });
            }
            return Ok(queued);
        }
        match self
            .forwarder
            .send_incident(provider.as_str(), "OpenIncident", &forwarded, caller)
            .await?
        {
            Some(incident) => {
                self.store.set_request_record(&key, &incident.incident_id)?;
                Ok(pb::OpenIncidentResponse {
                    incident: Some(self.shaped(caller, incident)),
                    queued: false,
                })
            }
            None => {
                self.store
                    .set_request_record(&key, fedmesh_store::journal::QUEUED)?;
                Ok(queued)
            }
        }
    }

    /// A subscriber member's node opens an incident on one of this node's offers.
    async fn open_as_provider(
        &self,
        caller: &Identity,
        request: pb::OpenIncidentRequest,
    ) -> Result<pb::OpenIncidentResponse, ServiceError> {
        incident::check_open(&request)?;
        let key = request_key(caller, "OpenIncident", &request.request_id)?;
        let subscriber = caller.member().map(|m| m.to_string()).unwrap_or_default();
        let offer = self
            .store
            .get_offer(&request.offer_id)?
            .filter(|o| o.provider_member_id == self.member.as_str())
            .ok_or_else(|| ServiceError::no_offer(&request.offer_id))?;
        let tenancy = self
            .store
            .list_subscriptions("", usize::MAX, |s| {
                s.offer_id == offer.offer_id
                    && s.subscriber_member_id == subscriber
                    && fedmesh_core::usage::is_served(s.state())
                    && (request.subscription_id.is_empty()
                        || s.subscription_id == request.subscription_id)
            })?
            .pop()
            .ok_or_else(|| {
                ServiceError::FailedPrecondition(format!(
                    "{subscriber} holds no active tenancy on {}",
                    offer.offer_id
                ))
            })?;
        let at = now();
        let in_maintenance = self
            .store
            .list_maintenance("", 1, |m| {
                m.offer_id == offer.offer_id
                    && !fedmesh_core::maintenance::cancelled(m)
                    && m.period.as_ref().is_some_and(|p| {
                        p.start_time.as_ref().is_some_and(|t| t.seconds <= at)
                            && p.end_time.as_ref().is_some_and(|t| t.seconds > at)
                    })
            })?
            .pop()
            .map(|m| m.maintenance_id);
        let reporter = fedmesh_grpc::acting::actor(caller).to_string();
        let provider = self.member.to_string();
        let written =
            self.store
                .update_incident(self.member.as_str(), "", Some(&key), |_, revision| {
                    let id = incident::incident_id(&provider, at, revision);
                    let opened =
                        incident::open(&request, &tenancy, id, &reporter, at, in_maintenance);
                    Ok::<_, ServiceError>(self.with_clocks(opened, at))
                });
        let incident = match written {
            Ok((incident, revision)) => {
                self.store.journal_durable(revision).await?;
                tracing::info!(incident = %incident.incident_id, offer = %incident.offer_id, subscriber = %subscriber, priority = incident.priority, "incident opened");
                incident
            }
            Err(fedmesh_store::WriteError::Repeated(id)) => self.find(caller, &id)?,
            Err(other) => return Err(other.into()),
        };
        Ok(pb::OpenIncidentResponse {
            incident: Some(self.shaped(caller, incident)),
            queued: false,
        })
    }

    /// Checks the clocks of this node's open incidents every `interval` until `stop`, raising
    /// each at-risk and breach alert once (a breach escalates).
    pub async fn watch_clocks(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.check_clocks(&self.node).await {
                tracing::error!(%error, "checking incident clocks failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    async fn check_clocks(&self, node: &str) -> Result<(), ServiceError> {
        // A page at a time: the memory a check takes does not grow with the open incidents.
        let mut after = String::new();
        loop {
            let page = self.store.list_incidents(&after, CLOCK_CHECK_PAGE, |i| {
                i.provider_member_id == self.member.as_str() && incident::is_open(i)
            })?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after.clone_from(&last.incident_id);
            let full = page.len() == CLOCK_CHECK_PAGE;
            self.check_page(node, page).await?;
            if !full {
                return Ok(());
            }
        }
    }

    async fn check_page(&self, node: &str, open: Vec<pb::Incident>) -> Result<(), ServiceError> {
        for current in open {
            let at = now();
            let shown = self.with_clocks(current.clone(), at);
            for clock in &shown.sla_clocks {
                let target = clock.target();
                let (breached, kind) = match clock.state() {
                    pb::SlaClockState::Breached => (true, pb::IncidentEventKind::SlaBreached),
                    pb::SlaClockState::AtRisk => (false, pb::IncidentEventKind::SlaAtRisk),
                    _ => continue,
                };
                if clock.stop_time.is_some() || incident::alerted(&shown, kind, target) {
                    continue;
                }
                let written = self.store.update_incident(
                    self.member.as_str(),
                    &current.incident_id,
                    None,
                    |stored, _| {
                        let stored = stored
                            .ok_or_else(|| ServiceError::no_incident(&current.incident_id))?;
                        if incident::alerted(&stored, kind, target) {
                            return Ok(stored);
                        }
                        let next = incident::act(
                            &stored,
                            Party::System,
                            node,
                            self.member.as_str(),
                            Action::ClockAlert { target, breached },
                            at,
                            0,
                        )?;
                        Ok::<_, ServiceError>(self.with_clocks(next, at))
                    },
                );
                match written {
                    Ok((incident, revision)) => {
                        self.store.journal_durable(revision).await?;
                        if breached {
                            tracing::warn!(incident = %incident.incident_id, target = target.as_str_name(), level = incident.escalation_level, "SLA deadline missed: incident escalated");
                        } else {
                            tracing::info!(incident = %incident.incident_id, target = target.as_str_name(), "SLA deadline at risk");
                        }
                    }
                    // One incident too large to write must not stop the other clocks.
                    Err(fedmesh_store::WriteError::Store(
                        e @ fedmesh_store::StoreError::EntryTooLarge { .. },
                    )) => {
                        tracing::error!(incident = %current.incident_id, error = %e, "clock alert not recorded: the incident no longer fits a journal entry");
                    }
                    Err(fedmesh_store::WriteError::Store(e)) => return Err(e.into()),
                    Err(other) => {
                        tracing::warn!(error = %ServiceError::from(other), "clock alert not recorded")
                    }
                }
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl pb::incident_service_server::IncidentService for IncidentApi {
    async fn open_incident(
        &self,
        request: Request<pb::OpenIncidentRequest>,
    ) -> Result<Response<pb::OpenIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let response = match identity.role() {
            Role::Admin => self.open_as_subscriber(&identity, body).await?,
            Role::Node => self.open_as_provider(&identity, body).await?,
            Role::Agent | Role::Coordinator | Role::Operator => {
                return Err(ServiceError::PermissionDenied(
                    "incidents are opened by a member's admin".into(),
                )
                .into());
            }
        };
        Ok(Response::new(response))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let id = request.into_inner().incident_id;
        let incident = self.find(&identity, &id)?;
        Ok(Response::new(pb::GetIncidentResponse {
            incident: Some(self.shaped(&identity, incident)),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 50, 500)?;
        let after = page_after(&body.page_token, |t| t.starts_with("INC-"))?;
        use fedmesh_core::filter::check_enum_filter;
        check_enum_filter::<pb::IncidentStatus>("statuses", &body.statuses)
            .and_then(|()| check_enum_filter::<pb::Priority>("priorities", &body.priorities))
            .and_then(|()| check_enum_filter::<pb::IncidentType>("types", &body.types))
            .map_err(|(field, message)| ServiceError::invalid(field, message))?;
        let keep = |i: &pb::Incident| {
            self.visible(&identity, i)
                && (body.offer_id.is_empty() || i.offer_id == body.offer_id)
                && (body.subscription_id.is_empty() || i.subscription_id == body.subscription_id)
                && (body.statuses.is_empty() || body.statuses.contains(&i.status))
                && (body.priorities.is_empty() || body.priorities.contains(&i.priority))
                && (body.types.is_empty() || body.types.contains(&i.r#type))
        };
        let incidents = self
            .store
            .list_incidents(after, size + 1, keep)
            .map_err(ServiceError::from)?;
        // Lists stay light: the events and comments are in GetIncident and WatchIncident.
        let shown: Vec<pb::Incident> = incidents
            .into_iter()
            .take(size + 1)
            .map(|incident| {
                let mut shown = self.shaped(&identity, incident);
                shown.events.clear();
                shown.comments.clear();
                shown
            })
            .collect();
        // The first page starts with this member's openings still waiting for their provider,
        // within half of the page's bytes, so that the page's own cut falls among stored
        // incidents (which carry the ids page tokens are made of).
        let mut queued = Vec::new();
        if body.page_token.is_empty() {
            let mut bytes = 0;
            queued = self.queued_openings().map_err(ServiceError::from)?;
            queued.retain(|i| keep(i));
            queued.truncate(MAX_QUEUED_LISTED);
            queued.retain(|i| {
                bytes += prost::Message::encoded_len(i);
                bytes <= self.store.max_entry_bytes() / 2
            });
        }
        let shown: Vec<pb::Incident> = queued.iter().cloned().chain(shown).collect();
        let (page, next_page_token) = bounded_page(
            shown,
            size + queued.len(),
            self.store.max_entry_bytes(),
            |i| i.incident_id.clone(),
        );
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents: page,
            next_page_token,
        }))
    }

    async fn acknowledge_incident(
        &self,
        request: Request<pb::AcknowledgeIncidentRequest>,
    ) -> Result<Response<pb::AcknowledgeIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Acknowledge {
            comment: body.comment.clone(),
        };
        let incident = self
            .provider_change(
                &identity,
                "AcknowledgeIncident",
                &body.request_id,
                &body.incident_id,
                action,
            )
            .await?;
        Ok(Response::new(pb::AcknowledgeIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn assign_incident(
        &self,
        request: Request<pb::AssignIncidentRequest>,
    ) -> Result<Response<pb::AssignIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Assign {
            assignee: body.assignee.clone(),
        };
        let incident = self
            .provider_change(
                &identity,
                "AssignIncident",
                &body.request_id,
                &body.incident_id,
                action,
            )
            .await?;
        Ok(Response::new(pb::AssignIncidentResponse {
            incident: Some(incident),
        }))
    }

    async fn set_incident_status(
        &self,
        request: Request<pb::SetIncidentStatusRequest>,
    ) -> Result<Response<pb::SetIncidentStatusResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::SetStatus {
            status: body.status(),
            comment: body.comment.clone(),
            resolution: body.resolution.clone(),
        };
        let incident = self
            .provider_change(
                &identity,
                "SetIncidentStatus",
                &body.request_id,
                &body.incident_id,
                action,
            )
            .await?;
        Ok(Response::new(pb::SetIncidentStatusResponse {
            incident: Some(incident),
        }))
    }

    async fn comment_incident(
        &self,
        request: Request<pb::CommentIncidentRequest>,
    ) -> Result<Response<pb::CommentIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Comment {
            body: body.body.clone(),
            internal: body.internal,
        };
        let (incident, queued) = self
            .change(
                &identity,
                "CommentIncident",
                &body.request_id,
                &body.incident_id,
                &body,
                action,
            )
            .await?;
        Ok(Response::new(pb::CommentIncidentResponse {
            incident: Some(incident),
            queued,
        }))
    }

    async fn answer_incident(
        &self,
        request: Request<pb::AnswerIncidentRequest>,
    ) -> Result<Response<pb::AnswerIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Answer {
            body: body.body.clone(),
        };
        let (incident, queued) = self
            .change(
                &identity,
                "AnswerIncident",
                &body.request_id,
                &body.incident_id,
                &body,
                action,
            )
            .await?;
        Ok(Response::new(pb::AnswerIncidentResponse {
            incident: Some(incident),
            queued,
        }))
    }

    async fn close_incident(
        &self,
        request: Request<pb::CloseIncidentRequest>,
    ) -> Result<Response<pb::CloseIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Close {
            comment: body.comment.clone(),
        };
        let (incident, queued) = self
            .change(
                &identity,
                "CloseIncident",
                &body.request_id,
                &body.incident_id,
                &body,
                action,
            )
            .await?;
        Ok(Response::new(pb::CloseIncidentResponse {
            incident: Some(incident),
            queued,
        }))
    }

    async fn reopen_incident(
        &self,
        request: Request<pb::ReopenIncidentRequest>,
    ) -> Result<Response<pb::ReopenIncidentResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::Reopen {
            reason: body.reason.clone(),
        };
        let (incident, queued) = self
            .change(
                &identity,
                "ReopenIncident",
                &body.request_id,
                &body.incident_id,
                &body,
                action,
            )
            .await?;
        Ok(Response::new(pb::ReopenIncidentResponse {
            incident: Some(incident),
            queued,
        }))
    }

    async fn change_priority(
        &self,
        request: Request<pb::ChangePriorityRequest>,
    ) -> Result<Response<pb::ChangePriorityResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let action = Action::ChangePriority {
            priority: body.priority(),
            reason: body.reason.clone(),
        };
        let (incident, queued) = self
            .change(
                &identity,
                "ChangePriority",
                &body.request_id,
                &body.incident_id,
                &body,
                action,
            )
            .await?;
        Ok(Response::new(pb::ChangePriorityResponse {
            incident: Some(incident),
            queued,
        }))
    }

    async fn watch_incident(
        &self,
        request: Request<pb::WatchIncidentRequest>,
    ) -> Result<Response<ResponseStream<pb::WatchIncidentResponse>>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        // Checked before the stream starts: an unknown id is NOT_FOUND, not an empty stream.
        self.find(&identity, &body.incident_id)?;
        let api = self.clone();
        let mut stopping = self.stopping.clone();
        Ok(Response::new(spawn_stream(move |sink| async move {
            let mut journal = api.store.watch_journal();
            let mut sent = body.since_sequence;
            loop {
                let incident = match api.find(&identity, &body.incident_id) {
                    Ok(incident) => api.shaped(&identity, incident),
                    Err(error) => {
                        sink.fail(error.into()).await;
                        return;
                    }
                };
                let fresh: Vec<pb::IncidentEvent> = incident
                    .events
                    .into_iter()
                    .filter(|e| e.sequence > sent)
                    .collect();
                for event in fresh {
                    sent = event.sequence;
                    if !sink
                        .send(pb::WatchIncidentResponse { event: Some(event) })
                        .await
                    {
                        return;
                    }
                }
                tokio::select! {
                    changed = journal.changed() => if changed.is_err() { return },
                    // Without heartbeats, only this notices a client that went away.
                    () = sink.closed() => return,
                    () = stopping.wait() => {
                        sink.fail(stopping_status()).await;
                        return;
                    }
                }
            }
        })))
    }
}

impl IncidentApi {
    /// A change only the provider's admins make, on this node's own incidents.
    async fn provider_change(
        &self,
        caller: &Identity,
        rpc: &str,
        request_id: &str,
        incident_id: &str,
        action: Action,
    ) -> Result<pb::Incident, ServiceError> {
        let current = self.find(caller, incident_id)?;
        if current.provider_member_id != self.member.as_str() {
            return Err(ServiceError::PermissionDenied(format!(
                "{incident_id} is an incident of {} on {}'s offer: only the provider's admins do this",
                self.member, current.provider_member_id
            )));
        }
        self.act_here(
            caller,
            Party::Provider,
            rpc,
            request_id,
            incident_id,
            action,
        )
        .await
    }
}
