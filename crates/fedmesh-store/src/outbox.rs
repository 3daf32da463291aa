//! The subscriber's durable outbox: writes for another institution's node wait here until
//! that node accepts them, across restarts of either side. Each item keeps the caller's
//! request id, so a redelivery is idempotent at the provider.

use prost::Message as _;

use crate::{Store, StoreError, decode};

pub(crate) const OUTBOX_TREE: &str = "outbox";
const PEERS_TREE: &str = "peers";

/// A write waiting for another member's node.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OutboxItem {
    /// The member whose node must receive it.
    #[prost(string, tag = "1")]
    pub provider_member_id: String,
    /// The RPC, e.g. `RequestSubscription`.
    #[prost(string, tag = "2")]
    pub rpc: String,
    /// The encoded request message.
    #[prost(bytes = "vec", tag = "3")]
    pub request: Vec<u8>,
    /// When it was queued (Unix seconds).
    #[prost(int64, tag = "4")]
    pub queued_at: i64,
    /// Delivery attempts so far.
    #[prost(uint32, tag = "5")]
    pub attempts: u32,
    /// The last delivery error.
    #[prost(string, tag = "6")]
    pub last_error: String,
    /// The identity URI of this member's admin (or agent) who asked for it, whom the node
    /// acts for (`fedmesh-acting-for`); empty: the node itself.
    #[prost(string, tag = "7")]
    pub acting_for: String,
}

impl Store {
    /// Queues an item; returns its sequence number. Durable once [`Store::flush`] returns.
    pub fn enqueue(&self, item: &OutboxItem) -> Result<u64, StoreError> {
        let _writing = self.writing();
        let sequence = self.db()?.generate_id()?;
        self.tree(OUTBOX_TREE)?
            .insert(sequence.to_be_bytes(), item.encode_to_vec())?;
        Ok(sequence)
    }

    /// The queued items, oldest first.
    pub fn outbox(&self) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        self.tree(OUTBOX_TREE)?
            .iter()
            .map(|item| {
                let (key, raw) = item?;
                let sequence = key.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
                Ok((sequence, decode(OUTBOX_TREE, &key, &raw)?))
            })
            .collect()
    }

    /// Replaces a queued item (its attempt count and last error).
    pub fn update_outbox(&self, sequence: u64, item: &OutboxItem) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(OUTBOX_TREE)?
            .insert(sequence.to_be_bytes(), item.encode_to_vec())?;
        Ok(())
    }

    /// Removes a delivered item.
    pub fn dequeue(&self, sequence: u64) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(OUTBOX_TREE)?.remove(sequence.to_be_bytes())?;
        Ok(())
    }

    /// The last known endpoint of another member's node (kept for when the coordinator is
    /// down).
    pub fn peer_endpoint(&self, member: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree(PEERS_TREE)?
            .get(member.as_bytes())?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    /// Remembers another member's node endpoint.
    pub fn set_peer_endpoint(&self, member: &str, endpoint: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(PEERS_TREE)?
            .insert(member.as_bytes(), endpoint.as_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_outbox_survives_a_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for rpc in ["RequestSubscription", "CancelSubscription"] {
                store
                    .enqueue(&OutboxItem {
                        provider_member_id: "rouen".into(),
                        rpc: rpc.into(),
                        ..Default::default()
                    })
                    .unwrap();
            }
            store.flush().await.unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let items = store.outbox().unwrap();
        assert_eq!(
            items
                .iter()
                .map(|(_, i)| i.rpc.as_str())
                .collect::<Vec<_>>(),
            ["RequestSubscription", "CancelSubscription"]
        );
        store.dequeue(items[0].0).unwrap();
        assert_eq!(store.outbox().unwrap().len(), 1);
    }
}
