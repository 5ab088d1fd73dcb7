//! One open Parquet file of one partition, written under a hidden temporary name and renamed
//! into place on commit.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::ParquetError;
use crate::core::record::Position;

/// Footer key holding the newest source positions a file contains.
pub const POSITIONS_KEY: &str = "headwater.positions";

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

#[derive(Debug)]
pub struct OpenFile {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: ArrowWriter<File>,
    pub schema: SchemaRef,
    /// The Connect schema of the records in this file, when they came with one.
    pub connect_schema: Option<Value>,
    pub rows: u64,
    pub bytes: u64,
    pub opened: Instant,
    pub positions: Positions,
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
        Ok(Self {
            tmp_path,
            final_path,
            writer,
            schema,
            connect_schema,
            rows: 0,
            bytes: 0,
            opened: Instant::now(),
            positions: Positions::new(),
        })
    }

    pub fn write(&mut self, batch: &RecordBatch, bytes: u64) -> Result<(), ParquetError> {
        self.writer
            .write(batch)
            .map_err(|source| ParquetError::Write {
                path: self.tmp_path.display().to_string(),
                source,
            })?;
        self.rows += batch.num_rows() as u64;
        self.bytes += bytes;
        Ok(())
    }

    /// Writes the footer (with the positions), syncs, and renames the file into place.
    /// Returns the final path and the positions it holds.
    pub fn commit(mut self) -> Result<(PathBuf, Positions), ParquetError> {
        let positions: Vec<Value> = self
            .positions
            .iter()
            .map(|((source, partition), offset)| {
                json!({ "source": &**source, "partition": &**partition, "offset": offset })
            })
            .collect();
        self.writer.append_key_value_metadata(KeyValue::new(
            POSITIONS_KEY.to_owned(),
            Value::Array(positions).to_string(),
        ));
        let write_error = |source| ParquetError::Write {
            path: self.tmp_path.display().to_string(),
            source,
        };
        let file = self.writer.into_inner().map_err(write_error)?;
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

/// Reads the positions out of a committed file's footer.
pub fn read_positions(path: &Path) -> Result<Vec<PositionEntry>, ParquetError> {
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
    let Some(text) = kv
        .iter()
        .find(|kv| kv.key == POSITIONS_KEY)
        .and_then(|kv| kv.value.as_deref())
    else {
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
