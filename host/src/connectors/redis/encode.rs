//! A record as a Redis operation: an upsert of an entity's fields, or a delete.

use serde_json::{Map, Value};

use super::config::{FeastConfig, Layout, RedisSinkConfig};
use super::feast;
use super::flat_row::{FlatRow, stored_text};
use crate::api::error::{RecordError, Stage};
use crate::api::json_depth;
use crate::api::record::{Payload, Record};
use crate::api::time::timestamp_millis;

const COMPONENT: &str = "headwater.redis.RedisSink";

/// What one record does to Redis.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Upsert {
        key: String,
        /// Hash layout: fields to set (`Some`) or remove (`None`, the value was null).
        fields: Vec<(String, Option<String>)>,
        /// String layout: the value as JSON.
        json: String,
        event_ms: Option<i64>,
    },
    Delete {
        key: String,
        event_ms: Option<i64>,
    },
    /// Feast layout: set a feature view's fields of an entity hash (binary key and fields).
    FeastUpsert {
        key: Vec<u8>,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
        event_ms: i64,
    },
    /// Feast layout: remove a feature view's fields (other views share the hash).
    FeastDelete {
        key: Vec<u8>,
    },
}

fn error(message: impl std::fmt::Display) -> RecordError {
    RecordError::data(Stage::TaskPut, COMPONENT, message.to_string())
}

/// A JSON value as the text stored in Redis: strings as they are, the rest as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => json_text(other),
    }
}

/// [`text`] of a value the caller owns: its string is moved, not copied.
fn into_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        other => json_text(&other),
    }
}

/// A non-string value as JSON. Integers, most of a feature row, skip `fmt`'s machinery.
fn json_text(value: &Value) -> String {
    if let Value::Number(n) = value {
        if let Some(i) = n.as_i64() {
            return itoa::Buffer::new().format(i).to_owned();
        }
        if let Some(u) = n.as_u64() {
            return itoa::Buffer::new().format(u).to_owned();
        }
    }
    value.to_string()
}

/// Debezium's envelope: `{"op": "c|u|r|d|t", "before": .., "after": .., ...}`.
fn debezium_op(value: &Value) -> Option<&str> {
    let map = value.as_object()?;
    let op = map.get("op")?.as_str()?;
    (map.contains_key("after") && map.contains_key("before")).then_some(op)
}

/// Encodes one record; `Ok(None)` for records that change nothing (Debezium truncates).
pub fn encode(record: &mut Record, config: &RedisSinkConfig) -> Result<Option<Op>, RecordError> {
    if config.layout == Layout::Hash
        && config.feast.is_none()
        && !config.key_fields.is_empty()
        && let Some(raw) = record.value.raw()
        && key_is_json(&record.key)
        && let Some(op) = upsert_from_bytes(raw, &record.topic, config)
    {
        return Ok(Some(op));
    }
    encode_tree(record, config)
}

/// [`encode`] through the record's parsed tree: every layout and envelope.
fn encode_tree(record: &mut Record, config: &RedisSinkConfig) -> Result<Option<Op>, RecordError> {
    // Parsed straight from the bytes when untouched (no cached tree to clone); the record keeps
    // its bytes for the dead-letter queue.
    let value = match record.value.raw() {
        // Bytes beside a schema are the value itself; plain bytes may be an envelope to split.
        Some(raw) if record.value.raw_with_schema().is_some() => {
            serde_json::from_slice::<Value>(raw)
                .map_err(|e| error(format!("value is not JSON: {e}")))?
        }
        Some(raw) => serde_json::from_slice::<Value>(raw)
            .map(|v| crate::api::record::Data::from_json(v).value)
            .map_err(|e| error(format!("value is not JSON: {e}")))?,
        None if record.value.is_null() => Value::Null,
        None => record
            .value
            .get()
            .map_err(|e| error(format!("value is not JSON: {e}")))?
            .value
            .clone(),
    };
    let record_key = if record.key.is_null() {
        Value::Null
    } else {
        record
            .key
            .get()
            .map_err(|e| error(format!("key is not JSON: {e}")))?
            .value
            .clone()
    };
    let take = |mut value: Value, field: &str| {
        value
            .as_object_mut()
            .and_then(|m| m.remove(field))
            .unwrap_or(Value::Null)
    };
    let (row, delete) = match debezium_op(&value) {
        Some("c" | "u" | "r") => (take(value, "after"), false),
        Some("d") => (take(value, "before"), true),
        Some(_) => return Ok(None),
        None if value.is_null() => (Value::Null, true),
        None => (value, false),
    };
    if let Some(feast_config) = &config.feast {
        return encode_feast(record, &row, &record_key, delete, config, feast_config).map(Some);
    }
    let key = format!(
        "{}{}",
        config.key_prefix.replace("${topic}", &record.topic),
        entity_key(&row, &record_key, config)?
    );
    let event_ms = match &config.timestamp_field {
        Some(field) if !row.is_null() => {
            let found = row.get(field);
            Some(found.and_then(timestamp_millis).ok_or_else(|| {
                error(format!(
                    "timestamp.field {field:?}: expected epoch milliseconds or an ISO-8601 \
                     date-time, got {}",
                    found.map_or("nothing".to_owned(), Value::to_string)
                ))
            })?)
        }
        // A tombstone carries no event time: it deletes whatever is there.
        _ => None,
    };
    if delete {
        return Ok(Some(Op::Delete { key, event_ms }));
    }
    if !row.is_object() {
        return Err(error(format!(
            "expected a JSON object (a row) to store, got {}",
            short(&row)
        )));
    }
    let (fields, json) = match (config.layout, row) {
        (Layout::Hash, Value::Object(map)) => (
            map.into_iter()
                .map(|(k, v)| (k, (!v.is_null()).then(|| into_text(v))))
                .collect(),
            String::new(),
        ),
        (Layout::String, row) => (Vec::new(), row.to_string()),
        _ => (Vec::new(), String::new()),
    };
    Ok(Some(Op::Upsert {
        key,
        fields,
        json,
        event_ms,
    }))
}

/// A plain row stored as a hash keyed by `key.fields`, read straight from its bytes (see
/// [`FlatRow`]). `None` when the row needs the general path, which then also reports what is
/// wrong: an envelope to unwrap, a key field missing or null, an unreadable event time, or a
/// repeated field name (the parsed map keeps its last value; the pipeline sets fields before it
/// removes the null ones, so a repeat would not end as the last one said).
fn upsert_from_bytes(raw: &[u8], topic: &str, config: &RedisSinkConfig) -> Option<Op> {
    // Skipping a raw value has no depth limit; the tree path refuses what nests too deep.
    if json_depth::too_deep(raw) {
        return None;
    }
    let row = FlatRow::parse(raw)?;
    let debezium = row.has("op") && row.has("before") && row.has("after");
    let json_converter = row.has("schema") && row.has("payload");
    if debezium || json_converter || row.repeats_a_name() {
        return None;
    }
    let mut parts = Vec::with_capacity(config.key_fields.len());
    for field in &config.key_fields {
        parts.push(stored_text(row.get(field)?).ok()??);
    }
    let event_ms = match &config.timestamp_field {
        Some(field) => {
            let value = serde_json::from_str::<Value>(row.get(field)?.get()).ok()?;
            Some(timestamp_millis(&value)?)
        }
        None => None,
    };
    let fields = row
        .iter()
        .map(|(name, value)| Ok((name.to_owned(), stored_text(value)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .ok()?;
    Some(Op::Upsert {
        key: format!(
            "{}{}",
            config.key_prefix.replace("${topic}", topic),
            parts.join(&config.key_separator)
        ),
        fields,
        json: String::new(),
        event_ms,
    })
}

/// Whether the record key parses (the tree path parses it, to fall back on, and refuses a
/// record whose key is not JSON even when `key.fields` are all in the row).
fn key_is_json(key: &Payload) -> bool {
    key.raw().is_none_or(|bytes| {
        !json_depth::too_deep(bytes)
            && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    })
}

/// Feast layout: the entity's binary key from the entity columns, and the feature fields.
fn encode_feast(
    record: &Record,
    row: &Value,
    record_key: &Value,
    delete: bool,
    config: &RedisSinkConfig,
    feast_config: &FeastConfig,
) -> Result<Op, RecordError> {
    let source = if row.is_object() { row } else { record_key };
    let mut keys = Vec::with_capacity(feast_config.entities.len());
    for (name, ty) in &feast_config.entities {
        let value = source.get(name).ok_or_else(|| {
            error(format!(
                "feast.entity.columns: field {name:?} missing from {}",
                short(source)
            ))
        })?;
        keys.push((name.as_str(), value, *ty));
    }
    let key = feast::entity_key(&keys, &feast_config.project).map_err(error)?;
    if delete {
        return Ok(Op::FeastDelete { key });
    }
    let event_ms = match &config.timestamp_field {
        Some(field) => row.get(field).and_then(timestamp_millis).ok_or_else(|| {
            error(format!(
                "timestamp.field {field:?}: expected epoch milliseconds or an ISO-8601 date-time"
            ))
        })?,
        None => record
            .timestamp
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
    };
    let mut fields = Vec::with_capacity(feast_config.features.len());
    for (name, ty) in &feast_config.features {
        let value = row.get(name).unwrap_or(&Value::Null);
        let bytes =
            feast::encode_value(value, *ty).map_err(|e| error(format!("feature {name:?}: {e}")))?;
        fields.push((feast::feature_field(&feast_config.view, name), bytes));
    }
    Ok(Op::FeastUpsert {
        key,
        fields,
        event_ms,
    })
}

fn short(value: &Value) -> String {
    let mut s = value.to_string();
    if s.len() > 80 {
        s.truncate(77);
        s.push_str("...");
    }
    s
}

/// The entity key: `key.fields` of the row (or of the record key), else the record key.
fn entity_key(
    row: &Value,
    record_key: &Value,
    config: &RedisSinkConfig,
) -> Result<String, RecordError> {
    let pick = |map: &Map<String, Value>| -> Option<Vec<String>> {
        config
            .key_fields
            .iter()
            .map(|f| map.get(f).filter(|v| !v.is_null()).map(text))
            .collect()
    };
    let parts: Vec<String> = if !config.key_fields.is_empty() {
        row.as_object()
            .and_then(pick)
            .or_else(|| record_key.as_object().and_then(pick))
            .ok_or_else(|| {
                error(format!(
                    "key.fields {:?}: the record lacks one of them (row {}, key {})",
                    config.key_fields,
                    short(row),
                    short(record_key)
                ))
            })?
    } else {
        match record_key {
            Value::Null => {
                return Err(error(
                    "the record has no key: give records a key or set key.fields",
                ));
            }
            Value::Object(map) => map.values().map(text).collect(),
            other => vec![text(other)],
        }
    };
    Ok(parts.join(&config.key_separator))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use serde_json::json;

    fn config(layout: Layout, key_fields: &[&str]) -> RedisSinkConfig {
        RedisSinkConfig {
            uri: "redis://127.0.0.1".into(),
            tls_ca_file: None,
            layout,
            key_prefix: "${topic}:".into(),
            key_fields: key_fields.iter().map(|s| s.to_string()).collect(),
            key_separator: ":".into(),
            ttl: None,
            timestamp_field: None,
            feast: None,
        }
    }

    fn record(key: Value, value: Value) -> Record {
        let mut r = Record::new("users", Payload::value(value));
        r.key = Payload::value(key);
        r
    }

    #[test]
    fn rows_become_hash_fields_keyed_by_fields_or_record_key() {
        let mut r = record(
            json!(null),
            json!({"id": 7, "region": "eu", "score": 1.5, "tags": ["a"], "gone": null}),
        );
        let op = encode(&mut r, &config(Layout::Hash, &["region", "id"]))
            .unwrap()
            .unwrap();
        let Op::Upsert { key, fields, .. } = op else {
            panic!("upsert expected")
        };
        assert_eq!(key, "users:eu:7");
        assert!(fields.contains(&("tags".into(), Some("[\"a\"]".into()))));
        assert!(fields.contains(&("gone".into(), None)));
        let mut keyed = record(json!({"id": 9}), json!({"name": "x"}));
        let op = encode(&mut keyed, &config(Layout::String, &[]))
            .unwrap()
            .unwrap();
        assert_eq!(
            op,
            Op::Upsert {
                key: "users:9".into(),
                fields: vec![],
                json: "{\"name\":\"x\"}".into(),
                event_ms: None
            }
        );
    }

    /// What an op leaves in Redis: its key, event time and the hash's fields, as the sink's
    /// pipeline writes them: every field with a value set (the last one of a name wins), then
    /// the null ones removed.
    fn outcome(op: Option<Op>) -> Option<(String, Option<i64>, BTreeMap<String, String>)> {
        let Op::Upsert {
            key,
            fields,
            event_ms,
            ..
        } = op?
        else {
            panic!("upsert expected")
        };
        let mut hash = BTreeMap::new();
        let (set, removed): (Vec<_>, Vec<_>) = fields.into_iter().partition(|(_, v)| v.is_some());
        for (name, value) in set {
            hash.insert(name, value.unwrap_or_default());
        }
        for (name, _) in removed {
            hash.remove(&name);
        }
        Some((key, event_ms, hash))
    }

    #[test]
    fn rows_read_from_their_bytes_store_what_their_parsed_form_stores() {
        let mut c = config(Layout::Hash, &["region", "id"]);
        c.timestamp_field = Some("ts".into());
        let deep = format!(
            r#"{{"id": 1, "region": "eu", "ts": 5, "d": {}{}}}"#,
            "[".repeat(127),
            "]".repeat(127)
        );
        for text in [
            r#"{"id": 7, "region": "eu", "ts": 1700000000000, "score": 1.50, "n": -0}"#,
            r#"{"id": "a\"b", "region": "\u00e9u", "ts": "2024-03-05T10:00:00Z", "tags": ["x", 1]}"#,
            r#"{"id": 1, "region": "eu", "ts": 5, "gone": null, "deep": {"a": {"b": [1e3]}}}"#,
            r#"{"id": 1, "region": "eu", "ts": 5, "f": 1, "f": null, "g": null, "g": 2}"#,
            r#"{"id": 12345678901234567890, "region": true, "ts": 1.5e12}"#,
            // Each of these needs the general path: an error, or an envelope to unwrap.
            r#"{"id": null, "region": "eu", "ts": 5}"#,
            r#"{"region": "eu", "ts": 5}"#,
            r#"{"id": 1, "region": "eu", "ts": "yesterday"}"#,
            r#"{"id": 1, "region": "eu"}"#,
            r#"{"op": "c", "before": null, "after": {"id": 1, "region": "eu", "ts": 5}}"#,
            r#"{"schema": null, "payload": {"id": 1, "region": "eu", "ts": 5}}"#,
            r#"[1, 2]"#,
            // Deeper than serde_json parses into a tree, inside a field.
            deep.as_str(),
        ] {
            let bytes = || Payload::json_bytes(bytes::Bytes::copy_from_slice(text.as_bytes()));
            let mut from_bytes = Record::new("users", bytes());
            let mut parsed = Record::new("users", bytes());
            let expected = encode_tree(&mut parsed, &c).map(outcome);
            let got = encode(&mut from_bytes, &c).map(outcome);
            match (got, expected) {
                (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{text}"),
                (Err(got), Err(expected)) => assert_eq!(got.message, expected.message, "{text}"),
                (got, expected) => panic!("{text}: {got:?} against {expected:?}"),
            }
        }
        // A record key that is not JSON is refused even when the row holds the key fields.
        let row = r#"{"id": 1, "region": "eu", "ts": 5}"#;
        let mut keyed = Record::new("users", Payload::json_bytes(row.into()));
        keyed.key = Payload::json_bytes("user-1".into());
        let mut tree = keyed.clone();
        let expected = encode_tree(&mut tree, &c).unwrap_err();
        assert_eq!(
            encode(&mut keyed, &c).unwrap_err().message,
            expected.message
        );
    }

    #[test]
    fn debezium_events_and_tombstones_mirror_the_table() {
        let c = config(Layout::Hash, &[]);
        let mut update = record(
            json!({"id": 1}),
            json!({"op": "u", "before": null, "after": {"id": 1, "n": "b"}, "source": {}}),
        );
        assert!(matches!(
            encode(&mut update, &c).unwrap(),
            Some(Op::Upsert { .. })
        ));
        let mut delete = record(
            json!({"id": 1}),
            json!({"op": "d", "before": {"id": 1}, "after": null}),
        );
        assert_eq!(
            encode(&mut delete, &c).unwrap(),
            Some(Op::Delete {
                key: "users:1".into(),
                event_ms: None
            })
        );
        let mut tombstone = record(json!({"id": 1}), Value::Null);
        assert_eq!(
            encode(&mut tombstone, &c).unwrap(),
            Some(Op::Delete {
                key: "users:1".into(),
                event_ms: None
            })
        );
        let mut truncate = record(
            json!(null),
            json!({"op": "t", "before": null, "after": null}),
        );
        assert_eq!(encode(&mut truncate, &c).unwrap(), None);
        let mut keyless = record(json!(null), json!({"a": 1}));
        let err = encode(&mut keyless, &c).unwrap_err();
        assert!(err.message.contains("has no key"), "{}", err.message);
    }
}
