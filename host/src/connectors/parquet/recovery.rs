//! On start: learn from the committed files which source positions this sink already holds,
//! and remove temporary files a crash left behind (their records were never acknowledged, so
//! they will be delivered again).

use std::path::Path;

use super::ParquetError;
use super::file::{Positions, read_positions};

/// Scans `root` for the files of `connector` (named `part-<stem>-*.parquet`, and naming the
/// connector in their footer: another connector's stem may start with this one's).
pub fn recover(root: &Path, connector: &str, stem: &str) -> Result<Positions, ParquetError> {
    let mut positions = Positions::new();
    if !root.exists() {
        return Ok(positions);
    }
    let prefix = format!("part-{stem}-");
    let tmp_prefix = format!(".part-{stem}-");
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let scan_error = |source| ParquetError::Scan {
            path: dir.display().to_string(),
            source,
        };
        for entry in std::fs::read_dir(&dir).map_err(scan_error)? {
            let path = entry.map_err(scan_error)?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                stack.push(path.clone());
            } else if name.starts_with(&tmp_prefix) && name.ends_with(".tmp") {
                tracing::info!(file = %path.display(), "Removing an uncommitted Parquet file left by a crash.");
                std::fs::remove_file(&path).map_err(scan_error)?;
            } else if name.starts_with(&prefix) && name.ends_with(".parquet") {
                for (source, partition, offset) in read_positions(&path, connector)? {
                    let entry = positions.entry((source, partition)).or_insert(offset);
                    *entry = (*entry).max(offset);
                }
            }
        }
    }
    Ok(positions)
}
