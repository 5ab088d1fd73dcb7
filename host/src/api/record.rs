//! The unit of data that moves through a pipeline.
//!
//! A [`Record`] mirrors a Kafka Connect `ConnectRecord`: topic, partition, offset, timestamp,
//! key, value and headers, plus the source [`Position`] it came from. Key and value are
//! [`Payload`]s: the bytes a converter or a source produced, parsed only when something asks for
//! the structured form, so a record that no stage touches is never re-serialized.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

/// A Kafka Connect schema (the JsonConverter's JSON form), shared between the records that
/// have it: a source hands the same schema to every record of a table, so cloning it is a
/// reference count, and its JSON text is rendered once, not once per record.
#[derive(Clone)]
pub struct Schema(Arc<SchemaInner>);

struct SchemaInner {
    value: Value,
    json: std::sync::OnceLock<Box<serde_json::value::RawValue>>,
}

impl Schema {
    pub fn new(value: Value) -> Self {
        Self(Arc::new(SchemaInner {
            value,
            json: std::sync::OnceLock::new(),
        }))
    }

    /// Whether the two are one shared schema (not merely equal ones).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Mutable access; copies the schema if other records share it.
    pub fn to_mut(&mut self) -> &mut Value {
        let inner = Arc::make_mut(&mut self.0);
        inner.json = std::sync::OnceLock::new();
        &mut inner.value
    }

    pub fn into_value(self) -> Value {
        match Arc::try_unwrap(self.0) {
            Ok(inner) => inner.value,
            Err(shared) => shared.value.clone(),
        }
    }

    /// The schema as JSON text, rendered on first use.
    pub fn json(&self) -> &serde_json::value::RawValue {
        self.0.json.get_or_init(|| {
            serde_json::value::to_raw_value(&self.0.value).expect("a JSON value always serializes")
        })
    }
}

impl Clone for SchemaInner {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            json: std::sync::OnceLock::new(),
        }
    }
}

impl std::ops::Deref for Schema {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0.value
    }
}

impl From<Value> for Schema {
    fn from(value: Value) -> Self {
        Self::new(value)
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.value == other.0.value
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.value.fmt(f)
    }
}

impl serde::Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(serializer)
    }
}

/// A structured key or value: Kafka Connect data, as a JSON tree plus an optional Connect schema.
///
/// `schema` is the schema half of a JsonConverter `{"schema","payload"}` envelope (a JSON object
/// with `type`, `fields`, `name`, ...). `None` means schemaless data, as with
/// `schemas.enable=false`.
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    pub schema: Option<Schema>,
    pub value: Value,
}

impl Data {
    pub fn schemaless(value: Value) -> Self {
        Self {
            schema: None,
            value,
        }
    }

    /// Reads `{"schema": .., "payload": ..}` envelopes (Kafka Connect's JsonConverter with
    /// `schemas.enable=true`) into their two halves; any other JSON is schemaless data.
    pub fn from_json(value: Value) -> Self {
        match value {
            Value::Object(mut map)
                if map.len() == 2 && map.contains_key("schema") && map.contains_key("payload") =>
            {
                let payload = map.remove("payload").unwrap_or(Value::Null);
                let schema = map
                    .remove("schema")
                    .filter(|s| !s.is_null())
                    .map(Schema::new);
                Self {
                    schema,
                    value: payload,
                }
            }
            other => Self::schemaless(other),
        }
    }
}

/// Why the bytes of a payload could not be read as JSON.
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON at line {line} column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<serde_json::Error> for ParseError {
    fn from(e: serde_json::Error) -> Self {
        Self {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

/// A key or a value: raw JSON bytes, a parsed [`Data`] tree, both, or neither (null).
///
/// `raw`, when present, is JSON text exactly as it arrived or as a source wrote it: plain
/// (schemaless) JSON, or, with `schema`, the payload half of a schema'd value (a CDC event
/// written as bytes beside its table's shared schema). It is dropped as soon as a stage asks
/// for mutable access, so it never disagrees with `data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Payload {
    raw: Option<Bytes>,
    /// The Connect schema of `raw` (set only with it): `raw` is then the value itself, never
    /// a `{"schema","payload"}` envelope to split.
    schema: Option<Schema>,
    /// Boxed: a record holds two payloads, and an inline tree made every record ~340 bytes
    /// before any data (a window end emitting 100,000 results held 45 MB of bare records).
    data: Option<Box<Data>>,
}

impl Payload {
    /// The null payload (a tombstone value, or a record without a key).
    pub fn null() -> Self {
        Self::default()
    }

    /// Plain JSON bytes, parsed only on demand.
    pub fn json_bytes(raw: Bytes) -> Self {
        Self {
            raw: Some(raw),
            schema: None,
            data: None,
        }
    }

    /// A value's JSON bytes beside its Connect schema, parsed only on demand: what a source
    /// that writes its values as bytes hands on (the caller guarantees the bytes are JSON of
    /// that schema). The JsonConverter with schemas writes them as they are.
    pub fn json_with_schema(raw: Bytes, schema: Schema) -> Self {
        Self {
            raw: Some(raw),
            schema: Some(schema),
            data: None,
        }
    }

    /// JSON bytes together with their already parsed form (the caller guarantees they agree).
    pub fn json_parsed(raw: Bytes, value: Value) -> Self {
        Self {
            raw: Some(raw),
            schema: None,
            data: Some(Box::new(Data::schemaless(value))),
        }
    }

    pub fn data(data: Data) -> Self {
        if data.schema.is_none() && data.value.is_null() {
            return Self::null();
        }
        Self {
            raw: None,
            schema: None,
            data: Some(Box::new(data)),
        }
    }

    pub fn value(value: Value) -> Self {
        Self::data(Data::schemaless(value))
    }

    pub fn is_null(&self) -> bool {
        self.raw.is_none() && self.data.as_ref().is_none_or(|d| d.value.is_null())
    }

    /// The unparsed JSON bytes, when the payload has not been modified since it arrived: the
    /// value itself when [`Payload::raw_with_schema`] has them, else plain JSON as it came.
    pub fn raw(&self) -> Option<&Bytes> {
        self.raw.as_ref()
    }

    /// The unparsed bytes of a value written beside its schema, and that schema.
    pub fn raw_with_schema(&self) -> Option<(&Bytes, &Schema)> {
        self.raw.as_ref().zip(self.schema.as_ref())
    }

    /// The parsed form if it was already parsed (no parsing here).
    pub fn parsed(&self) -> Option<&Data> {
        self.data.as_deref()
    }

    fn ensure_parsed(&mut self) -> Result<(), ParseError> {
        if self.data.is_none() {
            let value = match &self.raw {
                Some(raw) => serde_json::from_slice::<Value>(raw)?,
                None => Value::Null,
            };
            let data = match &self.schema {
                Some(schema) => Data {
                    schema: Some(schema.clone()),
                    value,
                },
                None => Data::from_json(value),
            };
            self.data = Some(Box::new(data));
        }
        Ok(())
    }

    /// The structured form, parsed and cached on first use; the raw bytes are kept.
    pub fn get(&mut self) -> Result<&Data, ParseError> {
        self.ensure_parsed()?;
        Ok(self.data.as_deref().expect("ensure_parsed sets data"))
    }

    /// Mutable access to the structured form. Drops the raw bytes: they would go stale.
    pub fn get_mut(&mut self) -> Result<&mut Data, ParseError> {
        self.ensure_parsed()?;
        (self.raw, self.schema) = (None, None);
        Ok(self.data.as_deref_mut().expect("ensure_parsed sets data"))
    }

    /// Takes the structured form out (parsing if needed), leaving null behind.
    pub fn take(&mut self) -> Result<Data, ParseError> {
        self.ensure_parsed()?;
        (self.raw, self.schema) = (None, None);
        Ok(*self.data.take().expect("ensure_parsed sets data"))
    }

    /// [`Payload::to_json_bytes`] without touching the raw bytes' reference count: borrowed
    /// when untouched, serialized otherwise.
    pub fn json_cow(&self) -> Option<std::borrow::Cow<'_, [u8]>> {
        if let Some(raw) = &self.raw {
            return Some(std::borrow::Cow::Borrowed(raw));
        }
        let data = self.data.as_ref()?;
        if data.value.is_null() {
            return None;
        }
        Some(std::borrow::Cow::Owned(
            serde_json::to_vec(&data.value).expect("serializing a JSON value cannot fail"),
        ))
    }

    /// Plain JSON bytes of the value part (no envelope): the raw bytes if untouched, otherwise
    /// the serialized tree. `None` for the null payload.
    pub fn to_json_bytes(&self) -> Option<Bytes> {
        if let Some(raw) = &self.raw {
            return Some(raw.clone());
        }
        self.json_cow().map(|bytes| Bytes::from(bytes.into_owned()))
    }
}

/// A record header. Values are bytes, as in Kafka; `None` is a null header value.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

impl Header {
    pub fn text(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: Some(Bytes::from(value.into())),
        }
    }
}

/// Where a record came from, in Kafka Connect's source-offset terms: a source partition (a file,
/// a Kafka topic-partition, a replication slot) and a monotonically increasing offset within it.
///
/// `offset` is the resume point *after* this record. Sinks use it to drop records they already
/// committed (see the Parquet sink); the source's full offset map goes to the offsets store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// Name of the source connector.
    pub source: Arc<str>,
    /// Canonical JSON of the Kafka Connect source partition map, e.g. `{"path":"/data/a.jsonl"}`.
    pub partition: Arc<str>,
    pub offset: u64,
}

/// One record in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    /// Kafka-style offset of the record in its topic partition (sources number their records).
    pub offset: i64,
    /// Event or creation time, epoch milliseconds.
    pub timestamp: Option<i64>,
    pub key: Payload,
    pub value: Payload,
    pub headers: Vec<Header>,
    pub position: Option<Position>,
}

impl Record {
    pub fn new(topic: impl Into<String>, value: Payload) -> Self {
        Self {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            timestamp: None,
            key: Payload::null(),
            value,
            headers: Vec::new(),
            position: None,
        }
    }

    pub fn header(&self, key: &str) -> Option<&Header> {
        self.headers.iter().rev().find(|h| h.key == key)
    }

    /// Serialized size used for byte metrics and size-based batching: raw bytes when present.
    pub fn approx_size(&self) -> usize {
        fn payload_size(p: &Payload) -> usize {
            match (&p.raw, &p.data) {
                (Some(raw), _) => raw.len(),
                (None, Some(_)) => 64,
                (None, None) => 0,
            }
        }
        payload_size(&self.key)
            + payload_size(&self.value)
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>()
    }
}

/// Bytes as JSON: a string when they are UTF-8 (the common case: JSON text), else base64.
pub fn bytes_json(bytes: Option<&Bytes>) -> Value {
    match bytes {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => {
                use base64::Engine as _;
                serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(b) })
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Records are moved in batches of hundreds and a window end emits one per group: the
    /// parsed tree stays boxed so a bare record is a couple of hundred bytes, not ~340 (the
    /// schema beside raw bytes adds 8 bytes a payload).
    #[test]
    fn a_record_stays_small() {
        assert_eq!(std::mem::size_of::<Payload>(), 48);
        assert!(
            std::mem::size_of::<Record>() <= 216,
            "{} bytes",
            std::mem::size_of::<Record>()
        );
    }

    #[test]
    fn raw_bytes_survive_reads_but_not_writes() {
        let mut p = Payload::json_bytes(Bytes::from_static(br#"{"a":1}"#));
        assert_eq!(p.get().unwrap().value, json!({"a": 1}));
        assert!(p.raw().is_some(), "a read keeps the raw bytes");
        p.get_mut().unwrap().value["a"] = json!(2);
        assert!(p.raw().is_none(), "a write drops them");
        assert_eq!(
            p.to_json_bytes().unwrap(),
            Bytes::from_static(br#"{"a":2}"#)
        );
    }

    #[test]
    fn bytes_beside_a_schema_are_the_value_itself() {
        let schema = Schema::new(json!({"type": "struct", "fields": []}));
        // Shaped like an envelope, but the value of its schema: never split.
        let raw = Bytes::from_static(br#"{"schema":1,"payload":2}"#);
        let mut p = Payload::json_with_schema(raw.clone(), schema.clone());
        assert!(p.parsed().is_none(), "parsed only on demand");
        let data = p.get().unwrap();
        assert_eq!(data.schema.as_ref(), Some(&schema));
        assert_eq!(data.value, json!({"schema": 1, "payload": 2}));
        assert_eq!(p.raw_with_schema().map(|(r, _)| r), Some(&raw));
        assert_eq!(p.to_json_bytes(), Some(raw));
        p.get_mut().unwrap().value["payload"] = json!(3);
        assert!(p.raw().is_none() && p.raw_with_schema().is_none());
        assert_eq!(p.get().unwrap().schema.as_ref(), Some(&schema));
    }

    #[test]
    fn envelopes_split_into_schema_and_payload() {
        let d = Data::from_json(json!({"schema": {"type": "int32"}, "payload": 5}));
        assert_eq!(d.schema.as_deref(), Some(&json!({"type": "int32"})));
        assert_eq!(d.value, json!(5));
        let plain = Data::from_json(json!({"schema": 1, "payload": 2, "x": 3}));
        assert!(plain.schema.is_none());
    }

    #[test]
    fn malformed_json_names_line_and_column() {
        let mut p = Payload::json_bytes(Bytes::from_static(b"{\"a\": }"));
        let err = p.get().unwrap_err();
        assert_eq!((err.line, err.column), (1, 7));
    }
}
