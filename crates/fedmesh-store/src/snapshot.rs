//! Snapshots of a node's state for its followers (`JournalService.GetSnapshot`): what a
//! follower whose cursor was compacted away applies before it watches again.
//!
//! A snapshot is consistent at one journal revision R, taken under the write side of the
//! store's write gate (as [`Store::snapshot`] does for backups) and held only for as long as it
//! takes to copy the entity trees' values (offers, subscriptions, incidents, maintenance
//! windows: the live entities, which a node keeps few of) and to note R and the floor of
//! sled's id generator. Record buckets, the bulk of a node's state, are not copied: they are
//! read afterwards a few at a time, and only those with an id below the floor, which existed
//! at R (buckets are only ever added, with increasing ids, by writes that also write the
//! journal). So memory is bounded by the node's live entities plus one batch of buckets,
//! and writers wait only for the copy of the entities.
//!
//! Anything that removes or rewrites buckets on a node (closing months) must call
//! [`Store::buckets_rewritten`]: a snapshot whose records were read across such a change is
//! refused at its end ([`Store::snapshot_intact`]) and the follower asks again.

use std::sync::atomic::Ordering;

use fedmesh_proto::pb;

use crate::usage::BUCKETS_TREE;
use crate::{Store, StoreError, decode};

/// The entity trees a snapshot copies, with their kind.
const ENTITY_TREES: [(&str, pb::EntityKind); 5] = [
    ("offers", pb::EntityKind::Offer),
    ("subscriptions", pb::EntityKind::Subscription),
    ("incidents", pb::EntityKind::Incident),
    ("maintenance", pb::EntityKind::MaintenanceWindow),
    (crate::reports::REPORTS_TREE, pb::EntityKind::MonthlyReport),
];

/// A node's state at one journal revision (see the module's documentation).
#[derive(Debug, Clone)]
pub struct JournalSnapshot {
    /// The revision it is consistent at; call [`Store::journal_durable`] with it before
    /// sending anything.
    pub revision: u64,
    /// The journal's id.
    pub journal_id: String,
    /// The node's member, the writer of every item.
    member_id: String,
    /// The entities' stored values, by kind.
    entities: Vec<(pb::EntityKind, sled::IVec)>,
    /// Buckets with an id below it existed at `revision`.
    bucket_floor: u64,
    /// [`Store::buckets_rewritten`]'s count when taken.
    epoch: u64,
}

impl JournalSnapshot {
    /// How many entities it holds.
    pub fn entity_count(&self) -> usize {
        self.entities.len()
    }

    fn item(
        &self,
        kind: pb::EntityKind,
        id: String,
        payload: pb::journal_entry::Payload,
    ) -> pb::JournalEntry {
        pb::JournalEntry {
            revision: self.revision,
            record_time: None,
            member_id: self.member_id.clone(),
            entity_kind: kind as i32,
            entity_id: id,
            deleted: false,
            payload: Some(payload),
        }
    }

    /// The entities of the kinds `wanted` accepts, as journal entries at the snapshot's
    /// revision.
    pub fn entities(
        &self,
        wanted: impl Fn(i32) -> bool,
    ) -> Result<Vec<pb::JournalEntry>, StoreError> {
        use pb::journal_entry::Payload;
        let mut out = Vec::new();
        for (kind, raw) in &self.entities {
            if !wanted(*kind as i32) {
                continue;
            }
            let (id, payload) = match kind {
                pb::EntityKind::Offer => {
                    let offer: pb::Offer = decode("offers", b"", raw)?;
                    (offer.offer_id.clone(), Payload::Offer(offer))
                }
                pb::EntityKind::Subscription => {
                    let s: pb::Subscription = decode("subscriptions", b"", raw)?;
                    (s.subscription_id.clone(), Payload::Subscription(s))
                }
                pb::EntityKind::Incident => {
                    let i: pb::Incident = decode("incidents", b"", raw)?;
                    (i.incident_id.clone(), Payload::Incident(i))
                }
                pb::EntityKind::MonthlyReport => {
                    let r: pb::MonthlyReport = decode(crate::reports::REPORTS_TREE, b"", raw)?;
                    (r.report_id.clone(), Payload::MonthlyReport(r))
                }
                _ => {
                    let m: pb::MaintenanceWindow = decode("maintenance", b"", raw)?;
                    (m.maintenance_id.clone(), Payload::MaintenanceWindow(m))
                }
            };
            out.push(self.item(*kind, id, payload));
        }
        Ok(out)
    }
}

/// A page of a snapshot's record buckets.
#[derive(Debug, Clone, Default)]
pub struct RecordPage {
    /// Each bucket as a journal entry of usage or availability records.
    pub items: Vec<pb::JournalEntry>,
    /// Where the next page starts (`None`: no more).
    pub next: Option<Vec<u8>>,
}

impl Store {
    /// Takes a snapshot of `member_id`'s node state (see the module's documentation). Writes
    /// wait while the entities are copied.
    pub fn journal_snapshot(&self, member_id: &str) -> Result<JournalSnapshot, StoreError> {
        let journal_id = self.journal_id()?;
        let trees: Vec<(pb::EntityKind, crate::Tree)> = ENTITY_TREES
            .iter()
            .map(|(name, kind)| Ok((*kind, self.tree(name)?)))
            .collect::<Result<_, StoreError>>()?;
        let _quiet = self.writes.write();
        let revision = self.journal.committed();
        let bucket_floor = self.db()?.generate_id()?;
        let epoch = self.buckets_epoch.load(Ordering::SeqCst);
        let mut entities = Vec::new();
        for (kind, tree) in trees {
            for item in tree.iter().values() {
                entities.push((kind, item?));
            }
        }
        Ok(JournalSnapshot {
            revision,
            journal_id,
            member_id: member_id.to_owned(),
            entities,
            bucket_floor,
            epoch,
        })
    }

    /// Up to `limit` record buckets of `snapshot` from key `from` on (empty: the first), as
    /// journal entries at the snapshot's revision. Blocks on sled: call it off the runtime.
    pub fn snapshot_records(
        &self,
        snapshot: &JournalSnapshot,
        from: &[u8],
        limit: usize,
    ) -> Result<RecordPage, StoreError> {
        use pb::journal_entry::Payload;
        let mut page = RecordPage::default();
        for item in self.tree(BUCKETS_TREE)?.range(from.to_vec()..) {
            let (k, raw) = item?;
            if page.items.len() == limit {
                page.next = Some(k.to_vec());
                return Ok(page);
            }
            let id = k
                .len()
                .checked_sub(8)
                .and_then(|at| k[at..].try_into().ok())
                .map_or(u64::MAX, u64::from_be_bytes);
            if id >= snapshot.bucket_floor {
                // Written after the snapshot's revision: its entry follows in the journal.
                continue;
            }
            let item = match k.first() {
                Some(b'u') => {
                    let batch: pb::UsageRecordBatch = decode(BUCKETS_TREE, &k, &raw)?;
                    let first = batch.records.first().map(|r| r.record_id.clone());
                    snapshot.item(
                        pb::EntityKind::UsageRecord,
                        first.unwrap_or_default(),
                        Payload::UsageRecords(batch),
                    )
                }
                Some(b'a') => {
                    let batch: pb::AvailabilityRecordBatch = decode(BUCKETS_TREE, &k, &raw)?;
                    let first = batch.records.first().map(|r| r.record_id.clone());
                    snapshot.item(
                        pb::EntityKind::AvailabilityRecord,
                        first.unwrap_or_default(),
                        Payload::AvailabilityRecords(batch),
                    )
                }
                _ => continue,
            };
            page.items.push(item);
        }
        Ok(page)
    }

    /// Whether no bucket was removed or rewritten since `snapshot` was taken: its records,
    /// read after it was taken, are those of its revision.
    pub fn snapshot_intact(&self, snapshot: &JournalSnapshot) -> bool {
        self.buckets_epoch.load(Ordering::SeqCst) == snapshot.epoch
    }

    /// Tells snapshots being read that buckets were removed or rewritten (see the module's
    /// documentation).
    pub fn buckets_rewritten(&self) {
        self.buckets_epoch.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Filed;

    fn usage(id: &str) -> Filed {
        Filed::Usage(
            pb::UsageRecord {
                record_id: id.into(),
                offer_id: "unistra.pod".into(),
                metric: "requests".into(),
                value: 1.0,
                ..Default::default()
            },
            202_611,
        )
    }

    #[tokio::test]
    async fn a_snapshot_holds_what_was_there_at_its_revision_and_nothing_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .update_offer("unistra", "unistra.pod", |_, _| {
                Ok::<_, ()>(pb::Offer {
                    offer_id: "unistra.pod".into(),
                    ..Default::default()
                })
            })
            .unwrap();
        store
            .store_records("unistra", vec![usage("a"), usage("b")])
            .unwrap();
        let snapshot = store.journal_snapshot("unistra").unwrap();
        assert_eq!(snapshot.revision, 2);
        // Written after: not in it.
        store.store_records("unistra", vec![usage("c")]).unwrap();
        let entities = snapshot.entities(|_| true).unwrap();
        assert_eq!(entities.len(), 1);
        assert_eq!(entities[0].entity_id, "unistra.pod");
        assert_eq!(entities[0].revision, 2);
        let mut records = Vec::new();
        let mut from = Vec::new();
        loop {
            let page = store.snapshot_records(&snapshot, &from, 1).unwrap();
            for item in page.items {
                if let Some(pb::journal_entry::Payload::UsageRecords(batch)) = item.payload {
                    records.extend(batch.records.into_iter().map(|r| r.record_id));
                }
            }
            match page.next {
                Some(next) => from = next,
                None => break,
            }
        }
        records.sort();
        assert_eq!(records, ["a", "b"]);
        assert!(store.snapshot_intact(&snapshot));
        store.buckets_rewritten();
        assert!(!store.snapshot_intact(&snapshot));
    }
}
