//! `org.apache.kafka.connect.transforms.MaskField$Key` / `$Value`: replaces the listed fields
//! with their type's null-equivalent (`0`, `false`, `""`, an empty array or map), or with
//! `replacement` converted to the field's type (numbers and strings only). A null field stays
//! null; a null value passes through unchanged. The schema does not change.

use serde_json::{Map, Number, Value, json};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema::{self, DATE, DECIMAL, TIME, TIMESTAMP};
use super::util::{Operand, describe};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.MaskField",
    has_variants: true,
    keys: &[FIELDS, REPLACEMENT],
    build,
};

const FIELDS: ConfigKey =
    ConfigKey::new("fields", KeyType::List, "Names of fields to mask.").required();

const REPLACEMENT: ConfigKey = ConfigKey::new(
    "replacement",
    KeyType::String,
    "Custom value replacement, that will be applied to all `fields` values (numeric or \
     non-empty string values only). Without it, fields are set to their type's null-equivalent.",
);

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let fields = options.list(&FIELDS);
    let replacement = options.string(&REPLACEMENT);
    if replacement.as_deref() == Some("") {
        options.issue(REPLACEMENT.name, "must be a non-empty string when set");
        return None;
    }
    if fields.is_empty() {
        return None;
    }
    Some(Box::new(MaskField {
        op: Operand::new(PLUGIN.class, part),
        fields,
        replacement,
    }))
}

#[derive(Debug)]
struct MaskField {
    op: Operand,
    fields: Vec<String>,
    replacement: Option<String>,
}

/// What a field holds, as far as masking cares: from its schema, or from the JSON value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Integer {
        min: i64,
        max: i64,
    },
    Float,
    Boolean,
    Text,
    Array,
    Map,
    /// Date, Time and Timestamp: masked to the epoch, never replaced.
    Temporal,
    Decimal,
    Other(&'static str),
}

impl Kind {
    fn of_schema(schema: &Value) -> Self {
        match (schema::name_of(schema), schema::type_of(schema)) {
            (Some(DATE | TIME | TIMESTAMP), _) => Self::Temporal,
            (Some(DECIMAL), _) => Self::Decimal,
            (_, "int8") => Self::Integer {
                min: i8::MIN.into(),
                max: i8::MAX.into(),
            },
            (_, "int16") => Self::Integer {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            (_, "int32") => Self::Integer {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            (_, "int64") => Self::Integer {
                min: i64::MIN,
                max: i64::MAX,
            },
            (_, "float32" | "float64") => Self::Float,
            (_, "boolean") => Self::Boolean,
            (_, "string") => Self::Text,
            (_, "array") => Self::Array,
            (_, "map") => Self::Map,
            (_, "bytes") => Self::Other("bytes"),
            _ => Self::Other("struct"),
        }
    }

    fn of_value(value: &Value) -> Self {
        match value {
            Value::Number(n) if n.is_f64() => Self::Float,
            Value::Number(_) => Self::Integer {
                min: i64::MIN,
                max: i64::MAX,
            },
            Value::Bool(_) => Self::Boolean,
            Value::String(_) => Self::Text,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Map,
            Value::Null => Self::Other("null"),
        }
    }
}

impl MaskField {
    fn masked(&self, name: &str, value: &Value, kind: Kind) -> Result<Value, TransformError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let fail = |why: String| self.op.error(format!("cannot mask field {name:?}: {why}"));
        let Some(replacement) = &self.replacement else {
            return match kind {
                Kind::Integer { .. } | Kind::Temporal => Ok(json!(0)),
                Kind::Float => Ok(json!(0.0)),
                Kind::Boolean => Ok(json!(false)),
                Kind::Text => Ok(json!("")),
                // An empty map is `[]` when JsonConverter wrote the map as `[key, value]` pairs.
                Kind::Array | Kind::Map if value.is_array() => Ok(json!([])),
                Kind::Array | Kind::Map => Ok(json!({})),
                // BigDecimal.ZERO: unscaled value 0 as one big-endian byte, base64-encoded.
                Kind::Decimal => Ok(json!("AA==")),
                Kind::Other(what) => Err(fail(format!("cannot mask a {what} value"))),
            };
        };
        match kind {
            Kind::Text => Ok(json!(replacement)),
            Kind::Integer { min, max } => match replacement.trim().parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(json!(n)),
                _ => Err(fail(format!(
                    "unable to convert the replacement {replacement:?} to an integer in \
                     [{min}, {max}]"
                ))),
            },
            Kind::Float => replacement
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| {
                    fail(format!(
                        "unable to convert the replacement {replacement:?} to a number"
                    ))
                }),
            _ => Err(fail(format!(
                "a custom replacement applies to numbers and strings only, the field holds {}",
                describe(value)
            ))),
        }
    }

    fn schemaless(&self, value: &Map<String, Value>) -> Result<Data, TransformError> {
        let mut updated = value.clone();
        for name in &self.fields {
            if let Some(v) = value.get(name) {
                updated.insert(name.clone(), self.masked(name, v, Kind::of_value(v))?);
            }
        }
        Ok(Data::schemaless(Value::Object(updated)))
    }

    fn with_schema(&self, data: &Data) -> Result<Data, TransformError> {
        let (struct_schema, value) = schema::require_struct(data, &self.op.label)?;
        let mut updated = value.clone();
        for field in schema::fields(struct_schema) {
            let name = schema::field_name(field);
            if self.fields.iter().any(|f| f == name) {
                let masked = self.masked(name, schema::get(value, name), Kind::of_schema(field))?;
                updated.insert(name.to_owned(), masked);
            }
        }
        Ok(Data {
            schema: data.schema.clone(),
            value: Value::Object(updated),
        })
    }
}

impl Transform for MaskField {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        self.op.update_fields(
            record,
            |data| self.with_schema(data),
            |value| self.schemaless(value),
        )
    }
}
