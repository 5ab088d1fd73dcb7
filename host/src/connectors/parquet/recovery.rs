//! On start: learn from the committed files which source positions this sink already holds,
//! and remove temporary files a crash left behind (their records were never acknowledged, so
//! they will be delivered again).

use std::path::Path;

use super::ParquetError;
use super::file::{Positions, read_positions};
use crate::api::connector::TaskIndex;

/// Scans `root` for the files of `connector` (named `part-<stem>-*.parquet`, or
/// `part-<stem>~t<task>-*.parquet` for a task other than the first, and naming the connector in
/// their footer: another connector's stem may start with this one's). Every task's files count
/// (a partition another task wrote may be this task's now); only the task's own temporary files
/// are removed (another task may be writing its own).
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
    let prefix = format!("part-{stem}");
    let tmp_prefix = format!(".part-{stem}");
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
                    .and_then(writer_of)
                    .is_some_and(|writer| owns_temporary(writer, task))
            {
                tracing::info!(file = %path.display(), "Removing an uncommitted Parquet file left by a crash.");
                std::fs::remove_file(&path).map_err(scan_error)?;
            } else if name.ends_with(".parquet")
                && name.strip_prefix(&prefix).and_then(writer_of).is_some()
            {
                for (source, partition, offset) in read_positions(&path, connector)? {
                    let entry = positions.entry((source, partition)).or_insert(offset);
                    *entry = (*entry).max(offset);
                }
            }
        }
    }
    Ok(positions)
}

/// How a task other than the first marks its files' names after `part-<stem>`. A stem
/// (`crate::offsets::file_stem`) never holds `~`: connector `a`'s task 1 cannot be mistaken for
/// connector `a-t1`.
pub fn task_tag(task: usize) -> String {
    format!("~t{task}-")
}

/// The task that wrote a file, from its name after `part-<stem>`: `-…` the first (or a bounded
/// run's, `-<run>-…`), `~t<task>-…` another; `None` for a name of neither form.
fn writer_of(rest: &str) -> Option<usize> {
    if rest.starts_with('-') {
        return Some(0);
    }
    let (id, _) = rest.strip_prefix("~t")?.split_once('-')?;
    id.parse().ok()
}

/// Whether `task` removes a temporary file `writer` left: its own, and for the first task also
/// those of tasks that no longer run (`tasks.max` lowered).
fn owns_temporary(writer: usize, task: TaskIndex) -> bool {
    writer == task.id || (task.id == 0 && writer >= task.of)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_removes_only_the_temporary_files_no_running_task_writes() {
        let two = |id| TaskIndex { id, of: 2 };
        // After `.part-<stem>`: the first task's name, a bounded run's, a second task's, a
        // third's (tasks.max was 3), and other connectors' (stems `<stem>~x`, `<stem>x`).
        let names = [
            "-1733000000000-00001.parquet.tmp",
            "-00ab12cd-1.parquet.tmp",
            &format!("{}17-00001.parquet.tmp", task_tag(1)),
            &format!("{}17-00001.parquet.tmp", task_tag(2)),
            "~x-17-00001.parquet.tmp",
            "x-17-00001.parquet.tmp",
        ];
        let removed_by = |task| {
            names
                .iter()
                .filter(|n| writer_of(n).is_some_and(|w| owns_temporary(w, task)))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(removed_by(two(0)), [names[0], names[1], names[3]]);
        assert_eq!(removed_by(two(1)), [names[2]]);
        assert_eq!(removed_by(TaskIndex::ONLY), names[..4]);
    }
}
