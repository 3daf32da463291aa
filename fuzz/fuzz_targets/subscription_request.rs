//! `SubscriptionService` requests replayed on one tenancy, as the provider's node applies them.
//!
//! The input is a sequence of steps (`fedmesh_fuzz::Steps`). The first is a
//! `RequestSubscriptionRequest`: the offer id (`provider_of`), `subscription::decide` against
//! the fixture offer (the selector sets how many tenants it already has), and the tenancy the
//! node records, approved at once when the decision says so. Each later step's selector picks
//! the RPC, whose request message follows: approve, reject, suspend, resume, terminate,
//! cancel (`subscription::transition`) or change users (`subscription::change_users`).
#![no_main]

use fedmesh_core::offer;
use fedmesh_core::subscription::{self, Action, Decision};
use fedmesh_fuzz::{NOW, PROVIDER, Steps, admin_uri, subscriber, ts};
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;

/// Most changes replayed on one tenancy.
const MAX_STEPS: usize = 24;

fuzz_target!(|data: &[u8]| {
    let mut steps = Steps::new(data);
    let tenants = steps.selector().unwrap_or(0) % 32;
    let Some(request) = steps.message::<pb::RequestSubscriptionRequest>() else {
        return;
    };
    let _ = offer::provider_of(&request.offer_id);
    let stored = fedmesh_fuzz::offer();
    let member = subscriber();
    let Ok(decision) = subscription::decide(stored, &member, &request, usize::from(tenants)) else {
        return;
    };
    let requested = pb::Subscription {
        subscription_id: format!("{PROVIDER}.s7"),
        offer_id: stored.offer_id.clone(),
        provider_member_id: PROVIDER.into(),
        subscriber_member_id: member.to_string(),
        state: pb::SubscriptionState::Requested as i32,
        user_count: request.user_count,
        contact_email: request.contact_email.clone(),
        accepted_terms_version: request.accepted_terms_version.clone(),
        pilot: request.pilot,
        request_id: request.request_id.clone(),
        create_time: Some(ts(NOW)),
        update_time: Some(ts(NOW)),
        ..Default::default()
    };
    let mut current = match decision {
        Decision::Wait => requested,
        Decision::Approve => {
            let approve = Action::Approve {
                tenant_id: member.to_string(),
                tenant_url: offer::tenant_url(stored, member.as_str()),
            };
            match subscription::transition(&requested, approve, "policy", PROVIDER, "", ts(NOW)) {
                Ok(next) => next,
                Err(_) => return,
            }
        }
    };
    let max_users = stored.capacity.map_or(0, |c| c.max_users_per_tenant);
    let actor = admin_uri(PROVIDER);
    let mut now = NOW;
    for _ in 0..MAX_STEPS {
        let Some(selector) = steps.selector() else {
            break;
        };
        now += 3_600;
        let (action, reason) = match selector % 7 {
            0 => {
                let Some(r) = steps.message::<pb::ApproveSubscriptionRequest>() else {
                    break;
                };
                let tenant_id = if r.tenant_id.is_empty() {
                    current.subscriber_member_id.clone()
                } else {
                    r.tenant_id
                };
                let tenant_url = if r.tenant_url.is_empty() {
                    offer::tenant_url(stored, &tenant_id)
                } else {
                    r.tenant_url
                };
                let approve = Action::Approve {
                    tenant_id,
                    tenant_url,
                };
                (approve, r.reason)
            }
            1 => match steps.message::<pb::RejectSubscriptionRequest>() {
                Some(r) => (Action::Reject, r.reason),
                None => break,
            },
            2 => match steps.message::<pb::SuspendSubscriptionRequest>() {
                Some(r) => (Action::Suspend, r.reason),
                None => break,
            },
            3 => match steps.message::<pb::ResumeSubscriptionRequest>() {
                Some(r) => (Action::Resume, r.reason),
                None => break,
            },
            4 => match steps.message::<pb::TerminateSubscriptionRequest>() {
                Some(r) if r.confirm_data_deleted => (Action::ConfirmDeleted, r.reason),
                Some(r) => (terminate(now), r.reason),
                None => break,
            },
            5 => match steps.message::<pb::CancelSubscriptionRequest>() {
                Some(r) if current.state() == pb::SubscriptionState::Requested => {
                    (Action::Withdraw, r.reason)
                }
                Some(r) => (terminate(now), r.reason),
                None => break,
            },
            _ => {
                let Some(r) = steps.message::<pb::ChangeUsersRequest>() else {
                    break;
                };
                if let Ok(next) = subscription::change_users(
                    &current,
                    r.user_count,
                    max_users,
                    &actor,
                    &r.reason,
                    ts(now),
                ) {
                    current = next;
                }
                continue;
            }
        };
        if let Ok(next) =
            subscription::transition(&current, action, &actor, PROVIDER, &reason, ts(now))
        {
            current = next;
        }
        let _ = subscription::occupies_capacity(&current);
        let _ = fedmesh_core::usage::state_at(&current, now - 1_800);
    }
});

/// Termination with the fixture offer's GDPR retention.
fn terminate(now: i64) -> Action {
    let retention = fedmesh_fuzz::offer()
        .gdpr
        .as_ref()
        .and_then(|g| g.retention_period)
        .map_or(0, |d| d.seconds.max(0));
    Action::Terminate {
        retention_deadline: ts(now.saturating_add(retention)),
    }
}
