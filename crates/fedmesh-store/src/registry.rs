//! The coordinator's registry of member nodes: one `RegisteredNode` per member id.

use fedmesh_proto::pb::RegisteredNode;
use prost::Message as _;

use crate::{Store, StoreError, decode};

const NODES_TREE: &str = "registry_nodes";

impl Store {
    /// Stores (replaces) a member's node entry. Call [`Store::flush`] before acknowledging.
    pub fn put_node(&self, node: &RegisteredNode) -> Result<(), StoreError> {
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
}
