//! The `connectors.d/` watcher: a config file that appears starts its connector, a changed file
//! restarts it with the new config, a removed file stops it.
//!
//! Events only mark the directory dirty; once it has been quiet for [`DEBOUNCE`], the whole
//! directory is read again and compared with what runs. Comparing whole states instead of
//! replaying events makes editor save patterns (temp file + rename, several writes, swap files)
//! harmless. A file that cannot be read or is invalid is reported (log and status) and changes
//! nothing: every other connector keeps running, and so does the last valid version of its own.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::connector::ConnectorType;
use crate::config::connector::{ConnectorConfig, is_config_file, load_file};
use crate::runtime::host::RejectedFile;
use crate::runtime::host::{Origin, Runtime, RuntimeError};

/// How long the directory must be quiet before it is read again.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("creating connectors directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("watching connectors directory {path}: {source}")]
    Notify {
        path: PathBuf,
        source: notify::Error,
    },
}

/// Keeps the runtime in line with a directory of connector configs.
pub struct DirectoryWatcher {
    dir: PathBuf,
    runtime: Arc<Runtime>,
    /// Connector name managed by each config file seen last time.
    names_by_file: HashMap<PathBuf, String>,
    /// The last problem reported for each file, so an unchanged broken file is reported once.
    reported: HashMap<PathBuf, String>,
}

impl DirectoryWatcher {
    pub fn new(dir: &Path, runtime: Arc<Runtime>) -> Self {
        Self {
            dir: dir.to_path_buf(),
            runtime,
            names_by_file: HashMap::new(),
            reported: HashMap::new(),
        }
    }

    /// Reads the directory once and applies it (the initial load; `loaded` is notified then),
    /// then follows changes until `cancel` fires.
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        loaded: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), WatchError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| WatchError::Create {
            path: self.dir.clone(),
            source,
        })?;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Which file changed does not matter: the directory is read whole.
                if event.is_ok() {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError::Notify {
                path: self.dir.clone(),
                source,
            })?;
        watcher
            .watch(&self.dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify {
                path: self.dir.clone(),
                source,
            })?;
        tracing::info!(dir = %self.dir.display(), "Watching connector configs.");
        self.sync().await;
        if let Some(loaded) = loaded {
            let _ = loaded.send(());
        }
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                event = rx.recv() => if event.is_none() { return Ok(()) },
            }
            // Debounce: wait until no event arrived for DEBOUNCE.
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    event = rx.recv() => if event.is_none() { return Ok(()) },
                }
            }
            self.sync().await;
        }
    }

    /// Reads the directory and starts, restarts or stops connectors to match it.
    pub async fn sync(&mut self) {
        let files = match list_config_files(&self.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "Cannot list the connectors directory.");
                return;
            }
        };
        let mut desired: BTreeMap<String, (PathBuf, ConnectorConfig)> = BTreeMap::new();
        let mut names_by_file = HashMap::new();
        let mut reported = HashMap::new();
        let mut rejected: BTreeMap<String, RejectedFile> = BTreeMap::new();
        for path in files {
            match load_file(&path) {
                Ok(config) => {
                    if let Some((other, _)) = desired.get(&config.name) {
                        tracing::error!(
                            file = %path.display(),
                            other = %other.display(),
                            connector = %config.name,
                            "Two config files define the same connector; this one is ignored."
                        );
                        continue;
                    }
                    names_by_file.insert(path.clone(), config.name.clone());
                    desired.insert(config.name.clone(), (path, config));
                }
                Err(e) => {
                    let message = e.to_string();
                    if self.reported.get(&path) != Some(&message) {
                        tracing::error!(file = %path.display(), error = %message, "Invalid connector config file; ignoring it.");
                    }
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    rejected.insert(
                        stem.clone(),
                        RejectedFile {
                            name: stem,
                            file: path.clone(),
                            reason: message.clone(),
                            config: BTreeMap::new(),
                            connector_type: None,
                        },
                    );
                    reported.insert(path.clone(), message);
                    // Half-written or broken: keep whatever this file ran before.
                    if let Some(name) = self.names_by_file.get(&path) {
                        names_by_file.insert(path.clone(), name.clone());
                    }
                }
            }
        }
        // Stop connectors whose file is gone.
        let kept: std::collections::HashSet<&String> = names_by_file.values().collect();
        for name in self.names_by_file.values() {
            if !kept.contains(name) {
                // Only connectors this directory defined; a REST-created one of the same name
                // was never ours.
                if let Err(e) = self
                    .runtime
                    .remove(name, Some(&Origin::File(PathBuf::new())))
                    .await
                {
                    tracing::debug!(connector = %name, error = %e, "Connector already gone.");
                }
            }
        }
        // Sinks before sources, so a source never publishes before its subscribers exist.
        let mut ordered: Vec<(PathBuf, ConnectorConfig)> = desired.into_values().collect();
        ordered.sort_by_key(|(_, c)| {
            let class = c
                .config
                .get("connector.class")
                .map(String::as_str)
                .unwrap_or("");
            match self
                .runtime
                .registry()
                .find(class)
                .map(|p| p.connector_type())
            {
                Some(ConnectorType::Sink) => 0,
                _ => 1,
            }
        });
        for (path, config) in ordered {
            let name = config.name.clone();
            let origin = Origin::File(path.clone());
            let (config_shown, class) = (
                config.config.clone(),
                config.config.get("connector.class").cloned(),
            );
            if let Err(error) = self.runtime.apply(config, origin).await {
                let message = error.to_string();
                rejected.insert(
                    name.clone(),
                    RejectedFile {
                        name: name.clone(),
                        file: path.clone(),
                        reason: message.clone(),
                        config: config_shown,
                        connector_type: class.and_then(|c| {
                            self.runtime.registry().find(&c).map(|p| p.connector_type())
                        }),
                    },
                );
                if self.reported.get(&path) != Some(&message) {
                    tracing::error!(file = %path.display(), error = %message, "Connector config rejected.");
                    if let RuntimeError::Invalid(errors) = &error {
                        self.runtime.report_invalid(&name, errors);
                    }
                }
                reported.insert(path, message);
            }
        }
        self.names_by_file = names_by_file;
        self.reported = reported;
        self.runtime.set_rejected_files(rejected);
    }
}

/// The config files of a connectors directory (`.json`, `.properties`), sorted by name.
pub fn list_config_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_config_file(p))
        .collect();
    files.sort();
    Ok(files)
}
