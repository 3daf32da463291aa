//! Who may read which journal entries of a node.

use fedmesh_proto::pb;

use crate::identity::{Identity, MemberId, Role};

/// Whether `caller` may see `entry` of the journal of `local`'s node. Offers are public to the
/// federation; the coordinator sees every entry; the node's own admins see their own journal.
/// A subscriber member's node sees its own tenancies, its own incidents, and the maintenance
/// announced on offers it is a tenant of (`is_tenant(offer_id)` tells, for the caller's
/// member). Monthly reports: the subscriber's node sees its own tenancies' reports, the
/// coordinator offer reports only (aggregates without people), never a tenancy's.
pub fn visible(
    entry: &pb::JournalEntry,
    caller: &Identity,
    local: &MemberId,
    is_tenant: &dyn Fn(&str) -> bool,
) -> bool {
    use pb::journal_entry::Payload;
    if caller.role() == Role::Admin && caller.member() == Some(local) {
        return true;
    }
    if caller.role() == Role::Coordinator {
        return match &entry.payload {
            Some(Payload::MonthlyReport(r)) => r.scope == pb::ReportScope::Offer as i32,
            _ => true,
        };
    }
    let node_of = |member: &str| {
        caller.role() == Role::Node && caller.member().is_some_and(|m| m.as_str() == member)
    };
    match &entry.payload {
        Some(Payload::Offer(_)) => true,
        Some(Payload::Subscription(s)) => node_of(&s.subscriber_member_id),
        Some(Payload::Incident(i)) => node_of(&i.subscriber_member_id),
        Some(Payload::MaintenanceWindow(m)) => {
            caller.role() == Role::Node && is_tenant(&m.offer_id)
        }
        Some(Payload::MonthlyReport(r)) => {
            r.scope == pb::ReportScope::Tenancy as i32 && node_of(&r.subscriber_member_id)
        }
        _ => false,
    }
}

/// Whether `caller` may see any entry of `kind` in `local`'s journal: the coordinator and the
/// node's own admins every kind; another member's node offers, tenancies, incidents and
/// maintenance windows and monthly reports (which of them, [`visible`] says), never usage or
/// availability records.
/// Lets a reader pass over entries of other kinds without decoding them.
pub fn may_see_kind(caller: &Identity, local: &MemberId, kind: i32) -> bool {
    if caller.role() == Role::Coordinator
        || (caller.role() == Role::Admin && caller.member() == Some(local))
    {
        return true;
    }
    caller.role() == Role::Node
        && matches!(
            pb::EntityKind::try_from(kind),
            Ok(pb::EntityKind::Offer
                | pb::EntityKind::Subscription
                | pb::EntityKind::Incident
                | pb::EntityKind::MaintenanceWindow
                | pb::EntityKind::MonthlyReport)
        )
}

/// What of `entry` a reader receives: the coordinator gets tenancies without the
/// subscriber's contact or the names in their history, and incidents without texts or people
/// (GDPR minimisation: it needs counts, states and clocks, not people); a subscriber's node
/// gets incidents without the provider's internal comments.
pub fn redact(mut entry: pb::JournalEntry, caller: &Identity) -> pb::JournalEntry {
    use pb::journal_entry::Payload;
    match (&mut entry.payload, caller.role()) {
        (Some(Payload::Subscription(subscription)), Role::Coordinator) => {
            subscription.contact_email.clear();
            for change in &mut subscription.history {
                change.actor.clear();
                change.reason.clear();
            }
        }
        (Some(Payload::Incident(incident)), Role::Coordinator) => {
            *incident = crate::incident::redact_for_coordinator(std::mem::take(incident));
        }
        (Some(Payload::Incident(incident)), Role::Node) => {
            *incident = crate::incident::redact_for_subscriber(std::mem::take(incident));
        }
        _ => {}
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: pb::EntityKind) -> pb::JournalEntry {
        pb::JournalEntry {
            entity_kind: kind as i32,
            ..Default::default()
        }
    }

    #[test]
    fn offers_are_public_other_entries_are_not() {
        let local: MemberId = "unistra".parse().unwrap();
        let peer: Identity = "spiffe://f/member/rouen/node".parse().unwrap();
        let coordinator: Identity = "spiffe://f/coordinator".parse().unwrap();
        let own_admin: Identity = "spiffe://f/member/unistra/admin/ops".parse().unwrap();
        let offer = pb::JournalEntry {
            payload: Some(pb::journal_entry::Payload::Offer(pb::Offer::default())),
            ..entry(pb::EntityKind::Offer)
        };
        assert!(visible(&offer, &peer, &local, &|_| false));
        assert!(!visible(
            &entry(pb::EntityKind::UsageRecord),
            &peer,
            &local,
            &|_| false
        ));
        assert!(visible(
            &entry(pb::EntityKind::UsageRecord),
            &coordinator,
            &local,
            &|_| false
        ));
        assert!(visible(
            &entry(pb::EntityKind::UsageRecord),
            &own_admin,
            &local,
            &|_| false
        ));
    }

    #[test]
    fn a_subscriber_node_sees_only_its_own_tenancies() {
        let local: MemberId = "unistra".parse().unwrap();
        let peer: Identity = "spiffe://f/member/rouen/node".parse().unwrap();
        let tenancy = |subscriber: &str| pb::JournalEntry {
            entity_kind: pb::EntityKind::Subscription as i32,
            payload: Some(pb::journal_entry::Payload::Subscription(pb::Subscription {
                subscriber_member_id: subscriber.into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(
            visible(&tenancy("rouen"), &peer, &local, &|_| false),
            "its own tenancy"
        );
        assert!(
            !visible(&tenancy("rennes2"), &peer, &local, &|_| false),
            "another member's tenancy"
        );
    }

    #[test]
    fn maintenance_reaches_tenants_and_incidents_their_subscriber() {
        let local: MemberId = "unistra".parse().unwrap();
        let peer: Identity = "spiffe://f/member/rouen/node".parse().unwrap();
        let window = pb::JournalEntry {
            payload: Some(pb::journal_entry::Payload::MaintenanceWindow(
                pb::MaintenanceWindow {
                    offer_id: "unistra.otp".into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        assert!(visible(&window, &peer, &local, &|offer| offer == "unistra.otp"));
        assert!(!visible(&window, &peer, &local, &|_| false), "not a tenant");
        let incident = |subscriber: &str| pb::JournalEntry {
            payload: Some(pb::journal_entry::Payload::Incident(pb::Incident {
                subscriber_member_id: subscriber.into(),
                comments: vec![pb::IncidentComment {
                    internal: true,
                    ..Default::default()
                }],
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(visible(&incident("rouen"), &peer, &local, &|_| false));
        assert!(!visible(&incident("rennes2"), &peer, &local, &|_| false));
        let Some(pb::journal_entry::Payload::Incident(seen)) =
            redact(incident("rouen"), &peer).payload
        else {
            panic!("payload lost");
        };
        assert!(
            seen.comments.is_empty(),
            "internal comments stay with the provider"
        );
    }

    #[test]
    fn tenancy_reports_reach_their_subscriber_and_offer_reports_the_coordinator() {
        let local: MemberId = "unistra".parse().unwrap();
        let rouen: Identity = "spiffe://f/member/rouen/node".parse().unwrap();
        let rennes2: Identity = "spiffe://f/member/rennes2/node".parse().unwrap();
        let coordinator: Identity = "spiffe://f/coordinator".parse().unwrap();
        let operator: Identity = "spiffe://f/operator/ops".parse().unwrap();
        let own_admin: Identity = "spiffe://f/member/unistra/admin/ops".parse().unwrap();
        let report = |scope: pb::ReportScope, subscriber: &str| pb::JournalEntry {
            entity_kind: pb::EntityKind::MonthlyReport as i32,
            payload: Some(pb::journal_entry::Payload::MonthlyReport(
                pb::MonthlyReport {
                    scope: scope as i32,
                    subscriber_member_id: subscriber.into(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        };
        let tenancy = report(pb::ReportScope::Tenancy, "rouen");
        let offer = report(pb::ReportScope::Offer, "");
        let sees = |e: &pb::JournalEntry, who: &Identity| visible(e, who, &local, &|_| true);
        assert!(sees(&tenancy, &rouen), "its own tenancy's report");
        assert!(!sees(&tenancy, &rennes2), "another member's tenancy report");
        assert!(
            !sees(&offer, &rouen),
            "offer reports are not for subscribers' nodes"
        );
        assert!(
            !sees(&tenancy, &coordinator),
            "never a tenancy report for the coordinator"
        );
        assert!(sees(&offer, &coordinator));
        assert!(!sees(&offer, &operator) && !sees(&tenancy, &operator));
        assert!(sees(&offer, &own_admin) && sees(&tenancy, &own_admin));
    }

    #[test]
    fn the_coordinator_receives_tenancies_without_contacts() {
        let coordinator: Identity = "spiffe://f/coordinator".parse().unwrap();
        let peer: Identity = "spiffe://f/member/rouen/node".parse().unwrap();
        let entry = pb::JournalEntry {
            payload: Some(pb::journal_entry::Payload::Subscription(pb::Subscription {
                contact_email: "dsi@rouen.example".into(),
                user_count: 5,
                ..Default::default()
            })),
            ..Default::default()
        };
        let Some(pb::journal_entry::Payload::Subscription(seen)) =
            redact(entry.clone(), &coordinator).payload
        else {
            panic!("payload lost");
        };
        assert_eq!((seen.contact_email.as_str(), seen.user_count), ("", 5));
        assert_eq!(
            redact(entry.clone(), &peer),
            entry,
            "the subscriber sees its own contact"
        );
    }
}
