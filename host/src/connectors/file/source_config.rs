//! `headwater.file.FileSource` configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::api::allowed_paths::AllowedPaths;
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::time::parse_timestamp_millis;

const PATH: ConfigKey = ConfigKey::new(
    "path",
    KeyType::String,
    "Files to read: a path or a glob, e.g. `data/transactions/date=*/*.parquet`. Relative \
     paths are relative to the host's working directory. `file` (Kafka Connect's \
     FileStreamSource name) is accepted too.",
);

const FILE: ConfigKey = ConfigKey::new("file", KeyType::String, "Alias of `path`.");

const TOPIC: ConfigKey = ConfigKey::new(
    "topic",
    KeyType::String,
    "Topic the records are published to.",
)
.required();

const FORMAT: ConfigKey = ConfigKey::new(
    "format",
    KeyType::String,
    "File format: `jsonl` (one JSON value per line), `csv` (header row, then rows) or \
     `parquet`. Default: from each file's extension (.jsonl/.json/.ndjson, .csv, .parquet).",
)
.one_of(&["jsonl", "csv", "parquet"]);

const CSV_DELIMITER: ConfigKey = ConfigKey::new(
    "csv.delimiter",
    KeyType::String,
    "CSV field delimiter, one character.",
)
.with_default(",");

const CSV_INFER_TYPES: ConfigKey = ConfigKey::new(
    "csv.infer.types",
    KeyType::Boolean,
    "Read CSV cells that look like integers, decimals or booleans as numbers and booleans, \
     and empty cells as null. When false every cell is a string.",
)
.with_default("true");

const TIMESTAMP_FIELD: ConfigKey = ConfigKey::new(
    "timestamp.field",
    KeyType::String,
    "Field of the record value holding its event time (epoch milliseconds or an ISO-8601 \
     string); it becomes the record timestamp. Default: the time the record was read.",
);

const TIMESTAMP_FROM: ConfigKey = ConfigKey::new(
    "timestamp.from",
    KeyType::String,
    "Only emit records whose `timestamp.field` is at or after this time (ISO-8601 or epoch \
     ms). Needs `timestamp.field`.",
);

const TIMESTAMP_UNTIL: ConfigKey = ConfigKey::new(
    "timestamp.until",
    KeyType::String,
    "Only emit records whose `timestamp.field` is before this time (ISO-8601 or epoch ms). \
     Needs `timestamp.field`.",
);

const PARTITION_FIELDS_FROM_PATH: ConfigKey = ConfigKey::new(
    "path.partition.fields",
    KeyType::Boolean,
    "Add Hive-style partition values from the file's directories (`date=2024-01-01/`) to each \
     record value as fields (`\"date\": \"2024-01-01\"`) unless the record has them already.",
)
.with_default("false");

const POLL_INTERVAL_MS: ConfigKey = ConfigKey::new(
    "poll.interval.ms",
    KeyType::Long,
    "How often, in milliseconds, to look for new files and appended data once everything \
     was read.",
)
.with_default("1000");

const BATCH_MAX_RECORDS: ConfigKey = ConfigKey::new(
    "batch.max.records",
    KeyType::Int,
    "Most records in one batch handed to the transforms and sinks.",
)
.with_default("4096");

const MAX_RECORD_BYTES: ConfigKey = ConfigKey::new(
    "max.record.bytes",
    KeyType::Long,
    "Longest line (JSONL, CSV) read as a record. A longer one is not held in memory: it becomes \
     an invalid record (a dead letter with its first 1,024 bytes, or the task's failure under \
     errors.tolerance=none) saying how long it was, and reading goes on after it.",
)
.with_default("16777216");

/// Every key of the FileSource.
pub const KEYS: &[ConfigKey] = &[
    PATH,
    FILE,
    TOPIC,
    FORMAT,
    CSV_DELIMITER,
    CSV_INFER_TYPES,
    TIMESTAMP_FIELD,
    TIMESTAMP_FROM,
    TIMESTAMP_UNTIL,
    PARTITION_FIELDS_FROM_PATH,
    POLL_INTERVAL_MS,
    BATCH_MAX_RECORDS,
    MAX_RECORD_BYTES,
];

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jsonl,
    Csv,
    Parquet,
}

impl Format {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The format of a file from its extension.
    pub fn of_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "jsonl" | "json" | "ndjson" => Some(Self::Jsonl),
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    pub pattern: String,
    pub topic: String,
    pub format: Option<Format>,
    pub csv_delimiter: u8,
    pub csv_infer_types: bool,
    pub timestamp_field: Option<String>,
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub partition_fields_from_path: bool,
    pub poll_interval: Duration,
    pub batch_max_records: usize,
    /// `max.record.bytes`.
    pub max_record_bytes: usize,
    /// Where matched files must be (a config created over REST): a match outside, e.g. a link
    /// to elsewhere, is skipped.
    pub allowed: Option<Arc<AllowedPaths>>,
}

fn time_bound(options: &mut Options, key: &ConfigKey) -> Option<i64> {
    let raw = options.string(key)?;
    let parsed = parse_timestamp_millis(&raw);
    if parsed.is_none() {
        options.issue(
            key.name,
            format!("expected an ISO-8601 date-time or epoch milliseconds, got {raw:?}"),
        );
    }
    parsed
}

impl FileSourceConfig {
    pub fn from_options(options: &mut Options) -> Option<Self> {
        // `path` wins over its alias `file`; a refused pattern is reported by `path_glob`.
        let key = if options.contains(PATH.name) {
            &PATH
        } else {
            &FILE
        };
        let given = options.contains(key.name);
        let pattern = options.path_glob(key).map(|p| p.trim().to_owned());
        options.string(&FILE);
        if !given || pattern.as_deref() == Some("") {
            options.issue(PATH.name, "missing required key: set `path` (or `file`)");
        }
        if let Some(p) = &pattern
            && let Err(e) = glob::Pattern::new(p)
        {
            options.issue(PATH.name, format!("invalid glob pattern {p:?}: {e}"));
        }
        let topic = options.string(&TOPIC);
        let format = options.choice(&FORMAT).and_then(|f| Format::parse(&f));
        let delimiter = options.string(&CSV_DELIMITER).unwrap_or_else(|| ",".into());
        let csv_delimiter = match delimiter.as_bytes() {
            [b] => *b,
            _ => {
                options.issue(
                    CSV_DELIMITER.name,
                    format!("expected a single one-byte character, got {delimiter:?}"),
                );
                b','
            }
        };
        let csv_infer_types = options.bool(&CSV_INFER_TYPES).unwrap_or(true);
        let timestamp_field = options.string(&TIMESTAMP_FIELD).filter(|f| !f.is_empty());
        let from_ms = time_bound(options, &TIMESTAMP_FROM);
        let until_ms = time_bound(options, &TIMESTAMP_UNTIL);
        if (from_ms.is_some() || until_ms.is_some()) && timestamp_field.is_none() {
            options.issue(
                TIMESTAMP_FIELD.name,
                "timestamp.from / timestamp.until need timestamp.field to say which field holds \
                 the event time",
            );
        }
        let partition_fields_from_path = options.bool(&PARTITION_FIELDS_FROM_PATH).unwrap_or(false);
        let poll_interval =
            Duration::from_millis(options.positive(&POLL_INTERVAL_MS).unwrap_or(1000));
        let batch_max_records = options.positive(&BATCH_MAX_RECORDS).unwrap_or(4096) as usize;
        let max_record_bytes = options
            .positive(&MAX_RECORD_BYTES)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(16 << 20);
        Some(Self {
            pattern: pattern?,
            topic: topic?,
            format,
            csv_delimiter,
            csv_infer_types,
            timestamp_field,
            from_ms,
            until_ms,
            partition_fields_from_path,
            poll_interval,
            batch_max_records,
            max_record_bytes,
            allowed: options.confinement().cloned(),
        })
    }
}
