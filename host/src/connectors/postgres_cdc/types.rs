//! PostgreSQL column types as Debezium maps them: the Kafka Connect schema of a column, and its
//! value from PostgreSQL's text form (what both pgoutput and the snapshot deliver).
//!
//! Sessions pin `DateStyle=ISO`, `IntervalStyle=iso_8601` and `extra_float_digits=3`, so the
//! text forms parsed here are the only ones that can arrive.

use base64::Engine;
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
            _ => return None,
        })
    };
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
                let mut s = logical("bytes", optional, "org.apache.kafka.connect.data.Decimal");
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
                let mut s = logical("bytes", optional, "org.apache.kafka.connect.data.Decimal");
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
        Kind::Date if connect => logical("int32", optional, "org.apache.kafka.connect.data.Date"),
        Kind::Date => logical("int32", optional, "io.debezium.time.Date"),
        Kind::Time { .. } if connect => {
            logical("int32", optional, "org.apache.kafka.connect.data.Time")
        }
        Kind::Time { precision } if adaptive && *precision <= 3 => {
            logical("int32", optional, "io.debezium.time.Time")
        }
        Kind::Time { .. } => logical("int64", optional, "io.debezium.time.MicroTime"),
        Kind::TimeTz => logical("string", optional, "io.debezium.time.ZonedTime"),
        Kind::Timestamp { .. } if connect => {
            logical("int64", optional, "org.apache.kafka.connect.data.Timestamp")
        }
        Kind::Timestamp { precision } if *precision <= 3 => {
            logical("int64", optional, "io.debezium.time.Timestamp")
        }
        Kind::Timestamp { .. } => logical("int64", optional, "io.debezium.time.MicroTimestamp"),
        Kind::TimestampTz { .. } => logical("string", optional, "io.debezium.time.ZonedTimestamp"),
        Kind::Interval => match modes.interval {
            IntervalMode::Numeric => logical("int64", optional, "io.debezium.time.MicroDuration"),
            IntervalMode::String => logical("string", optional, "io.debezium.time.Interval"),
        },
        Kind::Json => logical("string", optional, "io.debezium.data.Json"),
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

/// A value that does not parse as its column type says it should.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {text:?} as {kind}")]
pub struct ValueError {
    pub text: String,
    pub kind: &'static str,
}

fn bad(text: &str, kind: &'static str) -> ValueError {
    ValueError {
        text: text.chars().take(80).collect(),
        kind,
    }
}

/// The value of a column given PostgreSQL's text form.
pub fn convert(kind: &Kind, modes: &Modes, text: &str) -> Result<Value, ValueError> {
    let adaptive = modes.time == TimePrecisionMode::Adaptive;
    let connect = modes.time == TimePrecisionMode::Connect;
    Ok(match kind {
        Kind::Int16 | Kind::Int32 | Kind::Int64 => {
            Value::from(text.parse::<i64>().map_err(|_| bad(text, "an integer"))?)
        }
        // Through f32 so a real prints as Java prints a float (0.1, not 0.100000001).
        Kind::Float32 => match text.parse::<f32>() {
            Ok(v) if v.is_finite() => float(&v.to_string())?,
            _ => float(text)?,
        },
        Kind::Float64 => float(text)?,
        Kind::Bool => Value::Bool(text == "t"),
        Kind::Text | Kind::Json | Kind::Uuid | Kind::Xml | Kind::Enum { .. } => {
            Value::String(text.to_owned())
        }
        Kind::Bytes => {
            let hex = text
                .strip_prefix("\\x")
                .ok_or_else(|| bad(text, "bytea hex"))?;
            let bytes = decode_hex(hex).ok_or_else(|| bad(text, "bytea hex"))?;
            Value::String(match modes.binary {
                BinaryMode::Bytes | BinaryMode::Base64 => {
                    base64::engine::general_purpose::STANDARD.encode(bytes)
                }
                BinaryMode::Base64UrlSafe => {
                    base64::engine::general_purpose::URL_SAFE.encode(bytes)
                }
                BinaryMode::Hex => hex.to_owned(),
            })
        }
        Kind::Decimal { scale, .. } => decimal(text, Some(*scale), modes.decimal)?,
        Kind::VariableDecimal => decimal(text, None, modes.decimal)?,
        Kind::Money => {
            let negative = text.starts_with('-') || text.starts_with('(');
            let digits: String = text
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let plain = if negative {
                format!("-{digits}")
            } else {
                digits
            };
            decimal(&plain, Some(2), modes.decimal)?
        }
        Kind::Date => Value::from(date_days(text).ok_or_else(|| bad(text, "a date"))?),
        Kind::Time { precision } => {
            let micros = time_micros(text).ok_or_else(|| bad(text, "a time"))?;
            if connect || (adaptive && *precision <= 3) {
                Value::from(micros / 1000)
            } else {
                Value::from(micros)
            }
        }
        Kind::TimeTz => {
            let (micros, offset) = time_tz(text).ok_or_else(|| bad(text, "a time with zone"))?;
            let utc = (micros - offset * 1_000_000).rem_euclid(86_400_000_000);
            Value::String(format!("{}Z", iso_time(utc)))
        }
        Kind::Timestamp { precision } => {
            let micros = match text {
                "infinity" => i64::MAX,
                "-infinity" => i64::MIN,
                _ => {
                    timestamp_micros(text)
                        .ok_or_else(|| bad(text, "a timestamp"))?
                        .0
                }
            };
            if connect || *precision <= 3 {
                Value::from(micros.div_euclid(1000))
            } else {
                Value::from(micros)
            }
        }
        Kind::TimestampTz { precision } => Value::String(match text {
            "infinity" => "infinity".into(),
            "-infinity" => "-infinity".into(),
            _ => {
                let (micros, offset) =
                    timestamp_micros(text).ok_or_else(|| bad(text, "a timestamp with zone"))?;
                zoned_timestamp(micros - offset * 1_000_000, *precision)
            }
        }),
        Kind::Interval => match modes.interval {
            IntervalMode::String => {
                Value::String(interval_iso(text).ok_or_else(|| bad(text, "an interval"))?)
            }
            IntervalMode::Numeric => {
                Value::from(interval_micros(text).ok_or_else(|| bad(text, "an interval"))?)
            }
        },
        Kind::Array(inner) => {
            let items = parse_array(text).ok_or_else(|| bad(text, "an array"))?;
            Value::Array(
                items
                    .into_iter()
                    .map(|item| match item {
                        None => Ok(Value::Null),
                        Some(t) => convert(inner, modes, &t),
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
    })
}

/// The value Debezium gives a NOT NULL column that an old-key tuple leaves out: its type's
/// zero.
pub fn zero(kind: &Kind, modes: &Modes) -> Value {
    match kind {
        Kind::Int16 | Kind::Int32 | Kind::Int64 | Kind::Date | Kind::Time { .. } => 0.into(),
        Kind::Timestamp { .. } => 0.into(),
        Kind::Interval if modes.interval == IntervalMode::Numeric => 0.into(),
        Kind::Float32 | Kind::Float64 => json!(0.0),
        Kind::Bool => false.into(),
        Kind::Decimal { scale, .. } => {
            decimal("0", Some(*scale), modes.decimal).unwrap_or(Value::Null)
        }
        Kind::Money => decimal("0", Some(2), modes.decimal).unwrap_or(Value::Null),
        Kind::VariableDecimal => decimal("0", None, modes.decimal).unwrap_or(Value::Null),
        Kind::Array(_) => json!([]),
        Kind::TimestampTz { precision } => zoned_timestamp(0, *precision).into(),
        Kind::TimeTz => "00:00:00Z".into(),
        _ => "".into(),
    }
}

fn float(text: &str) -> Result<Value, ValueError> {
    let v = match text {
        "NaN" | "Infinity" | "-Infinity" => return Ok(Value::String(text.into())),
        _ => text.parse::<f64>().map_err(|_| bad(text, "a number"))?,
    };
    Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect()
}

/// A decimal per `decimal.handling.mode`. `scale` is the column's (numeric(p,s)); without
/// one, the value's own scale is used (VariableScaleDecimal).
fn decimal(text: &str, scale: Option<u32>, mode: DecimalMode) -> Result<Value, ValueError> {
    match mode {
        DecimalMode::String => return Ok(Value::String(text.to_owned())),
        DecimalMode::Double => return float(text),
        DecimalMode::Precise => {}
    }
    if text == "NaN" {
        return Ok(Value::Null);
    }
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut frac = frac.to_owned();
    let value_scale = frac.len() as u32;
    if let Some(scale) = scale {
        // A value with fewer fraction digits than the column (cannot happen for numeric(p,s)
        // output, but keeps money and zero right) is padded; more is cut.
        while (frac.len() as u32) < scale {
            frac.push('0');
        }
        frac.truncate(scale as usize);
    }
    let unscaled = format!("{int}{frac}");
    if unscaled.is_empty() || !unscaled.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(text, "a decimal"));
    }
    let bytes = twos_complement(&unscaled, negative);
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    Ok(match scale {
        Some(_) => Value::String(encoded),
        None => json!({"scale": value_scale, "value": encoded}),
    })
}

/// The minimal big-endian two's complement bytes of a decimal digit string (Java's
/// `BigInteger.toByteArray`).
fn twos_complement(digits: &str, negative: bool) -> Vec<u8> {
    // Magnitude in base 256, little-endian, by repeated multiply-add.
    let mut mag: Vec<u8> = vec![0];
    for d in digits.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.push((carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    while mag.len() > 1 && mag[mag.len() - 1] == 0 {
        mag.pop();
    }
    let is_zero = mag.iter().all(|&b| b == 0);
    if negative && !is_zero {
        // Two's complement: invert and add one.
        let mut carry = 1u16;
        for byte in mag.iter_mut() {
            let v = u16::from(!*byte) + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        if mag[mag.len() - 1] & 0x80 == 0 {
            mag.push(0xff);
        }
        while mag.len() > 1 && mag[mag.len() - 1] == 0xff && mag[mag.len() - 2] & 0x80 != 0 {
            mag.pop();
        }
    } else if mag[mag.len() - 1] & 0x80 != 0 {
        mag.push(0);
    }
    mag.reverse();
    mag
}

/// Days since 1970-01-01 of a proleptic Gregorian civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (with ` BC` for years before 1) as days since the epoch.
fn date_days(text: &str) -> Option<i64> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    let y = if bc { 1 - y } else { y };
    Some(days_from_civil(y, m, d))
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight.
fn time_micros(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s = parts.next()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut micros = 0i64;
    for (i, c) in frac.bytes().take(6).enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        micros += i64::from(c - b'0') * 10i64.pow(5 - i as u32);
    }
    Some(((h * 60 + m) * 60 + sec) * 1_000_000 + micros)
}

/// Splits a trailing `+HH[:MM[:SS]]` / `-HH...` zone offset off; returns it in seconds.
fn split_offset(text: &str) -> Option<(&str, i64)> {
    let at = text.rfind(['+', '-'])?;
    let (clock, zone) = text.split_at(at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let mut secs = 0i64;
    for (i, part) in zone[1..].split(':').enumerate() {
        let v: i64 = part.parse().ok()?;
        secs += v * [3600, 60, 1].get(i)?;
    }
    Some((clock, sign * secs))
}

fn time_tz(text: &str) -> Option<(i64, i64)> {
    let (clock, offset) = split_offset(text)?;
    Some((time_micros(clock)?, offset))
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+zone][ BC]` as microseconds since the epoch of the local
/// clock, and the zone offset in seconds (0 when absent).
fn timestamp_micros(text: &str) -> Option<(i64, i64)> {
    let (text, bc) = match text.strip_suffix(" BC") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let (date, rest) = text.split_once(' ')?;
    let (clock, offset) = match rest.find(['+', '-']) {
        Some(_) => split_offset(rest)?,
        None => (rest, 0),
    };
    let date = if bc {
        format!("{date} BC")
    } else {
        date.to_owned()
    };
    let days = date_days(&date)?;
    Some((days * 86_400_000_000 + time_micros(clock)?, offset))
}

/// `HH:MM:SS` plus `digits` fraction digits of a time of day in microseconds.
fn clock(micros: i64, digits: u32) -> String {
    let secs = micros / 1_000_000;
    let mut out = format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    );
    if digits > 0 {
        let frac = format!("{:06}", micros % 1_000_000);
        out.push('.');
        out.push_str(&frac[..digits.min(6) as usize]);
    }
    out
}

/// A time of day as Java's ISO_LOCAL_TIME prints it: seconds always, the fraction only as
/// long as it needs to be.
fn iso_time(micros: i64) -> String {
    let mut out = clock(micros, 6);
    while out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    out
}

/// Debezium's ZonedTimestamp text: UTC, `Z`, the column's precision in fraction digits.
fn zoned_timestamp(utc_micros: i64, precision: u32) -> String {
    let days = utc_micros.div_euclid(86_400_000_000);
    let of_day = utc_micros.rem_euclid(86_400_000_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{}Z", clock(of_day, precision))
}

/// The components of an ISO 8601 interval (`IntervalStyle=iso_8601`, e.g.
/// `P1Y2M3DT4H5M6.5S`): years, months, days, hours, minutes, seconds.
fn interval_parts(text: &str) -> Option<[f64; 6]> {
    let body = text.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let (mut years, mut months, mut days) = (0f64, 0f64, 0f64);
    let (mut hours, mut minutes, mut seconds) = (0f64, 0f64, 0f64);
    let mut number = String::new();
    for c in date.chars() {
        match c {
            'Y' => years = number.parse().ok()?,
            'M' => months = number.parse().ok()?,
            'W' => days += 7.0 * number.parse::<f64>().ok()?,
            'D' => days += number.parse::<f64>().ok()?,
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    for c in time.chars() {
        match c {
            'H' => hours = number.parse().ok()?,
            'M' => minutes = number.parse().ok()?,
            'S' => seconds = number.parse().ok()?,
            _ => {
                number.push(c);
                continue;
            }
        }
        number.clear();
    }
    Some([years, months, days, hours, minutes, seconds])
}

/// An interval as Debezium's MicroDuration: months count 365.25 / 12 days.
fn interval_micros(text: &str) -> Option<i64> {
    const DAYS_PER_MONTH: f64 = 365.25 / 12.0;
    let [years, months, days, hours, minutes, seconds] = interval_parts(text)?;
    let total_days = (years * 12.0 + months) * DAYS_PER_MONTH + days;
    let total_seconds = ((total_days * 24.0 + hours) * 60.0 + minutes) * 60.0 + seconds;
    Some((total_seconds * 1e6) as i64)
}

/// An interval as Debezium's Interval string: every component, `P1Y0M0DT0H0M0S`.
fn interval_iso(text: &str) -> Option<String> {
    let [years, months, days, hours, minutes, seconds] = interval_parts(text)?;
    Some(format!(
        "P{years}Y{months}M{days}DT{hours}H{minutes}M{seconds}S"
    ))
}

/// The elements of a one-dimensional array literal (`{a,"b c",NULL}`); `None` elements are
/// SQL NULLs. Nested arrays are flattened, as Debezium has no nested array schema.
pub fn parse_array(text: &str) -> Option<Vec<Option<String>>> {
    // A lower bound decoration (`[0:1]={..}`) precedes the braces.
    let start = text.find('{')?;
    let body = text[start..].strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        while chars.peek() == Some(&'{') || chars.peek() == Some(&'}') {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        if first == '"' {
            chars.next();
            let mut item = String::new();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            items.push(Some(item));
        } else {
            let mut item = String::new();
            while let Some(&c) = chars.peek() {
                if c == ',' || c == '}' {
                    break;
                }
                item.push(c);
                chars.next();
            }
            items.push((item != "NULL").then_some(item));
        }
        while chars.peek() == Some(&'}') {
            chars.next();
        }
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(_) => return None,
        }
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODES: Modes = Modes {
        decimal: DecimalMode::Precise,
        time: TimePrecisionMode::Adaptive,
        binary: BinaryMode::Bytes,
        interval: IntervalMode::Numeric,
    };

    #[test]
    fn decimals_match_debeziums_golden_values() {
        let fixed = Kind::Decimal {
            precision: 12,
            scale: 2,
        };
        assert_eq!(convert(&fixed, &MODES, "1234.56").unwrap(), json!("AeJA"));
        assert_eq!(convert(&fixed, &MODES, "-0.50").unwrap(), json!("zg=="));
        assert_eq!(convert(&fixed, &MODES, "2000.00").unwrap(), json!("Aw1A"));
        let var = Kind::VariableDecimal;
        assert_eq!(
            convert(&var, &MODES, "3.14159").unwrap(),
            json!({"scale": 5, "value": "BMsv"})
        );
        assert_eq!(
            convert(&var, &MODES, "12345678901234567890.123456789").unwrap(),
            json!({"scale": 9, "value": "J+QbMka+ybFuOYEV"})
        );
        assert_eq!(
            convert(&var, &MODES, "-0.00000000015").unwrap(),
            json!({"scale": 11, "value": "8Q=="})
        );
        assert_eq!(
            convert(&var, &MODES, "0").unwrap(),
            json!({"scale": 0, "value": "AA=="})
        );
        assert_eq!(twos_complement("128", true), vec![0x80]);
        // The zero of a NOT NULL column an old-key tuple leaves out keeps the column's form.
        assert_eq!(zero(&fixed, &MODES), json!("AA=="));
        assert_eq!(zero(&var, &MODES), json!({"scale": 0, "value": "AA=="}));
        assert_eq!(twos_complement("129", true), vec![0xff, 0x7f]);
        assert_eq!(twos_complement("128", false), vec![0x00, 0x80]);
    }

    #[test]
    fn times_and_zones() {
        let tz = Kind::TimestampTz { precision: 6 };
        assert_eq!(
            convert(&tz, &MODES, "1999-12-31 23:59:59+05:30").unwrap(),
            json!("1999-12-31T18:29:59.000000Z")
        );
        assert_eq!(
            convert(&tz, &MODES, "2025-02-28 23:59:59.999999-08").unwrap(),
            json!("2025-03-01T07:59:59.999999Z")
        );
        assert_eq!(
            convert(&Kind::Date, &MODES, "1970-01-02").unwrap(),
            json!(1)
        );
        assert_eq!(
            convert(&Kind::Date, &MODES, "1969-12-31").unwrap(),
            json!(-1)
        );
        let ts = Kind::Timestamp { precision: 6 };
        assert_eq!(
            convert(&ts, &MODES, "1970-01-01 00:00:01.5").unwrap(),
            json!(1_500_000)
        );
        let ms = Kind::Time { precision: 3 };
        assert_eq!(
            convert(&ms, &MODES, "01:00:00.25").unwrap(),
            json!(3_600_250)
        );
        assert_eq!(
            convert(&Kind::Interval, &MODES, "P1DT1H").unwrap(),
            json!(90_000_000_000i64)
        );
    }

    #[test]
    fn arrays_with_quotes_and_nulls() {
        assert_eq!(
            parse_array(r#"{"with space","with,comma",NULL}"#).unwrap(),
            vec![Some("with space".into()), Some("with,comma".into()), None]
        );
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        let ints = Kind::Array(Box::new(Kind::Int32));
        assert_eq!(
            convert(&ints, &MODES, "{4,NULL}").unwrap(),
            json!([4, null])
        );
        assert!(convert(&ints, &MODES, "{x}").is_err());
    }
}
