//! Zero-copy views of the records in a batch.

use std::cell::OnceCell;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::wire;

/// One input record. Key, value, topic and headers borrow the batch's bytes; the value is
/// parsed as JSON only when asked for, once.
#[derive(Debug)]
pub struct Record<'a> {
    pub(crate) index: u32,
    pub(crate) spans: [u32; wire::SPAN_WIDTH],
    /// The batch's bytes; `None` for a record built by a test from its parts.
    arena: &'a [u8],
    parts: Option<TestParts<'a>>,
    timestamp: Option<i64>,
    json: OnceCell<std::result::Result<Value, Error>>,
}

/// The parts of a record built by [`Record::for_test`].
#[derive(Debug, Clone, Copy)]
struct TestParts<'a> {
    topic: &'a str,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// A view of record `index`; fields are sliced out only when asked for.
    pub(crate) fn new(index: u32, arena: &'a [u8], spans: &[u32], timestamp: i64) -> Self {
        let mut own = [wire::NULL; wire::SPAN_WIDTH];
        own.copy_from_slice(spans);
        Self {
            index,
            spans: own,
            arena,
            parts: None,
            timestamp: (timestamp != wire::NO_TIMESTAMP).then_some(timestamp),
            json: OnceCell::new(),
        }
    }

    fn field(&self, i: usize) -> Option<&'a [u8]> {
        wire::slice(self.arena, self.spans[2 * i], self.spans[2 * i + 1])
    }

    /// A record built from parts, for unit tests of plugin functions.
    pub fn for_test(topic: &'a str, key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> Self {
        Self {
            index: 0,
            spans: [wire::NULL; wire::SPAN_WIDTH],
            arena: &[],
            parts: Some(TestParts { topic, key, value }),
            timestamp: None,
            json: OnceCell::new(),
        }
    }

    /// The same test record with an event timestamp (epoch milliseconds).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Position of the record in its batch.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The record's topic.
    pub fn topic(&self) -> &'a str {
        match self.parts {
            Some(p) => p.topic,
            None => self
                .field(0)
                .and_then(|t| std::str::from_utf8(t).ok())
                .unwrap_or(""),
        }
    }

    /// The key bytes; `None` for a null key.
    pub fn key(&self) -> Option<&'a [u8]> {
        match self.parts {
            Some(p) => p.key,
            None => self.field(1),
        }
    }

    /// The key as text, when it is valid UTF-8. Keys cross as JSON text, so a string key
    /// keeps its quotes here; [`Record::key_json`] parses it.
    pub fn key_str(&self) -> Option<&'a str> {
        self.key().and_then(|k| std::str::from_utf8(k).ok())
    }

    /// The key parsed as JSON (`Value::Null` for a null key).
    pub fn key_json(&self) -> Result<Value> {
        match self.key() {
            None => Ok(Value::Null),
            Some(bytes) => serde_json::from_slice(bytes).map_err(Error::from),
        }
    }

    /// The value bytes (JSON text for JSON data); `None` for a tombstone.
    pub fn value(&self) -> Option<&'a [u8]> {
        match self.parts {
            Some(p) => p.value,
            None => self.field(2),
        }
    }

    /// Event time in epoch milliseconds.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// All headers in order, as (key, value) bytes; a header may repeat.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + 'a {
        wire::headers(self.headers_block()).map(|(k, v)| (std::str::from_utf8(k).unwrap_or(""), v))
    }

    /// The last header with this key, as Kafka Connect's `lastWithName`.
    pub fn header(&self, key: &str) -> Option<&'a [u8]> {
        self.headers().filter(|(k, _)| *k == key).last()?.1
    }

    pub(crate) fn headers_block(&self) -> &'a [u8] {
        match self.parts {
            Some(_) => &[],
            None => self.field(3).unwrap_or(&[]),
        }
    }

    /// True for records of a real batch (whose parts the output can point at).
    pub(crate) fn in_batch(&self) -> bool {
        self.parts.is_none()
    }

    /// The value parsed as JSON (parsed on first call, then cached). A null value is
    /// `Value::Null`.
    pub fn json(&self) -> Result<&Value> {
        self.json
            .get_or_init(|| match self.value() {
                None => Ok(Value::Null),
                Some(bytes) => serde_json::from_slice(bytes).map_err(Error::from),
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A field of the JSON value by dotted path (`"user.address.city"`); `None` when absent
    /// or when the value is not JSON.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut at = self.json().ok()?;
        for part in path.split('.') {
            at = match at {
                Value::Object(map) => map.get(part)?,
                Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(at)
    }

    /// A numeric field as `f64`; numbers written as strings (`"12.50"`) are accepted too.
    pub fn get_f64(&self, path: &str) -> Option<f64> {
        match self.get(path)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// An integer field; strings holding an integer are accepted too.
    pub fn get_i64(&self, path: &str) -> Option<i64> {
        match self.get(path)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// A string field.
    pub fn get_str(&self, path: &str) -> Option<&str> {
        self.get(path)?.as_str()
    }

    /// A boolean field.
    pub fn get_bool(&self, path: &str) -> Option<bool> {
        self.get(path)?.as_bool()
    }

    /// A field, or an error naming it: for fields a plugin cannot do without.
    pub fn require(&self, path: &str) -> Result<&Value> {
        self.json()?;
        match self.get(path) {
            Some(Value::Null) | None => {
                Err(Error::new(format!("field `{path}` is missing or null")))
            }
            Some(v) => Ok(v),
        }
    }

    /// A numeric field, or an error naming the field and what it held.
    pub fn require_f64(&self, path: &str) -> Result<f64> {
        let value = self.require(path)?;
        self.get_f64(path)
            .ok_or_else(|| Error::new(format!("field `{path}` must be a number, got {value}")))
    }
}

/// Iterates over the records of a wire batch.
pub(crate) fn records<'a>(
    arena: &'a [u8],
    spans: &'a [u32],
    timestamps: &'a [i64],
) -> impl Iterator<Item = Record<'a>> + 'a {
    spans
        .chunks_exact(wire::SPAN_WIDTH)
        .zip(timestamps)
        .enumerate()
        .map(move |(i, (s, ts))| Record::new(i as u32, arena, s, *ts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_and_lenient_numbers() {
        let value = br#"{"user":{"id":7,"tags":["a","b"]},"amount":"12.50","ok":true}"#;
        let rec = Record::for_test("t", None, Some(value));
        assert_eq!(rec.get_i64("user.id"), Some(7));
        assert_eq!(rec.get_str("user.tags.1"), Some("b"));
        assert_eq!(rec.get_f64("amount"), Some(12.5));
        assert_eq!(rec.get_bool("ok"), Some(true));
        assert!(rec.get("user.missing").is_none());
        assert_eq!(
            rec.require_f64("user.tags").unwrap_err().message(),
            r#"field `user.tags` must be a number, got ["a","b"]"#
        );
    }

    #[test]
    fn invalid_json_is_an_error_not_a_panic() {
        let rec = Record::for_test("t", None, Some(b"{nope"));
        assert!(
            rec.json()
                .unwrap_err()
                .message()
                .starts_with("invalid JSON")
        );
        assert!(rec.get("a").is_none());
    }
}
