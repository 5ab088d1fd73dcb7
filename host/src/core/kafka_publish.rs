//! The Kafka bus, source side: a source's batches are serialized with the connector's
//! converters and produced to Kafka; the batch's offsets are committed once Kafka acknowledged
//! every record (acks=all, idempotent producer).

use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::ack::OffsetTracker;
use super::error::{ConnectorError, RecordError, Stage};
use super::kafka_link::KafkaLink;
use super::record::Record;
use crate::converters::Converter;
use crate::kafka::producer::{BatchProducer, Outgoing, delivered};

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

/// A record serialized for Kafka, or why it could not be.
pub fn outgoing(
    record: &mut Record,
    key: &Converter,
    value: &Converter,
) -> Result<Outgoing, RecordError> {
    let fail = |stage, converter: &Converter, e: crate::converters::ConvertError| {
        RecordError::new(
            stage,
            converter.class(),
            "org.apache.kafka.connect.errors.DataException",
            e.to_string(),
        )
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
pub fn outgoing_batch(
    records: &mut [Record],
    key: &Converter,
    value: &Converter,
) -> (Vec<Outgoing>, Vec<usize>, Vec<RecordError>) {
    let mut run = || {
        let mut out = Vec::with_capacity(records.len());
        let mut failed_at = Vec::new();
        let mut errors = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            match outgoing(record, key, value) {
                Ok(o) => out.push(o),
                Err(e) => {
                    failed_at.push(i);
                    errors.push(e);
                }
            }
        }
        (out, failed_at, errors)
    };
    if key.may_block() || value.may_block() {
        tokio::task::block_in_place(run)
    } else {
        run()
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

    /// Produces the batch. Returns the records the converters refused, for the error policy.
    /// The offsets commit in the background once Kafka has every record.
    pub async fn publish(
        &self,
        mut records: Vec<Record>,
        offsets: Vec<(Value, Value)>,
        tracker: &Arc<OffsetTracker>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        if let Some(reason) = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            return Err(ConnectorError::retriable(
                "producing to Kafka",
                format!(
                    "{reason}; the unacknowledged records are sent again from the last committed offset"
                ),
            ));
        }
        let (out, failed_at, errors) = outgoing_batch(&mut records, &self.key, &self.value);
        let mut failed = Vec::with_capacity(failed_at.len());
        for (i, e) in failed_at.into_iter().zip(errors).rev() {
            failed.push((records.swap_remove(i), e));
        }
        for topic in topics_of(&out) {
            self.link.topics.ensure(topic, None).await?;
        }
        let mut pending = Vec::with_capacity(out.len());
        for o in &out {
            let queued = self.producer.queue(o).await.map_err(|e| {
                crate::kafka::client::connector_error(format!("producing to {}", o.topic), e)
            })?;
            pending.push(queued);
        }
        let token = tracker.begin(offsets, 1).pop();
        let failure = Arc::clone(&self.failure);
        tokio::spawn(async move {
            for p in pending {
                if let Err(e) = delivered(p).await {
                    tracing::error!(error = %e, "Kafka did not acknowledge a record; the source will resend it.");
                    *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                    // The token is dropped unacknowledged: the offsets stay where they were.
                    return;
                }
            }
            if let Some(token) = token {
                token.ack();
            }
        });
        Ok(failed)
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
