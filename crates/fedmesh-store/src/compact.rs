//! Compaction of the append-only logs: the node journal and the catalogue change log.
//!
//! A log is compacted below a revision chosen by [`Rule`]: the last `keep_entries` entries and
//! every entry younger than `keep_secs` stay; beyond that an entry a known follower still needs
//! (one after the `since` of its latest read) stays too, unless it is older than
//! `max_keep_secs`. A follower away longer asks for a compacted revision, is told so, and
//! resyncs from a snapshot. The compaction point (the last revision removed) is kept in the
//! `meta` tree, written before any entry goes, so that a reader never meets a silent gap: a
//! reader checks it after reading (see [`Store::compacted`]).
//!
//! Known followers are kept per log in a small tree (`journal_followers`,
//! `catalogue_followers`): caller identity → the `since` of its latest read and when. It holds
//! at most [`MAX_FOLLOWERS`] marks (the oldest goes first) and forgets a mark older than
//! `max_keep_secs`, whose follower would have to resync anyway.
//!
//! "Now" is a parameter of every function here (Unix seconds), so that tests drive it.

use prost::Message as _;

use crate::log::key;
use crate::{META_TREE, Store, StoreError, decode};

/// The most followers remembered per log; past it the one seen longest ago is forgotten.
pub const MAX_FOLLOWERS: usize = 1024;
/// Entries removed per slice, each slice holding the write gate.
const SLICE: usize = 1_000;
/// A follower's mark is rewritten at most this often when its `since` does not change.
const MARK_REFRESH_SECS: i64 = 3_600;

/// Which log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The node journal (`JournalService`).
    Journal,
    /// The catalogue change log (`CatalogueService.WatchCatalogue`): the coordinator's, or a
    /// node's cache.
    Catalogue,
}

impl LogKind {
    fn tree(self) -> &'static str {
        match self {
            Self::Journal => crate::journal::JOURNAL_TREE,
            Self::Catalogue => crate::catalogue::CATALOGUE_LOG_TREE,
        }
    }

    fn followers_tree(self) -> &'static str {
        match self {
            Self::Journal => "journal_followers",
            Self::Catalogue => "catalogue_followers",
        }
    }

    fn meta_key(self) -> &'static [u8] {
        match self {
            Self::Journal => b"journal_compacted",
            Self::Catalogue => b"catalogue_compacted",
        }
    }

    fn log(self, store: &Store) -> &crate::log::Log {
        match self {
            Self::Journal => &store.journal,
            Self::Catalogue => &store.catalogue_log,
        }
    }

    /// When an entry of this log was written (Unix seconds), read without its payload.
    fn written_at(self, raw: &[u8]) -> Option<i64> {
        match self {
            Self::Journal => JournalTime::decode(raw)
                .ok()?
                .record_time
                .map(|t| t.seconds),
            Self::Catalogue => ChangeTime::decode(raw).ok()?.change_time.map(|t| t.seconds),
        }
    }
}

/// The time field of a `JournalEntry` (same tag), so that the payload is skipped unparsed.
#[derive(Clone, PartialEq, prost::Message)]
struct JournalTime {
    #[prost(message, optional, tag = "2")]
    record_time: Option<prost_types::Timestamp>,
}

/// The time field of a `CatalogueChange` (same tag).
#[derive(Clone, PartialEq, prost::Message)]
struct ChangeTime {
    #[prost(message, optional, tag = "5")]
    change_time: Option<prost_types::Timestamp>,
}

/// Which entries of a log stay (config keys `journal.keep_*` on a node, `catalogue.keep_*` on
/// the coordinator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// At least this many of the last entries stay (at least 1: the head stays).
    pub keep_entries: u64,
    /// Every entry younger than this (seconds) stays.
    pub keep_secs: i64,
    /// An entry a known follower still needs stays until it is this old (seconds).
    pub max_keep_secs: i64,
}

/// A known follower of a log: the `since` of its latest read, and when it read.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct FollowerMark {
    /// The revision it asked to read after (its persisted cursor).
    #[prost(uint64, tag = "1")]
    pub since: u64,
    /// When, in Unix seconds.
    #[prost(int64, tag = "2")]
    pub at_unix: i64,
}

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// The compaction point after it: the last revision removed (0: none ever).
    pub compacted: u64,
    /// Entries removed by this pass.
    pub removed: usize,
}

impl Store {
    /// The compaction point of `log`: every revision up to it is gone (0 when none is).
    pub fn compacted(&self, log: LogKind) -> Result<u64, StoreError> {
        Ok(self
            .tree(META_TREE)?
            .get(log.meta_key())?
            .and_then(|raw| raw.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0))
    }

    /// Records that `follower` (a caller identity) read `log` after `since` at `now_unix`.
    pub fn note_follower(
        &self,
        log: LogKind,
        follower: &str,
        since: u64,
        now_unix: i64,
    ) -> Result<(), StoreError> {
        let _writing = self.writing();
        let tree = self.tree(log.followers_tree())?;
        if let Some(raw) = tree.get(follower.as_bytes())? {
            let mark: FollowerMark = decode(log.followers_tree(), follower.as_bytes(), &raw)?;
            if mark.since == since && now_unix - mark.at_unix < MARK_REFRESH_SECS {
                return Ok(());
            }
        } else if tree.len() >= MAX_FOLLOWERS {
            let oldest = self
                .followers(log)?
                .into_iter()
                .min_by_key(|(_, mark)| mark.at_unix);
            if let Some((name, _)) = oldest {
                tree.remove(name.as_bytes())?;
            }
        }
        let mark = FollowerMark {
            since,
            at_unix: now_unix,
        };
        tree.insert(follower.as_bytes(), mark.encode_to_vec())?;
        Ok(())
    }

    /// The known followers of `log`, by caller identity.
    pub fn followers(&self, log: LogKind) -> Result<Vec<(String, FollowerMark)>, StoreError> {
        self.tree(log.followers_tree())?
            .iter()
            .map(|item| {
                let (k, raw) = item?;
                let mark = decode(log.followers_tree(), &k, &raw)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), mark))
            })
            .collect()
    }

    /// Compacts `log` by `rule` at `now_unix` (see the module's documentation): the
    /// compaction point is written first, then the entries below it go in slices of 1,000,
    /// each holding the write gate. Blocks on sled: call it off the async runtime.
    pub fn compact(
        &self,
        log: LogKind,
        rule: &Rule,
        now_unix: i64,
    ) -> Result<Compaction, StoreError> {
        let before = self.compacted(log)?;
        let head = log.log(self).durable();
        let count_floor = head.saturating_sub(rule.keep_entries.max(1));
        if count_floor <= before {
            return Ok(Compaction {
                compacted: before,
                removed: 0,
            });
        }
        let keep_cut = now_unix.saturating_sub(rule.keep_secs);
        let max_cut = now_unix.saturating_sub(rule.max_keep_secs.max(rule.keep_secs));
        // The oldest entries, up to the first one young enough to stay.
        let (mut age_floor, mut max_floor) = (before, before);
        let entries = self.tree(log.tree())?;
        for item in entries.range(key(before.saturating_add(1))..=key(count_floor)) {
            let (k, raw) = item?;
            let Some(revision) = k.as_ref().try_into().ok().map(u64::from_be_bytes) else {
                continue;
            };
            // An entry without a time is as old as the one before it.
            let written = log.written_at(&raw).unwrap_or(i64::MIN);
            if written >= keep_cut {
                break;
            }
            age_floor = revision;
            if written < max_cut {
                max_floor = revision;
            }
        }
        // Followers seen within max_keep hold back what they still need; older marks go.
        let followers = self.tree(log.followers_tree())?;
        let mut follower_floor = u64::MAX;
        for (name, mark) in self.followers(log)? {
            if mark.at_unix < max_cut {
                followers.remove(name.as_bytes())?;
            } else {
                follower_floor = follower_floor.min(mark.since);
            }
        }
        let target = age_floor
            .min(follower_floor)
            .max(max_floor)
            .min(count_floor);
        if target <= before {
            return Ok(Compaction {
                compacted: before,
                removed: 0,
            });
        }
        {
            let _writing = self.writing();
            self.tree(META_TREE)?
                .insert(log.meta_key(), &target.to_be_bytes())?;
        }
        let mut removed = 0;
        loop {
            let _writing = self.writing();
            let keys: Vec<sled::IVec> = entries
                .range(..=key(target))
                .keys()
                .take(SLICE)
                .collect::<Result<_, _>>()?;
            if keys.is_empty() {
                break;
            }
            let mut batch = sled::Batch::default();
            removed += keys.len();
            for k in keys {
                batch.remove(k);
            }
            entries.apply_batch(batch)?;
        }
        tracing::debug!(?log, compacted = target, removed, "log compacted");
        Ok(Compaction {
            compacted: target,
            removed,
        })
    }
}

#[cfg(test)]
mod tests {
    use fedmesh_proto::pb;

    use super::*;

    const DAY: i64 = 86_400;

    fn offer(version: u32) -> pb::Offer {
        pb::Offer {
            offer_id: "unistra.pod".into(),
            version: version.to_string(),
            ..Default::default()
        }
    }

    /// A store whose journal holds `n` entries, written (by their record time) `age_days`
    /// before `now`.
    async fn journal_of(n: u32) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for v in 1..=n {
            let (_, revision) = store
                .update_offer("unistra", "unistra.pod", |_, _| Ok::<_, ()>(offer(v)))
                .unwrap();
            store.journal_durable(revision).await.unwrap();
        }
        (dir, store)
    }

    fn now() -> i64 {
        crate::migrate::now_unix()
    }

    #[tokio::test]
    async fn the_last_entries_and_young_ones_stay() {
        let (_dir, store) = journal_of(10).await;
        // Every entry is young: nothing goes.
        let young = Rule {
            keep_entries: 3,
            keep_secs: DAY,
            max_keep_secs: 90 * DAY,
        };
        assert_eq!(
            store
                .compact(LogKind::Journal, &young, now())
                .unwrap()
                .removed,
            0
        );
        // Ten days later they are old: all but the last three go.
        let later = now() + 10 * DAY;
        let done = store.compact(LogKind::Journal, &young, later).unwrap();
        assert_eq!(
            done,
            Compaction {
                compacted: 7,
                removed: 7
            }
        );
        assert_eq!(store.compacted(LogKind::Journal).unwrap(), 7);
        assert_eq!(store.journal_bounds().unwrap(), (8, 10));
        assert_eq!(
            store.journal_entries(7, 100).unwrap().len(),
            3,
            "what stays still reads"
        );
        // Again: nothing more.
        assert_eq!(
            store
                .compact(LogKind::Journal, &young, later)
                .unwrap()
                .removed,
            0
        );
    }

    #[tokio::test]
    async fn a_known_follower_holds_back_compaction_until_max_keep() {
        let (dir, store) = journal_of(10).await;
        store
            .note_follower(LogKind::Journal, "spiffe://f/coordinator", 4, now())
            .unwrap();
        let rule = Rule {
            keep_entries: 1,
            keep_secs: DAY,
            max_keep_secs: 30 * DAY,
        };
        // Old enough to go, but the follower still needs what follows revision 4.
        let done = store
            .compact(LogKind::Journal, &rule, now() + 2 * DAY)
            .unwrap();
        assert_eq!(done.compacted, 4);
        assert_eq!(store.journal_bounds().unwrap(), (5, 10));
        // Past max_keep the follower no longer holds anything, and its mark is forgotten.
        let done = store
            .compact(LogKind::Journal, &rule, now() + 31 * DAY)
            .unwrap();
        assert_eq!(done.compacted, 9, "the head stays");
        assert!(store.followers(LogKind::Journal).unwrap().is_empty());
        // The compaction point and the revision sequence survive a reopen.
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.compacted(LogKind::Journal).unwrap(), 9);
        assert_eq!(store.journal_bounds().unwrap(), (10, 10));
        let (_, next) = store
            .update_offer("unistra", "unistra.pod", |_, _| Ok::<_, ()>(offer(11)))
            .unwrap();
        assert_eq!(next, 11);
    }

    #[test]
    fn followers_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..=MAX_FOLLOWERS {
            let at = i64::try_from(i).unwrap();
            store
                .note_follower(LogKind::Catalogue, &format!("f{i}"), 1, at)
                .unwrap();
        }
        let followers = store.followers(LogKind::Catalogue).unwrap();
        assert_eq!(followers.len(), MAX_FOLLOWERS);
        assert!(
            followers.iter().all(|(name, _)| name != "f0"),
            "the one seen longest ago went"
        );
    }
}
