//! Monthly reports and the closing of months (design section 9).
//!
//! Trees:
//! - `closed_months`: `offer_id NUL yyyymm(BE u32)` → a [`ClosedMonth`]: when the month of
//!   the offer closed and how far closing went. Written under the journal's lock, like a batch
//!   of records, so that a batch either lands before the month closes (and is in its reports)
//!   or sees the mark and is refused;
//! - `reports`: `report_id` → a [`pb::MonthlyReport`], written with its journal entry and
//!   never rewritten (only events are added to its history). On the coordinator, the offer
//!   reports it applied from the providers' journals; on a subscriber's node, its tenancies'
//!   reports mirrored from the providers.
//!
//! Closing one month of an offer, on the provider's node: mark it ([`Store::mark_closing`]),
//! write its reports, then ([`Store::archive_month`]) move its usage records out of the
//! database into the archive shelf `usage/<offer_id>/<yyyymm>` and drop their keys in
//! `record_ids` and `record_buckets` (and the same for the availability of UTC months no
//! report still needs), then mark it done. Each step is idempotent: a crash anywhere leaves
//! a month that the next pass takes up where it stopped.

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::{Applied, CURSORS_TREE, Cursor};
use crate::journal::{Entity, WriteError};
use crate::usage::{AVAILABILITY, BUCKETS_TREE, RECORD_IDS_TREE, USAGE, prefix};
use crate::{Store, StoreError, decode};

pub(crate) const CLOSED_TREE: &str = "closed_months";
pub(crate) const REPORTS_TREE: &str = "reports";

const REPORT: Entity<pb::MonthlyReport> = Entity {
    tree: REPORTS_TREE,
    kind: pb::EntityKind::MonthlyReport,
    id: |r| &r.report_id,
    payload: pb::journal_entry::Payload::MonthlyReport,
};

/// How far the closing of one month of an offer went.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, prost::Enumeration)]
#[repr(i32)]
pub enum CloseStage {
    /// Marked: records of the month are refused; its reports may not all be written yet.
    Closing = 0,
    /// Its reports are written; its records may still be in the database.
    Reported = 1,
    /// Its records are archived and their keys dropped: nothing is left to do.
    Archived = 2,
}

/// The mark of a closed month of an offer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClosedMonth {
    /// When the month closed, in Unix seconds: its reports are computed as of then.
    #[prost(int64, tag = "1")]
    pub close_time: i64,
    /// How far closing went.
    #[prost(enumeration = "CloseStage", tag = "2")]
    pub stage: i32,
}

fn closed_key(offer_id: &str, month: u32) -> Vec<u8> {
    let mut k = offer_id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&month.to_be_bytes());
    k
}

/// How many record buckets [`Store::archive_month`] archives and removes at a time (a bucket is
/// one reported batch's records of one month: up to 1,000).
pub const ARCHIVE_SLICE: usize = 256;

/// What archiving a month did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Archived {
    /// Usage records moved to the archive.
    pub usage_records: usize,
    /// Availability records moved to the archive.
    pub availability_records: usize,
    /// Keys removed from `record_ids`.
    pub ids_removed: usize,
    /// Buckets removed from `record_buckets`.
    pub buckets_removed: usize,
}

/// The unchanged outcome of a report write.
#[derive(Debug)]
pub struct Unchanged;

impl Store {
    /// The mark of `offer_id`'s month `month` (`yyyymm`), if it closed.
    pub fn closed_month(
        &self,
        offer_id: &str,
        month: u32,
    ) -> Result<Option<ClosedMonth>, StoreError> {
        let key = closed_key(offer_id, month);
        self.tree(CLOSED_TREE)?
            .get(&key)?
            .map(|raw| decode(CLOSED_TREE, &key, &raw))
            .transpose()
    }

    /// Marks `offer_id`'s month `month` closed as of `close_time` (Unix seconds), under the
    /// journal's lock: every batch of records stored after it sees the mark. A month already
    /// marked keeps its mark, which is returned.
    pub fn mark_closing(
        &self,
        offer_id: &str,
        month: u32,
        close_time: i64,
    ) -> Result<ClosedMonth, StoreError> {
        let _writing = self.writing();
        let closed = self.tree(CLOSED_TREE)?;
        let key = closed_key(offer_id, month);
        self.journal.append(|_| {
            if let Some(raw) = closed.get(&key)? {
                return Ok((decode(CLOSED_TREE, &key, &raw)?, None));
            }
            let mark = ClosedMonth {
                close_time,
                stage: CloseStage::Closing as i32,
            };
            closed.insert(key.as_slice(), mark.encode_to_vec())?;
            self.db()?.flush()?;
            Ok::<_, StoreError>((mark, None))
        })
    }

    /// Records how far the closing of a month went.
    pub fn set_close_stage(
        &self,
        offer_id: &str,
        month: u32,
        stage: CloseStage,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let closed = self.tree(CLOSED_TREE)?;
        let key = closed_key(offer_id, month);
        if let Some(raw) = closed.get(&key)? {
            let mut mark: ClosedMonth = decode(CLOSED_TREE, &key, &raw)?;
            mark.stage = stage as i32;
            closed.insert(key.as_slice(), mark.encode_to_vec())?;
            self.db()?.flush()?;
        }
        Ok(())
    }

    /// Writes a monthly report with its journal entry, unless one with its id exists (a
    /// report is never recomputed): `None` then. Call [`Store::journal_durable`] with the
    /// revision before acknowledging.
    pub fn write_report(
        &self,
        member_id: &str,
        report: pb::MonthlyReport,
    ) -> Result<Option<u64>, StoreError> {
        let _writing = self.writing();
        let id = report.report_id.clone();
        match self.write_journaled(&REPORT, member_id, &id, None, |current, _| match current {
            Some(_) => Err(Unchanged),
            None => Ok(report),
        }) {
            Ok((_, revision)) => Ok(Some(revision)),
            Err(WriteError::Rejected(Unchanged) | WriteError::Repeated(_)) => Ok(None),
            Err(WriteError::Store(e)) => Err(e),
        }
    }

    /// Stores a provider's copy of a report of this member's tenancy (on the subscriber's
    /// node), journaled, unless the copy held has as long a history. `None` when unchanged.
    pub fn mirror_report(
        &self,
        member_id: &str,
        report: pb::MonthlyReport,
    ) -> Result<Option<u64>, StoreError> {
        let _writing = self.writing();
        let id = report.report_id.clone();
        match self.write_journaled(&REPORT, member_id, &id, None, |current, _| match current {
            Some(current) if current.history.len() >= report.history.len() => Err(Unchanged),
            _ => Ok(report),
        }) {
            Ok((_, revision)) => Ok(Some(revision)),
            Err(WriteError::Rejected(Unchanged) | WriteError::Repeated(_)) => Ok(None),
            Err(WriteError::Store(e)) => Err(e),
        }
    }

    /// Appends an event to the history of report `report_id` (on the provider's node),
    /// journaled, with the idempotency record `request_key`: `event` gets the report and the
    /// event's sequence and returns the event, or refuses. A request applied before answers
    /// [`WriteError::Repeated`].
    pub fn append_report_event<E>(
        &self,
        member_id: &str,
        report_id: &str,
        request_key: &[u8],
        event: impl FnOnce(&pb::MonthlyReport, u64) -> Result<pb::ReportEvent, E>,
    ) -> Result<(pb::MonthlyReport, u64), WriteError<Option<E>>> {
        let _writing = self.writing();
        self.write_journaled(
            &REPORT,
            member_id,
            report_id,
            Some(request_key),
            |current, _| {
                let mut report = current.ok_or(None)?;
                let sequence = report.history.len() as u64 + 1;
                let mut added = event(&report, sequence).map_err(Some)?;
                added.sequence = sequence;
                report.history.push(added);
                Ok(report)
            },
        )
    }

    /// A report by id.
    pub fn get_report(&self, report_id: &str) -> Result<Option<pb::MonthlyReport>, StoreError> {
        self.tree(REPORTS_TREE)?
            .get(report_id.as_bytes())?
            .map(|raw| decode(REPORTS_TREE, report_id.as_bytes(), &raw))
            .transpose()
    }

    /// The report with the greatest id starting with `prefix` (`<offer_id>/`: the offer's
    /// last closed month, ids sorting by month).
    pub fn last_report_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Option<pb::MonthlyReport>, StoreError> {
        self.tree(REPORTS_TREE)?
            .scan_prefix(prefix.as_bytes())
            .next_back()
            .transpose()?
            .map(|(key, raw)| decode(REPORTS_TREE, &key, &raw))
            .transpose()
    }

    /// Up to `limit` reports with an id after `after`, in id order, that `keep` accepts.
    pub fn list_reports(
        &self,
        after: &str,
        limit: usize,
        keep: impl Fn(&pb::MonthlyReport) -> bool,
    ) -> Result<Vec<pb::MonthlyReport>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(REPORTS_TREE)?.range::<&[u8], _>((
            std::ops::Bound::Excluded(after.as_bytes()),
            std::ops::Bound::Unbounded,
        )) {
            let (key, raw) = item?;
            let report: pb::MonthlyReport = decode(REPORTS_TREE, &key, &raw)?;
            if keep(&report) {
                out.push(report);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Applies an offer report replicated from `source`'s journal at `position` (on the
    /// coordinator): the month's figures are then read from the report, so the usage buckets
    /// of `usage_month` (`yyyymm`) and the availability buckets of UTC months up to
    /// `availability_through` are dropped first, then the report is stored with the cursor
    /// moved in one transaction. A crash between the two drops them again when the entry is
    /// applied again.
    pub fn apply_report(
        &self,
        source: &str,
        position: &Cursor,
        report: &pb::MonthlyReport,
        usage_month: u32,
        availability_through: u32,
    ) -> Result<Applied, StoreError> {
        let month = usage_month;
        let _writing = self.writing();
        let reports = self.tree(REPORTS_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        self.catalogue_log.append(|_| {
            if let Some(stored) = self.cursor(source)?
                && stored.journal_id == position.journal_id
                && position.revision <= stored.revision
            {
                return Ok((Applied::Duplicate, None));
            }
            self.drop_reported_buckets(report, month, availability_through)?;
            let newer = self.is_newer_report(report)?;
            let (value, cursor) = (report.encode_to_vec(), position.encode_to_vec());
            let result: Result<(), TransactionError<()>> =
                (&*reports, &*cursors).transaction(|(reports, cursors)| {
                    if newer {
                        reports.insert(report.report_id.as_bytes(), value.as_slice())?;
                    }
                    cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((Applied::CursorOnly, None))
        })
    }

    /// Stores an offer report that came in a snapshot of `source`'s node during its resync (on
    /// the coordinator), as [`Store::apply_report`] does but leaving the cursor, which moves
    /// when the snapshot is complete.
    pub fn put_snapshot_report(
        &self,
        report: &pb::MonthlyReport,
        usage_month: u32,
        availability_through: u32,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.drop_reported_buckets(report, usage_month, availability_through)?;
        if self.is_newer_report(report)? {
            self.tree(REPORTS_TREE)?
                .insert(report.report_id.as_bytes(), report.encode_to_vec())?;
        }
        Ok(())
    }

    /// Drops the buckets the figures of `report` replace: the usage of `usage_month` and the
    /// availability of UTC months up to `availability_through`.
    fn drop_reported_buckets(
        &self,
        report: &pb::MonthlyReport,
        usage_month: u32,
        availability_through: u32,
    ) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for (key, _) in self.month_buckets(USAGE, &report.offer_id, usage_month, usage_month)? {
            batch.remove(key);
        }
        for (key, _) in
            self.month_buckets(AVAILABILITY, &report.offer_id, 0, availability_through)?
        {
            batch.remove(key);
        }
        Ok(self.tree(BUCKETS_TREE)?.apply_batch(batch)?)
    }

    /// Whether `report` is at least as far along as the stored copy (its history only grows).
    fn is_newer_report(&self, report: &pb::MonthlyReport) -> Result<bool, StoreError> {
        Ok(self
            .get_report(&report.report_id)?
            .is_none_or(|current| current.history.len() <= report.history.len()))
    }

    /// The buckets (key, value) of `offer_id` of kind `tag` filed under months
    /// `from..=to`.
    fn month_buckets(
        &self,
        tag: u8,
        offer_id: &str,
        from: u32,
        to: u32,
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        self.month_buckets_first(tag, offer_id, from, to, usize::MAX)
    }

    /// Moves the usage records of `offer_id`'s closed month `month` (`yyyymm`), and its
    /// availability records of UTC months up to `availability_through`, out of the database,
    /// [`ARCHIVE_SLICE`] buckets at a time: a slice's records are written to the archive shelf
    /// `usage/<offer_id>/<yyyymm>` (or `availability/...`) and made durable, then their keys in
    /// `record_ids` are removed, then their buckets. Memory stays that of one slice whatever the
    /// month holds (one sled transaction over a month's keys held hundreds of MiB that sled
    /// never gave back). A crash in between archives the slice's records again at the next pass
    /// (readers of a shelf take a record id once), whose buckets are still there to say which
    /// ids to remove.
    pub fn archive_month(
        &self,
        offer_id: &str,
        month: u32,
        availability_through: u32,
    ) -> Result<Archived, StoreError> {
        let mut done = Archived::default();
        let ranges = [
            (USAGE, month, month),
            (AVAILABILITY, 0, availability_through),
        ];
        for (tag, from, to) in ranges {
            loop {
                let slice = self.month_buckets_first(tag, offer_id, from, to, ARCHIVE_SLICE)?;
                if slice.is_empty() {
                    break;
                }
                self.archive_slice(tag, offer_id, &slice, &mut done)?;
            }
        }
        self.db()?.flush()?;
        Ok(done)
    }

    /// Archives one slice of buckets (in key order, of one kind), then removes their ids and
    /// them.
    fn archive_slice(
        &self,
        tag: u8,
        offer_id: &str,
        slice: &[(sled::IVec, sled::IVec)],
        done: &mut Archived,
    ) -> Result<(), StoreError> {
        let month_of = |key: &[u8]| -> u32 {
            let at = prefix(tag, offer_id).len();
            key.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_be_bytes)
        };
        // One shelf per (kind, month): a slice may span two availability months.
        let mut shelves: std::collections::BTreeMap<u32, Vec<pb::JournalEntry>> =
            std::collections::BTreeMap::new();
        let mut ids = sled::Batch::default();
        let mut buckets = sled::Batch::default();
        let mut id_count = 0;
        for (key, raw) in slice {
            let (kind, payload, record_ids) = if tag == USAGE {
                let batch: pb::UsageRecordBatch = decode(BUCKETS_TREE, key, raw)?;
                done.usage_records += batch.records.len();
                let record_ids: Vec<String> =
                    batch.records.iter().map(|r| r.record_id.clone()).collect();
                (
                    pb::EntityKind::UsageRecord,
                    pb::journal_entry::Payload::UsageRecords(batch),
                    record_ids,
                )
            } else {
                let batch: pb::AvailabilityRecordBatch = decode(BUCKETS_TREE, key, raw)?;
                done.availability_records += batch.records.len();
                let record_ids: Vec<String> =
                    batch.records.iter().map(|r| r.record_id.clone()).collect();
                (
                    pb::EntityKind::AvailabilityRecord,
                    pb::journal_entry::Payload::AvailabilityRecords(batch),
                    record_ids,
                )
            };
            for id in &record_ids {
                let mut id_key = prefix(tag, offer_id);
                id_key.extend_from_slice(id.as_bytes());
                ids.remove(id_key);
                id_count += 1;
            }
            buckets.remove(key.clone());
            shelves
                .entry(month_of(key))
                .or_default()
                .push(pb::JournalEntry {
                    entity_kind: kind as i32,
                    entity_id: record_ids.into_iter().next().unwrap_or_default(),
                    payload: Some(payload),
                    ..Default::default()
                });
        }
        let kind = if tag == USAGE {
            "usage"
        } else {
            "availability"
        };
        for (filed, items) in shelves {
            self.write_archive(&format!("{kind}/{offer_id}/{filed}"), &items)?;
        }
        let _writing = self.writing();
        // A snapshot reading the buckets meanwhile is told to start again.
        self.buckets_rewritten();
        // The ids first: a crash before the buckets go leaves them to say which ids to remove.
        self.tree(RECORD_IDS_TREE)?.apply_batch(ids)?;
        self.tree(BUCKETS_TREE)?.apply_batch(buckets)?;
        done.ids_removed += id_count;
        done.buckets_removed += slice.len();
        Ok(())
    }

    /// The first `limit` buckets (key, value) of `offer_id` of kind `tag` filed under months
    /// `from..=to`.
    fn month_buckets_first(
        &self,
        tag: u8,
        offer_id: &str,
        from: u32,
        to: u32,
        limit: usize,
    ) -> Result<Vec<(sled::IVec, sled::IVec)>, StoreError> {
        let mut start = prefix(tag, offer_id);
        start.extend_from_slice(&from.to_be_bytes());
        let mut end = prefix(tag, offer_id);
        end.extend_from_slice(&to.saturating_add(1).to_be_bytes());
        Ok(self
            .tree(BUCKETS_TREE)?
            .range(start..end)
            .take(limit)
            .collect::<Result<_, _>>()?)
    }

    /// The earliest month (`yyyymm`) any record of `offer_id` is filed under still in the
    /// database (usage on the offer's calendar, availability in UTC), if any.
    pub fn first_record_month(&self, offer_id: &str) -> Result<Option<u32>, StoreError> {
        let buckets = self.tree(BUCKETS_TREE)?;
        let mut first: Option<u32> = None;
        for tag in [USAGE, AVAILABILITY] {
            let start = prefix(tag, offer_id);
            if let Some(key) = buckets.scan_prefix(&start).keys().next() {
                let key = key?;
                let month = key
                    .get(start.len()..start.len() + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_be_bytes);
                first = match (first, month) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        Ok(first)
    }

    /// How many keys `record_ids` holds for `offer_id` (usage and availability): what the
    /// provider keeps to recognize repeated reports. For tests and diagnostics.
    pub fn record_id_keys(&self, offer_id: &str) -> Result<usize, StoreError> {
        let ids = self.tree(RECORD_IDS_TREE)?;
        let mut count = 0;
        for tag in [USAGE, AVAILABILITY] {
            for key in ids.scan_prefix(prefix(tag, offer_id)).keys() {
                key?;
                count += 1;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{Filed, RecordError};

    const OFFER: &str = "unistra.pod";

    fn usage(id: &str, month: u32) -> Filed {
        Filed::Usage(
            pb::UsageRecord {
                record_id: id.into(),
                offer_id: OFFER.into(),
                metric: "requests".into(),
                value: 1.0,
                ..Default::default()
            },
            month,
        )
    }

    fn probe(id: &str, month: u32) -> Filed {
        Filed::Availability(
            pb::AvailabilityRecord {
                record_id: id.into(),
                offer_id: OFFER.into(),
                ..Default::default()
            },
            month,
        )
    }

    #[test]
    fn a_closed_month_leaves_the_id_index_and_its_records_go_to_the_archive() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .store_records(
                "unistra",
                vec![
                    usage("n1", 202_611),
                    usage("n2", 202_611),
                    usage("d1", 202_612),
                    probe("p9", 202_609),
                    probe("p11", 202_611),
                ],
            )
            .unwrap();
        store
            .store_records("unistra", vec![usage("n3", 202_611)])
            .unwrap();
        assert_eq!(store.record_id_keys(OFFER).unwrap(), 6);
        let done = store.archive_month(OFFER, 202_611, 202_609).unwrap();
        assert_eq!(
            done,
            Archived {
                usage_records: 3,
                availability_records: 1,
                ids_removed: 4,
                buckets_removed: 3,
            }
        );
        // What is left: December's usage, and November's availability (December's report
        // still reads it).
        assert_eq!(store.record_id_keys(OFFER).unwrap(), 2);
        assert!(
            store
                .usage_records(OFFER, 202_611, 202_611)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.usage_records(OFFER, 202_612, 202_612).unwrap().len(),
            1
        );
        assert_eq!(
            store.availability_records(OFFER, 0, 202_612).unwrap().len(),
            1
        );
        let shelf = store.shelf(&format!("usage/{OFFER}/202611")).unwrap();
        let mut archived: Vec<String> = crate::archive::read(&shelf)
            .unwrap()
            .into_iter()
            .flat_map(|item| match item.payload {
                Some(pb::journal_entry::Payload::UsageRecords(b)) => b.records,
                _ => Vec::new(),
            })
            .map(|r| r.record_id)
            .collect();
        archived.sort();
        assert_eq!(archived, ["n1", "n2", "n3"]);
        let availability = store
            .shelf(&format!("availability/{OFFER}/202609"))
            .unwrap();
        assert_eq!(crate::archive::read(&availability).unwrap().len(), 1);
        // Done once: a second pass finds nothing left.
        assert_eq!(
            store.archive_month(OFFER, 202_611, 202_609).unwrap(),
            Archived::default()
        );
    }

    #[test]
    fn a_batch_of_a_month_marked_closed_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mark = store.mark_closing(OFFER, 202_611, 1_000).unwrap();
        assert_eq!(mark.stage(), CloseStage::Closing);
        // Marked once: a second mark keeps the first one's time.
        assert_eq!(store.mark_closing(OFFER, 202_611, 2_000).unwrap(), mark);
        let refused = store.store_open_records(
            "unistra",
            vec![usage("late", 202_611)],
            &[(OFFER.to_owned(), 202_611)],
        );
        assert!(
            matches!(refused, Err(RecordError::Closed { month: 202_611, .. })),
            "{refused:?}"
        );
        assert!(store.usage_records(OFFER, 0, 209_912).unwrap().is_empty());
        let open = store
            .store_open_records(
                "unistra",
                vec![usage("on-time", 202_612)],
                &[(OFFER.to_owned(), 202_612)],
            )
            .unwrap();
        assert_eq!(open.accepted, 1);
        store
            .set_close_stage(OFFER, 202_611, CloseStage::Archived)
            .unwrap();
        assert_eq!(
            store
                .closed_month(OFFER, 202_611)
                .unwrap()
                .map(|m| m.stage()),
            Some(CloseStage::Archived)
        );
    }

    #[tokio::test]
    async fn a_report_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let report = |users: i64| pb::MonthlyReport {
            report_id: format!("{OFFER}/2026-11"),
            offer_id: OFFER.into(),
            metrics: Some(pb::OfferMonthMetrics {
                user_count: users,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(store.write_report("unistra", report(5)).unwrap(), Some(1));
        assert_eq!(store.write_report("unistra", report(9)).unwrap(), None);
        let stored = store
            .get_report(&format!("{OFFER}/2026-11"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.metrics.map(|m| m.user_count), Some(5));
        assert_eq!(store.list_reports("", 10, |_| true).unwrap().len(), 1);
        store.journal_durable(1).await.unwrap();
        let entries = store.journal_entries(0, 10).unwrap();
        assert_eq!(entries.len(), 1, "one journal entry, for the one write");
        assert_eq!(entries[0].entity_kind, pb::EntityKind::MonthlyReport as i32);
    }
}
