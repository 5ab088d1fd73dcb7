//! `errors.*` handling: what happens to a record that fails a stage.

use std::path::Path;
use std::sync::Arc;

use crate::api::convert::Converter;
use crate::api::error::{ConnectorError, ErrorPolicy, RecordError, Tolerance};
use crate::api::metrics::ConnectorMetrics;
use crate::api::record::Payload;
use crate::api::record::Record;
use crate::converters::BuiltinConverter;
use crate::kafka::client::connector_error;
use crate::kafka::producer::Outgoing;
use crate::runtime::dlq::{FileDeadLetterQueue, context_headers, dead_letter_json};
use crate::runtime::kafka_bus::link::KafkaLink;

/// Routes failed records of one connector per its [`ErrorPolicy`].
#[derive(Debug)]
pub struct ErrorReporter {
    connector: Arc<str>,
    policy: ErrorPolicy,
    dlq: FileDeadLetterQueue,
    /// Set when dead letters go to a Kafka topic.
    kafka: Option<Arc<KafkaLink>>,
    /// The connector's key and value converters: a dead letter's bytes are the record as they
    /// wrote (or read) it.
    converters: (BuiltinConverter, BuiltinConverter),
    metrics: Arc<ConnectorMetrics>,
}

impl ErrorReporter {
    /// The connector's metrics.
    pub fn metrics(&self) -> Arc<ConnectorMetrics> {
        Arc::clone(&self.metrics)
    }

    pub fn new(
        connector: Arc<str>,
        policy: ErrorPolicy,
        data_dir: &Path,
        metrics: Arc<ConnectorMetrics>,
        kafka: Option<Arc<KafkaLink>>,
        converters: (BuiltinConverter, BuiltinConverter),
    ) -> Self {
        let dlq = FileDeadLetterQueue::new(data_dir, &connector);
        let kafka = match (&policy.dlq_topic, kafka) {
            (Some(_), Some(link)) => Some(link),
            (Some(topic), None) => {
                tracing::warn!(
                    connector = %connector,
                    topic = %topic,
                    file = %dlq.path().display(),
                    "errors.deadletterqueue.topic.name is set but the worker has no Kafka \
                     ([kafka] bootstrap_servers); dead letters go to the file instead."
                );
                None
            }
            (None, _) => None,
        };
        Self {
            connector,
            policy,
            dlq,
            kafka,
            converters,
            metrics,
        }
    }

    pub fn policy(&self) -> &ErrorPolicy {
        &self.policy
    }

    /// Handles failed records: with `errors.tolerance=all` they are written (and synced) to the
    /// dead-letter queue; with `none` the first one fails the task.
    pub async fn report(&self, failures: Vec<(Record, RecordError)>) -> Result<(), ConnectorError> {
        self.report_from(0, failures).await
    }

    /// [`Self::report`] for the connector's task `task` (`tasks.max`): its dead letters'
    /// `__connect.errors.task.id`.
    pub async fn report_from(
        &self,
        task: usize,
        failures: Vec<(Record, RecordError)>,
    ) -> Result<(), ConnectorError> {
        let task = u32::try_from(task).unwrap_or(u32::MAX);
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
        for (record, error) in &failures {
            self.log(record, error);
        }
        let count = failures.len() as u64;
        match (&self.kafka, &self.policy.dlq_topic) {
            (Some(link), Some(topic)) => self.produce(link, topic, task, failures).await?,
            _ => self.append(task, &failures)?,
        }
        self.metrics.add_dead_letters(count);
        Ok(())
    }

    fn log(&self, record: &Record, error: &RecordError) {
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
    }

    /// Dead letters to Kafka: the original key and value bytes and headers, plus the
    /// `__connect.errors.*` context headers when enabled. Waits for Kafka's acknowledgement.
    async fn produce(
        &self,
        link: &KafkaLink,
        topic: &str,
        task: u32,
        failures: Vec<(Record, RecordError)>,
    ) -> Result<(), ConnectorError> {
        link.topics
            .ensure(topic, Some(self.policy.dlq_replication))
            .await?;
        let producer = link.producer()?;
        let letters: Vec<Outgoing> = failures
            .iter()
            .map(|(record, error)| {
                let mut headers = record.headers.clone();
                if self.policy.dlq_context_headers {
                    headers.extend(context_headers(record, &self.connector, task, error));
                }
                Outgoing {
                    topic: topic.to_owned(),
                    partition: None,
                    key: letter_bytes(&self.converters.0, &record.topic, true, &record.key),
                    value: letter_bytes(&self.converters.1, &record.topic, false, &record.value),
                    headers,
                    timestamp: record.timestamp,
                }
            })
            .collect();
        for result in producer.send_all(&letters).await {
            result.map_err(|e| {
                connector_error(format!("writing dead letters to Kafka topic {topic}"), e)
            })?;
        }
        Ok(())
    }

    /// Dead letters to `<data dir>/dlq/<connector>.jsonl`, synced.
    fn append(&self, task: u32, failures: &[(Record, RecordError)]) -> Result<(), ConnectorError> {
        let mut lines = Vec::with_capacity(failures.len());
        for (record, error) in failures {
            lines.push(dead_letter_json(
                record,
                record.key.to_json_bytes().as_ref(),
                record.value.to_json_bytes().as_ref(),
                &self.connector,
                task,
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
        Ok(())
    }
}

/// A dead letter's key or value bytes: the bytes as they arrived when the record was never
/// converted (a converter refused it), else the record as the connector's converter writes it
/// (Avro as JSON: re-registering a schema for a dead letter would change the registry).
fn letter_bytes(
    converter: &BuiltinConverter,
    topic: &str,
    is_key: bool,
    payload: &Payload,
) -> Option<bytes::Bytes> {
    // (A value its source wrote beside its schema is written as the converter writes it.)
    let as_arrived = payload.raw().is_some() && payload.raw_with_schema().is_none();
    if as_arrived || matches!(converter, BuiltinConverter::Avro(_)) {
        return payload.to_json_bytes();
    }
    let mut copy = payload.clone();
    converter
        .serialize(topic, is_key, &mut copy)
        .unwrap_or_else(|_| payload.to_json_bytes())
}
