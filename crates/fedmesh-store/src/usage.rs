//! Usage and availability records, on the provider's node (each reported batch written with
//! one journal entry, in one transaction) and on the coordinator (applied from the provider's
//! journal with the replication cursor).
//!
//! Trees:
//! - `record_ids`: `u|a offer_id NUL record_id` → on the provider's node, the record's
//!   fingerprint (a tag byte and the first 16 bytes of the SHA-256 of its content, node stamps
//!   cleared): the identity a repeated report is recognized by, and what it is compared with.
//!   Stores written before schema 3 hold the content itself, which still compares. The
//!   coordinator keeps no such index: its cursors count each journal entry once;
//! - `record_buckets`: `u|a offer_id NUL yyyymm(BE u32) id(BE u64)` → the records of one
//!   batch filed under that month (a `UsageRecordBatch` or `AvailabilityRecordBatch`), so that
//!   a month of an offer is one range scan. Usage is filed by the month of its period on the
//!   offer's calendar, availability by the UTC month of its observation.
//!
//! One batch costs one journal entry and one bucket per month it touches, plus one id per
//! record: ingestion speed is bounded by the id index, not by the journal.

use std::collections::{BTreeMap, HashMap};

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::{Applied, CURSORS_TREE, Cursor};
use crate::journal::JOURNAL_TREE;
use crate::log::key;
use crate::{Store, StoreError, decode};

pub(crate) const RECORD_IDS_TREE: &str = "record_ids";
pub(crate) const BUCKETS_TREE: &str = "record_buckets";
pub(crate) const USAGE: u8 = b'u';
pub(crate) const AVAILABILITY: u8 = b'a';

/// A record to store and the month (`yyyymm`) it is filed under: for usage, the month of its
/// period's start on the offer's calendar; for availability, the UTC month of its observation.
#[derive(Debug, Clone)]
pub enum Filed {
    /// A usage record and its month.
    Usage(pb::UsageRecord, u32),
    /// An availability record and its month.
    Availability(pb::AvailabilityRecord, u32),
}

impl Filed {
    fn tag(&self) -> u8 {
        match self {
            Self::Usage(..) => USAGE,
            Self::Availability(..) => AVAILABILITY,
        }
    }

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

    fn month(&self) -> u32 {
        match self {
            Self::Usage(_, m) | Self::Availability(_, m) => *m,
        }
    }

    fn id_key(&self) -> Vec<u8> {
        let mut k = prefix(self.tag(), self.offer_id());
        k.extend_from_slice(self.record_id().as_bytes());
        k
    }

    /// What a repeated report must match: the record without the stamps the node adds.
    fn content(&self) -> Vec<u8> {
        match self {
            Self::Usage(r, _) => pb::UsageRecord {
                record_time: None,
                reported_by: String::new(),
                ..r.clone()
            }
            .encode_to_vec(),
            Self::Availability(r, _) => pb::AvailabilityRecord {
                record_time: None,
                reported_by: String::new(),
                ..r.clone()
            }
            .encode_to_vec(),
        }
    }
}

/// The first byte of a fingerprint. A stored content (a prost-encoded record, whose first byte
/// is the key of a low-numbered field) never starts with it.
const FINGERPRINT: u8 = 0xff;
const FINGERPRINT_LEN: usize = 17;

/// A record's content as `record_ids` keeps it on the provider: 17 bytes instead of the whole
/// record, since the id index is read only to recognize a repeated report.
fn fingerprint(content: &[u8]) -> Vec<u8> {
    let digest = ring::digest::digest(&ring::digest::SHA256, content);
    let mut value = Vec::with_capacity(FINGERPRINT_LEN);
    value.push(FINGERPRINT);
    value.extend_from_slice(&digest.as_ref()[..FINGERPRINT_LEN - 1]);
    value
}

/// Whether a stored `record_ids` value (a fingerprint, or a whole content written before
/// schema 3) is that of `content`.
fn same_content(stored: &[u8], content: &[u8], fingerprinted: &[u8]) -> bool {
    if stored.len() == FINGERPRINT_LEN && stored.first() == Some(&FINGERPRINT) {
        stored == fingerprinted
    } else {
        stored == content
    }
}

pub(crate) fn prefix(tag: u8, offer_id: &str) -> Vec<u8> {
    let mut k = vec![tag];
    k.extend_from_slice(offer_id.as_bytes());
    k.push(0);
    k
}

fn bucket_key(tag: u8, offer_id: &str, month: u32, id: u64) -> Vec<u8> {
    let mut k = prefix(tag, offer_id);
    k.extend_from_slice(&month.to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The records of `fresh` grouped into buckets (kind, offer, month), encoded.
fn buckets(fresh: &[&Filed]) -> BTreeMap<(u8, String, u32), Vec<u8>> {
    let mut usage: BTreeMap<(String, u32), pb::UsageRecordBatch> = BTreeMap::new();
    let mut availability: BTreeMap<(String, u32), pb::AvailabilityRecordBatch> = BTreeMap::new();
    for record in fresh {
        let at = (record.offer_id().to_owned(), record.month());
        match record {
            Filed::Usage(r, _) => usage.entry(at).or_default().records.push(r.clone()),
            Filed::Availability(r, _) => {
                availability.entry(at).or_default().records.push(r.clone())
            }
        }
    }
    let usage = usage
        .into_iter()
        .map(|((offer, month), batch)| ((USAGE, offer, month), batch.encode_to_vec()));
    let availability = availability
        .into_iter()
        .map(|((offer, month), batch)| ((AVAILABILITY, offer, month), batch.encode_to_vec()));
    usage.chain(availability).collect()
}

/// A key and its value, to write.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

/// What storing a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stored {
    /// Records newly stored.
    pub accepted: usize,
    /// Records stored before with the same content, not stored again.
    pub duplicates: usize,
    /// The journal revision of the batch's entry; call [`Store::journal_durable`] with it
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
    /// A month of the batch closed since its records were checked; nothing of the batch was
    /// stored (check the records again: they are refused now).
    #[error("month {month} of offer {offer_id} closed while the batch was being stored")]
    Closed {
        /// The offer.
        offer_id: String,
        /// The month, `yyyymm`.
        month: u32,
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

/// The new records of a batch, with their id index entries, and how many were duplicates.
struct Sorted<'a> {
    fresh: Vec<&'a Filed>,
    index: Vec<(Vec<u8>, Vec<u8>)>,
    duplicates: usize,
}

/// The records of a batch not stored before; `Err` on a conflict. Duplicates are counted.
fn new_records<'a>(records: &'a [Filed], ids: &sled::Tree) -> Result<Sorted<'a>, RecordError> {
    let mut fresh = Vec::new();
    let mut index = Vec::new();
    let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut duplicates = 0;
    for record in records {
        let id_key = record.id_key();
        let content = record.content();
        let fingerprinted = fingerprint(&content);
        let stored = match seen.get(&id_key) {
            Some(earlier) => Some(earlier.clone()),
            None => ids.get(&id_key)?.map(|v| v.to_vec()),
        };
        match stored {
            Some(stored) if same_content(&stored, &content, &fingerprinted) => duplicates += 1,
            Some(_) => {
                return Err(RecordError::Conflict {
                    offer_id: record.offer_id().to_owned(),
                    record_id: record.record_id().to_owned(),
                });
            }
            None => {
                seen.insert(id_key.clone(), fingerprinted.clone());
                index.push((id_key, fingerprinted));
                fresh.push(record);
            }
        }
    }
    Ok(Sorted {
        fresh,
        index,
        duplicates,
    })
}

fn now() -> prost_types::Timestamp {
    fedmesh_core::clock::now_timestamp()
}

impl Store {
    /// Stores a batch of records reported to `member_id`'s node: the new ones with one journal
    /// entry per kind, all in one transaction. Records already stored with the same content
    /// are counted as duplicates; one with other content fails the whole batch.
    pub fn store_records(
        &self,
        member_id: &str,
        records: Vec<Filed>,
    ) -> Result<Stored, RecordError> {
        self.store_open_records(member_id, records, &[])
    }

    /// [`Store::store_records`], unless one of `months` (an offer and a `yyyymm` on its
    /// calendar: the months the batch's records belong to) was closed
    /// ([`Store::mark_closing`]) since the records were checked: [`RecordError::Closed`] then,
    /// and nothing is stored. Checked under the journal's lock, which closing takes too.
    pub fn store_open_records(
        &self,
        member_id: &str,
        records: Vec<Filed>,
        months: &[(String, u32)],
    ) -> Result<Stored, RecordError> {
        let _writing = self.writing();
        let ids = self.tree(RECORD_IDS_TREE)?;
        let bucket_tree = self.tree(BUCKETS_TREE)?;
        let journal = self.tree(JOURNAL_TREE)?;
        self.journal.append(|first| {
            for (offer_id, month) in months {
                if self.closed_month(offer_id, *month)?.is_some() {
                    return Err(RecordError::Closed {
                        offer_id: offer_id.clone(),
                        month: *month,
                    });
                }
            }
            let Sorted {
                fresh,
                index,
                duplicates,
            } = new_records(&records, &ids)?;
            if fresh.is_empty() {
                let stored = Stored {
                    accepted: 0,
                    duplicates,
                    revision: None,
                };
                return Ok((stored, None));
            }
            let time = now();
            let mut entries = Vec::new();
            let usage: Vec<pb::UsageRecord> = fresh
                .iter()
                .filter_map(|r| match r {
                    Filed::Usage(r, _) => Some(r.clone()),
                    Filed::Availability(..) => None,
                })
                .collect();
            let availability: Vec<pb::AvailabilityRecord> = fresh
                .iter()
                .filter_map(|r| match r {
                    Filed::Availability(r, _) => Some(r.clone()),
                    Filed::Usage(..) => None,
                })
                .collect();
            let mut entry = |kind: pb::EntityKind, id: String, payload| {
                let revision = first + entries.len() as u64;
                let e = pb::JournalEntry {
                    revision,
                    record_time: Some(time),
                    member_id: member_id.to_owned(),
                    entity_kind: kind as i32,
                    entity_id: id,
                    deleted: false,
                    payload: Some(payload),
                };
                let encoded = e.encode_to_vec();
                let fits = self.entry_fits(encoded.len());
                entries.push((key(revision), encoded));
                fits
            };
            if let Some(head) = usage.first() {
                let id = head.record_id.clone();
                entry(
                    pb::EntityKind::UsageRecord,
                    id,
                    pb::journal_entry::Payload::UsageRecords(pb::UsageRecordBatch {
                        records: usage,
                    }),
                )?;
            }
            if let Some(head) = availability.first() {
                let id = head.record_id.clone();
                entry(
                    pb::EntityKind::AvailabilityRecord,
                    id,
                    pb::journal_entry::Payload::AvailabilityRecords(pb::AvailabilityRecordBatch {
                        records: availability,
                    }),
                )?;
            }
            let mut filed = Vec::new();
            for ((tag, offer, month), value) in buckets(&fresh) {
                filed.push((
                    bucket_key(tag, &offer, month, self.db()?.generate_id()?),
                    value,
                ));
            }
            let last = first + entries.len() as u64 - 1;
            let result: Result<(), TransactionError<()>> = (&*ids, &*bucket_tree, &*journal)
                .transaction(|(ids, bucket_tree, journal)| {
                    for (k, v) in &index {
                        ids.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &filed {
                        bucket_tree.insert(k.as_slice(), v.as_slice())?;
                    }
                    for (k, v) in &entries {
                        journal.insert(k, v.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            let stored = Stored {
                accepted: fresh.len(),
                duplicates,
                revision: Some(last),
            };
            Ok((stored, Some(last)))
        })
    }

    /// Applies records replicated from `source`'s journal entry at `position` (on the
    /// coordinator): they are stored with the cursor moved in the same transaction, so each
    /// entry counts once. A position at or below the cursor, or of another journal than the
    /// cursor's, is a duplicate. A journal that started over is read again from its
    /// beginning after [`Store::forget_records`], so the coordinator keeps no index of
    /// record ids: one key per record would cost sled memory for every record ever counted.
    pub fn apply_records(
        &self,
        source: &str,
        position: &Cursor,
        records: Vec<Filed>,
    ) -> Result<Applied, StoreError> {
        let _writing = self.writing();
        let bucket_tree = self.tree(BUCKETS_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        // Serialized with the catalogue's writes, which move the same cursors.
        self.catalogue_log.append(|_| {
            let counted = self.cursor(source)?.is_some_and(|stored| {
                stored.journal_id != position.journal_id || position.revision <= stored.revision
            });
            if counted || self.resyncing(source)?.is_some() {
                // Already counted, or from a journal the source no longer has (a follower
                // still reading it): counting it would count a record twice once the new
                // journal is read, so only [`Store::forget_records`] moves to another one.
                return Ok((Applied::Duplicate, None));
            }
            let filed = self.filed_buckets(&records)?;
            let cursor = position.encode_to_vec();
            let result: Result<(), TransactionError<()>> =
                (&*bucket_tree, &*cursors).transaction(|(bucket_tree, cursors)| {
                    for (k, v) in &filed {
                        bucket_tree.insert(k.as_slice(), v.as_slice())?;
                    }
                    cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((Applied::CursorOnly, None))
        })
    }

    /// The buckets (keys and values) that file `records` on the coordinator. A provider
    /// journals a record once: an id twice in one entry is kept once all the same.
    pub(crate) fn filed_buckets(&self, records: &[Filed]) -> Result<Vec<KeyValue>, StoreError> {
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<&Filed> = records
            .iter()
            .filter(|record| seen.insert(record.id_key()))
            .collect();
        let mut filed = Vec::new();
        for ((tag, offer, month), value) in buckets(&fresh) {
            filed.push((
                bucket_key(tag, &offer, month, self.db()?.generate_id()?),
                value,
            ));
        }
        Ok(filed)
    }

    /// Forgets the records replicated from `source` (those of its offers, `source.*`) and
    /// points its cursor at the start of `journal_id` (on the coordinator, when `source`'s
    /// journal started over, or went back below what was applied, before reading it again).
    /// Serialized with the appliers, which move the same cursor, and done only while the
    /// cursor is on another journal or past `last_revision`, the journal's end: a second
    /// follower of the same source finds it done. Blocks on sled: call it off the async
    /// runtime. Returns how many buckets were removed.
    pub fn forget_records(
        &self,
        source: &str,
        journal_id: &str,
        last_revision: u64,
    ) -> Result<usize, StoreError> {
        let _writing = self.writing();
        self.catalogue_log.append(|_| {
            if self.cursor(source)?.is_some_and(|stored| {
                stored.journal_id == journal_id && stored.revision <= last_revision
            }) {
                return Ok((0, None));
            }
            let removed = self.restart_source(source, journal_id)?;
            Ok((removed, None))
        })
    }

    /// Removes every bucket of `source`'s offers (`source.*`), then points its cursor at the
    /// start of `journal_id` and flushes: the cursor moves last, so that an interrupted restart
    /// is done again. Returns how many buckets went. Callers hold the write gate and the
    /// catalogue log's lock, and call it off the async runtime.
    pub(crate) fn restart_source(
        &self,
        source: &str,
        journal_id: &str,
    ) -> Result<usize, StoreError> {
        let bucket_tree = self.tree(BUCKETS_TREE)?;
        let mut removed = 0;
        for tag in [USAGE, AVAILABILITY] {
            let mut start = vec![tag];
            start.extend_from_slice(source.as_bytes());
            start.push(b'.');
            loop {
                let keys: Vec<sled::IVec> = bucket_tree
                    .scan_prefix(&start)
                    .keys()
                    .take(1_000)
                    .collect::<Result<_, _>>()?;
                if keys.is_empty() {
                    break;
                }
                let mut batch = sled::Batch::default();
                removed += keys.len();
                for key in keys {
                    batch.remove(key);
                }
                bucket_tree.apply_batch(batch)?;
            }
        }
        self.buckets_rewritten();
        let cursor = Cursor {
            journal_id: journal_id.to_owned(),
            revision: 0,
        };
        self.tree(CURSORS_TREE)?
            .insert(source.as_bytes(), cursor.encode_to_vec())?;
        self.db()?.flush()?;
        Ok(removed)
    }

    /// Drops the index of record ids, which a coordinator does not use any more (schema 3):
    /// coordinators before it kept one key per record counted. Returns whether there was one.
    pub fn drop_record_index(&self) -> Result<bool, StoreError> {
        let _writing = self.writing();
        Ok(self.db()?.drop_tree(RECORD_IDS_TREE)?)
    }

    fn bucket_range<M: prost::Message + Default>(
        &self,
        tag: u8,
        offer_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<M>, StoreError> {
        let start = bucket_key(tag, offer_id, from, 0);
        let mut end = prefix(tag, offer_id);
        end.extend_from_slice(&to.saturating_add(1).to_be_bytes());
        self.tree(BUCKETS_TREE)?
            .range(start..end)
            .map(|item| {
                let (k, raw) = item?;
                decode(BUCKETS_TREE, &k, &raw)
            })
            .collect()
    }

    /// The usage records of `offer_id` filed under months `from..=to` (`yyyymm`).
    pub fn usage_records(
        &self,
        offer_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<pb::UsageRecord>, StoreError> {
        Ok(self
            .bucket_range::<pb::UsageRecordBatch>(USAGE, offer_id, from, to)?
            .into_iter()
            .flat_map(|b| b.records)
            .collect())
    }

    /// The availability records of `offer_id` observed in UTC months `from..=to` (`yyyymm`).
    pub fn availability_records(
        &self,
        offer_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<pb::AvailabilityRecord>, StoreError> {
        Ok(self
            .bucket_range::<pb::AvailabilityRecordBatch>(AVAILABILITY, offer_id, from, to)?
            .into_iter()
            .flat_map(|b| b.records)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            )
            .unwrap();
        assert_eq!(
            first,
            Stored {
                accepted: 2,
                duplicates: 1,
                revision: Some(1)
            }
        );
        store.journal_durable(1).await.unwrap();
        let again = store
            .store_records("unistra", vec![usage("b", 2.0), usage("c", 3.0)])
            .unwrap();
        assert_eq!(
            (again.accepted, again.duplicates, again.revision),
            (1, 1, Some(2))
        );
        let conflict = store.store_records("unistra", vec![usage("d", 4.0), usage("a", 9.0)]);
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
        store.journal_durable(2).await.unwrap();
        // One journal entry per stored batch, holding its new records.
        let entries = store.journal_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].entity_id, "c");
        assert!(matches!(
            &entries[0].payload,
            Some(pb::journal_entry::Payload::UsageRecords(b)) if b.records.len() == 2
        ));
        // Stamps set by the node are not content: a repeat with other stamps is a duplicate.
        let Filed::Usage(mut stamped, month) = usage("b", 2.0) else {
            unreachable!()
        };
        stamped.reported_by = "spiffe://f/member/unistra/agent/other".into();
        let repeat = store
            .store_records("unistra", vec![Filed::Usage(stamped, month)])
            .unwrap();
        assert_eq!(repeat.duplicates, 1);
        // The id index keeps a fingerprint of each record, not the record.
        let ids = store.tree(RECORD_IDS_TREE).unwrap();
        assert_eq!(ids.len(), 3);
        for pair in ids.iter() {
            let (_, value) = pair.unwrap();
            assert_eq!(value.len(), FINGERPRINT_LEN);
            assert_eq!(value[0], FINGERPRINT);
        }
    }

    /// Ids stored by earlier versions hold the record's content: a repeat still compares.
    #[test]
    fn contents_stored_before_fingerprints_still_compare() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = usage("a", 1.0);
        store
            .tree(RECORD_IDS_TREE)
            .unwrap()
            .insert(old.id_key(), old.content())
            .unwrap();
        let repeat = store.store_records("unistra", vec![old]).unwrap();
        assert_eq!((repeat.accepted, repeat.duplicates), (0, 1));
        let conflict = store.store_records("unistra", vec![usage("a", 2.0)]);
        assert!(
            matches!(&conflict, Err(RecordError::Conflict { record_id, .. }) if record_id == "a"),
            "{conflict:?}"
        );
    }

    #[test]
    fn replicated_records_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let at = |journal: &str, revision| Cursor {
            journal_id: journal.into(),
            revision,
        };
        let ids = |store: &Store| -> Vec<String> {
            store
                .usage_records("unistra.pod", 0, u32::MAX - 1)
                .unwrap()
                .into_iter()
                .map(|r| r.record_id)
                .collect()
        };
        store
            .apply_records(
                "unistra",
                &at("j", 1),
                vec![usage("a", 1.0), usage("b", 1.0), usage("a", 1.0)],
            )
            .unwrap();
        assert_eq!(
            store
                .apply_records("unistra", &at("j", 1), vec![usage("a", 1.0)])
                .unwrap(),
            Applied::Duplicate
        );
        store
            .apply_records("unistra", &at("j", 2), vec![usage("c", 1.0)])
            .unwrap();
        assert_eq!(ids(&store), ["a", "b", "c"]);
        assert_eq!(store.cursor("unistra").unwrap().unwrap().revision, 2);
        // Another member's records stay when unistra's journal starts over.
        store
            .apply_records(
                "rennes2",
                &at("r", 1),
                vec![Filed::Usage(
                    pb::UsageRecord {
                        record_id: "r".into(),
                        offer_id: "rennes2.moodle".into(),
                        ..Default::default()
                    },
                    202_611,
                )],
            )
            .unwrap();
        // The journal started over (a restored node): what was counted from the old one is
        // forgotten, and the new journal's records count once.
        assert_eq!(store.forget_records("unistra", "k", 0).unwrap(), 2);
        assert!(ids(&store).is_empty());
        // A second follower of unistra finds it done; one still reading the old journal
        // counts nothing.
        assert_eq!(store.forget_records("unistra", "k", 0).unwrap(), 0);
        assert_eq!(
            store
                .apply_records("unistra", &at("j", 3), vec![usage("d", 1.0)])
                .unwrap(),
            Applied::Duplicate
        );
        assert_eq!(
            store.cursor("unistra").unwrap().unwrap(),
            at("k", 0),
            "the cursor points at the new journal's start"
        );
        store
            .apply_records(
                "unistra",
                &at("k", 1),
                vec![usage("a", 1.0), usage("b", 1.0)],
            )
            .unwrap();
        assert_eq!(ids(&store), ["a", "b"]);
        // The same journal behind what was applied (its files restored behind fedmesh's back):
        // forgotten too, once.
        assert_eq!(store.forget_records("unistra", "k", 0).unwrap(), 1);
        assert!(ids(&store).is_empty());
        assert_eq!(store.cursor("unistra").unwrap().unwrap(), at("k", 0));
        assert_eq!(store.forget_records("unistra", "k", 0).unwrap(), 0);
        assert_eq!(
            store
                .usage_records("rennes2.moodle", 0, u32::MAX - 1)
                .unwrap()
                .len(),
            1
        );
        // The coordinator keeps no index of record ids.
        assert!(!store.drop_record_index().unwrap());
    }
}
