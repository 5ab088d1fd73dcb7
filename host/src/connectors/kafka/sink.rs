//! The Kafka sink task: records are queued to librdkafka as they arrive and a flush waits for
//! every delivery report. Records Kafka refused are queued again, so a flush succeeds only
//! when Kafka has all of them.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::time::{Duration, Instant};

use crate::api::connector::Sink;
use crate::api::convert::Converter;
use crate::api::error::{ConnectorError, RecordError};
use crate::api::record::Record;
use crate::api::retry::{Backoff, INITIAL_DELAY};
use crate::kafka::KafkaSettings;
use crate::kafka::admin::TopicCreator;
use crate::kafka::client::connector_error;
use crate::kafka::producer::{BatchProducer, Outgoing, Pending, delivered};
use crate::kafka::serialize::{Serialized, serialize};

/// Flush once this many records wait for their delivery reports...
const FLUSH_RECORDS: usize = 10_000;
/// ...or this long after the first of them was queued.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How long a batch waits for an unreachable schema registry before the task fails.
const REGISTRY_PATIENCE: Duration = Duration::from_secs(60);

pub struct KafkaSink {
    connector: String,
    settings: KafkaSettings,
    topic: Option<String>,
    key: Arc<dyn Converter>,
    value: Arc<dyn Converter>,
    producer: Option<BatchProducer>,
    topics: TopicCreator,
    /// Queued records and their delivery reports.
    pending: Vec<(Outgoing, Pending)>,
    first_queued: Option<Instant>,
}

impl KafkaSink {
    pub fn new(
        connector: String,
        settings: KafkaSettings,
        topic: Option<String>,
        key: Arc<dyn Converter>,
        value: Arc<dyn Converter>,
    ) -> Self {
        Self {
            connector,
            topics: TopicCreator::new(settings.clone()),
            settings,
            topic,
            key,
            value,
            producer: None,
            pending: Vec::new(),
            first_queued: None,
        }
    }

    fn producer(&self) -> Result<&BatchProducer, ConnectorError> {
        self.producer
            .as_ref()
            .ok_or_else(|| ConnectorError::Config("the Kafka sink was not opened".into()))
    }

    async fn queue(&mut self, records: Vec<Outgoing>) -> Result<(), ConnectorError> {
        let producer = self.producer()?.clone();
        for o in &records {
            self.topics.ensure(&o.topic, None).await?;
        }
        for o in records {
            let pending = producer
                .queue(&o)
                .await
                .map_err(|e| connector_error(format!("queueing a record for {}", o.topic), e))?;
            self.pending.push((o, pending));
        }
        if !self.pending.is_empty() {
            self.first_queued.get_or_insert_with(Instant::now);
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        let producer = BatchProducer::new(&self.settings, &format!("headwater-{}", self.connector))
            .map_err(|e| connector_error("creating the Kafka producer", e))?;
        self.producer = Some(producer);
        Ok(())
    }

    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        // While the schema registry is unreachable the batch waits (the sink's inputs wait
        // behind it); after REGISTRY_PATIENCE the task fails, with nothing of it acknowledged.
        let mut records = records;
        let mut backoff = Backoff::new(INITIAL_DELAY, Duration::from_secs(10));
        let started = Instant::now();
        let (mut out, refused) = loop {
            records = match serialize(records, self.key.as_ref(), self.value.as_ref()) {
                Serialized::Done { out, refused } => break (out, refused),
                Serialized::Retry(records) => records,
            };
            if started.elapsed() > REGISTRY_PATIENCE {
                return Err(ConnectorError::retriable(
                    "serializing records for Kafka",
                    format!(
                        "the schema registry could not be reached for {} s",
                        REGISTRY_PATIENCE.as_secs()
                    ),
                ));
            }
            tracing::warn!(connector = %self.connector, retry_in_ms = backoff.delay().as_millis() as u64, "The schema registry is unreachable; the batch waits for it.");
            tokio::time::sleep(backoff.advance()).await;
        };
        if let Some(topic) = &self.topic {
            for o in &mut out {
                o.topic.clone_from(topic);
            }
        }
        self.queue(out).await?;
        Ok(refused)
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let mut retry = Vec::new();
        let mut last_error = None;
        for (o, pending) in std::mem::take(&mut self.pending) {
            if let Err(e) = delivered(pending).await {
                last_error = Some(e);
                retry.push(o);
            }
        }
        self.first_queued = None;
        let Some(error) = last_error else {
            return Ok(());
        };
        let count = retry.len();
        // Queued again now; the next flush waits for them.
        self.queue(retry).await?;
        Err(connector_error(
            format!("Kafka did not acknowledge {count} record(s); they were queued again"),
            error,
        ))
    }

    fn flush_due(&self) -> bool {
        self.pending.len() >= FLUSH_RECORDS
    }

    fn flush_deadline(&self) -> Option<Instant> {
        self.first_queued.map(|t| t + FLUSH_INTERVAL)
    }
}
