//! Tenant subscriptions: what a provider decides on a request (its approval policy and its
//! capacity), and the lifecycle state machine both institutions follow.
//!
//! ```text
//! REQUESTED ──approve──► ACTIVE ◄──resume── SUSPENDED
//!     │                    │ └──suspend──────►  │
//!     ├──reject──► REJECTED │                   │
//!     └──cancel──► TERMINATED ◄──confirm── TERMINATING ◄──terminate/cancel── ACTIVE, SUSPENDED
//! ```

use fedmesh_proto::pb;
use pb::SubscriptionState as State;

use crate::identity::MemberId;
use crate::offer::FieldError;
use crate::text::Lines;

/// A change asked of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The provider approves a request and provisions the tenant.
    Approve {
        /// The tenant's id at the provider.
        tenant_id: String,
        /// The tenant-facing URL.
        tenant_url: String,
    },
    /// The provider rejects a request.
    Reject,
    /// The provider suspends an active tenant.
    Suspend,
    /// The provider resumes a suspended tenant.
    Resume,
    /// The tenancy ends: data is exported and deleted by the retention deadline.
    Terminate {
        /// The deadline (GDPR retention after termination).
        retention_deadline: prost_types::Timestamp,
    },
    /// The provider confirms the tenant's data is deleted: the tenancy is over.
    ConfirmDeleted,
    /// The subscriber withdraws a pending request.
    Withdraw,
}

impl Action {
    fn name(&self) -> &'static str {
        match self {
            Action::Approve { .. } => "approve",
            Action::Reject => "reject",
            Action::Suspend => "suspend",
            Action::Resume => "resume",
            Action::Terminate { .. } => "terminate",
            Action::ConfirmDeleted => "confirm the deletion of",
            Action::Withdraw => "withdraw",
        }
    }
}

/// A transition the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subscription {id} is {state}; cannot {action} it")]
pub struct IllegalTransition {
    /// The subscription.
    pub id: String,
    /// Its current state, e.g. `ACTIVE`.
    pub state: String,
    /// What was asked.
    pub action: &'static str,
}

fn state_name(state: i32) -> String {
    State::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("SUBSCRIPTION_STATE_")
                .to_owned()
        })
        .unwrap_or_else(|_| format!("state {state}"))
}

/// Applies `action` by `actor` (an identity URI) at `now`; records the change in the history.
pub fn transition(
    subscription: &pb::Subscription,
    action: Action,
    actor: &str,
    actor_member: &str,
    reason: &str,
    now: prost_types::Timestamp,
) -> Result<pb::Subscription, IllegalTransition> {
    let from = State::try_from(subscription.state).unwrap_or(State::Unspecified);
    let illegal = || IllegalTransition {
        id: subscription.subscription_id.clone(),
        state: state_name(subscription.state),
        action: action.name(),
    };
    let mut next = subscription.clone();
    let to = match (&action, from) {
        (
            Action::Approve {
                tenant_id,
                tenant_url,
            },
            State::Requested,
        ) => {
            next.tenant_id = tenant_id.clone();
            next.tenant_url = tenant_url.clone();
            State::Active
        }
        (Action::Reject, State::Requested) => State::Rejected,
        (Action::Suspend, State::Active) => State::Suspended,
        (Action::Resume, State::Suspended) => State::Active,
        (Action::Terminate { retention_deadline }, State::Active | State::Suspended) => {
            next.data_retention_deadline = Some(*retention_deadline);
            State::Terminating
        }
        (Action::ConfirmDeleted, State::Terminating) => State::Terminated,
        (Action::Withdraw, State::Requested) => State::Terminated,
        _ => return Err(illegal()),
    };
    next.state = to as i32;
    next.reason = reason.to_owned();
    next.update_time = Some(now);
    next.history.push(pb::SubscriptionStateChange {
        from_state: from as i32,
        to_state: to as i32,
        change_time: Some(now),
        actor: actor.to_owned(),
        actor_member_id: actor_member.to_owned(),
        reason: reason.to_owned(),
    });
    Ok(next)
}

/// What a member's removal from the federation does to a tenancy that involves it, as
/// provider or as subscriber: a pending request is rejected, a running tenancy moves to
/// TERMINATING (its data kept until `retention_deadline`). `None` when the tenancy does not
/// involve `member` or has already ended.
pub fn offboard(
    subscription: &pb::Subscription,
    member: &str,
    actor: &str,
    reason: &str,
    retention_deadline: prost_types::Timestamp,
    now: prost_types::Timestamp,
) -> Option<pb::Subscription> {
    if subscription.provider_member_id != member && subscription.subscriber_member_id != member {
        return None;
    }
    let action = match State::try_from(subscription.state) {
        Ok(State::Requested) => Action::Reject,
        Ok(State::Active | State::Suspended) => Action::Terminate { retention_deadline },
        _ => return None,
    };
    let reason = format!("member {member} was removed from the federation: {reason}");
    transition(subscription, action, actor, "", &reason, now).ok()
}

/// Changes a tenancy's user quota (`max` is the offer's users per tenant), recording it in the
/// history. Ended tenancies keep their quota.
pub fn change_users(
    subscription: &pb::Subscription,
    users: i32,
    max: i32,
    actor: &str,
    reason: &str,
    now: prost_types::Timestamp,
) -> Result<pb::Subscription, RequestRefused> {
    if users < 1 || users > max {
        return Err(field(
            "user_count",
            format!("must be between 1 and the offer's {max} users per tenant"),
        ));
    }
    let state = State::try_from(subscription.state).unwrap_or(State::Unspecified);
    if !matches!(state, State::Requested | State::Active | State::Suspended) {
        return Err(RequestRefused::Closed(format!(
            "subscription {} is {}; its quota can no longer change",
            subscription.subscription_id,
            state_name(subscription.state)
        )));
    }
    let mut next = subscription.clone();
    next.history.push(pb::SubscriptionStateChange {
        from_state: subscription.state,
        to_state: subscription.state,
        change_time: Some(now),
        actor: actor.to_owned(),
        actor_member_id: subscription.subscriber_member_id.clone(),
        reason: format!(
            "users {} -> {users}{}{reason}",
            subscription.user_count,
            if reason.is_empty() { "" } else { ": " }
        ),
    });
    next.user_count = users;
    next.update_time = Some(now);
    Ok(next)
}

/// Whether a subscription holds one of the offer's tenant places.
pub fn occupies_capacity(subscription: &pb::Subscription) -> bool {
    matches!(
        State::try_from(subscription.state),
        Ok(State::Active | State::Suspended | State::Terminating)
    )
}

/// What the provider does with a new request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve at once (policy and capacity allow it).
    Approve,
    /// Keep it `REQUESTED` until a provider admin decides.
    Wait,
}

/// Why a request cannot even be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefused {
    /// A field of the request is invalid.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The offer does not take this tenant now (closed, full, not for pilots).
    #[error("{0}")]
    Closed(String),
}

fn field(name: &str, message: impl Into<String>) -> RequestRefused {
    RequestRefused::Invalid(FieldError {
        field: name.to_owned(),
        message: message.into(),
    })
}

/// Checks a request against the offer and decides it: `tenants` is the number of
/// subscriptions occupying the offer's capacity now.
pub fn decide(
    offer: &pb::Offer,
    subscriber: &MemberId,
    request: &pb::RequestSubscriptionRequest,
    tenants: usize,
) -> Result<Decision, RequestRefused> {
    let capacity = offer.capacity.unwrap_or_default();
    if request.user_count < 1 {
        return Err(field("user_count", "at least 1"));
    }
    if request.user_count > capacity.max_users_per_tenant {
        return Err(field(
            "user_count",
            format!(
                "the offer takes at most {} users per tenant",
                capacity.max_users_per_tenant
            ),
        ));
    }
    let email_ok = request.contact_email.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !request.contact_email.contains(char::is_whitespace)
    });
    if !email_ok || request.contact_email.len() > 254 {
        return Err(field("contact_email", "an email address is required"));
    }
    // The provider's people read it.
    crate::text::check("contact_email", &request.contact_email, Lines::One)?;
    if request.accepted_terms_version != offer.terms_version {
        return Err(field(
            "accepted_terms_version",
            format!(
                "the offer's terms are version {}; read and accept them",
                offer.terms_version
            ),
        ));
    }
    if offer.provider_member_id == subscriber.as_str() {
        return Err(RequestRefused::Closed(
            "a member cannot subscribe to its own offer".into(),
        ));
    }
    match pb::OfferStatus::try_from(offer.status) {
        Ok(pb::OfferStatus::Available) => {}
        Ok(pb::OfferStatus::Pilot) if request.pilot && offer.pilot_tenants_accepted => {}
        Ok(pb::OfferStatus::Pilot) => {
            return Err(RequestRefused::Closed(format!(
                "offer {} is a pilot; request it as a pilot tenant (--pilot){}",
                offer.offer_id,
                if offer.pilot_tenants_accepted {
                    ""
                } else {
                    ", which it does not take now"
                }
            )));
        }
        _ => {
            return Err(RequestRefused::Closed(format!(
                "offer {} is closed to new tenants",
                offer.offer_id
            )));
        }
    }
    if request.pilot && !offer.pilot_tenants_accepted {
        return Err(RequestRefused::Closed(format!(
            "offer {} takes no pilot tenants",
            offer.offer_id
        )));
    }
    let full = tenants >= usize::try_from(capacity.max_tenants).unwrap_or(0);
    let policy = pb::SubscriptionApprovalPolicy::try_from(offer.approval_policy)
        .unwrap_or(pb::SubscriptionApprovalPolicy::Manual);
    let automatic = match policy {
        pb::SubscriptionApprovalPolicy::AutoWithinCapacity => true,
        pb::SubscriptionApprovalPolicy::AutoListedMembers => offer
            .auto_approved_member_ids
            .iter()
            .any(|m| m == subscriber.as_str()),
        _ => false,
    };
    match (automatic, full) {
        (_, true) if policy == pb::SubscriptionApprovalPolicy::AutoWithinCapacity => {
            Err(RequestRefused::Closed(format!(
                "offer {} is full ({} tenants)",
                offer.offer_id, capacity.max_tenants
            )))
        }
        (true, false) => Ok(Decision::Approve),
        _ => Ok(Decision::Wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(seconds: i64) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos: 0 }
    }

    fn requested() -> pb::Subscription {
        pb::Subscription {
            subscription_id: "s1".into(),
            state: State::Requested as i32,
            ..Default::default()
        }
    }

    fn apply(s: &pb::Subscription, action: Action) -> Result<pb::Subscription, IllegalTransition> {
        transition(
            s,
            action,
            "spiffe://f/member/unistra/admin/ops",
            "unistra",
            "because",
            ts(1),
        )
    }

    #[test]
    fn the_lifecycle_runs_and_records_its_history() {
        let active = apply(
            &requested(),
            Action::Approve {
                tenant_id: "t1".into(),
                tenant_url: "https://x".into(),
            },
        )
        .unwrap();
        assert_eq!(active.state(), State::Active);
        assert_eq!(active.tenant_id, "t1");
        let suspended = apply(&active, Action::Suspend).unwrap();
        let active = apply(&suspended, Action::Resume).unwrap();
        let terminating = apply(
            &active,
            Action::Terminate {
                retention_deadline: ts(100),
            },
        )
        .unwrap();
        assert_eq!(terminating.data_retention_deadline, Some(ts(100)));
        let terminated = apply(&terminating, Action::ConfirmDeleted).unwrap();
        assert_eq!(terminated.state(), State::Terminated);
        let states: Vec<(State, State)> = terminated
            .history
            .iter()
            .map(|c| (c.from_state(), c.to_state()))
            .collect();
        assert_eq!(
            states,
            [
                (State::Requested, State::Active),
                (State::Active, State::Suspended),
                (State::Suspended, State::Active),
                (State::Active, State::Terminating),
                (State::Terminating, State::Terminated),
            ]
        );
        assert!(
            terminated
                .history
                .iter()
                .all(|c| c.actor_member_id == "unistra" && c.reason == "because")
        );
    }

    #[test]
    fn illegal_transitions_name_the_current_state() {
        let err = apply(&requested(), Action::Suspend).unwrap_err();
        assert_eq!(
            err.to_string(),
            "subscription s1 is REQUESTED; cannot suspend it"
        );
        let rejected = apply(&requested(), Action::Reject).unwrap();
        for action in [
            Action::Resume,
            Action::Reject,
            Action::Withdraw,
            Action::ConfirmDeleted,
        ] {
            let err = apply(&rejected, action).unwrap_err();
            assert_eq!(err.state, "REJECTED");
        }
        assert_eq!(
            apply(&requested(), Action::Withdraw).unwrap().state(),
            State::Terminated
        );
    }

    fn offer(policy: pb::SubscriptionApprovalPolicy) -> pb::Offer {
        pb::Offer {
            offer_id: "rennes2.collab".into(),
            provider_member_id: "rennes2".into(),
            status: pb::OfferStatus::Available as i32,
            capacity: Some(pb::Capacity {
                max_tenants: 2,
                max_users_per_tenant: 100,
            }),
            approval_policy: policy as i32,
            auto_approved_member_ids: vec!["unistra".into()],
            terms_version: "2026-01".into(),
            ..Default::default()
        }
    }

    fn request(users: i32) -> pb::RequestSubscriptionRequest {
        pb::RequestSubscriptionRequest {
            request_id: "r1".into(),
            offer_id: "rennes2.collab".into(),
            user_count: users,
            contact_email: "dsi@unistra.example".into(),
            accepted_terms_version: "2026-01".into(),
            ..Default::default()
        }
    }

    #[test]
    fn policies_and_capacity_decide() {
        use pb::SubscriptionApprovalPolicy::*;
        let unistra: MemberId = "unistra".parse().unwrap();
        let rouen: MemberId = "rouen".parse().unwrap();
        assert_eq!(
            decide(&offer(Manual), &unistra, &request(10), 0),
            Ok(Decision::Wait)
        );
        assert_eq!(
            decide(&offer(AutoListedMembers), &unistra, &request(10), 0),
            Ok(Decision::Approve)
        );
        assert_eq!(
            decide(&offer(AutoListedMembers), &rouen, &request(10), 0),
            Ok(Decision::Wait)
        );
        assert_eq!(
            decide(&offer(AutoWithinCapacity), &rouen, &request(10), 1),
            Ok(Decision::Approve)
        );
        assert!(matches!(
            decide(&offer(AutoWithinCapacity), &rouen, &request(10), 2),
            Err(RequestRefused::Closed(_))
        ));
        // A full offer still records manual requests: the provider may free a place.
        assert_eq!(
            decide(&offer(Manual), &rouen, &request(10), 2),
            Ok(Decision::Wait)
        );
    }

    #[test]
    fn bad_requests_are_refused_with_the_field() {
        let unistra: MemberId = "unistra".parse().unwrap();
        let o = offer(pb::SubscriptionApprovalPolicy::Manual);
        let err = decide(&o, &unistra, &request(101), 0).unwrap_err();
        assert!(
            matches!(&err, RequestRefused::Invalid(f) if f.field == "user_count"),
            "{err}"
        );
        let mut r = request(1);
        r.accepted_terms_version = "2025".into();
        assert!(
            matches!(decide(&o, &unistra, &r, 0), Err(RequestRefused::Invalid(f)) if f.field == "accepted_terms_version")
        );
        let mut r = request(1);
        r.contact_email = "nobody".into();
        assert!(
            matches!(decide(&o, &unistra, &r, 0), Err(RequestRefused::Invalid(f)) if f.field == "contact_email")
        );
        // The provider's people read it: no escape sequence (ESC, or C1's CSI).
        for hostile in [
            "dsi@unistra.example\u{1b}[2J",
            "dsi@unistra.example\u{9b}2J",
        ] {
            r.contact_email = hostile.into();
            let err = decide(&o, &unistra, &r, 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                "contact_email: must not contain control characters"
            );
        }
        let rennes2: MemberId = "rennes2".parse().unwrap();
        assert!(matches!(
            decide(&o, &rennes2, &request(1), 0),
            Err(RequestRefused::Closed(_))
        ));
        let mut deprecated = o.clone();
        deprecated.status = pb::OfferStatus::Deprecated as i32;
        assert!(matches!(
            decide(&deprecated, &unistra, &request(1), 0),
            Err(RequestRefused::Closed(_))
        ));
        let mut pilot = o;
        pilot.status = pb::OfferStatus::Pilot as i32;
        assert!(matches!(
            decide(&pilot, &unistra, &request(1), 0),
            Err(RequestRefused::Closed(_))
        ));
    }

    #[test]
    fn a_removed_members_tenancies_end_and_others_stay() {
        let at = prost_types::Timestamp {
            seconds: 1_800_000_000,
            nanos: 0,
        };
        let deadline = prost_types::Timestamp {
            seconds: 1_802_592_000,
            nanos: 0,
        };
        let mut tenancy = pb::Subscription {
            subscription_id: "s1".into(),
            provider_member_id: "unistra".into(),
            subscriber_member_id: "rouen".into(),
            state: State::Active as i32,
            ..Default::default()
        };
        let ended = offboard(&tenancy, "rouen", "coord", "left", deadline, at).unwrap();
        assert_eq!(ended.state(), State::Terminating);
        assert_eq!(ended.data_retention_deadline, Some(deadline));
        assert!(
            ended.reason.contains("rouen was removed"),
            "{}",
            ended.reason
        );
        assert_eq!(ended.history.last().unwrap().actor, "coord");
        // The provider's removal ends it too; an unrelated member's does nothing.
        assert!(offboard(&tenancy, "unistra", "coord", "left", deadline, at).is_some());
        assert!(offboard(&tenancy, "lille", "coord", "left", deadline, at).is_none());
        tenancy.state = State::Requested as i32;
        assert_eq!(
            offboard(&tenancy, "rouen", "coord", "left", deadline, at)
                .unwrap()
                .state(),
            State::Rejected
        );
        for done in [State::Terminating, State::Terminated, State::Rejected] {
            tenancy.state = done as i32;
            assert!(offboard(&tenancy, "rouen", "coord", "left", deadline, at).is_none());
        }
    }
}
