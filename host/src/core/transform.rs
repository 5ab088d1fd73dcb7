//! The transform chain: Kafka Connect's `transforms=` steps with optional predicates.
//!
//! The core only knows the traits; `crate::transforms` builds steps from config.

use std::sync::Arc;

use super::error::{RecordError, Stage};
use super::record::Record;

/// Kafka Connect's exception class for bad data; what `__connect.errors.exception.class.name`
/// shows for a record a transform cannot handle.
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";

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

/// A condition on a record (`predicates.<alias>.type`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &Record) -> bool;
}

/// One `transforms.<alias>` entry.
pub struct Step {
    pub alias: String,
    /// The configured `type`, reported as the failing class in dead letters.
    pub class: String,
    pub transform: Box<dyn Transform>,
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
}

impl Chain {
    pub fn new(steps: Vec<Step>) -> Self {
        Self { steps }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Runs one record through every step.
    pub fn apply(&self, record: &mut Record) -> Result<Outcome, RecordError> {
        for step in &self.steps {
            if let Some((predicate, negate)) = &step.predicate
                && predicate.test(record) == *negate
            {
                continue;
            }
            match step.transform.apply(record) {
                Ok(Outcome::Keep) => {}
                Ok(Outcome::Drop) => return Ok(Outcome::Drop),
                Err(e) => {
                    return Err(RecordError::new(
                        Stage::Transformation,
                        step.class.clone(),
                        e.kind,
                        format!("transform '{}': {}", step.alias, e.message),
                    ));
                }
            }
        }
        Ok(Outcome::Keep)
    }

    pub fn apply_batch(&self, records: Vec<Record>) -> ChainOutput {
        if self.steps.is_empty() {
            return ChainOutput {
                kept: records,
                ..Default::default()
            };
        }
        let mut out = ChainOutput {
            kept: Vec::with_capacity(records.len()),
            ..Default::default()
        };
        for mut record in records {
            match self.apply(&mut record) {
                Ok(Outcome::Keep) => out.kept.push(record),
                Ok(Outcome::Drop) => out.dropped += 1,
                Err(e) => out.failed.push((record, e)),
            }
        }
        out
    }
}
