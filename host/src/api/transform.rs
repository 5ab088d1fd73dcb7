//! What a transform is: a single message transform ([`Transform`]), a step over whole batches
//! ([`BatchTransform`], WASM plugins and windows), and a [`Predicate`]. `crate::transforms`
//! builds them from config into a connector's chain.

use std::path::PathBuf;

use crate::api::error::DATA_EXCEPTION;
use crate::api::record::Record;

/// Why a transform could not handle one record.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransformError {
    pub kind: &'static str,
    pub message: String,
}

impl TransformError {
    /// Bad data (a missing field, a value of the wrong type).
    pub fn data(message: impl Into<String>) -> Self {
        Self {
            kind: DATA_EXCEPTION,
            message: message.into(),
        }
    }
}

/// What a transform did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Keep,
    Drop,
}

/// A single message transform. It edits the record in place; on error it must leave the record
/// as it received it, so the dead letter shows the step's input.
pub trait Transform: Send + Sync {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError>;
}

/// A step that works on whole batches: WASM plugins, which cross into the guest once per batch.
pub trait BatchTransform: Send + Sync {
    /// Runs the step over `records`. Every input ends up kept (possibly several times, in
    /// input order), dropped or failed.
    fn apply_batch(&self, records: Vec<Record>) -> BatchOutput;

    /// True when calls may block the thread for long (guest code with a timeout): the chain
    /// then runs on a blocking thread rather than an async worker.
    fn blocks(&self) -> bool {
        true
    }
}

/// What a [`BatchTransform`] did with a batch.
#[derive(Debug, Default)]
pub struct BatchOutput {
    /// Output records, in input order.
    pub kept: Vec<Record>,
    /// `kept[j]` came from input `origins[j]` (non-decreasing).
    pub origins: Vec<usize>,
    /// Inputs the step failed on, unchanged, with why.
    pub failed: Vec<(usize, Record, TransformError)>,
    pub dropped: usize,
    /// Set when the step demands that the task stop (a check's `fail` policy).
    pub fatal: Option<String>,
}

/// A condition on a record (`predicates.<alias>.type`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &Record) -> bool;
}

/// What a step may use while it is built from config: the connector's name (for logs and
/// metrics) and its data dir (WASM plugins cache compiled modules under it).
#[derive(Debug, Clone)]
pub struct ChainContext {
    pub connector: String,
    pub data_dir: PathBuf,
    /// What a stateful step's watermark follows.
    pub inputs: Inputs,
    /// The state partition this chain keeps state for, when a sink keeps one chain per input
    /// partition (`tasks.max` > 1, see `crate::runtime::partitioned`): its steps store their
    /// state under names of their own, so each partition's state can be restored, dropped or
    /// (later) moved alone.
    pub state_scope: Option<String>,
    /// The chain runs once per input partition (a sink with `tasks.max` > 1; with Kafka, see
    /// `crate::runtime::partitioned`): its stateful steps see one partition's records only.
    pub per_partition: bool,
    /// The worker has Kafka: a step may have its input re-keyed through a repartition topic.
    pub kafka: bool,
    /// A bounded run (`headwater run --once`): the input is finite and may arrive out of
    /// event-time order (partitioned reads), so a window step fires nothing until the end of
    /// the input (Flink's BATCH mode) and no record is late; see [`StatefulStep::finish`].
    pub bounded: bool,
}

/// The inputs of a connector's chain, for event-time watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inputs {
    /// A source connector: its records are one stream, with one watermark.
    One,
    /// A sink connector: each Kafka partition it consumes and each local source feeding it is
    /// an input with its own watermark; a step's watermark is their minimum.
    Many,
}

impl ChainContext {
    #[cfg(test)]
    pub fn for_tests() -> Self {
        Self {
            connector: "test".into(),
            data_dir: std::env::temp_dir().join("headwater-unit-tests"),
            inputs: Inputs::One,
            state_scope: None,
            per_partition: false,
            kafka: false,
            bounded: false,
        }
    }

    /// The name a stateful step keeps its state under: `base` (`window:<alias>`), followed by
    /// `@<state partition>` in a per-partition chain.
    pub fn state_name(&self, base: &str) -> String {
        match &self.state_scope {
            Some(scope) => format!("{base}@{scope}"),
            None => base.to_owned(),
        }
    }
}
