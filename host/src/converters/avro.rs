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
use apache_avro::schema::{Name, RecordField, RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Number, Value, json};

use super::registry_client::{RegistryClient, RegistryError};
use crate::core::record::{Data, Schema};

/// The first byte of every Confluent wire-format message.
const MAGIC: u8 = 0;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

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

/// An Avro schema with its Connect translation, computed once.
#[derive(Debug)]
struct Known {
    avro: AvroSchema,
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
                let avro =
                    AvroSchema::parse_str(text).map_err(|e| AvroError::Schema(e.to_string()))?;
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
        let avro = AvroSchema::parse_str(&text).map_err(|e| AvroError::Schema(e.to_string()))?;
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
        let value =
            apache_avro::from_avro_datum(&writer.avro, &mut body, reader.as_ref().map(|r| &r.avro))
                .map_err(|e| AvroError::Decode(e.to_string()))?;
        let target = reader.as_ref().unwrap_or(&writer);
        let names = named_types(&target.avro);
        Ok(Data {
            schema: Some(target.connect.clone()),
            value: to_json(&value, &target.avro, &names),
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
    Known { avro, connect }
}

/// Named types (records, enums, fixed) by full name, for `Ref`s.
type Names = HashMap<String, AvroSchema>;

fn named_types(schema: &AvroSchema) -> Names {
    fn walk(s: &AvroSchema, ns: &Option<String>, out: &mut Names) {
        match s {
            AvroSchema::Record(r) => {
                let full = r.name.fullname(ns.clone());
                if out.insert(full, s.clone()).is_some() {
                    return;
                }
                let inner = r.name.namespace.clone().or_else(|| ns.clone());
                for f in &r.fields {
                    walk(&f.schema, &inner, out);
                }
            }
            AvroSchema::Enum(e) => {
                out.insert(e.name.fullname(ns.clone()), s.clone());
            }
            AvroSchema::Fixed(f) => {
                out.insert(f.name.fullname(ns.clone()), s.clone());
            }
            AvroSchema::Array(a) => walk(&a.items, ns, out),
            AvroSchema::Map(m) => walk(&m.types, ns, out),
            AvroSchema::Union(u) => u.variants().iter().for_each(|v| walk(v, ns, out)),
            _ => {}
        }
    }
    let mut out = Names::new();
    walk(schema, &None, &mut out);
    out
}

fn resolve<'a>(schema: &'a AvroSchema, names: &'a Names) -> &'a AvroSchema {
    match schema {
        AvroSchema::Ref { name } => names
            .get(&name.fullname(None))
            .or_else(|| names.values().find(|s| schema_name(s) == Some(&name.name)))
            .unwrap_or(schema),
        other => other,
    }
}

fn schema_name(s: &AvroSchema) -> Option<&String> {
    match s {
        AvroSchema::Record(r) => Some(&r.name.name),
        AvroSchema::Enum(e) => Some(&e.name.name),
        AvroSchema::Fixed(f) => Some(&f.name.name),
        _ => None,
    }
}

/// The non-null branch of a `["null", T]` union.
fn nullable(u: &UnionSchema) -> Option<&AvroSchema> {
    let v = u.variants();
    match v {
        [AvroSchema::Null, t] | [t, AvroSchema::Null] => Some(t),
        _ => None,
    }
}

fn logical(name: &str, base: &str) -> Value {
    json!({ "type": base, "optional": false, "name": name, "version": 1 })
}

/// The Connect schema (JsonConverter form) of an Avro schema.
fn to_connect(s: &AvroSchema, names: &Names, optional: Option<bool>) -> Value {
    to_connect_in(s, names, optional, &mut Vec::new())
}

/// `expanding`: the records being expanded on the way here. A record that contains itself
/// (a linked list, a tree) is a struct without fields the second time: Connect schemas
/// cannot be recursive, and following the reference would never end.
fn to_connect_in(
    s: &AvroSchema,
    names: &Names,
    optional: Option<bool>,
    expanding: &mut Vec<String>,
) -> Value {
    let mut optional = optional.unwrap_or(false);
    let resolved = resolve(s, names);
    if let AvroSchema::Record(r) = resolved {
        let name = r.name.fullname(None);
        if expanding.contains(&name) {
            return json!({ "type": "struct", "name": name, "optional": optional });
        }
    }
    let mut out = match resolved {
        AvroSchema::Null => json!({ "type": "string" }),
        AvroSchema::Boolean => json!({ "type": "boolean" }),
        AvroSchema::Int => json!({ "type": "int32" }),
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => json!({ "type": "int64" }),
        AvroSchema::Float => json!({ "type": "float" }),
        AvroSchema::Double => json!({ "type": "double" }),
        AvroSchema::Bytes | AvroSchema::Duration => json!({ "type": "bytes" }),
        AvroSchema::Fixed(f) => json!({ "type": "bytes", "name": f.name.fullname(None) }),
        AvroSchema::String | AvroSchema::Uuid | AvroSchema::BigDecimal => {
            json!({ "type": "string" })
        }
        AvroSchema::Enum(e) => json!({ "type": "string", "name": e.name.fullname(None) }),
        AvroSchema::Date => logical("org.apache.kafka.connect.data.Date", "int32"),
        AvroSchema::TimeMillis => logical("org.apache.kafka.connect.data.Time", "int32"),
        AvroSchema::TimestampMillis => logical("org.apache.kafka.connect.data.Timestamp", "int64"),
        AvroSchema::Decimal(d) => json!({
            "type": "bytes",
            "name": "org.apache.kafka.connect.data.Decimal",
            "version": 1,
            "parameters": {
                "scale": d.scale.to_string(),
                "connect.decimal.precision": d.precision.to_string(),
            },
        }),
        AvroSchema::Array(a) => {
            json!({ "type": "array", "items": to_connect_in(&a.items, names, None, expanding) })
        }
        AvroSchema::Map(m) => json!({
            "type": "map",
            "keys": { "type": "string", "optional": false },
            "values": to_connect_in(&m.types, names, None, expanding),
        }),
        AvroSchema::Union(u) => match nullable(u) {
            Some(t) => return to_connect_in(t, names, Some(true), expanding),
            None => {
                // A null branch makes the whole union optional, as in AvroData.
                optional |= u.variants().iter().any(|v| matches!(v, AvroSchema::Null));
                let fields: Vec<Value> = u
                    .variants()
                    .iter()
                    .filter(|v| !matches!(v, AvroSchema::Null))
                    .map(|v| {
                        let mut f = to_connect_in(v, names, Some(true), expanding);
                        f["field"] = json!(branch_name(v));
                        f
                    })
                    .collect();
                json!({ "type": "struct", "name": "io.confluent.connect.avro.Union", "fields": fields })
            }
        },
        AvroSchema::Record(r) => {
            expanding.push(r.name.fullname(None));
            let fields: Vec<Value> = r
                .fields
                .iter()
                .map(|f| {
                    let mut c = to_connect_in(&f.schema, names, None, expanding);
                    if let Value::Object(m) = &mut c {
                        let mut with_name = Map::new();
                        with_name.insert("field".into(), json!(f.name));
                        with_name.extend(std::mem::take(m));
                        *m = with_name;
                    }
                    c
                })
                .collect();
            expanding.pop();
            json!({ "type": "struct", "name": r.name.fullname(None), "fields": fields })
        }
        AvroSchema::Ref { name } => json!({ "type": "struct", "name": name.fullname(None) }),
    };
    out["optional"] = json!(optional);
    out
}

/// The field name of a union branch in Confluent's Union struct: the name of a named type,
/// else the Avro type (a logical type's underlying one).
fn branch_name(s: &AvroSchema) -> String {
    match s {
        AvroSchema::Record(r) => r.name.name.clone(),
        AvroSchema::Enum(e) => e.name.name.clone(),
        AvroSchema::Fixed(f) => f.name.name.clone(),
        AvroSchema::Ref { name } => name.name.clone(),
        AvroSchema::Date | AvroSchema::TimeMillis => "int".into(),
        AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => "long".into(),
        AvroSchema::Uuid => "string".into(),
        AvroSchema::BigDecimal => "bytes".into(),
        AvroSchema::Decimal(d) => branch_name(&d.inner),
        other => {
            let kind: apache_avro::schema::SchemaKind = other.into();
            format!("{kind:?}").to_lowercase()
        }
    }
}

fn num(n: impl Into<Number>) -> Value {
    Value::Number(n.into())
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// An Avro value as Connect's JSON value, guided by its (reader's) schema.
fn to_json(value: &Avro, schema: &AvroSchema, names: &Names) -> Value {
    let schema = resolve(schema, names);
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => num(*i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => num(*i),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(B64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Uuid(u) => Value::String(u.to_string()),
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Decimal(d) => Value::String(B64.encode(<Vec<u8>>::try_from(d).unwrap_or_default())),
        Avro::Duration(d) => {
            let bytes: [u8; 12] = (*d).into();
            Value::String(B64.encode(bytes))
        }
        Avro::Union(index, inner) => {
            let AvroSchema::Union(u) = schema else {
                return to_json(inner, schema, names);
            };
            let branch = u.variants().get(*index as usize).unwrap_or(schema);
            if nullable(u).is_some() || matches!(**inner, Avro::Null) {
                return to_json(inner, branch, names);
            }
            let mut m = Map::new();
            for v in u
                .variants()
                .iter()
                .filter(|v| !matches!(v, AvroSchema::Null))
            {
                let name = branch_name(v);
                let set = std::ptr::eq(v, branch);
                m.insert(
                    name,
                    if set {
                        to_json(inner, branch, names)
                    } else {
                        Value::Null
                    },
                );
            }
            Value::Object(m)
        }
        Avro::Array(items) => {
            let item = match schema {
                AvroSchema::Array(a) => &*a.items,
                other => other,
            };
            Value::Array(items.iter().map(|v| to_json(v, item, names)).collect())
        }
        Avro::Map(entries) => {
            let values = match schema {
                AvroSchema::Map(m) => &*m.types,
                other => other,
            };
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&entries[k], values, names)))
                    .collect(),
            )
        }
        Avro::Record(fields) => {
            let lookup = |name: &str| -> Option<&AvroSchema> {
                match schema {
                    AvroSchema::Record(r) => {
                        r.fields.iter().find(|f| f.name == name).map(|f| &f.schema)
                    }
                    _ => None,
                }
            };
            Value::Object(
                fields
                    .iter()
                    .map(|(name, v)| {
                        let s = lookup(name).unwrap_or(&AvroSchema::Null);
                        (name.clone(), to_json(v, s, names))
                    })
                    .collect(),
            )
        }
    }
}

/// Encodes Connect's JSON value with `schema`.
fn encode(schema: &AvroSchema, value: &Value) -> Result<Vec<u8>, AvroError> {
    let names = named_types(schema);
    let avro = from_json(value, schema, &names, "")?;
    apache_avro::to_avro_datum(schema, avro).map_err(|e| AvroError::Encode(e.to_string()))
}

fn mismatch(path: &str, expected: &str, value: &Value) -> AvroError {
    let at = if path.is_empty() { "the value" } else { path };
    AvroError::Encode(format!("{at}: expected {expected}, got {value}"))
}

fn base64_bytes(value: &Value, path: &str) -> Result<Vec<u8>, AvroError> {
    match value {
        Value::String(s) => B64
            .decode(s)
            .map_err(|_| mismatch(path, "base64 bytes", value)),
        _ => Err(mismatch(path, "base64 bytes", value)),
    }
}

/// The unscaled two's-complement bytes of a decimal given as base64 (JsonConverter's BASE64
/// format) or as a number (its NUMERIC format).
fn decimal_bytes(value: &Value, scale: usize, path: &str) -> Result<Vec<u8>, AvroError> {
    if let Value::Number(n) = value {
        let text = n.to_string();
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let mut digits = format!("{int}{frac:0<scale$}");
        digits.truncate(int.len() + scale);
        let unscaled: i128 = digits
            .parse()
            .map_err(|_| mismatch(path, "a decimal", value))?;
        let bytes = unscaled.to_be_bytes();
        // Shortest two's-complement form.
        let mut start = 0;
        while start < 15
            && ((bytes[start] == 0 && bytes[start + 1] < 0x80)
                || (bytes[start] == 0xff && bytes[start + 1] >= 0x80))
        {
            start += 1;
        }
        return Ok(bytes[start..].to_vec());
    }
    base64_bytes(value, path)
}

fn from_json(
    value: &Value,
    schema: &AvroSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    let int = |v: &Value| v.as_i64().and_then(|i| i32::try_from(i).ok());
    Ok(match resolve(schema, names) {
        AvroSchema::Null if value.is_null() => Avro::Null,
        AvroSchema::Null => return Err(mismatch(path, "null", value)),
        AvroSchema::Boolean => Avro::Boolean(
            value
                .as_bool()
                .ok_or_else(|| mismatch(path, "a boolean", value))?,
        ),
        AvroSchema::Int => Avro::Int(int(value).ok_or_else(|| mismatch(path, "an int", value))?),
        AvroSchema::Date => {
            Avro::Date(int(value).ok_or_else(|| mismatch(path, "days (int)", value))?)
        }
        AvroSchema::TimeMillis => {
            Avro::TimeMillis(int(value).ok_or_else(|| mismatch(path, "ms of the day", value))?)
        }
        s @ (AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos) => {
            let i = value
                .as_i64()
                .ok_or_else(|| mismatch(path, "a long", value))?;
            match s {
                AvroSchema::TimeMicros => Avro::TimeMicros(i),
                AvroSchema::TimestampMillis => Avro::TimestampMillis(i),
                AvroSchema::TimestampMicros => Avro::TimestampMicros(i),
                AvroSchema::TimestampNanos => Avro::TimestampNanos(i),
                AvroSchema::LocalTimestampMillis => Avro::LocalTimestampMillis(i),
                AvroSchema::LocalTimestampMicros => Avro::LocalTimestampMicros(i),
                AvroSchema::LocalTimestampNanos => Avro::LocalTimestampNanos(i),
                _ => Avro::Long(i),
            }
        }
        AvroSchema::Float => Avro::Float(
            value
                .as_f64()
                .ok_or_else(|| mismatch(path, "a float", value))? as f32,
        ),
        AvroSchema::Double => Avro::Double(
            value
                .as_f64()
                .ok_or_else(|| mismatch(path, "a double", value))?,
        ),
        AvroSchema::Bytes => Avro::Bytes(base64_bytes(value, path)?),
        AvroSchema::Fixed(f) => Avro::Fixed(f.size, base64_bytes(value, path)?),
        AvroSchema::Duration => {
            let b = base64_bytes(value, path)?;
            let arr: [u8; 12] = b
                .try_into()
                .map_err(|_| mismatch(path, "12 bytes", value))?;
            Avro::Duration(arr.into())
        }
        AvroSchema::String => Avro::String(match value {
            Value::String(s) => s.clone(),
            other => return Err(mismatch(path, "a string", other)),
        }),
        AvroSchema::Uuid => {
            let s = value
                .as_str()
                .ok_or_else(|| mismatch(path, "a UUID string", value))?;
            Avro::Uuid(
                s.parse()
                    .map_err(|_| mismatch(path, "a UUID string", value))?,
            )
        }
        AvroSchema::BigDecimal => {
            let s = value.to_string();
            Avro::BigDecimal(
                s.trim_matches('"')
                    .parse()
                    .map_err(|_| mismatch(path, "a decimal", value))?,
            )
        }
        AvroSchema::Decimal(d) => Avro::Decimal(decimal_bytes(value, d.scale, path)?.into()),
        AvroSchema::Enum(e) => {
            let s = value
                .as_str()
                .ok_or_else(|| mismatch(path, "an enum symbol", value))?;
            let index = e
                .symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| mismatch(path, &format!("one of {:?}", e.symbols), value))?;
            Avro::Enum(index as u32, s.to_owned())
        }
        AvroSchema::Array(a) => {
            let items = value
                .as_array()
                .ok_or_else(|| mismatch(path, "an array", value))?;
            Avro::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| from_json(v, &a.items, names, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        AvroSchema::Map(m) => {
            let obj = value
                .as_object()
                .ok_or_else(|| mismatch(path, "an object", value))?;
            Avro::Map(
                obj.iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            from_json(v, &m.types, names, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, AvroError>>()?,
            )
        }
        AvroSchema::Union(u) => union_from_json(value, u, names, path)?,
        AvroSchema::Record(r) => record_from_json(value, r, names, path)?,
        AvroSchema::Ref { name } => {
            return Err(AvroError::Schema(format!(
                "unknown named type {}",
                name.fullname(None)
            )));
        }
    })
}

fn union_from_json(
    value: &Value,
    u: &UnionSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    if value.is_null() {
        let index = u
            .variants()
            .iter()
            .position(|v| matches!(v, AvroSchema::Null))
            .ok_or_else(|| mismatch(path, "a non-null value", value))?;
        return Ok(Avro::Union(index as u32, Box::new(Avro::Null)));
    }
    // Confluent's Union struct: one branch set, by name.
    if let Some(obj) = value.as_object()
        && nullable(u).is_none()
    {
        for (i, v) in u.variants().iter().enumerate() {
            if let Some(inner) = obj.get(&branch_name(v)).filter(|x| !x.is_null()) {
                return Ok(Avro::Union(
                    i as u32,
                    Box::new(from_json(inner, v, names, path)?),
                ));
            }
        }
    }
    for (i, v) in u.variants().iter().enumerate() {
        if matches!(v, AvroSchema::Null) {
            continue;
        }
        if let Ok(avro) = from_json(value, v, names, path) {
            return Ok(Avro::Union(i as u32, Box::new(avro)));
        }
    }
    Err(mismatch(path, "a value of one of the union's types", value))
}

fn record_from_json(
    value: &Value,
    r: &RecordSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    let obj = value
        .as_object()
        .ok_or_else(|| mismatch(path, "an object (record)", value))?;
    let mut fields = Vec::with_capacity(r.fields.len());
    for RecordField {
        name,
        schema,
        default,
        ..
    } in &r.fields
    {
        let field_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let v = match obj.get(name) {
            Some(v) => from_json(v, schema, names, &field_path)?,
            None => match default {
                // Avro defaults of a union are for its first branch.
                Some(d) => match resolve(schema, names) {
                    AvroSchema::Union(u) => {
                        let first = u.variants().first().unwrap_or(schema);
                        Avro::Union(0, Box::new(from_json(d, first, names, &field_path)?))
                    }
                    _ => from_json(d, schema, names, &field_path)?,
                },
                None => from_json(&Value::Null, schema, names, &field_path)?,
            },
        };
        fields.push((name.clone(), v));
    }
    Ok(Avro::Record(fields))
}

/// The Avro schema for a Connect schema, as Confluent's `AvroData.fromConnectSchema` builds
/// it: structs become records (`ConnectDefault` when unnamed), optional fields unions with
/// null defaulting to null, Connect's logical types Avro's.
pub fn from_connect(schema: &Value) -> Result<AvroSchema, AvroError> {
    let mut names = Defined::default();
    let json = connect_to_avro_json(schema, &mut names, true)?;
    AvroSchema::parse(&json)
        .map_err(|e| AvroError::Schema(format!("{e} (from Connect schema {schema})")))
}

/// Records already defined while translating one schema: Avro names a type once and refers to
/// it by name after (Debezium's `before` and `after` share their `Value` struct).
#[derive(Default)]
struct Defined {
    unnamed: usize,
    names: std::collections::HashSet<String>,
}

fn connect_to_avro_json(
    schema: &Value,
    defined: &mut Defined,
    top: bool,
) -> Result<Value, AvroError> {
    let base = match schema.get("name").and_then(Value::as_str) {
        Some("org.apache.kafka.connect.data.Decimal") => {
            let params = &schema["parameters"];
            let scale: u64 = params["scale"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let precision: u64 = params["connect.decimal.precision"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(64);
            json!({ "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale })
        }
        Some("org.apache.kafka.connect.data.Date") => {
            json!({ "type": "int", "logicalType": "date" })
        }
        Some("org.apache.kafka.connect.data.Time") => {
            json!({ "type": "int", "logicalType": "time-millis" })
        }
        Some("org.apache.kafka.connect.data.Timestamp") => {
            json!({ "type": "long", "logicalType": "timestamp-millis" })
        }
        _ => match schema["type"].as_str().unwrap_or("") {
            "int8" | "int16" | "int32" => json!("int"),
            "int64" => json!("long"),
            "float" | "float32" => json!("float"),
            "double" | "float64" => json!("double"),
            "boolean" => json!("boolean"),
            "string" => json!("string"),
            "bytes" => json!("bytes"),
            "array" => {
                json!({ "type": "array", "items": connect_to_avro_json(&schema["items"], defined, false)? })
            }
            "map" => {
                json!({ "type": "map", "values": connect_to_avro_json(&schema["values"], defined, false)? })
            }
            "struct" if schema["name"] == "io.confluent.connect.avro.Union" => {
                // Back to the Avro union it came from: its optional fields are the branches.
                let mut branches = Vec::new();
                if schema["optional"].as_bool() == Some(true) {
                    branches.push(json!("null"));
                }
                for f in schema["fields"].as_array().into_iter().flatten() {
                    let mut branch = f.clone();
                    branch["optional"] = json!(false);
                    branches.push(connect_to_avro_json(&branch, defined, false)?);
                }
                return Ok(Value::Array(branches));
            }
            "struct" => {
                let name = match schema.get("name").and_then(Value::as_str) {
                    Some(n) => n.to_owned(),
                    None => {
                        defined.unnamed += 1;
                        match defined.unnamed {
                            1 => "io.confluent.connect.avro.ConnectDefault".to_owned(),
                            n => format!("io.confluent.connect.avro.ConnectDefault{n}"),
                        }
                    }
                };
                if !defined.names.insert(name.clone()) {
                    // Defined already: refer to it by name.
                    return Ok(if schema["optional"].as_bool() == Some(true) && !top {
                        json!(["null", name])
                    } else {
                        json!(name)
                    });
                }
                let Name { name, namespace } =
                    Name::new(&name).map_err(|e| AvroError::Schema(e.to_string()))?;
                let mut fields = Vec::new();
                for f in schema["fields"].as_array().into_iter().flatten() {
                    let field = f["field"].as_str().ok_or_else(|| {
                        AvroError::Schema(format!("struct field without a name: {f}"))
                    })?;
                    let mut avro_field =
                        json!({ "name": field, "type": connect_to_avro_json(f, defined, false)? });
                    if f["optional"].as_bool() == Some(true) {
                        avro_field["default"] = Value::Null;
                    }
                    fields.push(avro_field);
                }
                let mut record = json!({ "type": "record", "name": name, "fields": fields });
                if let Some(ns) = namespace {
                    record["namespace"] = json!(ns);
                }
                record
            }
            other => {
                return Err(AvroError::Schema(format!(
                    "no Avro type for Connect type {other:?}"
                )));
            }
        },
    };
    // Optional values are unions with null; a top-level optional value is written as such too.
    if schema["optional"].as_bool() == Some(true) && !(top && schema["type"] == "struct") {
        return Ok(json!(["null", base]));
    }
    Ok(base)
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

#[cfg(test)]
mod tests {
    use super::*;

    const CLICK: &str = r#"{"type":"record","name":"Click","namespace":"shop","fields":[
        {"name":"user_id","type":"long"},
        {"name":"page","type":"string"},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"t_us","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"ref","type":["null","string"],"default":null},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["VIEW","BUY"]}}
    ]}"#;

    fn click() -> Value {
        json!({"user_id": 7, "page": "/a", "ts": 1700000000000i64, "day": 19675,
               "price": B64.encode([0x04, 0xd2]), "id": "5b7e1a52-7a87-4d3c-9a53-2f2b0c3f0f9e",
               "t_us": 3_600_000_000i64, "ref": null, "kind": "BUY"})
    }

    #[test]
    fn schema_json_round_trips_logical_types() {
        let c = AvroConverter::new(None, Some(CLICK), true, None).unwrap();
        let bytes = c
            .serialize("clicks-value", &Data::schemaless(click()))
            .unwrap();
        let data = c.deserialize(&bytes).unwrap();
        assert_eq!(data.value, click());
        let schema = data.schema.unwrap();
        assert_eq!(schema["name"], "shop.Click");
        assert_eq!(
            schema["fields"][2]["name"],
            "org.apache.kafka.connect.data.Timestamp"
        );
        assert_eq!(
            schema["fields"][3]["name"],
            "org.apache.kafka.connect.data.Date"
        );
        assert_eq!(schema["fields"][4]["parameters"]["scale"], "2");
        assert_eq!(schema["fields"][7]["optional"], true);
    }

    #[test]
    fn decimals_given_as_numbers_are_scaled() {
        assert_eq!(
            decimal_bytes(&json!(12.34), 2, "").unwrap(),
            vec![0x04, 0xd2]
        );
        assert_eq!(decimal_bytes(&json!(-1), 2, "").unwrap(), vec![0x9c]);
        assert_eq!(decimal_bytes(&json!(-2), 2, "").unwrap(), vec![0xff, 0x38]);
        assert_eq!(decimal_bytes(&json!(1.5), 0, "").unwrap(), vec![0x01]);
    }

    #[test]
    fn mismatched_values_name_the_field() {
        let c = AvroConverter::new(None, Some(CLICK), true, None).unwrap();
        let mut bad = click();
        bad["user_id"] = json!("seven");
        let err = c.serialize("s", &Data::schemaless(bad)).unwrap_err();
        assert!(
            err.to_string().contains("user_id: expected a long"),
            "{err}"
        );
    }

    #[test]
    fn connect_structs_become_records_with_optional_unions() {
        let connect = json!({"type": "struct", "name": "shop.User", "optional": false, "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "email", "type": "string", "optional": true},
            {"field": "born", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1}
        ]});
        let avro = from_connect(&connect).unwrap();
        let back = known(avro.clone());
        assert_eq!(back.connect["fields"][1]["optional"], true);
        assert_eq!(
            back.connect["fields"][2]["name"],
            "org.apache.kafka.connect.data.Date"
        );
        let bytes = encode(&avro, &json!({"id": 1, "email": null, "born": 3})).unwrap();
        let value = apache_avro::from_avro_datum(&avro, &mut bytes.as_slice(), None).unwrap();
        assert_eq!(
            to_json(&value, &avro, &named_types(&avro)),
            json!({"id": 1, "email": null, "born": 3})
        );
    }

    #[test]
    fn recursive_schemas_and_shared_structs_translate() {
        let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}"#;
        let k = known(AvroSchema::parse_str(list).unwrap());
        assert_eq!(k.connect["fields"][1]["name"], "Node");
        assert_eq!(k.connect["fields"][1]["optional"], true);
        let c = AvroConverter::new(None, Some(list), true, None).unwrap();
        let value = json!({"v": 1, "next": {"v": 2, "next": null}});
        let bytes = c.serialize("s", &Data::schemaless(value.clone())).unwrap();
        assert_eq!(c.deserialize(&bytes).unwrap().value, value);
        // Debezium's envelope: `before` and `after` share one struct.
        let row = json!({"type": "struct", "name": "db.t.Value", "optional": true,
            "fields": [{"field": "id", "type": "int32", "optional": false}]});
        let envelope = json!({"type": "struct", "name": "db.t.Envelope", "optional": false,
            "fields": [
                {"field": "before", "type": "struct", "name": "db.t.Value", "optional": true, "fields": row["fields"]},
                {"field": "after", "type": "struct", "name": "db.t.Value", "optional": true, "fields": row["fields"]},
                {"field": "op", "type": "string", "optional": false}]});
        let avro = from_connect(&envelope).unwrap();
        let text = serde_json::to_string(&avro).unwrap();
        assert_eq!(
            text.matches("\"fields\"").count(),
            2,
            "Value defined once: {text}"
        );
        let bytes = encode(
            &avro,
            &json!({"before": null, "after": {"id": 3}, "op": "c"}),
        )
        .unwrap();
        assert!(!bytes.is_empty());
    }

    #[test]
    fn unions_of_several_types_with_null_are_optional_structs() {
        let s = r#"{"type":"record","name":"R","fields":[{"name":"u","type":["null","long",{"type":"int","logicalType":"date"}]}]}"#;
        let k = known(AvroSchema::parse_str(s).unwrap());
        let u = &k.connect["fields"][0];
        assert_eq!(u["name"], "io.confluent.connect.avro.Union");
        assert_eq!(u["optional"], true);
        assert_eq!(
            u["fields"][1]["field"], "int",
            "a logical type's branch has its base name"
        );
        let back = from_connect(&k.connect).unwrap();
        let bytes = encode(&back, &json!({"u": {"long": 5, "int": null}})).unwrap();
        assert_eq!(
            bytes,
            vec![2, 10],
            "union branch 1 (zigzag 2), then the long 5 (zigzag 10)"
        );
    }

    #[test]
    fn readers_resolve_older_writers() {
        let v1 = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
        let v2 = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"tier","type":"string","default":"free"}]}"#;
        let writer = AvroSchema::parse_str(v1).unwrap();
        let bytes = encode(&writer, &json!({"id": 4})).unwrap();
        let reader = AvroSchema::parse_str(v2).unwrap();
        let value =
            apache_avro::from_avro_datum(&writer, &mut bytes.as_slice(), Some(&reader)).unwrap();
        assert_eq!(
            to_json(&value, &reader, &named_types(&reader)),
            json!({"id": 4, "tier": "free"})
        );
    }
}
