//! The worker's Kafka cluster (`[kafka]` in the worker config), as connectors that talk to
//! Kafka themselves see it. Clients are built from it in `crate::kafka`.

use std::collections::BTreeMap;

/// Where the Kafka cluster is and the client properties a connector overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaSettings {
    /// `host:port[,host:port]`.
    pub bootstrap_servers: String,
    /// Partitions of the topics Headwater creates.
    pub topic_partitions: i32,
    /// Replication factor of the topics Headwater creates (dead-letter topics have their own).
    pub topic_replication: i32,
    /// `producer.override.*` keys without their prefix (librdkafka property names).
    pub producer: BTreeMap<String, String>,
    /// `consumer.override.*` keys without their prefix.
    pub consumer: BTreeMap<String, String>,
    /// This host's static membership id (`[kafka] group_instance_id`): a sink's group consumer
    /// joins as `<id>-<group>` (KIP-345), so a restart within the session timeout moves no
    /// partition.
    pub group_instance_id: Option<String>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            topic_partitions: 1,
            topic_replication: 1,
            producer: BTreeMap::new(),
            consumer: BTreeMap::new(),
            group_instance_id: None,
        }
    }
}

impl KafkaSettings {
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    /// These settings with a connector's `producer.override.*` and `consumer.override.*`
    /// (prefixes stripped) applied over the worker's.
    pub fn with_overrides(
        &self,
        producer: &BTreeMap<String, String>,
        consumer: &BTreeMap<String, String>,
    ) -> Self {
        let mut settings = self.clone();
        settings.producer.extend(producer.clone());
        settings.consumer.extend(consumer.clone());
        settings
    }
}
