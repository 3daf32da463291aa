//! Online backup and offline restore of a whole database.
//!
//! [`Store::snapshot`] copies every tree while no write is in flight: each write of the store
//! holds the read side of the store's write gate for its duration, and the snapshot holds the
//! write side while it copies, so the copy is one consistent state. Writes wait for it (about
//! a second per few hundred MB), and so do the calls whose threads they hold. [`restore`] writes a snapshot into a new database directory,
//! which then opens like any other (and is migrated if the snapshot is of an older schema).
//!
//! The file: `FEDMESHB` (8 bytes), the format version (u32), the schema version (u32), the
//! time taken (Unix seconds, i64); then records, each a tag byte: `1` a tree (u16 length and
//! name), `2` an entry of the last tree (u32 length and key, u32 length and value), `3` the
//! floor of sled's id generator (u64: every id the database handed out is below it); and
//! `0xff` the end: the number of entries (u64) and the CRC-32 of every byte before it (u32).
//! Integers are big-endian.

use std::path::Path;

use crate::{SCHEMA_VERSION, Store, StoreError};

const MAGIC: &[u8; 8] = b"FEDMESHB";
/// The version of the backup file's layout.
pub const FORMAT_VERSION: u32 = 1;
const TREE: u8 = 1;
const ENTRY: u8 = 2;
const ID_FLOOR: u8 = 3;
const END: u8 = 0xff;

/// A consistent copy of a database, in the backup file format.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// What it holds.
    pub summary: Summary,
}

/// What a backup file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The schema version of the database it was taken from.
    pub schema_version: u32,
    /// When it was taken (Unix seconds).
    pub taken_at_unix: i64,
    /// How many trees.
    pub trees: usize,
    /// How many entries, all trees together.
    pub entries: u64,
    /// Every id sled's generator handed out is below it (outbox sequences, usage bucket keys);
    /// 0 when the file does not say.
    pub id_floor: u64,
}

/// Why a backup file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Not a fedmesh backup, truncated, or altered.
    #[error("not a valid fedmesh backup: {0}")]
    Invalid(String),
    /// Made by a newer fedmesh.
    #[error(
        "the backup (schema version {found}, file format {format}) is newer than this fedmesh supports (schema version {supported}, file format {FORMAT_VERSION}): restore it with the version that made it"
    )]
    Newer {
        /// The backup's schema version.
        found: u32,
        /// The backup's format version.
        format: u32,
        /// The schema version this build supports.
        supported: u32,
    },
    /// The target directory holds something already.
    #[error(
        "{0} is not empty: restore into a new directory (stop the node, move its data directory aside, restore, start)"
    )]
    NotEmpty(std::path::PathBuf),
    /// Reading or writing files.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The new database.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// A consistent copy of the whole database (see the module's documentation). Writes wait
    /// while it copies (and hold the threads they run on meanwhile).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let _quiet = self.writes.write();
        let db = self.db()?;
        let mut out = Vec::with_capacity(1 << 20);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        let schema_version = self.schema_version()?;
        out.extend_from_slice(&schema_version.to_be_bytes());
        let taken_at_unix = crate::migrate::now_unix();
        out.extend_from_slice(&taken_at_unix.to_be_bytes());
        let mut entries = 0u64;
        let names = db.tree_names();
        for name in &names {
            let tree = db.open_tree(name)?;
            out.push(TREE);
            push_len16(&mut out, name)?;
            for pair in tree.iter() {
                let (key, value) = pair?;
                out.push(ENTRY);
                push_len32(&mut out, &key)?;
                push_len32(&mut out, &value)?;
                entries += 1;
            }
        }
        // Above every id handed out so far: a restored database must not hand them out again.
        let id_floor = db.generate_id()?;
        out.push(ID_FLOOR);
        out.extend_from_slice(&id_floor.to_be_bytes());
        out.push(END);
        out.extend_from_slice(&entries.to_be_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        Ok(Snapshot {
            bytes: out,
            summary: Summary {
                schema_version,
                taken_at_unix,
                trees: names.len(),
                entries,
                id_floor,
            },
        })
    }
}

fn too_long(what: &str) -> StoreError {
    StoreError::Sled(sled::Error::Unsupported(format!(
        "{what} too long for a backup record"
    )))
}

fn push_len16(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u16::try_from(bytes.len()).map_err(|_| too_long("tree name"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

fn push_len32(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), StoreError> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_long("entry"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A reader over a backup file's bytes that fails, instead of panicking, at the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BackupError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| BackupError::Invalid(format!("truncated at byte {}", self.at)))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BackupError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, BackupError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, BackupError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, BackupError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, BackupError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

/// One tree of a backup file and its entries.
type Tree<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>);

/// Checks a backup file whole (layout, checksum, versions) and returns what it holds.
pub fn read(bytes: &[u8]) -> Result<(Summary, Vec<Tree<'_>>), BackupError> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.take(MAGIC.len())? != MAGIC {
        return Err(BackupError::Invalid(
            "it does not start with FEDMESHB".into(),
        ));
    }
    // The checksum first: a damaged header must not pass for a newer version.
    let Some(body) = bytes.len().checked_sub(4).filter(|n| *n > MAGIC.len()) else {
        return Err(BackupError::Invalid("truncated".into()));
    };
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[body..]);
    if crc32fast::hash(&bytes[..body]) != u32::from_be_bytes(crc) {
        return Err(BackupError::Invalid(
            "checksum mismatch: the file was altered, damaged or truncated".into(),
        ));
    }
    let format = cursor.u32()?;
    let schema_version = cursor.u32()?;
    if format > FORMAT_VERSION || schema_version > SCHEMA_VERSION {
        return Err(BackupError::Newer {
            found: schema_version,
            format,
            supported: SCHEMA_VERSION,
        });
    }
    let taken_at_unix = i64::from_be_bytes(cursor.array()?);
    let mut trees: Vec<Tree<'_>> = Vec::new();
    let mut entries = 0u64;
    let mut id_floor = 0u64;
    loop {
        match cursor.u8()? {
            TREE => {
                let len = usize::from(cursor.u16()?);
                trees.push((cursor.take(len)?, Vec::new()));
            }
            ENTRY => {
                let key_len = cursor.u32()? as usize;
                let key = cursor.take(key_len)?;
                let value_len = cursor.u32()? as usize;
                let value = cursor.take(value_len)?;
                let (_, tree) = trees
                    .last_mut()
                    .ok_or_else(|| BackupError::Invalid("an entry before any tree".into()))?;
                tree.push((key, value));
                entries += 1;
            }
            ID_FLOOR => id_floor = cursor.u64()?,
            END => {
                let counted = cursor.u64()?;
                if cursor.at != body {
                    return Err(BackupError::Invalid("bytes after the end record".into()));
                }
                if counted != entries {
                    return Err(BackupError::Invalid(format!(
                        "{entries} entries, the end record says {counted}"
                    )));
                }
                break;
            }
            other => {
                return Err(BackupError::Invalid(format!(
                    "unknown record {other:#04x} at byte {}",
                    cursor.at - 1
                )));
            }
        }
    }
    let summary = Summary {
        schema_version,
        taken_at_unix,
        trees: trees.len(),
        entries,
        id_floor,
    };
    Ok((summary, trees))
}

/// The largest id of sled's generator found in keys (outbox sequences, the last 8 bytes of
/// usage bucket keys): for files that do not record the generator's floor.
fn ids_in_use(trees: &[Tree<'_>]) -> u64 {
    let last_u64 = |key: &[u8]| {
        key.len()
            .checked_sub(8)
            .and_then(|at| key[at..].try_into().ok())
            .map_or(0, u64::from_be_bytes)
    };
    trees
        .iter()
        .filter(|(name, _)| {
            [crate::outbox::OUTBOX_TREE, crate::usage::BUCKETS_TREE]
                .iter()
                .any(|t| t.as_bytes() == *name)
        })
        .flat_map(|(_, entries)| entries.iter().map(|(key, _)| last_u64(key)))
        .max()
        .unwrap_or(0)
}

/// Restores a backup file's bytes into `dir`, which must not exist or be empty; the new
/// database is then opened once (schema check and migrations). The file is checked whole
/// before anything is written.
pub fn restore(bytes: &[u8], dir: &Path) -> Result<Summary, BackupError> {
    let (summary, trees) = read(bytes)?;
    let io = |source| BackupError::Io {
        path: dir.to_owned(),
        source,
    };
    if dir.exists() && std::fs::read_dir(dir).map_err(io)?.next().is_some() {
        return Err(BackupError::NotEmpty(dir.to_owned()));
    }
    crate::create_private_dir(dir)?;
    {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(crate::CACHE_BYTES)
            .open()
            .map_err(StoreError::from)?;
        // sled's id generator is not in any tree: move the new database's past every id the
        // old one handed out, or new outbox items and usage buckets would take their keys.
        let floor = summary.id_floor.max(ids_in_use(&trees));
        while db.generate_id().map_err(StoreError::from)? <= floor {}
        for (name, entries) in trees {
            let tree = db.open_tree(name).map_err(StoreError::from)?;
            let mut batch = sled::Batch::default();
            for (key, value) in entries {
                batch.insert(key, value);
            }
            tree.apply_batch(batch).map_err(StoreError::from)?;
        }
        // A restored database starts a new journal: replicas read it again from the start
        // rather than trust revisions they saw from the database it replaces.
        db.open_tree(crate::META_TREE)
            .and_then(|meta| meta.remove(crate::JOURNAL_ID_KEY))
            .map_err(StoreError::from)?;
        db.flush().map_err(StoreError::from)?;
    }
    Store::open(dir)?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_data(dir: &Path) -> Store {
        let store = Store::open(dir).unwrap();
        store
            .put_node(&fedmesh_proto::pb::RegisteredNode {
                member_id: "unistra".into(),
                ..Default::default()
            })
            .unwrap();
        store
    }

    #[test]
    fn a_snapshot_restores_into_an_equal_database_with_a_new_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_data(&dir.path().join("a"));
        let snapshot = store.snapshot().unwrap();
        assert!(snapshot.summary.entries >= 3, "{:?}", snapshot.summary);
        let target = dir.path().join("b");
        let summary = restore(&snapshot.bytes, &target).unwrap();
        assert_eq!(summary, snapshot.summary);
        let restored = Store::open(&target).unwrap();
        assert_eq!(
            restored.list_nodes("", 10).unwrap(),
            store.list_nodes("", 10).unwrap()
        );
        assert_ne!(restored.journal_id().unwrap(), store.journal_id().unwrap());
    }

    /// Offers written (each with its journal entry) while snapshots are taken: every snapshot
    /// holds as many offers as journal entries, so no write was half in it.
    #[test]
    fn snapshots_taken_under_writes_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("live")).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let id = format!("w{t}.o{i}");
                        store
                            .update_offer::<()>("w", &id, |_, _| {
                                Ok(fedmesh_proto::pb::Offer {
                                    offer_id: id.clone(),
                                    ..Default::default()
                                })
                            })
                            .unwrap();
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        let mut seen = Vec::new();
        for n in 0..5 {
            std::thread::sleep(std::time::Duration::from_millis(30));
            let snapshot = store.snapshot().unwrap();
            let target = dir.path().join(format!("copy{n}"));
            restore(&snapshot.bytes, &target).unwrap();
            let copy = Store::open(&target).unwrap();
            let offers = copy.list_offers("", usize::MAX, |_| true).unwrap().len() as u64;
            let (_, last) = copy.journal_bounds().unwrap();
            assert_eq!(
                offers, last,
                "snapshot {n}: offers and journal entries differ"
            );
            seen.push(offers);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let written: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]) && seen[0] < seen[4],
            "writes went on between snapshots: {seen:?}"
        );
        assert!(
            written > seen[4],
            "{written} written, {seen:?} in the snapshots"
        );
    }

    #[test]
    fn damaged_or_foreign_files_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = store_with_data(&dir.path().join("a"))
            .snapshot()
            .unwrap()
            .bytes;
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x01;
        let mut newer = bytes.clone();
        newer[12..16].copy_from_slice(&(SCHEMA_VERSION + 1).to_be_bytes());
        // A genuine newer file: its checksum matches.
        let body = newer.len() - 4;
        let crc = crc32fast::hash(&newer[..body]);
        newer[body..].copy_from_slice(&crc.to_be_bytes());
        let cases: [(&str, &[u8], &str); 5] = [
            ("empty", &[], "truncated"),
            ("foreign", b"PK\x03\x04 a zip file", "FEDMESHB"),
            ("truncated", &bytes[..bytes.len() - 3], "truncated"),
            ("flipped", &flipped, "checksum mismatch"),
            ("newer", &newer, "newer than this fedmesh supports"),
        ];
        for (what, file, message) in cases {
            let target = dir.path().join(what);
            let error = restore(file, &target).unwrap_err().to_string();
            assert!(error.contains(message), "{what}: {error}");
            assert!(!target.exists(), "{what}: something was written");
        }
    }

    /// sled's id generator lives outside the trees: a restored database must not hand out
    /// the ids of the one it replaces, or a new outbox item would take a queued one's key.
    #[test]
    fn a_restored_database_does_not_reuse_outbox_sequences() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("a")).unwrap();
        let item = |rpc: &str| crate::outbox::OutboxItem {
            provider_member_id: "rennes2".into(),
            rpc: rpc.into(),
            ..Default::default()
        };
        let queued: Vec<u64> = (0..50)
            .map(|n| store.enqueue(&item(&format!("old-{n}"))).unwrap())
            .collect();
        for sequence in &queued[..45] {
            store.dequeue(*sequence).unwrap();
        }
        let target = dir.path().join("b");
        restore(&store.snapshot().unwrap().bytes, &target).unwrap();
        let restored = Store::open(&target).unwrap();
        let next = restored.enqueue(&item("new")).unwrap();
        assert!(next > queued[49], "{next} reuses an old sequence");
        let rpcs: Vec<String> = restored
            .outbox()
            .unwrap()
            .into_iter()
            .map(|(_, i)| i.rpc)
            .collect();
        assert_eq!(
            rpcs,
            ["old-45", "old-46", "old-47", "old-48", "old-49", "new"]
        );
    }

    #[test]
    fn restore_refuses_a_directory_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = store_with_data(&dir.path().join("a"))
            .snapshot()
            .unwrap()
            .bytes;
        let error = restore(&bytes, &dir.path().join("a")).unwrap_err();
        assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
    }
}
