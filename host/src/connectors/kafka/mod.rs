//! `headwater.kafka.KafkaSink`: writes records to Kafka topics (computed features, routed
//! topics), keyed and with their headers, serialized by the connector's key and value
//! converters. Records are acknowledged once Kafka acknowledged them (acks=all, idempotent).
//!
//! Reading Kafka needs no connector: a sink whose topics Kafka has consumes them itself (see
//! `crate::runtime::kafka_bus::intake`).

mod sink;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::kafka::KafkaSettings;

pub use sink::KafkaSink;

const BOOTSTRAP_SERVERS: ConfigKey = ConfigKey::new(
    "bootstrap.servers",
    KeyType::String,
    "KafkaSink: the cluster to write to, `host:port[,host:port]`. Default: the worker's \
     `[kafka] bootstrap_servers`.",
);

const TOPIC: ConfigKey = ConfigKey::new(
    "topic",
    KeyType::String,
    "KafkaSink: the topic every record is written to. Default: each record's own topic (route \
     with RegexRouter).",
);

const KEYS: &[ConfigKey] = &[BOOTSTRAP_SERVERS, TOPIC];

/// `headwater.kafka.KafkaSink`.
#[derive(Debug)]
pub struct KafkaSinkPlugin;

impl ConnectorPlugin for KafkaSinkPlugin {
    fn class(&self) -> &'static str {
        "headwater.kafka.KafkaSink"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn keys(&self) -> &'static [ConfigKey] {
        KEYS
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let explicit = options.string(&BOOTSTRAP_SERVERS);
        let topic = options
            .string(&TOPIC)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let settings = match (explicit, &ctx.kafka) {
            (Some(servers), worker) => {
                let mut s = worker.clone().unwrap_or_default();
                s.bootstrap_servers = servers;
                s
            }
            (None, Some(worker)) => worker.clone(),
            (None, None) => {
                options.issue(
                    BOOTSTRAP_SERVERS.name,
                    "no Kafka to write to: set bootstrap.servers, or [kafka] bootstrap_servers \
                     in the worker config",
                );
                KafkaSettings::default()
            }
        };
        Some(Task::Sink(Box::new(KafkaSink::new(
            ctx.connector.clone(),
            settings,
            topic,
            ctx.key_converter.clone(),
            ctx.value_converter.clone(),
        ))))
    }
    fn runs_in_parallel(&self) -> bool {
        true
    }
}
