//! Durable source offsets, one file per connector under `<data dir>/offsets/`.
//!
//! Offsets have Kafka Connect's shape: a source *partition* map (a file, a topic-partition, a
//! replication slot's server) to an *offset* map. A file holds
//! `{"offsets":[{"partition":{..},"offset":{..}}]}` (the REST offsets body) and is replaced
//! atomically: written to a temporary file, synced, renamed over the old one, and the directory
//! synced, so a crash (even `kill -9`) leaves either the old or the new offsets, never a mix.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::api::offsets::SourceOffsets;

/// Why offsets could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    #[error("reading offsets file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("offsets file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("writing offsets file {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The offsets directory.
#[derive(Debug, Clone)]
pub struct OffsetStore {
    dir: PathBuf,
}

/// A connector name as a file name: safe characters kept, anything else percent-encoded.
pub fn file_stem(connector: &str) -> String {
    let mut out = String::with_capacity(connector.len());
    for b in connector.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl OffsetStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("offsets"),
        }
    }

    fn path(&self, connector: &str) -> PathBuf {
        self.dir.join(format!("{}.json", file_stem(connector)))
    }

    /// The committed offsets of `connector`; empty if it never committed.
    pub fn load(&self, connector: &str) -> Result<SourceOffsets, OffsetStoreError> {
        let path = self.path(connector);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(SourceOffsets::default()),
            Err(source) => return Err(OffsetStoreError::Read { path, source }),
        };
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| OffsetStoreError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        SourceOffsets::from_json(&value).ok_or_else(|| OffsetStoreError::Corrupt {
            path,
            reason: "expected {\"offsets\":[{\"partition\":..,\"offset\":..}]}".into(),
        })
    }

    /// Replaces the committed offsets of `connector` atomically and durably.
    pub fn save(&self, connector: &str, offsets: &SourceOffsets) -> Result<(), OffsetStoreError> {
        let path = self.path(connector);
        write_atomically(&path, &offsets.to_json().to_string().into_bytes())
            .map_err(|source| OffsetStoreError::Write { path, source })
    }

    /// Forgets the offsets of `connector` (the REST `DELETE /offsets`).
    pub fn delete(&self, connector: &str) -> Result<(), OffsetStoreError> {
        let path = self.path(connector);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(OffsetStoreError::Write { path, source: e })
            }
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` through a synced temporary file and a rename, then syncs the
/// directory so the rename itself survives a power cut.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with_mode(path, bytes, 0o666)
}

/// [`write_atomically`] for a file only its owner may read or write (mode 0600): one that
/// holds secrets, such as the configs of connectors created over REST.
pub fn write_owner_only(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomically_with_mode(path, bytes, 0o600)
}

/// `mode` is the new file's permissions before the umask; the temporary file has them from
/// its creation, so the content is never readable more widely, even for a moment.
fn write_atomically_with_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        // A bare file name lives in the current directory.
        Some(dir) if dir.as_os_str().is_empty() => Path::new("."),
        Some(dir) => dir,
        None => return Err(io::Error::other("path has no parent directory")),
    };
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("path has no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        // A leftover temporary file of a crash keeps its old mode through `create`: remove it.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        // Relative to the current directory, as `--ready-file ready.json` is.
        let relative = Path::new("headwater-write-atomically-test.json");
        write_atomically(relative, b"1").unwrap();
        assert_eq!(fs::read(relative).unwrap(), b"1");
        fs::remove_file(relative).unwrap();
    }

    #[test]
    fn offsets_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::new(dir.path());
        assert!(store.load("a/b").unwrap().is_empty());
        let mut offsets = SourceOffsets::default();
        offsets.insert(json!({"path": "/x"}), json!({"position": 10}));
        store.save("a/b", &offsets).unwrap();
        offsets.insert(json!({"path": "/x"}), json!({"position": 20}));
        store.save("a/b", &offsets).unwrap();
        let loaded = store.load("a/b").unwrap();
        assert_eq!(
            loaded.get(&json!({"path": "/x"})),
            Some(&json!({"position": 20}))
        );
        assert!(dir.path().join("offsets/a%2Fb.json").exists());
        store.delete("a/b").unwrap();
        assert!(store.load("a/b").unwrap().is_empty());
    }

    #[test]
    fn corrupt_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::new(dir.path());
        fs::create_dir_all(dir.path().join("offsets")).unwrap();
        fs::write(dir.path().join("offsets/c.json"), b"{not json").unwrap();
        let err = store.load("c").unwrap_err().to_string();
        assert!(err.contains("offsets/c.json is corrupt"), "{err}");
    }
}
