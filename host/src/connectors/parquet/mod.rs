//! `headwater.parquet.ParquetSink`: the offline store. Records become typed Parquet columns
//! (schema from Kafka Connect envelopes, from the `schema` option, or inferred from JSON),
//! partitioned `<path>/<topic>/date=YYYY-MM-DD/`, zstd-compressed by default.
//!
//! Files are written under a hidden temporary name and renamed when committed, so readers
//! (pyarrow, duckdb, Spark) never see a partial file. Each committed file records in its
//! footer (`headwater.positions`) the newest source position of every source partition it
//! holds; on start the sink reads them back and skips records it already committed, so a crash
//! between a file commit and the source's offset commit duplicates nothing.
//!
//! In a bounded run, `write.mode=overwrite-partitions` stages the run's files and replaces the
//! partitions they belong to when the run's input ends (see `staging`).

mod config;
mod encode;
mod file;
mod flat_json;
mod recovery;
mod schema;
mod sink;
mod staging;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, Options};

pub use config::Dictionary;
pub use sink::ParquetSink;

/// Errors of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    #[error("creating Parquet file {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error("writing Parquet file {path}: {source}")]
    Write {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("committing Parquet file {path}: {source}")]
    Commit {
        path: String,
        source: std::io::Error,
    },
    #[error("reading the footer of {path} to recover committed positions: {source}")]
    Recover {
        path: String,
        source: parquet::errors::ParquetError,
    },
    #[error("the writer of Parquet file {path} stopped before the file was committed")]
    Abandoned { path: String },
    #[error("a Parquet writer thread panicked")]
    WriterPanicked,
    #[error("scanning output directory {path}: {source}")]
    Scan {
        path: String,
        source: std::io::Error,
    },
}

/// `headwater.parquet.ParquetSink`.
#[derive(Debug)]
pub struct ParquetSinkPlugin;

impl ConnectorPlugin for ParquetSinkPlugin {
    fn class(&self) -> &'static str {
        "headwater.parquet.ParquetSink"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn keys(&self) -> &'static [ConfigKey] {
        config::KEYS
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let config = config::ParquetSinkConfig::from_options(options)?;
        if config.overwrite_partitions && ctx.bounded_run.is_none() {
            options.issue(
                config::WRITE_MODE.name,
                "overwrite-partitions replaces partitions when a run ends: it needs a bounded \
                 run (headwater run --once; headwater validate --once)",
            );
            return None;
        }
        Some(Task::Sink(Box::new(ParquetSink::new(config, ctx))))
    }
    fn runs_in_parallel(&self) -> bool {
        true
    }
}
