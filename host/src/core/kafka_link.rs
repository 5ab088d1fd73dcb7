//! How this process reaches Kafka (the worker's `[kafka]` and `[bus]`): the settings every
//! Kafka client starts from, the producer the tasks share, and topic creation.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use super::error::ConnectorError;
use crate::kafka::KafkaSettings;
use crate::kafka::client::connector_error;
use crate::kafka::producer::BatchProducer;

/// The worker's Kafka connection.
pub struct KafkaLink {
    pub settings: KafkaSettings,
    /// `bus.kind = "kafka"`: sources produce to Kafka and every sink consumes from it. Otherwise
    /// (the embedded bus) sinks read from Kafka only the topics Kafka has.
    pub bus: bool,
    /// Partitions of the topics Headwater creates (Kafka Connect's
    /// `topic.creation.default.partitions`).
    pub topic_partitions: i32,
    /// Their replication factor (`topic.creation.default.replication.factor`).
    pub topic_replication: i32,
    producer: OnceLock<BatchProducer>,
    created: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLink")
            .field("bootstrap_servers", &self.settings.bootstrap_servers)
            .field("bus", &self.bus)
            .finish()
    }
}

impl KafkaLink {
    pub fn new(
        settings: KafkaSettings,
        bus: bool,
        topic_partitions: i32,
        topic_replication: i32,
    ) -> Self {
        Self {
            settings,
            bus,
            topic_partitions,
            topic_replication,
            producer: OnceLock::new(),
            created: Mutex::new(HashSet::new()),
        }
    }

    /// The process's producer, created on first use.
    pub fn producer(&self) -> Result<BatchProducer, ConnectorError> {
        if let Some(p) = self.producer.get() {
            return Ok(p.clone());
        }
        let producer = BatchProducer::new(&self.settings, "headwater")
            .map_err(|e| connector_error("creating the Kafka producer", e))?;
        Ok(self.producer.get_or_init(|| producer).clone())
    }

    /// Creates `topic` unless it exists (once per process and topic).
    pub async fn ensure_topic(&self, topic: &str, replication: i32) -> Result<(), ConnectorError> {
        if self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(topic)
        {
            return Ok(());
        }
        let admin: AdminClient<DefaultClientContext> = self
            .settings
            .producer_config("headwater-admin")
            .create()
            .map_err(|e| connector_error("creating a Kafka admin client", e))?;
        let new = NewTopic::new(
            topic,
            self.topic_partitions,
            TopicReplication::Fixed(replication),
        );
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics([&new], &options)
            .await
            .map_err(|e| connector_error(format!("creating Kafka topic {topic}"), e))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    let error = rdkafka::error::KafkaError::AdminOp(code);
                    return Err(connector_error(
                        format!("creating Kafka topic {name} (replication factor {replication})"),
                        error,
                    ));
                }
            }
        }
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned());
        Ok(())
    }
}
