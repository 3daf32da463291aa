//! Archives: what left the hot trees, kept in plain files next to the database.
//!
//! sled keeps memory for every key it holds, so what a node no longer serves from its trees
//! (ended entities past their retention, the records of closed months) is written out of the
//! database, into files under `<data_dir>/archive/<shelf>/`: one file per pass that archives
//! (named by the time it was written, so a shelf reads in order), each a sequence of
//! length-delimited (prost varint length, then the message) [`pb::JournalEntry`] values: the
//! kind, the id, when it was recorded and the entity or the batch of records as it last stood.
//!
//! A file is written whole under a temporary name, made durable and renamed into place (then
//! its directory made durable) before what it holds is removed from the database: a crash
//! leaves either no file or a complete one. A crash between the archive and the removal
//! archives the same thing again at the next pass: readers keep the last item of each
//! `(entity_kind, entity_id)` ([`read_latest`]), or take batches of records knowing a batch may
//! appear twice (record ids are unique per offer).
//!
//! Archives are not in `fedmesh admin backup`'s file: back the directory up with the files of
//! the host (docs/operations.md). They grow with history, the database does not.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use fedmesh_proto::pb;
use prost::Message as _;

use crate::{Store, StoreError};

/// The directory of archives, inside the data directory.
pub const ARCHIVE_DIR: &str = "archive";

/// Why an archive could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file could not be read.
    #[error("cannot read archive {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file holds something that is not an archive item (truncated by a crash while it
    /// was appended to, or altered); the items before it were returned.
    #[error("archive {path} is damaged after {items} items: {source}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// How many items were read before.
        items: usize,
        /// The decoding error.
        source: prost::DecodeError,
    },
}

impl Store {
    /// The directory of this database's archives (it may not exist yet).
    pub fn archive_dir(&self) -> PathBuf {
        self.path.join(ARCHIVE_DIR)
    }

    /// Writes `items` as a new file of the shelf `shelf` (a relative path such as
    /// `incidents/2026`; its directories are created, readable by the owner only) and waits
    /// until it is on disk. Call it before removing what it archives from the database.
    /// Returns the file's path.
    pub fn write_archive(
        &self,
        shelf: &str,
        items: &[pb::JournalEntry],
    ) -> Result<PathBuf, StoreError> {
        // Held to the end: an online defragmentation moves the archives with the database,
        // and waits for every holder of the database before it does.
        let db = self.db()?;
        let dir = self.shelf(shelf)?;
        crate::create_private_dir(&dir)?;
        let mut bytes = Vec::new();
        for item in items {
            item.encode_length_delimited(&mut bytes)
                .map_err(|e| io_error(std::io::Error::other(e)))?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Unique within the process too: two passes in one nanosecond get two files.
        let sequence = db.generate_id()?;
        let name = format!("{nanos:024}-{sequence:016x}.pb");
        let path = dir.join(&name);
        let partial = dir.join(format!(".{name}.partial"));
        let mut file = create_private(&partial).map_err(io_error)?;
        file.write_all(&bytes).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        std::fs::rename(&partial, &path).map_err(io_error)?;
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error)?;
        drop(db);
        Ok(path)
    }

    /// The directory of the shelf `shelf` inside [`Store::archive_dir`]; a name that would
    /// leave it is refused.
    pub fn shelf(&self, shelf: &str) -> Result<PathBuf, StoreError> {
        let relative = Path::new(shelf);
        let inside = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !inside || shelf.is_empty() {
            return Err(StoreError::Sled(sled::Error::Unsupported(format!(
                "archive shelf {shelf:?} is not a relative path inside the archive directory"
            ))));
        }
        Ok(self.archive_dir().join(relative))
    }
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

fn io_error(error: std::io::Error) -> StoreError {
    StoreError::Sled(sled::Error::Io(error))
}

/// Every item of the shelf at `dir` (see [`Store::shelf`]), file after file in the order they
/// were written. A missing shelf holds none; files being written (hidden) are not read.
pub fn read(dir: &Path) -> Result<Vec<pb::JournalEntry>, ArchiveError> {
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ArchiveError::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut files = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|source| ArchiveError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".pb") && !name.starts_with('.') {
            files.push(entry.path());
        }
    }
    files.sort();
    let mut items = Vec::new();
    for file in files {
        items.extend(read_file(&file)?);
    }
    Ok(items)
}

/// Every item of one archive file, in the order written.
pub fn read_file(path: &Path) -> Result<Vec<pb::JournalEntry>, ArchiveError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ArchiveError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut rest = bytes.as_slice();
    let mut items = Vec::new();
    while !rest.is_empty() {
        match pb::JournalEntry::decode_length_delimited(&mut rest) {
            Ok(item) => items.push(item),
            Err(source) => {
                return Err(ArchiveError::Damaged {
                    path: path.to_owned(),
                    items: items.len(),
                    source,
                });
            }
        }
    }
    Ok(items)
}

/// The last item of each `(entity_kind, entity_id)` of the shelf at `dir`, in the order of their
/// first appearance: an entity archived twice (a crash between the archive and the removal) is
/// read once.
pub fn read_latest(dir: &Path) -> Result<Vec<pb::JournalEntry>, ArchiveError> {
    let mut order: Vec<(i32, String)> = Vec::new();
    let mut latest: std::collections::HashMap<(i32, String), pb::JournalEntry> =
        std::collections::HashMap::new();
    for item in read(dir)? {
        let key = (item.entity_kind, item.entity_id.clone());
        if latest.insert(key.clone(), item).is_none() {
            order.push(key);
        }
    }
    Ok(order
        .into_iter()
        .filter_map(|key| latest.remove(&key))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, version: &str) -> pb::JournalEntry {
        pb::JournalEntry {
            entity_kind: pb::EntityKind::Offer as i32,
            entity_id: id.into(),
            payload: Some(pb::journal_entry::Payload::Offer(pb::Offer {
                offer_id: id.into(),
                version: version.into(),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn archived_items_read_back_in_order_and_the_last_of_each_entity_wins() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data")).unwrap();
        let first = store
            .write_archive(
                "offers/2026",
                &[item("unistra.a", "1"), item("unistra.b", "1")],
            )
            .unwrap();
        store
            .write_archive("offers/2026", &[item("unistra.a", "2")])
            .unwrap();
        let shelf = store.shelf("offers/2026").unwrap();
        assert_eq!(read(&shelf).unwrap().len(), 3);
        assert_eq!(read_file(&first).unwrap().len(), 2);
        let latest = read_latest(&shelf).unwrap();
        let seen: Vec<(&str, &str)> = latest
            .iter()
            .map(|e| match &e.payload {
                Some(pb::journal_entry::Payload::Offer(o)) => {
                    (o.offer_id.as_str(), o.version.as_str())
                }
                _ => ("", ""),
            })
            .collect();
        assert_eq!(seen, [("unistra.a", "2"), ("unistra.b", "1")]);
        let mode = std::fs::metadata(&first).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(read(&store.shelf("none").unwrap()).unwrap().is_empty());
        // A file left half written by a crash is not read.
        std::fs::write(shelf.join(".000-x.pb.partial"), b"\x05ab").unwrap();
        assert_eq!(read(&shelf).unwrap().len(), 3);
    }

    #[test]
    fn a_shelf_outside_the_archive_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for shelf in ["../escape", "/etc", "", "a/../../b"] {
            assert!(store.write_archive(shelf, &[]).is_err(), "{shelf}");
        }
    }

    #[test]
    fn a_damaged_archive_file_is_reported_with_what_precedes_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let path = store
            .write_archive("x", &[item("unistra.a", "1"), item("unistra.b", "1")])
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        match read(&store.shelf("x").unwrap()) {
            Err(ArchiveError::Damaged { items, .. }) => assert_eq!(items, 1),
            other => panic!("{other:?}"),
        }
    }
}
