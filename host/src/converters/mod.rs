//! Converters: how keys and values are written as bytes (`key.converter`, `value.converter`),
//! with Kafka Connect's class names and options.
//!
//! - `org.apache.kafka.connect.json.JsonConverter`: JSON; with `schemas.enable=true` (Kafka
//!   Connect's default) an envelope `{"schema": .., "payload": ..}`, schema `null` for
//!   schemaless data, exactly as Kafka Connect writes it.
//! - `org.apache.kafka.connect.storage.StringConverter`: the value as text.
//! - `org.apache.kafka.connect.converters.ByteArrayConverter`: the bytes as they are.
//! - `io.confluent.connect.avro.AvroConverter`: Avro in the Confluent wire format, schemas from
//!   `schema.registry.url` (registered on write), or Avro binary with a `schema.json` given in
//!   the config. See [`avro`].

pub mod avro;
pub mod decimal;
pub mod registry_client;

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::config::options::{ConfigKey, KeyType, Options};
use crate::core::record::{Data, ParseError, Payload};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";

/// Class names accepted in `key.converter` / `value.converter`.
pub const CLASSES: [&str; 4] = [
    JSON_CONVERTER,
    STRING_CONVERTER,
    BYTE_ARRAY_CONVERTER,
    AVRO_CONVERTER,
];

const SCHEMAS_ENABLE: ConfigKey = ConfigKey::new(
    "schemas.enable",
    KeyType::Boolean,
    "JsonConverter: write (and expect) the `{\"schema\",\"payload\"}` envelope. Kafka Connect's \
     default is true.",
)
.with_default("true");

const DECIMAL_FORMAT: ConfigKey = ConfigKey::new(
    "decimal.format",
    KeyType::String,
    "JsonConverter: how Connect Decimals are written: BASE64 (the unscaled bytes) or NUMERIC \
     (JSON numbers, exact). Reading takes the value as it is.",
)
.with_default("BASE64")
.one_of(&["BASE64", "NUMERIC"]);

const SCHEMA_REGISTRY_URL: ConfigKey = ConfigKey::new(
    "schema.registry.url",
    KeyType::String,
    "AvroConverter: comma-separated base URLs of a Confluent Schema Registry (Headwater's own \
     REST address serves one).",
);

const SCHEMA_JSON: ConfigKey = ConfigKey::new(
    "schema.json",
    KeyType::String,
    "AvroConverter: an Avro schema. Without a registry the data is plain Avro binary in this \
     schema; with one, it is the reader schema every writer's schema resolves to.",
);

const AUTO_REGISTER: ConfigKey = ConfigKey::new(
    "auto.register.schemas",
    KeyType::Boolean,
    "AvroConverter: register the schema of written data under `<topic>-key` / `<topic>-value`.",
)
.with_default("true");

const BEARER_TOKEN: ConfigKey = ConfigKey::new(
    "bearer.auth.token",
    KeyType::Password,
    "AvroConverter: a bearer token for the schema registry (Headwater's REST token when its \
     API requires one).",
);

/// A configured converter.
#[derive(Debug, Clone)]
pub enum Converter {
    Json {
        schemas_enable: bool,
        /// `decimal.format=NUMERIC`: Decimals written as JSON numbers (BASE64 otherwise).
        decimal_numeric: bool,
    },
    String,
    ByteArray,
    Avro(Arc<avro::AvroConverter>),
}

impl PartialEq for Converter {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (
                Self::Json {
                    schemas_enable: a,
                    decimal_numeric: x,
                },
                Self::Json {
                    schemas_enable: b,
                    decimal_numeric: y,
                },
            ) => a == b && x == y,
            (Self::String, Self::String) | (Self::ByteArray, Self::ByteArray) => true,
            (Self::Avro(a), Self::Avro(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Why a key or value could not be converted from or to bytes.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Json(#[from] ParseError),
    #[error(transparent)]
    Avro(#[from] avro::AvroError),
    #[error("ByteArrayConverter: {0}")]
    Bytes(String),
}

impl ConvertError {
    /// True when the data is fine and the failure may pass (the schema registry is down).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Avro(e) if e.is_transient())
    }
}

impl Default for Converter {
    /// Kafka Connect's worker default: JsonConverter with schemas.
    fn default() -> Self {
        Self::Json {
            schemas_enable: true,
            decimal_numeric: false,
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
                decimal_numeric: scoped.choice(&DECIMAL_FORMAT).as_deref() == Some("numeric"),
            },
            STRING_CONVERTER => Self::String,
            BYTE_ARRAY_CONVERTER => Self::ByteArray,
            AVRO_CONVERTER => {
                let url = scoped.string(&SCHEMA_REGISTRY_URL);
                let schema = scoped.string(&SCHEMA_JSON);
                let auto_register = scoped.bool(&AUTO_REGISTER).unwrap_or(true);
                let token = scoped.string(&BEARER_TOKEN);
                // Confluent's converters name where the token comes from; only a static token
                // is supported, so the key is read and otherwise ignored.
                scoped.claim_prefix("bearer.auth.credentials.source");
                if url.is_none() && schema.is_none() {
                    scoped.issue(
                        SCHEMA_REGISTRY_URL.name,
                        "the AvroConverter needs schema.registry.url (Confluent wire format) or \
                         schema.json (plain Avro binary)",
                    );
                }
                match avro::AvroConverter::new(
                    url.as_deref(),
                    schema.as_deref(),
                    auto_register,
                    token,
                ) {
                    Ok(c) => Self::Avro(Arc::new(c)),
                    Err(e) => {
                        scoped.issue(SCHEMA_JSON.name, e.to_string());
                        Self::default()
                    }
                }
            }
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

    /// The converter's class name.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Json { .. } => JSON_CONVERTER,
            Self::String => STRING_CONVERTER,
            Self::ByteArray => BYTE_ARRAY_CONVERTER,
            Self::Avro(_) => AVRO_CONVERTER,
        }
    }

    /// Whether converting may block on network I/O (a schema registry lookup); async callers
    /// run such conversions where blocking is allowed.
    pub fn may_block(&self) -> bool {
        matches!(self, Self::Avro(a) if a.uses_registry())
    }

    /// Reads a key or value as consumed from Kafka.
    pub fn read(&self, bytes: Bytes) -> Result<Payload, ConvertError> {
        match self {
            Self::Avro(avro) => Ok(Payload::data(avro.deserialize(&bytes)?)),
            other => Ok(other.deserialize(bytes)?),
        }
    }

    /// The bytes this converter writes for a key (`is_key`) or value of `topic`; `None` for
    /// null (a tombstone stays a tombstone).
    pub fn serialize(
        &self,
        topic: &str,
        is_key: bool,
        payload: &mut Payload,
    ) -> Result<Option<Bytes>, ConvertError> {
        if payload.is_null() {
            return Ok(None);
        }
        let bytes = match self {
            Self::Json {
                schemas_enable: false,
                ..
            } => return Ok(payload.to_json_bytes()),
            Self::Json { .. } => {
                Bytes::from(serde_json::to_vec(&self.rendered(payload)?).map_err(ParseError::from)?)
            }
            Self::String => match &payload.get()?.value {
                Value::String(s) => Bytes::from(s.clone()),
                other => Bytes::from(other.to_string()),
            },
            Self::ByteArray => match &payload.get()?.value {
                // What ByteArrayConverter read: base64 of the original bytes.
                Value::String(s) => Bytes::from(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|e| ConvertError::Bytes(format!("expected base64 bytes: {e}")))?,
                ),
                _ => payload.to_json_bytes().unwrap_or_default(),
            },
            Self::Avro(avro) => {
                let subject = avro::subject(topic, is_key);
                Bytes::from(avro.serialize(&subject, payload.get()?)?)
            }
        };
        Ok(Some(bytes))
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
                decimal_numeric,
            } => {
                let Data { schema, value } = payload.get()?;
                Rendered::Envelope {
                    schema: schema.as_ref(),
                    payload: value,
                    numeric_decimals: *decimal_numeric,
                }
            }
            // Avro written as text (a file sink) is its JSON form.
            Self::Json {
                schemas_enable: false,
                ..
            }
            | Self::Avro(_) => Rendered::Plain(&payload.get()?.value),
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
                ..
            } => Ok(Payload::json_bytes(bytes)),
            Self::Json {
                schemas_enable: true,
                ..
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
            Self::Avro(avro) => {
                avro.deserialize(&bytes)
                    .map(Payload::data)
                    .map_err(|e| ParseError {
                        line: 0,
                        column: 0,
                        message: e.to_string(),
                    })
            }
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
        /// `decimal.format=NUMERIC`.
        numeric_decimals: bool,
    },
    Plain(&'a Value),
    Text(std::borrow::Cow<'a, str>),
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Self::Null => serializer.serialize_unit(),
            Self::Envelope {
                schema,
                payload,
                numeric_decimals,
            } => {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("schema", schema)?;
                match schema {
                    Some(schema) if *numeric_decimals => map.serialize_entry(
                        "payload",
                        &decimal::NumericDecimals {
                            schema,
                            value: payload,
                        },
                    )?,
                    _ => map.serialize_entry("payload", payload)?,
                }
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
            decimal_numeric: false,
        };
        assert_eq!(
            serde_json::to_value(with.rendered(&mut p).unwrap()).unwrap(),
            json!({"schema": null, "payload": {"a": 1}})
        );
        let without = Converter::Json {
            schemas_enable: false,
            decimal_numeric: false,
        };
        assert_eq!(
            serde_json::to_value(without.rendered(&mut p).unwrap()).unwrap(),
            json!({"a": 1})
        );
    }

    #[test]
    fn decimal_format_numeric_writes_exact_numbers() {
        use crate::config::common::VALUE_CONVERTER;
        let map = [
            ("value.converter", JSON_CONVERTER),
            ("value.converter.decimal.format", "NUMERIC"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut options = Options::new(map);
        let converter = Converter::from_options(&mut options, &VALUE_CONVERTER);
        let schema = json!({"type": "struct", "fields": [{"field": "amount", "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}]});
        let mut p = Payload::data(Data {
            schema: Some(schema.into()),
            value: json!({"amount": "ATE="}),
        });
        let bytes = converter.serialize("t", false, &mut p).unwrap().unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(text.ends_with(r#""payload":{"amount":3.05}}"#), "{text}");
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
