//! What the host must remember about connectors across restarts: the configs of connectors
//! created over the REST API, and every connector's target state (RUNNING, PAUSED, STOPPED),
//! in `<data dir>/connectors.json`, replaced atomically on every change.
//!
//! Configs of connectors defined by files in `connectors.d/` are not copied here: the file is
//! their source of truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::offsets::write_owner_only;

/// The state a connector should be in, as Kafka Connect's config topic stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Target {
    /// Running (Kafka Connect calls this target state STARTED).
    #[default]
    #[serde(alias = "RUNNING")]
    Started,
    Paused,
    Stopped,
}

/// One remembered connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredConnector {
    pub target: Target,
    /// The config, for connectors created over REST; `None` for file-defined ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StoreFile {
    connectors: BTreeMap<String, StoredConnector>,
}

/// Why the store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// `<data dir>/connectors.json`.
#[derive(Debug, Clone)]
pub struct ConnectorStore {
    path: PathBuf,
}

impl ConnectorStore {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("connectors.json"),
        }
    }

    pub fn load(&self) -> Result<BTreeMap<String, StoredConnector>, StoreError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let file: StoreFile =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                path: self.path.clone(),
                source,
            })?;
        self.narrow_permissions();
        Ok(file.connectors)
    }

    /// A store written before it was kept owner-only (0600) is narrowed to it.
    fn narrow_permissions(&self) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(metadata) = std::fs::metadata(&self.path) else {
            return;
        };
        if metadata.permissions().mode() & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => {
                tracing::info!(file = %self.path.display(), "Made the connector store readable by its owner only (it may hold passwords).")
            }
            Err(error) => {
                tracing::warn!(file = %self.path.display(), %error, "The connector store may hold passwords and is readable by others; cannot change its mode.")
            }
        }
    }

    pub fn save(&self, connectors: &BTreeMap<String, StoredConnector>) -> Result<(), StoreError> {
        let file = StoreFile {
            connectors: connectors.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("serializing the store cannot fail");
        // REST-created configs may hold passwords: the file is for this host's user only.
        write_owner_only(&self.path, &bytes).map_err(|source| StoreError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_targets_and_rest_configs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConnectorStore::new(dir.path());
        assert!(store.load().unwrap().is_empty());
        let mut all = BTreeMap::new();
        all.insert(
            "a".to_string(),
            StoredConnector {
                target: Target::Paused,
                config: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
            },
        );
        all.insert(
            "b".to_string(),
            StoredConnector {
                target: Target::Stopped,
                config: None,
            },
        );
        store.save(&all).unwrap();
        assert_eq!(store.load().unwrap(), all);
        let mode = |path: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path).unwrap().permissions().mode() & 0o777
        };
        let path = dir.path().join("connectors.json");
        assert_eq!(mode(&path), 0o600, "configs may hold passwords");
        // A store written by an older version, readable by all, is narrowed when loaded.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        store.load().unwrap();
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(dir.path().join("connectors.json")).unwrap();
        assert!(
            text.contains("\"PAUSED\"") && text.contains("\"STOPPED\""),
            "{text}"
        );
    }
}
