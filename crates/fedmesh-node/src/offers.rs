//! `OfferService`: a member's admin publishes, updates and withdraws its own offers; the
//! federation reads them (and replicates them through the journal).

use fedmesh_core::offer::{self, provider_of};
use fedmesh_core::text::{self, Lines};
use fedmesh_core::{MemberId, Role};
use fedmesh_grpc::error::{bounded_page, page_after, page_size};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct OfferApi {
    store: Store,
    member: MemberId,
}

impl OfferApi {
    /// The offers of `member`'s node.
    pub fn new(store: Store, member: MemberId) -> Self {
        Self { store, member }
    }

    /// Checks an offer id names an offer of this node's member.
    fn local_offer_id(&self, offer_id: &str) -> Result<(), ServiceError> {
        match provider_of(offer_id) {
            None => Err(ServiceError::invalid(
                "offer_id",
                "not an offer id (<member>.<service_id>)",
            )),
            Some(provider) if provider != self.member => Err(ServiceError::NotFound(format!(
                "offer {offer_id} is not on this node; {provider}'s node serves it"
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Applies `change` to this member's maintenance window `maintenance_id` (journaled, under
    /// the request key `key`), then to its offer's calendar. A repeated request answers the
    /// window as it stands.
    async fn change_maintenance(
        &self,
        maintenance_id: &str,
        key: &[u8],
        change: impl FnOnce(
            &pb::MaintenanceWindow,
            fedmesh_core::span::Secs,
        )
            -> Result<pb::MaintenanceWindow, fedmesh_core::maintenance::Refused>,
    ) -> Result<pb::MaintenanceWindow, ServiceError> {
        let now = fedmesh_grpc::figures::now();
        let member = self.member.as_str();
        let written =
            self.store
                .update_maintenance(member, maintenance_id, Some(key), |current, _| {
                    // A tenant's node holds its providers' windows too: not its own to change.
                    let current = current
                        .filter(|w| w.provider_member_id == member)
                        .ok_or_else(|| ServiceError::no_maintenance(maintenance_id))?;
                    Ok::<_, ServiceError>(change(&current, now)?)
                });
        let window = match written {
            Ok((window, revision)) => {
                self.store.journal_durable(revision).await?;
                window
            }
            Err(fedmesh_store::WriteError::Repeated(id)) => self
                .store
                .get_maintenance(&id)?
                .ok_or_else(|| ServiceError::no_maintenance(&id))?,
            Err(other) => return Err(other.into()),
        };
        self.list_in_calendar(&window).await?;
        Ok(window)
    }

    /// Makes `window`'s offer list the window as it is stored now, so that availability
    /// excludes what it finally covers: its last period, nothing once cancelled. It reads the
    /// stored window under the journal's lock, so that the last of concurrent changes wins
    /// in the offer too.
    async fn list_in_calendar(&self, window: &pb::MaintenanceWindow) -> Result<(), ServiceError> {
        let at = fedmesh_grpc::figures::now();
        let id = &window.maintenance_id;
        let written = self.store.update_offer(
            self.member.as_str(),
            &window.offer_id,
            |current, revision| {
                let mut offer = current.ok_or_else(|| ServiceError::no_offer(&window.offer_id))?;
                let stored = self.store.get_maintenance(id).map_err(ServiceError::from)?;
                let calendar = offer
                    .engagement
                    .get_or_insert_with(Default::default)
                    .calendar
                    .get_or_insert_with(fedmesh_core::calendar::default_proto);
                let before = calendar.maintenance_windows.clone();
                // Windows ended more than 400 days ago no longer matter to any report.
                calendar.maintenance_windows.retain(|w| {
                    &w.maintenance_id != id
                        && w.period
                            .as_ref()
                            .and_then(|p| p.end_time.as_ref())
                            .is_some_and(|t| t.seconds > at - 400 * 86_400)
                });
                if let Some(stored) = stored.filter(|w| !fedmesh_core::maintenance::cancelled(w)) {
                    calendar.maintenance_windows.push(stored);
                }
                calendar
                    .maintenance_windows
                    .sort_by(|a, b| a.maintenance_id.cmp(&b.maintenance_id));
                if calendar.maintenance_windows == before {
                    return Err(CalendarWrite::Unchanged);
                }
                offer.etag = revision.to_string();
                offer.update_time = Some(now());
                Ok::<_, CalendarWrite>(offer)
            },
        );
        match written {
            Ok((_, revision)) => Ok(self.store.journal_durable(revision).await?),
            Err(fedmesh_store::WriteError::Rejected(CalendarWrite::Unchanged)) => Ok(()),
            Err(fedmesh_store::WriteError::Rejected(CalendarWrite::Refused(e))) => Err(e),
            Err(fedmesh_store::WriteError::Repeated(_)) => Ok(()),
            Err(fedmesh_store::WriteError::Store(e)) => Err(e.into()),
        }
    }
}

/// Why an offer's calendar was not written.
enum CalendarWrite {
    /// It lists the window as it stands already.
    Unchanged,
    Refused(ServiceError),
}

impl From<ServiceError> for CalendarWrite {
    fn from(error: ServiceError) -> Self {
        Self::Refused(error)
    }
}

fn now() -> prost_types::Timestamp {
    fedmesh_core::clock::now_timestamp()
}

#[tonic::async_trait]
impl pb::offer_service_server::OfferService for OfferApi {
    async fn publish_offer(
        &self,
        request: Request<pb::PublishOfferRequest>,
    ) -> Result<Response<pb::PublishOfferResponse>, Status> {
        let request = request.into_inner();
        let incoming = request
            .offer
            .ok_or_else(|| ServiceError::invalid("offer", "required"))?;
        // Publishing for another member is impersonation, not a malformed offer.
        let claimed = (!incoming.provider_member_id.is_empty())
            .then(|| incoming.provider_member_id.clone())
            .or_else(|| provider_of(&incoming.offer_id).map(|m| m.to_string()));
        if let Some(claimed) = claimed.filter(|c| c != self.member.as_str()) {
            return Err(ServiceError::PermissionDenied(format!(
                "{}'s admins publish only {}'s offers, not {claimed}'s",
                self.member, self.member
            ))
            .into());
        }
        let valid = offer::validate(incoming, &self.member).map_err(ServiceError::from)?;
        let offer_id = offer::offer_id(&self.member, &valid.get().service_id);
        let mut created = false;
        let (stored, revision) = self
            .store
            .update_offer(self.member.as_str(), &offer_id, |current, revision| {
                let published = offer::publish(
                    current.as_ref(),
                    valid,
                    &self.member,
                    &request.etag,
                    revision.to_string(),
                    now(),
                )?;
                created = published.created;
                Ok::<_, offer::LifecycleError>(published.offer)
            })
            .map_err(ServiceError::from)?;
        self.store
            .journal_durable(revision)
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(offer = %stored.offer_id, revision, created, "offer published");
        Ok(Response::new(pb::PublishOfferResponse {
            offer: Some(stored),
            created,
        }))
    }

    async fn get_offer(
        &self,
        request: Request<pb::GetOfferRequest>,
    ) -> Result<Response<pb::GetOfferResponse>, Status> {
        let offer_id = request.into_inner().offer_id;
        self.local_offer_id(&offer_id)?;
        let offer = self
            .store
            .get_offer(&offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::no_offer(&offer_id))?;
        Ok(Response::new(pb::GetOfferResponse { offer: Some(offer) }))
    }

    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        let request = request.into_inner();
        let size = page_size(request.page_size, 50, 500)?;
        let after = page_after(&request.page_token, |t| provider_of(t).is_some())?;
        fedmesh_core::filter::check_enum_filter::<pb::OfferStatus>("statuses", &request.statuses)
            .map_err(|(field, message)| ServiceError::invalid(field, message))?;
        let offers = self
            .store
            .list_offers(after, size + 1, |o| {
                (request.statuses.is_empty() || request.statuses.contains(&o.status))
                    && (request.category.is_empty() || request.category == o.category)
            })
            .map_err(ServiceError::from)?;
        let (offers, next_page_token) =
            bounded_page(offers, size, self.store.max_entry_bytes(), |o| {
                o.offer_id.clone()
            });
        Ok(Response::new(pb::ListOffersResponse {
            offers,
            next_page_token,
        }))
    }

    async fn withdraw_offer(
        &self,
        request: Request<pb::WithdrawOfferRequest>,
    ) -> Result<Response<pb::WithdrawOfferResponse>, Status> {
        let request = request.into_inner();
        self.local_offer_id(&request.offer_id)?;
        if request.reason.chars().count() > 2000 {
            return Err(ServiceError::invalid("reason", "at most 2000 characters").into());
        }
        text::check("reason", &request.reason, Lines::One).map_err(ServiceError::from)?;
        let (stored, revision) = self
            .store
            .update_offer(
                self.member.as_str(),
                &request.offer_id,
                |current, revision| {
                    let current =
                        current.ok_or_else(|| ServiceError::no_offer(&request.offer_id))?;
                    Ok::<_, ServiceError>(offer::withdraw(
                        &current,
                        &request.etag,
                        revision.to_string(),
                        now(),
                    )?)
                },
            )
            .map_err(ServiceError::from)?;
        self.store
            .journal_durable(revision)
            .await
            .map_err(ServiceError::from)?;
        tracing::info!(offer = %stored.offer_id, revision, reason = %request.reason, "offer withdrawn");
        Ok(Response::new(pb::WithdrawOfferResponse {
            offer: Some(stored),
        }))
    }

    async fn announce_maintenance(
        &self,
        request: Request<pb::AnnounceMaintenanceRequest>,
    ) -> Result<Response<pb::AnnounceMaintenanceResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key =
            crate::subscriptions::request_key(&identity, "AnnounceMaintenance", &body.request_id)?;
        self.local_offer_id(&body.offer_id)?;
        let period = fedmesh_core::maintenance::check(
            body.period.as_ref(),
            &body.summary,
            &body.description,
        )
        .map_err(ServiceError::from)?;
        let at = fedmesh_grpc::figures::now();
        if period.end <= at {
            return Err(ServiceError::invalid("period.end_time", "is already past").into());
        }
        // A window announced now cannot excuse downtime that already happened.
        if period.start < at - fedmesh_core::maintenance::CLOCK_SKEW {
            return Err(ServiceError::invalid(
                "period.start_time",
                "is already past: a window covers what is to come (start it now at the earliest)",
            )
            .into());
        }
        let offer = self
            .store
            .get_offer(&body.offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::no_offer(&body.offer_id))?;
        if offer.status == pb::OfferStatus::Withdrawn as i32 {
            return Err(ServiceError::FailedPrecondition(format!(
                "offer {} is withdrawn",
                offer.offer_id
            ))
            .into());
        }
        let member = self.member.to_string();
        let written =
            self.store
                .update_maintenance(self.member.as_str(), "", Some(&key), |_, revision| {
                    let (y, m, d) = fedmesh_core::calendar::civil_from_days(at.div_euclid(86_400));
                    Ok::<_, ServiceError>(pb::MaintenanceWindow {
                        maintenance_id: format!("MW-{y:04}{m:02}{d:02}-{member}-{revision}"),
                        offer_id: body.offer_id.clone(),
                        provider_member_id: member.clone(),
                        period: body.period,
                        summary: body.summary.clone(),
                        description: body.description.clone(),
                        announce_time: Some(now()),
                        announced_by: identity.to_string(),
                        status: pb::MaintenanceStatus::Scheduled as i32,
                        changes: Vec::new(),
                    })
                });
        let window = match written {
            Ok((window, revision)) => {
                self.store
                    .journal_durable(revision)
                    .await
                    .map_err(ServiceError::from)?;
                window
            }
            Err(fedmesh_store::WriteError::Repeated(id)) => self
                .store
                .get_maintenance(&id)
                .map_err(ServiceError::from)?
                .ok_or_else(|| ServiceError::no_maintenance(&id))?,
            Err(other) => return Err(ServiceError::from(other).into()),
        };
        // The offer's calendar lists it, so that availability excludes it (done again on a
        // retry, in case the first attempt stopped in between).
        self.list_in_calendar(&window).await?;
        tracing::info!(maintenance = %window.maintenance_id, offer = %window.offer_id, "maintenance announced");
        Ok(Response::new(pb::AnnounceMaintenanceResponse {
            maintenance_window: Some(window),
        }))
    }

    async fn reschedule_maintenance(
        &self,
        request: Request<pb::RescheduleMaintenanceRequest>,
    ) -> Result<Response<pb::RescheduleMaintenanceResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key = crate::subscriptions::request_key(
            &identity,
            "RescheduleMaintenance",
            &body.request_id,
        )?;
        let by = identity.to_string();
        let window = self
            .change_maintenance(&body.maintenance_id, &key, |current, now| {
                fedmesh_core::maintenance::reschedule(
                    current,
                    body.period.as_ref(),
                    &body.reason,
                    &by,
                    now,
                )
            })
            .await?;
        tracing::info!(maintenance = %window.maintenance_id, offer = %window.offer_id, "maintenance rescheduled");
        Ok(Response::new(pb::RescheduleMaintenanceResponse {
            maintenance_window: Some(window),
        }))
    }

    async fn cancel_maintenance(
        &self,
        request: Request<pb::CancelMaintenanceRequest>,
    ) -> Result<Response<pb::CancelMaintenanceResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let key =
            crate::subscriptions::request_key(&identity, "CancelMaintenance", &body.request_id)?;
        let by = identity.to_string();
        let window = self
            .change_maintenance(&body.maintenance_id, &key, |current, now| {
                fedmesh_core::maintenance::cancel(current, &body.reason, &by, now)
            })
            .await?;
        tracing::info!(maintenance = %window.maintenance_id, offer = %window.offer_id, "maintenance cancelled");
        Ok(Response::new(pb::CancelMaintenanceResponse {
            maintenance_window: Some(window),
        }))
    }

    async fn list_maintenance(
        &self,
        request: Request<pb::ListMaintenanceRequest>,
    ) -> Result<Response<pb::ListMaintenanceResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 50, 500)?;
        let after = page_after(&body.page_token, |t| t.starts_with("MW-"))?;
        let overlapping = match &body.overlapping {
            None => None,
            Some(_) => Some(
                fedmesh_core::calendar::closed_period("overlapping", body.overlapping.as_ref())
                    .map_err(ServiceError::from)?,
            ),
        };
        // Another member's node sees the windows of offers its member is a tenant of.
        let tenant_of = |offer_id: &str| -> bool {
            let Some(member) = identity.member() else {
                return false;
            };
            self.store
                .list_subscriptions("", 1, |s| {
                    s.offer_id == offer_id
                        && s.subscriber_member_id == member.as_str()
                        && fedmesh_core::usage::is_served(s.state())
                })
                .is_ok_and(|found| !found.is_empty())
        };
        let windows = self
            .store
            .list_maintenance(after, size + 1, |w| {
                let visible = match identity.role() {
                    Role::Admin | Role::Coordinator => true,
                    Role::Node => tenant_of(&w.offer_id),
                    Role::Agent | Role::Operator => false,
                };
                let overlaps = overlapping.is_none_or(|o| {
                    w.period.as_ref().is_some_and(|p| {
                        p.start_time.as_ref().is_some_and(|t| t.seconds < o.end)
                            && p.end_time.as_ref().is_some_and(|t| t.seconds > o.start)
                    })
                });
                visible && overlaps && (body.offer_id.is_empty() || w.offer_id == body.offer_id)
            })
            .map_err(ServiceError::from)?;
        let (windows, next_page_token) =
            bounded_page(windows, size, self.store.max_entry_bytes(), |w| {
                w.maintenance_id.clone()
            });
        Ok(Response::new(pb::ListMaintenanceResponse {
            maintenance_windows: windows,
            next_page_token,
        }))
    }
}
