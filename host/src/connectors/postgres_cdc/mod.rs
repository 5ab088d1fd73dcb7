//! PostgreSQL change data capture, Debezium-compatible and without a JVM:
//! `io.debezium.connector.postgresql.PostgresConnector` configs run as they are and emit the
//! events Debezium 3.6 emits (envelope, schemas, source block, tombstones, key changes, TOAST
//! placeholders, transaction metadata, heartbeats).
//!
//! - `pgoutput.rs` decodes the replication messages; `types.rs` maps column types and values;
//!   `catalog.rs` builds a table's schemas; `event.rs` builds the records.
//! - `slot.rs` manages the publication and the slot; `snapshot.rs` reads the initial snapshot
//!   in the slot's exported snapshot; `source.rs` runs sessions and streams.
//! - `signal.rs` reads signals (the signalling table's rows, REST's), `kafka_signal.rs` the
//!   `kafka` channel's; `incremental.rs` runs incremental snapshots (watermarks in the
//!   signalling table, or none with `read.only`), `visibility.rs` tells which transactions a
//!   chunk saw; `notify.rs` reports snapshot progress (`notification.enabled.channels`).
//! - `output.rs` batches records and keeps the offset, in Debezium's shape: partition
//!   `{"server": <topic.prefix>}`, offset `{"lsn", "lsn_proc", "lsn_commit", "txId",
//!   "ts_usec"}` (+ `snapshot`, `last_snapshot_record` while snapshotting).

mod catalog;
mod config;
mod event;
mod incremental;
mod java_order;
mod kafka_signal;
mod lag;
mod notify;
mod output;
pub(crate) mod pgoutput;
mod signal;
mod slot;
mod snapshot;
mod source;
mod types;
mod visibility;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, Options};

pub use source::CdcSource;

/// `io.debezium.connector.postgresql.PostgresConnector`.
#[derive(Debug)]
pub struct PostgresCdcPlugin;

impl ConnectorPlugin for PostgresCdcPlugin {
    fn class(&self) -> &'static str {
        output::CLASS
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["headwater.postgres.CdcSource"]
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn keys(&self) -> &'static [ConfigKey] {
        config::KEYS
    }
    fn accepts_signals(&self) -> bool {
        true
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let mut config = config::CdcConfig::from_options(options, ctx.kafka.as_ref())?;
        if let Some(run) = &ctx.bounded_run {
            // A bounded run reads the initial snapshot and ends.
            if config.snapshot_mode != config::SnapshotMode::InitialOnly {
                options.issue(
                    "snapshot.mode",
                    "a bounded run (--once) reads the tables' snapshot and ends: set \
                     snapshot.mode=initial_only",
                );
                return None;
            }
            // Never the configured slot, which a streaming connector may be using: a slot of
            // the run's own that PostgreSQL drops when the run's session ends.
            config.slot = format!("hw_once_{}", &run[..run.len().min(16)]);
            config.temporary_slot = true;
        }
        Some(Task::Source(Box::new(CdcSource::new(config, ctx))))
    }

    fn ends_in_bounded_runs(&self) -> bool {
        true
    }

    /// A snapshot interrupted in a bounded run starts again (its temporary slot is gone).
    fn resumes_bounded_runs(&self) -> bool {
        false
    }
}
