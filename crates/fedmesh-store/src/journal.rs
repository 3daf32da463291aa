//! The node journal and the entities written with it.
//!
//! Every change of an entity is committed in one sled transaction with its journal entry at
//! the next revision; the journal is what the coordinator and subscriber nodes replicate.

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use crate::log::key;
use crate::migrate::RequestRecord;
use crate::{Store, StoreError, decode};

pub(crate) const JOURNAL_TREE: &str = "journal";
const OFFERS_TREE: &str = "offers";

/// A write refused by the caller's decision, or failed in the store.
#[derive(Debug, thiserror::Error)]
pub enum WriteError<E> {
    /// The caller's decision refused the change.
    #[error(transparent)]
    Rejected(E),
    /// The client request was applied before (its idempotency record names what it made):
    /// nothing was written; answer with that entity as it is now.
    #[error("request already applied, to {0}")]
    Repeated(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn now() -> prost_types::Timestamp {
    fedmesh_core::clock::now_timestamp()
}

/// How one kind of entity is stored and journaled.
pub(crate) struct Entity<M> {
    /// Its tree.
    pub(crate) tree: &'static str,
    /// Its kind in journal entries.
    pub(crate) kind: pb::EntityKind,
    /// Its id, the key in its tree.
    pub(crate) id: fn(&M) -> &str,
    /// The journal payload carrying it.
    pub(crate) payload: fn(M) -> pb::journal_entry::Payload,
}

const OFFER: Entity<pb::Offer> = Entity {
    tree: OFFERS_TREE,
    kind: pb::EntityKind::Offer,
    id: |o| &o.offer_id,
    payload: pb::journal_entry::Payload::Offer,
};

/// The head of a journal entry: the fields of [`pb::JournalEntry`] a reader filters on, with
/// the same tags, so that decoding it skips the payload's bytes without parsing them.
#[derive(Clone, PartialEq, prost::Message)]
struct EntryHead {
    #[prost(uint64, tag = "1")]
    revision: u64,
    #[prost(int32, tag = "4")]
    entity_kind: i32,
}

/// What an idempotency record of a request waiting in the outbox says it made.
pub const QUEUED: &str = "queued";

/// The tree of idempotency records: a client's request id → a [`RequestRecord`] (the id of the
/// entity it made, and when).
pub(crate) const REQUESTS_TREE: &str = "requests";

fn request_value(made: &str) -> Vec<u8> {
    RequestRecord {
        made: made.to_owned(),
        recorded_at_unix: crate::migrate::now_unix(),
    }
    .encode_to_vec()
}

fn made_by(key: &[u8], raw: &[u8]) -> Result<String, StoreError> {
    Ok(decode::<RequestRecord>(REQUESTS_TREE, key, raw)?.made)
}

impl Store {
    /// Creates or changes an entity under the journal's write lock: `decide` gets the current
    /// version (if any) and the revision the change will have, and returns the new version.
    /// The entity, its journal entry and, when given, an idempotency record (`request_key` →
    /// entity id) are committed in one transaction. Callers hold the write gate
    /// ([`Store::writing`]).
    pub(crate) fn write_journaled<M, E>(
        &self,
        entity: &Entity<M>,
        member_id: &str,
        entity_id: &str,
        request_key: Option<&[u8]>,
        decide: impl FnOnce(Option<M>, u64) -> Result<M, E>,
    ) -> Result<(M, u64), WriteError<E>>
    where
        M: prost::Message + Default + Clone,
    {
        let tree = self.tree(entity.tree)?;
        let journal = self.tree(JOURNAL_TREE)?;
        let requests = self.tree(REQUESTS_TREE)?;
        self.journal.append(|revision| {
            // Checked under the write lock: two attempts of one request cannot both write.
            if let Some(request_key) = request_key
                && let Some(raw) = requests.get(request_key).map_err(StoreError::from)?
            {
                return Err(WriteError::Repeated(made_by(request_key, &raw)?));
            }
            let current = tree
                .get(entity_id.as_bytes())
                .map_err(StoreError::from)?
                .map(|raw| decode::<M>(entity.tree, entity_id.as_bytes(), &raw))
                .transpose()?;
            let value = decide(current, revision).map_err(WriteError::Rejected)?;
            let id = (entity.id)(&value).to_owned();
            let entry = pb::JournalEntry {
                revision,
                record_time: Some(now()),
                member_id: member_id.to_owned(),
                entity_kind: entity.kind as i32,
                entity_id: id.clone(),
                deleted: false,
                payload: Some((entity.payload)(value.clone())),
            };
            let encoded_value = value.encode_to_vec();
            let encoded_entry = entry.encode_to_vec();
            self.entry_fits(encoded_entry.len())?;
            let encoded_request = request_value(&id);
            let result: Result<(), TransactionError<()>> = (&*tree, &*journal, &*requests)
                .transaction(|(tree, journal, requests)| {
                    tree.insert(id.as_bytes(), encoded_value.as_slice())?;
                    journal.insert(&key(revision), encoded_entry.as_slice())?;
                    if let Some(request_key) = request_key {
                        requests.insert(request_key, encoded_request.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(|e| WriteError::Store(StoreError::from_transaction(e)))?;
            Ok(((value, revision), Some(revision)))
        })
    }

    /// Creates or changes an offer (see [`Store::write_journaled`]). Call
    /// [`Store::journal_durable`] before acknowledging.
    pub fn update_offer<E>(
        &self,
        member_id: &str,
        offer_id: &str,
        decide: impl FnOnce(Option<pb::Offer>, u64) -> Result<pb::Offer, E>,
    ) -> Result<(pb::Offer, u64), WriteError<E>> {
        let _writing = self.writing();
        self.write_journaled(&OFFER, member_id, offer_id, None, decide)
    }

    /// Records what a client request made, outside a journaled write (a queued request).
    pub fn set_request_record(&self, request_key: &[u8], value: &str) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(REQUESTS_TREE)?
            .insert(request_key, request_value(value))?;
        Ok(())
    }

    /// Records what a client request made as if it had been recorded at `recorded_at_unix`
    /// (Unix seconds). For tests of expiry, and for tools that import records.
    pub fn set_request_record_dated(
        &self,
        request_key: &[u8],
        made: &str,
        recorded_at_unix: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let record = RequestRecord {
            made: made.to_owned(),
            recorded_at_unix,
        };
        self.tree(REQUESTS_TREE)?
            .insert(request_key, record.encode_to_vec())?;
        Ok(())
    }

    /// Removes the idempotency records recorded before `before_unix` (Unix seconds), holding
    /// the write gate for 1,000 at a time; returns how many went. A client request repeated
    /// after its record went is applied again: keep records longer than any client's
    /// retries. The markers of requests waiting in the outbox ([`QUEUED`]) stay: the outbox
    /// retries without end.
    pub fn expire_requests(&self, before_unix: i64) -> Result<usize, StoreError> {
        let requests = self.tree(REQUESTS_TREE)?;
        let mut expired = Vec::new();
        for pair in requests.iter() {
            let (key, raw) = pair?;
            match decode::<RequestRecord>(REQUESTS_TREE, &key, &raw) {
                // A queued request's marker stays while the outbox retries it (without end).
                Ok(record) if record.made == QUEUED => {}
                Ok(record) if record.recorded_at_unix < before_unix => expired.push((key, raw)),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "an idempotency record does not decode; kept"),
            }
        }
        let mut removed = 0;
        for slice in expired.chunks(1_000) {
            let _writing = self.writing();
            for (key, raw) in slice {
                // Only if unchanged since it was read: a record rewritten meanwhile stays.
                if requests
                    .compare_and_swap(key, Some(raw), None::<&[u8]>)?
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The entity id an idempotency record points to, if the request was seen.
    pub fn request_record(&self, request_key: &[u8]) -> Result<Option<String>, StoreError> {
        Ok(self
            .request_record_full(request_key)?
            .map(|record| record.made))
    }

    /// An idempotency record whole: what the request made and when it was recorded.
    pub fn request_record_full(
        &self,
        request_key: &[u8],
    ) -> Result<Option<RequestRecord>, StoreError> {
        self.tree(REQUESTS_TREE)?
            .get(request_key)?
            .map(|raw| decode(REQUESTS_TREE, request_key, &raw))
            .transpose()
    }

    /// Waits until `revision` of the journal is on disk, then lets watchers see it.
    pub async fn journal_durable(&self, revision: u64) -> Result<(), StoreError> {
        self.durable(&self.journal, revision).await
    }

    /// An offer by id.
    pub fn get_offer(&self, offer_id: &str) -> Result<Option<pb::Offer>, StoreError> {
        self.tree(OFFERS_TREE)?
            .get(offer_id.as_bytes())?
            .map(|raw| decode(OFFERS_TREE, offer_id.as_bytes(), &raw))
            .transpose()
    }

    /// Up to `limit` offers with an id after `after`, in id order, that `keep` accepts.
    pub fn list_offers(
        &self,
        after: &str,
        limit: usize,
        keep: impl Fn(&pb::Offer) -> bool,
    ) -> Result<Vec<pb::Offer>, StoreError> {
        let tree = self.tree(OFFERS_TREE)?;
        let mut out = Vec::new();
        for item in tree.range::<&[u8], _>((
            std::ops::Bound::Excluded(after.as_bytes()),
            std::ops::Bound::Unbounded,
        )) {
            let (key, raw) = item?;
            let offer: pb::Offer = decode(OFFERS_TREE, &key, &raw)?;
            if keep(&offer) {
                out.push(offer);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Durable journal entries with a revision above `since`, at most `limit`, in order.
    pub fn journal_entries(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<pb::JournalEntry>, StoreError> {
        let durable = self.journal.durable();
        if since >= durable {
            return Ok(Vec::new());
        }
        self.tree(JOURNAL_TREE)?
            .range(key(since.saturating_add(1))..=key(durable))
            .take(limit)
            .map(|item| {
                let (k, raw) = item?;
                decode(JOURNAL_TREE, &k, &raw)
            })
            .collect()
    }

    /// Reads the durable journal after `since` for one reader: at most `limit` entries whose
    /// kind `wanted` accepts, looking at no more than `scan` entries in all. An entry of an
    /// unwanted kind is passed over without decoding its payload (a batch of a thousand usage
    /// records costs a reader that may not see it a few bytes), so a reader's cost follows what
    /// it may read, not the journal's size. Returns the entries and the last revision looked
    /// at (`since` when nothing was). Blocks on sled: call it off the async runtime.
    pub fn journal_scan(
        &self,
        since: u64,
        limit: usize,
        scan: usize,
        wanted: impl Fn(i32) -> bool,
    ) -> Result<(Vec<pb::JournalEntry>, u64), StoreError> {
        let durable = self.journal.durable();
        let mut last = since;
        let mut out = Vec::new();
        if since >= durable {
            return Ok((out, last));
        }
        for item in self
            .tree(JOURNAL_TREE)?
            .range(key(since.saturating_add(1))..=key(durable))
            .take(scan.max(1))
        {
            let (k, raw) = item?;
            let head: EntryHead = decode(JOURNAL_TREE, &k, &raw)?;
            last = head.revision;
            if wanted(head.entity_kind) {
                out.push(decode(JOURNAL_TREE, &k, &raw)?);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok((out, last))
    }

    /// The first revision held in the journal (0 when empty; after a compaction, the one
    /// after the compaction point) and the last durable one.
    pub fn journal_bounds(&self) -> Result<(u64, u64), StoreError> {
        let first = self
            .tree(JOURNAL_TREE)?
            .first()?
            .and_then(|(k, _)| k.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        let compacted = self.compacted(crate::compact::LogKind::Journal)?;
        let first = if compacted > 0 {
            first.max(compacted + 1)
        } else {
            first
        };
        Ok((first, self.journal.durable()))
    }

    /// The last durable journal revision, changing as the journal grows.
    pub fn watch_journal(&self) -> watch::Receiver<u64> {
        self.journal.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: &str, version: &str) -> pb::Offer {
        pb::Offer {
            offer_id: id.into(),
            version: version.into(),
            ..Default::default()
        }
    }

    #[test]
    fn idempotency_records_older_than_the_retention_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let now = crate::migrate::now_unix();
        let day = 86_400;
        store
            .set_request_record_dated(b"old", "unistra.pod", now - 100 * day)
            .unwrap();
        store
            .set_request_record_dated(b"edge", "unistra.pod", now - 90 * day + 60)
            .unwrap();
        store
            .set_request_record_dated(b"waiting", QUEUED, now - 400 * day)
            .unwrap();
        store.set_request_record(b"new", "rennes2.collab").unwrap();
        assert_eq!(store.expire_requests(now - 90 * day).unwrap(), 1);
        assert_eq!(store.request_record(b"old").unwrap(), None);
        assert_eq!(
            store.request_record(b"edge").unwrap().unwrap(),
            "unistra.pod"
        );
        assert_eq!(
            store.request_record(b"waiting").unwrap().unwrap(),
            QUEUED,
            "a queued request's marker stays while the outbox retries it"
        );
        assert_eq!(
            store.request_record(b"new").unwrap().unwrap(),
            "rennes2.collab"
        );
        assert_eq!(store.expire_requests(now - 90 * day).unwrap(), 0);
    }

    #[tokio::test]
    async fn changes_and_entries_are_committed_together_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let journal_id;
        {
            let store = Store::open(dir.path()).unwrap();
            journal_id = store.journal_id().unwrap();
            let (_, r1) = store
                .update_offer("unistra", "unistra.pod", |current, rev| {
                    assert!(current.is_none());
                    assert_eq!(rev, 1);
                    Ok::<_, ()>(offer("unistra.pod", "1"))
                })
                .unwrap();
            // Not durable yet: invisible to readers.
            assert!(store.journal_entries(0, 10).unwrap().is_empty());
            store.journal_durable(r1).await.unwrap();
            let (_, r2) = store
                .update_offer("unistra", "unistra.pod", |current, _| {
                    assert_eq!(current.unwrap().version, "1");
                    Ok::<_, ()>(offer("unistra.pod", "2"))
                })
                .unwrap();
            store.journal_durable(r2).await.unwrap();
            let refused =
                store.update_offer("unistra", "unistra.pod", |_, _| Err::<pb::Offer, _>("no"));
            assert!(matches!(refused, Err(WriteError::Rejected("no"))));
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.journal_id().unwrap(),
            journal_id,
            "the journal keeps its id"
        );
        let entries = store.journal_entries(0, 10).unwrap();
        assert_eq!(
            entries.iter().map(|e| e.revision).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(store.journal_bounds().unwrap(), (1, 2));
        assert_eq!(
            store.get_offer("unistra.pod").unwrap().unwrap().version,
            "2"
        );
        assert_eq!(store.journal_entries(1, 10).unwrap().len(), 1);
        // The next write continues the sequence.
        let (_, r3) = store
            .update_offer("unistra", "unistra.otp", |_, _| {
                Ok::<_, ()>(offer("unistra.otp", "1"))
            })
            .unwrap();
        assert_eq!(r3, 3);
    }
}
