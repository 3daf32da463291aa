//! Usage and availability records, on the provider's node (written with the journal, a batch
//! per transaction) and on the coordinator (applied from the provider's journal with the
//! replication cursor).
//!
//! Trees:
//! - `usage`: `offer_id NUL yyyymm(BE u32) record_id` → `UsageRecord`, so that one month of
//!   an offer is one range scan;
//! - `availability`: `offer_id NUL observed-at(BE u64 seconds) record_id` →
//!   `AvailabilityRecord`, in time order;
//! - `record_ids`: `u|a offer_id NUL record_id` → the record's key above: the identity a
//!   repeated report is recognized by.

use std::collections::HashMap;

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::{Applied, CURSORS_TREE, Cursor};
use crate::journal::JOURNAL_TREE;
use crate::log::key;
use crate::{Store, StoreError, decode};

const USAGE_TREE: &str = "usage";
const AVAILABILITY_TREE: &str = "availability";
const RECORD_IDS_TREE: &str = "record_ids";

/// A record to store, with where it is filed: the month (`yyyymm`) of a usage record, the
/// observation instant (seconds) of an availability record.
#[derive(Debug, Clone)]
pub enum Filed {
    /// A usage record and its month.
    Usage(pb::UsageRecord, u32),
    /// An availability record and its observation instant.
    Availability(pb::AvailabilityRecord, u64),
}

impl Filed {
    fn offer_id(&self) -> &str {
        match self {
            Self::Usage(r, _) => &r.offer_id,
            Self::Availability(r, _) => &r.offer_id,
        }
    }

    fn record_id(&self) -> &str {
        match self {
            Self::Usage(r, _) => &r.record_id,
            Self::Availability(r, _) => &r.record_id,
        }
    }

    fn tree(&self) -> &'static str {
        match self {
            Self::Usage(..) => USAGE_TREE,
            Self::Availability(..) => AVAILABILITY_TREE,
        }
    }

    fn id_key(&self) -> Vec<u8> {
        let tag = match self {
            Self::Usage(..) => b'u',
            Self::Availability(..) => b'a',
        };
        let mut k = vec![tag];
        k.extend_from_slice(self.offer_id().as_bytes());
        k.push(0);
        k.extend_from_slice(self.record_id().as_bytes());
        k
    }

    fn key(&self) -> Vec<u8> {
        let mut k = self.offer_id().as_bytes().to_vec();
        k.push(0);
        match self {
            Self::Usage(_, month) => k.extend_from_slice(&month.to_be_bytes()),
            Self::Availability(_, at) => k.extend_from_slice(&at.to_be_bytes()),
        }
        k.extend_from_slice(self.record_id().as_bytes());
        k
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::Usage(r, _) => r.encode_to_vec(),
            Self::Availability(r, _) => r.encode_to_vec(),
        }
    }

    /// Whether `stored` (the encoded record under the same id) has the same content.
    fn same_as(&self, stored: &[u8], same: &Sameness) -> Result<bool, StoreError> {
        Ok(match self {
            Self::Usage(r, _) => {
                (same.usage)(&decode(USAGE_TREE, r.record_id.as_bytes(), stored)?, r)
            }
            Self::Availability(r, _) => (same.availability)(
                &decode(AVAILABILITY_TREE, r.record_id.as_bytes(), stored)?,
                r,
            ),
        })
    }

    fn journal_entry(
        &self,
        member_id: &str,
        revision: u64,
        time: prost_types::Timestamp,
    ) -> pb::JournalEntry {
        let (kind, payload) = match self {
            Self::Usage(r, _) => (
                pb::EntityKind::UsageRecord,
                pb::journal_entry::Payload::UsageRecord(r.clone()),
            ),
            Self::Availability(r, _) => (
                pb::EntityKind::AvailabilityRecord,
                pb::journal_entry::Payload::AvailabilityRecord(r.clone()),
            ),
        };
        pb::JournalEntry {
            revision,
            record_time: Some(time),
            member_id: member_id.to_owned(),
            entity_kind: kind as i32,
            entity_id: self.record_id().to_owned(),
            deleted: false,
            payload: Some(payload),
        }
    }
}

/// How a repeated report is compared with the stored one (content equal, node stamps aside).
#[derive(Debug, Clone, Copy)]
pub struct Sameness {
    /// For usage records.
    pub usage: fn(&pb::UsageRecord, &pb::UsageRecord) -> bool,
    /// For availability records.
    pub availability: fn(&pb::AvailabilityRecord, &pb::AvailabilityRecord) -> bool,
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Records newly stored.
    pub accepted: usize,
    /// Records stored before with the same content, not stored again.
    pub duplicates: usize,
    /// The journal revision of the last new record; call [`Store::journal_durable`] with it
    /// before acknowledging.
    pub revision: Option<u64>,
}

/// Why a batch was not stored.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A record id is already stored (or repeated in the batch) with other content; nothing
    /// of the batch was stored.
    #[error("record {record_id} of offer {offer_id} was already reported with other content")]
    Conflict {
        /// The offer.
        offer_id: String,
        /// The record id.
        record_id: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for RecordError {
    fn from(error: sled::Error) -> Self {
        Self::Store(error.into())
    }
}

/// One new record, encoded for the transaction.
struct Encoded {
    id_key: Vec<u8>,
    key: Vec<u8>,
    tree: &'static str,
    value: Vec<u8>,
    entry: Vec<u8>,
}

fn now() -> prost_types::Timestamp {
    std::time::SystemTime::now().into()
}

impl Store {
    /// Stores a batch of records reported to `member_id`'s node, each new one with its journal
    /// entry, all in one transaction. Records already stored with the same content are counted
    /// as duplicates; one with other content fails the whole batch.
    pub fn store_records(
        &self,
        member_id: &str,
        records: Vec<Filed>,
        same: Sameness,
    ) -> Result<Stored, RecordError> {
        let usage = self.tree(USAGE_TREE)?;
        let availability = self.tree(AVAILABILITY_TREE)?;
        let ids = self.tree(RECORD_IDS_TREE)?;
        let journal = self.tree(JOURNAL_TREE)?;
        self.journal.append(|first| {
            let mut fresh: Vec<(Vec<u8>, Vec<u8>, &Filed)> = Vec::new();
            let mut in_batch: HashMap<Vec<u8>, &Filed> = HashMap::new();
            let mut duplicates = 0;
            for record in &records {
                let id_key = record.id_key();
                let conflict = || RecordError::Conflict {
                    offer_id: record.offer_id().to_owned(),
                    record_id: record.record_id().to_owned(),
                };
                if let Some(earlier) = in_batch.get(&id_key) {
                    if !record.same_as(&earlier.encode(), &same)? {
                        return Err(conflict());
                    }
                    duplicates += 1;
                    continue;
                }
                if let Some(stored_key) = ids.get(&id_key)? {
                    let tree = if record.tree() == USAGE_TREE {
                        &usage
                    } else {
                        &availability
                    };
                    let stored = tree.get(&stored_key)?.ok_or_else(|| {
                        StoreError::Sled(sled::Error::ReportableBug(format!(
                            "record index points to a missing record: {}",
                            String::from_utf8_lossy(&stored_key)
                        )))
                    })?;
                    if !record.same_as(&stored, &same)? {
                        return Err(conflict());
                    }
                    duplicates += 1;
                    continue;
                }
                in_batch.insert(id_key.clone(), record);
                fresh.push((id_key, record.key(), record));
            }
            if fresh.is_empty() {
                return Ok((
                    Stored {
                        accepted: 0,
                        duplicates,
                        revision: None,
                    },
                    None,
                ));
            }
            let time = now();
            let encoded: Vec<Encoded> = fresh
                .iter()
                .enumerate()
                .map(|(i, (id_key, k, record))| {
                    let entry = record.journal_entry(member_id, first + i as u64, time);
                    Encoded {
                        id_key: id_key.clone(),
                        key: k.clone(),
                        tree: record.tree(),
                        value: record.encode(),
                        entry: entry.encode_to_vec(),
                    }
                })
                .collect();
            let last = first + encoded.len() as u64 - 1;
            let result: Result<(), TransactionError<()>> = (&usage, &availability, &ids, &journal)
                .transaction(|(usage, availability, ids, journal)| {
                    for (i, e) in encoded.iter().enumerate() {
                        let (id_key, k, value, entry) = (&e.id_key, &e.key, &e.value, &e.entry);
                        let tree = if e.tree == USAGE_TREE {
                            usage
                        } else {
                            availability
                        };
                        tree.insert(k.as_slice(), value.as_slice())?;
                        ids.insert(id_key.as_slice(), k.as_slice())?;
                        journal.insert(&key(first + i as u64), entry.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((
                Stored {
                    accepted: encoded.len(),
                    duplicates,
                    revision: Some(last),
                },
                Some(last),
            ))
        })
    }

    /// Applies a record replicated from `source`'s journal at `position` (on the coordinator):
    /// stored unless its id is known, with the cursor moved in the same transaction. A
    /// position at or below the cursor is a duplicate.
    pub fn apply_record(
        &self,
        source: &str,
        position: &Cursor,
        record: &Filed,
    ) -> Result<Applied, StoreError> {
        let tree = self.tree(record.tree())?;
        let ids = self.tree(RECORD_IDS_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        // Serialized with the catalogue's writes, which move the same cursors.
        self.catalogue_log.append(|_| {
            if let Some(stored) = self.cursor(source)?
                && stored.journal_id == position.journal_id
                && position.revision <= stored.revision
            {
                return Ok((Applied::Duplicate, None));
            }
            let id_key = record.id_key();
            let known = ids.get(&id_key)?.is_some();
            let (k, value, cursor) = (record.key(), record.encode(), position.encode_to_vec());
            let result: Result<(), TransactionError<()>> =
                (&tree, &ids, &cursors).transaction(|(tree, ids, cursors)| {
                    if !known {
                        tree.insert(k.as_slice(), value.as_slice())?;
                        ids.insert(id_key.as_slice(), k.as_slice())?;
                    }
                    cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((Applied::CursorOnly, None))
        })
    }

    /// The usage records of `offer_id` filed under months `from..=to` (`yyyymm`).
    pub fn usage_records(
        &self,
        offer_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<pb::UsageRecord>, StoreError> {
        let bound = |month: u32| {
            let mut k = offer_id.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(&month.to_be_bytes());
            k
        };
        self.tree(USAGE_TREE)?
            .range(bound(from)..bound(to.saturating_add(1)))
            .map(|item| {
                let (k, raw) = item?;
                decode(USAGE_TREE, &k, &raw)
            })
            .collect()
    }

    /// The availability records of `offer_id` observed in `[from, to)` (seconds).
    pub fn availability_records(
        &self,
        offer_id: &str,
        from: u64,
        to: u64,
    ) -> Result<Vec<pb::AvailabilityRecord>, StoreError> {
        let bound = |at: u64| {
            let mut k = offer_id.as_bytes().to_vec();
            k.push(0);
            k.extend_from_slice(&at.to_be_bytes());
            k
        };
        self.tree(AVAILABILITY_TREE)?
            .range(bound(from)..bound(to))
            .map(|item| {
                let (k, raw) = item?;
                decode(AVAILABILITY_TREE, &k, &raw)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAME: Sameness = Sameness {
        usage: |a, b| a.value == b.value && a.metric == b.metric,
        availability: |a, b| a.observation == b.observation,
    };

    fn usage(id: &str, value: f64) -> Filed {
        Filed::Usage(
            pb::UsageRecord {
                record_id: id.into(),
                offer_id: "unistra.pod".into(),
                metric: "requests".into(),
                value,
                ..Default::default()
            },
            202_611,
        )
    }

    #[tokio::test]
    async fn a_batch_is_stored_once_and_a_conflict_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .store_records(
                "unistra",
                vec![usage("a", 1.0), usage("b", 2.0), usage("a", 1.0)],
                SAME,
            )
            .unwrap();
        assert_eq!(
            first,
            Stored {
                accepted: 2,
                duplicates: 1,
                revision: Some(2)
            }
        );
        store.journal_durable(2).await.unwrap();
        let again = store
            .store_records("unistra", vec![usage("b", 2.0), usage("c", 3.0)], SAME)
            .unwrap();
        assert_eq!(
            (again.accepted, again.duplicates, again.revision),
            (1, 1, Some(3))
        );
        let conflict = store.store_records("unistra", vec![usage("d", 4.0), usage("a", 9.0)], SAME);
        assert!(
            matches!(&conflict, Err(RecordError::Conflict { record_id, .. }) if record_id == "a"),
            "{conflict:?}"
        );
        let stored = store
            .usage_records("unistra.pod", 202_611, 202_611)
            .unwrap();
        let ids: Vec<&str> = stored.iter().map(|r| r.record_id.as_str()).collect();
        assert_eq!(
            ids,
            ["a", "b", "c"],
            "d was not stored with the conflicting batch"
        );
        assert!(
            store
                .usage_records("unistra.pod", 202_612, 202_701)
                .unwrap()
                .is_empty()
        );
        store.journal_durable(3).await.unwrap();
        let entries = store.journal_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].entity_id, "c");
    }

    #[test]
    fn replicated_records_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let at = |revision| Cursor {
            journal_id: "j".into(),
            revision,
        };
        store
            .apply_record("unistra", &at(1), &usage("a", 1.0))
            .unwrap();
        assert_eq!(
            store
                .apply_record("unistra", &at(1), &usage("a", 1.0))
                .unwrap(),
            Applied::Duplicate
        );
        // The same record id at a later position (a node that re-journaled it) is not
        // stored twice either.
        store
            .apply_record("unistra", &at(2), &usage("a", 1.0))
            .unwrap();
        assert_eq!(
            store
                .usage_records("unistra.pod", 0, u32::MAX - 1)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.cursor("unistra").unwrap().unwrap().revision, 2);
    }
}
