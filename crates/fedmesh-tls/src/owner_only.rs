//! Files readable by their owner only (mode 0600): private keys, tokens, configurations that
//! hold a token, backups (members' contacts and incident texts).
//!
//! The mode is set when the file is created, never by a `chmod` after writing, so that no
//! other user can open it in between; a file that exists already (`--force`, a directory
//! reused) has its mode tightened before a byte of the new content is written.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// The mode of every file this module writes.
pub const MODE: u32 = 0o600;

/// Opens `path` for writing, empty: created 0600, or an existing file tightened to 0600 and
/// then truncated.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(MODE)
        .open(path)?;
    // `mode` applies only when the file is created: an existing one keeps its own until this.
    file.set_permissions(Permissions::from_mode(MODE))?;
    file.set_len(0)?;
    Ok(file)
}

/// Writes `bytes` to `path` whole: into a new 0600 file beside it, synced, then renamed over
/// `path`, so that a reader sees the previous content or the new one, never a part.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary(path);
    let _ = fs::remove_file(&tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// `<path>.tmp`: beside it, so that the rename stays on one file system.
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_up_0600_with_only_the_new_content() {
        let dir = tempfile::tempdir().unwrap();
        let created = dir.path().join("created");
        create(&created).unwrap().write_all(b"secret").unwrap();
        assert_eq!(mode(&created), 0o600);

        let existing = dir.path().join("existing");
        fs::write(&existing, b"an older and longer content").unwrap();
        fs::set_permissions(&existing, Permissions::from_mode(0o644)).unwrap();
        create(&existing).unwrap().write_all(b"secret").unwrap();
        assert_eq!(mode(&existing), 0o600);
        assert_eq!(fs::read(&existing).unwrap(), b"secret");

        let replaced = dir.path().join("replaced");
        fs::write(&replaced, b"old").unwrap();
        fs::set_permissions(&replaced, Permissions::from_mode(0o644)).unwrap();
        // A stale temporary file left world-readable is not reused as it is.
        fs::write(temporary(&replaced), b"stale").unwrap();
        fs::set_permissions(temporary(&replaced), Permissions::from_mode(0o644)).unwrap();
        write(&replaced, b"token").unwrap();
        assert_eq!(mode(&replaced), 0o600);
        assert_eq!(fs::read(&replaced).unwrap(), b"token");
        assert!(!temporary(&replaced).exists());
    }
}
