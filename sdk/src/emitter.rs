//! Building a transform's output.

use serde_json::Value;

use crate::record::Record;
use crate::wire;

/// Collects the records a transform emits. Emit nothing for an input to drop it; emit several
/// to split it. Unchanged parts of an input are not copied: the output points at them.
#[derive(Debug, Default)]
pub struct Emitter {
    pub(crate) arena: Vec<u8>,
    pub(crate) spans: Vec<u32>,
    pub(crate) timestamps: Vec<i64>,
    pub(crate) sources: Vec<u32>,
}

/// One part of an output record.
#[derive(Debug, Clone)]
enum Part {
    /// As in the input record.
    Same,
    Null,
    Bytes(Vec<u8>),
}

/// An output record under construction: starts as a copy of its input, see [`Record::output`].
#[derive(Debug)]
#[must_use = "an output does nothing until passed to `Emitter::emit`"]
pub struct Output<'r, 'a> {
    base: &'r Record<'a>,
    topic: Part,
    key: Part,
    value: Part,
    added_headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<Option<i64>>,
}

impl<'a> Record<'a> {
    /// Starts an output record equal to this one; change what you need, then
    /// [`Emitter::emit`] it.
    pub fn output(&self) -> Output<'_, 'a> {
        Output {
            base: self,
            topic: Part::Same,
            key: Part::Same,
            value: Part::Same,
            added_headers: Vec::new(),
            timestamp: None,
        }
    }
}

impl Output<'_, '_> {
    /// Routes the record to another topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Part::Bytes(topic.into().into_bytes());
        self
    }

    /// Replaces the key (`None` for a null key).
    pub fn key(mut self, key: Option<Vec<u8>>) -> Self {
        self.key = key.map_or(Part::Null, Part::Bytes);
        self
    }

    /// Replaces the value with raw bytes (`None` for a tombstone).
    pub fn value(mut self, value: Option<Vec<u8>>) -> Self {
        self.value = value.map_or(Part::Null, Part::Bytes);
        self
    }

    /// Replaces the value with this JSON.
    pub fn value_json(mut self, value: &Value) -> Self {
        self.value = match value {
            Value::Null => Part::Null,
            // Serializing a `Value` into memory cannot fail.
            v => Part::Bytes(serde_json::to_vec(v).unwrap_or_default()),
        };
        self
    }

    /// Adds a header after the input's headers.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.added_headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sets the event time (epoch milliseconds).
    pub fn timestamp(mut self, timestamp: Option<i64>) -> Self {
        self.timestamp = Some(timestamp);
        self
    }
}

impl Emitter {
    /// An empty emitter (the SDK makes one per batch; tests make their own).
    pub fn new() -> Self {
        Self::default()
    }

    /// Emits the record unchanged (without copying: the output points at the input).
    pub fn forward(&mut self, record: &Record<'_>) {
        if !record.in_batch() {
            self.emit(record.output());
            return;
        }
        let s = record.spans;
        self.spans.extend([
            s[0] | wire::INPUT,
            s[1],
            s[2] | wire::INPUT,
            s[3],
            s[4] | wire::INPUT,
            s[5],
            s[6] | wire::INPUT,
            s[7],
        ]);
        self.timestamps
            .push(record.timestamp().unwrap_or(wire::NO_TIMESTAMP));
        self.sources.push(record.index);
    }

    /// Emits a record built with [`Record::output`].
    pub fn emit(&mut self, output: Output<'_, '_>) {
        let base = output.base;
        let input = [
            Some(base.topic().as_bytes()),
            base.key(),
            base.value(),
            Some(base.headers_block()),
        ];
        let parts = [output.topic, output.key, output.value];
        for (i, part) in parts.into_iter().enumerate() {
            let (offset, len) = match part {
                Part::Same => self.same(base, i, input[i]),
                Part::Null => (0, wire::NULL),
                Part::Bytes(bytes) => self.push(&bytes),
            };
            self.spans.extend([offset, len]);
        }
        let (offset, len) = if output.added_headers.is_empty() {
            self.same(base, 3, input[3])
        } else {
            let mut block = base.headers_block().to_vec();
            for (key, value) in &output.added_headers {
                wire::put_header(&mut block, key.as_bytes(), value.as_deref());
            }
            self.push(&block)
        };
        self.spans.extend([offset, len]);
        let timestamp = output.timestamp.unwrap_or(base.timestamp());
        self.timestamps
            .push(timestamp.unwrap_or(wire::NO_TIMESTAMP));
        self.sources.push(base.index);
    }

    /// A span for an unchanged part: a pointer into the input when the record came from a
    /// batch, a copy when it was built by a test.
    fn same(&mut self, base: &Record<'_>, part: usize, bytes: Option<&[u8]>) -> (u32, u32) {
        let (offset, len) = (base.spans[2 * part], base.spans[2 * part + 1]);
        if len != wire::NULL || bytes.is_none() {
            return (offset | wire::INPUT, len);
        }
        match bytes {
            Some(b) => self.push(b),
            None => (0, wire::NULL),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> (u32, u32) {
        let offset = self.arena.len() as u32;
        self.arena.extend_from_slice(bytes);
        (offset, bytes.len() as u32)
    }

    #[doc(hidden)]
    /// The wire columns: arena, spans, timestamps, sources (for the SDK's glue).
    pub fn into_parts(self) -> (Vec<u8>, Vec<u32>, Vec<i64>, Vec<u32>) {
        (self.arena, self.spans, self.timestamps, self.sources)
    }

    /// How many records were emitted.
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when nothing was emitted.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The value of emitted record `i` when the emitter holds it (records built by tests, or
    /// changed values), parsed as JSON: for unit tests of transform functions.
    pub fn value_json(&self, i: usize) -> Option<Value> {
        let (offset, len) = (self.spans[8 * i + 4], self.spans[8 * i + 5]);
        if offset & wire::INPUT != 0 {
            return None;
        }
        serde_json::from_slice(wire::slice(&self.arena, offset, len)?).ok()
    }

    /// The header `key` of emitted record `i`, when the emitter holds its headers.
    pub fn header(&self, i: usize, key: &str) -> Option<Vec<u8>> {
        let (offset, len) = (self.spans[8 * i + 6], self.spans[8 * i + 7]);
        if offset & wire::INPUT != 0 {
            return None;
        }
        let block = wire::slice(&self.arena, offset, len)?;
        wire::headers(block)
            .filter(|(k, _)| *k == key.as_bytes())
            .last()?
            .1
            .map(<[u8]>::to_vec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unchanged_parts_point_into_the_input() {
        let arena = b"clicks{\"a\":1}".to_vec();
        let spans = [0, 6, 0, wire::NULL, 6, 7, 0, 0];
        let rec = Record::new(3, &arena, &spans, 42);
        let mut out = Emitter::new();
        out.forward(&rec);
        out.emit(rec.output().value_json(&json!({"a": 2})).header("h", "v"));
        assert_eq!(out.sources, vec![3, 3]);
        assert_eq!(
            &out.spans[..8],
            &[
                wire::INPUT,
                6,
                wire::INPUT,
                wire::NULL,
                6 | wire::INPUT,
                7,
                wire::INPUT,
                0
            ]
        );
        assert_eq!(out.value_json(1), Some(json!({"a": 2})));
        assert_eq!(out.header(1, "h"), Some(b"v".to_vec()));
        assert_eq!(out.timestamps, vec![42, 42]);
    }
}
