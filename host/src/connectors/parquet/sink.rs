//! The ParquetSink task.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::SchemaRef;
use async_trait::async_trait;
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use tokio::time::Instant;

use super::ParquetError;
use super::config::{ParquetSinkConfig, ROW_GROUP_ROWS};
use super::encode::{Row, Scratch, encode, infer};
use super::file::{OpenFile, Positions, fold_positions};
use super::recovery::{recover, task_tag};
use super::schema::{
    SchemaError, connect_schema, merge, prepare_connect_value, with_timestamp_columns,
};
use super::staging::Staging;
use crate::api::connector::{BuildContext, Sink, TaskIndex};
use crate::api::error::DATA_EXCEPTION;
use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::logical::MILLIS_PER_DAY;
use crate::api::record::{Payload, Position, Record};
use crate::api::time::{date_of_millis, timestamp_millis};
use crate::offsets::file_stem;

const COMPONENT: &str = "headwater.parquet.ParquetSink";

/// `(topic, days since the epoch)`: the `date=` partition.
type PartitionKey = (String, i64);

/// Finds `"schema"` in raw JSON: such an object may be a JsonConverter envelope.
static SCHEMA_KEY: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\"schema\""));

/// Source partitions whose written offsets `already_written` finds without hashing.
const RECENT_PARTITIONS: usize = 8;

/// A record ready for a partition: where it is in the batch, its row and Connect schema.
///
/// The records stay in the batch's vector: moving a record (~200 bytes) into a group and out
/// again was ~4% of a query-to-Parquet run's samples.
struct Prepared {
    index: usize,
    row: Row,
    connect_schema: Option<Value>,
}

/// `headwater.parquet.ParquetSink`.
pub struct ParquetSink {
    config: ParquetSinkConfig,
    connector: String,
    stem: String,
    /// Which of the connector's tasks writes (`tasks.max`): its files' names carry it.
    task: TaskIndex,
    open: HashMap<PartitionKey, OpenFile>,
    /// Positions held by committed files or by records already taken into open files.
    accepted: Positions,
    /// The entries of `accepted` for the source partitions written most recently, checked by
    /// pointer before hashing (a partitioned read's batches alternate between its ranges).
    recent: Vec<(Position, u64)>,
    next_file: u64,
    props: WriterProperties,
    scratch: Scratch,
    /// `write.mode=overwrite-partitions`: where the run's files go until it ends.
    staging: Option<Staging>,
    /// Files committed since the sink opened.
    committed: u64,
    /// The inferred schema of each topic's latest file: a new file of the topic (another date
    /// partition, a roll) starts from it, so a topic's files share their columns (as a Spark
    /// job's do; readers that take one file's schema see every column) and rows are inferred
    /// again only when they do not fit it.
    topic_schemas: HashMap<String, SchemaRef>,
}

fn record_error(message: impl Into<String>) -> RecordError {
    RecordError::new(Stage::TaskPut, COMPONENT, DATA_EXCEPTION, message)
}

fn fatal(e: ParquetError) -> ConnectorError {
    ConnectorError::retriable("writing Parquet", e)
}

impl ParquetSink {
    pub fn new(config: ParquetSinkConfig, ctx: &BuildContext) -> Self {
        let props = WriterProperties::builder()
            .set_compression(config.compression)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_created_by(format!("headwater {}", env!("CARGO_PKG_VERSION")))
            .build();
        let stem = file_stem(&ctx.connector);
        let staging = ctx
            .bounded_run
            .as_deref()
            .filter(|_| config.overwrite_partitions)
            .map(|run| Staging::new(&config.path, &stem, run));
        Self {
            staging,
            committed: 0,
            topic_schemas: HashMap::new(),
            config,
            connector: ctx.connector.clone(),
            stem,
            task: ctx.task,
            open: HashMap::new(),
            accepted: Positions::new(),
            recent: Vec::new(),
            next_file: 0,
            props,
            scratch: Scratch::default(),
        }
    }

    /// The date partition, row and Connect schema of a record, or why it has none.
    fn prepare(&self, record: &mut Record) -> Result<(i64, Row, Option<Value>), RecordError> {
        let millis = match &self.config.partition_field {
            Some(field) => {
                let found = match record.value.get() {
                    Ok(data) => data.value.get(field).cloned(),
                    Err(e) => return Err(record_error(format!("value is not JSON: {e}"))),
                };
                match found.as_ref().and_then(timestamp_millis) {
                    Some(ms) => ms,
                    None => {
                        let got = found.map_or("nothing".to_owned(), |v| v.to_string());
                        let message = format!(
                            "partition.field {field:?}: expected epoch milliseconds or an ISO-8601 \
                             date-time, got {got}"
                        );
                        return Err(record_error(message));
                    }
                }
            }
            None => record
                .timestamp
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        };
        if chrono::DateTime::from_timestamp_millis(millis).is_none() {
            return Err(record_error(format!("timestamp {millis} is out of range")));
        }
        let day = millis.div_euclid(MILLIS_PER_DAY);
        // Untouched JSON objects are decoded straight from their bytes, unless they may be a
        // JsonConverter envelope (then the schema decides the columns).
        let raw_object = record
            .value
            .raw()
            .filter(|b| b.iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'{'))
            .filter(|b| SCHEMA_KEY.find(b).is_none())
            .cloned();
        let (row, connect_schema) = match raw_object {
            Some(raw)
                if record.value.raw_with_schema().is_none()
                    && record.value.parsed().is_none_or(|d| d.schema.is_none()) =>
            {
                (Row::Raw(raw), None)
            }
            _ => match record.value.get() {
                Ok(data) => {
                    let mut value = data.value.clone();
                    if let Some(schema) = &data.schema {
                        prepare_connect_value(&mut value, schema);
                    }
                    (Row::from_value(value), data.schema.as_deref().cloned())
                }
                Err(e) => return Err(record_error(format!("value is not JSON: {e}"))),
            },
        };
        Ok((day, row, connect_schema))
    }

    /// Brings the entries of `recent` up to date with `accepted`, adding `last`'s partition.
    fn note_recent(&mut self, last: Option<&Position>) {
        let accepted = &self.accepted;
        let done = |p: &Position| {
            accepted
                .get(&(Arc::clone(&p.source), Arc::clone(&p.partition)))
                .copied()
        };
        self.recent
            .retain_mut(|(p, known)| done(p).map(|d| *known = d).is_some());
        let Some(last) = last else { return };
        let seen = self.recent.iter().any(|(p, _)| {
            Arc::ptr_eq(&p.source, &last.source) && Arc::ptr_eq(&p.partition, &last.partition)
        });
        if let (false, Some(d)) = (seen, done(last)) {
            if self.recent.len() == RECENT_PARTITIONS {
                self.recent.remove(0);
            }
            self.recent.push((last.clone(), d));
        }
    }

    /// Where files are written: the store, or the run's staging directory.
    fn root(&self) -> &Path {
        self.staging
            .as_ref()
            .map_or(self.config.path.as_path(), Staging::root)
    }

    fn partition_dir(&self, key: &PartitionKey) -> PathBuf {
        let date = date_of_millis(key.1 * MILLIS_PER_DAY).unwrap_or_default();
        self.root().join(&key.0).join(format!("date={date}"))
    }

    fn new_file_name(&mut self) -> String {
        self.next_file += 1;
        // A staged file's name says which run wrote it (`part-<stem>-<run>-`), another task's
        // than the first which task (`part-<stem>~t<task>-`): tasks write at once, each
        // counting its files from 1.
        let prefix = match (&self.staging, self.task.id) {
            (Some(staging), _) => staging.file_prefix().to_owned(),
            (None, 0) => format!("part-{}-", self.stem),
            (None, task) => format!("part-{}{}", self.stem, task_tag(task)),
        };
        format!(
            "{prefix}{}-{:05}.parquet",
            chrono::Utc::now().timestamp_millis(),
            self.next_file
        )
    }

    /// The schema for a new file of `topic` holding `rows`.
    fn schema_for(
        &self,
        topic: &str,
        connect: &Option<Value>,
        rows: &[&Prepared],
    ) -> Result<SchemaRef, SchemaError> {
        if let Some((_, schema)) = &self.config.schema {
            return Ok(Arc::clone(schema));
        }
        if let Some(connect) = connect {
            return Ok(Arc::new(connect_schema(connect)?));
        }
        if let Some(schema) = self.topic_schemas.get(topic) {
            return Ok(Arc::clone(schema));
        }
        Ok(Arc::new(self.infer(rows.iter().map(|p| &p.row))?))
    }

    /// The schema of schemaless rows, `timestamp.columns` typed as timestamps.
    fn infer<'a>(
        &self,
        rows: impl Iterator<Item = &'a Row>,
    ) -> Result<arrow_schema::Schema, arrow_schema::ArrowError> {
        Ok(with_timestamp_columns(
            infer(rows)?,
            &self.config.timestamp_columns,
        ))
    }

    fn commit(&mut self, key: &PartitionKey) -> Result<(), ParquetError> {
        if let Some(file) = self.open.remove(key) {
            let rows = file.rows;
            let (path, _) = file.commit(&self.connector)?;
            self.committed += 1;
            tracing::debug!(file = %path.display(), rows, "Committed Parquet file.");
        }
        Ok(())
    }

    /// Writes one partition's records of a batch, evolving the schema or isolating bad records
    /// when a chunk does not encode.
    fn write_partition(
        &mut self,
        key: PartitionKey,
        group: Vec<Prepared>,
        records: &[Record],
        failed: &mut Vec<(Record, RecordError)>,
    ) -> Result<(), ParquetError> {
        // Records with a different Connect schema than the open file start a new file.
        let mut start = 0;
        while start < group.len() {
            let connect = group[start].connect_schema.clone();
            let end = group[start..]
                .iter()
                .position(|p| p.connect_schema != connect)
                .map_or(group.len(), |i| start + i);
            let run: Vec<&Prepared> = group[start..end].iter().collect();
            self.write_run(&key, &connect, &run, records, failed)?;
            // The run's positions belong to the file it went into (a roll may have committed
            // the previous one).
            if let Some(file) = self.open.get_mut(&key) {
                fold_positions(
                    &mut file.positions,
                    run.iter()
                        .filter_map(|p| records[p.index].position.as_ref()),
                );
            }
            start = end;
        }
        Ok(())
    }

    fn write_run(
        &mut self,
        key: &PartitionKey,
        connect: &Option<Value>,
        run: &[&Prepared],
        records: &[Record],
        failed: &mut Vec<(Record, RecordError)>,
    ) -> Result<(), ParquetError> {
        if self
            .open
            .get(key)
            .is_some_and(|f| f.connect_schema != *connect)
        {
            self.commit(key)?;
        }
        let schema = match self.open.get(key) {
            Some(f) => Arc::clone(&f.schema),
            None => match self.schema_for(&key.0, connect, run) {
                Ok(s) => s,
                Err(e) => {
                    for p in run {
                        failed.push((
                            records[p.index].clone(),
                            record_error(format!("no usable schema: {e}")),
                        ));
                    }
                    return Ok(());
                }
            },
        };
        let rows = run.iter().map(|p| &p.row);
        let bytes: u64 = run
            .iter()
            .map(|p| records[p.index].approx_size() as u64)
            .sum();
        let (batch, schema) = match encode(&schema, rows.clone(), &mut self.scratch) {
            Ok(batch) => (batch, schema),
            Err(first_error) => {
                // New fields or widened types: merge, roll to a new file, try again.
                let evolved = (self.config.schema.is_none() && connect.is_none())
                    .then(|| self.infer(rows.clone()).ok())
                    .flatten()
                    .map(|newer| Arc::new(merge(&schema, &newer)))
                    .filter(|merged| *merged != schema);
                match evolved.and_then(|s| {
                    encode(&s, rows.clone(), &mut self.scratch)
                        .ok()
                        .map(|b| (b, s))
                }) {
                    Some((batch, merged)) => {
                        tracing::info!(topic = %key.0, "Record schema changed; starting a new Parquet file.");
                        self.commit(key)?;
                        (batch, merged)
                    }
                    None => {
                        // Isolate the records that cannot be encoded.
                        let mut good = Vec::new();
                        for p in run {
                            match encode(&schema, std::iter::once(&p.row), &mut self.scratch) {
                                Ok(_) => good.push(&p.row),
                                Err(e) => failed.push((
                                    records[p.index].clone(),
                                    record_error(format!("does not fit the Parquet schema: {e}")),
                                )),
                            }
                        }
                        if good.is_empty() {
                            tracing::debug!(error = %first_error, "No record of the chunk fits the schema.");
                            return Ok(());
                        }
                        match encode(&schema, good.iter().copied(), &mut self.scratch) {
                            Ok(batch) => (batch, schema),
                            Err(e) => {
                                for p in run {
                                    failed.push((
                                        records[p.index].clone(),
                                        record_error(e.to_string()),
                                    ));
                                }
                                return Ok(());
                            }
                        }
                    }
                }
            }
        };
        if !self.open.contains_key(key) {
            let dir = self.partition_dir(key);
            let name = self.new_file_name();
            if self.config.schema.is_none() && connect.is_none() {
                self.topic_schemas
                    .insert(key.0.clone(), Arc::clone(&schema));
            }
            let props = self.config.dictionary.properties(&self.props, &schema);
            let file = OpenFile::create(&dir, &name, schema, connect.clone(), props)?;
            self.open.insert(key.clone(), file);
        }
        let file = self.open.get_mut(key).expect("opened above");
        file.write(batch, bytes)
    }
}

#[async_trait]
impl Sink for ParquetSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        // A staged run holds what it wrote in its staging directory: the store's files are an
        // earlier run's, which this one replaces.
        let root = self.root().to_path_buf();
        let stem = self.stem.clone();
        let connector = self.connector.clone();
        let staging = self.staging.clone();
        let task = self.task;
        let recovered = tokio::task::spawn_blocking(move || {
            if let Some(staging) = &staging {
                staging.prepare()?;
            }
            recover(&root, &connector, &stem, task)
        })
        .await
        .map_err(|e| ConnectorError::fatal("recovering Parquet sink state", e))?
        .map_err(|e| ConnectorError::fatal("recovering Parquet sink state", e))?;
        self.accepted = recovered;
        self.recent.clear();
        Ok(())
    }

    fn already_written(&self, record: &Record) -> bool {
        record.position.as_ref().is_some_and(|p| {
            if let Some((_, done)) = self.recent.iter().find(|(q, _)| {
                Arc::ptr_eq(&q.source, &p.source) && Arc::ptr_eq(&q.partition, &p.partition)
            }) {
                return p.offset <= *done;
            }
            self.accepted
                .get(&(Arc::clone(&p.source), Arc::clone(&p.partition)))
                .is_some_and(|done| p.offset <= *done)
        })
    }

    async fn write(
        &mut self,
        mut records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        let mut failed = Vec::new();
        fold_positions(
            &mut self.accepted,
            records.iter().filter_map(|r| r.position.as_ref()),
        );
        self.note_recent(records.last().and_then(|r| r.position.as_ref()));
        let mut groups: Vec<(PartitionKey, Vec<Prepared>)> = Vec::new();
        let mut refused = Vec::new();
        let capacity = records.len();
        for (index, record) in records.iter_mut().enumerate() {
            if record.value.is_null() {
                // A tombstone deletes nothing in an append-only offline store.
                continue;
            }
            let (day, row, connect_schema) = match self.prepare(record) {
                Ok(prepared) => prepared,
                Err(e) => {
                    refused.push((index, e));
                    continue;
                }
            };
            let prepared = Prepared {
                index,
                row,
                connect_schema,
            };
            let topic = &record.topic;
            match groups
                .iter_mut()
                .rev()
                .find(|((t, d), _)| *d == day && t == topic)
            {
                Some((_, group)) => group.push(prepared),
                None => {
                    let mut group = Vec::with_capacity(capacity);
                    group.push(prepared);
                    groups.push(((topic.clone(), day), group));
                }
            }
        }
        for (index, e) in refused {
            let record = std::mem::replace(
                &mut records[index],
                Record::new(String::new(), Payload::null()),
            );
            failed.push((record, e));
        }
        for (key, group) in groups {
            self.write_partition(key, group, &records, &mut failed)
                .map_err(fatal)?;
        }
        Ok(failed)
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let keys: Vec<PartitionKey> = self.open.keys().cloned().collect();
        for key in keys {
            self.commit(&key).map_err(fatal)?;
        }
        Ok(())
    }

    fn flush_due(&self) -> bool {
        let rows: u64 = self.open.values().map(|f| f.rows).sum();
        let bytes: u64 = self.open.values().map(|f| f.bytes).sum();
        rows >= self.config.flush_rows || bytes >= self.config.flush_bytes
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.open
            .values()
            .map(|f| f.opened + self.config.rotate_interval)
            .min()
    }

    fn files_committed(&self) -> Option<u64> {
        Some(self.committed)
    }

    async fn end_input(&mut self) -> Result<(), ConnectorError> {
        let Some(staging) = self.staging.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || staging.publish())
            .await
            .map_err(|e| ConnectorError::fatal("publishing the run's partitions", e))?
            .map_err(|e| ConnectorError::retriable("publishing the run's partitions", e))
    }
}
