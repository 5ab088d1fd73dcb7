//! Records to and from the batch wire form (`wit/headwater-plugin.wit`: one arena, eight
//! `u32` spans per record). Nothing the guest returns is trusted: every span and index is
//! checked before use.

use bytes::Bytes;

use super::bindings::types::{Batch, OutBatch};
use crate::api::record::{Header, Payload, Record};

const NULL: u32 = u32::MAX;
const INPUT: u32 = 0x8000_0000;
const WIDTH: usize = 8;
pub(super) const NO_TIMESTAMP: i64 = i64::MIN;

/// Encodes records; keys and values travel as JSON text.
pub fn encode(records: &[Record]) -> Batch {
    let mut batch = Batch {
        arena: Vec::new(),
        spans: Vec::new(),
        timestamps: Vec::new(),
    };
    encode_into(records, &mut batch);
    batch
}

/// Encodes records into `batch`, reusing its buffers (a warm instance keeps one: a fresh
/// quarter-megabyte arena per call costs page faults).
pub fn encode_into(records: &[Record], batch: &mut Batch) {
    let Batch {
        arena,
        spans,
        timestamps,
    } = batch;
    arena.clear();
    spans.clear();
    timestamps.clear();
    // No pass over the records to size the arena: it is reused, so after the first batch it
    // already has room, and a sizing pass read every record (and its headers) twice.
    spans.reserve(records.len() * WIDTH);
    timestamps.reserve(records.len());
    let put = |arena: &mut Vec<u8>, bytes: Option<&[u8]>| match bytes {
        Some(b) => {
            let offset = arena.len() as u32;
            arena.extend_from_slice(b);
            [offset, b.len() as u32]
        }
        None => [0, NULL],
    };
    for r in records {
        spans.extend(put(arena, Some(r.topic.as_bytes())));
        spans.extend(put(arena, r.key.json_cow().as_deref()));
        spans.extend(put(arena, r.value.json_cow().as_deref()));
        let start = arena.len() as u32;
        for h in &r.headers {
            put_header(arena, h);
        }
        spans.extend([start, arena.len() as u32 - start]);
        timestamps.push(r.timestamp.unwrap_or(NO_TIMESTAMP));
    }
}

fn put_header(arena: &mut Vec<u8>, h: &Header) {
    arena.extend_from_slice(&(h.key.len() as u32).to_le_bytes());
    arena.extend_from_slice(h.key.as_bytes());
    match &h.value {
        Some(v) => {
            arena.extend_from_slice(&(v.len() as u32).to_le_bytes());
            arena.extend_from_slice(v);
        }
        None => arena.extend_from_slice(&NULL.to_le_bytes()),
    }
}

/// How a guest's output breaks the wire format: the plugin (or the SDK it was built with) is
/// at fault, never the records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MalformedOutput(String);

fn malformed(message: impl Into<String>) -> MalformedOutput {
    MalformedOutput(message.into())
}

fn decode_headers(block: &[u8]) -> Result<Vec<Header>, MalformedOutput> {
    let mut out = Vec::new();
    let mut rest = block;
    let take = |rest: &mut &[u8]| -> Result<Option<Vec<u8>>, MalformedOutput> {
        let (len, after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("a header entry is truncated"))?;
        let len = u32::from_le_bytes(*len);
        if len == NULL {
            *rest = after;
            return Ok(None);
        }
        let len = len as usize;
        if after.len() < len {
            return Err(malformed("a header entry is truncated"));
        }
        *rest = &after[len..];
        Ok(Some(after[..len].to_vec()))
    };
    while !rest.is_empty() {
        let key = take(&mut rest)?.ok_or_else(|| malformed("a header has a null key"))?;
        let key = String::from_utf8(key).map_err(|_| malformed("a header key is not UTF-8"))?;
        let value = take(&mut rest)?.map(Bytes::from);
        out.push(Header { key, value });
    }
    Ok(out)
}

/// The checked lengths of a guest's output columns.
fn check_columns(n_inputs: usize, out: &OutBatch) -> Result<usize, MalformedOutput> {
    let m = out.sources.len();
    if out.spans.len() != m * WIDTH || out.timestamps.len() != m {
        return Err(malformed(format!(
            "{m} outputs but {} spans and {} timestamps",
            out.spans.len(),
            out.timestamps.len()
        )));
    }
    if let Some(bad) = out.sources.iter().find(|&&s| s as usize >= n_inputs) {
        return Err(malformed(format!(
            "output names input {bad} of a batch of {n_inputs}"
        )));
    }
    if let Some(bad) = out.errors.iter().find(|e| e.index as usize >= n_inputs) {
        return Err(malformed(format!(
            "error names input {} of a batch of {n_inputs}",
            bad.index
        )));
    }
    Ok(m)
}

/// A transform's result, mapped back to records.
#[derive(Debug, Default)]
pub struct Decoded {
    pub kept: Vec<Record>,
    /// `kept[j]` came from input `origins[j]`.
    pub origins: Vec<usize>,
    pub failed: Vec<(usize, Record, String)>,
    pub dropped: usize,
}

/// Rebuilds records from a transform's output. Each output starts from its input record (so
/// it keeps the source position that acks depend on); parts the guest left pointing at the
/// input's own bytes keep the input's payload as is, parsed form and schema included.
///
/// Everything is checked before any record is consumed: on error the inputs come back.
#[allow(clippy::result_large_err)]
pub fn decode(
    records: Vec<Record>,
    batch: &Batch,
    out: OutBatch,
) -> Result<Decoded, (Vec<Record>, MalformedOutput)> {
    let m = match validate(records.len(), batch, &out) {
        Ok(m) => m,
        Err(e) => return Err((records, e)),
    };
    Ok(build(records, batch, out, m))
}

/// The span of part `k` of output `j`: `None` when it is the input's own, unchanged.
fn changed_part(
    inputs: &[u32],
    outputs: &[u32],
    i: usize,
    j: usize,
    k: usize,
) -> Option<(u32, u32)> {
    let own = &inputs[i * WIDTH..(i + 1) * WIDTH];
    let (offset, len) = (outputs[j * WIDTH + 2 * k], outputs[j * WIDTH + 2 * k + 1]);
    if offset & INPUT != 0 && (offset & !INPUT, len) == (own[2 * k], own[2 * k + 1]) {
        None
    } else {
        Some((offset, len))
    }
}

/// The bytes a (non-null) span names, if within its arena.
fn resolve<'a>(input: &'a [u8], output: &'a [u8], offset: u32, len: u32) -> Option<&'a [u8]> {
    let (arena, start) = if offset & INPUT != 0 {
        (input, (offset & !INPUT) as usize)
    } else {
        (output, offset as usize)
    };
    arena.get(start..start.checked_add(len as usize)?)
}

fn validate(n: usize, batch: &Batch, out: &OutBatch) -> Result<usize, MalformedOutput> {
    let m = check_columns(n, out)?;
    for j in 0..m {
        let i = out.sources[j] as usize;
        if forwarded(&batch.spans, &out.spans, i, j) {
            continue; // the input's own spans, checked when they were encoded
        }
        for k in 0..4 {
            let Some((offset, len)) = changed_part(&batch.spans, &out.spans, i, j, k) else {
                continue;
            };
            if len == NULL {
                if k == 0 {
                    return Err(malformed(format!("output {j} has a null topic")));
                }
                continue;
            }
            let bytes = resolve(&batch.arena, &out.arena, offset, len)
                .ok_or_else(|| malformed(format!("output {j} points outside its arena")))?;
            match k {
                0 if std::str::from_utf8(bytes).is_err() => {
                    return Err(malformed(format!(
                        "output {j} has a topic that is not UTF-8"
                    )));
                }
                3 => {
                    decode_headers(bytes).map_err(|e| malformed(format!("output {j}: {}", e.0)))?;
                }
                _ => {}
            }
        }
    }
    Ok(m)
}

/// The arenas an output's spans point into. The input arena is the instance's reusable
/// buffer: the rare part moved from elsewhere in the input is copied out.
struct Arenas<'a> {
    input: &'a [u8],
    output: Bytes,
}

/// Applies output `j`'s changed parts (it came from input `i`) to `record`.
fn apply(
    record: &mut Record,
    arenas: &Arenas,
    batch_spans: &[u32],
    out: &OutBatch,
    i: usize,
    j: usize,
) {
    let part = |k: usize| -> Option<Option<Bytes>> {
        let (offset, len) = changed_part(batch_spans, &out.spans, i, j, k)?;
        if len == NULL {
            return Some(None);
        }
        // Bounds checked by `validate`.
        let range = |start: u32| start as usize..start as usize + len as usize;
        if offset & INPUT != 0 {
            Some(
                arenas
                    .input
                    .get(range(offset & !INPUT))
                    .map(Bytes::copy_from_slice),
            )
        } else {
            let r = range(offset);
            Some(arenas.output.get(r.clone()).map(|_| arenas.output.slice(r)))
        }
    };
    if let Some(Some(topic)) = part(0) {
        record.topic = String::from_utf8_lossy(&topic).into_owned();
    }
    if let Some(key) = part(1) {
        record.key = key.map_or_else(Payload::null, Payload::json_bytes);
    }
    if let Some(value) = part(2) {
        record.value = value.map_or_else(Payload::null, Payload::json_bytes);
    }
    if let Some(headers) = part(3) {
        record.headers = decode_headers(&headers.unwrap_or_default()).unwrap_or_default();
    }
    let ts = out.timestamps[j];
    record.timestamp = (ts != NO_TIMESTAMP).then_some(ts);
}

/// Whether output `j` has every part of input `i` as it came: its spans point at the input's
/// own bytes (what a step returns for a record it forwards).
fn forwarded(inputs: &[u32], outputs: &[u32], i: usize, j: usize) -> bool {
    let (Some(own), Some(output)) = (
        inputs[i * WIDTH..].first_chunk::<WIDTH>(),
        outputs[j * WIDTH..].first_chunk::<WIDTH>(),
    ) else {
        return false;
    };
    // Without a branch per span: offsets (even) carry the input flag, lengths do not.
    let mut differ = 0;
    for k in 0..WIDTH {
        differ |= output[k] ^ (own[k] | if k % 2 == 0 { INPUT } else { 0 });
    }
    differ == 0
}

/// Whether output `j` is input `j` as it came, timestamp included.
fn passed_on(batch: &Batch, out: &OutBatch, j: usize) -> bool {
    forwarded(&batch.spans, &out.spans, j, j) && out.timestamps[j] == batch.timestamps[j]
}

fn build(mut records: Vec<Record>, batch: &Batch, mut out: OutBatch, m: usize) -> Decoded {
    let n = records.len();
    let arenas = Arenas {
        input: &batch.arena,
        output: Bytes::from(std::mem::take(&mut out.arena)),
    };
    // The common case, one output per input in order: edit the records where they are.
    let one_to_one = m == n
        && out.errors.is_empty()
        && out
            .sources
            .iter()
            .enumerate()
            .all(|(j, &s)| s as usize == j);
    if one_to_one {
        for (j, record) in records.iter_mut().enumerate() {
            // A record passed on as it came is not touched at all: reading the spans alone
            // keeps a pass-through step's batch out of the records' memory.
            if !passed_on(batch, &out, j) {
                apply(record, &arenas, &batch.spans, &out, j, j);
            }
        }
        return Decoded {
            kept: records,
            origins: (0..n).collect(),
            ..Decoded::default()
        };
    }
    let mut failed_at = vec![None; n];
    for e in std::mem::take(&mut out.errors) {
        failed_at[e.index as usize] = Some(e.message);
    }
    let mut uses = vec![0usize; n];
    for &s in &out.sources {
        uses[s as usize] += 1;
    }
    let referenced: Vec<bool> = uses.iter().map(|&u| u > 0).collect();
    let mut inputs: Vec<Option<Record>> = records.into_iter().map(Some).collect();
    let mut decoded = Decoded::default();
    for j in 0..m {
        let i = out.sources[j] as usize;
        uses[i] -= 1;
        if failed_at[i].is_some() {
            continue;
        }
        let base = if uses[i] == 0 {
            inputs[i].take()
        } else {
            inputs[i].clone()
        };
        let Some(mut record) = base else { continue };
        apply(&mut record, &arenas, &batch.spans, &out, i, j);
        decoded.kept.push(record);
        decoded.origins.push(i);
    }
    for (i, slot) in inputs.into_iter().enumerate() {
        match (failed_at[i].take(), slot) {
            (Some(message), Some(record)) => decoded.failed.push((i, record, message)),
            (None, Some(_)) if !referenced[i] => decoded.dropped += 1,
            _ => {}
        }
    }
    if !decoded.origins.is_sorted() {
        // Outputs follow input order downstream, whatever order the guest emitted them in.
        let mut pairs: Vec<(usize, Record)> = decoded
            .origins
            .drain(..)
            .zip(decoded.kept.drain(..))
            .collect();
        pairs.sort_by_key(|(i, _)| *i);
        (decoded.origins, decoded.kept) = pairs.into_iter().unzip();
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::record::Header;
    use crate::wasm::bindings::types::RecordError;

    fn record(topic: &str, value: &str) -> Record {
        let mut r = Record::new(topic, Payload::json_bytes(Bytes::from(value.to_owned())));
        r.headers.push(Header::text("h", "1"));
        r.timestamp = Some(5);
        r
    }

    /// What an identity guest returns: every span pointing back at the input.
    fn identity(batch: &Batch) -> OutBatch {
        let n = batch.timestamps.len();
        OutBatch {
            arena: vec![],
            spans: batch
                .spans
                .iter()
                .enumerate()
                .map(|(k, &s)| if k % 2 == 0 { s | INPUT } else { s })
                .collect(),
            timestamps: batch.timestamps.clone(),
            sources: (0..n as u32).collect(),
            errors: vec![],
        }
    }

    #[test]
    fn an_identity_output_returns_the_very_same_records() {
        let records = vec![record("a", r#"{"x":1}"#), record("b", r#"{"x":2}"#)];
        let batch = encode(&records);
        let out = identity(&batch);
        let decoded = decode(records.clone(), &batch, out).unwrap();
        assert_eq!(decoded.kept, records);
        assert_eq!(decoded.origins, [0, 1]);
    }

    #[test]
    fn a_forwarded_record_with_a_new_timestamp_takes_it() {
        let records = vec![record("a", r#"{"x":1}"#), record("b", r#"{"x":2}"#)];
        let batch = encode(&records);
        let mut out = identity(&batch);
        out.timestamps[1] = 9;
        out.timestamps[0] = NO_TIMESTAMP;
        let decoded = decode(records.clone(), &batch, out).unwrap();
        assert_eq!(decoded.kept[0].timestamp, None);
        assert_eq!(decoded.kept[1].timestamp, Some(9));
        assert_eq!(decoded.kept[1].value, records[1].value);
    }

    #[test]
    fn changed_parts_errors_and_drops_are_mapped_to_their_inputs() {
        let records = vec![
            record("a", r#"{"x":1}"#),
            record("b", r#"{"x":2}"#),
            record("c", r#"{"x":3}"#),
        ];
        let batch = encode(&records);
        let mut out = identity(&batch);
        // Output 0: record 0 with a new value; record 1 fails; record 2 is dropped.
        out.arena = br#"{"y":9}"#.to_vec();
        out.spans.truncate(WIDTH);
        out.spans[4] = 0;
        out.spans[5] = 7;
        out.timestamps.truncate(1);
        out.sources = vec![0];
        out.errors = vec![RecordError {
            index: 1,
            message: "bad".into(),
        }];
        let decoded = decode(records.clone(), &batch, out).unwrap();
        assert_eq!(decoded.kept.len(), 1);
        let kept = &decoded.kept[0];
        assert_eq!(decoded.origins, [0]);
        assert_eq!(kept.value.raw().unwrap().as_ref(), br#"{"y":9}"#);
        assert_eq!(kept.headers, records[0].headers);
        assert_eq!(decoded.failed.len(), 1);
        assert_eq!(decoded.failed[0].0, 1);
        assert_eq!(decoded.failed[0].2, "bad");
        assert_eq!(decoded.dropped, 1);
    }

    #[test]
    fn out_of_bounds_output_is_refused() {
        let records = vec![record("a", "1")];
        let batch = encode(&records);
        let mut out = identity(&batch);
        out.spans[4] = 1000;
        out.spans[5] = 10;
        let (back, err) = decode(records.clone(), &batch, out).unwrap_err();
        assert!(err.to_string().contains("outside its arena"), "{err}");
        assert_eq!(back, records, "the inputs come back untouched");
    }
}
