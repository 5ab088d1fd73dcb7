//! The Kafka bus, source side: a source's batches are serialized with the connector's
//! converters and produced to Kafka; the batch's offsets are committed once Kafka acknowledged
//! every record (acks=all, idempotent producer).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::api::error::{ConnectorError, RecordError};
use crate::api::record::Record;
use crate::api::retry::{Backoff, INITIAL_DELAY};
use crate::converters::BuiltinConverter;
use crate::kafka::client::connector_error;
use crate::kafka::producer::{BatchProducer, Outgoing, delivered};
use crate::kafka::serialize::{Serialized, serialize};
use crate::runtime::ack::OffsetTracker;
use crate::runtime::kafka_bus::link::KafkaLink;

/// Longest pause between attempts while the schema registry is unreachable.
const REGISTRY_RETRY_MAX: Duration = Duration::from_secs(30);

/// Produces one source connector's records.
pub struct KafkaPublisher {
    link: Arc<KafkaLink>,
    producer: BatchProducer,
    key: BuiltinConverter,
    value: BuiltinConverter,
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
        key: BuiltinConverter,
        value: BuiltinConverter,
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
        let mut backoff = Backoff::new(INITIAL_DELAY, REGISTRY_RETRY_MAX);
        loop {
            records = match serialize(records, &self.key, &self.value) {
                Serialized::Done { out, refused } => return Some((out, refused)),
                Serialized::Retry(records) => records,
            };
            tracing::warn!(
                retry_in_ms = backoff.delay().as_millis() as u64,
                "The schema registry is unreachable; the batch waits for it."
            );
            if !backoff.wait(cancel).await {
                return None;
            }
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
