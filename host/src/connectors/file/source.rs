//! The FileSource task: finds files, reads them in order, follows new files and appended data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use serde_json::{Value, json};

use super::FileError;
use super::reader::{self, Chunk, Content};
use super::source_config::{FileSourceConfig, Format};
use crate::api::connector::{BuildContext, Source, SourceBatch, SourceContext};
use crate::api::error::DATA_EXCEPTION;
use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::offsets::partition_key;
use crate::api::record::{Payload, Position, Record};
use crate::api::time::timestamp_millis;

const COMPONENT: &str = "headwater.file.FileSource";

/// Read progress of one file.
struct FileState {
    format: Format,
    partition: Value,
    partition_key: Arc<str>,
    position: u64,
    /// Size seen at the previous poll: a file that stopped growing may end without a newline.
    last_size: Option<u64>,
    /// Size seen at the last read (for the bytes the source is behind).
    size: u64,
    /// CSV header and the position after it.
    csv_header: Option<Vec<String>>,
    parquet: Option<ParquetRecordBatchReader>,
    /// Parquet files are immutable: once read to the end they are done.
    done: bool,
    /// `key=value` directory names of the path (Hive-style partitions).
    path_fields: Vec<(String, String)>,
    /// Average bytes per record seen so far: sizes the next read.
    avg_record_bytes: usize,
    /// A Parquet file that could not be opened was reported once.
    open_failed: bool,
}

/// How long a file must have been left alone before a last line without a newline counts as
/// complete: writers append a line in several writes, and a pause between them must not cut
/// the line in two.
const TAIL_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes per record assumed before a file's first chunk.
const INITIAL_RECORD_BYTES: usize = 256;

/// `headwater.file.FileSource`.
pub struct FileSource {
    config: FileSourceConfig,
    connector: Arc<str>,
    files: BTreeMap<PathBuf, FileState>,
    /// Matches outside `[files] allowed_paths`, skipped (and reported once).
    refused: BTreeSet<PathBuf>,
}

impl FileSource {
    pub fn new(config: FileSourceConfig, ctx: &BuildContext) -> Self {
        Self {
            config,
            connector: Arc::from(ctx.connector.as_str()),
            files: BTreeMap::new(),
            refused: BTreeSet::new(),
        }
    }

    /// Adds files matching the pattern that are not tracked yet.
    fn discover(&mut self, ctx: &dyn SourceContext) {
        let paths = match glob::glob(&self.config.pattern) {
            Ok(paths) => paths,
            Err(e) => {
                tracing::error!(connector = %self.connector, error = %e, "Invalid path pattern.");
                return;
            }
        };
        for entry in paths {
            let path = match entry {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(connector = %self.connector, error = %e, "Cannot read a matched path.");
                    continue;
                }
            };
            if self.files.contains_key(&path) || self.refused.contains(&path) || !path.is_file() {
                continue;
            }
            if let Some(allowed) = &self.config.allowed
                && let Err(e) = allowed.check(&path)
            {
                tracing::error!(connector = %self.connector, error = %e, "Skipping a matched file outside the allowed directories.");
                self.refused.insert(path);
                continue;
            }
            let Some(format) = self.config.format.or_else(|| Format::of_path(&path)) else {
                tracing::warn!(
                    connector = %self.connector,
                    file = %path.display(),
                    "Skipping a file of unknown format; set `format` or use a .jsonl, .csv or .parquet extension."
                );
                continue;
            };
            let absolute = std::path::absolute(&path).unwrap_or_else(|_| path.clone());
            let partition = json!({ "path": absolute.display().to_string() });
            let position = ctx
                .committed(&partition)
                .and_then(|o| o.get("position"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            tracing::debug!(connector = %self.connector, file = %path.display(), position, "New file.");
            let size = std::fs::metadata(&path).map_or(0, |m| m.len());
            self.files.insert(
                path.clone(),
                FileState {
                    format,
                    partition_key: Arc::from(partition_key(&partition)),
                    partition,
                    position,
                    last_size: None,
                    size,
                    csv_header: None,
                    parquet: None,
                    done: false,
                    path_fields: path_fields(&path),
                    avg_record_bytes: INITIAL_RECORD_BYTES,
                    open_failed: false,
                },
            );
        }
    }

    /// Reads the next chunk of `path`, or `None` if it has nothing new.
    async fn read_chunk(&mut self, path: &Path) -> Result<Option<Chunk>, FileError> {
        let batch = self.config.batch_max_records;
        let max_line_bytes = self.config.max_record_bytes;
        let limits = reader::Limits {
            max_records: batch,
            max_line_bytes,
        };
        let delimiter = self.config.csv_delimiter;
        let infer = self.config.csv_infer_types;
        let mut settled = false;
        let size = match std::fs::metadata(path) {
            Ok(m) => {
                settled = m
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= TAIL_SETTLE);
                Some(m.len())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Deleted or rotated away: forget it; if it comes back, it resumes from its
                // committed offset.
                tracing::warn!(connector = %self.connector, file = %path.display(), "Input file disappeared; no longer reading it.");
                self.files.remove(path);
                return Ok(None);
            }
            Err(_) => None,
        };
        let Some(state) = self.files.get_mut(path) else {
            return Ok(None);
        };
        if state.done {
            return Ok(None);
        }
        state.size = size.unwrap_or(state.size);
        // Unchanged since the last time this file had nothing new: it stopped growing.
        let final_tail = settled && size.is_some() && size == state.last_size;
        let owned = path.to_path_buf();
        let position = state.position;
        let field = self.config.timestamp_field.clone();
        // A little more than a batch's worth, so one read usually fills one batch.
        let hint = batch * state.avg_record_bytes * 9 / 8 + 4096;
        let csv = reader::CsvOptions {
            delimiter,
            infer_types: infer,
        };
        match state.format {
            Format::Jsonl => {
                if size.is_some_and(|s| s <= position) {
                    state.last_size = size;
                    return Ok(None);
                }
                let chunk = spawn_blocking(move || {
                    reader::read_jsonl(&owned, position, limits, hint, final_tail, field.as_deref())
                })
                .await?;
                Ok(nonempty(chunk, position, state, size))
            }
            Format::Csv => {
                if state.csv_header.is_none() {
                    let header_path = owned.clone();
                    let Some((header, after)) = spawn_blocking(move || {
                        reader::read_csv_header(&header_path, delimiter, max_line_bytes)
                    })
                    .await?
                    else {
                        return Ok(None);
                    };
                    state.csv_header = Some(header);
                    state.position = state.position.max(after);
                }
                let position = state.position;
                if size.is_some_and(|s| s <= position) {
                    state.last_size = size;
                    return Ok(None);
                }
                let header = state.csv_header.clone().unwrap_or_default();
                let chunk = spawn_blocking(move || {
                    reader::read_csv(&owned, &header, position, limits, hint, final_tail, csv)
                })
                .await?;
                Ok(nonempty(chunk, position, state, size))
            }
            Format::Parquet => {
                let mut parquet = match state.parquet.take() {
                    Some(r) => r,
                    None => {
                        let p = owned.clone();
                        match spawn_blocking(move || reader::open_parquet(&p, position, batch))
                            .await
                        {
                            Ok(r) => r,
                            // Most likely still being written: try again at the next poll.
                            Err(e) => {
                                if !state.open_failed {
                                    tracing::warn!(connector = %self.connector, error = %e, "Cannot open a Parquet file yet; will retry.");
                                    state.open_failed = true;
                                }
                                return Ok(None);
                            }
                        }
                    }
                };
                let (chunk, parquet) = spawn_blocking(move || {
                    let chunk =
                        reader::read_parquet(&owned, &mut parquet, position, field.as_deref());
                    chunk.map(|c| (c, parquet))
                })
                .await?;
                match chunk {
                    Some(chunk) => {
                        state.parquet = Some(parquet);
                        Ok(Some(chunk))
                    }
                    None => {
                        state.done = true;
                        Ok(None)
                    }
                }
            }
        }
    }

    /// Bytes of the files not read yet, as of their last look (a Parquet file, read by rows,
    /// counts whole until read to its end).
    fn bytes_behind(&self) -> u64 {
        self.files
            .values()
            .map(|f| match f.format {
                _ if f.done => 0,
                Format::Parquet => f.size,
                Format::Jsonl | Format::Csv => f.size.saturating_sub(f.position),
            })
            .sum()
    }

    /// Turns a chunk into records, applying the time field, the time window and path fields.
    fn to_batch(&self, path: &Path, chunk: Chunk) -> SourceBatch {
        let state = self
            .files
            .get(path)
            .expect("chunks come from tracked files");
        let mut batch = SourceBatch {
            records: Vec::with_capacity(chunk.items.len()),
            failed: Vec::new(),
            offsets: vec![(state.partition.clone(), json!({ "position": chunk.end }))],
            bytes: chunk.bytes,
        };
        let now = chrono::Utc::now().timestamp_millis();
        for item in chunk.items {
            let position = Position {
                source: Arc::clone(&self.connector),
                partition: Arc::clone(&state.partition_key),
                offset: item.end,
            };
            let mut record = Record::new(self.config.topic.clone(), Payload::null());
            record.offset = i64::try_from(item.start).unwrap_or(i64::MAX);
            record.position = Some(position);
            record.timestamp = Some(now);
            let (payload, parsed) = match item.content {
                Content::Json(bytes, field) => (Payload::json_bytes(bytes), Parsed::Field(field)),
                Content::Row(value) => (Payload::null(), Parsed::Whole(value)),
                Content::Invalid(bytes, reason) => {
                    record.value = Payload::json_bytes(bytes);
                    let message = format!("{} at byte {}: {reason}", path.display(), item.start);
                    batch.failed.push((record, value_error(message)));
                    continue;
                }
            };
            match self.finish_value(path, state, payload, parsed, item.start) {
                Ok((value, timestamp)) => {
                    if let Some(ts) = timestamp {
                        if self.config.from_ms.is_some_and(|from| ts < from)
                            || self.config.until_ms.is_some_and(|until| ts >= until)
                        {
                            continue;
                        }
                        record.timestamp = Some(ts);
                    }
                    record.value = value;
                    batch.records.push(record);
                }
                Err((value, error)) => {
                    record.value = value;
                    batch.failed.push((record, error));
                }
            }
        }
        batch
    }

    /// Reads the event time and adds path fields. JSON texts stay unparsed unless path fields
    /// must be added: the time field was extracted while the line was validated.
    // The error carries the payload back so the dead letter keeps it; errors are rare.
    #[allow(clippy::result_large_err)]
    fn finish_value(
        &self,
        path: &Path,
        state: &FileState,
        payload: Payload,
        parsed: Parsed,
        start: u64,
    ) -> Result<(Payload, Option<i64>), (Payload, RecordError)> {
        let add_path_fields =
            self.config.partition_fields_from_path && !state.path_fields.is_empty();
        let (field, whole) = match parsed {
            Parsed::Field(field) => (field, None),
            Parsed::Whole(value) => {
                let field = self
                    .config
                    .timestamp_field
                    .as_ref()
                    .and_then(|f| value.get(f).cloned());
                (field, Some(value))
            }
        };
        let mut timestamp = None;
        if let Some(name) = &self.config.timestamp_field {
            match field.as_ref().and_then(timestamp_millis) {
                Some(ts) => timestamp = Some(ts),
                None => {
                    let got = field.map_or("nothing".to_owned(), |v| v.to_string());
                    let message = format!(
                        "{} at position {start}: field {name:?} (timestamp.field): expected \
                         epoch milliseconds or an ISO-8601 date-time, got {got}",
                        path.display()
                    );
                    let payload = match whole {
                        Some(v) => Payload::value(v),
                        None => payload,
                    };
                    return Err((payload, value_error(message)));
                }
            }
        }
        if !add_path_fields {
            let payload = match whole {
                Some(v) => Payload::value(v),
                None => payload,
            };
            return Ok((payload, timestamp));
        }
        let mut payload = match whole {
            Some(v) => Payload::value(v),
            None => payload,
        };
        if let Ok(data) = payload.get_mut()
            && let Value::Object(map) = &mut data.value
        {
            for (k, v) in &state.path_fields {
                if !map.contains_key(k) {
                    map.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
        Ok((payload, timestamp))
    }
}

/// What the reader already knows of a record's structure.
enum Parsed {
    /// A JSON text, with the value of `timestamp.field` when it was requested and present.
    Field(Option<Value>),
    /// An already structured record (a CSV row).
    Whole(Value),
}

/// A chunk that consumed something; otherwise remembers the size, so that next time a final
/// line without a newline counts as complete.
fn nonempty(
    chunk: Chunk,
    position: u64,
    state: &mut FileState,
    size: Option<u64>,
) -> Option<Chunk> {
    if chunk.end > position {
        Some(chunk)
    } else {
        state.last_size = size;
        None
    }
}

fn value_error(message: String) -> RecordError {
    RecordError::new(Stage::ValueConverter, COMPONENT, DATA_EXCEPTION, message)
}

/// `date=2024-01-01` style directory names of a path, outermost first.
fn path_fields(path: &Path) -> Vec<(String, String)> {
    path.parent()
        .into_iter()
        .flat_map(Path::components)
        .filter_map(|c| {
            let s = c.as_os_str().to_str()?;
            let (k, v) = s.split_once('=')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

async fn spawn_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FileError> + Send + 'static,
) -> Result<T, FileError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(FileError::Read {
            path: "<reader task>".into(),
            source: std::io::Error::other(e),
        })
    })
}

fn io_failure(e: FileError) -> ConnectorError {
    // A vanished or unreadable file may come back (NFS hiccup, permissions fixed): retriable.
    ConnectorError::retriable("reading input file", e)
}

#[async_trait]
impl Source for FileSource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        let poll = self.config.poll_interval;
        // A retried run starts from the committed positions (`SourceContext::committed`), not
        // from where the failed one got to.
        self.files.clear();
        // A bounded run ends after two passes in a row that read nothing: the second takes a
        // last line without its newline (see `nonempty`).
        let mut passes_without_progress = 0;
        loop {
            self.discover(ctx);
            let mut progressed = false;
            let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
            for path in paths {
                while let Some(chunk) = self.read_chunk(&path).await.map_err(io_failure)? {
                    progressed = true;
                    let end = chunk.end;
                    let batch = self.to_batch(&path, chunk);
                    ctx.send(batch).await?;
                    if let Some(state) = self.files.get_mut(&path) {
                        state.position = end;
                    }
                    ctx.metrics().set_source_lag_bytes(self.bytes_behind());
                    if ctx.cancellation().is_cancelled() {
                        return Ok(());
                    }
                }
            }
            ctx.metrics().set_source_lag_bytes(self.bytes_behind());
            if ctx.bounded() {
                passes_without_progress = if progressed {
                    0
                } else {
                    passes_without_progress + 1
                };
                if passes_without_progress == 2 {
                    return Ok(());
                }
                continue;
            }
            if !progressed {
                ctx.idle().await?;
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = ctx.cancellation().cancelled() => return Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_partition_fields_come_from_directories() {
        let fields = path_fields(Path::new(
            "/data/tx/date=2024-01-02/region=eu/part-0.parquet",
        ));
        assert_eq!(
            fields,
            [
                ("date".to_string(), "2024-01-02".to_string()),
                ("region".to_string(), "eu".to_string())
            ]
        );
        assert!(path_fields(Path::new("plain/file.jsonl")).is_empty());
    }
}
