//! `OfferService`: a member's admin publishes, updates and withdraws its own offers; the
//! federation reads them (and replicates them through the journal).

use fedmesh_core::MemberId;
use fedmesh_core::offer::{self, provider_of};
use fedmesh_grpc::ServiceError;
use fedmesh_grpc::error::{page_after, page_size};
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
}

fn now() -> prost_types::Timestamp {
    std::time::SystemTime::now().into()
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
            .ok_or_else(|| ServiceError::NotFound(format!("offer {offer_id} not found")))?;
        Ok(Response::new(pb::GetOfferResponse { offer: Some(offer) }))
    }

    async fn list_offers(
        &self,
        request: Request<pb::ListOffersRequest>,
    ) -> Result<Response<pb::ListOffersResponse>, Status> {
        let request = request.into_inner();
        let size = page_size(request.page_size, 50, 500)?;
        let after = page_after(&request.page_token, |t| provider_of(t).is_some())?;
        for (i, status) in request.statuses.iter().enumerate() {
            if !matches!(pb::OfferStatus::try_from(*status), Ok(s) if s != pb::OfferStatus::Unspecified)
            {
                return Err(ServiceError::invalid(
                    format!("statuses[{i}]"),
                    format!("unknown status {status}"),
                )
                .into());
            }
        }
        let mut offers = self
            .store
            .list_offers(after, size + 1, |o| {
                (request.statuses.is_empty() || request.statuses.contains(&o.status))
                    && (request.category.is_empty() || request.category == o.category)
            })
            .map_err(ServiceError::from)?;
        let next_page_token = if offers.len() > size {
            offers.truncate(size);
            offers
                .last()
                .map(|o| o.offer_id.clone())
                .unwrap_or_default()
        } else {
            String::new()
        };
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
        let (stored, revision) = self
            .store
            .update_offer(
                self.member.as_str(),
                &request.offer_id,
                |current, revision| {
                    let current = current.ok_or_else(|| {
                        ServiceError::NotFound(format!("offer {} not found", request.offer_id))
                    })?;
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
}
