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
//! [`defrag`] (or [`finish_interrupted`]) puts the old database back.

use std::path::{Path, PathBuf};

use crate::Store;
use crate::backup::{BackupError, Journal};

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

/// Puts back the database of a defragmentation interrupted between its two renames, and
/// removes what an interrupted one left beside it.
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
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Io { path, source }
    };
    let before = database_bytes(dir);
    let snapshot = {
        let store = Store::open(dir)?;
        store.snapshot()?
    };
    let new = sibling(dir, ".defrag-new");
    crate::backup::write_database(&snapshot.bytes, &new, Journal::Same)?;
    let archive = dir.join(crate::archive::ARCHIVE_DIR);
    if archive.exists() {
        let moved = new.join(crate::archive::ARCHIVE_DIR);
        std::fs::rename(&archive, &moved).map_err(io(&archive))?;
    }
    let old = sibling(dir, ".defrag-old");
    std::fs::rename(dir, &old).map_err(io(dir))?;
    std::fs::rename(&new, dir).map_err(io(&new))?;
    std::fs::remove_dir_all(&old).map_err(io(&old))?;
    Ok(Defragmented {
        before,
        after: database_bytes(dir),
        entries: snapshot.summary.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_defragmented_database_holds_the_same_data_in_less_space() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (journal_id, checksum) = {
            let store = Store::open(&data).unwrap();
            let tree = store.db.open_tree("churn").unwrap();
            // Writes and removals, as months of usage do.
            for round in 0u32..20 {
                for i in 0u32..2_000 {
                    tree.insert(
                        [round.to_be_bytes(), i.to_be_bytes()].concat(),
                        vec![7u8; 500],
                    )
                    .unwrap();
                }
                if round > 0 {
                    let previous = (round - 1).to_be_bytes();
                    for key in tree.scan_prefix(previous).keys() {
                        tree.remove(key.unwrap()).unwrap();
                    }
                }
                store.db.flush().unwrap();
            }
            let kept = fedmesh_proto::pb::JournalEntry {
                revision: 7,
                ..Default::default()
            };
            store.write_archive("usage/x/202601", &[kept]).unwrap();
            (store.journal_id().unwrap(), store.db.checksum().unwrap())
        };
        let done = defrag(&data).unwrap();
        assert!(done.after < done.before, "{done:?}");
        let store = Store::open(&data).unwrap();
        assert_eq!(store.journal_id().unwrap(), journal_id);
        assert_eq!(store.db.checksum().unwrap(), checksum);
        let archived = crate::archive::read(&store.shelf("usage/x/202601").unwrap()).unwrap();
        assert_eq!(archived.len(), 1);
        assert_eq!(archived[0].revision, 7);
        assert!(!sibling(&data, ".defrag-old").exists());
        assert!(!sibling(&data, ".defrag-new").exists());
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
