//! The Kafka bus, source side: a source's batches are serialized with the connector's
//! converters and produced to Kafka; the batch's offsets are committed once Kafka acknowledged
//! every record (acks=all, idempotent producer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::ack::OffsetTracker;
use super::error::{ConnectorError, RecordError, Stage};
use super::kafka_link::KafkaLink;
use super::record::Record;
use crate::converters::{ConvertError, Converter};
use crate::kafka::client::connector_error;
use crate::kafka::producer::{BatchProducer, Outgoing, delivered};

/// Longest pause between attempts while the schema registry is unreachable.
const REGISTRY_RETRY_MAX: Duration = Duration::from_secs(30);

/// A batch serialized for Kafka.
#[derive(Debug)]
pub enum Serialized {
    Done {
        out: Vec<Outgoing>,
        /// Records the converters refused, for the error policy.
        refused: Vec<(Record, RecordError)>,
    },
    /// A refusal that may pass (the schema registry could not be reached): the batch, untouched,
    /// to serialize again later rather than dead-letter.
    Retry(Vec<Record>),
}

/// A record serialized for Kafka, or why it could not be (and whether that may pass).
pub fn outgoing(
    record: &mut Record,
    key: &Converter,
    value: &Converter,
) -> Result<Outgoing, (RecordError, bool)> {
    let fail = |stage, converter: &Converter, e: ConvertError| {
        let transient = e.is_transient();
        let error = RecordError::new(
            stage,
            converter.class(),
            "org.apache.kafka.connect.errors.DataException",
            e.to_string(),
        );
        (error, transient)
    };
    let topic = record.topic.clone();
    let key_bytes = key
        .serialize(&topic, true, &mut record.key)
        .map_err(|e| fail(Stage::KeyConverter, key, e))?;
    let value_bytes = value
        .serialize(&topic, false, &mut record.value)
        .map_err(|e| fail(Stage::ValueConverter, value, e))?;
    Ok(Outgoing {
        topic,
        partition: None,
        key: key_bytes,
        value: value_bytes,
        headers: record.headers.clone(),
        timestamp: record.timestamp,
    })
}

/// Serializes a batch; blocking converters (a schema registry) run where blocking is allowed.
pub fn serialize(mut records: Vec<Record>, key: &Converter, value: &Converter) -> Serialized {
    let mut run = || {
        let mut out = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            match outgoing(record, key, value) {
                Ok(o) => out.push(o),
                Err((_, true)) => return None,
                Err((e, false)) => failed.push((i, e)),
            }
        }
        Some((out, failed))
    };
    let done = if key.may_block() || value.may_block() {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    let Some((out, failed)) = done else {
        return Serialized::Retry(records);
    };
    // Highest index first, so the indexes still to take stay valid.
    let mut refused = Vec::with_capacity(failed.len());
    for (i, e) in failed.into_iter().rev() {
        refused.push((records.swap_remove(i), e));
    }
    Serialized::Done { out, refused }
}

/// Produces one source connector's records.
pub struct KafkaPublisher {
    link: Arc<KafkaLink>,
    producer: BatchProducer,
    key: Converter,
    value: Converter,
    /// Why an earlier batch could not be delivered; the next send fails the task with it.
    failure: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KafkaPublisher")
    }
}

impl KafkaPublisher {
    pub fn new(
        link: Arc<KafkaLink>,
        key: Converter,
        value: Converter,
    ) -> Result<Self, ConnectorError> {
        Ok(Self {
            producer: link.producer()?,
            link,
            key,
            value,
            failure: Arc::new(Mutex::new(None)),
        })
    }

    /// Serializes a batch, waiting (with backoff) while the schema registry is unreachable:
    /// the records and the refused ones. `None` when cancelled meanwhile (the batch is then not
    /// acknowledged, so it is replayed).
    pub async fn serialize(
        &self,
        records: Vec<Record>,
        cancel: &CancellationToken,
    ) -> Option<(Vec<Outgoing>, Vec<(Record, RecordError)>)> {
        let mut records = records;
        let mut delay = Duration::from_millis(300);
        loop {
            records = match serialize(records, &self.key, &self.value) {
                Serialized::Done { out, refused } => return Some((out, refused)),
                Serialized::Retry(records) => records,
            };
            tracing::warn!(
                retry_in_ms = delay.as_millis() as u64,
                "The schema registry is unreachable; the batch waits for it."
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return None,
            }
            delay = (delay * 2).min(REGISTRY_RETRY_MAX);
        }
    }

    /// Produces serialized records; the offsets commit in the background once Kafka has every
    /// one. A batch Kafka did not take (after librdkafka's own retries, `message.timeout.ms`)
    /// fails the task on the next send: its records are sent again from the committed offsets
    /// when the connector restarts.
    pub async fn send(
        &self,
        out: Vec<Outgoing>,
        offsets: Vec<(Value, Value)>,
        tracker: &Arc<OffsetTracker>,
    ) -> Result<(), ConnectorError> {
        if let Some(reason) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(ConnectorError::fatal(
                "producing to Kafka",
                format!(
                    "{reason}; restart the connector to send the unacknowledged records again \
                     from its last committed offsets"
                ),
            ));
        }
        for topic in topics_of(&out) {
            self.link.topics.ensure(topic, None).await?;
        }
        let mut pending = Vec::with_capacity(out.len());
        for o in &out {
            let queued = self
                .producer
                .queue(o)
                .await
                .map_err(|e| connector_error(format!("producing to {}", o.topic), e))?;
            pending.push(queued);
        }
        let token = tracker.begin(offsets, 1).pop();
        let failure = Arc::clone(&self.failure);
        tokio::spawn(async move {
            for p in pending {
                if let Err(e) = delivered(p).await {
                    tracing::error!(error = %e, "Kafka did not acknowledge a record; the source's position stays before it.");
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    // The token is dropped unacknowledged: the offsets stay where they were.
                    return;
                }
            }
            if let Some(token) = token {
                token.ack();
            }
        });
        Ok(())
    }
}

fn topics_of(out: &[Outgoing]) -> Vec<&str> {
    let mut topics: Vec<&str> = Vec::new();
    for o in out {
        if !topics.contains(&o.topic.as_str()) {
            topics.push(&o.topic);
        }
    }
    topics
}
