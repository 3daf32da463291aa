//! sled-backed persistence for fedmesh nodes and the coordinator.
//!
//! One sled database per process, one tree per kind of entity. Stored values are the protobuf
//! messages themselves (prost encoding), so the store and the wire evolve together under
//! protobuf's compatibility rules. The `meta` tree records the schema version: a database
//! written by a newer fedmesh is refused rather than misread.
//!
//! - [`Store`]: opening, the schema check, durable flush.
//! - [`journal`]: the node journal and the entities written with it (offers).
//! - [`catalogue`]: the federation catalogue, its change log and replication cursors.
//! - [`compact`]: compaction of the journal and the catalogue log, and their known followers.
//! - [`subscriptions`]: tenant subscriptions, with idempotency records.
//! - [`incidents`]: incidents and maintenance windows.
//! - [`usage`]: usage and availability records, filed by offer and month or time.
//! - [`outbox`]: writes waiting for another member's node, and known peer endpoints.
//! - [`registry`]: the coordinator's directory of member nodes.
//! - [`reports`]: closed months and their monthly reports.
//! - [`backup`]: consistent online snapshots and their restore.
//! - [`defrag`]: a database rewritten into files that hold only its live data.
//! - [`health`]: whether the database accepts writes, and its recovery when it refused some.
//! - [`snapshot`]: a node's state at one journal revision, for followers that resync.
//! - [`resync`]: a follower's resync from a source's snapshot, on the coordinator.
//! - [`archive`]: what left the hot trees, in files next to the database.
//! - [`retire`]: ended entities leave the hot trees for the archive after their retention.
#![forbid(unsafe_code)]

pub mod archive;
pub mod backup;
pub mod catalogue;
pub mod compact;
pub mod defrag;
pub mod health;
pub mod incidents;
pub mod journal;
mod log;
pub mod migrate;
pub mod outbox;
pub mod registry;
pub mod reports;
pub mod resync;
pub mod retire;
pub mod snapshot;
pub mod subscriptions;
pub mod usage;

pub use catalogue::{Applied, Cursor, Tenancy};
pub use journal::WriteError;
pub use outbox::OutboxItem;

use std::path::{Path, PathBuf};

use prost::Message;

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: u32 = 3;

pub(crate) const META_TREE: &str = "meta";
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";
pub(crate) const JOURNAL_ID_KEY: &[u8] = b"journal_id";
/// How long `open` waits for a database lock held by a store that is closing.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption error.
    #[error("database error: {0}")]
    Sled(sled::Error),
    /// Another process has the database open.
    #[error(
        "database {0} is in use by another process (is another fedmesh node, coordinator or demo running on this data directory?)"
    )]
    Locked(PathBuf),
    /// The database was written by a newer fedmesh.
    #[error(
        "database {path} has schema version {found}, newer than the {supported} this fedmesh supports: upgrade fedmesh, or restore a backup made by this version"
    )]
    NewerSchema {
        /// The database directory.
        path: PathBuf,
        /// The version found on disk.
        found: u32,
        /// The version this build supports.
        supported: u32,
    },
    /// A change would make a journal entry larger than the node may send to its followers:
    /// nothing was written.
    #[error(
        "this change would make a journal entry of {bytes} bytes, more than the {limit} this server may send to the parties that replicate it (limits.max_encoding_message_bytes): send fewer records per batch, or raise that limit"
    )]
    EntryTooLarge {
        /// The entry's encoded size.
        bytes: usize,
        /// The largest entry allowed.
        limit: usize,
    },
    /// The database could not be opened again (after a failed write, or an online
    /// defragmentation): nothing can be read or written until the write probe opens it.
    #[error(
        "the database is closed: it could not be opened again after a failed write or defragmentation (see the log); the write probe tries again"
    )]
    Closed,
    /// A stored value does not decode.
    #[error("corrupt value in tree {tree} under key {key}: {source}")]
    Corrupt {
        /// The tree.
        tree: &'static str,
        /// The key, lossily printed.
        key: String,
        /// The decoding error.
        source: prost::DecodeError,
    },
}

/// A node's or the coordinator's database.
#[derive(Debug, Clone)]
pub struct Store {
    db: Slot,
    path: PathBuf,
    journal: log::Log,
    catalogue_log: log::Log,
    /// One flush at a time: a writer that finds its revision already covered by a flush that
    /// started after its commit does not flush again (group commit).
    flush_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// The write gate: every public method that writes holds its read side, once (they do
    /// not call each other), and a [`Store::snapshot`] its write side. parking_lot's lock is
    /// fair: a waiting snapshot goes before writers that come after it.
    writes: std::sync::Arc<parking_lot::RwLock<()>>,
    /// [`StoreOptions::max_entry_bytes`].
    max_entry_bytes: usize,
    /// How the database was opened, to open it again the same way.
    options: StoreOptions,
    /// How many times the database was opened again after a failed write
    /// ([`Store::probe_writes`]).
    reopened: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Whether the database accepts writes ([`Store::write_failure`]).
    health: std::sync::Arc<tokio::sync::watch::Sender<Option<health::WriteFailure>>>,
    /// Counts removals and rewrites of record buckets ([`Store::buckets_rewritten`]).
    buckets_epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Flushes begun and the last one that succeeded, numbered in order (they run one at a
    /// time, under `flush_lock`).
    flushes: std::sync::Arc<Flushes>,
}

#[derive(Debug, Default)]
struct Flushes {
    begun: std::sync::atomic::AtomicU64,
    succeeded: std::sync::atomic::AtomicU64,
}

/// sled's page cache per database (its default is 1 GiB); hot entities and the journal's tail
/// fit in it many times over. It bounds the cached pages only: sled also keeps a few hundred
/// bytes of memory per key stored (BENCHMARKS.md, "Where the soak's memory goes").
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// How often sled's background thread runs, in milliseconds. Each run writes out what is
/// buffered, then moves the live pages out of at most one 512 KiB segment of the files whose
/// pages are mostly replaced, and frees it. That one segment per run is all of sled's garbage
/// collection: at its own default of 500 ms it gives back at most 1 MiB/s, which a busy
/// provider's writes outrun, and its files then grow without bound (BENCHMARKS.md, "A year of
/// a 20-member federation"). Every 100 ms it gives back up to 5 MiB/s.
pub const CLEAN_INTERVAL_MS: u64 = 100;

/// How a database is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// sled's page cache, in bytes (config key `storage.cache_mb`).
    pub cache_bytes: u64,
    /// How often sled's background thread runs, in milliseconds (config key
    /// `storage.clean_interval_ms`; [`CLEAN_INTERVAL_MS`]).
    pub clean_interval_ms: u64,
    /// The largest journal entry a change may make: what the server may send in one message
    /// (`limits.max_encoding_message_bytes`), less the envelope of a `Watch` response. A larger
    /// entry could never reach a follower, and would stop its replication there.
    pub max_entry_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_bytes: CACHE_BYTES,
            clean_interval_ms: CLEAN_INTERVAL_MS,
            max_entry_bytes: usize::MAX,
        }
    }
}

/// What one tree of a database holds ([`Store::footprint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeFootprint {
    /// The tree's name.
    pub name: String,
    /// Its keys.
    pub keys: u64,
    /// The bytes of its keys and values.
    pub bytes: u64,
}

/// Creates `dir` (and missing parents) readable by its owner only (0700), when it does not
/// exist: sled creates its files with the process's default mode, and they hold members'
/// contacts and incident texts. An existing directory is left as the operator made it.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StoreError::Sled(sled::Error::Io(e)))
}

impl Store {
    /// Opens (or creates) the database in `dir`, checking and recording its schema version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, StoreOptions::default())
    }

    /// Like [`Store::open`], with `options`.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Self, StoreError> {
        defrag::finish_interrupted(dir).map_err(|error| match error {
            backup::BackupError::Io { source, .. } => StoreError::Sled(sled::Error::Io(source)),
            other => StoreError::Sled(sled::Error::Unsupported(other.to_string())),
        })?;
        create_private_dir(dir)?;
        let db = open_sled(dir, &options)?;
        let journal = log::Log::open(&db, journal::JOURNAL_TREE, b"journal_compacted")?;
        let catalogue_log =
            log::Log::open(&db, catalogue::CATALOGUE_LOG_TREE, b"catalogue_compacted")?;
        let store = Self {
            db: Slot::new(db),
            path: dir.to_owned(),
            journal,
            catalogue_log,
            flush_lock: std::sync::Arc::new(tokio::sync::Mutex::new(())),
            writes: std::sync::Arc::new(parking_lot::RwLock::new(())),
            max_entry_bytes: options.max_entry_bytes,
            options,
            health: std::sync::Arc::new(tokio::sync::watch::channel(None).0),
            reopened: std::sync::Arc::default(),
            buckets_epoch: std::sync::Arc::default(),
            flushes: std::sync::Arc::default(),
        };
        store.check_schema()?;
        Ok(store)
    }

    /// The largest journal entry a change may make ([`StoreOptions::max_entry_bytes`]).
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry_bytes
    }

    /// Refuses a journal entry of `bytes` larger than [`StoreOptions::max_entry_bytes`].
    pub(crate) fn entry_fits(&self, bytes: usize) -> Result<(), StoreError> {
        if bytes > self.max_entry_bytes {
            return Err(StoreError::EntryTooLarge {
                bytes,
                limit: self.max_entry_bytes,
            });
        }
        Ok(())
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let meta = self.tree(META_TREE)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                meta.insert(JOURNAL_ID_KEY, new_journal_id(&self.path).as_bytes())?;
                meta.flush()?;
                tracing::info!(path = %self.path.display(), version = SCHEMA_VERSION, "database created");
            }
            Some(raw) => {
                if meta.get(JOURNAL_ID_KEY)?.is_none() {
                    meta.insert(JOURNAL_ID_KEY, new_journal_id(&self.path).as_bytes())?;
                }
                let found = u32::from_be_bytes(raw.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: self.path.clone(),
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found < SCHEMA_VERSION {
                    migrate::migrate(&*self.db()?, &self.path, found)?;
                }
            }
        }
        Ok(())
    }

    /// The journal's id, chosen when the database was created: a replica that sees it change
    /// knows the node's journal started over and resets its cursor.
    pub fn journal_id(&self) -> Result<String, StoreError> {
        let meta = self.tree(META_TREE)?;
        Ok(meta
            .get(JOURNAL_ID_KEY)?
            .map(|raw| String::from_utf8_lossy(&raw).into_owned())
            .unwrap_or_default())
    }

    /// The schema version recorded in the database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.tree(META_TREE)?;
        Ok(meta
            .get(SCHEMA_KEY)?
            .and_then(|raw| raw.as_ref().try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(0))
    }

    /// Overwrites the recorded schema version. For migrations and for tests that simulate a
    /// database written by another version.
    pub fn set_schema_version(&self, version: u32) -> Result<(), StoreError> {
        let _writing = self.writing();
        let meta = self.tree(META_TREE)?;
        meta.insert(SCHEMA_KEY, &version.to_be_bytes())?;
        meta.flush()?;
        Ok(())
    }

    /// Waits until every write so far is on disk. Writes are acknowledged only after this.
    ///
    /// A flush that begins after this call covers every write committed before it, so a
    /// caller that waited for the lock while another caller's flush began and succeeded does
    /// not flush again (group commit: a coordinator's heartbeats, a node's outbox).
    pub async fn flush(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        let begun = self.flushes.begun.load(SeqCst);
        let _flushing = self.flush_lock.lock().await;
        if self.flushes.succeeded.load(SeqCst) > begun {
            return Ok(());
        }
        self.flush_now().await
    }

    /// Flushes on a blocking thread, then publishes as durable what was committed before the
    /// flush began. (sled's own `flush_async` waits on sled's thread pool, which deadlocks when
    /// many databases of one process flush at once.)
    async fn flush_now(&self) -> Result<(), StoreError> {
        let number = self
            .flushes
            .begun
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        let reopened = self.reopened.load(std::sync::atomic::Ordering::SeqCst);
        let journal = self.journal.committed();
        let catalogue = self.catalogue_log.committed();
        let db = self.db()?;
        let flushed = tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| {
                StoreError::Sled(sled::Error::ReportableBug(format!(
                    "flush task failed: {e}"
                )))
            })?
            .map_err(StoreError::from);
        self.note_write(&flushed);
        flushed?;
        // Opened again meanwhile ([`Store::probe_writes`]): what was committed before may not
        // be in the files just flushed.
        if self.reopened.load(std::sync::atomic::Ordering::SeqCst) != reopened {
            return Err(health::not_kept());
        }
        self.journal.mark_durable(journal);
        self.catalogue_log.mark_durable(catalogue);
        self.flushes
            .succeeded
            .fetch_max(number, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Waits until `revision` of `log` is durable, flushing unless a flush that covers it
    /// completes first.
    async fn durable(&self, log: &log::Log, revision: u64) -> Result<(), StoreError> {
        let settled = || {
            if log.lost(revision) {
                Err(health::not_kept())
            } else {
                Ok(log.durable() >= revision)
            }
        };
        if settled()? {
            return Ok(());
        }
        let _flushing = self.flush_lock.lock().await;
        if settled()? {
            return Ok(());
        }
        self.flush_now().await?;
        settled().map(|_| ())
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What each tree holds (keys, and bytes of keys and values), largest first: the live
    /// data, to set against the files' size on disk (sled's space amplification).
    pub fn footprint(&self) -> Result<Vec<TreeFootprint>, StoreError> {
        let mut trees = Vec::new();
        let db = self.db()?;
        for name in db.tree_names() {
            let tree = db.open_tree(&name)?;
            let mut footprint = TreeFootprint {
                name: String::from_utf8_lossy(&name).into_owned(),
                keys: 0,
                bytes: 0,
            };
            for pair in tree.iter() {
                let (key, value) = pair?;
                footprint.keys += 1;
                footprint.bytes += (key.len() + value.len()) as u64;
            }
            trees.push(footprint);
        }
        trees.sort_by_key(|t| std::cmp::Reverse(t.bytes));
        Ok(trees)
    }

    /// Held by every write for its duration, so that a snapshot sees none half done.
    pub(crate) fn writing(&self) -> parking_lot::RwLockReadGuard<'_, ()> {
        self.writes.read()
    }

    fn tree(&self, name: &'static str) -> Result<Tree, StoreError> {
        let db = self.db()?;
        Ok(Tree {
            tree: db.open_tree(name)?,
            _db: db,
        })
    }

    /// The open database, held for as long as it is used (see [`Slot`]).
    pub(crate) fn db(&self) -> Result<std::sync::Arc<sled::Db>, StoreError> {
        self.db.get()
    }
}

/// Where the open sled database is kept. An online defragmentation ([`Store::defragment`])
/// closes it and opens the rewritten one in its place; every use holds the `Arc` it got (a
/// [`Tree`] holds its database's) for as long as it uses the database, so that the
/// defragmentation can tell when nothing uses the old one any more. sled writes some files
/// by path (blobs): the old database must be closed before its directory changes hands.
#[derive(Debug, Clone)]
pub(crate) struct Slot(std::sync::Arc<parking_lot::RwLock<Option<std::sync::Arc<sled::Db>>>>);

impl Slot {
    fn new(db: sled::Db) -> Self {
        Self(std::sync::Arc::new(parking_lot::RwLock::new(Some(
            std::sync::Arc::new(db),
        ))))
    }

    fn get(&self) -> Result<std::sync::Arc<sled::Db>, StoreError> {
        self.0.read().clone().ok_or(StoreError::Closed)
    }

    /// Closes the database once nothing else holds it, waiting up to `wait` for the uses in
    /// progress (letting them take it meanwhile); the slot stays locked, and empty, until the
    /// guard goes. `None`, the database still open and in the slot, when they kept it.
    pub(crate) fn close(
        &self,
        wait: std::time::Duration,
    ) -> Option<parking_lot::RwLockWriteGuard<'_, Option<std::sync::Arc<sled::Db>>>> {
        let mut slot = self.0.write();
        let deadline = std::time::Instant::now() + wait;
        // Every use of the database holds an `Arc` of it: once the slot's is the only one,
        // dropping it closes the database.
        while slot
            .as_ref()
            .is_some_and(|db| std::sync::Arc::strong_count(db) > 1)
        {
            if std::time::Instant::now() >= deadline {
                return None;
            }
            parking_lot::RwLockWriteGuard::bump(&mut slot);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        *slot = None;
        Some(slot)
    }
}

/// A tree of the open database, holding the database (see [`Slot`]).
#[derive(Debug, Clone)]
pub(crate) struct Tree {
    tree: sled::Tree,
    _db: std::sync::Arc<sled::Db>,
}

impl std::ops::Deref for Tree {
    type Target = sled::Tree;

    fn deref(&self) -> &sled::Tree {
        &self.tree
    }
}

fn decode<M: Message + Default>(
    tree: &'static str,
    key: &[u8],
    raw: &[u8],
) -> Result<M, StoreError> {
    M::decode(raw).map_err(|source| StoreError::Corrupt {
        tree,
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Opens the sled database in `dir`. A database closed a moment ago (a restart in the same
/// process, a defragmentation) releases its lock when sled's background threads let go of it:
/// wait for that, briefly.
pub(crate) fn open_sled(dir: &Path, options: &StoreOptions) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(Some(options.clean_interval_ms.max(1)))
            .open()
        {
            Ok(db) => return Ok(db),
            // sled reports a held lock as an I/O error of its own wording.
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::Locked(dir.to_owned()));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(other) => return Err(StoreError::Sled(other)),
        }
    }
}

/// A journal id unique to this database's creation: the creation time and the path, hashed.
fn new_journal_id(path: &Path) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write(path.as_os_str().as_encoded_bytes());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    hasher.write_u128(nanos);
    format!(
        "{:016x}{:08x}",
        hasher.finish(),
        (nanos & 0xffff_ffff) as u32
    )
}

impl StoreError {
    pub(crate) fn from_transaction(error: sled::transaction::TransactionError<()>) -> Self {
        match error {
            sled::transaction::TransactionError::Storage(e) => Self::Sled(e),
            // Our transactions never abort on their own.
            sled::transaction::TransactionError::Abort(()) => {
                Self::Sled(sled::Error::Unsupported("transaction aborted".to_owned()))
            }
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        Self::Sled(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_in_use_is_reported_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        let err = Store::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Locked(_)), "{err}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
    }

    #[test]
    fn a_new_data_directory_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node").join("data");
        let _store = Store::open(&data).unwrap();
        for created in [&data, &dir.path().join("node")] {
            let mode = std::fs::metadata(created).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", created.display());
        }
    }

    #[test]
    fn the_footprint_counts_each_trees_keys_and_bytes_largest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let big = store.db().unwrap().open_tree("big").unwrap();
        for i in 0u32..10 {
            big.insert(i.to_be_bytes(), vec![0u8; 100]).unwrap();
        }
        store
            .db()
            .unwrap()
            .open_tree("small")
            .unwrap()
            .insert(b"k", b"v")
            .unwrap();
        let trees = store.footprint().unwrap();
        assert_eq!(trees[0].name, "big");
        assert_eq!((trees[0].keys, trees[0].bytes), (10, 10 * 104));
        let small = trees.iter().find(|t| t.name == "small").unwrap();
        assert_eq!((small.keys, small.bytes), (1, 2));
    }

    #[tokio::test]
    async fn callers_waiting_for_a_flush_share_the_next_one() {
        use std::sync::atomic::Ordering::SeqCst;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tree = store.db().unwrap().open_tree("t").unwrap();
        let mut callers = tokio::task::JoinSet::new();
        for i in 0u32..50 {
            tree.insert(i.to_be_bytes(), b"v").unwrap();
            let store = store.clone();
            callers.spawn(async move { store.flush().await });
        }
        for flushed in callers.join_all().await {
            flushed.unwrap();
        }
        // The first caller's flush, then one for everyone who came while it ran (a third at
        // most, for a caller that read the count just before the first began).
        let begun = store.flushes.begun.load(SeqCst);
        assert!((1..=3).contains(&begun), "{begun} flushes for 50 callers");
        // A caller after them all flushes again: nothing begun since it called covers it.
        store.flush().await.unwrap();
        assert_eq!(store.flushes.begun.load(SeqCst), begun + 1);
        drop((tree, store));
        let reopened = Store::open(dir.path()).unwrap();
        let tree = reopened.db().unwrap().open_tree("t").unwrap();
        assert_eq!(tree.len(), 50);
    }

    #[test]
    fn new_database_records_the_current_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.set_schema_version(SCHEMA_VERSION + 1).unwrap();
        }
        let err = Store::open(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("schema version {}", SCHEMA_VERSION + 1)),
            "{err}"
        );
        assert!(err.contains("upgrade fedmesh"), "{err}");
    }
}
