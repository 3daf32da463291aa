//! `IncidentService` requests replayed on one incident, as the provider's node applies them.
//!
//! The input is a sequence of steps (`fedmesh_fuzz::Steps`). The first is an
//! `OpenIncidentRequest`: `incident::check_open`, then `incident::open` on a tenancy of the
//! fixture offer. Each later step's selector picks the acting party (provider's admin,
//! subscriber, the node itself) and the RPC, whose request message follows; the request
//! becomes an `incident::Action` as the node builds it and goes through `incident::act`,
//! an hour after the previous step. After every accepted change the SLA clocks are computed
//! (`incident::clocks` in the offer's calendar), as are the redacted copies other parties get.
#![no_main]

use fedmesh_core::incident::{self, Action, Party};
use fedmesh_fuzz::{
    NOW, PROVIDER, SUBSCRIBER, Steps, admin_uri, calendar, engagement, node_uri, tenancies,
};
use fedmesh_proto::pb;
use libfuzzer_sys::fuzz_target;

/// Most changes replayed on one incident.
const MAX_STEPS: usize = 24;
/// The node's default `incidents.reopen_within_days`, in seconds.
const REOPEN_WITHIN: i64 = 10 * 86_400;
/// The node's default `incidents.at_risk_share`.
const AT_RISK_SHARE: f64 = 0.75;

fuzz_target!(|data: &[u8]| {
    let mut steps = Steps::new(data);
    let _ = steps.selector();
    let Some(open) = steps.message::<pb::OpenIncidentRequest>() else {
        return;
    };
    if incident::check_open(&open).is_err() {
        return;
    }
    let id = incident::incident_id(PROVIDER, NOW, 1);
    let mut current = incident::open(
        &open,
        &tenancies()[0],
        id,
        &admin_uri(SUBSCRIBER),
        NOW,
        None,
    );
    let mut now = NOW;
    for _ in 0..MAX_STEPS {
        let Some(selector) = steps.selector() else {
            break;
        };
        let (party, actor, actor_member) = match selector % 3 {
            0 => (Party::Provider, admin_uri(PROVIDER), PROVIDER),
            1 => (Party::Subscriber, node_uri(SUBSCRIBER), SUBSCRIBER),
            _ => (Party::System, node_uri(PROVIDER), PROVIDER),
        };
        let Some(action) = action(selector / 3, &mut steps) else {
            break;
        };
        now += 3_600;
        if let Ok(next) = incident::act(
            &current,
            party,
            &actor,
            actor_member,
            action,
            now,
            REOPEN_WITHIN,
        ) {
            current = next;
        }
        current.sla_clocks =
            incident::clocks(&current, engagement(), calendar(), now, AT_RISK_SHARE);
        let _ = incident::worst_clock_state(&current);
        let _ = incident::is_open(&current);
        let _ = incident::redact_for_coordinator(current.clone());
        let _ = incident::redact_for_subscriber(current.clone());
    }
});

/// The action of the RPC numbered `rpc`, built from its request as the node's handler does.
fn action(rpc: u8, steps: &mut Steps<'_>) -> Option<Action> {
    Some(match rpc % 9 {
        0 => {
            let r = steps.message::<pb::AcknowledgeIncidentRequest>()?;
            Action::Acknowledge { comment: r.comment }
        }
        1 => {
            let r = steps.message::<pb::AssignIncidentRequest>()?;
            Action::Assign {
                assignee: r.assignee,
            }
        }
        2 => {
            let r = steps.message::<pb::SetIncidentStatusRequest>()?;
            Action::SetStatus {
                status: r.status(),
                comment: r.comment,
                resolution: r.resolution,
            }
        }
        3 => {
            let r = steps.message::<pb::CommentIncidentRequest>()?;
            Action::Comment {
                body: r.body,
                internal: r.internal,
            }
        }
        4 => {
            let r = steps.message::<pb::AnswerIncidentRequest>()?;
            Action::Answer { body: r.body }
        }
        5 => {
            let r = steps.message::<pb::CloseIncidentRequest>()?;
            Action::Close { comment: r.comment }
        }
        6 => {
            let r = steps.message::<pb::ReopenIncidentRequest>()?;
            Action::Reopen { reason: r.reason }
        }
        7 => {
            let r = steps.message::<pb::ChangePriorityRequest>()?;
            Action::ChangePriority {
                priority: r.priority(),
                reason: r.reason,
            }
        }
        // The node's own clock alerts carry no request: the selector says which.
        _ => Action::ClockAlert {
            target: if rpc & 0x10 == 0 {
                pb::SlaTarget::Acknowledge
            } else {
                pb::SlaTarget::Resolve
            },
            breached: rpc & 0x20 != 0,
        },
    })
}
