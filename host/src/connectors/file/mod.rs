//! Files: `headwater.file.FileSource` reads JSONL, CSV and Parquet files matched by a glob
//! (date-partitioned trees included), following new files and appended lines;
//! `headwater.file.FileSink` writes every record as one JSON line, for debugging, tests and
//! golden comparisons.
//!
//! Source positions are Kafka Connect source offsets: partition `{"path": <file>}`, offset
//! `{"position": <n>}` where `n` is the byte offset after the last record read (JSONL, CSV) or
//! the number of rows read (Parquet). A restart resumes there.

mod json_field;
pub(crate) mod reader;
mod sink;
mod sink_config;
mod source;
mod source_config;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, Options};

pub use sink::FileSink;
pub use source::FileSource;

/// Errors of the file connectors.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("reading Parquet file {path}: {source}")]
    Parquet {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("converting Parquet rows of {path} to JSON: {source}")]
    ParquetToJson {
        path: String,
        source: arrow_schema::ArrowError,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// `headwater.file.FileSource`.
#[derive(Debug)]
pub struct FileSourcePlugin;

impl ConnectorPlugin for FileSourcePlugin {
    fn class(&self) -> &'static str {
        "headwater.file.FileSource"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn keys(&self) -> &'static [ConfigKey] {
        source_config::KEYS
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let config = source_config::FileSourceConfig::from_options(options)?;
        Some(Task::Source(Box::new(FileSource::new(config, ctx))))
    }
    fn ends_in_bounded_runs(&self) -> bool {
        true
    }
}

/// `headwater.file.FileSink`.
#[derive(Debug)]
pub struct FileSinkPlugin;

impl ConnectorPlugin for FileSinkPlugin {
    fn class(&self) -> &'static str {
        "headwater.file.FileSink"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn keys(&self) -> &'static [ConfigKey] {
        sink_config::KEYS
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let config = sink_config::FileSinkConfig::from_options(options)?;
        Some(Task::Sink(Box::new(FileSink::new(config, ctx))))
    }
}
