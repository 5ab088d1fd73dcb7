//! Kafka Connect's and Debezium's logical types: their schema names, and Decimals.
//!
//! A Connect Decimal travels as base64 of its unscaled two's-complement value (JsonConverter's
//! BASE64 form) with the scale in its schema's parameters. [`decimal_text`] turns it into exact
//! decimal digits (Parquet's DECIMAL columns, JsonConverter's `decimal.format=NUMERIC`), never
//! through a float; [`NumericDecimals`] writes a value with its schema, Decimals as numbers.

use base64::Engine;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

/// Milliseconds in a day: the unit step of Connect's `Date` (days since the epoch).
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// `org.apache.kafka.connect.data.Decimal`: bytes, the unscaled value; `scale` parameter.
pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
/// `org.apache.kafka.connect.data.Date`: int32 days since the epoch.
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
/// `org.apache.kafka.connect.data.Time`: int32 milliseconds since midnight.
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
/// `org.apache.kafka.connect.data.Timestamp`: int64 milliseconds since the epoch.
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";
/// Debezium's `io.debezium.time.Date` (int32 days since the epoch).
pub const DEBEZIUM_DATE: &str = "io.debezium.time.Date";
/// Debezium's `io.debezium.time.Time` (int32 milliseconds since midnight).
pub const DEBEZIUM_TIME: &str = "io.debezium.time.Time";
/// Debezium's `io.debezium.time.Timestamp` (int64 milliseconds since the epoch, no zone).
pub const DEBEZIUM_TIMESTAMP: &str = "io.debezium.time.Timestamp";

/// The decimal text of a base64 unscaled value with `scale`; `None` when it is not one (or
/// wider than 128 bits).
pub fn decimal_text(base64_unscaled: &str, scale: u32) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_unscaled)
        .ok()?;
    if bytes.is_empty() || bytes.len() > 16 {
        return None;
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(&bytes);
    let unscaled = i128::from_be_bytes(wide);
    let digits = unscaled.unsigned_abs().to_string();
    let scale = scale as usize;
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return Some(format!("{sign}{digits}"));
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    Some(format!("{sign}{int}.{frac}"))
}

/// A value serialized with its Connect schema, Decimals as numbers.
pub struct NumericDecimals<'a> {
    pub schema: &'a Value,
    pub value: &'a Value,
}

impl Serialize for NumericDecimals<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (schema, value) = (self.schema, self.value);
        if schema["name"] == DECIMAL
            && let Value::String(b64) = value
        {
            let scale = schema["parameters"]["scale"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            if let Some(text) = decimal_text(b64, scale)
                && let Ok(raw) = RawValue::from_string(text)
            {
                return raw.serialize(serializer);
            }
        }
        match (schema["type"].as_str(), value) {
            (Some("struct"), Value::Object(fields)) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, v) in fields {
                    let field_schema = schema["fields"]
                        .as_array()
                        .and_then(|fs| fs.iter().find(|f| f["field"] == name.as_str()))
                        .unwrap_or(&Value::Null);
                    map.serialize_entry(
                        name,
                        &NumericDecimals {
                            schema: field_schema,
                            value: v,
                        },
                    )?;
                }
                map.end()
            }
            (Some("array"), Value::Array(items)) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(&NumericDecimals {
                        schema: &schema["items"],
                        value: v,
                    })?;
                }
                seq.end()
            }
            (Some("map"), Value::Object(entries)) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(
                        k,
                        &NumericDecimals {
                            schema: &schema["values"],
                            value: v,
                        },
                    )?;
                }
                map.end()
            }
            _ => value.serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unscaled_values_print_exactly() {
        assert_eq!(decimal_text("ATE=", 2).as_deref(), Some("3.05"));
        assert_eq!(decimal_text("nA==", 2).as_deref(), Some("-1.00"));
        assert_eq!(decimal_text("Bw==", 3).as_deref(), Some("0.007"));
        assert_eq!(decimal_text("Bw==", 0).as_deref(), Some("7"));
        assert_eq!(decimal_text("not base64!", 2), None);
    }

    #[test]
    fn decimals_inside_structs_become_numbers() {
        let schema = json!({"type": "struct", "fields": [
            {"field": "id", "type": "int32"},
            {"field": "price", "type": "bytes", "name": DECIMAL, "parameters": {"scale": "2"}},
            {"field": "history", "type": "array", "items": {"type": "bytes", "name": DECIMAL, "parameters": {"scale": "2"}}}
        ]});
        let value = json!({"id": 1, "price": "ATE=", "history": ["nA==", null]});
        let text = serde_json::to_string(&NumericDecimals {
            schema: &schema,
            value: &value,
        })
        .unwrap();
        assert_eq!(text, r#"{"id":1,"price":3.05,"history":[-1.00,null]}"#);
    }
}
