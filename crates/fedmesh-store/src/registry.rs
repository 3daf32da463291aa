//! The coordinator's registry of member nodes: one `RegisteredNode` per member id; and the
//! members removed from the federation (on the coordinator, the record; on a node, the list
//! last received with the CRL).

use fedmesh_proto::pb::{RegisteredNode, RemovedMember};
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::ConflictableTransactionError;

use crate::{Store, StoreError, decode};

const NODES_TREE: &str = "registry_nodes";
const REMOVED_TREE: &str = "removed_members";

impl Store {
    /// Stores (replaces) a member's node entry. Call [`Store::flush`] before acknowledging.
    pub fn put_node(&self, node: &RegisteredNode) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(NODES_TREE)?
            .insert(node.member_id.as_bytes(), node.encode_to_vec())?;
        Ok(())
    }

    /// A member's node entry, if it registered.
    pub fn get_node(&self, member_id: &str) -> Result<Option<RegisteredNode>, StoreError> {
        self.tree(NODES_TREE)?
            .get(member_id.as_bytes())?
            .map(|raw| decode(NODES_TREE, member_id.as_bytes(), &raw))
            .transpose()
    }

    /// Up to `limit` node entries with a member id strictly after `after`, in member id order.
    pub fn list_nodes(&self, after: &str, limit: usize) -> Result<Vec<RegisteredNode>, StoreError> {
        let tree = self.tree(NODES_TREE)?;
        let range = if after.is_empty() {
            tree.range::<&[u8], _>(..)
        } else {
            tree.range::<&[u8], _>((
                std::ops::Bound::Excluded(after.as_bytes()),
                std::ops::Bound::Unbounded,
            ))
        };
        range
            .take(limit)
            .map(|item| {
                let (key, raw) = item?;
                decode(NODES_TREE, &key, &raw)
            })
            .collect()
    }

    /// Records the removal of a member and deletes its node entry, in one transaction.
    /// A member already removed keeps its first record, which is returned. Call
    /// [`Store::flush`] before acknowledging.
    pub fn remove_member(&self, removal: &RemovedMember) -> Result<RemovedMember, StoreError> {
        let _writing = self.writing();
        let nodes = self.tree(NODES_TREE)?;
        let removed = self.tree(REMOVED_TREE)?;
        let key = removal.member_id.as_bytes();
        let encoded = removal.encode_to_vec();
        let existing = (&*nodes, &*removed)
            .transaction(|(nodes, removed)| {
                let existing = removed.get(key)?;
                if existing.is_none() {
                    removed.insert(key, encoded.as_slice())?;
                }
                nodes.remove(key)?;
                Ok::<_, ConflictableTransactionError<()>>(existing)
            })
            .map_err(StoreError::from_transaction)?;
        match existing {
            Some(raw) => decode(REMOVED_TREE, key, &raw),
            None => Ok(removal.clone()),
        }
    }

    /// The members removed from the federation, in member id order.
    pub fn removed_members(&self) -> Result<Vec<RemovedMember>, StoreError> {
        self.tree(REMOVED_TREE)?
            .iter()
            .map(|item| {
                let (key, raw) = item?;
                decode(REMOVED_TREE, &key, &raw)
            })
            .collect()
    }

    /// Replaces the list of removed members (a node keeps the coordinator's list this way).
    pub fn set_removed_members(&self, members: &[RemovedMember]) -> Result<(), StoreError> {
        let _writing = self.writing();
        let tree = self.tree(REMOVED_TREE)?;
        let mut batch = sled::Batch::default();
        for item in tree.iter() {
            let (key, _) = item?;
            if !members.iter().any(|m| m.member_id.as_bytes() == &*key) {
                batch.remove(key);
            }
        }
        for member in members {
            batch.insert(member.member_id.as_bytes(), member.encode_to_vec());
        }
        tree.apply_batch(batch)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(member: &str) -> RegisteredNode {
        RegisteredNode {
            member_id: member.to_owned(),
            endpoint: format!("https://{member}.example:7443"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn nodes_survive_a_reopen_and_list_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for member in ["rouen", "unistra", "rennes2"] {
                store.put_node(&node(member)).unwrap();
            }
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get_node("rouen").unwrap().map(|n| n.endpoint),
            Some("https://rouen.example:7443".to_owned())
        );
        assert_eq!(store.get_node("lille").unwrap(), None);
        let first: Vec<String> = store
            .list_nodes("", 2)
            .unwrap()
            .into_iter()
            .map(|n| n.member_id)
            .collect();
        assert_eq!(first, ["rennes2", "rouen"]);
        let second: Vec<String> = store
            .list_nodes("rouen", 2)
            .unwrap()
            .into_iter()
            .map(|n| n.member_id)
            .collect();
        assert_eq!(second, ["unistra"]);
    }

    #[tokio::test]
    async fn a_removal_deletes_the_node_entry_and_keeps_its_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.put_node(&node("rouen")).unwrap();
        store.put_node(&node("unistra")).unwrap();
        let first = RemovedMember {
            member_id: "rouen".into(),
            reason: "left the consortium".into(),
            ..Default::default()
        };
        assert_eq!(store.remove_member(&first).unwrap(), first);
        let again = RemovedMember {
            reason: "second try".into(),
            ..first.clone()
        };
        assert_eq!(store.remove_member(&again).unwrap(), first);
        assert_eq!(store.get_node("rouen").unwrap(), None);
        assert!(store.get_node("unistra").unwrap().is_some());
        assert_eq!(
            store.removed_members().unwrap(),
            std::slice::from_ref(&first)
        );
        store.set_removed_members(&[]).unwrap();
        assert!(store.removed_members().unwrap().is_empty());
        store
            .set_removed_members(std::slice::from_ref(&again))
            .unwrap();
        assert_eq!(store.removed_members().unwrap(), [again]);
    }
}
