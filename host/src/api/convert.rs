//! What a converter is (`key.converter`, `value.converter`): the bytes a key or value is read
//! from and written as. The built-in converters (JSON, String, ByteArray, Avro) are in
//! `crate::converters`; connectors that serialize records themselves (a file or Kafka sink) get
//! theirs as a [`Converter`] in their build context.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::Value;

use crate::api::logical::NumericDecimals;
use crate::api::record::{ParseError, Payload, Schema};

/// A configured key or value converter.
pub trait Converter: std::fmt::Debug + Send + Sync {
    /// The converter's class name, as configured (Kafka Connect's).
    fn class(&self) -> &'static str;

    /// Whether converting may block on network I/O (a schema registry lookup); async callers
    /// run such conversions where blocking is allowed.
    fn may_block(&self) -> bool {
        false
    }

    /// Reads a key or value as consumed from Kafka.
    fn read(&self, bytes: Bytes) -> Result<Payload, ConvertError>;

    /// The bytes this converter writes for a key (`is_key`) or value of `topic`; `None` for
    /// null (a tombstone stays a tombstone).
    fn serialize(
        &self,
        topic: &str,
        is_key: bool,
        payload: &mut Payload,
    ) -> Result<Option<Bytes>, ConvertError>;

    /// The payload as this converter writes it as text, borrowed from the record, to be
    /// embedded in a JSON document (a file sink's line).
    fn rendered<'a>(&self, payload: &'a mut Payload) -> Result<Rendered<'a>, ParseError>;
}

/// Why a key or value could not be converted from or to bytes.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The data is not what the converter reads (invalid JSON, a missing envelope).
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A schema-based format failed: the data does not match its schema, or the schema could
    /// not be had. `transient` when the data may be fine and the schema registry is down.
    #[error("{source}")]
    Format {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
        transient: bool,
    },
    /// ByteArrayConverter writes what it read: base64 text of the original bytes.
    #[error("ByteArrayConverter: expected base64 bytes: {0}")]
    Base64(#[from] base64::DecodeError),
}

impl ConvertError {
    /// True when the data is fine and the failure may pass (the schema registry is down).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Format {
                transient: true,
                ..
            }
        )
    }
}

/// A payload as a converter writes it, borrowed from the record.
#[derive(Debug)]
pub enum Rendered<'a> {
    Null,
    /// JsonConverter with schemas: `{"schema": .., "payload": ..}`.
    Envelope {
        schema: Option<&'a Schema>,
        payload: &'a Value,
        /// `decimal.format=NUMERIC`.
        numeric_decimals: bool,
    },
    /// JsonConverter with schemas, of a value its source wrote as bytes beside its schema (see
    /// [`Payload::json_with_schema`]): the bytes go out as they are.
    RawEnvelope {
        schema: Schema,
        payload: Box<serde_json::value::RawValue>,
    },
    Plain(&'a Value),
    Text(Cow<'a, str>),
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
                        &NumericDecimals {
                            schema,
                            value: payload,
                        },
                    )?,
                    _ => map.serialize_entry("payload", payload)?,
                }
                map.end()
            }
            Self::RawEnvelope { schema, payload } => {
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
