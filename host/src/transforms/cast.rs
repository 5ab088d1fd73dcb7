//! `org.apache.kafka.connect.transforms.Cast$Key` / `$Value`: casts top-level fields, or the
//! whole value, to another primitive type (`spec=age:int32,score:float64`, or `spec=string`).
//!
//! Inputs: integers, floats, booleans, strings, and bytes (to string only: the base64 text).
//! Date, Time and Timestamp values cast to string as ISO-8601 text, as Kafka Connect's
//! `Values.dateFormatFor` does. Unlike Java's silent narrowing, an integer that does not fit
//! the target width is an error. A null value, or a null field, passes through unchanged.

use serde_json::{Map, Number, Value};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema::{self, DATE, DECIMAL, TIME, TIMESTAMP};
use super::util::{DateFormat, Invalid, MILLIS_PER_DAY, Operand, java_double, java_float};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.Cast",
    has_variants: true,
    keys: &[SPEC],
    build,
};

const SPEC: ConfigKey = ConfigKey::new(
    "spec",
    KeyType::List,
    "List of fields and the type to cast them to of the form `field1:type,field2:type` to cast \
     fields of maps or structs, or a single type to cast the entire value. Valid types are \
     int8, int16, int32, int64, float32, float64, boolean, and string. Note that binary fields \
     can only be cast to string.",
)
.required();

/// The types Cast can produce (`SUPPORTED_CAST_OUTPUT_TYPES`).
const TARGETS: [&str; 8] = [
    "int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string",
];

/// The schema types Cast accepts as input (`SUPPORTED_CAST_INPUT_TYPES`).
const SOURCES: [&str; 9] = [
    "int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes",
];

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let entries = options.list(&SPEC);
    let mut fields = Vec::new();
    let mut whole = None;
    let mut valid = !entries.is_empty();
    for entry in &entries {
        let (field, ty) = match entry.split_once(':') {
            Some((field, ty)) => (Some(field.trim()), ty.trim()),
            None => (None, entry.trim()),
        };
        let ty = ty.to_ascii_lowercase();
        let Some(target) = TARGETS.iter().find(|t| **t == ty) else {
            let message = format!(
                "invalid type {ty:?} in cast spec entry {entry:?}; supported types are {}",
                TARGETS.join(", ")
            );
            options.issue(SPEC.name, message);
            valid = false;
            continue;
        };
        match field {
            Some(field) if !field.is_empty() && !field.contains(':') => {
                fields.push((field.to_owned(), *target));
            }
            Some(_) => {
                options.issue(
                    SPEC.name,
                    format!("invalid cast spec entry {entry:?}, expected field:type"),
                );
                valid = false;
            }
            None => whole = Some(*target),
        }
    }
    if whole.is_some() && entries.len() > 1 {
        options.issue(
            SPEC.name,
            "a type for the entire value (an entry without `field:`) must be the only entry",
        );
        valid = false;
    }
    valid.then(|| {
        Box::new(Cast {
            op: Operand::new(PLUGIN.class, part),
            fields,
            whole,
        }) as Box<dyn Transform>
    })
}

#[derive(Debug)]
struct Cast {
    op: Operand,
    fields: Vec<(String, &'static str)>,
    whole: Option<&'static str>,
}

impl Cast {
    fn error(&self, what: &str, value: &Value, target: &str, why: Invalid) -> TransformError {
        self.op
            .error(format!("cannot cast {what}{value} to {target}: {why}"))
    }

    fn whole_value(&self, data: &Data, target: &str) -> Result<Data, TransformError> {
        let fail = |why| self.error("value ", &data.value, target, why);
        let value = cast_value(data.schema.as_deref(), &data.value, target).map_err(fail)?;
        let schema = match &data.schema {
            Some(schema) => Some(cast_schema(schema, target, true).map_err(fail)?.into()),
            None => None,
        };
        Ok(Data { schema, value })
    }

    fn schemaless(&self, value: &Map<String, Value>) -> Result<Data, TransformError> {
        let mut updated = value.clone();
        for (name, target) in &self.fields {
            if let Some(v) = value.get(name) {
                let cast = cast_value(None, v, target)
                    .map_err(|why| self.error(&format!("field {name:?} value "), v, target, why))?;
                updated.insert(name.clone(), cast);
            }
        }
        Ok(Data::schemaless(Value::Object(updated)))
    }

    fn with_schema(&self, data: &Data) -> Result<Data, TransformError> {
        let (struct_schema, value) = schema::require_struct(data, &self.op.label)?;
        let mut fields = Vec::new();
        let mut updated = value.clone();
        for field in schema::fields(struct_schema) {
            let name = schema::field_name(field);
            let Some((_, target)) = self.fields.iter().find(|(f, _)| f == name) else {
                fields.push(field.clone());
                continue;
            };
            let v = schema::get(value, name);
            let fail = |why| self.error(&format!("field {name:?} value "), v, target, why);
            updated.insert(
                name.to_owned(),
                cast_value(Some(field), v, target).map_err(fail)?,
            );
            let field_schema = cast_schema(field, target, false).map_err(fail)?;
            fields.push(schema::named_field(name, field_schema));
        }
        Ok(Data {
            schema: Some(schema::struct_like(struct_schema, fields).into()),
            value: Value::Object(updated),
        })
    }
}

impl Transform for Cast {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        match self.whole {
            Some(target) => self.op.update(record, |data| match data.value.is_null() {
                true => Ok(None),
                false => self.whole_value(data, target).map(Some),
            }),
            None => self.op.update_fields(
                record,
                |data| self.with_schema(data),
                |value| self.schemaless(value),
            ),
        }
    }
}

/// The schema after casting a value of schema `from` to `target`: the target's primitive type
/// with the same optionality and a cast default. The whole-value cast also keeps the name, doc
/// and parameters (Kafka Connect's `copySchemaBasics`), except a logical type's name.
fn cast_schema(from: &Value, target: &str, whole: bool) -> Result<Value, Invalid> {
    let mut cast = schema::primitive(target, schema::is_optional(from));
    let map = cast.as_object_mut().expect("primitive schemas are objects");
    if whole && !schema::is_logical(from) {
        schema::copy_basics(from, map);
    }
    if let Some(default) = from.get("default").filter(|d| !d.is_null()) {
        let default = cast_value(Some(from), default, target).map_err(|why| {
            Invalid(format!(
                "its schema default {default} cannot be cast: {why}"
            ))
        })?;
        map.insert("default".to_owned(), default);
    }
    Ok(cast)
}

/// Casts one value; `schema` (when there is one) decides the input type.
fn cast_value(schema: Option<&Value>, value: &Value, target: &str) -> Result<Value, Invalid> {
    if value.is_null() {
        return Ok(Value::Null);
    }
    let (mut float32, mut float_schema) = (false, false);
    if let Some(schema) = schema {
        let ty = schema::type_of(schema);
        if !SOURCES.contains(&ty) {
            return Err(Invalid(format!(
                "casting from {ty} is not supported; supported types are {}",
                SOURCES.join(", ")
            )));
        }
        match schema::name_of(schema) {
            Some(DECIMAL) => {
                return Err(Invalid(
                    "casting Decimal values is not supported".to_owned(),
                ));
            }
            Some(DATE | TIME | TIMESTAMP) if target == "string" => {
                let millis = value
                    .as_i64()
                    .ok_or_else(|| Invalid("expected epoch-based integer".to_owned()))?;
                let millis = if schema::name_of(schema) == Some(DATE) {
                    millis * MILLIS_PER_DAY
                } else {
                    millis
                };
                return Ok(Value::String(iso_text(millis)?));
            }
            _ => {}
        }
        if ty == "bytes" {
            return match (target, value) {
                ("string", Value::String(_)) => Ok(value.clone()),
                _ => Err(Invalid(
                    "binary values can only be cast to string".to_owned(),
                )),
            };
        }
        float32 = ty == "float32";
        float_schema = float32 || ty == "float64";
    }
    match value {
        Value::Bool(b) => cast_scalar(Scalar::Int(i64::from(*b)), target, *b),
        Value::Number(n) => match n.as_i64().filter(|_| !float_schema) {
            Some(i) => cast_scalar(Scalar::Int(i), target, i != 0),
            None => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                if target == "string" {
                    let text = if float32 {
                        java_float(f as f32)
                    } else {
                        java_double(f)
                    };
                    return Ok(Value::String(text));
                }
                cast_scalar(Scalar::Float(f), target, f.trunc() != 0.0)
            }
        },
        Value::String(s) => cast_text(s, target),
        other => Err(Invalid(format!(
            "casting from {} is not supported; supported types are {}",
            if other.is_array() { "array" } else { "map" },
            SOURCES.join(", ")
        ))),
    }
}

enum Scalar {
    Int(i64),
    Float(f64),
}

/// Casts a number or boolean (`truth` is its boolean reading, as Java's `longValue() != 0`).
fn cast_scalar(scalar: Scalar, target: &str, truth: bool) -> Result<Value, Invalid> {
    match (target, scalar) {
        ("boolean", _) => Ok(Value::Bool(truth)),
        ("string", Scalar::Int(i)) => Ok(Value::String(i.to_string())),
        ("string", Scalar::Float(f)) => Ok(Value::String(java_double(f))),
        ("float32" | "float64", Scalar::Int(i)) => float(i as f64, target),
        ("float32" | "float64", Scalar::Float(f)) => float(f, target),
        (_, Scalar::Int(i)) => integer(i128::from(i), target),
        (_, Scalar::Float(f)) if f.is_finite() => integer(f.trunc() as i128, target),
        (_, Scalar::Float(f)) => Err(Invalid(format!("{f} has no integer value"))),
    }
}

fn cast_text(text: &str, target: &str) -> Result<Value, Invalid> {
    match target {
        "string" => Ok(Value::String(text.to_owned())),
        // Java's Boolean.parseBoolean: "true" in any case, everything else is false.
        "boolean" => Ok(Value::Bool(text.eq_ignore_ascii_case("true"))),
        "float32" | "float64" => match text.trim().parse::<f64>() {
            Ok(f) => float(f, target),
            Err(_) => Err(Invalid("not a number".to_owned())),
        },
        _ => match text.parse::<i128>() {
            Ok(i) => integer(i, target),
            Err(_) => Err(Invalid("not an integer".to_owned())),
        },
    }
}

fn integer(i: i128, target: &str) -> Result<Value, Invalid> {
    let (min, max) = match target {
        "int8" => (i128::from(i8::MIN), i128::from(i8::MAX)),
        "int16" => (i128::from(i16::MIN), i128::from(i16::MAX)),
        "int32" => (i128::from(i32::MIN), i128::from(i32::MAX)),
        _ => (i128::from(i64::MIN), i128::from(i64::MAX)),
    };
    match i64::try_from(i) {
        Ok(v) if (min..=max).contains(&i) => Ok(Value::from(v)),
        _ => Err(Invalid(format!("out of range for {target} [{min}, {max}]"))),
    }
}

/// A float as JSON; float32 values are rounded to single precision and written with their
/// shortest decimal form (what JsonConverter writes for a Java `float`).
fn float(f: f64, target: &str) -> Result<Value, Invalid> {
    let f = if target == "float32" {
        let single = f as f32;
        single
            .to_string()
            .parse::<f64>()
            .unwrap_or(f64::from(single))
    } else {
        f
    };
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| Invalid(format!("{f} cannot be represented in JSON")))
}

/// Kafka Connect's `Values.dateFormatFor`: a time of day before the first midnight, a date at
/// midnight, else a full timestamp.
fn iso_text(millis: i64) -> Result<String, Invalid> {
    let pattern = if (0..MILLIS_PER_DAY).contains(&millis) {
        "HH:mm:ss.SSS'Z'"
    } else if millis % MILLIS_PER_DAY == 0 {
        "yyyy-MM-dd"
    } else {
        "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
    };
    DateFormat::new(pattern)?.format(millis)
}
