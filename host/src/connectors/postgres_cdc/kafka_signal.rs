//! The `kafka` signal channel, Debezium's `KafkaSignalChannel`: a signal is a record of
//! partition 0 of `signal.kafka.topic` whose key is the connector's `topic.prefix` and whose
//! value is `{"id": ..., "type": ..., "data": {...}}`. Records keyed otherwise are other
//! connectors' and are skipped.
//!
//! Unlike Debezium, which relies on its consumer group's committed offset, the offset of the
//! last signal acted on is kept in the connector's own offset (`headwater_signal_kafka_offset`),
//! committed with the records the signal produced: a restart reads from the next one, and a
//! signal whose effects were not yet committed is read again rather than lost. Without it (a
//! new connector) reading starts from the group's offset, or the topic's beginning.

use rdkafka::Offset;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use serde_json::Value;

use crate::api::connector::Signal;
use crate::api::error::ConnectorError;
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::kafka::KafkaSettings;
use crate::kafka::client::connector_error;

/// Where the offset of the last signal read from Kafka is kept in the connector's offset.
pub const OFFSET_KEY: &str = "headwater_signal_kafka_offset";

pub const TOPIC: ConfigKey = ConfigKey::new(
    "signal.kafka.topic",
    KeyType::String,
    "With the `kafka` signal channel: the topic of the signals (partition 0 is read). A record \
     is a signal for this connector when its key is the connector's `topic.prefix`; its value \
     is `{\"id\", \"type\", \"data\"}`. Default: `<topic.prefix>-signal`.",
);
pub const BOOTSTRAP_SERVERS: ConfigKey = ConfigKey::new(
    "signal.kafka.bootstrap.servers",
    KeyType::String,
    "With the `kafka` signal channel: the cluster of the signal topic. Default: the worker's \
     `[kafka] bootstrap_servers`.",
);
pub const GROUP_ID: ConfigKey = ConfigKey::new(
    "signal.kafka.groupId",
    KeyType::String,
    "With the `kafka` signal channel: the consumer group whose offset a new connector starts \
     from (it commits there too, so tools show the channel's lag).",
)
.with_default("kafka-signal");
pub const POLL_TIMEOUT: ConfigKey = ConfigKey::new(
    "signal.kafka.poll.timeout.ms",
    KeyType::Int,
    "Accepted for Debezium's configs; signals are read as they arrive.",
)
.with_default("0");
/// Consumer properties for the signal topic, as `signal.consumer.<librdkafka property>`.
const CONSUMER_PREFIX: &str = "signal.consumer.";

/// The `kafka` channel's settings.
#[derive(Debug, Clone)]
pub struct KafkaSignalConfig {
    pub topic: String,
    pub group: String,
    pub settings: KafkaSettings,
}

impl KafkaSignalConfig {
    /// Reads the channel's keys; `worker` is the worker's `[kafka]`, used where they are
    /// silent. Issues go into `options`.
    pub fn from_options(
        options: &mut Options,
        prefix: &str,
        worker: Option<&KafkaSettings>,
    ) -> Option<Self> {
        let topic = options
            .string(&TOPIC)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| format!("{prefix}-signal"));
        let group = options
            .string(&GROUP_ID)
            .unwrap_or_else(|| "kafka-signal".into());
        options.u64(&POLL_TIMEOUT);
        let mut settings = worker.cloned().unwrap_or_default();
        // The worker's consumer overrides are for its sinks' consumers, not this one.
        settings.consumer.clear();
        if let Some(servers) = options.string(&BOOTSTRAP_SERVERS) {
            settings.bootstrap_servers = servers;
        }
        settings
            .consumer
            .extend(options.take_under(CONSUMER_PREFIX));
        if settings.bootstrap_servers.trim().is_empty() {
            options.issue(
                BOOTSTRAP_SERVERS.name,
                "the kafka signal channel needs a cluster: set signal.kafka.bootstrap.servers, \
                 or [kafka] bootstrap_servers in the worker config",
            );
            return None;
        }
        Some(Self {
            topic,
            group,
            settings,
        })
    }
}

/// Reads signals from the topic.
pub struct KafkaSignals {
    consumer: StreamConsumer,
    /// Records keyed with this are ours.
    prefix: String,
    topic: String,
    /// The last read failure reported, not repeated while it lasts.
    reported: Option<String>,
}

/// A signal and its offset in the topic.
pub struct KafkaSignal {
    pub signal: Signal,
    pub offset: i64,
}

impl KafkaSignals {
    /// Starts reading after `last` (the offset of the last signal acted on), or from the
    /// group's offset.
    pub fn start(
        config: &KafkaSignalConfig,
        connector: &str,
        prefix: &str,
        last: Option<i64>,
    ) -> Result<Self, ConnectorError> {
        let mut client = config
            .settings
            .consumer_config(&config.group, &format!("headwater-{connector}-signals"));
        client
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "true");
        for (key, value) in &config.settings.consumer {
            client.set(key, value);
        }
        let consumer: StreamConsumer = client
            .create()
            .map_err(|e| connector_error("creating the kafka signal channel's consumer", e))?;
        let mut partitions = TopicPartitionList::new();
        let from = last.map_or(Offset::Stored, |last| Offset::Offset(last + 1));
        partitions
            .add_partition_offset(&config.topic, 0, from)
            .map_err(|e| connector_error("assigning the signal topic", e))?;
        consumer
            .assign(&partitions)
            .map_err(|e| connector_error("assigning the signal topic", e))?;
        tracing::info!(connector = %connector, topic = %config.topic, from = ?from, "Reading signals from Kafka.");
        Ok(Self {
            consumer,
            prefix: prefix.to_owned(),
            topic: config.topic.clone(),
            reported: None,
        })
    }

    /// The next signal for this connector. Records of other connectors and values that are
    /// not signals are skipped (logged); read failures are logged once while they last (a
    /// missing topic, a broker down) and retried by the consumer.
    pub async fn next(&mut self) -> KafkaSignal {
        loop {
            let message = match self.consumer.recv().await {
                Ok(message) => {
                    self.reported = None;
                    message
                }
                Err(e) => {
                    let text = e.to_string();
                    if self.reported.as_ref() != Some(&text) {
                        tracing::warn!(topic = %self.topic, error = %text, "Reading the signal topic failed; retrying.");
                        self.reported = Some(text);
                    }
                    // The consumer reports a lasting failure at each retry: do not spin.
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                    continue;
                }
            };
            let offset = message.offset();
            let key = message.key().map(String::from_utf8_lossy);
            if key.as_deref() != Some(self.prefix.as_str()) {
                tracing::info!(topic = %self.topic, offset, key = ?key, prefix = %self.prefix, "Signal skipped: its key is not this connector's topic.prefix.");
                continue;
            }
            match parse(message.payload()) {
                Ok(signal) => return KafkaSignal { signal, offset },
                Err(reason) => {
                    tracing::warn!(topic = %self.topic, offset, %reason, "Signal skipped.");
                }
            }
        }
    }
}

/// Why a record of the signal topic is not a signal.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error("the record has no value")]
    NoValue,
    #[error("the value is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the value has no {0:?} string")]
    Missing(&'static str),
    #[error("\"data\" must be an object, got {0}")]
    Data(Value),
}

/// A record's value as a signal: `{"id", "type", "data"}`, `data` an object (or absent).
fn parse(value: Option<&[u8]>) -> Result<Signal, RecordError> {
    let value = value
        .filter(|v| !v.is_empty())
        .ok_or(RecordError::NoValue)?;
    let json: Value = serde_json::from_slice(value).map_err(RecordError::NotJson)?;
    let field = |name: &'static str| {
        json.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(RecordError::Missing(name))
    };
    let kind = field("type")?;
    let id = field("id")?;
    let data = match json.get("data") {
        None | Some(Value::Null) => None,
        Some(data @ Value::Object(_)) => Some(data.to_string()),
        // Debezium's own producers often send data as JSON text.
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => return Err(RecordError::Data(other.clone())),
    };
    Ok(Signal { id, kind, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_values_are_read_as_debezium_writes_them() {
        let s = parse(Some(
            br#"{"id":"d1","type":"execute-snapshot","data":{"data-collections":["public.a"]}}"#,
        ))
        .expect("a signal");
        assert_eq!((s.id.as_str(), s.kind.as_str()), ("d1", "execute-snapshot"));
        assert_eq!(
            s.data.as_deref(),
            Some(r#"{"data-collections":["public.a"]}"#)
        );
        let s = parse(Some(br#"{"id":"d2","type":"pause-snapshot"}"#)).expect("no data");
        assert_eq!(s.data, None);
        let s = parse(Some(
            br#"{"id":"d3","type":"log","data":"{\"message\":\"hi\"}"}"#,
        ))
        .expect("data as text");
        assert_eq!(s.data.as_deref(), Some(r#"{"message":"hi"}"#));
    }

    #[test]
    fn values_that_are_not_signals_say_why() {
        assert!(parse(None).unwrap_err().to_string().contains("no value"));
        assert!(
            parse(Some(b"{"))
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
        assert!(
            parse(Some(br#"{"id":"x"}"#))
                .unwrap_err()
                .to_string()
                .contains("\"type\"")
        );
        assert!(
            parse(Some(br#"{"type":"log"}"#))
                .unwrap_err()
                .to_string()
                .contains("\"id\"")
        );
        assert!(
            parse(Some(br#"{"id":"x","type":"log","data":[1]}"#))
                .unwrap_err()
                .to_string()
                .contains("object")
        );
    }
}
