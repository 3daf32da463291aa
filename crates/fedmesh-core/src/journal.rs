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
}
