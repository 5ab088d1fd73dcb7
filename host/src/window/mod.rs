//! `headwater.window.Aggregate`: streaming features over event-time windows.
//!
//! Records are grouped by `group.by` fields and assigned to tumbling, hopping or session
//! windows on their event time. The watermark (newest event time − `watermark.delay.ms`) closes windows:
//! each closed window becomes one output record with the group's fields, the window's start and
//! end and one field per configured aggregate. Late records within `allowed.lateness.ms` update
//! their window and emit it again; later ones follow `late.records`. Like Kafka Streams' stream
//! time, the watermark advances with the records: a window closes when a record past its end
//! (plus the delay) arrives.
//!
//! State is durable: windows live in the connector's state store (`crate::state`) with a
//! bounded in-memory cache, and are checkpointed with the source offsets, so a restart (even
//! after `kill -9`) resumes exactly where the checkpoint left off. That is why the step runs in
//! source connectors' chains only: their offsets are what a checkpoint pairs the state with.

mod accumulator;
pub mod config;
mod operator;

use std::sync::{Arc, Mutex};

use crate::api::options::Options;
use crate::api::record::Record;
use crate::api::transform::{BatchOutput, BatchTransform};
use crate::state::{StateError, StateStore, StatefulStep, Writer};

pub use accumulator::{Accumulator, Function, Hll};
use config::AggregateConfig;
use operator::Operator;

/// The class name in `transforms.<alias>.type`.
pub const CLASS: &str = "headwater.window.Aggregate";

/// Builds the step; problems are recorded in `options`.
pub fn build_step(alias: &str, options: &mut Options) -> Option<WindowStep> {
    WindowStep::new(alias, options)
}

/// The chain step: one operator behind a lock (the chain runs one batch at a time).
pub struct WindowStep {
    operator: Mutex<Operator>,
}

impl WindowStep {
    pub fn new(alias: &str, options: &mut Options) -> Option<Self> {
        let config = Arc::new(AggregateConfig::parse(options)?);
        Some(Self {
            operator: Mutex::new(Operator::new(config, alias)),
        })
    }

    fn operator(&self) -> std::sync::MutexGuard<'_, Operator> {
        // A panic mid-batch fails the task, which restarts from its checkpoint.
        self.operator.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Windows kept decoded in memory (bounded by `state.cache.max.entries`).
    pub fn resident(&self) -> usize {
        self.operator().resident()
    }

    pub fn watermark(&self) -> Option<i64> {
        self.operator().watermark()
    }
}

impl BatchTransform for WindowStep {
    fn apply_batch(&self, records: Vec<Record>) -> BatchOutput {
        self.operator().process(records)
    }
}

impl StatefulStep for WindowStep {
    fn restore(&self, store: &Arc<StateStore>) -> Result<(), StateError> {
        self.operator().restore(store)
    }

    fn checkpoint(&self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        self.operator().checkpoint(writer)
    }
}

#[cfg(test)]
mod tests;
