//! One open Parquet file of one partition, written under a hidden temporary name and renamed
//! into place on commit.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ParquetError;
use crate::api::record::Position;

/// Footer key holding the newest source positions a file contains.
pub const POSITIONS_KEY: &str = "headwater.positions";

/// Footer key naming the sink connector that wrote a file: recovery trusts only its own files.
pub const CONNECTOR_KEY: &str = "headwater.connector";

/// `(source connector, source partition)` → newest offset.
pub type Positions = HashMap<(Arc<str>, Arc<str>), u64>;

fn insert_max(into: &mut Positions, p: &Position, offset: u64) {
    let entry = into
        .entry((Arc::clone(&p.source), Arc::clone(&p.partition)))
        .or_insert(offset);
    *entry = (*entry).max(offset);
}

/// Folds positions into per-partition maxima. Consecutive positions of one source partition
/// (the common case) cost a pointer comparison instead of hashing two strings.
pub fn fold_positions<'a>(into: &mut Positions, positions: impl Iterator<Item = &'a Position>) {
    let mut run: Option<(&Position, u64)> = None;
    for p in positions {
        match &mut run {
            Some((first, max))
                if Arc::ptr_eq(&first.source, &p.source)
                    && Arc::ptr_eq(&first.partition, &p.partition) =>
            {
                *max = (*max).max(p.offset);
            }
            _ => {
                if let Some((first, max)) = run.take() {
                    insert_max(into, first, max);
                }
                run = Some((p, p.offset));
            }
        }
    }
    if let Some((first, max)) = run {
        insert_max(into, first, max);
    }
}

/// Batches queued for a file's writer thread before `write` waits: bounds memory.
const WRITER_QUEUE_BATCHES: usize = 2;

/// What the sink asks of a file's writer thread.
enum Command {
    Write(RecordBatch),
    /// Write the footer (with these key-value entries) and hand the file back.
    Finish(Vec<KeyValue>),
}

/// The thread that encodes and compresses one file's row groups, so that Parquet encoding
/// (about half of the sink's work) runs beside the JSON decoding of the next batch.
struct WriterThread {
    commands: SyncSender<Command>,
    handle: JoinHandle<Result<File, ParquetError>>,
}

impl WriterThread {
    fn spawn(mut writer: ArrowWriter<File>, path: String) -> Result<Self, ParquetError> {
        let (commands, inbox) = sync_channel::<Command>(WRITER_QUEUE_BATCHES);
        let thread_path = path.clone();
        let handle = std::thread::Builder::new()
            .name("parquet-writer".into())
            .spawn(move || {
                let write_error = |source| ParquetError::Write {
                    path: thread_path.clone(),
                    source,
                };
                for command in inbox {
                    match command {
                        Command::Write(batch) => writer.write(&batch).map_err(write_error)?,
                        Command::Finish(metadata) => {
                            for kv in metadata {
                                writer.append_key_value_metadata(kv);
                            }
                            return writer.into_inner().map_err(write_error);
                        }
                    }
                }
                Err(ParquetError::Abandoned { path: thread_path })
            })
            .map_err(|source| ParquetError::Create { path, source })?;
        Ok(Self { commands, handle })
    }

    /// The thread's result once it stopped (after an error, or after `Finish`).
    fn join(self) -> Result<File, ParquetError> {
        drop(self.commands);
        self.handle
            .join()
            .unwrap_or_else(|_| Err(ParquetError::WriterPanicked))
    }
}

/// One open Parquet file.
pub struct OpenFile {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: Option<WriterThread>,
    pub schema: SchemaRef,
    /// The Connect schema of the records in this file, when they came with one.
    pub connect_schema: Option<Value>,
    pub rows: u64,
    pub bytes: u64,
    pub opened: Instant,
    pub positions: Positions,
}

impl std::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFile")
            .field("path", &self.tmp_path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl OpenFile {
    pub fn create(
        dir: &Path,
        file_name: &str,
        schema: SchemaRef,
        connect_schema: Option<Value>,
        props: WriterProperties,
    ) -> Result<Self, ParquetError> {
        let final_path = dir.join(file_name);
        let tmp_path = dir.join(format!(".{file_name}.tmp"));
        let create_error = |source| ParquetError::Create {
            path: tmp_path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(create_error)?;
        let file = File::create(&tmp_path).map_err(create_error)?;
        let writer =
            ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|source| {
                ParquetError::Write {
                    path: tmp_path.display().to_string(),
                    source,
                }
            })?;
        let writer = WriterThread::spawn(writer, tmp_path.display().to_string())?;
        Ok(Self {
            tmp_path,
            final_path,
            writer: Some(writer),
            schema,
            connect_schema,
            rows: 0,
            bytes: 0,
            opened: Instant::now(),
            positions: Positions::new(),
        })
    }

    /// Queues a batch for the writer thread. Blocks while the thread is
    /// [`WRITER_QUEUE_BATCHES`] behind: that is the sink's backpressure.
    pub fn write(&mut self, batch: RecordBatch, bytes: u64) -> Result<(), ParquetError> {
        let rows = batch.num_rows() as u64;
        let writer = self.writer.as_ref().ok_or(ParquetError::WriterPanicked)?;
        if writer.commands.send(Command::Write(batch)).is_err() {
            // The thread stopped on an error: report it.
            let writer = self.writer.take().ok_or(ParquetError::WriterPanicked)?;
            writer.join()?;
            return Err(ParquetError::Abandoned {
                path: self.tmp_path.display().to_string(),
            });
        }
        self.rows += rows;
        self.bytes += bytes;
        Ok(())
    }

    /// Writes the footer (with the connector's name and the positions), syncs, and renames the
    /// file into place. Returns the final path and the positions it holds.
    pub fn commit(mut self, connector: &str) -> Result<(PathBuf, Positions), ParquetError> {
        let positions: Vec<Value> = self
            .positions
            .iter()
            .map(|((source, partition), offset)| {
                json!({ "source": &**source, "partition": &**partition, "offset": offset })
            })
            .collect();
        let metadata = vec![
            KeyValue::new(CONNECTOR_KEY.to_owned(), connector.to_owned()),
            KeyValue::new(
                POSITIONS_KEY.to_owned(),
                Value::Array(positions).to_string(),
            ),
        ];
        let writer = self.writer.take().ok_or(ParquetError::WriterPanicked)?;
        // A failed send means the thread already stopped on an error, which join returns.
        let _ = writer.commands.send(Command::Finish(metadata));
        let file = writer.join()?;
        let commit_error = |source| ParquetError::Commit {
            path: self.final_path.display().to_string(),
            source,
        };
        file.sync_all().map_err(commit_error)?;
        drop(file);
        std::fs::rename(&self.tmp_path, &self.final_path).map_err(commit_error)?;
        if let Some(dir) = self.final_path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(commit_error)?;
        }
        Ok((self.final_path, self.positions))
    }
}

/// `(source connector, source partition, offset)` as stored in a footer.
pub type PositionEntry = (Arc<str>, Arc<str>, u64);

/// Reads the positions out of a committed file's footer, if `connector` wrote the file.
pub fn read_positions(path: &Path, connector: &str) -> Result<Vec<PositionEntry>, ParquetError> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let recover_error = |source| ParquetError::Recover {
        path: path.display().to_string(),
        source,
    };
    let file = File::open(path).map_err(|e| recover_error(e.into()))?;
    let reader = SerializedFileReader::new(file).map_err(recover_error)?;
    let Some(kv) = reader.metadata().file_metadata().key_value_metadata() else {
        return Ok(Vec::new());
    };
    let value_of = |key: &str| {
        kv.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_deref())
    };
    if value_of(CONNECTOR_KEY) != Some(connector) {
        return Ok(Vec::new());
    }
    let Some(text) = value_of(POSITIONS_KEY) else {
        return Ok(Vec::new());
    };
    let entries: Vec<Value> = serde_json::from_str(text).unwrap_or_default();
    Ok(entries
        .iter()
        .filter_map(|e| {
            Some((
                Arc::from(e.get("source")?.as_str()?),
                Arc::from(e.get("partition")?.as_str()?),
                e.get("offset")?.as_u64()?,
            ))
        })
        .collect())
}
