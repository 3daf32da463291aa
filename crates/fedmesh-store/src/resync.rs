//! A follower's resync from a source's snapshot, on the coordinator: what it holds from that
//! source (catalogue offers, tenancies, incidents, usage and availability buckets) is replaced
//! by the snapshot.
//!
//! 1. [`Store::begin_resync`] persists a *resyncing* mark for the source (the `resyncs` tree:
//!    source → the journal being read), forgets the source's record buckets and points its
//!    cursor at the journal's start. While the mark is there, entries of the source's journal
//!    are not applied ([`Store::resyncing`] is checked by every applier).
//! 2. Snapshot items are applied: entities idempotently (they replace what is held), records
//!    with [`Store::apply_snapshot_records`], which counts them only under the mark.
//! 3. [`Store::finish_resync`], once the snapshot's end marker arrived: what is held from the
//!    source and was not in the snapshot goes, unless it ended (a closed incident, a tenancy in
//!    a final state, a withdrawn offer: the source archived it, and this store's own retention
//!    archives it in turn), and the cursor moves to the snapshot's revision
//!    in the same transaction that removes the mark.
//!
//! Interrupted anywhere (a dropped stream, the coordinator restarted), the mark stays and the
//! next attempt starts again at 1: every record counted so far is forgotten before it is
//! counted again, so none counts twice and none is lost.

use std::collections::HashSet;

use fedmesh_core::retention;

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::{Applied, CATALOGUE_LOG_TREE, CURSORS_TREE, Cursor};
use crate::log::key;
use crate::usage::{BUCKETS_TREE, Filed};
use crate::{Store, StoreError, decode};

const RESYNCS_TREE: &str = "resyncs";
const TENANCIES_TREE: &str = "tenancies";
const INCIDENTS_TREE: &str = "incidents";
const CATALOGUE_TREE: &str = "catalogue";

/// What a snapshot held from a source, by id: what is held from it and not here goes.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Offer ids.
    pub offers: HashSet<String>,
    /// Subscription ids.
    pub tenancies: HashSet<String>,
    /// Incident ids.
    pub incidents: HashSet<String>,
}

/// What [`Store::finish_resync`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished {
    /// Catalogue offers removed (each a `REMOVED` catalogue change).
    pub offers: usize,
    /// Tenancies removed.
    pub tenancies: usize,
    /// Incidents removed.
    pub incidents: usize,
    /// The last catalogue revision written, to make durable.
    pub catalogue_revision: Option<u64>,
}

impl Store {
    /// The journal a source is being resynced from, if a resync of it is under way.
    pub fn resyncing(&self, source: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .tree(RESYNCS_TREE)?
            .get(source.as_bytes())?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned()))
    }

    /// Starts (or starts again) the resync of `source` from `journal_id`: the mark first, then
    /// the source's buckets go, then its cursor points at the journal's start. Durable when it
    /// returns. Blocks on sled: call it off the async runtime. Returns how many buckets went.
    pub fn begin_resync(&self, source: &str, journal_id: &str) -> Result<usize, StoreError> {
        let _writing = self.writing();
        let resyncs = self.tree(RESYNCS_TREE)?;
        self.catalogue_log.append(|_| {
            resyncs.insert(source.as_bytes(), journal_id.as_bytes())?;
            self.db()?.flush()?;
            let removed = self.restart_source(source, journal_id)?;
            Ok((removed, None))
        })
    }

    /// Counts records of a snapshot item of `source`, only while its resync from `journal_id`
    /// is under way ([`Applied::Duplicate`] otherwise: a follower that is no longer the one
    /// resyncing counts nothing).
    pub fn apply_snapshot_records(
        &self,
        source: &str,
        journal_id: &str,
        records: Vec<Filed>,
    ) -> Result<Applied, StoreError> {
        let _writing = self.writing();
        let buckets = self.tree(BUCKETS_TREE)?;
        self.catalogue_log.append(|_| {
            if self.resyncing(source)?.as_deref() != Some(journal_id) {
                return Ok((Applied::Duplicate, None));
            }
            let mut batch = sled::Batch::default();
            for (k, v) in self.filed_buckets(&records)? {
                batch.insert(k, v);
            }
            buckets.apply_batch(batch)?;
            Ok((Applied::CursorOnly, None))
        })
    }

    /// Stores an incident of a snapshot as it is (on the coordinator, without its comment
    /// list), whatever version was held: the snapshot is the source's current state.
    pub fn put_snapshot_incident(&self, incident: &pb::Incident) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(INCIDENTS_TREE)?.insert(
            incident.incident_id.as_bytes(),
            incident.clone().without_comment_list().encode_to_vec(),
        )?;
        Ok(())
    }

    /// Ends the resync of `source` from `journal_id` at the snapshot's `revision`: what is held
    /// from the source, not in `seen` and not ended goes (an ended entity the snapshot no longer
    /// holds was archived by the source; this store archives it by its own retention of ended
    /// things, [`crate::retire`], after the figures that count it were reported) (offers as `REMOVED` catalogue changes, so that
    /// nodes' caches drop them; the tenant counts of offers that lost a tenancy are
    /// recomputed), then the cursor moves to `revision` and the mark goes, in one transaction.
    /// Does nothing if no resync of that journal is under way.
    pub fn finish_resync(
        &self,
        source: &str,
        journal_id: &str,
        revision: u64,
        seen: &Seen,
    ) -> Result<Finished, StoreError> {
        let mut finished = Finished::default();
        if self.resyncing(source)?.as_deref() != Some(journal_id) {
            return Ok(finished);
        }
        // Tenancies and incidents of the source that the snapshot no longer holds.
        let tenancies = self.tree(TENANCIES_TREE)?;
        let prefix = format!("{source}/");
        let mut recount = HashSet::new();
        for item in tenancies.scan_prefix(prefix.as_bytes()) {
            let (k, raw) = item?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if !seen.tenancies.contains(&id) {
                let tenancy: crate::Tenancy = decode(TENANCIES_TREE, &k, &raw)?;
                // Ended: the source may have archived it; this store's retention does too.
                if tenancy
                    .subscription
                    .as_ref()
                    .is_some_and(|s| retention::subscription_ended(s).is_some())
                {
                    continue;
                }
                let _writing = self.writing();
                tenancies.remove(&k)?;
                recount.insert(tenancy.offer_id);
                finished.tenancies += 1;
            }
        }
        let incidents = self.tree(INCIDENTS_TREE)?;
        for item in incidents.iter() {
            let (k, raw) = item?;
            let incident: pb::Incident = decode(INCIDENTS_TREE, &k, &raw)?;
            if incident.provider_member_id == source
                && !seen.incidents.contains(&incident.incident_id)
                && retention::incident_ended(&incident).is_none()
            {
                let _writing = self.writing();
                incidents.remove(&k)?;
                finished.incidents += 1;
            }
        }
        for offer_id in recount {
            let (tenant_count, user_count) = self.tenancy_counts(&offer_id)?;
            if let Some(current) = self.catalogue_offer(&offer_id)?
                && (current.tenant_count, current.user_count) != (tenant_count, user_count)
                && let Applied::Changed(r) = self.apply_catalogue(
                    source,
                    None,
                    Some(pb::CatalogueOffer {
                        tenant_count,
                        user_count,
                        ..current
                    }),
                )?
            {
                finished.catalogue_revision = Some(r);
            }
        }
        for offer in self.catalogue_offers()? {
            let Some(inner) = &offer.offer else { continue };
            if inner.provider_member_id == source
                && !seen.offers.contains(&inner.offer_id)
                && retention::offer_ended(inner).is_none()
            {
                if let Some(r) = self.remove_catalogue_offer(&inner.offer_id)? {
                    finished.catalogue_revision = Some(r);
                }
                finished.offers += 1;
            }
        }
        // The cursor and the end of the mark, together.
        let _writing = self.writing();
        let resyncs = self.tree(RESYNCS_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        let cursor = Cursor {
            journal_id: journal_id.to_owned(),
            revision,
        }
        .encode_to_vec();
        self.catalogue_log.append(|_| {
            let result: Result<(), TransactionError<()>> =
                (&*resyncs, &*cursors).transaction(|(resyncs, cursors)| {
                    resyncs.remove(source.as_bytes())?;
                    cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok::<_, StoreError>(((), None))
        })?;
        Ok(finished)
    }

    /// Removes an offer from the catalogue, as a `REMOVED` change carrying its last state
    /// (followers of the catalogue drop it). Returns the change's revision, `None` if the offer
    /// was not there.
    pub fn remove_catalogue_offer(&self, offer_id: &str) -> Result<Option<u64>, StoreError> {
        let _writing = self.writing();
        let catalogue = self.tree(CATALOGUE_TREE)?;
        let log = self.tree(CATALOGUE_LOG_TREE)?;
        self.catalogue_log.append(|revision| {
            let Some(raw) = catalogue.get(offer_id.as_bytes())? else {
                return Ok((None, None));
            };
            let last: pb::CatalogueOffer = decode(CATALOGUE_TREE, offer_id.as_bytes(), &raw)?;
            let change = pb::CatalogueChange {
                revision,
                kind: pb::CatalogueChangeKind::Removed as i32,
                offer_id: offer_id.to_owned(),
                offer: Some(last),
                change_time: Some(fedmesh_core::clock::now_timestamp()),
            };
            let encoded = change.encode_to_vec();
            let result: Result<(), TransactionError<()>> =
                (&*catalogue, &*log).transaction(|(catalogue, log)| {
                    catalogue.remove(offer_id.as_bytes())?;
                    log.insert(&key(revision), encoded.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok((Some(revision), Some(revision)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn count(store: &Store) -> usize {
        store
            .usage_records("unistra.pod", 0, u32::MAX - 1)
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn an_interrupted_resync_starts_again_and_counts_each_record_once() {
        let dir = tempfile::tempdir().unwrap();
        let at = |revision| Cursor {
            journal_id: "j".into(),
            revision,
        };
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .apply_records("unistra", &at(3), vec![usage("a")])
                .unwrap();
            store.begin_resync("unistra", "j").unwrap();
            assert_eq!(count(&store), 0, "what was counted from the source goes");
            store
                .apply_snapshot_records("unistra", "j", vec![usage("a"), usage("b")])
                .unwrap();
            // The journal's entries wait for the resync's end.
            assert_eq!(
                store
                    .apply_records("unistra", &at(4), vec![usage("x")])
                    .unwrap(),
                Applied::Duplicate
            );
            assert_eq!(count(&store), 2);
            // The coordinator stops here.
        }
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.resyncing("unistra").unwrap().as_deref(), Some("j"));
        store.begin_resync("unistra", "j").unwrap();
        store
            .apply_snapshot_records("unistra", "j", vec![usage("a"), usage("b")])
            .unwrap();
        store
            .apply_snapshot_records("unistra", "j", vec![usage("c")])
            .unwrap();
        store
            .apply_catalogue(
                "unistra",
                None,
                Some(pb::CatalogueOffer {
                    offer: Some(pb::Offer {
                        offer_id: "unistra.gone".into(),
                        provider_member_id: "unistra".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            )
            .unwrap();
        // Withdrawn: the source may have archived it; it stays until this store's retention.
        store
            .apply_catalogue(
                "unistra",
                None,
                Some(pb::CatalogueOffer {
                    offer: Some(pb::Offer {
                        offer_id: "unistra.withdrawn".into(),
                        provider_member_id: "unistra".into(),
                        status: pb::OfferStatus::Withdrawn as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            )
            .unwrap();
        let closed = pb::Incident {
            incident_id: "INC-20261005-100000-unistra-4".into(),
            provider_member_id: "unistra".into(),
            status: pb::IncidentStatus::Closed as i32,
            ..Default::default()
        };
        store.put_snapshot_incident(&closed).unwrap();
        let finished = store
            .finish_resync("unistra", "j", 10, &Seen::default())
            .unwrap();
        assert_eq!(
            finished.offers, 1,
            "an offer the snapshot does not hold goes"
        );
        assert!(store.catalogue_offer("unistra.gone").unwrap().is_none());
        assert!(
            store
                .catalogue_offer("unistra.withdrawn")
                .unwrap()
                .is_some(),
            "an ended offer stays"
        );
        assert_eq!(finished.incidents, 0, "a closed incident stays");
        assert!(store.get_incident(&closed.incident_id).unwrap().is_some());
        assert_eq!(count(&store), 3);
        assert_eq!(store.resyncing("unistra").unwrap(), None);
        assert_eq!(store.cursor("unistra").unwrap(), Some(at(10)));
        // Done: a late snapshot item counts nothing; the journal goes on from the cursor.
        assert_eq!(
            store
                .apply_snapshot_records("unistra", "j", vec![usage("d")])
                .unwrap(),
            Applied::Duplicate
        );
        store
            .apply_records("unistra", &at(11), vec![usage("e")])
            .unwrap();
        assert_eq!(count(&store), 4);
    }
}
