//! Who may read which journal entries of a node.

use fedmesh_proto::pb;

use crate::identity::{Identity, MemberId, Role};

/// Whether `caller` may see `entry` of the journal of `local`'s node. Offers and maintenance
/// announcements are public to the federation; the coordinator sees every entry; the node's
/// own admins see their own journal. Entries scoped to one subscriber are opened to it by the
/// milestones that introduce them; until then they are hidden from other members.
pub fn visible(entry: &pb::JournalEntry, caller: &Identity, local: &MemberId) -> bool {
    let public = matches!(
        pb::EntityKind::try_from(entry.entity_kind),
        Ok(pb::EntityKind::Offer | pb::EntityKind::MaintenanceWindow)
    );
    public
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
