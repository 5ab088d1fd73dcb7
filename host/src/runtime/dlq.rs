//! Dead letters: records that failed a stage under `errors.tolerance=all`.
//!
//! Without Kafka, each connector's dead letters go to `<data dir>/dlq/<connector>.jsonl`, one
//! JSON object per line holding the original key and value bytes, the original headers followed
//! by Kafka Connect's `__connect.errors.*` context headers, and the error itself. The file is
//! synced before the failed record is acknowledged, so a dead letter is never lost.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::api::error::RecordError;
use crate::api::record::bytes_json;
use crate::api::record::{Header, Record};

/// The context headers Kafka Connect's `DeadLetterQueueReporter` adds, in its order.
pub fn context_headers(
    record: &Record,
    connector: &str,
    task_id: u32,
    error: &RecordError,
) -> Vec<Header> {
    vec![
        Header::text("__connect.errors.topic", record.topic.clone()),
        Header::text("__connect.errors.partition", record.partition.to_string()),
        Header::text("__connect.errors.offset", record.offset.to_string()),
        Header::text("__connect.errors.connector.name", connector),
        Header::text("__connect.errors.task.id", task_id.to_string()),
        Header::text("__connect.errors.stage", error.stage.as_str()),
        Header::text("__connect.errors.class.name", error.component.clone()),
        Header::text("__connect.errors.exception.class.name", error.kind.clone()),
        Header::text("__connect.errors.exception.message", error.message.clone()),
        Header::text(
            "__connect.errors.exception.stacktrace",
            format!("{}: {}", error.kind, error.message),
        ),
    ]
}

/// One dead letter as a JSON line.
pub fn dead_letter_json(
    record: &Record,
    original_key: Option<&Bytes>,
    original_value: Option<&Bytes>,
    connector: &str,
    task_id: u32,
    error: &RecordError,
) -> Value {
    let headers: Vec<Value> = record
        .headers
        .iter()
        .cloned()
        .chain(context_headers(record, connector, task_id, error))
        .map(|h| json!({ "key": h.key, "value": bytes_json(h.value.as_ref()) }))
        .collect();
    let mut line = Map::new();
    line.insert("topic".into(), json!(record.topic));
    line.insert("partition".into(), json!(record.partition));
    line.insert("offset".into(), json!(record.offset));
    line.insert("timestamp".into(), json!(record.timestamp));
    line.insert("key".into(), bytes_json(original_key));
    line.insert("value".into(), bytes_json(original_value));
    line.insert("headers".into(), Value::Array(headers));
    line.insert(
        "error".into(),
        json!({
            "stage": error.stage.as_str(),
            "class": error.component,
            "exception": error.kind,
            "message": error.message,
        }),
    );
    Value::Object(line)
}

/// Append-only JSONL dead-letter file for one connector.
///
/// The file is opened for each append (dead letters are rare), so a replay can move it aside
/// and new dead letters start a new file.
#[derive(Debug)]
pub struct FileDeadLetterQueue {
    path: PathBuf,
    /// Serializes appends of this connector's tasks.
    lock: Mutex<()>,
}

/// The dead-letter file of `connector` under `data_dir`.
pub fn dead_letter_file(data_dir: &Path, connector: &str) -> PathBuf {
    data_dir.join("dlq").join(format!("{connector}.jsonl"))
}

/// The last `limit` dead letters of `connector`'s file, oldest first (none when it has no
/// file). Reads the file from its end, so a large one costs only its tail.
pub fn last_dead_letters(data_dir: &Path, connector: &str, limit: usize) -> io::Result<Vec<Value>> {
    let mut file = match File::open(dead_letter_file(data_dir, connector)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    const BLOCK: u64 = 64 * 1024;
    let mut end = file.seek(SeekFrom::End(0))?;
    let mut tail: Vec<u8> = Vec::new();
    // Whole lines: one more newline than lines wanted, or the file's start.
    while end > 0 && tail.iter().filter(|&&b| b == b'\n').count() <= limit {
        let start = end.saturating_sub(BLOCK);
        let mut block = vec![0; usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        end = start;
    }
    let text = String::from_utf8_lossy(&tail);
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if end > 0 && !lines.is_empty() {
        // The first line may be cut.
        lines.remove(0);
    }
    let skip = lines.len().saturating_sub(limit);
    Ok(lines[skip..]
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

impl FileDeadLetterQueue {
    pub fn new(data_dir: &Path, connector: &str) -> Self {
        Self {
            path: dead_letter_file(data_dir, connector),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends the lines and syncs them to disk.
    pub fn append(&self, lines: &[Value]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(lines.len() * 256);
        for line in lines {
            serde_json::to_writer(&mut buf, line)?;
            buf.push(b'\n');
        }
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&buf)?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_dead_letters_are_read_from_the_files_end() {
        let dir = tempfile::tempdir().unwrap();
        assert!(last_dead_letters(dir.path(), "c", 5).unwrap().is_empty());
        let path = dead_letter_file(dir.path(), "c");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Several 64 KiB blocks of lines.
        let text: String = (0..5000)
            .map(|i| format!("{{\"offset\":{i},\"pad\":\"{}\"}}\n", "x".repeat(60)))
            .collect();
        std::fs::write(&path, text).unwrap();
        let offsets = |n| -> Vec<i64> {
            last_dead_letters(dir.path(), "c", n)
                .unwrap()
                .iter()
                .map(|l| l["offset"].as_i64().unwrap())
                .collect()
        };
        assert_eq!(offsets(3), vec![4997, 4998, 4999]);
        assert_eq!(offsets(1000), (4000..5000).collect::<Vec<_>>());
        assert_eq!(offsets(10_000), (0..5000).collect::<Vec<_>>());
    }
}
