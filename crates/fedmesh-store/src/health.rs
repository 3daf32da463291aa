//! Whether the database accepts writes, and its recovery when it refused some.
//!
//! sled refuses every operation after one failed write to its files (a full disk, an I/O
//! error) until the database is opened again. The store notes each flush's outcome; a
//! periodic probe ([`Store::probe_writes`]) writes and flushes a key, and when the database
//! refuses it, opens the database again, so that writes resume on their own once the cause is
//! gone. Nothing acknowledged is lost: a write is acknowledged only after its flush succeeded,
//! and what sled kept on disk is what the database holds when opened again. A journaled
//! change committed before the reopening but not yet flushed is answered with an error, never
//! acknowledged: its revision is recorded as lost ([`crate::log`]), and a flush that
//! straddles a reopening fails.

use std::time::Duration;

use crate::{Store, StoreError};

/// Why the database refuses writes, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The error of the first failed write since the last that succeeded.
    pub reason: String,
    /// When writes started failing (Unix seconds, the system clock).
    pub since_unix: i64,
}

/// How long opening the database again waits for the reads in progress to let go of it.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

const PROBE_KEY: &[u8] = b"write_probe";

/// The answer to a writer whose change the database lost when it was opened again.
pub(crate) fn not_kept() -> StoreError {
    StoreError::Sled(sled::Error::Io(std::io::Error::other(
        "the database was opened again after a failed write before this change reached the disk: it was not kept",
    )))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Store {
    /// Why the database refuses writes, if it does (the last flush or probe failed).
    pub fn write_failure(&self) -> Option<WriteFailure> {
        self.health.borrow().clone()
    }

    /// Follows [`Store::write_failure`].
    pub fn watch_write_health(&self) -> tokio::sync::watch::Receiver<Option<WriteFailure>> {
        self.health.subscribe()
    }

    /// Notes the outcome of a write that reached the disk (a flush).
    pub(crate) fn note_write<T>(&self, outcome: &Result<T, StoreError>) {
        match outcome {
            Ok(_) => {
                self.health.send_if_modified(|state| state.take().is_some());
            }
            Err(error) => {
                self.health.send_if_modified(|state| {
                    if state.is_some() {
                        return false;
                    }
                    tracing::error!(%error, "the database refuses writes");
                    *state = Some(WriteFailure {
                        reason: error.to_string(),
                        since_unix: unix_now(),
                    });
                    true
                });
            }
        }
    }

    /// Writes and flushes a small key, and notes the outcome. When the database refuses it,
    /// opens the database again (sled refuses everything after a failed write until then) and
    /// tries once more: `Ok` when writes work now.
    pub fn probe_writes(&self) -> Result<(), StoreError> {
        let outcome = self.write_probe();
        self.note_write(&outcome);
        if outcome.is_ok() {
            return Ok(());
        }
        self.reopen()?;
        let outcome = self.write_probe();
        self.note_write(&outcome);
        if outcome.is_ok() {
            tracing::info!("the database accepts writes again");
        }
        outcome
    }

    fn write_probe(&self) -> Result<(), StoreError> {
        let _writing = self.writing();
        let db = self.db()?;
        db.open_tree(crate::META_TREE)?
            .insert(PROBE_KEY, &unix_now().to_be_bytes())?;
        db.flush()?;
        Ok(())
    }

    /// Closes the database and opens it again from its files, the write gate held: what it
    /// did not keep was never acknowledged. The journals go on from what it kept.
    fn reopen(&self) -> Result<(), StoreError> {
        let _quiet = self.writes.write();
        // A flush in progress finishes on the old database first (and fails there).
        let _flushing = self.flush_lock.blocking_lock();
        // Only the database that was there: never a new, empty one in its place.
        crate::defrag::finish_interrupted(&self.path).map_err(|e| {
            StoreError::Sled(sled::Error::Unsupported(format!(
                "cannot put the database back in place: {e}"
            )))
        })?;
        if !self.path.join("conf").exists() {
            return Err(StoreError::Sled(sled::Error::Unsupported(format!(
                "no database in {}: not opening an empty one in its place",
                self.path.display()
            ))));
        }
        let Some(mut slot) = self.db.close(RELEASE_WAIT) else {
            return Err(StoreError::Sled(sled::Error::Unsupported(
                "reads in progress kept the database: it was not opened again".to_owned(),
            )));
        };
        let db = crate::open_sled(&self.path, &self.options)?;
        self.journal
            .restart(&db, crate::journal::JOURNAL_TREE, b"journal_compacted")?;
        self.catalogue_log.restart(
            &db,
            crate::catalogue::CATALOGUE_LOG_TREE,
            b"catalogue_compacted",
        )?;
        *slot = Some(std::sync::Arc::new(db));
        self.reopened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(slot);
        self.buckets_epoch
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        tracing::info!(path = %self.path.display(), "database opened again");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_flush_is_noted_until_a_write_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.write_failure(), None);
        let mut watch = store.watch_write_health();
        store.note_write::<()>(&Err(StoreError::Sled(sled::Error::Io(
            std::io::Error::other("No space left on device"),
        ))));
        let failure = store.write_failure().unwrap();
        assert!(failure.reason.contains("No space left"), "{failure:?}");
        assert!(watch.has_changed().unwrap());
        watch.mark_unchanged();
        // A second failure keeps the first's time.
        store.note_write::<()>(&Err(StoreError::Closed));
        assert_eq!(store.write_failure(), Some(failure));
        assert!(!watch.has_changed().unwrap());
        store.probe_writes().unwrap();
        assert_eq!(store.write_failure(), None);
        assert!(watch.has_changed().unwrap());
    }

    #[tokio::test]
    async fn a_change_the_reopened_database_did_not_keep_is_never_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let offer = |id: &str| fedmesh_proto::pb::Offer {
            offer_id: id.into(),
            provider_member_id: "unistra".into(),
            ..Default::default()
        };
        let (_, kept) = store
            .update_offer("unistra", "unistra.kept", |_, _| {
                Ok::<_, ()>(offer("unistra.kept"))
            })
            .unwrap();
        store.journal_durable(kept).await.unwrap();
        let (_, pending) = store
            .update_offer("unistra", "unistra.lost", |_, _| {
                Ok::<_, ()>(offer("unistra.lost"))
            })
            .unwrap();
        // The files, opened again, end before `pending` (as after a failed write).
        let files = sled::Config::new()
            .path(dir.path().join("as-on-disk"))
            .open()
            .unwrap();
        files
            .open_tree(crate::journal::JOURNAL_TREE)
            .unwrap()
            .insert(kept.to_be_bytes(), b"kept")
            .unwrap();
        store
            .journal
            .restart(&files, crate::journal::JOURNAL_TREE, b"journal_compacted")
            .unwrap();
        store.journal_durable(kept).await.unwrap();
        let err = store.journal_durable(pending).await.unwrap_err();
        assert!(err.to_string().contains("it was not kept"), "{err}");
        // Later changes take new revisions, acknowledged as usual.
        let (_, next) = store
            .update_offer("unistra", "unistra.next", |_, _| {
                Ok::<_, ()>(offer("unistra.next"))
            })
            .unwrap();
        assert!(next > pending);
        store.journal_durable(next).await.unwrap();
    }

    #[test]
    fn opening_again_keeps_what_was_flushed_and_the_journal_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tree = store.db().unwrap().open_tree("kept").unwrap();
        tree.insert(b"k", b"v").unwrap();
        store.db().unwrap().flush().unwrap();
        drop(tree);
        let before = store.journal.committed();
        store.reopen().unwrap();
        let tree = store.db().unwrap().open_tree("kept").unwrap();
        assert_eq!(tree.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(store.journal.committed(), before);
        store.probe_writes().unwrap();
    }
}
