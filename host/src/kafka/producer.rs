//! A producer that takes whole batches: every record is queued at once (librdkafka batches and
//! compresses them), then the caller waits for all the delivery reports.

use std::time::Duration;

use bytes::Bytes;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use super::client::KafkaSettings;
use crate::api::record::Header;

/// How long to wait for librdkafka's queue to make room before trying again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// One record as it goes to Kafka: serialized key and value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outgoing {
    pub topic: String,
    /// `None`: the partitioner picks (by key hash, as Kafka's default partitioner does).
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Epoch milliseconds.
    pub timestamp: Option<i64>,
}

/// A queued record's delivery report.
pub type Pending = DeliveryFuture;

/// A Kafka producer (idempotent, acks=all) shared by the tasks of a process.
#[derive(Clone)]
pub struct BatchProducer {
    inner: FutureProducer,
}

impl std::fmt::Debug for BatchProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BatchProducer")
    }
}

impl BatchProducer {
    pub fn new(settings: &KafkaSettings, client_id: &str) -> Result<Self, KafkaError> {
        Ok(Self {
            inner: settings.producer_config(client_id).create()?,
        })
    }

    /// Queues one record. Waits (without blocking the thread) while librdkafka's queue is full.
    pub async fn queue(&self, record: &Outgoing) -> Result<Pending, KafkaError> {
        let headers = kafka_headers(&record.headers);
        loop {
            let mut future = FutureRecord::<[u8], [u8]>::to(&record.topic);
            if let Some(key) = &record.key {
                future = future.key(key.as_ref());
            }
            if let Some(value) = &record.value {
                future = future.payload(value.as_ref());
            }
            if let Some(partition) = record.partition {
                future = future.partition(partition);
            }
            if let Some(ts) = record.timestamp {
                future = future.timestamp(ts);
            }
            if let Some(headers) = &headers {
                future = future.headers(headers.clone());
            }
            match self.inner.send_result(future) {
                Ok(pending) => return Ok(pending),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(QUEUE_FULL_PAUSE).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Queues every record, then waits for every delivery report. The result has one entry per
    /// record, in order.
    pub async fn send_all(&self, records: &[Outgoing]) -> Vec<Result<(), KafkaError>> {
        let mut queued = Vec::with_capacity(records.len());
        for record in records {
            queued.push(self.queue(record).await);
        }
        let mut results = Vec::with_capacity(records.len());
        for q in queued {
            results.push(match q {
                Ok(pending) => delivered(pending).await,
                Err(e) => Err(e),
            });
        }
        results
    }

    /// Waits until every queued record was delivered or failed (for shutdown).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.inner.flush(Timeout::After(timeout))
    }
}

/// Waits for one delivery report.
pub async fn delivered(pending: Pending) -> Result<(), KafkaError> {
    match pending.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(e),
        // The producer was dropped with the record still queued.
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// Waits for one delivery report; the offset the record was written at.
pub async fn delivered_at(pending: Pending) -> Result<i64, KafkaError> {
    match pending.await {
        Ok(Ok(delivery)) => Ok(delivery.offset),
        Ok(Err((e, _))) => Err(e),
        Err(_) => Err(KafkaError::Canceled),
    }
}

fn kafka_headers(headers: &[Header]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut out = OwnedHeaders::new_with_capacity(headers.len());
    for h in headers {
        out = out.insert(KafkaHeader {
            key: &h.key,
            value: h.value.as_deref(),
        });
    }
    Some(out)
}
