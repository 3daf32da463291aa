//! Ended things leave the hot trees (design section 9): closed incidents, tenancies in a final
//! state, maintenance windows whose period is over and withdrawn offers, once they ended more
//! than the retention of ended things ago ([`fedmesh_core::retention`]), are written to the
//! archive ([`crate::archive`], shelves `incidents/<year>`, `subscriptions/<year>`,
//! `maintenance/<year>`, `offers/<year>`, `catalogue/<year>`, by the year they ended) and then
//! removed from their trees. The same pass runs on a node (its own entities and the copies it
//! mirrors as a subscriber) and on the coordinator (its incidents, tenancies and catalogue).
//!
//! Crash-safe in that order: the archive file is durable before anything is removed, and an
//! entity is removed only if it did not change since it was read (a reopened incident stays).
//! A crash between the two archives the same entity again at the next pass, which readers of
//! the archive recognise ([`crate::archive::read_latest`]).
//!
//! What is removed leaves a small mark in the `retired` tree (its kind, id, parties, when it
//! ended and where it was archived) for another retention period, so that a request naming it
//! is answered "archived" rather than "not found" and a follower does not bring back a copy of
//! it; marks older than that go. The hot state is bounded by what is live and what ended within
//! twice the retention, not by history.
//!
//! A withdrawn offer leaves only once nothing hot refers to it (a tenancy, an incident, a
//! window, a tenancy the coordinator counts). Removals from the catalogue are `REMOVED`
//! changes, so that nodes' caches drop the offer too. "Now" is a parameter (Unix seconds).

use std::collections::{BTreeMap, HashSet};

use fedmesh_core::retention;
use fedmesh_proto::pb;
use pb::journal_entry::Payload;
use prost::Message as _;
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::catalogue::CATALOGUE_TREE;
use crate::{Store, StoreError, Tenancy, decode};

const RETIRED_TREE: &str = "retired";
/// Entities archived and removed per slice, each slice holding the write gate once.
const SLICE: usize = 500;

/// What is kept of an entity after it left the hot trees, for a retention period more.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RetiredMark {
    /// Its [`pb::EntityKind`].
    #[prost(int32, tag = "1")]
    pub entity_kind: i32,
    /// When it ended (Unix seconds).
    #[prost(int64, tag = "2")]
    pub ended_unix: i64,
    /// When it was archived (Unix seconds, on the business clock).
    #[prost(int64, tag = "3")]
    pub archived_unix: i64,
    /// The archive shelf that holds it (`incidents/2026`).
    #[prost(string, tag = "4")]
    pub shelf: String,
    /// Its provider member.
    #[prost(string, tag = "5")]
    pub provider_member_id: String,
    /// Its subscriber member, for a tenancy or an incident.
    #[prost(string, tag = "6")]
    pub subscriber_member_id: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retired {
    /// Entities archived and removed, by shelf.
    pub archived: BTreeMap<String, usize>,
    /// Marks of entities archived more than a retention period ago, removed.
    pub marks_expired: usize,
    /// The last catalogue revision written (offers removed from the catalogue), to make
    /// durable.
    pub catalogue_revision: Option<u64>,
}

impl Retired {
    /// How many entities left the hot trees.
    pub fn total(&self) -> usize {
        self.archived.values().sum()
    }
}

/// One ended entity to archive.
struct Ended {
    key: sled::IVec,
    raw: sled::IVec,
    item: pb::JournalEntry,
    mark: RetiredMark,
}

/// The trees retired, in this order (offers last: they leave once nothing refers to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hot {
    Incidents,
    Subscriptions,
    Tenancies,
    Maintenance,
    Offers,
    Catalogue,
}

impl Hot {
    const ALL: [Hot; 6] = [
        Hot::Incidents,
        Hot::Subscriptions,
        Hot::Tenancies,
        Hot::Maintenance,
        Hot::Offers,
        Hot::Catalogue,
    ];

    fn tree(self) -> &'static str {
        match self {
            Hot::Incidents => "incidents",
            Hot::Subscriptions => "subscriptions",
            Hot::Tenancies => "tenancies",
            Hot::Maintenance => "maintenance",
            Hot::Offers => "offers",
            Hot::Catalogue => CATALOGUE_TREE,
        }
    }

    fn shelf(self) -> &'static str {
        match self {
            Hot::Incidents => "incidents",
            Hot::Subscriptions | Hot::Tenancies => "subscriptions",
            Hot::Maintenance => "maintenance",
            Hot::Offers => "offers",
            Hot::Catalogue => "catalogue",
        }
    }

    /// The stored value as an archive payload, with its id and parties.
    fn payload(self, key: &[u8], raw: &[u8]) -> Result<Option<Payload>, StoreError> {
        let tree = self.tree();
        Ok(match self {
            Hot::Incidents => Some(Payload::Incident(
                decode::<pb::Incident>(tree, key, raw)?.with_comment_list(),
            )),
            Hot::Subscriptions => Some(Payload::Subscription(decode(tree, key, raw)?)),
            Hot::Tenancies => decode::<Tenancy>(tree, key, raw)?
                .subscription
                .map(Payload::Subscription),
            Hot::Maintenance => Some(Payload::MaintenanceWindow(decode(tree, key, raw)?)),
            Hot::Offers => Some(Payload::Offer(decode(tree, key, raw)?)),
            Hot::Catalogue => decode::<pb::CatalogueOffer>(tree, key, raw)?
                .offer
                .map(Payload::Offer),
        })
    }
}

/// The kind, id and parties of an archived payload.
fn identify(payload: &Payload) -> (pb::EntityKind, String, String, String) {
    match payload {
        Payload::Incident(i) => (
            pb::EntityKind::Incident,
            i.incident_id.clone(),
            i.provider_member_id.clone(),
            i.subscriber_member_id.clone(),
        ),
        Payload::Subscription(s) => (
            pb::EntityKind::Subscription,
            s.subscription_id.clone(),
            s.provider_member_id.clone(),
            s.subscriber_member_id.clone(),
        ),
        Payload::MaintenanceWindow(m) => (
            pb::EntityKind::MaintenanceWindow,
            m.maintenance_id.clone(),
            m.provider_member_id.clone(),
            String::new(),
        ),
        Payload::Offer(o) => (
            pb::EntityKind::Offer,
            o.offer_id.clone(),
            o.provider_member_id.clone(),
            String::new(),
        ),
        // Never archived here: records leave with their closed month, reports stay.
        Payload::UsageRecords(_) | Payload::AvailabilityRecords(_) | Payload::MonthlyReport(_) => (
            pb::EntityKind::Unspecified,
            String::new(),
            String::new(),
            String::new(),
        ),
    }
}

/// The offer an entity refers to, if any.
fn offer_of(payload: &Payload) -> Option<&str> {
    match payload {
        Payload::Incident(i) => Some(&i.offer_id),
        Payload::Subscription(s) => Some(&s.offer_id),
        Payload::MaintenanceWindow(m) => Some(&m.offer_id),
        _ => None,
    }
}

fn mark_key(kind: pb::EntityKind, id: &str) -> Vec<u8> {
    format!("{}/{id}", kind as i32).into_bytes()
}

impl Store {
    /// The mark of an entity that left the hot trees, if it left them less than a retention
    /// period ago.
    pub fn retired(
        &self,
        kind: pb::EntityKind,
        id: &str,
    ) -> Result<Option<RetiredMark>, StoreError> {
        let key = mark_key(kind, id);
        self.tree(RETIRED_TREE)?
            .get(&key)?
            .map(|raw| decode(RETIRED_TREE, &key, &raw))
            .transpose()
    }

    /// Archives and removes every entity that ended more than `days` days before `now_unix`
    /// (see the module's documentation), and forgets the marks of those archived more than
    /// `days` days ago. Blocks on sled and the file system: call it off the async runtime.
    pub fn retire_ended(&self, days: u32, now_unix: i64) -> Result<Retired, StoreError> {
        let mut done = Retired::default();
        // Offers still referred to by something hot, filled as the trees before them are read.
        let mut referred: HashSet<String> = HashSet::new();
        for hot in Hot::ALL {
            let tree = self.tree(hot.tree())?;
            let mut ended = Vec::new();
            for item in tree.iter() {
                let (key, raw) = item?;
                let Some(payload) = hot.payload(&key, &raw)? else {
                    continue;
                };
                let gone = retention::ended(&payload)
                    .filter(|at| retention::past(*at, days, now_unix))
                    .filter(|_| {
                        !matches!(hot, Hot::Offers | Hot::Catalogue)
                            || !referred.contains(&identify(&payload).1)
                    });
                let Some(ended_at) = gone else {
                    if let Some(offer) = offer_of(&payload) {
                        referred.insert(offer.to_owned());
                    }
                    continue;
                };
                let (kind, id, provider, subscriber) = identify(&payload);
                let shelf = format!("{}/{}", hot.shelf(), retention::year_of(ended_at));
                ended.push(Ended {
                    key,
                    raw,
                    item: pb::JournalEntry {
                        revision: 0,
                        record_time: Some(prost_types::Timestamp {
                            seconds: now_unix,
                            nanos: 0,
                        }),
                        member_id: provider.clone(),
                        entity_kind: kind as i32,
                        entity_id: id,
                        deleted: true,
                        payload: Some(payload),
                    },
                    mark: RetiredMark {
                        entity_kind: kind as i32,
                        ended_unix: ended_at,
                        archived_unix: now_unix,
                        shelf,
                        provider_member_id: provider,
                        subscriber_member_id: subscriber,
                    },
                });
            }
            for slice in ended.chunks(SLICE) {
                self.retire_slice(hot, &tree, slice, &mut done)?;
            }
        }
        done.marks_expired = self.expire_marks(days, now_unix)?;
        Ok(done)
    }

    /// Archives `slice` (one file per shelf), then removes what did not change meanwhile and
    /// marks it, holding the write gate once.
    fn retire_slice(
        &self,
        hot: Hot,
        tree: &sled::Tree,
        slice: &[Ended],
        done: &mut Retired,
    ) -> Result<(), StoreError> {
        let mut shelves: BTreeMap<&str, Vec<pb::JournalEntry>> = BTreeMap::new();
        for ended in slice {
            shelves
                .entry(&ended.mark.shelf)
                .or_default()
                .push(ended.item.clone());
        }
        for (shelf, items) in &shelves {
            self.write_archive(shelf, items)?;
        }
        let retired = self.tree(RETIRED_TREE)?;
        let mut removed: Vec<&Ended> = Vec::new();
        if hot == Hot::Catalogue {
            // A `REMOVED` change each, so that the caches of the catalogue drop it.
            for ended in slice {
                if let Some(revision) = self.remove_catalogue_offer(&ended.item.entity_id)? {
                    done.catalogue_revision = Some(revision);
                }
                let _writing = self.writing();
                retired.insert(
                    mark_key(pb::EntityKind::Offer, &ended.item.entity_id),
                    ended.mark.encode_to_vec(),
                )?;
                removed.push(ended);
            }
        } else {
            let _writing = self.writing();
            let result: Result<Vec<usize>, TransactionError<()>> =
                (tree, &*retired).transaction(|(hot_tree, marks)| {
                    let mut gone = Vec::new();
                    for (at, ended) in slice.iter().enumerate() {
                        // Only if unchanged since it was read: a reopened incident stays.
                        if hot_tree.get(&ended.key)?.as_ref() != Some(&ended.raw) {
                            continue;
                        }
                        hot_tree.remove(&ended.key)?;
                        let kind = ended.item.entity_kind();
                        marks.insert(
                            mark_key(kind, &ended.item.entity_id),
                            ended.mark.encode_to_vec(),
                        )?;
                        gone.push(at);
                    }
                    Ok::<_, ConflictableTransactionError<()>>(gone)
                });
            let gone = result.map_err(StoreError::from_transaction)?;
            removed.extend(gone.into_iter().filter_map(|at| slice.get(at)));
        }
        for ended in removed {
            *done.archived.entry(ended.mark.shelf.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Removes the marks of entities archived more than `days` days before `now_unix`.
    fn expire_marks(&self, days: u32, now_unix: i64) -> Result<usize, StoreError> {
        let retired = self.tree(RETIRED_TREE)?;
        let mut old = Vec::new();
        for item in retired.iter() {
            let (key, raw) = item?;
            let mark: RetiredMark = decode(RETIRED_TREE, &key, &raw)?;
            if retention::past(mark.archived_unix, days, now_unix) {
                old.push(key);
            }
        }
        for slice in old.chunks(SLICE) {
            let _writing = self.writing();
            let mut batch = sled::Batch::default();
            for key in slice {
                batch.remove(key.clone());
            }
            retired.apply_batch(batch)?;
        }
        Ok(old.len())
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_core::retention::DAY;

    use super::*;
    use crate::archive;

    /// 5 October 2026.
    const NOW: i64 = 1_791_151_200;
    const LONG_AGO: i64 = NOW - 500 * DAY;
    const LATELY: i64 = NOW - 10 * DAY;

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn incident(id: &str, status: pb::IncidentStatus, closed: i64) -> pb::Incident {
        pb::Incident {
            incident_id: id.into(),
            offer_id: "unistra.pod".into(),
            provider_member_id: "unistra".into(),
            subscriber_member_id: "rennes2".into(),
            status: status as i32,
            close_time: at(closed),
            ..Default::default()
        }
    }

    fn tenancy(id: &str, offer: &str, state: pb::SubscriptionState) -> pb::Subscription {
        pb::Subscription {
            subscription_id: id.into(),
            offer_id: offer.into(),
            provider_member_id: "unistra".into(),
            subscriber_member_id: "rennes2".into(),
            state: state as i32,
            update_time: at(LONG_AGO),
            ..Default::default()
        }
    }

    fn offer(id: &str, status: pb::OfferStatus) -> pb::Offer {
        pb::Offer {
            offer_id: id.into(),
            provider_member_id: "unistra".into(),
            status: status as i32,
            update_time: at(LONG_AGO),
            ..Default::default()
        }
    }

    fn window(id: &str, ends: i64) -> pb::MaintenanceWindow {
        pb::MaintenanceWindow {
            maintenance_id: id.into(),
            offer_id: "unistra.pod".into(),
            provider_member_id: "unistra".into(),
            period: Some(pb::Period {
                start_time: at(ends - 3600),
                end_time: at(ends),
            }),
            ..Default::default()
        }
    }

    fn put_incident(store: &Store, value: pb::Incident) {
        let id = value.incident_id.clone();
        store
            .update_incident("unistra", &id, None, |_, _| Ok::<_, ()>(value))
            .unwrap();
    }

    /// A provider's node with, for each kind, something ended long ago, something ended
    /// lately and something live.
    fn provider_node() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        use pb::IncidentStatus::{Closed, InProgress};
        put_incident(&store, incident("INC-1", Closed, LONG_AGO));
        put_incident(&store, incident("INC-2", Closed, LATELY));
        put_incident(&store, incident("INC-3", InProgress, 0));
        use pb::SubscriptionState::{Active, Terminated};
        for value in [
            tenancy("unistra.s1", "unistra.pod", Terminated),
            tenancy("unistra.s2", "unistra.pod", Active),
            tenancy("unistra.s3", "unistra.old", Terminated),
        ] {
            let id = value.subscription_id.clone();
            store
                .update_subscription("unistra", &id, None, |_, _| Ok::<_, ()>(value))
                .unwrap();
        }
        for value in [window("MW-1", LONG_AGO), window("MW-2", NOW + DAY)] {
            let id = value.maintenance_id.clone();
            store
                .update_maintenance("unistra", &id, None, |_, _| Ok::<_, ()>(value))
                .unwrap();
        }
        use pb::OfferStatus::{Available, Withdrawn};
        for value in [
            offer("unistra.old", Withdrawn),
            offer("unistra.pod", Available),
            offer("unistra.held", Withdrawn),
        ] {
            let id = value.offer_id.clone();
            store
                .update_offer("unistra", &id, |_, _| Ok::<_, ()>(value))
                .unwrap();
        }
        // A live window keeps a withdrawn offer in the hot trees.
        let mut held = window("MW-3", NOW + DAY);
        held.offer_id = "unistra.held".into();
        store
            .update_maintenance("unistra", "MW-3", None, |_, _| Ok::<_, ()>(held))
            .unwrap();
        (dir, store)
    }

    fn ids(store: &Store) -> Vec<String> {
        let mut ids: Vec<String> = store
            .list_incidents("", usize::MAX, |_| true)
            .unwrap()
            .into_iter()
            .map(|i| i.incident_id)
            .collect();
        ids.extend(
            store
                .list_subscriptions("", usize::MAX, |_| true)
                .unwrap()
                .into_iter()
                .map(|s| s.subscription_id),
        );
        ids.extend(
            store
                .list_maintenance("", usize::MAX, |_| true)
                .unwrap()
                .into_iter()
                .map(|m| m.maintenance_id),
        );
        ids.extend(
            store
                .list_offers("", usize::MAX, |_| true)
                .unwrap()
                .into_iter()
                .map(|o| o.offer_id),
        );
        ids
    }

    fn shelf_ids(store: &Store, shelf: &str) -> Vec<String> {
        archive::read_latest(&store.shelf(shelf).unwrap())
            .unwrap()
            .into_iter()
            .map(|item| item.entity_id)
            .collect()
    }

    #[test]
    fn what_ended_long_ago_moves_to_the_archive_and_the_rest_stays() {
        let (_dir, store) = provider_node();
        assert_eq!(ids(&store).len(), 12);
        let done = store.retire_ended(400, NOW).unwrap();
        assert_eq!(done.total(), 5, "{done:?}");
        let mut left = ids(&store);
        left.sort();
        assert_eq!(
            left,
            [
                "INC-2",
                "INC-3",
                "MW-2",
                "MW-3",
                "unistra.held",
                "unistra.pod",
                "unistra.s2"
            ]
        );
        let year = fedmesh_core::retention::year_of(LONG_AGO);
        assert_eq!(shelf_ids(&store, &format!("incidents/{year}")), ["INC-1"]);
        let mut tenancies = shelf_ids(&store, &format!("subscriptions/{year}"));
        tenancies.sort();
        assert_eq!(tenancies, ["unistra.s1", "unistra.s3"]);
        assert_eq!(shelf_ids(&store, &format!("maintenance/{year}")), ["MW-1"]);
        assert_eq!(
            shelf_ids(&store, &format!("offers/{year}")),
            ["unistra.old"]
        );
        // The archive holds the entity as it last stood.
        let archived = archive::read(&store.shelf(&format!("incidents/{year}")).unwrap()).unwrap();
        assert_eq!(
            archived[0].payload,
            Some(Payload::Incident(incident(
                "INC-1",
                pb::IncidentStatus::Closed,
                LONG_AGO
            )))
        );
        // A mark says where it went, with its parties.
        let mark = store
            .retired(pb::EntityKind::Incident, "INC-1")
            .unwrap()
            .unwrap();
        assert_eq!(mark.shelf, format!("incidents/{year}"));
        assert_eq!(mark.subscriber_member_id, "rennes2");
        assert_eq!(
            store.retired(pb::EntityKind::Incident, "INC-2").unwrap(),
            None
        );

        // Nothing more to do at once; the marks go a retention period later.
        assert_eq!(store.retire_ended(400, NOW).unwrap().total(), 0);
        let later = store.retire_ended(400, NOW + 401 * DAY).unwrap();
        assert!(later.marks_expired >= 5, "{later:?}");
        assert_eq!(
            store.retired(pb::EntityKind::Incident, "INC-1").unwrap(),
            None
        );
    }

    #[test]
    fn a_crash_between_the_archive_and_the_removal_archives_again_without_loss() {
        let (_dir, store) = provider_node();
        let year = fedmesh_core::retention::year_of(LONG_AGO);
        let shelf = format!("incidents/{year}");
        // What a pass that stopped after its archive file left: the file, and the incident
        // still in its tree.
        let stored = store.get_incident("INC-1").unwrap().unwrap();
        store
            .write_archive(
                &shelf,
                &[pb::JournalEntry {
                    entity_kind: pb::EntityKind::Incident as i32,
                    entity_id: "INC-1".into(),
                    payload: Some(Payload::Incident(stored)),
                    ..Default::default()
                }],
            )
            .unwrap();
        assert!(store.get_incident("INC-1").unwrap().is_some());
        store.retire_ended(400, NOW).unwrap();
        assert!(store.get_incident("INC-1").unwrap().is_none());
        let dir = store.shelf(&shelf).unwrap();
        assert_eq!(archive::read(&dir).unwrap().len(), 2, "archived twice");
        assert_eq!(shelf_ids(&store, &shelf), ["INC-1"], "read once");
    }

    #[tokio::test]
    async fn the_coordinator_retires_tenancies_and_withdrawn_catalogue_offers() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for (id, state) in [
            ("unistra.s1", pb::SubscriptionState::Terminated),
            ("unistra.s2", pb::SubscriptionState::Active),
        ] {
            store
                .set_tenancy(
                    &format!("unistra/{id}"),
                    &Tenancy {
                        offer_id: "unistra.old".into(),
                        subscription: Some(tenancy(id, "unistra.old", state)),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
        for id in ["unistra.old", "unistra.gone"] {
            store
                .apply_catalogue(
                    "unistra",
                    None,
                    Some(pb::CatalogueOffer {
                        offer: Some(offer(id, pb::OfferStatus::Withdrawn)),
                        ..Default::default()
                    }),
                )
                .unwrap();
        }
        put_incident(
            &store,
            incident("INC-1", pb::IncidentStatus::Closed, LONG_AGO),
        );
        let done = store.retire_ended(400, NOW).unwrap();
        assert_eq!(done.total(), 3, "{done:?}");
        assert_eq!(store.tenancies("unistra.old").unwrap().len(), 1);
        assert!(store.get_incident("INC-1").unwrap().is_none());
        // An offer a live tenancy still counts on stays; the other leaves as a REMOVED change.
        assert!(store.catalogue_offer("unistra.old").unwrap().is_some());
        assert!(store.catalogue_offer("unistra.gone").unwrap().is_none());
        let revision = done.catalogue_revision.unwrap();
        store.catalogue_durable(revision).await.unwrap();
        let last = store.catalogue_changes(revision - 1, 10).unwrap();
        assert_eq!(last[0].kind, pb::CatalogueChangeKind::Removed as i32);
        assert_eq!(last[0].offer_id, "unistra.gone");
        assert!(
            store
                .retired(pb::EntityKind::Subscription, "unistra.s1")
                .unwrap()
                .is_some()
        );
    }
}
