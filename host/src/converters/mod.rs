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
pub mod registry_client;

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::Value;

use crate::api::convert::{ConvertError, Converter, Rendered};
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, ParseError, Payload};

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

/// Each built-in converter's class and documented keys (under `key.converter.` /
/// `value.converter.`).
pub const KEYS: &[(&str, &[ConfigKey])] = &[
    (JSON_CONVERTER, &[SCHEMAS_ENABLE, DECIMAL_FORMAT]),
    (STRING_CONVERTER, &[]),
    (BYTE_ARRAY_CONVERTER, &[]),
    (
        AVRO_CONVERTER,
        &[
            SCHEMA_REGISTRY_URL,
            SCHEMA_JSON,
            AUTO_REGISTER,
            BEARER_TOKEN,
        ],
    ),
];

/// A configured converter.
#[derive(Debug, Clone)]
pub enum BuiltinConverter {
    Json {
        schemas_enable: bool,
        /// `decimal.format=NUMERIC`: Decimals written as JSON numbers (BASE64 otherwise).
        decimal_numeric: bool,
    },
    String,
    ByteArray,
    Avro(Arc<avro::AvroConverter>),
}

impl PartialEq for BuiltinConverter {
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

impl Default for BuiltinConverter {
    /// Kafka Connect's worker default: JsonConverter with schemas.
    fn default() -> Self {
        Self::Json {
            schemas_enable: true,
            decimal_numeric: false,
        }
    }
}

impl BuiltinConverter {
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

impl Converter for BuiltinConverter {
    fn class(&self) -> &'static str {
        match self {
            Self::Json { .. } => JSON_CONVERTER,
            Self::String => STRING_CONVERTER,
            Self::ByteArray => BYTE_ARRAY_CONVERTER,
            Self::Avro(_) => AVRO_CONVERTER,
        }
    }

    fn may_block(&self) -> bool {
        matches!(self, Self::Avro(a) if a.uses_registry())
    }

    fn read(&self, bytes: Bytes) -> Result<Payload, ConvertError> {
        match self {
            Self::Avro(avro) => Ok(Payload::data(avro.deserialize(&bytes)?)),
            other => Ok(other.deserialize(bytes)?),
        }
    }

    fn serialize(
        &self,
        topic: &str,
        is_key: bool,
        payload: &mut Payload,
    ) -> Result<Option<Bytes>, ConvertError> {
        if payload.is_null() {
            return Ok(None);
        }
        if let Self::Json {
            schemas_enable: true,
            decimal_numeric: false,
        } = self
            && let Some((raw, schema)) = payload.raw_with_schema()
        {
            // A value its source wrote as bytes beside its schema: the envelope around them,
            // as its tree would have been written, without parsing them.
            let schema = schema.json().get().as_bytes();
            let mut out = Vec::with_capacity(schema.len() + raw.len() + 24);
            out.extend_from_slice(br#"{"schema":"#);
            out.extend_from_slice(schema);
            out.extend_from_slice(br#","payload":"#);
            out.extend_from_slice(raw);
            out.push(b'}');
            return Ok(Some(Bytes::from(out)));
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
                Value::String(s) => {
                    Bytes::from(base64::engine::general_purpose::STANDARD.decode(s)?)
                }
                _ => payload.to_json_bytes().unwrap_or_default(),
            },
            Self::Avro(avro) => {
                let subject = avro::subject(topic, is_key);
                Bytes::from(avro.serialize(&subject, payload.get()?)?)
            }
        };
        Ok(Some(bytes))
    }

    fn rendered<'a>(&self, payload: &'a mut Payload) -> Result<Rendered<'a>, ParseError> {
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
                if !*decimal_numeric && let Some((raw, schema)) = payload.raw_with_schema() {
                    // A value its source wrote as bytes beside its schema (CDC events) is
                    // written as it is, not parsed into a tree to be written again.
                    return Ok(Rendered::RawEnvelope {
                        schema: schema.clone(),
                        payload: serde_json::from_slice(raw)?,
                    });
                }
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
        let with = BuiltinConverter::Json {
            schemas_enable: true,
            decimal_numeric: false,
        };
        assert_eq!(
            serde_json::to_value(with.rendered(&mut p).unwrap()).unwrap(),
            json!({"schema": null, "payload": {"a": 1}})
        );
        let without = BuiltinConverter::Json {
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
        use crate::runtime::prepare::VALUE_CONVERTER;
        let map = [
            ("value.converter", JSON_CONVERTER),
            ("value.converter.decimal.format", "NUMERIC"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let mut options = Options::new(map);
        let converter = BuiltinConverter::from_options(&mut options, &VALUE_CONVERTER);
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

    /// A value its source wrote as bytes beside its schema comes out of the JsonConverter as
    /// its tree would, whichever way it is written (bytes for Kafka, a file sink's line), and
    /// with decimal.format=NUMERIC through the tree.
    #[test]
    fn bytes_beside_a_schema_are_written_as_their_tree() {
        use crate::api::record::Schema;
        use crate::runtime::prepare::VALUE_CONVERTER;
        let schema = Schema::new(json!({"type": "struct", "fields": [{"field": "amount",
            "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
            "parameters": {"scale": "2"}}, {"field": "note", "type": "string"}]}));
        let value = json!({"amount": "ATE=", "note": "caf\u{e9} \"x\""});
        let raw = Bytes::from(serde_json::to_vec(&value).unwrap());
        for format in ["BASE64", "NUMERIC"] {
            let map = [
                ("value.converter", JSON_CONVERTER),
                ("value.converter.decimal.format", format),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            let converter =
                BuiltinConverter::from_options(&mut Options::new(map), &VALUE_CONVERTER);
            let mut tree = Payload::data(Data {
                schema: Some(schema.clone()),
                value: value.clone(),
            });
            let mut bytes = Payload::json_with_schema(raw.clone(), schema.clone());
            let expected = converter.serialize("t", false, &mut tree).unwrap();
            assert_eq!(
                converter.serialize("t", false, &mut bytes).unwrap(),
                expected
            );
            let line = serde_json::to_vec(&converter.rendered(&mut bytes).unwrap()).unwrap();
            assert_eq!(Some(Bytes::from(line)), expected, "{format}");
        }
    }

    #[test]
    fn schemas_enable_rejects_plain_json_like_kafka_connect() {
        let c = BuiltinConverter::default();
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
