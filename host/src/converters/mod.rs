//! Converters: how keys and values are written as bytes (`key.converter`, `value.converter`),
//! with Kafka Connect's class names and options.
//!
//! - `org.apache.kafka.connect.json.JsonConverter`: JSON; with `schemas.enable=true` (Kafka
//!   Connect's default) an envelope `{"schema": .., "payload": ..}`, schema `null` for
//!   schemaless data, exactly as Kafka Connect writes it.
//! - `org.apache.kafka.connect.storage.StringConverter`: the value as text.
//! - `org.apache.kafka.connect.converters.ByteArrayConverter`: the bytes as they are.

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::config::options::{ConfigKey, KeyType, Options};
use crate::core::record::{Data, ParseError, Payload};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// Class names accepted in `key.converter` / `value.converter`.
pub const CLASSES: [&str; 3] = [JSON_CONVERTER, STRING_CONVERTER, BYTE_ARRAY_CONVERTER];

const SCHEMAS_ENABLE: ConfigKey = ConfigKey::new(
    "schemas.enable",
    KeyType::Boolean,
    "JsonConverter: write (and expect) the `{\"schema\",\"payload\"}` envelope. Kafka Connect's \
     default is true.",
)
.with_default("true");

/// A configured converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converter {
    Json { schemas_enable: bool },
    String,
    ByteArray,
}

impl Default for Converter {
    /// Kafka Connect's worker default: JsonConverter with schemas.
    fn default() -> Self {
        Self::Json {
            schemas_enable: true,
        }
    }
}

impl Converter {
    /// Reads `<prefix>` (the class) and `<prefix>.*` (its options), e.g. `value.converter`.
    pub fn from_options(options: &mut Options, class_key: &ConfigKey) -> Self {
        let Some(class) = options.string(class_key) else {
            return Self::default();
        };
        let prefix = format!("{}.", class_key.name);
        let mut scoped = options.scoped(&prefix);
        options.claim_prefix(&prefix);
        let converter = match class.trim() {
            JSON_CONVERTER => Self::Json {
                schemas_enable: scoped.bool(&SCHEMAS_ENABLE).unwrap_or(true),
            },
            STRING_CONVERTER => Self::String,
            BYTE_ARRAY_CONVERTER => Self::ByteArray,
            other => {
                options.issue(
                    class_key.name,
                    format!(
                        "unknown converter class {other:?}; known classes: {}",
                        CLASSES.join(", ")
                    ),
                );
                Self::default()
            }
        };
        for leftover in scoped.leftovers() {
            tracing::warn!(key = %leftover, "Unknown converter property; it is ignored.");
        }
        options.absorb(scoped);
        converter
    }

    /// The payload as this converter writes it (the envelope or plain JSON for JsonConverter,
    /// a string for StringConverter, base64 for ByteArrayConverter), as a view borrowed from
    /// the record that serializes without copying: large schemas are written as they are.
    pub fn rendered<'a>(&self, payload: &'a mut Payload) -> Result<Rendered<'a>, ParseError> {
        // A tombstone stays null whatever the converter, as Kafka Connect's JsonConverter
        // writes it (no `{"schema": null, "payload": null}` envelope).
        if payload.is_null() {
            return Ok(Rendered::Null);
        }
        Ok(match self {
            Self::Json {
                schemas_enable: true,
            } => {
                let Data { schema, value } = payload.get()?;
                Rendered::Envelope {
                    schema: schema.as_ref(),
                    payload: value,
                }
            }
            Self::Json {
                schemas_enable: false,
            } => Rendered::Plain(&payload.get()?.value),
            Self::String => match &payload.get()?.value {
                Value::String(s) => Rendered::Text(std::borrow::Cow::Borrowed(s)),
                other => Rendered::Text(std::borrow::Cow::Owned(other.to_string())),
            },
            Self::ByteArray => {
                let bytes = payload.to_json_bytes().unwrap_or_default();
                Rendered::Text(std::borrow::Cow::Owned(
                    base64::engine::general_purpose::STANDARD.encode(bytes),
                ))
            }
        })
    }

    /// Reads bytes written by this converter.
    pub fn deserialize(&self, bytes: Bytes) -> Result<Payload, ParseError> {
        match self {
            Self::Json {
                schemas_enable: false,
            } => Ok(Payload::json_bytes(bytes)),
            Self::Json {
                schemas_enable: true,
            } => {
                let value: Value = serde_json::from_slice(&bytes)?;
                match Data::from_json(value.clone()) {
                    d if d.schema.is_some() || is_envelope(&value) => Ok(Payload::data(d)),
                    _ => Err(ParseError {
                        line: 1,
                        column: 1,
                        message: "JsonConverter with schemas.enable requires \"schema\" and \
                                  \"payload\" fields and may not contain additional fields. If \
                                  you are trying to deserialize plain JSON data, set \
                                  schemas.enable=false in your converter configuration."
                            .into(),
                    }),
                }
            }
            Self::String => Ok(Payload::value(Value::String(
                String::from_utf8_lossy(&bytes).into_owned(),
            ))),
            Self::ByteArray => Ok(Payload::value(Value::String(
                base64::engine::general_purpose::STANDARD.encode(&bytes),
            ))),
        }
    }
}

/// A payload as a converter writes it, borrowed from the record.
#[derive(Debug)]
pub enum Rendered<'a> {
    Null,
    /// JsonConverter with schemas: `{"schema": .., "payload": ..}`.
    Envelope {
        schema: Option<&'a crate::core::record::Schema>,
        payload: &'a Value,
    },
    Plain(&'a Value),
    Text(std::borrow::Cow<'a, str>),
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Envelope { schema, payload } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("schema", schema)?;
                map.serialize_entry("payload", payload)?;
                map.end()
            }
            Self::Plain(value) => value.serialize(serializer),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
}

fn is_envelope(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.len() == 2 && m.contains_key("schema") && m.contains_key("payload"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_converter_writes_kafka_connect_envelopes() {
        let mut p = Payload::value(json!({"a": 1}));
        let with = Converter::Json {
            schemas_enable: true,
        };
        assert_eq!(
            serde_json::to_value(with.rendered(&mut p).unwrap()).unwrap(),
            json!({"schema": null, "payload": {"a": 1}})
        );
        let without = Converter::Json {
            schemas_enable: false,
        };
        assert_eq!(
            serde_json::to_value(without.rendered(&mut p).unwrap()).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn schemas_enable_rejects_plain_json_like_kafka_connect() {
        let c = Converter::default();
        let err = c.deserialize(Bytes::from_static(b"{\"a\":1}")).unwrap_err();
        assert!(err.message.contains("schemas.enable=false"));
        let ok = c
            .deserialize(Bytes::from_static(
                br#"{"schema":{"type":"int32"},"payload":3}"#,
            ))
            .unwrap();
        assert_eq!(ok.parsed().unwrap().value, json!(3));
    }
}
