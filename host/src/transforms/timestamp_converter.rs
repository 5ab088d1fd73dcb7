//! `org.apache.kafka.connect.transforms.TimestampConverter$Key` / `$Value`: converts a timestamp
//! field (or the whole value) between epoch numbers (`unix`), formatted strings (`string`) and
//! Connect's `Date`, `Time` and `Timestamp` logical types. All conversions are in UTC.
//!
//! The input type comes from the schema (logical name, `string` or `int64`) or, schemaless, from
//! the JSON value: an integer is a `unix` timestamp, a string is parsed with `format`.

use serde_json::{Value, json};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema::{self, DATE, TIME, TIMESTAMP};
use super::util::{DateFormat, MILLIS_PER_DAY, Operand, describe};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.TimestampConverter",
    has_variants: true,
    keys: &[FIELD, TARGET_TYPE, FORMAT, UNIX_PRECISION],
    build,
};

const FIELD: ConfigKey = ConfigKey::new(
    "field",
    KeyType::String,
    "The field containing the timestamp, or empty if the entire value is a timestamp.",
)
.with_default("");

const TARGET_TYPE: ConfigKey = ConfigKey::new(
    "target.type",
    KeyType::String,
    "The desired timestamp representation: string, unix, Date, Time, or Timestamp.",
)
.required()
.one_of(&["string", "unix", "Date", "Time", "Timestamp"]);

const FORMAT: ConfigKey = ConfigKey::new(
    "format",
    KeyType::String,
    "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when \
     `target.type=string` or used to parse the input if the input is a string.",
)
.with_default("");

const UNIX_PRECISION: ConfigKey = ConfigKey::new(
    "unix.precision",
    KeyType::String,
    "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or \
     nanoseconds. Used to generate the output when `target.type=unix` or used to parse the \
     input if the input is a Long.",
)
.with_default("milliseconds")
.one_of(&["seconds", "milliseconds", "microseconds", "nanoseconds"]);

/// A timestamp representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

/// `unix.precision`: the unit of epoch numbers.
#[derive(Debug, Clone, Copy)]
enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    /// Epoch milliseconds from epoch `units`, truncating as Java's `TimeUnit` does.
    fn to_millis(self, units: i64) -> Option<i64> {
        match self {
            Self::Seconds => units.checked_mul(1_000),
            Self::Milliseconds => Some(units),
            Self::Microseconds => Some(units / 1_000),
            Self::Nanoseconds => Some(units / 1_000_000),
        }
    }

    /// Epoch units from epoch milliseconds.
    fn to_units(self, millis: i64) -> Option<i64> {
        match self {
            Self::Seconds => Some(millis / 1_000),
            Self::Milliseconds => Some(millis),
            Self::Microseconds => millis.checked_mul(1_000),
            Self::Nanoseconds => millis.checked_mul(1_000_000),
        }
    }
}

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let field = options.string(&FIELD).unwrap_or_default();
    let target = options.choice(&TARGET_TYPE);
    let pattern = options.string(&FORMAT).unwrap_or_default();
    let precision = options.choice(&UNIX_PRECISION);
    let target = match target?.as_str() {
        "string" => Kind::String,
        "unix" => Kind::Unix,
        "date" => Kind::Date,
        "time" => Kind::Time,
        _ => Kind::Timestamp,
    };
    let format = if pattern.is_empty() {
        None
    } else {
        match DateFormat::new(&pattern) {
            Ok(f) => Some(f),
            Err(e) => {
                options.issue(FORMAT.name, e);
                return None;
            }
        }
    };
    if target == Kind::String && format.is_none() {
        options.issue(
            FORMAT.name,
            "TimestampConverter requires the format option when target.type is string",
        );
        return None;
    }
    let precision = match precision?.as_str() {
        "seconds" => Precision::Seconds,
        "microseconds" => Precision::Microseconds,
        "nanoseconds" => Precision::Nanoseconds,
        _ => Precision::Milliseconds,
    };
    Some(Box::new(TimestampConverter {
        op: Operand::new(PLUGIN.class, part),
        field,
        target,
        format,
        precision,
    }))
}

#[derive(Debug)]
struct TimestampConverter {
    op: Operand,
    /// Empty for the whole value.
    field: String,
    target: Kind,
    format: Option<DateFormat>,
    precision: Precision,
}

impl TimestampConverter {
    /// The input representation, from the schema or (schemaless) from the JSON value.
    fn kind_of(&self, schema: Option<&Value>, value: &Value) -> Result<Kind, TransformError> {
        let Some(schema) = schema else {
            return match value {
                Value::Number(n) if n.is_i64() => Ok(Kind::Unix),
                Value::String(_) => Ok(Kind::String),
                other => Err(self.op.error(format!(
                    "expected an integer or a string timestamp, got {}",
                    describe(other)
                ))),
            };
        };
        match (schema::name_of(schema), schema::type_of(schema)) {
            (Some(TIMESTAMP), _) => Ok(Kind::Timestamp),
            (Some(DATE), _) => Ok(Kind::Date),
            (Some(TIME), _) => Ok(Kind::Time),
            (_, "string") => Ok(Kind::String),
            (_, "int64") => Ok(Kind::Unix),
            (_, ty) => Err(self.op.error(format!(
                "schema type {ty:?} does not correspond to a known timestamp type format"
            ))),
        }
    }

    fn millis_of(&self, value: &Value, kind: Kind) -> Result<i64, TransformError> {
        if let Kind::String = kind {
            let text = value.as_str().unwrap_or_default();
            let format = self.format.as_ref().ok_or_else(|| {
                self.op
                    .error("the input is a string timestamp, but no format is configured")
            })?;
            return format
                .parse(text)
                .map_err(|e| self.op.error(format!("could not parse timestamp: {e}")));
        }
        let n = value.as_i64().ok_or_else(|| {
            self.op
                .error(format!("expected an integer timestamp, got {value}"))
        })?;
        let millis = match kind {
            Kind::Date => n.checked_mul(MILLIS_PER_DAY),
            Kind::Unix => self.precision.to_millis(n),
            _ => Some(n),
        };
        millis.ok_or_else(|| self.op.error(format!("timestamp {n} is out of range")))
    }

    fn represent(&self, millis: i64) -> Result<Value, TransformError> {
        Ok(match self.target {
            Kind::String => {
                let format = self
                    .format
                    .as_ref()
                    .expect("build requires a format for string");
                json!(format.format(millis).map_err(|e| self.op.error(e))?)
            }
            Kind::Unix => json!(self.precision.to_units(millis).ok_or_else(|| {
                self.op
                    .error(format!("timestamp {millis} ms is out of range"))
            })?),
            Kind::Date => json!(millis.div_euclid(MILLIS_PER_DAY)),
            Kind::Time => json!(millis.rem_euclid(MILLIS_PER_DAY)),
            Kind::Timestamp => json!(millis),
        })
    }

    /// Converts one value of schema `schema` (null stays null).
    fn convert(&self, schema: Option<&Value>, value: &Value) -> Result<Value, TransformError> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        let kind = self.kind_of(schema, value)?;
        self.represent(self.millis_of(value, kind)?)
    }

    /// The schema of the converted value.
    fn target_schema(&self, optional: bool) -> Value {
        match self.target {
            Kind::String => schema::primitive("string", optional),
            Kind::Unix => schema::primitive("int64", optional),
            Kind::Date => schema::logical("int32", DATE, optional),
            Kind::Time => schema::logical("int32", TIME, optional),
            Kind::Timestamp => schema::logical("int64", TIMESTAMP, optional),
        }
    }

    fn whole(&self, data: &Data) -> Result<Option<Data>, TransformError> {
        if data.value.is_null() && data.schema.is_none() {
            return Ok(None);
        }
        Ok(Some(Data {
            value: self.convert(data.schema.as_deref(), &data.value)?,
            schema: data
                .schema
                .as_ref()
                .map(|s| self.target_schema(schema::is_optional(s)).into()),
        }))
    }

    fn field_with_schema(&self, data: &Data) -> Result<Data, TransformError> {
        let (struct_schema, value) = schema::require_struct(data, &self.op.label)?;
        let field = schema::find_field(struct_schema, &self.field).ok_or_else(|| {
            self.op
                .error(format!("the schema has no field {:?}", self.field))
        })?;
        let converted = self.convert(Some(field), schema::get(value, &self.field))?;
        let mut updated = value.clone();
        updated.insert(self.field.clone(), converted);
        let target = self.target_schema(schema::is_optional(field));
        let fields = schema::fields(struct_schema)
            .iter()
            .map(|f| match schema::field_name(f) == self.field {
                true => schema::named_field(&self.field, target.clone()),
                false => f.clone(),
            })
            .collect();
        Ok(Data {
            schema: Some(schema::struct_like(struct_schema, fields).into()),
            value: Value::Object(updated),
        })
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        if self.field.is_empty() {
            return self.op.update(record, |data| self.whole(data));
        }
        self.op.update_fields(
            record,
            |data| self.field_with_schema(data),
            |value| {
                let mut updated = value.clone();
                if let Some(v) = value.get(&self.field) {
                    updated.insert(self.field.clone(), self.convert(None, v)?);
                }
                Ok(Data::schemaless(Value::Object(updated)))
            },
        )
    }
}
