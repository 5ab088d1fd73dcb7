//! `errors.*` handling: what happens to a record that fails a stage.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::dlq::{FileDeadLetterQueue, dead_letter_json};
use super::error::{ConnectorError, RecordError};
use super::metrics::ConnectorMetrics;
use super::record::Record;

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tolerance {
    /// Fail the task on the first bad record (Kafka Connect's default).
    #[default]
    None,
    /// Send bad records to the dead-letter queue and go on.
    All,
}

/// A connector's `errors.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPolicy {
    pub tolerance: Tolerance,
    /// `errors.log.enable`: log each failed record.
    pub log_enable: bool,
    /// `errors.log.include.messages`: include the record's key and value in that log line.
    pub log_include_messages: bool,
    /// `errors.retry.timeout`: how long retriable failures are retried; `None` = forever.
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`: the cap of the exponential backoff between retries.
    pub retry_delay_max: Duration,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self {
            tolerance: Tolerance::None,
            log_enable: false,
            log_include_messages: false,
            retry_timeout: Some(Duration::ZERO),
            retry_delay_max: Duration::from_secs(60),
        }
    }
}

/// Routes failed records of one connector per its [`ErrorPolicy`].
#[derive(Debug)]
pub struct ErrorReporter {
    connector: Arc<str>,
    task_id: u32,
    policy: ErrorPolicy,
    dlq: FileDeadLetterQueue,
    metrics: Arc<ConnectorMetrics>,
}

impl ErrorReporter {
    pub fn new(
        connector: Arc<str>,
        policy: ErrorPolicy,
        data_dir: &Path,
        metrics: Arc<ConnectorMetrics>,
    ) -> Self {
        let dlq = FileDeadLetterQueue::new(data_dir, &connector);
        Self {
            connector,
            task_id: 0,
            policy,
            dlq,
            metrics,
        }
    }

    pub fn policy(&self) -> &ErrorPolicy {
        &self.policy
    }

    /// Handles failed records: with `errors.tolerance=all` they are written (and synced) to the
    /// dead-letter queue; with `none` the first one fails the task.
    pub fn report(&self, failures: Vec<(Record, RecordError)>) -> Result<(), ConnectorError> {
        if failures.is_empty() {
            return Ok(());
        }
        self.metrics.add_errors(failures.len() as u64);
        if self.policy.tolerance == Tolerance::None {
            let (record, error) = failures.into_iter().next().expect("failures is not empty");
            tracing::error!(
                connector = %self.connector,
                topic = %record.topic,
                offset = record.offset,
                error = %error,
                "Record failed and errors.tolerance=none; failing the task."
            );
            return Err(ConnectorError::ToleranceExceeded(Box::new(error)));
        }
        let mut lines = Vec::with_capacity(failures.len());
        for (record, error) in &failures {
            if self.policy.log_enable {
                if self.policy.log_include_messages {
                    tracing::warn!(
                        connector = %self.connector,
                        topic = %record.topic,
                        offset = record.offset,
                        key = ?record.key.to_json_bytes(),
                        value = ?record.value.to_json_bytes(),
                        error = %error,
                        "Record failed; sent to the dead-letter queue."
                    );
                } else {
                    tracing::warn!(
                        connector = %self.connector,
                        topic = %record.topic,
                        offset = record.offset,
                        error = %error,
                        "Record failed; sent to the dead-letter queue."
                    );
                }
            }
            lines.push(dead_letter_json(
                record,
                record.key.to_json_bytes().as_ref(),
                record.value.to_json_bytes().as_ref(),
                &self.connector,
                self.task_id,
                error,
            ));
        }
        self.dlq.append(&lines).map_err(|e| {
            ConnectorError::fatal(
                format!(
                    "writing {} record(s) to the dead-letter file {}",
                    lines.len(),
                    self.dlq.path().display()
                ),
                e,
            )
        })?;
        self.metrics.add_dead_letters(lines.len() as u64);
        Ok(())
    }
}
