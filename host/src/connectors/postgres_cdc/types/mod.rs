//! PostgreSQL column types as Debezium maps them: the Kafka Connect schema of a column, and its
//! value from PostgreSQL's text form (what both pgoutput and the snapshot deliver).
//!
//! Sessions pin `DateStyle=ISO`, `IntervalStyle=iso_8601` and `extra_float_digits=1` (the
//! shortest text that reads back exactly), so the text forms parsed here are the only ones that
//! can arrive.
//!
//! - this file: a column's [`Kind`] and its Connect schema;
//! - `values.rs`: a column's value from its text;
//! - `text.rs`: the calendar, time, interval and array text forms.

use crate::api::logical;
use serde_json::{Map, Value, json};

use super::config::{BinaryMode, DecimalMode, IntervalMode, TimePrecisionMode};

/// How a column is represented, resolved once per table from its type.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Bool,
    Text,
    Bytes,
    /// `numeric(p,s)`: a fixed scale.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Unconstrained `numeric`: each value carries its own scale.
    VariableDecimal,
    Money,
    Date,
    /// `time(p)`.
    Time {
        precision: u32,
    },
    TimeTz,
    Timestamp {
        precision: u32,
    },
    TimestampTz {
        precision: u32,
    },
    Interval,
    Json,
    Uuid,
    Xml,
    Enum {
        values: String,
    },
    Array(Box<Kind>),
    /// `bit(n)` / `varbit(n)` of more than one bit: `io.debezium.data.Bits` bytes.
    Bits {
        length: u32,
    },
    /// `bit(1)` (and `varbit(1)`): a boolean.
    Bit,
    /// The `hstore` extension's maps, as JSON (`hstore.handling.mode=json`, the default).
    Hstore,
    /// The `ltree` extension's label paths.
    Ltree,
    /// `point`: `io.debezium.data.geometry.Point`.
    Point,
    /// A type Debezium does not map (the other geometric types): the column is left out of
    /// the events, as Debezium leaves it out, or with `include.unknown.datatypes` given as the
    /// bytes of its text.
    Unknown,
}

/// The conversion settings of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub decimal: DecimalMode,
    pub time: TimePrecisionMode,
    pub binary: BinaryMode,
    pub interval: IntervalMode,
}

/// What the catalog says about a column's type.
#[derive(Debug, Clone, Default)]
pub struct TypeInfo {
    pub oid: u32,
    pub modifier: i32,
    /// `pg_type.typtype`: `b` base, `e` enum, `d` domain, ...
    pub typtype: u8,
    /// For arrays, the element type's oid.
    pub element: Option<u32>,
    /// For enums (or arrays of enums), the labels in order, comma-separated.
    pub enum_values: Option<String>,
    /// `pg_type.typname`: extension types (hstore, ltree) have no fixed oid.
    pub name: Option<String>,
}

/// The precision of a `time`/`timestamp` modifier (6 when unspecified).
fn time_precision(modifier: i32) -> u32 {
    if modifier < 0 { 6 } else { modifier as u32 }
}

/// Resolves a column type. `None` for types Debezium does not know either (they are passed
/// on as text).
pub fn kind_of(info: &TypeInfo) -> Kind {
    if info.typtype == b'e' {
        return Kind::Enum {
            values: info.enum_values.clone().unwrap_or_default(),
        };
    }
    let scalar = |oid: u32, modifier: i32| -> Option<Kind> {
        Some(match oid {
            21 => Kind::Int16,
            23 => Kind::Int32,
            20 | 26 => Kind::Int64,
            700 => Kind::Float32,
            701 => Kind::Float64,
            16 => Kind::Bool,
            17 => Kind::Bytes,
            1700 if modifier >= 4 => {
                let m = (modifier - 4) as u32;
                Kind::Decimal {
                    precision: (m >> 16) & 0xffff,
                    scale: m & 0xffff,
                }
            }
            1700 => Kind::VariableDecimal,
            790 => Kind::Money,
            1082 => Kind::Date,
            1083 => Kind::Time {
                precision: time_precision(modifier),
            },
            1266 => Kind::TimeTz,
            1114 => Kind::Timestamp {
                precision: time_precision(modifier),
            },
            1184 => Kind::TimestampTz {
                precision: time_precision(modifier),
            },
            1186 => Kind::Interval,
            114 | 3802 => Kind::Json,
            2950 => Kind::Uuid,
            142 => Kind::Xml,
            // bit, varbit: one bit is a boolean (Debezium's rule, by declared length).
            1560 | 1562 if modifier == 1 => Kind::Bit,
            1560 | 1562 => Kind::Bits {
                length: u32::try_from(modifier).unwrap_or(i32::MAX as u32),
            },
            600 => Kind::Point,
            // lseg, path, box, polygon, line, circle.
            601 | 602 | 603 | 604 | 628 | 718 => Kind::Unknown,
            _ => return None,
        })
    };
    match info.name.as_deref() {
        Some("hstore") => return Kind::Hstore,
        Some("ltree") => return Kind::Ltree,
        _ => {}
    }
    if let Some(kind) = scalar(info.oid, info.modifier) {
        return kind;
    }
    if let Some(element) = info.element {
        let inner = match &info.enum_values {
            Some(values) => Kind::Enum {
                values: values.clone(),
            },
            // An array's modifier is its element's.
            None => scalar(element, info.modifier).unwrap_or(Kind::Text),
        };
        return Kind::Array(Box::new(inner));
    }
    Kind::Text
}

/// The Kafka Connect schema of a column, field name included, with the keys in the order
/// Kafka Connect's JsonConverter writes them.
pub fn field_schema(
    kind: &Kind,
    modes: &Modes,
    optional: bool,
    default: Option<&Value>,
    field: &str,
) -> Value {
    let mut schema = value_schema(kind, modes, optional);
    if let Value::Object(map) = &mut schema {
        if let Some(default) = default {
            map.insert("default".into(), default.clone());
        }
        map.insert("field".into(), Value::String(field.into()));
    }
    schema
}

/// The schema default Debezium derives from a column's DEFAULT expression: a literal's value;
/// for an expression it cannot evaluate (`nextval(..)`, `now()`), the type's zero.
pub fn default_value(kind: &Kind, modes: &Modes, expr: &str) -> Value {
    literal_text(expr.trim())
        .and_then(|text| convert(kind, modes, &text).ok())
        .unwrap_or_else(|| zero(kind, modes))
}

/// The text of a literal DEFAULT (`5`, `(-5)`, `'abc'::text`, `true`), `None` for anything
/// else.
fn literal_text(expr: &str) -> Option<String> {
    let expr = expr
        .strip_prefix('(')
        .and_then(|e| e.strip_suffix(')'))
        .unwrap_or(expr);
    if let Some(rest) = expr.strip_prefix('\'') {
        let mut text = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    text.push('\'');
                    continue;
                }
                let tail: String = chars.collect();
                return (tail.is_empty() || tail.starts_with("::")).then_some(text);
            }
            text.push(c);
        }
        return None;
    }
    match expr {
        "true" => Some("t".into()),
        "false" => Some("f".into()),
        _ if expr.parse::<f64>().is_ok() => Some(expr.to_owned()),
        _ => None,
    }
}

fn logical(ty: &str, optional: bool, name: &str) -> Value {
    json!({"type": ty, "optional": optional, "name": name, "version": 1})
}

fn value_schema(kind: &Kind, modes: &Modes, optional: bool) -> Value {
    let plain = |ty: &str| json!({"type": ty, "optional": optional});
    let adaptive = modes.time == TimePrecisionMode::Adaptive;
    let connect = modes.time == TimePrecisionMode::Connect;
    match kind {
        Kind::Int16 => plain("int16"),
        Kind::Int32 => plain("int32"),
        Kind::Int64 => plain("int64"),
        Kind::Float32 => plain("float"),
        Kind::Float64 => plain("double"),
        Kind::Bool => plain("boolean"),
        Kind::Text => plain("string"),
        Kind::Bytes => match modes.binary {
            BinaryMode::Bytes => plain("bytes"),
            _ => plain("string"),
        },
        Kind::Decimal { precision, scale } => match modes.decimal {
            DecimalMode::Precise => {
                let mut s = logical("bytes", optional, logical::DECIMAL);
                s["parameters"] = json!({
                    "scale": scale.to_string(),
                    "connect.decimal.precision": precision.to_string(),
                });
                s
            }
            DecimalMode::Double => plain("double"),
            DecimalMode::String => plain("string"),
        },
        Kind::Money => match modes.decimal {
            DecimalMode::Precise => {
                let mut s = logical("bytes", optional, logical::DECIMAL);
                s["parameters"] = json!({"scale": "2"});
                s
            }
            DecimalMode::Double => plain("double"),
            DecimalMode::String => plain("string"),
        },
        Kind::VariableDecimal => match modes.decimal {
            DecimalMode::Precise => json!({
                "type": "struct",
                "fields": [
                    {"type": "int32", "optional": false, "field": "scale"},
                    {"type": "bytes", "optional": false, "field": "value"},
                ],
                "optional": optional,
                "name": "io.debezium.data.VariableScaleDecimal",
                "version": 1,
                "doc": "Variable scaled decimal",
            }),
            DecimalMode::Double => plain("double"),
            DecimalMode::String => plain("string"),
        },
        Kind::Date if connect => logical("int32", optional, logical::DATE),
        Kind::Date => logical("int32", optional, logical::DEBEZIUM_DATE),
        Kind::Time { .. } if connect => logical("int32", optional, logical::TIME),
        Kind::Time { precision } if adaptive && *precision <= 3 => {
            logical("int32", optional, logical::DEBEZIUM_TIME)
        }
        Kind::Time { .. } => logical("int64", optional, "io.debezium.time.MicroTime"),
        Kind::TimeTz => logical("string", optional, "io.debezium.time.ZonedTime"),
        Kind::Timestamp { .. } if connect => logical("int64", optional, logical::TIMESTAMP),
        Kind::Timestamp { precision } if *precision <= 3 => {
            logical("int64", optional, logical::DEBEZIUM_TIMESTAMP)
        }
        Kind::Timestamp { .. } => logical("int64", optional, "io.debezium.time.MicroTimestamp"),
        Kind::TimestampTz { .. } => logical("string", optional, "io.debezium.time.ZonedTimestamp"),
        Kind::Interval => match modes.interval {
            IntervalMode::Numeric => logical("int64", optional, "io.debezium.time.MicroDuration"),
            IntervalMode::String => logical("string", optional, "io.debezium.time.Interval"),
        },
        Kind::Json => logical("string", optional, "io.debezium.data.Json"),
        Kind::Hstore => logical("string", optional, "io.debezium.data.Json"),
        Kind::Ltree => logical("string", optional, "io.debezium.data.Ltree"),
        Kind::Bit => plain("boolean"),
        Kind::Bits { length } => json!({"type": "bytes", "optional": optional,
            "name": "io.debezium.data.Bits", "version": 1,
            "parameters": {"length": length.to_string()}}),
        Kind::Point => json!({"type": "struct", "fields": [
                {"type": "double", "optional": false, "field": "x"},
                {"type": "double", "optional": false, "field": "y"},
                {"type": "bytes", "optional": true, "field": "wkb"},
                {"type": "int32", "optional": true, "field": "srid"}],
            "optional": optional, "name": "io.debezium.data.geometry.Point", "version": 1,
            "doc": "Geometry (POINT)"}),
        // Kept only with include.unknown.datatypes: its text's bytes.
        Kind::Unknown => plain("bytes"),
        Kind::Uuid => logical("string", optional, "io.debezium.data.Uuid"),
        Kind::Xml => logical("string", optional, "io.debezium.data.Xml"),
        Kind::Enum { values } => {
            let mut s = logical("string", optional, "io.debezium.data.Enum");
            s["parameters"] = json!({"allowed": values});
            s
        }
        Kind::Array(inner) => {
            let mut s = Map::new();
            s.insert("type".into(), "array".into());
            // Debezium marks enum elements required, every other element type optional.
            let element_optional = !matches!(**inner, Kind::Enum { .. });
            s.insert("items".into(), value_schema(inner, modes, element_optional));
            s.insert("optional".into(), optional.into());
            Value::Object(s)
        }
    }
}

#[cfg(test)]
mod tests;
mod text;
mod values;

pub use values::{ValueError, convert, zero};
