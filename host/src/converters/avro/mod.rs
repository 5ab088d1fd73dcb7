//! `io.confluent.connect.avro.AvroConverter`: Avro data in the Confluent wire format (magic byte
//! 0, the schema's registry id as 4 big-endian bytes, then the Avro binary datum), with the
//! mapping between Avro and Kafka Connect data that Confluent's `AvroData` defines:
//!
//! | Avro | Connect schema | value (JSON) |
//! |---|---|---|
//! | record | struct (named) | object |
//! | `["null", T]` | T, optional | T or null |
//! | other unions | struct `io.confluent.connect.avro.Union` of optional branches | object with one branch set |
//! | enum | string | symbol |
//! | bytes, fixed | bytes | base64 |
//! | decimal | `org.apache.kafka.connect.data.Decimal` | base64 of the unscaled value, as JsonConverter writes it |
//! | date | `org.apache.kafka.connect.data.Date` | days since epoch |
//! | time-millis | `org.apache.kafka.connect.data.Time` | ms of the day |
//! | timestamp-millis | `org.apache.kafka.connect.data.Timestamp` | epoch ms |
//! | time-micros, timestamp-micros, local-timestamp-* | int64 | as written |
//! | uuid | string | text |
//!
//! Schemas come from a registry by id, or from the config (`schema.json`: plain Avro binary
//! without the wire-format header). A reader schema (`schema.json` together with a registry)
//! resolves every writer's schema to it, Avro's rules for evolution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::Schema as AvroSchema;
use bytes::Bytes;

use super::registry_client::{RegistryClient, RegistryError};
use crate::api::record::{Data, Schema};

/// The first byte of every Confluent wire-format message.
const MAGIC: u8 = 0;

pub(super) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why a value could not be read or written as Avro.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    #[error("Unknown magic byte! The data is not in the Confluent Avro wire format")]
    MagicByte,
    #[error("Error retrieving Avro schema for id {id}: {source}")]
    UnknownSchema { id: u32, source: RegistryError },
    #[error("Error registering Avro schema for subject {subject}: {source}")]
    Register {
        subject: String,
        source: RegistryError,
    },
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    #[error("Error deserializing Avro message: {0}")]
    Decode(String),
    #[error("Error serializing Avro message: {0}")]
    Encode(String),
    #[error(
        "the AvroConverter needs a Connect schema to write this value (schemaless data: use a \
         `schema.json`, or JsonConverter)"
    )]
    Schemaless,
}

impl AvroError {
    /// True when the failure is the registry being unreachable (worth retrying), not the data.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::UnknownSchema { source, .. } | Self::Register { source, .. } => {
                source.is_transient()
            }
            _ => false,
        }
    }
}

impl From<AvroError> for crate::api::convert::ConvertError {
    fn from(e: AvroError) -> Self {
        Self::Format {
            transient: e.is_transient(),
            source: Box::new(e),
        }
    }
}

/// An Avro schema with its Connect translation, computed once.
#[derive(Debug)]
struct Known {
    avro: AvroSchema,
    /// The named types its references resolve to.
    names: Names,
    connect: Schema,
}

/// A configured AvroConverter.
#[derive(Debug)]
pub struct AvroConverter {
    registry: Option<RegistryClient>,
    /// `schema.json`: the writer schema without a registry, the reader schema with one.
    configured: Option<Arc<Known>>,
    /// `auto.register.schemas`.
    auto_register: bool,
    by_id: Mutex<HashMap<u32, Arc<Known>>>,
    /// (subject, Avro schema text) → registered id.
    registered: Mutex<HashMap<(String, String), u32>>,
}

impl AvroConverter {
    /// `registry`: `schema.registry.url`; `schema_json`: a schema given in the config.
    pub fn new(
        registry: Option<&str>,
        schema_json: Option<&str>,
        auto_register: bool,
        token: Option<String>,
    ) -> Result<Self, AvroError> {
        let configured = schema_json
            .map(|text| {
                let avro = crate::schema_registry::parse_avro(text)
                    .map_err(|e| AvroError::Schema(e.to_string()))?;
                Ok::<_, AvroError>(Arc::new(known(avro)))
            })
            .transpose()?;
        Ok(Self {
            registry: registry.map(|urls| RegistryClient::new(urls, token)),
            configured,
            auto_register,
            by_id: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        })
    }

    /// Whether reading or writing may call the registry (blocking HTTP).
    pub fn uses_registry(&self) -> bool {
        self.registry.is_some()
    }

    fn writer_schema(&self, id: u32) -> Result<Arc<Known>, AvroError> {
        if let Some(k) = lock(&self.by_id).get(&id) {
            return Ok(Arc::clone(k));
        }
        let registry = self.registry.as_ref().ok_or(AvroError::MagicByte)?;
        let text = registry
            .schema_by_id(id)
            .map_err(|source| AvroError::UnknownSchema { id, source })?;
        let avro = crate::schema_registry::parse_avro(&text)
            .map_err(|e| AvroError::Schema(e.to_string()))?;
        let k = Arc::new(known(avro));
        lock(&self.by_id).insert(id, Arc::clone(&k));
        Ok(k)
    }

    /// Reads one key or value.
    pub fn deserialize(&self, bytes: &[u8]) -> Result<Data, AvroError> {
        let (writer, mut body, reader) = match &self.registry {
            Some(_) => {
                if bytes.len() < 5 || bytes[0] != MAGIC {
                    return Err(AvroError::MagicByte);
                }
                let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                (
                    self.writer_schema(id)?,
                    &bytes[5..],
                    self.configured.clone(),
                )
            }
            None => match &self.configured {
                Some(k) => (Arc::clone(k), bytes, None),
                None => {
                    return Err(AvroError::Schema(
                        "no schema.registry.url and no schema.json".into(),
                    ));
                }
            },
        };
        // apache-avro trusts the counts and nesting in the data: checked first.
        bounds::check(&writer.avro, &writer.names, body)
            .map_err(|e| AvroError::Decode(e.to_string()))?;
        let value =
            apache_avro::from_avro_datum(&writer.avro, &mut body, reader.as_ref().map(|r| &r.avro))
                .map_err(|e| AvroError::Decode(e.to_string()))?;
        let target = reader.as_ref().unwrap_or(&writer);
        Ok(Data {
            schema: Some(target.connect.clone()),
            value: to_json(&value, &target.avro, &target.names),
        })
    }

    /// Writes one key or value for `subject` (`<topic>-key` / `<topic>-value`).
    pub fn serialize(&self, subject: &str, data: &Data) -> Result<Vec<u8>, AvroError> {
        let Some(registry) = &self.registry else {
            let k = self.configured.as_ref().ok_or(AvroError::Schemaless)?;
            return encode(&k.avro, &data.value);
        };
        let avro = match (&self.configured, &data.schema) {
            (Some(k), _) => k.avro.clone(),
            (None, Some(schema)) => from_connect(schema)?,
            (None, None) => return Err(AvroError::Schemaless),
        };
        // The full schema (Parsing Canonical Form would drop logical types and defaults).
        let text = serde_json::to_string(&avro).map_err(|e| AvroError::Schema(e.to_string()))?;
        let cache_key = (subject.to_owned(), text);
        let cached = lock(&self.registered).get(&cache_key).copied();
        let id = match cached {
            Some(id) => id,
            None => {
                let (subject_owned, text) = (subject.to_owned(), &cache_key.1);
                let answer = if self.auto_register {
                    registry.register(subject, text)
                } else {
                    registry.lookup(subject, text)
                };
                let id = answer.map_err(|source| AvroError::Register {
                    subject: subject_owned,
                    source,
                })?;
                lock(&self.registered).insert(cache_key, id);
                id
            }
        };
        let mut out = Vec::with_capacity(64);
        out.push(MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend(encode(&avro, &data.value)?);
        Ok(out)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn known(avro: AvroSchema) -> Known {
    let names = named_types(&avro);
    let connect = Schema::new(to_connect(&avro, &names, None));
    Known {
        avro,
        names,
        connect,
    }
}

/// The registry subject of a topic's keys or values (Confluent's TopicNameStrategy).
pub fn subject(topic: &str, is_key: bool) -> String {
    format!("{topic}-{}", if is_key { "key" } else { "value" })
}

/// For tests and diagnostics: the Confluent wire-format header of `bytes`, if it has one.
pub fn schema_id(bytes: &Bytes) -> Option<u32> {
    (bytes.len() >= 5 && bytes[0] == MAGIC)
        .then(|| u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
}

mod bounds;
mod from_connect;
mod schema;
#[cfg(test)]
mod tests;
mod values;

pub use from_connect::from_connect;
use schema::{Names, named_types, to_connect};
use values::{encode, to_json};
