//! Who may read which journal entries of a node.

use fedmesh_proto::pb;

use crate::identity::{Identity, MemberId, Role};

/// Whether `caller` may see `entry` of the journal of `local`'s node. Offers and maintenance
/// announcements are public to the federation; the coordinator sees every entry; the node's
/// own admins see their own journal; a subscriber's node sees its own tenancies. Other entries
/// scoped to one subscriber are opened to it by the milestones that introduce them.
pub fn visible(entry: &pb::JournalEntry, caller: &Identity, local: &MemberId) -> bool {
    let public = matches!(
        pb::EntityKind::try_from(entry.entity_kind),
        Ok(pb::EntityKind::Offer | pb::EntityKind::MaintenanceWindow)
    );
    // A subscriber's node follows its own tenancies on the provider.
    let own_tenancy = caller.role() == Role::Node
        && matches!(
            &entry.payload,
            Some(pb::journal_entry::Payload::Subscription(s))
                if caller.member().is_some_and(|m| m.as_str() == s.subscriber_member_id)
        );
    public
        || own_tenancy
        || caller.role() == Role::Coordinator
        || (caller.role() == Role::Admin && caller.member() == Some(local))
}

/// What of `entry` a reader receives: the coordinator gets tenancies without the
/// subscriber's contact or the names in their history (GDPR minimisation: it needs counts and
/// states, not people).
pub fn redact(mut entry: pb::JournalEntry, caller: &Identity) -> pb::JournalEntry {
    if caller.role() == Role::Coordinator
        && let Some(pb::journal_entry::Payload::Subscription(subscription)) = &mut entry.payload
    {
        subscription.contact_email.clear();
        for change in &mut subscription.history {
            change.actor.clear();
            change.reason.clear();
        }
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
        assert!(visible(&entry(pb::EntityKind::Offer), &peer, &local));
        assert!(!visible(&entry(pb::EntityKind::UsageRecord), &peer, &local));
        assert!(visible(
            &entry(pb::EntityKind::UsageRecord),
            &coordinator,
            &local
        ));
        assert!(visible(
            &entry(pb::EntityKind::UsageRecord),
            &own_admin,
            &local
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
        assert!(visible(&tenancy("rouen"), &peer, &local), "its own tenancy");
        assert!(
            !visible(&tenancy("rennes2"), &peer, &local),
            "another member's tenancy"
        );
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
