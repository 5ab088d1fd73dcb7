//! `headwater.window.Aggregate`: streaming features over event-time windows.
//!
//! Records are grouped by `group.by` fields and assigned to tumbling, hopping or session
//! windows on their event time. Flink SQL's semantics: the watermark is the newest event time
//! minus `watermark.delay.ms`; a window fires when the watermark reaches its last millisecond
//! (`end - 1`), becoming one output record with the group's fields, the window's start and end
//! and one field per configured aggregate. Late records within `allowed.lateness.ms` update
//! their window and emit it again; later ones follow `late.records`. The watermark advances
//! with the records. In a sink connector each input (a Kafka partition, a local source) has its
//! own watermark and the step's is their minimum; an input idle for
//! `watermark.idle.timeout.ms` stops holding it back (`Operator::tick`).
//!
//! State is durable: windows live in the connector's state store (`crate::state`) with a
//! bounded in-memory cache, and are checkpointed with the positions of the input they hold
//! (a source's offsets, a sink's Kafka offsets and local sources' positions), so a restart
//! (even after `kill -9`) resumes exactly where the checkpoint left off.

mod accumulator;
pub mod config;
mod distinct;
mod operator;

use std::sync::{Arc, Mutex};

use std::collections::BTreeSet;

use crate::api::options::Options;
use crate::api::record::Record;
use crate::api::transform::{BatchOutput, BatchTransform, ChainContext};
use crate::state::{StateError, StateStore, StatefulStep, Writer};

pub use accumulator::{Accumulator, Function, Hll};
use config::AggregateConfig;
pub use distinct::DistinctValues;
pub use operator::MARKER_HEADER;
use operator::Operator;

/// The class name in `transforms.<alias>.type`.
pub const CLASS: &str = "headwater.window.Aggregate";

/// Builds the step; problems are recorded in `options`.
pub fn build_step(alias: &str, options: &mut Options, ctx: &ChainContext) -> Option<WindowStep> {
    WindowStep::new(alias, options, ctx)
}

/// The chain step: one operator behind a lock (the chain runs one batch at a time).
pub struct WindowStep {
    operator: Mutex<Operator>,
}

impl WindowStep {
    pub fn new(alias: &str, options: &mut Options, ctx: &ChainContext) -> Option<Self> {
        let config = Arc::new(AggregateConfig::parse(
            options,
            ctx.per_partition,
            ctx.kafka,
        )?);
        Some(Self {
            operator: Mutex::new(Operator::new(
                config,
                ctx.state_name(&format!("window:{alias}")),
                ctx.inputs,
                &ctx.connector,
                ctx.bounded,
            )),
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

    fn tick(&self) -> BatchOutput {
        self.operator().tick()
    }

    fn finish(&self) -> Option<BatchOutput> {
        self.operator().finish()
    }

    fn assign(&self, partitions: &BTreeSet<String>) {
        self.operator().assign(partitions.clone());
    }

    fn pending(&self) -> bool {
        self.operator().closing()
    }

    fn needs_repartition(&self) -> bool {
        !self.operator().config().group_by_partitioned
    }

    fn reads_fields(&self) -> bool {
        true
    }

    fn shuffle_key(
        &self,
        record: &mut Record,
    ) -> Result<(Vec<u8>, i64), crate::api::transform::TransformError> {
        self.operator().shuffle_key(record)
    }

    fn event_time(&self, record: &mut Record) -> Option<i64> {
        self.operator().record_event_time(record)
    }
}

#[cfg(test)]
mod tests;
