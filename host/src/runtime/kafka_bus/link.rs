//! How this process reaches Kafka (the worker's `[kafka]` and `[bus]`): the settings every
//! Kafka client starts from, the producer the tasks share, and topic creation.

use std::sync::OnceLock;

use crate::api::error::ConnectorError;
use crate::kafka::KafkaSettings;
use crate::kafka::admin::TopicCreator;
use crate::kafka::client::connector_error;
use crate::kafka::producer::BatchProducer;

/// The worker's Kafka connection.
pub struct KafkaLink {
    pub settings: KafkaSettings,
    /// `bus.kind = "kafka"`: sources produce to Kafka and every sink consumes from it. Otherwise
    /// (the embedded bus) sinks read from Kafka only the topics Kafka has.
    pub bus: bool,
    pub topics: TopicCreator,
    producer: OnceLock<BatchProducer>,
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
    pub fn new(settings: KafkaSettings, bus: bool) -> Self {
        Self {
            topics: TopicCreator::new(settings.clone()),
            settings,
            bus,
            producer: OnceLock::new(),
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
}
