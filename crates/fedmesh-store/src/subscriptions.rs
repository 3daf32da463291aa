//! Subscriptions, as the provider's node keeps them (the reference copy) and as a
//! subscriber's node mirrors them. Written with the journal like every entity.

use fedmesh_proto::pb;

use crate::journal::{Entity, WriteError};
use crate::{Store, StoreError, decode};

const SUBSCRIPTIONS_TREE: &str = "subscriptions";

const SUBSCRIPTION: Entity<pb::Subscription> = Entity {
    tree: SUBSCRIPTIONS_TREE,
    kind: pb::EntityKind::Subscription,
    id: |s| &s.subscription_id,
    payload: pb::journal_entry::Payload::Subscription,
};

impl Store {
    /// Creates or changes a subscription; with `request_key`, also records which subscription
    /// that client request made, in the same transaction (idempotent retries).
    pub fn update_subscription<E>(
        &self,
        member_id: &str,
        subscription_id: &str,
        request_key: Option<&[u8]>,
        decide: impl FnOnce(Option<pb::Subscription>, u64) -> Result<pb::Subscription, E>,
    ) -> Result<(pb::Subscription, u64), WriteError<E>> {
        let _writing = self.writing();
        self.write_journaled(
            &SUBSCRIPTION,
            member_id,
            subscription_id,
            request_key,
            decide,
        )
    }

    /// A subscription by id.
    pub fn get_subscription(&self, id: &str) -> Result<Option<pb::Subscription>, StoreError> {
        self.tree(SUBSCRIPTIONS_TREE)?
            .get(id.as_bytes())?
            .map(|raw| decode(SUBSCRIPTIONS_TREE, id.as_bytes(), &raw))
            .transpose()
    }

    /// Up to `limit` subscriptions with an id after `after`, in id order, that `keep` accepts.
    pub fn list_subscriptions(
        &self,
        after: &str,
        limit: usize,
        keep: impl Fn(&pb::Subscription) -> bool,
    ) -> Result<Vec<pb::Subscription>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(SUBSCRIPTIONS_TREE)?.range::<&[u8], _>((
            std::ops::Bound::Excluded(after.as_bytes()),
            std::ops::Bound::Unbounded,
        )) {
            let (key, raw) = item?;
            let subscription: pb::Subscription = decode(SUBSCRIPTIONS_TREE, &key, &raw)?;
            if keep(&subscription) {
                out.push(subscription);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}
