//! A connector's transform chain: Kafka Connect's `transforms=` steps in order, each with an
//! optional predicate; failures become per-record errors for the error policy, and stateful
//! steps are checkpointed with the source offsets they correspond to.

use std::sync::Arc;

use crate::api::error::{RecordError, Stage};
use crate::api::offsets::SourceOffsets;
use crate::api::record::Record;
use crate::api::transform::{BatchTransform, Outcome, Predicate, Transform, TransformError};
use crate::state::{StateError, StateStore, StatefulStep, StatefulTransform};

/// How a step processes records.
pub enum StepKind {
    Record(Box<dyn Transform>),
    Batch(Box<dyn BatchTransform>),
    /// A batch step whose state outlives batches (windows, stateful plugins).
    Stateful(Box<dyn StatefulTransform>),
}

/// One `transforms.<alias>` entry.
pub struct Step {
    pub alias: String,
    /// The configured `type`, reported as the failing class in dead letters.
    pub class: String,
    pub transform: StepKind,
    /// `transforms.<alias>.predicate` and `.negate`.
    pub predicate: Option<(Arc<dyn Predicate>, bool)>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step")
            .field("alias", &self.alias)
            .field("class", &self.class)
            .finish()
    }
}

/// A connector's ordered transform steps.
#[derive(Debug, Default)]
pub struct Chain {
    steps: Vec<Step>,
}

/// The result of running a batch through a chain.
#[derive(Debug, Default)]
pub struct ChainOutput {
    pub kept: Vec<Record>,
    /// Records a step failed on, as they entered that step.
    pub failed: Vec<(Record, RecordError)>,
    /// How many records a step dropped on purpose (Filter and friends).
    pub dropped: usize,
    /// A step demands that the task stop; the message says which and why.
    pub fatal: Option<String>,
}

impl Step {
    fn applies_to(&self, record: &Record) -> bool {
        match &self.predicate {
            Some((predicate, negate)) => predicate.test(record) != *negate,
            None => true,
        }
    }

    fn error(&self, e: TransformError) -> RecordError {
        RecordError::new(
            Stage::Transformation,
            self.class.clone(),
            e.kind,
            format!("transform '{}': {}", self.alias, e.message),
        )
    }

    /// Adds a batch step's failures, drops and fatal error to the chain's output.
    fn absorb(
        &self,
        failed: Vec<(usize, Record, TransformError)>,
        dropped: usize,
        fatal: Option<String>,
        out: &mut ChainOutput,
    ) {
        out.dropped += dropped;
        if out.fatal.is_none() {
            out.fatal = fatal.map(|m| format!("transform '{}': {m}", self.alias));
        }
        for (_, record, e) in failed {
            out.failed.push((record, self.error(e)));
        }
    }

    /// Runs a per-record step over a batch.
    fn run_each(
        &self,
        transform: &dyn Transform,
        records: Vec<Record>,
        out: &mut ChainOutput,
    ) -> Vec<Record> {
        let mut kept = Vec::with_capacity(records.len());
        for mut record in records {
            if !self.applies_to(&record) {
                kept.push(record);
                continue;
            }
            match transform.apply(&mut record) {
                Ok(Outcome::Keep) => kept.push(record),
                Ok(Outcome::Drop) => out.dropped += 1,
                Err(e) => out.failed.push((record, self.error(e))),
            }
        }
        kept
    }

    /// Runs a batch step over the records its predicate selects; the others keep their place.
    fn run_batch(
        &self,
        transform: &dyn BatchTransform,
        records: Vec<Record>,
        out: &mut ChainOutput,
    ) -> Vec<Record> {
        if self.predicate.is_none() {
            let result = transform.apply_batch(records);
            self.absorb(result.failed, result.dropped, result.fatal, out);
            return result.kept;
        }
        let mut selected = Vec::with_capacity(records.len());
        let mut passed = Vec::new();
        for (i, record) in records.into_iter().enumerate() {
            if self.applies_to(&record) {
                selected.push((i, record));
            } else {
                passed.push((i, record));
            }
        }
        let (positions, inputs): (Vec<usize>, Vec<Record>) = selected.into_iter().unzip();
        let result = transform.apply_batch(inputs);
        self.absorb(result.failed, result.dropped, result.fatal, out);
        let mut merged: Vec<(usize, Record)> = result
            .origins
            .iter()
            .map(|&i| positions[i])
            .zip(result.kept)
            .collect();
        if !passed.is_empty() {
            merged.extend(passed);
            // Stable: a record's several outputs stay in the order the step emitted them.
            merged.sort_by_key(|(i, _)| *i);
        }
        merged.into_iter().map(|(_, r)| r).collect()
    }
}

impl Chain {
    pub fn new(steps: Vec<Step>) -> Self {
        Self { steps }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// True when the chain has a step whose calls may block (see [`BatchTransform::blocks`]).
    pub fn blocks(&self) -> bool {
        self.steps.iter().any(|s| match &s.transform {
            StepKind::Record(_) => false,
            StepKind::Batch(b) => b.blocks(),
            StepKind::Stateful(b) => b.blocks(),
        })
    }

    fn stateful_steps(&self) -> impl Iterator<Item = &dyn StatefulStep> {
        self.steps.iter().filter_map(|s| match &s.transform {
            StepKind::Stateful(b) => Some(b.as_ref() as &dyn StatefulStep),
            StepKind::Record(_) | StepKind::Batch(_) => None,
        })
    }

    /// The first stateful step groups by fields its input is not partitioned by (see
    /// [`StatefulStep::needs_repartition`]).
    pub fn needs_repartition(&self) -> bool {
        self.stateful_steps()
            .next()
            .is_some_and(|s| s.needs_repartition())
    }

    /// The first stateful step reads fields of every record's value (see
    /// [`StatefulStep::reads_fields`]).
    pub fn parses_values(&self) -> bool {
        self.stateful_steps()
            .next()
            .is_some_and(|s| s.reads_fields())
    }

    /// The first stateful step's group key and event time of a record (the shuffle of a
    /// repartition topic runs the steps before it first).
    pub fn shuffle_key(
        &self,
        record: &mut Record,
    ) -> Option<Result<(Vec<u8>, i64), crate::api::transform::TransformError>> {
        self.stateful_steps().next().map(|s| s.shuffle_key(record))
    }

    /// The event time of a record as the chain's first step reads it, when that step is
    /// stateful (see [`StatefulStep::event_time`]). With steps before it, the record it sees
    /// is not the one read from Kafka: `None`.
    pub fn leading_event_time(&self, record: &mut Record) -> Option<i64> {
        match &self.steps.first()?.transform {
            StepKind::Stateful(step) => step.event_time(record),
            StepKind::Record(_) | StepKind::Batch(_) => None,
        }
    }

    /// True when the chain's first step is stateful and reads its records' fields (a window):
    /// records' times are then what [`Self::leading_event_time`] says, never the Kafka
    /// timestamps. A window on processing time gives none, and its input is read as it comes.
    pub fn leads_with_event_time(&self) -> bool {
        self.steps.first().is_some_and(
            |s| matches!(&s.transform, StepKind::Stateful(step) if step.reads_fields()),
        )
    }

    /// Splits the chain before its first stateful step: the steps a repartition topic's
    /// shuffle runs (stateless), and the steps from the stateful one on.
    pub fn split_at_first_stateful(mut self) -> (Chain, Chain) {
        let at = self
            .steps
            .iter()
            .position(|s| matches!(s.transform, StepKind::Stateful(_)))
            .unwrap_or(self.steps.len());
        let rest = self.steps.split_off(at);
        (self, Chain::new(rest))
    }

    /// True when a step keeps state across batches (it needs a state store and checkpoints).
    pub fn is_stateful(&self) -> bool {
        self.stateful_steps().next().is_some()
    }

    /// Attaches every stateful step to the connector's store and loads its state.
    pub fn restore_state(&self, store: &Arc<StateStore>) -> Result<(), StateError> {
        self.stateful_steps().try_for_each(|s| s.restore(store))
    }

    /// Writes every stateful step's changes and the input positions they correspond to (a
    /// source's offsets; a sink's Kafka offsets and local sources' positions), in one durable
    /// transaction.
    pub fn checkpoint(
        &self,
        store: &StateStore,
        offsets: &SourceOffsets,
    ) -> Result<(), StateError> {
        store.checkpoint(offsets, |writer| self.write_state(writer))
    }

    /// Writes every stateful step's changes into a checkpoint under way (one of several chains
    /// checkpointed together).
    pub fn write_state(&self, writer: &mut crate::state::Writer<'_>) -> Result<(), StateError> {
        self.stateful_steps().try_for_each(|s| s.checkpoint(writer))
    }

    /// Runs a batch through every step in turn.
    pub fn apply_batch(&self, records: Vec<Record>) -> ChainOutput {
        let mut out = ChainOutput::default();
        out.kept = self.run_steps(&self.steps, records, &mut out);
        out
    }

    /// Lets stateful steps act on the passing of processing time (see
    /// [`StatefulStep::tick`]); what they emit goes through the steps after them.
    pub fn tick(&self) -> ChainOutput {
        let mut out = ChainOutput::default();
        for (i, step) in self.steps.iter().enumerate() {
            let StepKind::Stateful(t) = &step.transform else {
                continue;
            };
            let emitted = t.tick();
            step.absorb(emitted.failed, emitted.dropped, emitted.fatal, &mut out);
            if out.fatal.is_some() {
                return out;
            }
            let kept = self.run_steps(&self.steps[i + 1..], emitted.kept, &mut out);
            out.kept.extend(kept);
        }
        out
    }

    /// The end of a bounded input: the first stateful step not yet finished emits what it
    /// holds (see [`StatefulStep::finish`]), through the steps after it. `None` once every
    /// stateful step has finished. Callers write each output, then [`Self::tick`] while
    /// [`Self::pending`], before calling this again, so a later stateful step finishes only
    /// after everything an earlier one emitted reached it.
    pub fn finish(&self) -> Option<ChainOutput> {
        for (i, step) in self.steps.iter().enumerate() {
            let StepKind::Stateful(t) = &step.transform else {
                continue;
            };
            let Some(emitted) = t.finish() else {
                continue;
            };
            let mut out = ChainOutput::default();
            step.absorb(emitted.failed, emitted.dropped, emitted.fatal, &mut out);
            if out.fatal.is_some() {
                return Some(out);
            }
            let kept = self.run_steps(&self.steps[i + 1..], emitted.kept, &mut out);
            out.kept.extend(kept);
            return Some(out);
        }
        None
    }

    /// True while a stateful step has output still to emit (see [`StatefulStep::pending`]).
    pub fn pending(&self) -> bool {
        self.stateful_steps().any(|s| s.pending())
    }

    /// Tells stateful steps which Kafka partitions the connector's consumer owns now.
    pub fn assign(&self, partitions: &std::collections::BTreeSet<String>) {
        self.stateful_steps().for_each(|s| s.assign(partitions));
    }

    fn run_steps(
        &self,
        steps: &[Step],
        records: Vec<Record>,
        out: &mut ChainOutput,
    ) -> Vec<Record> {
        let mut records = records;
        for step in steps {
            if records.is_empty() {
                break;
            }
            records = match &step.transform {
                StepKind::Record(t) => step.run_each(t.as_ref(), records, out),
                StepKind::Batch(t) => step.run_batch(t.as_ref(), records, out),
                StepKind::Stateful(t) => step.run_batch(t.as_ref(), records, out),
            };
        }
        records
    }

    /// [`Chain::apply_batch`], outside the async scheduler when a step may block: in place on
    /// a multi-threaded runtime (the records stay in this core's cache; other tasks move to
    /// another worker), on the blocking pool otherwise.
    pub async fn apply_batch_async(self: &Arc<Self>, records: Vec<Record>) -> ChainOutput {
        if !self.blocks() {
            return self.apply_batch(records);
        }
        let flavor = tokio::runtime::Handle::current().runtime_flavor();
        if flavor == tokio::runtime::RuntimeFlavor::MultiThread {
            return tokio::task::block_in_place(|| self.apply_batch(records));
        }
        let chain = Arc::clone(self);
        match tokio::task::spawn_blocking(move || chain.apply_batch(records)).await {
            Ok(out) => out,
            Err(e) => ChainOutput {
                fatal: Some(format!("the transform chain panicked: {e}")),
                ..Default::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::record::Payload;
    use crate::api::transform::BatchOutput;

    /// Doubles records whose value is even, drops odd ones, fails on 9.
    struct DoubleEvens;

    impl BatchTransform for DoubleEvens {
        fn apply_batch(&self, records: Vec<Record>) -> BatchOutput {
            let mut out = BatchOutput::default();
            for (i, r) in records.into_iter().enumerate() {
                match r.value.parsed().and_then(|d| d.value.as_i64()) {
                    Some(9) => out.failed.push((i, r, TransformError::data("nine"))),
                    Some(n) if n % 2 == 0 => {
                        out.kept.extend([r.clone(), r]);
                        out.origins.extend([i, i]);
                    }
                    _ => out.dropped += 1,
                }
            }
            out
        }

        fn blocks(&self) -> bool {
            false
        }
    }

    struct TopicIs(&'static str);

    impl Predicate for TopicIs {
        fn test(&self, record: &Record) -> bool {
            record.topic == self.0
        }
    }

    fn record(topic: &str, n: i64) -> Record {
        Record::new(topic, Payload::value(serde_json::json!(n)))
    }

    fn summary(records: &[Record]) -> Vec<(String, i64)> {
        records
            .iter()
            .map(|r| {
                let n = r
                    .value
                    .parsed()
                    .and_then(|d| d.value.as_i64())
                    .unwrap_or(-1);
                (r.topic.clone(), n)
            })
            .collect()
    }

    #[test]
    fn a_chain_splits_before_its_first_stateful_step() {
        let step = |alias: &str| Step {
            alias: alias.into(),
            class: "test.DoubleEvens".into(),
            transform: StepKind::Batch(Box::new(DoubleEvens)),
            predicate: None,
        };
        let (prefix, rest) = Chain::new(vec![step("a"), step("b")]).split_at_first_stateful();
        assert_eq!(prefix.steps.len(), 2);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_batch_step_under_a_predicate_keeps_the_other_records_in_place() {
        let chain = Chain::new(vec![Step {
            alias: "double".into(),
            class: "test.DoubleEvens".into(),
            transform: StepKind::Batch(Box::new(DoubleEvens)),
            predicate: Some((Arc::new(TopicIs("a")), false)),
        }]);
        let input = vec![
            record("a", 2),
            record("b", 3),
            record("a", 3),
            record("b", 4),
            record("a", 9),
            record("a", 4),
        ];
        let out = chain.apply_batch(input);
        assert_eq!(
            summary(&out.kept),
            [
                ("a".into(), 2),
                ("a".into(), 2),
                ("b".into(), 3),
                ("b".into(), 4),
                ("a".into(), 4),
                ("a".into(), 4)
            ]
        );
        assert_eq!(out.dropped, 1);
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.failed[0].1.message, "transform 'double': nine");
        assert!(!chain.blocks());
    }
}
