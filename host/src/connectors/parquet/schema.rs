//! Arrow schemas for the Parquet sink: from Kafka Connect schemas (envelopes or the `schema`
//! option), inferred from JSON, and merged when records gain fields.

use crate::api::logical;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value;

/// Column name used when the record value is not a struct.
pub const VALUE_COLUMN: &str = "value";

/// A Kafka Connect schema the Parquet sink cannot map to Arrow; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnsupportedSchema(pub String);

/// Why the schema of a file (or of the configured `schema`) could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(transparent)]
    Unsupported(#[from] UnsupportedSchema),
    /// Records without a Connect schema whose JSON Arrow cannot type.
    #[error(transparent)]
    Inferred(#[from] arrow_schema::ArrowError),
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// The Arrow type of a Kafka Connect schema (`{"type":"int64","name":"...Timestamp",...}`).
pub fn connect_type(schema: &Value) -> Result<DataType, UnsupportedSchema> {
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| UnsupportedSchema(format!("schema without a \"type\": {schema}")))?;
    let name = schema.get("name").and_then(Value::as_str).unwrap_or("");
    let param = |key: &str| {
        schema
            .get("parameters")
            .and_then(|p| p.get(key))
            .and_then(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .or_else(|| Some(v.to_string()))
            })
    };
    Ok(match (ty, name) {
        ("int8", _) => DataType::Int8,
        ("int16", _) => DataType::Int16,
        ("int32", logical::DATE | logical::DEBEZIUM_DATE) => DataType::Date32,
        ("int32", logical::TIME | logical::DEBEZIUM_TIME) => {
            DataType::Time32(TimeUnit::Millisecond)
        }
        ("int32", _) => DataType::Int32,
        // Time zones as offsets: named zones would need chrono-tz in arrow.
        ("int64", logical::TIMESTAMP | logical::DEBEZIUM_TIMESTAMP) => {
            DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
        }
        ("int64", "io.debezium.time.MicroTimestamp") => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        }
        ("int64", "io.debezium.time.NanoTimestamp") => {
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into()))
        }
        ("int64", "io.debezium.time.MicroTime") => DataType::Time64(TimeUnit::Microsecond),
        ("int64", _) => DataType::Int64,
        ("float" | "float32", _) => DataType::Float32,
        ("double" | "float64", _) => DataType::Float64,
        ("boolean", _) => DataType::Boolean,
        ("string", _) => DataType::Utf8,
        ("bytes", logical::DECIMAL) => {
            let scale: i8 = param("scale").and_then(|s| s.parse().ok()).ok_or_else(|| {
                UnsupportedSchema("Decimal schema without a numeric \"scale\" parameter".to_owned())
            })?;
            let precision: u8 = param("connect.decimal.precision")
                .and_then(|s| s.parse().ok())
                .unwrap_or(38)
                .min(38);
            DataType::Decimal128(precision, scale)
        }
        // Bytes are carried as base64 text in JSON; kept as such.
        ("bytes", _) => DataType::Utf8,
        ("array", _) => {
            let items = schema
                .get("items")
                .ok_or_else(|| UnsupportedSchema("array schema without \"items\"".to_owned()))?;
            DataType::List(Arc::new(connect_field("item", items)?))
        }
        ("map", _) => {
            let keys = schema
                .get("keys")
                .ok_or_else(|| UnsupportedSchema("map schema without \"keys\"".to_owned()))?;
            let values = schema
                .get("values")
                .ok_or_else(|| UnsupportedSchema("map schema without \"values\"".to_owned()))?;
            let entries = Fields::from(vec![
                Field::new("key", connect_type(keys)?, false),
                connect_field("value", values)?,
            ]);
            DataType::Map(
                Arc::new(Field::new("entries", DataType::Struct(entries), false)),
                false,
            )
        }
        ("struct", _) => DataType::Struct(connect_fields(schema)?),
        (other, _) => {
            return Err(UnsupportedSchema(format!(
                "unsupported Kafka Connect schema type {other:?}"
            )));
        }
    })
}

fn connect_field(name: &str, schema: &Value) -> Result<Field, UnsupportedSchema> {
    let optional = schema
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Ok(Field::new(name, connect_type(schema)?, optional))
}

fn connect_fields(schema: &Value) -> Result<Fields, UnsupportedSchema> {
    let fields = schema
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| UnsupportedSchema("struct schema without \"fields\"".to_owned()))?;
    fields
        .iter()
        .map(|f| {
            let name = f.get("field").and_then(Value::as_str).ok_or_else(|| {
                UnsupportedSchema(format!("struct field without a \"field\" name: {f}"))
            })?;
            connect_field(name, f)
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Fields::from)
}

/// The table schema for records with this Connect value schema: a struct's fields become
/// columns; any other type becomes a single `value` column.
pub fn connect_schema(schema: &Value) -> Result<Schema, UnsupportedSchema> {
    match connect_type(schema)? {
        DataType::Struct(fields) => Ok(Schema::new(fields)),
        other => Ok(Schema::new(vec![Field::new(VALUE_COLUMN, other, true)])),
    }
}

/// Rewrites Connect payload values that JSON decoding cannot read as they are: Decimal bytes
/// (base64 of a big-endian two's-complement unscaled integer) become decimal strings.
pub fn prepare_connect_value(value: &mut Value, schema: &Value) {
    let ty = schema.get("type").and_then(Value::as_str).unwrap_or("");
    let name = schema.get("name").and_then(Value::as_str).unwrap_or("");
    match (ty, value) {
        ("bytes", v @ Value::String(_)) if name == logical::DECIMAL => {
            let scale = schema
                .get("parameters")
                .and_then(|p| p.get("scale"))
                .and_then(|s| s.as_str()?.parse::<u32>().ok())
                .unwrap_or(0);
            if let Some(text) = v.as_str().and_then(|s| logical::decimal_text(s, scale)) {
                *v = Value::String(text);
            }
        }
        ("struct", Value::Object(map)) => {
            if let Some(fields) = schema.get("fields").and_then(Value::as_array) {
                for f in fields {
                    if let Some(name) = f.get("field").and_then(Value::as_str)
                        && let Some(v) = map.get_mut(name)
                    {
                        prepare_connect_value(v, f);
                    }
                }
            }
        }
        ("array", Value::Array(items)) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prepare_connect_value(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// Merges the schema of newer records into the current one: new fields are added (nullable),
/// integers widen to floats, null-typed (all-null so far) fields take the new type, structs
/// merge field by field. A real conflict keeps the current type: those records then fail to
/// encode and go to the dead-letter queue.
pub fn merge(current: &Schema, newer: &Schema) -> Schema {
    Schema::new(merge_fields(current.fields(), newer.fields()))
}

fn merge_fields(current: &Fields, newer: &Fields) -> Fields {
    let mut out: Vec<Field> = current.iter().map(|f| f.as_ref().clone()).collect();
    for field in newer.iter() {
        match out.iter_mut().find(|f| f.name() == field.name()) {
            Some(existing) => {
                let ty = merge_type(existing.data_type(), field.data_type());
                let nullable = existing.is_nullable() || field.is_nullable();
                *existing = Field::new(existing.name(), ty, nullable);
            }
            None => out.push(field.as_ref().clone().with_nullable(true)),
        }
    }
    Fields::from(out)
}

fn merge_type(current: &DataType, newer: &DataType) -> DataType {
    match (current, newer) {
        (a, b) if a == b => a.clone(),
        (DataType::Null, b) => b.clone(),
        (a, DataType::Null) => a.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        (DataType::Struct(a), DataType::Struct(b)) => DataType::Struct(merge_fields(a, b)),
        (DataType::List(a), DataType::List(b)) => {
            let ty = merge_type(a.data_type(), b.data_type());
            DataType::List(Arc::new(Field::new(a.name(), ty, true)))
        }
        (a, _) => a.clone(),
    }
}

/// Replaces Null-typed columns (fields that were null in every record seen) with nullable
/// strings, which Parquet can store and later merges can widen from.
/// The type of `timestamp.columns` fields: Kafka Connect's `Timestamp` maps to the same.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
}

/// `schema` with the top-level fields named in `columns` typed as timestamps (arrow-json then
/// reads ISO-8601 text and epoch milliseconds into them).
pub fn with_timestamp_columns(schema: Schema, columns: &[String]) -> Schema {
    if columns.is_empty() {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match columns.iter().any(|c| c == f.name()) {
            true => Field::new(f.name(), timestamp_type(), f.is_nullable()),
            false => f.as_ref().clone(),
        })
        .collect();
    Schema::new(fields)
}

pub fn without_null_types(schema: &Schema) -> Schema {
    fn fix(field: &Field) -> Field {
        match field.data_type() {
            DataType::Null => Field::new(field.name(), DataType::Utf8, true),
            DataType::Struct(fields) => Field::new(
                field.name(),
                DataType::Struct(fields.iter().map(|f| fix(f)).collect()),
                field.is_nullable(),
            ),
            DataType::List(item) => Field::new(
                field.name(),
                DataType::List(Arc::new(fix(item))),
                field.is_nullable(),
            ),
            _ => field.clone(),
        }
    }
    Schema::new(schema.fields().iter().map(|f| fix(f)).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn connect_schemas_map_to_arrow_types() {
        let schema = connect_schema(&json!({
            "type": "struct",
            "fields": [
                {"field": "id", "type": "int32", "optional": false},
                {"field": "ts", "type": "int64", "optional": true, "name": "org.apache.kafka.connect.data.Timestamp"},
                {"field": "amount", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                 "parameters": {"scale": "2", "connect.decimal.precision": "10"}},
                {"field": "tags", "type": "array", "items": {"type": "string"}}
            ]
        }))
        .unwrap();
        assert_eq!(schema.field(0).data_type(), &DataType::Int32);
        assert!(!schema.field(0).is_nullable());
        assert_eq!(
            schema.field(1).data_type(),
            &DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()))
        );
        assert_eq!(schema.field(2).data_type(), &DataType::Decimal128(10, 2));
        assert!(matches!(schema.field(3).data_type(), DataType::List(_)));
    }

    #[test]
    fn decimals_decode_from_connect_bytes() {
        // 12345 = 0x3039, scale 2 → 123.45; -1 = 0xFF.
        assert_eq!(logical::decimal_text("MDk=", 2).as_deref(), Some("123.45"));
        assert_eq!(logical::decimal_text("/w==", 0).as_deref(), Some("-1"));
        assert_eq!(logical::decimal_text("AQ==", 3).as_deref(), Some("0.001"));
    }

    #[test]
    fn merge_adds_fields_and_widens_numbers() {
        let a = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Null, true),
        ]);
        let b = Schema::new(vec![
            Field::new("id", DataType::Float64, true),
            Field::new("x", DataType::Utf8, true),
            Field::new("new", DataType::Boolean, false),
        ]);
        let m = merge(&a, &b);
        assert_eq!(m.field(0).data_type(), &DataType::Float64);
        assert_eq!(m.field(1).data_type(), &DataType::Utf8);
        assert!(m.field(2).is_nullable());
    }
}
