//! Rewriting a stopped node's or coordinator's database to give back the space sled keeps.
//!
//! sled writes a log of page versions and reuses the space of old versions as it cleans its
//! segments, but under a sustained load of writes and removals its files stay several times
//! larger than what the trees hold (measured in BENCHMARKS.md, "A year of a 20-member
//! federation"). Like etcd's `defrag` and bbolt's `compact`, [`defrag`] writes the live data
//! into a new database and puts it in the old one's place: same trees, same journal identity
//! (followers' cursors stay valid), same id generator floor; the archives beside the database
//! move with it.
//!
//! The swap is two renames: `<dir>` → `<dir>.defrag-old`, then `<dir>.defrag-new` → `<dir>`;
//! `<dir>.defrag-old` is removed last. A crash between the renames leaves no `<dir>`: the next
//! [`defrag`] (or [`finish_interrupted`], which every start runs) puts the old database back.
//!
//! A running node or coordinator does the same online ([`Store::defragment`]), when its files
//! outgrow its live data by the rule of [`Bloat`]: writes wait while the live data is copied,
//! then the old database is closed, the directories swapped and the new one opened in its
//! place, all under the write gate.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backup::BackupError;
use crate::{Store, StoreError};

/// How long [`Store::defragment`] waits for the reads in progress to let go of the old
/// database before it gives up (and leaves it as it was).
pub const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// When a running database is rewritten ([`Store::defragment_if_bloated`]): its files are at
/// least `min_bytes` and more than `ratio` times its live data (keys and values). A database
/// rewritten a moment ago takes some three to four times its live data on disk already
/// (BENCHMARKS.md, "A year of a 20-member federation").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bloat {
    /// Files at least this many times the live data (0: never rewrite).
    pub ratio: u64,
    /// Files of at least this many bytes.
    pub min_bytes: u64,
}

/// What a defragmentation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Defragmented {
    /// The database's files before (bytes on disk, archives excluded).
    pub before: u64,
    /// After.
    pub after: u64,
    /// Keys rewritten.
    pub entries: u64,
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(suffix);
    dir.with_file_name(name)
}

/// Puts back the database of a defragmentation interrupted between its two renames (and the
/// archives it had moved into the new one), and removes what an interrupted one left beside
/// it. [`Store::open`] runs it first.
pub fn finish_interrupted(dir: &Path) -> Result<(), BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let old = sibling(dir, ".defrag-old");
    let new = sibling(dir, ".defrag-new");
    if !dir.exists() && old.exists() {
        std::fs::rename(&old, dir).map_err(io(&old))?;
    }
    let moved = new.join(crate::archive::ARCHIVE_DIR);
    let archive = dir.join(crate::archive::ARCHIVE_DIR);
    if dir.exists() && moved.exists() {
        if archive.exists() {
            // Archives on both sides: never delete one to keep the other.
            return Err(BackupError::Io {
                path: moved,
                source: std::io::Error::other(format!(
                    "an interrupted defragmentation left archives here and in {}: merge them by hand, then remove it",
                    archive.display()
                )),
            });
        }
        std::fs::rename(&moved, &archive).map_err(io(&moved))?;
    }
    for leftover in [&old, &new] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).map_err(io(leftover))?;
        }
    }
    Ok(())
}

/// The bytes the database's files take on disk, archives excluded.
pub fn database_bytes(dir: &Path) -> u64 {
    fn walk(dir: &Path, skip: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                match e.metadata() {
                    Ok(_) if path == skip => 0,
                    Ok(m) if m.is_dir() => walk(&path, skip),
                    Ok(m) => m.blocks() * 512,
                    Err(_) => 0,
                }
            })
            .sum()
    }
    walk(dir, &dir.join(crate::archive::ARCHIVE_DIR))
}

/// Rewrites the database in `dir` (its process stopped) into new files holding only its live
/// data, and puts them in its place.
pub fn defrag(dir: &Path) -> Result<Defragmented, BackupError> {
    finish_interrupted(dir)?;
    let before = database_bytes(dir);
    let new = sibling(dir, ".defrag-new");
    let entries = {
        let store = Store::open(dir)?;
        copy_into(&*store.db()?, &new)?
    };
    swap_in(dir, &new)?;
    let old = sibling(dir, ".defrag-old");
    std::fs::remove_dir_all(&old).map_err(|source| BackupError::Io { path: old, source })?;
    Ok(Defragmented {
        before,
        after: database_bytes(dir),
        entries,
    })
}

/// sled's page cache while a copy is written: the copy reads each page once.
const COPY_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// Keys written per batch of a copy, so that a copy never holds a whole tree in memory.
const COPY_BATCH: usize = 1_000;

/// Copies every tree of `from` (which no write changes meanwhile) into a new database in
/// `dir`, whose id generator starts past every id `from` handed out; returns the keys copied.
/// Tree by tree and batch by batch: what it holds in memory at once is a batch, not the
/// database.
fn copy_into(from: &sled::Db, dir: &Path) -> Result<u64, BackupError> {
    crate::create_private_dir(dir)?;
    let to = sled::Config::new()
        .path(dir)
        .cache_capacity(COPY_CACHE_BYTES)
        .open()
        .map_err(StoreError::from)?;
    let floor = from.generate_id().map_err(StoreError::from)?;
    while to.generate_id().map_err(StoreError::from)? <= floor {}
    let mut entries = 0;
    for name in from.tree_names() {
        let source = from.open_tree(&name).map_err(StoreError::from)?;
        let target = to.open_tree(&name).map_err(StoreError::from)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for pair in source.iter() {
            let (key, value) = pair.map_err(StoreError::from)?;
            batch.insert(key, value);
            in_batch += 1;
            entries += 1;
            if in_batch == COPY_BATCH {
                target
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(StoreError::from)?;
                in_batch = 0;
            }
        }
        target.apply_batch(batch).map_err(StoreError::from)?;
    }
    to.flush().map_err(StoreError::from)?;
    Ok(entries)
}

/// Moves `dir`'s archives into `new`, then puts `new` in `dir`'s place (`dir` goes to
/// `<dir>.defrag-old`).
fn swap_in(dir: &Path, new: &Path) -> Result<(), BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let archive = dir.join(crate::archive::ARCHIVE_DIR);
    if archive.exists() {
        let moved = new.join(crate::archive::ARCHIVE_DIR);
        std::fs::rename(&archive, &moved).map_err(io(&archive))?;
    }
    let old = sibling(dir, ".defrag-old");
    std::fs::rename(dir, &old).map_err(io(dir))?;
    std::fs::rename(new, dir).map_err(io(new))?;
    sync_parent(dir)
}

/// Makes the renames in `dir`'s parent durable: once the new database takes writes, a power
/// cut must not bring the old one back.
fn sync_parent(dir: &Path) -> Result<(), BackupError> {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|source| BackupError::Io {
            path: parent.to_owned(),
            source,
        })
}

/// Undoes what [`swap_in`] did, as far as it went: the old database back in `dir` with its
/// archives, the new one at `new`.
fn swap_back(dir: &Path, new: &Path) -> Result<(), BackupError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let old = sibling(dir, ".defrag-old");
    if old.exists() {
        if dir.exists() {
            std::fs::rename(dir, new).map_err(io(dir))?;
        }
        std::fs::rename(&old, dir).map_err(io(&old))?;
    }
    let moved = new.join(crate::archive::ARCHIVE_DIR);
    let archive = dir.join(crate::archive::ARCHIVE_DIR);
    if moved.exists() {
        if archive.exists() {
            return Err(BackupError::Io {
                path: moved,
                source: std::io::Error::other("archives on both sides of a failed swap"),
            });
        }
        std::fs::rename(&moved, &archive).map_err(io(&moved))?;
    }
    sync_parent(dir)
}

impl Store {
    /// Rewrites this open database into new files holding only its live data, and goes on
    /// with them: the online [`defrag`]. Writes wait from the copy to the end of the swap
    /// (measured in BENCHMARKS.md); reads wait during the swap only. When reads in progress
    /// keep the old database for longer than [`RELEASE_WAIT`], nothing changes and the
    /// answer says so ([`DefragError::Busy`]).
    pub fn defragment(&self) -> Result<Defragmented, DefragError> {
        let _quiet = self.writes.write();
        finish_interrupted(&self.path)?;
        let before = database_bytes(&self.path);
        let new = sibling(&self.path, ".defrag-new");
        let entries = match copy_into(&*self.db()?, &new) {
            Ok(entries) => entries,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&new);
                return Err(error.into());
            }
        };
        let Some(mut slot) = self.db.close(RELEASE_WAIT) else {
            let _ = std::fs::remove_dir_all(&new);
            return Err(DefragError::Busy);
        };
        let swapped = swap_in(&self.path, &new)
            .and_then(|()| Ok(crate::open_sled(&self.path, &self.options)?));
        match swapped {
            Ok(db) => {
                *slot = Some(Arc::new(db));
                drop(slot);
                let old = sibling(&self.path, ".defrag-old");
                if let Err(error) = std::fs::remove_dir_all(&old) {
                    tracing::warn!(path = %old.display(), %error, "cannot remove the old database files");
                }
                Ok(Defragmented {
                    before,
                    after: database_bytes(&self.path),
                    entries,
                })
            }
            Err(error) => {
                match swap_back(&self.path, &new) {
                    Ok(()) => {
                        // Only now is `new` the rewritten copy alone (its archives moved back).
                        let _ = std::fs::remove_dir_all(&new);
                        match crate::open_sled(&self.path, &self.options) {
                            Ok(db) => *slot = Some(Arc::new(db)),
                            Err(again) => {
                                tracing::error!(%error, %again, "cannot open the database again after a failed defragmentation; the write probe retries")
                            }
                        }
                    }
                    Err(again) => {
                        tracing::error!(%error, %again, "cannot put the database back after a failed defragmentation: the next start does (see docs/operations.md)");
                    }
                }
                Err(error.into())
            }
        }
    }

    /// [`Store::defragment`] when the files outgrow the live data by `bloat`'s rule; `None`
    /// when they do not.
    pub fn defragment_if_bloated(&self, bloat: Bloat) -> Result<Option<Defragmented>, DefragError> {
        if bloat.ratio == 0 {
            return Ok(None);
        }
        let files = database_bytes(&self.path);
        if files < bloat.min_bytes {
            return Ok(None);
        }
        let live: u64 = self.footprint()?.iter().map(|tree| tree.bytes).sum();
        if files <= live.saturating_mul(bloat.ratio) {
            return Ok(None);
        }
        self.defragment().map(Some)
    }
}

/// Why an online defragmentation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DefragError {
    /// Reads kept the old database longer than [`RELEASE_WAIT`]; nothing changed.
    #[error(
        "reads in progress kept the database for more than {} s: nothing changed, the next check tries again",
        RELEASE_WAIT.as_secs()
    )]
    Busy,
    /// Copying or swapping failed; the database goes on as it was.
    #[error(transparent)]
    Failed(#[from] BackupError),
}

impl From<StoreError> for DefragError {
    fn from(error: StoreError) -> Self {
        Self::Failed(error.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defragmented_database_holds_the_same_data_in_less_space() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (journal_id, checksum) = {
            let store = churned(&data);
            (
                store.journal_id().unwrap(),
                store.db().unwrap().checksum().unwrap(),
            )
        };
        let done = defrag(&data).unwrap();
        assert!(done.after < done.before, "{done:?}");
        let store = Store::open(&data).unwrap();
        assert_eq!(store.journal_id().unwrap(), journal_id);
        assert_eq!(store.db().unwrap().checksum().unwrap(), checksum);
        let archived = crate::archive::read(&store.shelf("usage/x/202601").unwrap()).unwrap();
        assert_eq!(archived.len(), 1);
        assert_eq!(archived[0].revision, 7);
        assert!(!sibling(&data, ".defrag-old").exists());
        assert!(!sibling(&data, ".defrag-new").exists());
    }

    /// A database whose files hold much more than its live data, with an archive.
    fn churned(data: &Path) -> Store {
        let store = Store::open(data).unwrap();
        let tree = store.db().unwrap().open_tree("churn").unwrap();
        for round in 0u32..20 {
            for i in 0u32..2_000 {
                tree.insert(
                    [round.to_be_bytes(), i.to_be_bytes()].concat(),
                    vec![7u8; 500],
                )
                .unwrap();
            }
            if round > 0 {
                for key in tree.scan_prefix((round - 1).to_be_bytes()).keys() {
                    tree.remove(key.unwrap()).unwrap();
                }
            }
            store.db().unwrap().flush().unwrap();
        }
        let kept = fedmesh_proto::pb::JournalEntry {
            revision: 7,
            ..Default::default()
        };
        store.write_archive("usage/x/202601", &[kept]).unwrap();
        store
    }

    /// The high-water mark of a database's files under `seconds` of random overwrites of
    /// `keys` small values, 64 a batch flushed like a node's writes, 100 batches a second.
    fn overwritten_files(clean_interval_ms: u64, keys: u32, seconds: u64) -> (u64, u64) {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let options = crate::StoreOptions {
            clean_interval_ms,
            ..crate::StoreOptions::default()
        };
        let store = Store::open_with(dir.path(), options).unwrap();
        let db = store.db().unwrap();
        let tree = db.open_tree("churn").unwrap();
        let mut batch = sled::Batch::default();
        for key in 0..keys {
            batch.insert(&key.to_be_bytes(), vec![0u8; 200]);
        }
        tree.apply_batch(batch).unwrap();
        db.flush().unwrap();
        let filled = database_bytes(dir.path());
        let started = Instant::now();
        let mut next = started;
        let mut state = 0x9e37_79b9u32;
        for round in 0u32.. {
            if started.elapsed() >= Duration::from_secs(seconds) {
                break;
            }
            let mut batch = sled::Batch::default();
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                batch.insert(&(state % keys).to_be_bytes(), vec![round as u8; 200]);
            }
            tree.apply_batch(batch).unwrap();
            db.flush().unwrap();
            next += Duration::from_millis(10);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        (filled, database_bytes(dir.path()))
    }

    /// sled frees at most one segment of replaced pages per run of its background thread.
    /// Under random overwrites spread over many pages, its own default interval (500 ms)
    /// falls behind and the files grow; the store's default keeps them at their size.
    #[test]
    fn the_default_clean_interval_keeps_overwritten_files_at_their_size() {
        let ours = std::thread::spawn(|| overwritten_files(crate::CLEAN_INTERVAL_MS, 20_000, 10));
        let sleds = std::thread::spawn(|| overwritten_files(500, 20_000, 10));
        let ((filled, ours), (_, sleds)) = (ours.join().unwrap(), sleds.join().unwrap());
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        assert!(
            ours < filled + filled / 4,
            "filled {:.1} MiB, after the overwrites {:.1} MiB",
            mib(filled),
            mib(ours)
        );
        assert!(
            sleds > ours + ours / 4,
            "every {} ms {:.1} MiB, every 500 ms {:.1} MiB: the interval made no difference",
            crate::CLEAN_INTERVAL_MS,
            mib(ours),
            mib(sleds)
        );
    }

    #[test]
    fn a_running_database_is_rewritten_in_place_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = churned(&data);
        let journal_id = store.journal_id().unwrap();
        let checksum = store.db().unwrap().checksum().unwrap();
        // A clone elsewhere in the process, reading all along.
        let reading = store.clone();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (stop, journal_id) = (stop.clone(), journal_id.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(reading.journal_id().unwrap(), journal_id);
                    reads += 1;
                }
                reads
            })
        };
        let done = store.defragment().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        assert!(done.after < done.before, "{done:?}");
        assert_eq!(store.db().unwrap().checksum().unwrap(), checksum);
        assert_eq!(database_bytes(&data), done.after);
        assert!(!sibling(&data, ".defrag-old").exists());
        assert!(!sibling(&data, ".defrag-new").exists());
        // Writes go to the new files, and stay there.
        store
            .db()
            .unwrap()
            .open_tree("after")
            .unwrap()
            .insert(b"k", b"v")
            .unwrap();
        let archived = crate::archive::read(&store.shelf("usage/x/202601").unwrap()).unwrap();
        assert_eq!(archived[0].revision, 7);
        drop(store);
        let store = Store::open(&data).unwrap();
        assert_eq!(store.journal_id().unwrap(), journal_id);
        let after = store.db().unwrap().open_tree("after").unwrap();
        assert_eq!(after.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn a_read_that_keeps_the_database_makes_the_rewrite_give_up_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = churned(&data);
        let checksum = store.db().unwrap().checksum().unwrap();
        let held = store.db().unwrap();
        let err = store.defragment().unwrap_err();
        assert!(matches!(err, DefragError::Busy), "{err}");
        assert!(err.to_string().contains("nothing changed"), "{err}");
        drop(held);
        assert!(!sibling(&data, ".defrag-new").exists());
        assert_eq!(store.db().unwrap().checksum().unwrap(), checksum);
        store
            .db()
            .unwrap()
            .open_tree("after")
            .unwrap()
            .insert(b"k", b"v")
            .unwrap();
    }

    #[test]
    fn the_rewrite_happens_only_past_the_bloat_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store = churned(&dir.path().join("data"));
        let never = Bloat {
            ratio: 0,
            min_bytes: 0,
        };
        let small = Bloat {
            ratio: 1,
            min_bytes: u64::MAX,
        };
        let lean = Bloat {
            ratio: 1_000,
            min_bytes: 0,
        };
        for rule in [never, small, lean] {
            assert_eq!(store.defragment_if_bloated(rule).unwrap(), None, "{rule:?}");
        }
        // About 1 MB live in 8 MB of files, some 3 MB once rewritten.
        let bloated = Bloat {
            ratio: 4,
            min_bytes: 1024 * 1024,
        };
        assert!(store.defragment_if_bloated(bloated).unwrap().is_some());
        assert_eq!(store.defragment_if_bloated(bloated).unwrap(), None);
    }

    #[test]
    fn opening_puts_back_a_swap_interrupted_after_the_archives_moved() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let checksum = {
            let store = churned(&data);
            store.db().unwrap().checksum().unwrap()
        };
        let new = sibling(&data, ".defrag-new");
        std::fs::create_dir(&new).unwrap();
        std::fs::rename(
            data.join(crate::archive::ARCHIVE_DIR),
            new.join(crate::archive::ARCHIVE_DIR),
        )
        .unwrap();
        std::fs::rename(&data, sibling(&data, ".defrag-old")).unwrap();
        let store = Store::open(&data).unwrap();
        assert_eq!(store.db().unwrap().checksum().unwrap(), checksum);
        let archived = crate::archive::read(&store.shelf("usage/x/202601").unwrap()).unwrap();
        assert_eq!(archived[0].revision, 7);
        assert!(!new.exists());
        assert!(!sibling(&data, ".defrag-old").exists());
    }

    #[test]
    fn a_running_database_is_not_defragmented() {
        let dir = tempfile::tempdir().unwrap();
        let _running = Store::open(dir.path()).unwrap();
        let err = defrag(dir.path()).unwrap_err();
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
    }

    #[test]
    fn an_interrupted_swap_puts_the_old_database_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        drop(Store::open(&data).unwrap());
        std::fs::rename(&data, sibling(&data, ".defrag-old")).unwrap();
        std::fs::create_dir(sibling(&data, ".defrag-new")).unwrap();
        finish_interrupted(&data).unwrap();
        assert!(data.join("conf").exists());
        assert!(!sibling(&data, ".defrag-new").exists());
    }
}
