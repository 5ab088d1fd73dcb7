//! Turning records into Arrow record batches: untouched flat JSON rows by [`flat_json`], other
//! JSON bytes by arrow-json's decoder (no `serde_json::Value` in between); modified or
//! structured values are serialized into it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_json::reader::Decoder;
use arrow_schema::{ArrowError, Schema, SchemaRef};
use bytes::Bytes;
use serde_json::Value;

use super::flat_json;
use super::schema::{VALUE_COLUMN, without_null_types};

/// One row ready for encoding.
#[derive(Debug, Clone)]
pub enum Row {
    /// A JSON object's bytes, exactly as read.
    Raw(Bytes),
    /// A JSON object.
    Value(Value),
}

impl Row {
    /// The row as a JSON object: non-object values are wrapped as `{"value": ..}`.
    pub fn from_value(value: Value) -> Self {
        match value {
            Value::Object(_) => Self::Value(value),
            other => Self::Value(serde_json::json!({ VALUE_COLUMN: other })),
        }
    }

    fn to_value(&self) -> Result<Value, ArrowError> {
        match self {
            Self::Value(v) => Ok(v.clone()),
            Self::Raw(b) => serde_json::from_slice(b)
                .map_err(|e| ArrowError::JsonError(format!("invalid JSON: {e}"))),
        }
    }
}

/// Buffers reused across batches: the text of raw rows and a decoder for the current schema.
#[derive(Default)]
pub struct Scratch {
    text: Vec<u8>,
    decoder: Option<(SchemaRef, usize, Decoder)>,
    /// Chunks left before the flat decoder is tried again: after it gave up on one, rows like
    /// it are likely to follow (each try costs a partial decode).
    flat_pause: u8,
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}

/// Smallest decoder batch size: decoders are reused, so size them for typical batches.
const MIN_DECODER_ROWS: usize = 8192;

/// Chunks the flat decoder sits out after giving up on one.
const FLAT_PAUSE_CHUNKS: u8 = 16;

impl Scratch {
    /// Whether to try [`flat_json`] on a chunk (it refuses schemas it cannot fill itself).
    fn try_flat(&mut self) -> bool {
        if self.flat_pause > 0 {
            self.flat_pause -= 1;
            return false;
        }
        true
    }

    fn flat_missed(&mut self) {
        self.flat_pause = FLAT_PAUSE_CHUNKS;
    }

    /// A decoder for `schema` that holds `rows` rows, reusing the last one when it fits.
    fn decoder(&mut self, schema: &SchemaRef, rows: usize) -> Result<Decoder, ArrowError> {
        match self.decoder.take() {
            Some((s, capacity, decoder)) if Arc::ptr_eq(&s, schema) && capacity >= rows => {
                Ok(decoder)
            }
            _ => ReaderBuilder::new(Arc::clone(schema))
                .with_strict_mode(true)
                .with_batch_size(rows.max(MIN_DECODER_ROWS))
                .build_decoder(),
        }
    }
}

/// Encodes rows with `schema`; fields not in the schema are an error (strict mode), so that
/// new fields are noticed rather than silently dropped.
pub fn encode<'a>(
    schema: &SchemaRef,
    rows: impl ExactSizeIterator<Item = &'a Row> + Clone,
    scratch: &mut Scratch,
) -> Result<RecordBatch, ArrowError> {
    let count = rows.len();
    if scratch.try_flat() {
        let raw = rows.clone().filter_map(|r| match r {
            Row::Raw(bytes) => Some(bytes.as_ref()),
            Row::Value(_) => None,
        });
        if rows.clone().all(|r| matches!(r, Row::Raw(_)))
            && let Some(batch) = flat_json::decode(schema, count, raw)
        {
            return Ok(batch);
        }
        scratch.flat_missed();
    }
    let mut decoder = scratch.decoder(schema, count)?;
    let text = &mut scratch.text;
    text.clear();
    // Rows keep their order: consecutive raw rows are decoded in one call, consecutive
    // structured rows serialized together.
    let mut values: Vec<&Value> = Vec::new();
    for row in rows {
        match row {
            Row::Raw(bytes) => {
                if !values.is_empty() {
                    decoder.serialize(&values)?;
                    values.clear();
                }
                text.extend_from_slice(bytes);
                text.push(b'\n');
            }
            Row::Value(v) => {
                if !text.is_empty() {
                    decoder.decode(text)?;
                    text.clear();
                }
                values.push(v);
            }
        }
    }
    if !text.is_empty() {
        decoder.decode(text)?;
    }
    if !values.is_empty() {
        decoder.serialize(&values)?;
    }
    let batch = decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema)));
    // Only a decoder that finished cleanly is reused; one that failed may hold half a row.
    scratch.decoder = Some((Arc::clone(schema), count.max(MIN_DECODER_ROWS), decoder));
    Ok(batch)
}

/// The schema arrow-json infers for these rows.
pub fn infer<'a>(rows: impl Iterator<Item = &'a Row>) -> Result<Schema, ArrowError> {
    let values = rows.map(Row::to_value);
    let schema = arrow_json::reader::infer_json_schema_from_iterator(values)?;
    Ok(without_null_types(&schema))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    use serde_json::json;

    #[test]
    fn raw_and_value_rows_encode_alike_and_unknown_fields_fail() {
        let rows = [
            Row::Raw(Bytes::from_static(br#"{"id": 1, "name": "a"}"#)),
            Row::from_value(json!({"id": 2, "name": "b"})),
        ];
        let schema = Arc::new(infer(rows.iter()).unwrap());
        let mut scratch = Scratch::default();
        let batch = encode(&schema, rows.iter(), &mut scratch).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        let extra = [Row::from_value(json!({"id": 3, "surprise": true}))];
        assert!(encode(&schema, extra.iter(), &mut scratch).is_err());
        let wrong = [Row::from_value(json!({"id": "three"}))];
        assert!(encode(&schema, wrong.iter(), &mut scratch).is_err());
        // After failures the scratch still encodes good rows.
        assert_eq!(
            encode(&schema, rows.iter(), &mut scratch)
                .unwrap()
                .num_rows(),
            2
        );
    }

    #[test]
    fn timestamp_columns_take_iso_text_and_epoch_millis() {
        use arrow_array::types::TimestampMillisecondType;
        let iso = [Row::from_value(
            json!({"ts": "2024-03-04T01:00:00Z", "n": 1}),
        )];
        let millis = [Row::from_value(json!({"ts": 1_709_514_000_000i64, "n": 2}))];
        let mut scratch = Scratch::default();
        for rows in [&iso, &millis] {
            let inferred = infer(rows.iter()).unwrap();
            let schema = Arc::new(super::super::schema::with_timestamp_columns(
                inferred,
                &["ts".to_owned()],
            ));
            assert_eq!(
                schema.field(schema.index_of("ts").unwrap()).data_type(),
                &super::super::schema::timestamp_type()
            );
            let batch = encode(&schema, rows.iter(), &mut scratch).unwrap();
            let ts = batch
                .column(schema.index_of("ts").unwrap())
                .as_primitive::<TimestampMillisecondType>();
            assert_eq!(ts.value(0), 1_709_514_000_000);
        }
    }
}
