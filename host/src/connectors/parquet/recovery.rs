//! On start: learn from the committed files which source positions this sink already holds,
//! and remove temporary files a crash left behind (their records were never acknowledged, so
//! they will be delivered again).

use std::path::Path;

use super::ParquetError;
use super::file::{Positions, read_positions};
use crate::api::connector::TaskIndex;

/// Scans `root` for the files of `connector` (named `part-<stem>-*.parquet`, and naming the
/// connector in their footer: another connector's stem may start with this one's). Every
/// task's files count (a partition another task wrote may be this task's now); only the
/// task's own temporary files are removed (another task may be writing its own).
pub fn recover(
    root: &Path,
    connector: &str,
    stem: &str,
    task: TaskIndex,
) -> Result<Positions, ParquetError> {
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
            } else if name.ends_with(".tmp")
                && name
                    .strip_prefix(&tmp_prefix)
                    .is_some_and(|rest| owns_temporary(rest, task))
            {
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

/// How a task other than the first marks its files' names after `part-<stem>-`.
pub fn task_tag(task: usize) -> String {
    format!("t{task}-")
}

/// Whether `task` removes the temporary file named `.part-<stem>-<rest>`: its own, and for the
/// first task also those of tasks that no longer run (`tasks.max` lowered). The first task's
/// names (and a bounded run's, `<run>-`, a hex id) never start with `t`.
fn owns_temporary(rest: &str, task: TaskIndex) -> bool {
    let writer = rest
        .strip_prefix('t')
        .and_then(|r| r.split_once('-'))
        .and_then(|(id, _)| id.parse::<usize>().ok());
    match writer {
        None => task.id == 0,
        Some(id) => id == task.id || (task.id == 0 && id >= task.of),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_removes_only_the_temporary_files_no_running_task_writes() {
        let two = |id| TaskIndex { id, of: 2 };
        // The first task's name, a bounded run's, a second task's, a third's (tasks.max was 3).
        let names = [
            "1733000000000-00001.parquet.tmp",
            "00ab12cd-1.parquet.tmp",
            "t1-17-00001.parquet.tmp",
            "t2-17-00001.parquet.tmp",
        ];
        let removed_by = |task| {
            names
                .iter()
                .filter(|n| owns_temporary(n, task))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(removed_by(two(0)), [names[0], names[1], names[3]]);
        assert_eq!(removed_by(two(1)), [names[2]]);
        assert_eq!(
            removed_by(TaskIndex::ONLY),
            [names[0], names[1], names[2], names[3]]
        );
    }
}
