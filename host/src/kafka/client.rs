//! Client settings: the worker's bootstrap servers plus a connector's `producer.override.*` /
//! `consumer.override.*` keys, and how librdkafka errors map onto the retry policy.

use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::api::error::ConnectorError;
pub use crate::api::kafka::KafkaSettings;

impl KafkaSettings {
    /// A producer that never loses or duplicates what it acknowledged: idempotent, acks=all,
    /// compressed (Kafka Connect's own defaults for its producers, plus lz4).
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("log_level", "4");
        for (key, value) in &self.producer {
            config.set(key, value);
        }
        config
    }

    /// A consumer of group `group` that commits only what the caller asks it to commit, and
    /// starts from the earliest offset when the group has none (Kafka Connect's sink default).
    pub fn consumer_config(&self, group: &str, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", group)
            .set("client.id", client_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            // Subscribed topics that do not exist yet (a local source creates them on the
            // Kafka bus) are noticed within seconds, not librdkafka's default 5 minutes.
            .set("topic.metadata.refresh.interval.ms", "5000")
            // librdkafka prefetches 100,000 records per partition by default: ~95 MiB of a
            // 4-partition topic of small JSON records sat in its queues. A tenth of that keeps
            // fetches large and the memory of a Java consumer's fetch (≤ 50 MiB).
            .set("queued.min.messages", "10000")
            // A broker answers a fetch as soon as `fetch.min.bytes` (1) is there, so under load
            // this wait changes nothing, and on a quiet topic it costs 10 fetch requests a
            // second instead of 2. But tansu 0.6 (the broker of the tests and demos) sleeps
            // about half the wait before every answer: at librdkafka's 500 ms, one fetch per
            // 250 ms capped a consumer at ~170,000 small records/s; at 100 ms, ~200,000.
            .set("fetch.wait.max.ms", "100")
            .set("log_level", "4");
        for (key, value) in &self.consumer {
            config.set(key, value);
        }
        config
    }

    /// [`Self::consumer_config`] for the consumer of a sink's task `task` that joins `group`
    /// (subscribes): with this host's static membership id, unless the connector sets
    /// `group.instance.id` itself.
    pub fn group_consumer_config(&self, group: &str, client_id: &str, task: usize) -> ClientConfig {
        let mut config = self.consumer_config(group, client_id);
        if let Some(id) = &self.group_instance_id
            && config.get("group.instance.id").is_none()
        {
            // Unique per group on this host: a host may run several consumers, one per group.
            config.set("group.instance.id", format!("{id}-{group}"));
        }
        // And per task: two members with one static id fence each other out of the group.
        if task > 0
            && let Some(id) = config.get("group.instance.id").map(str::to_owned)
        {
            config.set("group.instance.id", format!("{id}-{task}"));
        }
        config
    }
}

/// Whether `error` says a partition was read to its end (asked for with
/// `enable.partition.eof`): a consumed message carries it as `PartitionEOF`, and the client
/// context's error callback receives it as a global error with the same code.
pub fn is_partition_eof(error: &KafkaError) -> bool {
    matches!(error, KafkaError::PartitionEOF(_))
        || error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF)
}

/// Whether a Kafka failure may pass by itself (a broker down, a timeout, a leader election).
pub fn is_retriable(error: &KafkaError) -> bool {
    use RDKafkaErrorCode as C;
    let code = match error {
        KafkaError::MessageProduction(c)
        | KafkaError::MetadataFetch(c)
        | KafkaError::ConsumerCommit(c)
        | KafkaError::MessageConsumption(c)
        | KafkaError::Flush(c)
        | KafkaError::Global(c) => *c,
        KafkaError::ClientCreation(_)
        | KafkaError::ClientConfig(..)
        | KafkaError::Subscription(_)
        | KafkaError::MessageConsumptionFatal(_)
        | KafkaError::Nul(_) => return false,
        _ => return true,
    };
    !matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::InvalidConfig
            | C::UnsupportedVersion
            | C::InvalidTopic
            | C::InvalidArgument
            | C::Fatal
    )
}

/// A librdkafka failure as a connector error the retry loop understands.
pub fn connector_error(context: impl Into<String>, error: KafkaError) -> ConnectorError {
    if is_retriable(&error) {
        ConnectorError::retriable(context, error)
    } else {
        ConnectorError::fatal(context, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_consumers_join_with_the_hosts_static_id_unless_the_connector_sets_one() {
        let mut settings = KafkaSettings::new("h:9092");
        let plain = settings.group_consumer_config("connect-a", "c", 0);
        assert_eq!(plain.get("group.instance.id"), None, "dynamic by default");
        settings.group_instance_id = Some("host-1".into());
        let joined = settings.group_consumer_config("connect-a", "c", 0);
        assert_eq!(joined.get("group.instance.id"), Some("host-1-connect-a"));
        // A sink's second task is a member of its own.
        let second = settings.group_consumer_config("connect-a", "c", 1);
        assert_eq!(second.get("group.instance.id"), Some("host-1-connect-a-1"));
        let assigned = settings.consumer_config("connect-a", "c");
        assert_eq!(
            assigned.get("group.instance.id"),
            None,
            "not a group member"
        );
        settings
            .consumer
            .insert("group.instance.id".into(), "mine".into());
        let overridden = settings.group_consumer_config("connect-a", "c", 0);
        assert_eq!(overridden.get("group.instance.id"), Some("mine"));
        let second = settings.group_consumer_config("connect-a", "c", 1);
        assert_eq!(second.get("group.instance.id"), Some("mine-1"));
    }

    #[test]
    fn a_partition_end_is_recognised_in_both_forms_librdkafka_gives_it() {
        // As a consumed message's error, and as the client context's global error (which the
        // first form's error code does not match: rdkafka gives it none).
        assert!(is_partition_eof(&KafkaError::PartitionEOF(3)));
        assert!(is_partition_eof(&KafkaError::Global(
            RDKafkaErrorCode::PartitionEOF
        )));
        assert!(!is_partition_eof(&KafkaError::Global(
            RDKafkaErrorCode::AllBrokersDown
        )));
    }
}
