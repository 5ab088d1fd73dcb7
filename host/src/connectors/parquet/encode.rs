//! Turning records into Arrow record batches with arrow-json's decoder: untouched JSON bytes
//! are decoded directly (no `serde_json::Value` in between); modified or structured values are
//! serialized into it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_schema::{ArrowError, Schema, SchemaRef};
use bytes::Bytes;
use serde_json::Value;

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

/// Encodes rows with `schema`; fields not in the schema are an error (strict mode), so that
/// new fields are noticed rather than silently dropped.
pub fn encode(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch, ArrowError> {
    let mut decoder = ReaderBuilder::new(Arc::clone(schema))
        .with_strict_mode(true)
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    // Rows keep their order: consecutive structured rows are serialized together.
    let mut values: Vec<&Value> = Vec::new();
    for row in rows {
        match row {
            Row::Raw(bytes) => {
                if !values.is_empty() {
                    decoder.serialize(&values)?;
                    values.clear();
                }
                decoder.decode(bytes)?;
                decoder.decode(b"\n")?;
            }
            Row::Value(v) => values.push(v),
        }
    }
    if !values.is_empty() {
        decoder.serialize(&values)?;
    }
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(Arc::clone(schema))))
}

/// The schema arrow-json infers for these rows.
pub fn infer(rows: &[Row]) -> Result<Schema, ArrowError> {
    let values = rows.iter().map(Row::to_value);
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
        let rows = vec![
            Row::Raw(Bytes::from_static(br#"{"id": 1, "name": "a"}"#)),
            Row::from_value(json!({"id": 2, "name": "b"})),
        ];
        let schema = Arc::new(infer(&rows).unwrap());
        let batch = encode(&schema, &rows).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let ids = batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 2]);
        let extra = vec![Row::from_value(json!({"id": 3, "surprise": true}))];
        assert!(encode(&schema, &extra).is_err());
        let wrong = vec![Row::from_value(json!({"id": "three"}))];
        assert!(encode(&schema, &wrong).is_err());
    }
}
