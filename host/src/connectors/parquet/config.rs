//! `headwater.parquet.ParquetSink` configuration.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::Schema;
use parquet::basic::{Compression, ZstdLevel};
use serde_json::Value;

use super::schema::{SchemaError, connect_schema};
use crate::api::options::{ConfigKey, KeyType, Options};

const PATH: ConfigKey = ConfigKey::new(
    "path",
    KeyType::String,
    "Root directory of the offline store. Files go to \
     `<path>/<topic>/date=YYYY-MM-DD/part-<connector>-<millis>-<n>.parquet`.",
)
.required();

const PARTITION_FIELD: ConfigKey = ConfigKey::new(
    "partition.field",
    KeyType::String,
    "Value field holding the event time (epoch milliseconds or ISO-8601) that picks the \
     `date=` partition. Default: the record timestamp (the source's event time, or when the \
     record was read).",
);

const FLUSH_SIZE: ConfigKey = ConfigKey::new(
    "flush.size",
    KeyType::Int,
    "Rows after which the open files are committed (Confluent's S3 sink name).",
)
.with_default("100000");

const FLUSH_BYTES: ConfigKey = ConfigKey::new(
    "flush.bytes",
    KeyType::Long,
    "Input bytes after which the open files are committed.",
)
.with_default("134217728");

const ROTATE_INTERVAL_MS: ConfigKey = ConfigKey::new(
    "rotate.interval.ms",
    KeyType::Long,
    "Milliseconds after which an open file is committed however small; bounds how stale the \
     offline store can be.",
)
.with_default("60000");

const CODEC: ConfigKey = ConfigKey::new(
    "parquet.codec",
    KeyType::String,
    "Compression codec: zstd, snappy, gzip, lz4 or none.",
)
.with_default("zstd")
.one_of(&["zstd", "snappy", "gzip", "lz4", "none"]);

const SCHEMA: ConfigKey = ConfigKey::new(
    "schema",
    KeyType::String,
    "The table schema as a Kafka Connect struct schema in JSON \
     (`{\"type\":\"struct\",\"fields\":[{\"field\":\"id\",\"type\":\"int64\",\"optional\":false}]}`). \
     Records that do not fit it go to the dead-letter queue. Default: the records' own \
     schema (JsonConverter envelopes), else one inferred from the JSON values.",
);

const TIMESTAMP_COLUMNS: ConfigKey = ConfigKey::new(
    "timestamp.columns",
    KeyType::List,
    "Fields of schemaless (inferred) records written as Parquet `TIMESTAMP` columns \
     (milliseconds, UTC) rather than the strings or numbers the JSON holds: ISO-8601 text and \
     epoch milliseconds both convert. Event times a feature store joins on (Feast's \
     `timestamp_field`) must be timestamps; for a window's results list `window_start,window_end`.",
);

pub const WRITE_MODE: ConfigKey = ConfigKey::new(
    "write.mode",
    KeyType::String,
    "`append` adds files to the partitions. `overwrite-partitions` (Spark's dynamic partition \
     overwrite; bounded runs only, `headwater run --once`): the run's files are staged beside \
     the store, and when its input has ended each `date=` partition it wrote is replaced by \
     them, atomically per partition; partitions it did not write are left alone. Re-running \
     a date leaves one copy of it.",
)
.with_default("append")
.one_of(&["append", "overwrite-partitions"]);

/// Rows per Parquet row group: bounds the writer's memory per open file.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Every key of the ParquetSink (besides `topics` / `topics.regex`).
pub const KEYS: &[ConfigKey] = &[
    PATH,
    PARTITION_FIELD,
    FLUSH_SIZE,
    FLUSH_BYTES,
    ROTATE_INTERVAL_MS,
    CODEC,
    SCHEMA,
    TIMESTAMP_COLUMNS,
    WRITE_MODE,
];

#[derive(Debug, Clone)]
pub struct ParquetSinkConfig {
    pub path: PathBuf,
    pub partition_field: Option<String>,
    pub flush_rows: u64,
    pub flush_bytes: u64,
    pub rotate_interval: Duration,
    pub compression: Compression,
    /// The configured schema: its Connect form and its Arrow form.
    pub schema: Option<(Value, Arc<Schema>)>,
    /// `write.mode=overwrite-partitions`.
    pub overwrite_partitions: bool,
    /// `timestamp.columns`: inferred fields typed as timestamps.
    pub timestamp_columns: Vec<String>,
}

impl ParquetSinkConfig {
    pub fn from_options(options: &mut Options) -> Option<Self> {
        let path = options.path(&PATH);
        let partition_field = options.string(&PARTITION_FIELD).filter(|f| !f.is_empty());
        let flush_rows = options.positive(&FLUSH_SIZE).unwrap_or(100_000);
        let flush_bytes = options.positive(&FLUSH_BYTES).unwrap_or(128 << 20);
        let rotate_interval =
            Duration::from_millis(options.positive(&ROTATE_INTERVAL_MS).unwrap_or(60_000));
        let compression = match options.choice(&CODEC).as_deref() {
            Some("snappy") => Compression::SNAPPY,
            Some("gzip") => Compression::GZIP(Default::default()),
            Some("lz4") => Compression::LZ4_RAW,
            Some("none") => Compression::UNCOMPRESSED,
            _ => Compression::ZSTD(ZstdLevel::default()),
        };
        let schema = options
            .string(&SCHEMA)
            .and_then(|text| match parse_schema(&text) {
                Ok(s) => Some(s),
                Err(e) => {
                    options.issue(
                        SCHEMA.name,
                        format!("expected a Kafka Connect struct schema in JSON: {e}"),
                    );
                    None
                }
            });
        let overwrite_partitions =
            options.choice(&WRITE_MODE).as_deref() == Some("overwrite-partitions");
        let timestamp_columns = options.list(&TIMESTAMP_COLUMNS);
        Some(Self {
            timestamp_columns,
            overwrite_partitions,
            path: path?,
            partition_field,
            flush_rows,
            flush_bytes,
            rotate_interval,
            compression,
            schema,
        })
    }
}

/// The configured `schema`: its Connect JSON and its Arrow form.
fn parse_schema(text: &str) -> Result<(Value, Arc<Schema>), SchemaError> {
    let connect: Value = serde_json::from_str(text)?;
    let arrow = connect_schema(&connect)?;
    Ok((connect, Arc::new(arrow)))
}
