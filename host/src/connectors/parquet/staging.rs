//! `write.mode=overwrite-partitions` (Spark's dynamic partition overwrite): a bounded run
//! writes its files into a staging directory beside the store, and when its input has ended
//! replaces each `date=` partition it wrote with the staged one, atomically per partition
//! (Linux's `renameat2(RENAME_EXCHANGE)` swaps the two directories: a reader lists the old
//! files or the new ones, never a mix). Partitions the run did not write are left alone.
//!
//! The staging directory, `<parent>/.<name>.staging-<connector>-<run>`, sits beside the store
//! `<parent>/<name>` (same filesystem, for the renames; outside the store, so that readers
//! globbing it never see staged files). `<run>` names the run (its config and parameters): an
//! interrupted run started again finds its staged files (and the source positions they hold)
//! and goes on; another run removes them.
//!
//! Publishing survives a crash: it first writes a `PUBLISHING` marker; a partition directory
//! holding this run's files (named `part-<connector>-<run>-...`) is not published yet, one
//! without is the old content swapped out. Started again, the run finishes what was left.

use std::path::{Path, PathBuf};

use super::ParquetError;

const MARKER: &str = "PUBLISHING";

/// A bounded run's staging directory.
#[derive(Debug, Clone)]
pub struct Staging {
    /// The store: `<path>` of the sink's config.
    store: PathBuf,
    /// Where the run's files go until published.
    root: PathBuf,
    /// `part-<stem>-<run>-`: how this run's files are named.
    file_prefix: String,
    /// `.<name>.staging-<stem>-`: how every run of this connector names its staging directory.
    dir_prefix: String,
}

impl Staging {
    pub fn new(store: &Path, stem: &str, run: &str) -> Self {
        let name = store
            .file_name()
            .map_or_else(|| "store".to_owned(), |n| n.to_string_lossy().into_owned());
        let dir_prefix = format!(".{name}.staging-{stem}-");
        let root = parent_of(store).join(format!("{dir_prefix}{run}"));
        Self {
            store: store.to_path_buf(),
            root,
            file_prefix: format!("part-{stem}-{run}-"),
            dir_prefix,
        }
    }

    /// Where this run's files go.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The name part that marks this run's files (after `part-<stem>-`).
    pub fn file_prefix(&self) -> &str {
        &self.file_prefix
    }

    /// Before the run writes: removes the staging directories other runs of this connector
    /// left (interrupted and never resumed), and finishes a publish this run was in the middle
    /// of when it stopped.
    pub fn prepare(&self) -> Result<(), ParquetError> {
        let parent = parent_of(&self.store);
        if let Ok(entries) = std::fs::read_dir(&parent) {
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(&self.dir_prefix) && path != self.root && path.is_dir() {
                    tracing::info!(dir = %path.display(), "Removing the staged files of an earlier run that did not complete.");
                    std::fs::remove_dir_all(&path).map_err(|source| scan(&path, source))?;
                }
            }
        }
        if self.root.join(MARKER).exists() {
            tracing::info!(dir = %self.root.display(), "Finishing the publish of the run's partitions that a stop interrupted.");
            self.publish()?;
        }
        Ok(())
    }

    /// Replaces each partition the run wrote with its staged version (see the module).
    pub fn publish(&self) -> Result<(), ParquetError> {
        if !self.root.exists() {
            return Ok(());
        }
        let marker = self.root.join(MARKER);
        std::fs::write(&marker, b"").map_err(|source| scan(&marker, source))?;
        let mut published = 0;
        for partition in self.partitions()? {
            let relative = partition
                .strip_prefix(&self.root)
                .map_err(|e| scan(&partition, std::io::Error::other(e)))?;
            let target = self.store.join(relative);
            if self.holds_this_run(&partition)? {
                replace(&partition, &target)?;
                published += 1;
            }
            // What is left there now is the old content swapped out.
            if partition.exists() {
                std::fs::remove_dir_all(&partition).map_err(|source| scan(&partition, source))?;
            }
        }
        std::fs::remove_dir_all(&self.root).map_err(|source| scan(&self.root, source))?;
        tracing::info!(store = %self.store.display(), partitions = published, "Published the run's partitions, replacing what they held.");
        Ok(())
    }

    /// The `date=` directories under the staging root (`<topic>/date=...`).
    fn partitions(&self) -> Result<Vec<PathBuf>, ParquetError> {
        let mut found = Vec::new();
        for topic in read_dirs(&self.root)? {
            found.extend(read_dirs(&topic)?);
        }
        found.sort();
        Ok(found)
    }

    fn holds_this_run(&self, dir: &Path) -> Result<bool, ParquetError> {
        let entries = std::fs::read_dir(dir).map_err(|source| scan(dir, source))?;
        Ok(entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&self.file_prefix)
        }))
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn read_dirs(dir: &Path) -> Result<Vec<PathBuf>, ParquetError> {
    let entries = std::fs::read_dir(dir).map_err(|source| scan(dir, source))?;
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect())
}

fn scan(path: &Path, source: std::io::Error) -> ParquetError {
    ParquetError::Scan {
        path: path.display().to_string(),
        source,
    }
}

/// Puts `staged` at `target`: a swap of the two directories when `target` exists (`staged`
/// then holds the old content), a rename otherwise.
fn replace(staged: &Path, target: &Path) -> Result<(), ParquetError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|source| scan(parent, source))?;
    }
    if target.exists() {
        exchange(staged, target).map_err(|source| scan(target, source))
    } else {
        std::fs::rename(staged, target).map_err(|source| scan(target, source))
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

/// Elsewhere: two renames (a reader may find the partition missing for a moment, never mixed).
#[cfg(not(target_os = "linux"))]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let aside = a.with_extension("old");
    std::fs::rename(b, &aside)?;
    std::fs::rename(a, b)?;
    std::fs::rename(&aside, a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn publishing_replaces_written_partitions_and_leaves_the_others() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("daily");
        file(
            &store.join("t/date=2024-01-02"),
            "part-a-old-1.parquet",
            "old",
        );
        file(
            &store.join("t/date=2024-01-03"),
            "part-a-old-2.parquet",
            "keep",
        );
        let staging = Staging::new(&store, "a", "r1");
        staging.prepare().unwrap();
        file(
            &staging.root().join("t/date=2024-01-02"),
            "part-a-r1-9.parquet",
            "new",
        );
        file(
            &staging.root().join("t/date=2024-01-04"),
            "part-a-r1-10.parquet",
            "new",
        );
        staging.publish().unwrap();
        assert_eq!(
            listing(&store.join("t/date=2024-01-02")),
            ["part-a-r1-9.parquet"]
        );
        assert_eq!(
            listing(&store.join("t/date=2024-01-03")),
            ["part-a-old-2.parquet"]
        );
        assert_eq!(
            listing(&store.join("t/date=2024-01-04")),
            ["part-a-r1-10.parquet"]
        );
        assert!(!staging.root().exists());
        assert_eq!(listing(tmp.path()), ["daily"]);
    }

    #[test]
    fn an_interrupted_publish_is_finished_and_other_runs_staging_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = tmp.path().join("daily");
        file(
            &store.join("t/date=2024-01-02"),
            "part-a-r1-9.parquet",
            "new, published",
        );
        let staging = Staging::new(&store, "a", "r1");
        // Stopped mid-publish: 01-02 swapped (its old content left staged), 01-04 not yet.
        file(
            &staging.root().join("t/date=2024-01-02"),
            "part-a-r0-1.parquet",
            "old",
        );
        file(
            &staging.root().join("t/date=2024-01-04"),
            "part-a-r1-10.parquet",
            "new",
        );
        file(staging.root(), MARKER, "");
        let other = Staging::new(&store, "a", "r2");
        file(
            &other.root().join("t/date=2024-01-05"),
            "part-a-r2-1.parquet",
            "abandoned",
        );
        staging.prepare().unwrap();
        assert_eq!(
            listing(&store.join("t/date=2024-01-02")),
            ["part-a-r1-9.parquet"]
        );
        assert_eq!(
            listing(&store.join("t/date=2024-01-04")),
            ["part-a-r1-10.parquet"]
        );
        assert!(!store.join("t/date=2024-01-05").exists());
        assert_eq!(listing(tmp.path()), ["daily"]);
    }
}
