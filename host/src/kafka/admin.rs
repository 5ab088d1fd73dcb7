//! Creating the topics Headwater writes to (Kafka bus topics, dead-letter topics, KafkaSink
//! topics) when the cluster does not have them: brokers may not create topics on produce.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use super::client::{KafkaSettings, connector_error};

/// How long topic creation may take before writing goes ahead without it.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
use crate::api::error::ConnectorError;

/// Creates topics once per process, with the settings' partitions and replication factor.
#[derive(Debug)]
pub struct TopicCreator {
    settings: KafkaSettings,
    known: Mutex<HashSet<String>>,
}

impl TopicCreator {
    pub fn new(settings: KafkaSettings) -> Self {
        Self {
            settings,
            known: Mutex::new(HashSet::new()),
        }
    }

    fn is_known(&self, topic: &str) -> bool {
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(topic)
    }

    /// Creates `topic` unless it exists. `replication` overrides the default factor.
    pub async fn ensure(
        &self,
        topic: &str,
        replication: Option<i32>,
    ) -> Result<(), ConnectorError> {
        let partitions = self.settings.topic_partitions;
        self.create(topic, partitions, replication, &[]).await
    }

    /// Creates `topic` compacted (a changelog: the newest value of each key is kept) with
    /// `partitions`, unless it exists.
    pub async fn ensure_compacted(
        &self,
        topic: &str,
        partitions: i32,
    ) -> Result<(), ConnectorError> {
        self.create(topic, partitions, None, &[("cleanup.policy", "compact")])
            .await
    }

    async fn create(
        &self,
        topic: &str,
        partitions: i32,
        replication: Option<i32>,
        configs: &[(&str, &str)],
    ) -> Result<(), ConnectorError> {
        if self.is_known(topic) {
            return Ok(());
        }
        let replication = replication.unwrap_or(self.settings.topic_replication);
        let admin: AdminClient<DefaultClientContext> = self
            .settings
            .producer_config("headwater-admin")
            .create()
            .map_err(|e| connector_error("creating a Kafka admin client", e))?;
        let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        for (key, value) in configs {
            new = new.set(key, value);
        }
        let options = AdminOptions::new()
            .operation_timeout(Some(CREATE_TIMEOUT))
            .request_timeout(Some(CREATE_TIMEOUT));
        let created =
            tokio::time::timeout(CREATE_TIMEOUT * 2, admin.create_topics([&new], &options)).await;
        let failure = match created {
            Err(_) => Some("no answer".to_owned()),
            Ok(Err(e)) => Some(e.to_string()),
            Ok(Ok(results)) => results.into_iter().find_map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => None,
                Err((_, code)) => Some(KafkaError::AdminOp(code).to_string()),
            }),
        };
        if let Some(reason) = failure {
            // Some brokers create topics on first use, or refuse admin requests; producing
            // will tell whether the topic is really missing.
            tracing::warn!(
                topic,
                partitions,
                replication,
                reason = %reason,
                "Could not create the Kafka topic; writing to it anyway."
            );
        }
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_owned());
        Ok(())
    }
}
