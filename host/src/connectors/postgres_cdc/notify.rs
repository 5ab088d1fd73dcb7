//! Notifications, Debezium's (`notification.enabled.channels`): the progress of the initial
//! and incremental snapshots, to the log (`log`) and as records to a topic (`sink`), in
//! Debezium's `io.debezium.connector.common.Notification` shape.

use serde_json::{Map, Value, json};

use super::config::CdcConfig;
use super::event::now_us;
use crate::api::record::{Data, Payload, Record, Schema};

pub const INITIAL: &str = "Initial Snapshot";
pub const INCREMENTAL: &str = "Incremental Snapshot";

/// Sends notifications to the configured channels.
#[derive(Debug)]
pub struct Notifier {
    log: bool,
    topic: Option<String>,
    /// `connector_name` of every notification: the logical server name.
    server: String,
    schemas: (Schema, Schema),
}

impl Notifier {
    pub fn new(config: &CdcConfig) -> Self {
        Self {
            log: config.notify_log,
            topic: config.notify_topic.clone(),
            server: config.prefix.clone(),
            schemas: (
                Schema::new(json!({"type": "struct", "fields": [
                    {"type": "string", "optional": false, "field": "id"}],
                    "optional": false, "name": "io.debezium.connector.common.NotificationKey",
                    "version": 1})),
                Schema::new(json!({"type": "struct", "fields": [
                    {"type": "string", "optional": false, "field": "id"},
                    {"type": "string", "optional": false, "field": "type"},
                    {"type": "string", "optional": false, "field": "aggregate_type"},
                    {"type": "map", "keys": {"type": "string", "optional": false},
                     "values": {"type": "string", "optional": false}, "optional": true,
                     "field": "additional_data"},
                    {"type": "int64", "optional": false, "field": "timestamp"}],
                    "optional": false, "name": "io.debezium.connector.common.Notification",
                    "version": 1})),
            ),
        }
    }

    /// Reports `kind` (STARTED, IN_PROGRESS, ...) of `aggregate` (a snapshot); `id` is the
    /// signal's id, or a new one. Returns the record for the `sink` channel, if enabled.
    pub fn notify(
        &self,
        id: Option<&str>,
        aggregate: &str,
        kind: &str,
        data: &[(&str, String)],
    ) -> Option<Record> {
        if !self.log && self.topic.is_none() {
            return None;
        }
        let id = id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
        let mut additional = Map::with_capacity(data.len() + 1);
        for (k, v) in data {
            additional.insert((*k).to_owned(), Value::String(v.clone()));
        }
        additional.insert("connector_name".into(), Value::String(self.server.clone()));
        let ts_ms = now_us().div_euclid(1000);
        if self.log {
            let additional_data = Value::Object(additional.clone()).to_string();
            tracing::info!(
                id = %id,
                aggregate_type = aggregate,
                r#type = kind,
                additional_data = %additional_data,
                "[Notification Service] {aggregate} {kind}"
            );
        }
        let topic = self.topic.as_ref()?;
        let key = Payload::data(Data {
            schema: Some(self.schemas.0.clone()),
            value: json!({"id": id}),
        });
        let value = Payload::data(Data {
            schema: Some(self.schemas.1.clone()),
            value: json!({"id": id, "type": kind, "aggregate_type": aggregate,
                          "additional_data": additional, "timestamp": ts_ms}),
        });
        let mut record = Record::new(topic, value);
        record.key = key;
        record.timestamp = Some(ts_ms);
        Some(record)
    }
}
