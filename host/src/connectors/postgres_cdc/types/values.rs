//! A column's value from PostgreSQL's text form, as Debezium writes it.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::text::{
    date_days, interval_iso, interval_micros, iso_time, parse_array, time_micros, time_tz,
    timestamp_micros, zoned_timestamp,
};
use super::{Kind, Modes};
use crate::connectors::postgres_cdc::config::{
    BinaryMode, DecimalMode, IntervalMode, TimePrecisionMode,
};

/// A value that does not parse as its column type says it should.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {text:?} as {kind}")]
pub struct ValueError {
    pub text: String,
    pub kind: &'static str,
}

pub(super) fn bad(text: &str, kind: &'static str) -> ValueError {
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
        Kind::Text | Kind::Json | Kind::Uuid | Kind::Xml | Kind::Enum { .. } | Kind::Ltree => {
            Value::String(text.to_owned())
        }
        Kind::Unknown => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(geometric_as_java(text)))
        }
        Kind::Bit => Value::Bool(text == "1"),
        Kind::Bits { .. } => Value::String(
            base64::engine::general_purpose::STANDARD
                .encode(bits(text).ok_or_else(|| bad(text, "a bit string"))?),
        ),
        Kind::Hstore => hstore_json(text).ok_or_else(|| bad(text, "an hstore"))?,
        Kind::Point => point(text).ok_or_else(|| bad(text, "a point"))?,
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
        Kind::Bool | Kind::Bit => false.into(),
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

/// A bit string (`101`, most significant first) as Debezium writes `Bits`: the number it
/// spells, little-endian, without trailing zero bytes (Java's `BitSet.toByteArray`).
fn bits(text: &str) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; text.len().div_ceil(8)];
    for (i, c) in text.bytes().rev().enumerate() {
        match c {
            b'1' => bytes[i / 8] |= 1 << (i % 8),
            b'0' => {}
            _ => return None,
        }
    }
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Some(bytes)
}

/// An hstore's text (`"a"=>"1", "b"=>NULL`) as Debezium's JSON string of it, its entries in
/// Java's `HashMap` order (Debezium reads it into one).
fn hstore_json(text: &str) -> Option<Value> {
    let mut entries: Vec<(String, Option<String>)> = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (key, after) = hstore_quoted(rest)?;
        let after = after.trim_start().strip_prefix("=>")?.trim_start();
        let (value, after) = match after.strip_prefix("NULL") {
            Some(after) => (None, after),
            None => {
                let (value, after) = hstore_quoted(after)?;
                (Some(value), after)
            }
        };
        entries.push((key, value));
        rest = after.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    let mut map = Map::new();
    for (key, value) in super::super::java_order::hash_map_order(&entries) {
        map.insert(
            key.clone(),
            value.clone().map_or(Value::Null, Value::String),
        );
    }
    Some(Value::String(Value::Object(map).to_string()))
}

/// A double-quoted hstore token (PostgreSQL always quotes them on output), unescaped, and what
/// follows it.
fn hstore_quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &body[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

/// A geometric value's text with its numbers as Java writes doubles (`(2,3),(0,0)` →
/// `(2.0,3.0),(0.0,0.0)`): Debezium reads such values through the JDBC driver's objects, whose
/// text is Java's.
fn geometric_as_java(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut number = String::new();
    let flush = |number: &mut String, out: &mut String| {
        if !number.is_empty() {
            match number.parse::<f64>() {
                Ok(v) => out.push_str(&java_double(v)),
                Err(_) => out.push_str(number),
            }
            number.clear();
        }
    };
    for c in text.chars() {
        let continues = c.is_ascii_digit()
            || c == '.'
            || (c == '-' && (number.is_empty() || number.ends_with(['e', 'E'])))
            || (c == '+' && number.ends_with(['e', 'E']))
            || ((c == 'e' || c == 'E') && !number.is_empty());
        if continues {
            number.push(c);
        } else {
            flush(&mut number, &mut out);
            out.push(c);
        }
    }
    flush(&mut number, &mut out);
    out
}

/// `v` as Java's `Double.toString` writes it: a decimal point always, scientific notation
/// (`1.0E7`) outside [10⁻³, 10⁷).
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 || (1e-3..1e7).contains(&v.abs()) {
        let text = format!("{v}");
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    let text = format!("{v:e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_owned()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// A point's text (`(1.5,2.25)`) as Debezium's `Point` struct: the coordinates and their
/// well-known binary (little-endian), no SRID.
fn point(text: &str) -> Option<Value> {
    let (x, y) = text
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    let (x, y): (f64, f64) = (x.trim().parse().ok()?, y.trim().parse().ok()?);
    let mut wkb = vec![1u8, 1, 0, 0, 0];
    wkb.extend_from_slice(&x.to_le_bytes());
    wkb.extend_from_slice(&y.to_le_bytes());
    Some(json!({"x": x, "y": y,
        "wkb": base64::engine::general_purpose::STANDARD.encode(wkb), "srid": null}))
}

pub(super) fn float(text: &str) -> Result<Value, ValueError> {
    let v = match text {
        "NaN" | "Infinity" | "-Infinity" => return Ok(Value::String(text.into())),
        _ => text.parse::<f64>().map_err(|_| bad(text, "a number"))?,
    };
    Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
}

pub(super) fn decode_hex(hex: &str) -> Option<Vec<u8>> {
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
pub(super) fn decimal(
    text: &str,
    scale: Option<u32>,
    mode: DecimalMode,
) -> Result<Value, ValueError> {
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
pub(super) fn twos_complement(digits: &str, negative: bool) -> Vec<u8> {
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
