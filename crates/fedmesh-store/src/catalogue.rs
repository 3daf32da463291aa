//! The federation catalogue: on the coordinator, built from every provider's journal; on each
//! node, a cache of the coordinator's catalogue so that its admins can browse it while the
//! coordinator is down. Both keep a change log with their own revisions, which
//! `CatalogueService.WatchCatalogue` streams, and a cursor per source (a provider node's
//! journal, or the coordinator's catalogue) so that replication resumes where it stopped and
//! applies each source revision once.

use fedmesh_proto::pb;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::watch;

use crate::log::key;
use crate::{Store, StoreError, decode};

pub(crate) const CATALOGUE_LOG_TREE: &str = "catalogue_log";
pub(crate) const CATALOGUE_TREE: &str = "catalogue";
pub(crate) const CURSORS_TREE: &str = "cursors";

/// How far a source has been applied: which journal (its id changes if the source's store is
/// reset) and up to which revision.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Cursor {
    /// The source journal's id.
    #[prost(string, tag = "1")]
    pub journal_id: String,
    /// The last source revision applied.
    #[prost(uint64, tag = "2")]
    pub revision: u64,
}

/// What applying a replicated change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The source position was already applied: nothing changed.
    Duplicate,
    /// The cursor moved; the catalogue did not change.
    CursorOnly,
    /// The catalogue changed at this revision of its log.
    Changed(u64),
}

/// The change that sets a catalogue offer, at `revision` of a catalogue log.
pub fn upserted(
    revision: u64,
    offer: pb::CatalogueOffer,
    change_time: prost_types::Timestamp,
) -> pb::CatalogueChange {
    pb::CatalogueChange {
        revision,
        kind: pb::CatalogueChangeKind::Upserted as i32,
        offer_id: offer
            .offer
            .as_ref()
            .map(|o| o.offer_id.clone())
            .unwrap_or_default(),
        offer: Some(offer),
        change_time: Some(change_time),
    }
}

const TENANCIES_TREE: &str = "tenancies";

/// What the coordinator keeps of a tenancy: which offer, whether it holds a place, how many
/// users. No contact data (GDPR minimisation).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tenancy {
    /// The offer.
    #[prost(string, tag = "1")]
    pub offer_id: String,
    /// Whether it holds one of the offer's tenant places (active, suspended, terminating).
    #[prost(bool, tag = "2")]
    pub occupies: bool,
    /// Its users.
    #[prost(int64, tag = "3")]
    pub user_count: i64,
    /// The tenancy as the provider journaled it, contact data removed: its state history
    /// gives the tenant counts of past months.
    #[prost(message, optional, tag = "4")]
    pub subscription: Option<pb::Subscription>,
}

impl Store {
    /// Records the state of tenancy `key` (a provider-scoped id) and returns its offer's
    /// tenant and user counts.
    pub fn set_tenancy(&self, key: &str, tenancy: &Tenancy) -> Result<(i32, i64), StoreError> {
        let _writing = self.writing();
        self.tree(TENANCIES_TREE)?
            .insert(key.as_bytes(), prost::Message::encode_to_vec(tenancy))?;
        self.tenancy_counts(&tenancy.offer_id)
    }

    /// The tenancies of `offer_id` known to the coordinator.
    pub fn tenancies(&self, offer_id: &str) -> Result<Vec<Tenancy>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree(TENANCIES_TREE)?.iter() {
            let (key, raw) = item?;
            let tenancy: Tenancy = decode(TENANCIES_TREE, &key, &raw)?;
            if tenancy.offer_id == offer_id {
                out.push(tenancy);
            }
        }
        Ok(out)
    }

    /// The number of tenants holding a place on `offer_id`, and their users.
    pub fn tenancy_counts(&self, offer_id: &str) -> Result<(i32, i64), StoreError> {
        let (mut tenants, mut users) = (0i32, 0i64);
        for item in self.tree(TENANCIES_TREE)?.iter() {
            let (key, raw) = item?;
            let other: Tenancy = decode(TENANCIES_TREE, &key, &raw)?;
            if other.offer_id == offer_id && other.occupies {
                tenants += 1;
                users += other.user_count;
            }
        }
        Ok((tenants, users))
    }

    /// The cursor of a replication source.
    pub fn cursor(&self, source: &str) -> Result<Option<Cursor>, StoreError> {
        self.tree(CURSORS_TREE)?
            .get(source.as_bytes())?
            .map(|raw| decode(CURSORS_TREE, source.as_bytes(), &raw))
            .transpose()
    }

    /// Applies one change from `source` at `position`: a new version of a catalogue offer, or
    /// `None` when the source change does not concern the catalogue. With a position, a change
    /// at or below the stored cursor of the same journal is a duplicate and is skipped, and the
    /// cursor moves in the same transaction as the change. Without one (a snapshot item), the
    /// change is applied unconditionally and the cursor stays.
    pub fn apply_catalogue(
        &self,
        source: &str,
        position: Option<&Cursor>,
        offer: Option<pb::CatalogueOffer>,
    ) -> Result<Applied, StoreError> {
        let _writing = self.writing();
        let catalogue = self.tree(CATALOGUE_TREE)?;
        let log = self.tree(CATALOGUE_LOG_TREE)?;
        let cursors = self.tree(CURSORS_TREE)?;
        self.catalogue_log.append(|revision| {
            let stored = match position {
                Some(_) => self.cursor(source)?,
                None => None,
            };
            if let (Some(position), Some(stored)) = (position, stored)
                && stored.journal_id == position.journal_id
                && position.revision <= stored.revision
            {
                return Ok((Applied::Duplicate, None));
            }
            // A source being resynced moves its cursor only when the snapshot is complete.
            if position.is_some() && self.resyncing(source)?.is_some() {
                return Ok((Applied::Duplicate, None));
            }
            let now = fedmesh_core::clock::now_timestamp();
            let change = offer.map(|offer| upserted(revision, offer, now));
            let encoded_cursor = position.map(prost::Message::encode_to_vec);
            let result: Result<(), TransactionError<()>> = (&*catalogue, &*log, &*cursors)
                .transaction(|(catalogue, log, cursors)| {
                    if let Some(change) = &change {
                        if let Some(offer) = &change.offer {
                            catalogue.insert(change.offer_id.as_bytes(), offer.encode_to_vec())?;
                        }
                        log.insert(&key(revision), change.encode_to_vec())?;
                    }
                    if let Some(cursor) = &encoded_cursor {
                        cursors.insert(source.as_bytes(), cursor.as_slice())?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                });
            result.map_err(StoreError::from_transaction)?;
            Ok(match change {
                Some(_) => (Applied::Changed(revision), Some(revision)),
                None if position.is_some() => (Applied::CursorOnly, None),
                None => (Applied::Duplicate, None),
            })
        })
    }

    /// Records a source's cursor without a catalogue change (a caught-up snapshot, a reset).
    pub fn set_cursor(&self, source: &str, cursor: &Cursor) -> Result<(), StoreError> {
        let _writing = self.writing();
        self.tree(CURSORS_TREE)?
            .insert(source.as_bytes(), cursor.encode_to_vec())?;
        Ok(())
    }

    /// Sets `provider_node_up` on every catalogue offer of `provider` that differs, each as a
    /// catalogue change. Returns the last revision written, if any.
    pub fn mark_provider(&self, provider: &str, up: bool) -> Result<Option<u64>, StoreError> {
        let stale: Vec<pb::CatalogueOffer> = self
            .catalogue_offers_of(provider)?
            .into_iter()
            .filter(|o| o.provider_node_up != up)
            .collect();
        let mut last = None;
        for mut offer in stale {
            offer.provider_node_up = up;
            if let Applied::Changed(revision) = self.apply_catalogue(provider, None, Some(offer))? {
                last = Some(revision);
            }
        }
        Ok(last)
    }

    /// Withdraws every catalogue offer of `provider` (a member removed from the federation),
    /// each as a catalogue change, so that searches and every node's cached catalogue drop
    /// them. Returns how many, and the last revision written.
    pub fn withdraw_provider(&self, provider: &str) -> Result<(usize, Option<u64>), StoreError> {
        let offers: Vec<pb::CatalogueOffer> = self
            .catalogue_offers_of(provider)?
            .into_iter()
            .filter(|o| {
                o.offer
                    .as_ref()
                    .is_some_and(|offer| offer.status != pb::OfferStatus::Withdrawn as i32)
            })
            .collect();
        let (mut count, mut last) = (0, None);
        for mut offer in offers {
            offer.provider_node_up = false;
            if let Some(inner) = offer.offer.as_mut() {
                inner.status = pb::OfferStatus::Withdrawn as i32;
            }
            if let Applied::Changed(revision) = self.apply_catalogue(provider, None, Some(offer))? {
                count += 1;
                last = Some(revision);
            }
        }
        Ok((count, last))
    }

    /// Applies `change` to every tenancy the coordinator knows; each new version it returns
    /// is stored. Returns the changed tenancies.
    pub fn change_tenancies(
        &self,
        change: impl Fn(&Tenancy) -> Option<Tenancy>,
    ) -> Result<Vec<Tenancy>, StoreError> {
        let _writing = self.writing();
        let tree = self.tree(TENANCIES_TREE)?;
        let mut changed = Vec::new();
        for item in tree.iter() {
            let (key, raw) = item?;
            let tenancy: Tenancy = decode(TENANCIES_TREE, &key, &raw)?;
            if let Some(next) = change(&tenancy) {
                tree.insert(key, next.encode_to_vec())?;
                changed.push(next);
            }
        }
        Ok(changed)
    }

    /// Waits until `revision` of the catalogue log is on disk, then lets watchers see it.
    pub async fn catalogue_durable(&self, revision: u64) -> Result<(), StoreError> {
        self.durable(&self.catalogue_log, revision).await
    }

    /// One catalogue offer.
    pub fn catalogue_offer(
        &self,
        offer_id: &str,
    ) -> Result<Option<pb::CatalogueOffer>, StoreError> {
        self.tree(CATALOGUE_TREE)?
            .get(offer_id.as_bytes())?
            .map(|raw| decode(CATALOGUE_TREE, offer_id.as_bytes(), &raw))
            .transpose()
    }

    /// The catalogue offers of `provider`, read from its ids' prefix (`<member>.`, see
    /// `fedmesh_core::offer::offer_id`) rather than from the whole catalogue: the
    /// coordinator's sweep marks providers up or down one by one, and a federation of N
    /// members must not decode N offers for each.
    fn catalogue_offers_of(&self, provider: &str) -> Result<Vec<pb::CatalogueOffer>, StoreError> {
        let mut offers = Vec::new();
        for item in self
            .tree(CATALOGUE_TREE)?
            .scan_prefix(format!("{provider}.").as_bytes())
        {
            let (k, raw) = item?;
            let offer: pb::CatalogueOffer = decode(CATALOGUE_TREE, &k, &raw)?;
            if offer
                .offer
                .as_ref()
                .is_some_and(|o| o.provider_member_id == provider)
            {
                offers.push(offer);
            }
        }
        Ok(offers)
    }

    /// Every catalogue offer, in offer id order.
    pub fn catalogue_offers(&self) -> Result<Vec<pb::CatalogueOffer>, StoreError> {
        self.tree(CATALOGUE_TREE)?
            .iter()
            .map(|item| {
                let (k, raw) = item?;
                decode(CATALOGUE_TREE, &k, &raw)
            })
            .collect()
    }

    /// The offers of the catalogue that are not withdrawn, in offer id order: what the
    /// coordinator's figures and dashboard count.
    pub fn live_catalogue_offers(&self) -> Result<Vec<pb::Offer>, StoreError> {
        Ok(self
            .catalogue_offers()?
            .into_iter()
            .filter_map(|c| c.offer)
            .filter(|o| o.status != pb::OfferStatus::Withdrawn as i32)
            .collect())
    }

    /// Durable catalogue changes above `since`, at most `limit`, in order.
    pub fn catalogue_changes(
        &self,
        since: u64,
        limit: usize,
    ) -> Result<Vec<pb::CatalogueChange>, StoreError> {
        let durable = self.catalogue_log.durable();
        if since >= durable {
            return Ok(Vec::new());
        }
        self.tree(CATALOGUE_LOG_TREE)?
            .range(key(since.saturating_add(1))..=key(durable))
            .take(limit)
            .map(|item| {
                let (k, raw) = item?;
                decode(CATALOGUE_LOG_TREE, &k, &raw)
            })
            .collect()
    }

    /// The last durable catalogue revision, changing as the catalogue changes.
    pub fn watch_catalogue(&self) -> watch::Receiver<u64> {
        self.catalogue_log.subscribe()
    }

    /// The last durable catalogue revision.
    pub fn catalogue_revision(&self) -> u64 {
        self.catalogue_log.durable()
    }

    /// The catalogue log's compaction point: changes up to it are gone (0 when none is).
    pub fn catalogue_compacted(&self) -> Result<u64, StoreError> {
        self.compacted(crate::compact::LogKind::Catalogue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalogue_offer(id: &str, provider: &str, version: &str) -> pb::CatalogueOffer {
        pb::CatalogueOffer {
            offer: Some(pb::Offer {
                offer_id: id.into(),
                provider_member_id: provider.into(),
                version: version.into(),
                ..Default::default()
            }),
            provider_node_up: true,
            ..Default::default()
        }
    }

    fn at(journal: &str, revision: u64) -> Cursor {
        Cursor {
            journal_id: journal.into(),
            revision,
        }
    }

    #[tokio::test]
    async fn replicated_changes_apply_once_and_move_the_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = store
            .apply_catalogue(
                "unistra",
                Some(&at("j1", 1)),
                Some(catalogue_offer("unistra.pod", "unistra", "1")),
            )
            .unwrap();
        assert_eq!(first, Applied::Changed(1));
        // The same source position again: a duplicate.
        let again = store
            .apply_catalogue(
                "unistra",
                Some(&at("j1", 1)),
                Some(catalogue_offer("unistra.pod", "unistra", "x")),
            )
            .unwrap();
        assert_eq!(again, Applied::Duplicate);
        assert_eq!(
            store
                .catalogue_offer("unistra.pod")
                .unwrap()
                .unwrap()
                .offer
                .unwrap()
                .version,
            "1"
        );
        // A change that does not concern the catalogue still moves the cursor.
        assert_eq!(
            store
                .apply_catalogue("unistra", Some(&at("j1", 2)), None)
                .unwrap(),
            Applied::CursorOnly
        );
        assert_eq!(store.cursor("unistra").unwrap(), Some(at("j1", 2)));
        // A reset source journal (new id) starts over.
        let reset = store
            .apply_catalogue(
                "unistra",
                Some(&at("j2", 1)),
                Some(catalogue_offer("unistra.pod", "unistra", "2")),
            )
            .unwrap();
        assert_eq!(reset, Applied::Changed(2));

        store.catalogue_durable(2).await.unwrap();
        let changes = store.catalogue_changes(0, 10).unwrap();
        assert_eq!(
            changes.iter().map(|c| c.revision).collect::<Vec<_>>(),
            [1, 2]
        );

        assert_eq!(store.mark_provider("unistra", false).unwrap(), Some(3));
        assert_eq!(
            store.mark_provider("unistra", false).unwrap(),
            None,
            "already marked"
        );
        assert!(
            !store
                .catalogue_offer("unistra.pod")
                .unwrap()
                .unwrap()
                .provider_node_up
        );
    }

    #[tokio::test]
    async fn a_provider_is_marked_and_withdrawn_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // member-1's ids are a prefix of member-10's but for the dot.
        for (id, provider) in [
            ("member-1.pod", "member-1"),
            ("member-1.sso", "member-1"),
            ("member-10.pod", "member-10"),
            ("member-2.pod", "member-2"),
        ] {
            store
                .apply_catalogue(provider, None, Some(catalogue_offer(id, provider, "1")))
                .unwrap();
        }
        let up = |id: &str| store.catalogue_offer(id).unwrap().unwrap().provider_node_up;
        assert_eq!(store.mark_provider("member-1", false).unwrap(), Some(6));
        assert!(!up("member-1.pod") && !up("member-1.sso"));
        assert!(up("member-10.pod") && up("member-2.pod"));
        let (withdrawn, last) = store.withdraw_provider("member-10").unwrap();
        assert_eq!((withdrawn, last), (1, Some(7)));
        let status = |id: &str| {
            store
                .catalogue_offer(id)
                .unwrap()
                .unwrap()
                .offer
                .unwrap()
                .status
        };
        assert_eq!(status("member-10.pod"), pb::OfferStatus::Withdrawn as i32);
        assert_ne!(status("member-1.pod"), pb::OfferStatus::Withdrawn as i32);
        // An offer filed under a provider's prefix but owned by another is not its to mark.
        store
            .apply_catalogue(
                "member-2",
                None,
                Some(catalogue_offer("member-2.x", "member-3", "1")),
            )
            .unwrap();
        assert_eq!(store.mark_provider("member-2", false).unwrap(), Some(9));
        assert!(up("member-2.x"));
    }
}
