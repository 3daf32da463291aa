//! Append-only logs with a monotonically increasing revision: the node journal, and the
//! catalogue change log (on the coordinator, and in every node's catalogue cache).
//!
//! Writers are serialized by a lock held only while the sled transaction runs: a writer reads
//! what it needs, decides, and commits the entity together with its log entry at the next
//! revision. Durability is batched: after committing, a writer waits for `flush_async`, which
//! covers every write committed before it (group commit), then publishes the revision as
//! durable. Readers and watchers only ever see durable revisions, so an entry that a crash
//! could undo is never handed to another party.

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::StoreError;

/// A log's write lock (holding the last committed revision) and its durable revision.
#[derive(Debug, Clone)]
pub(crate) struct Log {
    state: Arc<LogState>,
}

#[derive(Debug)]
struct LogState {
    committed: Mutex<u64>,
    durable: watch::Sender<u64>,
    /// Revisions committed but never kept: the database was opened again after a failed
    /// write before they reached the disk ([`Log::restart`]). Never handed out again.
    lost: Mutex<Vec<std::ops::RangeInclusive<u64>>>,
}

impl Log {
    /// Opens the log over `tree`, whose last key is the last revision written, or, if every
    /// entry was compacted away, the compaction point in the `meta` tree under
    /// `compacted_key` (compaction keeps the head, but the sequence must never go back).
    pub(crate) fn open(
        db: &sled::Db,
        tree: &'static str,
        compacted_key: &[u8],
    ) -> Result<Self, StoreError> {
        let last = last_revision(db, tree, compacted_key)?;
        let (durable, _) = watch::channel(last);
        Ok(Self {
            state: Arc::new(LogState {
                committed: Mutex::new(last),
                durable,
                lost: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs `write` with the next revision while holding the write lock; `write` returns the
    /// revision it used (`Some(next)`) or `None` when it wrote nothing.
    pub(crate) fn append<T, E>(
        &self,
        write: impl FnOnce(u64) -> Result<(T, Option<u64>), E>,
    ) -> Result<T, E> {
        let mut committed = match self.state.committed.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (value, used) = write(*committed + 1)?;
        if let Some(revision) = used {
            *committed = revision;
        }
        Ok(value)
    }

    /// Goes on from what `db` holds, the database having been opened again after a failed
    /// write (the caller holds the write gate): the revisions committed after its last one
    /// were never durable, so never acknowledged nor handed to a follower; they are recorded
    /// as lost (a writer still waiting for one is told so) and not handed out again.
    pub(crate) fn restart(
        &self,
        db: &sled::Db,
        tree: &'static str,
        compacted_key: &[u8],
    ) -> Result<(), StoreError> {
        let last = last_revision(db, tree, compacted_key)?;
        let committed = self.committed();
        if committed > last {
            let mut lost = match self.state.lost.lock() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            lost.push(last + 1..=committed);
        }
        self.mark_durable(last);
        Ok(())
    }

    /// Whether `revision` was committed but lost when the database was opened again.
    pub(crate) fn lost(&self, revision: u64) -> bool {
        let lost = match self.state.lost.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        lost.iter().any(|range| range.contains(&revision))
    }

    /// The last committed revision (durable or not).
    pub(crate) fn committed(&self) -> u64 {
        match self.state.committed.lock() {
            Ok(guard) => *guard,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    /// Publishes `revision` as durable (the caller flushed after committing it).
    pub(crate) fn mark_durable(&self, revision: u64) {
        self.state.durable.send_if_modified(|current| {
            if revision > *current {
                *current = revision;
                true
            } else {
                false
            }
        });
    }

    /// The last durable revision, and a receiver that changes when it grows.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.state.durable.subscribe()
    }

    /// The last durable revision.
    pub(crate) fn durable(&self) -> u64 {
        *self.state.durable.borrow()
    }
}

/// The last revision of the log over `tree` in `db`: its last key or, if every entry was
/// compacted away, the compaction point in the `meta` tree under `compacted_key` (compaction
/// keeps the head, but the sequence must never go back).
fn last_revision(
    db: &sled::Db,
    tree: &'static str,
    compacted_key: &[u8],
) -> Result<u64, StoreError> {
    let revision = |raw: &[u8]| raw.try_into().ok().map(u64::from_be_bytes);
    let last = db
        .open_tree(tree)?
        .last()?
        .and_then(|(key, _)| revision(&key))
        .unwrap_or(0);
    let compacted = db
        .open_tree(crate::META_TREE)?
        .get(compacted_key)?
        .and_then(|raw| revision(&raw))
        .unwrap_or(0);
    Ok(last.max(compacted))
}

/// The big-endian key of a revision, so that sled's key order is revision order.
pub(crate) fn key(revision: u64) -> [u8; 8] {
    revision.to_be_bytes()
}
