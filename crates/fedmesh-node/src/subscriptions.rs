//! `SubscriptionService`, provider side: a subscriber member's node requests a tenancy on one
//! of this node's offers; this member's admins decide and run the lifecycle; each party reads
//! only what concerns it (anything else answers `NOT_FOUND`, as an unknown id would).
//!
//! Every write carries the caller's request id: a retry returns the result of the first
//! attempt and never creates a second tenant.

use fedmesh_core::subscription::{self, Action, Decision};
use fedmesh_core::text::{self, Lines};
use fedmesh_core::{Identity, MemberId, Role};
use fedmesh_grpc::error::{bounded_page, page_after, page_size};
use fedmesh_grpc::{ServiceError, caller};
use fedmesh_proto::pb;
use fedmesh_store::Store;

use crate::outbox::Forwarder;
use tonic::{Request, Response, Status};

/// The service.
#[derive(Debug, Clone)]
pub struct SubscriptionApi {
    store: Store,
    member: MemberId,
    forwarder: Forwarder,
}

impl SubscriptionApi {
    /// The subscriptions of `member`'s node; `forwarder` carries this member's own requests to
    /// providers.
    pub fn new(store: Store, member: MemberId, forwarder: Forwarder) -> Self {
        Self {
            store,
            member,
            forwarder,
        }
    }

    /// This member's admin asks for a tenancy on another member's offer: forwarded to the
    /// provider's node now, or queued.
    async fn request_as_subscriber(
        &self,
        identity: &Identity,
        body: pb::RequestSubscriptionRequest,
    ) -> Result<pb::RequestSubscriptionResponse, ServiceError> {
        let key = request_key(identity, "RequestSubscription", &body.request_id)?;
        let provider = fedmesh_core::offer::provider_of(&body.offer_id).ok_or_else(|| {
            ServiceError::invalid("offer_id", "not an offer id (<member>.<service_id>)")
        })?;
        if provider == self.member {
            return Err(ServiceError::FailedPrecondition(
                "a member cannot subscribe to its own offer".into(),
            ));
        }
        let mirrored = |request_id: &str| -> Result<Option<pb::Subscription>, ServiceError> {
            Ok(self
                .store
                .list_subscriptions("", 1, |s| {
                    s.request_id == request_id && s.subscriber_member_id == self.member.as_str()
                })?
                .pop())
        };
        let queued = pb::RequestSubscriptionResponse {
            subscription: Some(pb::Subscription {
                offer_id: body.offer_id.clone(),
                provider_member_id: provider.to_string(),
                subscriber_member_id: self.member.to_string(),
                state: pb::SubscriptionState::Requested as i32,
                user_count: body.user_count,
                contact_email: body.contact_email.clone(),
                accepted_terms_version: body.accepted_terms_version.clone(),
                pilot: body.pilot,
                request_id: body.request_id.clone(),
                ..Default::default()
            }),
            queued: true,
        };
        if self.store.request_record(&key)?.is_some() {
            // A retry: the tenancy as delivered since, the provider's refusal, or still queued.
            if let Some(subscription) = mirrored(&body.request_id)? {
                return Ok(pb::RequestSubscriptionResponse {
                    subscription: Some(subscription),
                    queued: false,
                });
            }
            if let Some((code, message)) = self
                .forwarder
                .refusal(provider.as_str(), &body.request_id)?
            {
                return Err(ServiceError::Peer {
                    member: provider.to_string(),
                    code,
                    message,
                });
            }
            return Ok(queued);
        }
        let forwarded = pb::RequestSubscriptionRequest {
            provider_member_id: provider.to_string(),
            ..body.clone()
        };
        match self
            .forwarder
            .send_or_queue(
                provider.as_str(),
                "RequestSubscription",
                &forwarded,
                identity,
            )
            .await?
        {
            Some(subscription) => {
                self.store
                    .set_request_record(&key, &subscription.subscription_id)?;
                Ok(pb::RequestSubscriptionResponse {
                    subscription: Some(subscription),
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

    /// A change this member's admin asks of one of its tenancies on another member's offer.
    async fn forward_change<M: prost::Message>(
        &self,
        identity: &Identity,
        subscription_id: &str,
        rpc: &str,
        request: &M,
    ) -> Result<(pb::Subscription, bool), ServiceError> {
        let current = self.find(identity, subscription_id)?;
        if current.provider_member_id == self.member.as_str() {
            return Err(ServiceError::PermissionDenied(format!(
                "{subscription_id} is a tenancy of another member on your offer; its subscriber changes it"
            )));
        }
        Ok(
            match self
                .forwarder
                .send_or_queue(&current.provider_member_id, rpc, request, identity)
                .await?
            {
                Some(subscription) => (subscription, false),
                None => (current, true),
            },
        )
    }
}

fn now() -> prost_types::Timestamp {
    fedmesh_core::clock::now_timestamp()
}

/// Checks a client request id and makes the key of its idempotency record.
pub(crate) fn request_key(
    caller: &Identity,
    rpc: &str,
    request_id: &str,
) -> Result<Vec<u8>, ServiceError> {
    let valid = !request_id.is_empty()
        && request_id.len() <= 64
        && request_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid {
        return Err(ServiceError::invalid(
            "request_id",
            "required: 1 to 64 characters among letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(format!("{}/{rpc}/{request_id}", caller.to_uri()).into_bytes())
}

fn reason(field_value: &str) -> Result<&str, ServiceError> {
    if field_value.chars().count() > 2000 {
        return Err(ServiceError::invalid("reason", "at most 2000 characters"));
    }
    text::check("reason", field_value, Lines::One)?;
    Ok(field_value)
}

/// Whether `caller` may see `subscription` on `local`'s node: `local`'s admins (the provider
/// of its own offers' tenancies, the subscriber of its copies of its tenancies elsewhere), or
/// the subscriber member's node. Anything else is treated as not existing.
pub(crate) fn visible(
    caller: &Identity,
    local: &MemberId,
    subscription: &pb::Subscription,
) -> bool {
    match caller.role() {
        Role::Admin => caller.member() == Some(local),
        Role::Node => caller
            .member()
            .is_some_and(|m| m.as_str() == subscription.subscriber_member_id),
        Role::Agent | Role::Coordinator | Role::Operator => false,
    }
}

/// Tenancy `id` on `local`'s node if `caller` may see it; archived, `FAILED_PRECONDITION`
/// saying so to whoever could see it; otherwise — whether it exists or not — the one
/// `NOT_FOUND` of an unknown id. Every handler that takes a subscription id
/// starts here, before any other lookup or check on the tenancy.
pub(crate) fn find_visible(
    store: &Store,
    caller: &Identity,
    local: &MemberId,
    id: &str,
) -> Result<pb::Subscription, ServiceError> {
    if let Some(subscription) = store
        .get_subscription(id)?
        .filter(|s| visible(caller, local, s))
    {
        return Ok(subscription);
    }
    let archived = crate::archived::answer(store, caller, local, pb::EntityKind::Subscription, id)?;
    Err(archived.unwrap_or_else(|| ServiceError::no_subscription(id)))
}

impl SubscriptionApi {
    fn visible(&self, caller: &Identity, subscription: &pb::Subscription) -> bool {
        visible(caller, &self.member, subscription)
    }

    fn find(&self, caller: &Identity, id: &str) -> Result<pb::Subscription, ServiceError> {
        find_visible(&self.store, caller, &self.member, id)
    }

    /// What a journaled write made, or — when an earlier attempt of the same request already
    /// applied it — that subscription as it is now (`None` revision: nothing new to flush).
    fn first_result(
        &self,
        caller: &Identity,
        written: Result<(pb::Subscription, u64), fedmesh_store::WriteError<ServiceError>>,
    ) -> Result<(pb::Subscription, Option<u64>), ServiceError> {
        match written {
            Ok((subscription, revision)) => Ok((subscription, Some(revision))),
            Err(fedmesh_store::WriteError::Repeated(id)) => Ok((self.find(caller, &id)?, None)),
            Err(other) => Err(other.into()),
        }
    }

    /// Applies a lifecycle action by `caller`, idempotently under `request_id`.
    async fn act(
        &self,
        caller: &Identity,
        rpc: &str,
        request_id: &str,
        subscription_id: &str,
        reason_text: &str,
        action: impl FnOnce(&pb::Subscription) -> Result<Action, ServiceError>,
    ) -> Result<pb::Subscription, ServiceError> {
        let key = request_key(caller, rpc, request_id)?;
        let reason_text = reason(reason_text)?;
        // Visible to the caller, or not found (checked again under the lock below).
        self.find(caller, subscription_id)?;
        // A repeat of this request is answered by the store's check under its write lock.
        let actor = fedmesh_grpc::acting::actor(caller).to_uri();
        let actor_member = caller.member().map(ToString::to_string).unwrap_or_default();
        let written = self.store.update_subscription(
            self.member.as_str(),
            subscription_id,
            Some(&key),
            |current, _| {
                let current =
                    current.ok_or_else(|| ServiceError::no_subscription(subscription_id))?;
                // This node runs the lifecycle of its own offers' tenancies only; its
                // copies of this member's tenancies elsewhere follow their providers.
                if current.provider_member_id != self.member.as_str() {
                    return Err(ServiceError::FailedPrecondition(format!(
                        "{subscription_id} is a tenancy on {}'s offer; its provider decides",
                        current.provider_member_id
                    )));
                }
                let action = action(&current)?;
                subscription::transition(
                    &current,
                    action,
                    &actor,
                    &actor_member,
                    reason_text,
                    now(),
                )
                .map_err(|e| ServiceError::FailedPrecondition(e.to_string()))
            },
        );
        let (stored, revision) = self.first_result(caller, written)?;
        if let Some(revision) = revision {
            self.store.journal_durable(revision).await?;
        }
        tracing::info!(subscription = %stored.subscription_id, state = ?stored.state(), by = %actor, "subscription changed");
        Ok(stored)
    }

    /// The retention deadline of a tenancy ending now on `offer_id`.
    fn retention_deadline(&self, offer_id: &str) -> Result<prost_types::Timestamp, ServiceError> {
        let retention = self
            .store
            .get_offer(offer_id)?
            .and_then(|o| o.gdpr)
            .and_then(|g| g.retention_period)
            .map_or(0, |d| d.seconds.max(0));
        let mut deadline = now();
        deadline.seconds = deadline.seconds.saturating_add(retention);
        Ok(deadline)
    }

    fn provider_admin(&self, caller: &Identity) -> Result<(), ServiceError> {
        if caller.role() == Role::Admin && caller.member() == Some(&self.member) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(format!(
                "only {}'s admins decide on its subscriptions",
                self.member
            )))
        }
    }
}

#[tonic::async_trait]
impl pb::subscription_service_server::SubscriptionService for SubscriptionApi {
    async fn request_subscription(
        &self,
        request: Request<pb::RequestSubscriptionRequest>,
    ) -> Result<Response<pb::RequestSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        if identity.role() == Role::Admin {
            return Ok(Response::new(
                self.request_as_subscriber(&identity, body).await?,
            ));
        }
        let Some(subscriber) = identity
            .member()
            .filter(|_| identity.role() == Role::Node)
            .cloned()
        else {
            return Err(ServiceError::PermissionDenied(
                "subscribers' nodes request tenancies".into(),
            )
            .into());
        };
        let key = request_key(&identity, "RequestSubscription", &body.request_id)?;
        let offer = self
            .store
            .get_offer(&body.offer_id)
            .map_err(ServiceError::from)?
            .ok_or_else(|| ServiceError::no_offer(&body.offer_id))?;
        let actor = fedmesh_grpc::acting::actor(&identity).to_uri();
        let written =
            self.store
                .update_subscription(self.member.as_str(), "", Some(&key), |_, revision| {
                    let tenants = self
                        .store
                        .list_subscriptions("", usize::MAX, |s| {
                            s.offer_id == offer.offer_id && subscription::occupies_capacity(s)
                        })
                        .map_err(ServiceError::from)?
                        .len();
                    let decision = subscription::decide(&offer, &subscriber, &body, tenants)
                        .map_err(ServiceError::from)?;
                    // One tenancy per subscriber and offer at a time: a second one would share its
                    // tenant id and data.
                    if let Some(live) = self
                        .store
                        .list_subscriptions("", 1, |s| {
                            s.offer_id == offer.offer_id
                                && s.subscriber_member_id == subscriber.as_str()
                                && (subscription::occupies_capacity(s)
                                    || s.state() == pb::SubscriptionState::Requested)
                        })
                        .map_err(ServiceError::from)?
                        .pop()
                    {
                        return Err(ServiceError::FailedPrecondition(format!(
                            "{subscriber} already has tenancy {} on offer {}; cancel it or wait for its end",
                            live.subscription_id, offer.offer_id
                        )));
                    }
                    let now = now();
                    let requested = pb::Subscription {
                        subscription_id: format!("{}.s{revision}", self.member),
                        offer_id: offer.offer_id.clone(),
                        provider_member_id: self.member.to_string(),
                        subscriber_member_id: subscriber.to_string(),
                        state: pb::SubscriptionState::Requested as i32,
                        user_count: body.user_count,
                        contact_email: body.contact_email.clone(),
                        accepted_terms_version: body.accepted_terms_version.clone(),
                        pilot: body.pilot,
                        request_id: body.request_id.clone(),
                        create_time: Some(now),
                        update_time: Some(now),
                        history: vec![pb::SubscriptionStateChange {
                            from_state: pb::SubscriptionState::Unspecified as i32,
                            to_state: pb::SubscriptionState::Requested as i32,
                            change_time: Some(now),
                            actor: actor.clone(),
                            actor_member_id: subscriber.to_string(),
                            reason: String::new(),
                        }],
                        ..Default::default()
                    };
                    Ok::<_, ServiceError>(match decision {
                        Decision::Wait => requested,
                        Decision::Approve => subscription::transition(
                            &requested,
                            Action::Approve {
                                tenant_id: subscriber.to_string(),
                                tenant_url: fedmesh_core::offer::tenant_url(
                                    &offer,
                                    subscriber.as_str(),
                                ),
                            },
                            &format!("policy of offer {}", offer.offer_id),
                            self.member.as_str(),
                            "approved automatically by the offer's policy",
                            now,
                        )
                        .map_err(|e| ServiceError::FailedPrecondition(e.to_string()))?,
                    })
                });
        let (stored, revision) = self.first_result(&identity, written)?;
        if let Some(revision) = revision {
            self.store
                .journal_durable(revision)
                .await
                .map_err(ServiceError::from)?;
        }
        tracing::info!(subscription = %stored.subscription_id, offer = %stored.offer_id, subscriber = %subscriber, state = ?stored.state(), "subscription requested");
        Ok(Response::new(pb::RequestSubscriptionResponse {
            subscription: Some(stored),
            queued: false,
        }))
    }

    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::GetSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        let subscription = self.find(&identity, &request.into_inner().subscription_id)?;
        Ok(Response::new(pb::GetSubscriptionResponse {
            subscription: Some(subscription),
        }))
    }

    async fn list_subscriptions(
        &self,
        request: Request<pb::ListSubscriptionsRequest>,
    ) -> Result<Response<pb::ListSubscriptionsResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        let size = page_size(body.page_size, 50, 500)?;
        let after = page_after(&body.page_token, |t| t.contains('.'))?;
        fedmesh_core::filter::check_enum_filter::<pb::SubscriptionState>("states", &body.states)
            .map_err(|(field, message)| ServiceError::invalid(field, message))?;
        let subscriptions = self
            .store
            .list_subscriptions(after, size + 1, |s| {
                self.visible(&identity, s)
                    && (body.offer_id.is_empty() || s.offer_id == body.offer_id)
                    && (body.subscriber_member_id.is_empty()
                        || s.subscriber_member_id == body.subscriber_member_id)
                    && (body.states.is_empty() || body.states.contains(&s.state))
            })
            .map_err(ServiceError::from)?;
        let (subscriptions, next_page_token) =
            bounded_page(subscriptions, size, self.store.max_entry_bytes(), |s| {
                s.subscription_id.clone()
            });
        Ok(Response::new(pb::ListSubscriptionsResponse {
            subscriptions,
            next_page_token,
        }))
    }

    async fn approve_subscription(
        &self,
        request: Request<pb::ApproveSubscriptionRequest>,
    ) -> Result<Response<pb::ApproveSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        self.provider_admin(&identity)?;
        let body = request.into_inner();
        if body.tenant_url.len() > 2000
            || !(body.tenant_url.is_empty() || body.tenant_url.starts_with("https://"))
        {
            return Err(ServiceError::invalid("tenant_url", "an https:// URL").into());
        }
        // The subscriber's people read both.
        text::check("tenant_url", &body.tenant_url, Lines::One).map_err(ServiceError::from)?;
        text::check("tenant_id", &body.tenant_id, Lines::One).map_err(ServiceError::from)?;
        let stored = self
            .act(
                &identity,
                "ApproveSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |current| {
                    let tenant_id = if body.tenant_id.is_empty() {
                        current.subscriber_member_id.clone()
                    } else {
                        body.tenant_id.clone()
                    };
                    let offer = self.store.get_offer(&current.offer_id)?.ok_or_else(|| {
                        ServiceError::FailedPrecondition(format!("offer {} no longer exists", current.offer_id))
                    })?;
                    // Capacity holds for manual approvals too.
                    let max = offer.capacity.map_or(0, |c| c.max_tenants);
                    let tenants = self
                        .store
                        .list_subscriptions("", usize::MAX, |s| {
                            s.offer_id == offer.offer_id && subscription::occupies_capacity(s)
                        })?
                        .len();
                    if tenants >= usize::try_from(max).unwrap_or(0) {
                        return Err(ServiceError::FailedPrecondition(format!(
                            "offer {} is full ({max} tenants); free a place or raise its capacity first",
                            offer.offer_id
                        )));
                    }
                    // Without an explicit URL, the offer's template provisions one.
                    let tenant_url = if body.tenant_url.is_empty() {
                        fedmesh_core::offer::tenant_url(&offer, &tenant_id)
                    } else {
                        body.tenant_url.clone()
                    };
                    Ok(Action::Approve {
                        tenant_id,
                        tenant_url,
                    })
                },
            )
            .await?;
        Ok(Response::new(pb::ApproveSubscriptionResponse {
            subscription: Some(stored),
        }))
    }

    async fn reject_subscription(
        &self,
        request: Request<pb::RejectSubscriptionRequest>,
    ) -> Result<Response<pb::RejectSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        self.provider_admin(&identity)?;
        let body = request.into_inner();
        let stored = self
            .act(
                &identity,
                "RejectSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |_| Ok(Action::Reject),
            )
            .await?;
        Ok(Response::new(pb::RejectSubscriptionResponse {
            subscription: Some(stored),
        }))
    }

    async fn suspend_subscription(
        &self,
        request: Request<pb::SuspendSubscriptionRequest>,
    ) -> Result<Response<pb::SuspendSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        self.provider_admin(&identity)?;
        let body = request.into_inner();
        if body.reason.trim().is_empty() {
            return Err(
                ServiceError::invalid("reason", "required when suspending a tenant").into(),
            );
        }
        let stored = self
            .act(
                &identity,
                "SuspendSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |_| Ok(Action::Suspend),
            )
            .await?;
        Ok(Response::new(pb::SuspendSubscriptionResponse {
            subscription: Some(stored),
        }))
    }

    async fn resume_subscription(
        &self,
        request: Request<pb::ResumeSubscriptionRequest>,
    ) -> Result<Response<pb::ResumeSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        self.provider_admin(&identity)?;
        let body = request.into_inner();
        let stored = self
            .act(
                &identity,
                "ResumeSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |_| Ok(Action::Resume),
            )
            .await?;
        Ok(Response::new(pb::ResumeSubscriptionResponse {
            subscription: Some(stored),
        }))
    }

    async fn terminate_subscription(
        &self,
        request: Request<pb::TerminateSubscriptionRequest>,
    ) -> Result<Response<pb::TerminateSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        self.provider_admin(&identity)?;
        let body = request.into_inner();
        let stored = self
            .act(
                &identity,
                "TerminateSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |current| {
                    if body.confirm_data_deleted {
                        Ok(Action::ConfirmDeleted)
                    } else {
                        Ok(Action::Terminate {
                            retention_deadline: self.retention_deadline(&current.offer_id)?,
                        })
                    }
                },
            )
            .await?;
        Ok(Response::new(pb::TerminateSubscriptionResponse {
            subscription: Some(stored),
            queued: false,
        }))
    }

    async fn change_users(
        &self,
        request: Request<pb::ChangeUsersRequest>,
    ) -> Result<Response<pb::ChangeUsersResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        if identity.role() == Role::Admin {
            let (subscription, queued) = self
                .forward_change(&identity, &body.subscription_id, "ChangeUsers", &body)
                .await?;
            return Ok(Response::new(pb::ChangeUsersResponse {
                subscription: Some(subscription),
                queued,
            }));
        }
        let key = request_key(&identity, "ChangeUsers", &body.request_id)?;
        let current = self.find(&identity, &body.subscription_id)?;
        let max = self
            .store
            .get_offer(&current.offer_id)
            .map_err(ServiceError::from)?
            .and_then(|o| o.capacity)
            .map_or(0, |c| c.max_users_per_tenant);
        let actor = fedmesh_grpc::acting::actor(&identity).to_uri();
        let written = self.store.update_subscription(
            self.member.as_str(),
            &body.subscription_id,
            Some(&key),
            |current, _| {
                let current =
                    current.ok_or_else(|| ServiceError::no_subscription(&body.subscription_id))?;
                subscription::change_users(
                    &current,
                    body.user_count,
                    max,
                    &actor,
                    reason(&body.reason)?,
                    now(),
                )
                .map_err(ServiceError::from)
            },
        );
        let (stored, revision) = self.first_result(&identity, written)?;
        if let Some(revision) = revision {
            self.store
                .journal_durable(revision)
                .await
                .map_err(ServiceError::from)?;
        }
        Ok(Response::new(pb::ChangeUsersResponse {
            subscription: Some(stored),
            queued: false,
        }))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> Result<Response<pb::CancelSubscriptionResponse>, Status> {
        let identity = caller(&request)?.clone();
        let body = request.into_inner();
        if identity.role() == Role::Admin {
            let (subscription, queued) = self
                .forward_change(
                    &identity,
                    &body.subscription_id,
                    "CancelSubscription",
                    &body,
                )
                .await?;
            return Ok(Response::new(pb::CancelSubscriptionResponse {
                subscription: Some(subscription),
                queued,
            }));
        }
        let stored = self
            .act(
                &identity,
                "CancelSubscription",
                &body.request_id,
                &body.subscription_id,
                &body.reason,
                |current| {
                    if identity.role() != Role::Node {
                        return Err(ServiceError::PermissionDenied(
                            "the subscriber cancels, through its node".into(),
                        ));
                    }
                    match current.state() {
                        pb::SubscriptionState::Requested => Ok(Action::Withdraw),
                        _ => Ok(Action::Terminate {
                            retention_deadline: self.retention_deadline(&current.offer_id)?,
                        }),
                    }
                },
            )
            .await?;
        Ok(Response::new(pb::CancelSubscriptionResponse {
            subscription: Some(stored),
            queued: false,
        }))
    }
}
