//! Helpers shared by the SMTs: reaching a record's key or value, describing JSON values in error
//! messages, Kafka Connect field paths, Java `SimpleDateFormat` patterns and Java's number
//! formatting.

use chrono::format::{Fixed, Item, Parsed, StrftimeItems};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::Part;
use crate::api::record::{Data, Payload, Record};
use crate::api::transform::{Outcome, TransformError};

/// Why a value, a pattern or a field path cannot be handled. The message says what was
/// expected; the SMT that hit it adds its own name (see [`Operand::error`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

pub use crate::api::logical::MILLIS_PER_DAY;

/// The half of the record a `$Key` / `$Value` SMT works on, and the name it reports errors
/// under: `InsertField$Value` for `org.apache.kafka.connect.transforms.InsertField` and `Value`.
#[derive(Debug, Clone)]
pub struct Operand {
    pub part: Part,
    pub label: String,
}

impl Operand {
    pub fn new(class: &str, part: Part) -> Self {
        let smt = class.strip_prefix(super::KAFKA).unwrap_or(class);
        let variant = match part {
            Part::Key => "Key",
            Part::Value => "Value",
        };
        Self {
            part,
            label: format!("{smt}${variant}"),
        }
    }

    /// A data error whose message starts with the label.
    pub fn error(&self, message: impl std::fmt::Display) -> TransformError {
        TransformError::data(format!("{}: {message}", self.label))
    }

    /// Replaces the key or value of `record` with what `f` computes from it; `f` returns `None`
    /// to leave it as it is. The record is untouched when `f` fails.
    pub fn update(
        &self,
        record: &mut Record,
        f: impl FnOnce(&Data) -> Result<Option<Data>, TransformError>,
    ) -> Result<Outcome, TransformError> {
        let payload = payload(record, self.part);
        if let Some(updated) = f(parsed(payload, self.part, &self.label)?)? {
            *payload
                .get_mut()
                .expect("the payload was parsed successfully just above") = updated;
        }
        Ok(Outcome::Keep)
    }

    /// The common shape of SMTs that work on the fields of a struct or map: a null value
    /// passes through unchanged, `with_schema` handles schema mode, `schemaless` a JSON object
    /// (anything else is a data error).
    pub fn update_fields(
        &self,
        record: &mut Record,
        with_schema: impl FnOnce(&Data) -> Result<Data, TransformError>,
        schemaless: impl FnOnce(&Map<String, Value>) -> Result<Data, TransformError>,
    ) -> Result<Outcome, TransformError> {
        self.update(record, |data| {
            if data.value.is_null() {
                return Ok(None);
            }
            if data.schema.is_some() {
                return with_schema(data).map(Some);
            }
            schemaless(require_object(&data.value, &self.label)?).map(Some)
        })
    }
}

/// The payload `part` of `record` designates.
pub fn payload(record: &mut Record, part: Part) -> &mut Payload {
    match part {
        Part::Key => &mut record.key,
        Part::Value => &mut record.value,
    }
}

/// The structured form of a payload; a JSON parse failure becomes a data error naming `part`.
pub fn parsed<'a>(
    payload: &'a mut Payload,
    part: Part,
    label: &str,
) -> Result<&'a Data, TransformError> {
    payload.get().map_err(|e| {
        TransformError::data(format!(
            "{label}: the record {} is not valid JSON: {e}",
            part.name()
        ))
    })
}

/// "a string", "an object", ...: how error messages name a JSON value's kind.
pub fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a JSON object",
    }
}

/// The value as a JSON object (a map, or a struct's fields), else a data error.
pub fn require_object<'a>(
    value: &'a Value,
    label: &str,
) -> Result<&'a Map<String, Value>, TransformError> {
    value.as_object().ok_or_else(|| {
        TransformError::data(format!(
            "{label}: expected a JSON object (struct) value, got {}",
            describe(value)
        ))
    })
}

/// Splits a field path the way Kafka Connect's `field.syntax.version` says (KIP-821): `V1` is
/// one field name taken literally; `V2` is a dotted path whose steps may be wrapped in backticks
/// to contain dots (`` a.`b.c` ``), with `` \` `` escaping a backtick before a dot.
pub fn field_path(text: &str, v2: bool) -> Result<Vec<String>, Invalid> {
    if !v2 {
        return Ok(vec![text.to_owned()]);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            let end = chars[i..].iter().position(|&c| c == '.').map(|p| p + i);
            let stop = end.unwrap_or(chars.len());
            steps.push(chars[i..stop].iter().collect());
            i = stop + 1;
            continue;
        }
        let opened = i;
        let mut step = String::new();
        i += 1;
        loop {
            let Some(close) = chars[i..].iter().position(|&c| c == '`').map(|p| p + i) else {
                return Err(Invalid(format!(
                    "incomplete backtick pair in path {text:?}; add a backslash before the \
                     backtick at position {opened} to escape it"
                )));
            };
            let escaped = chars[close - 1] == '\\';
            if close + 1 == chars.len() && !escaped {
                step.extend(&chars[i..close]);
                i = close + 1;
                break;
            }
            if close + 1 < chars.len() && chars[close + 1] == '.' {
                if escaped {
                    step.extend(&chars[i..close - 1]);
                    step.push('`');
                    i = close + 1;
                    continue;
                }
                step.extend(&chars[i..close]);
                i = close + 2;
                break;
            }
            if close + 1 == chars.len() {
                return Err(Invalid(format!(
                    "incomplete backtick pair in path {text:?}; the backtick at position \
                     {opened} is never closed"
                )));
            }
            step.extend(&chars[i..=close]);
            i = close + 1;
        }
        steps.push(step);
    }
    if text.ends_with('.') {
        steps.push(String::new());
    }
    Ok(steps)
}

/// A Java `SimpleDateFormat` pattern compiled to chrono items, always in UTC.
///
/// Supported letters: `y` (`yy` = two digits), `M` (`MMM`/`MMMM` = month names), `d`, `D`,
/// `H`, `h`, `a`, `m`, `s`, `S` (`SSS` milliseconds; `SSSSSS` and `SSSSSSSSS` micro- and
/// nanoseconds), `E`, `Z` (`+0000`), `X`/`XX`/`XXX` (`Z` for UTC), `'quoted'` literals and
/// `''` for a quote. Parsing is strict (Java's lenient mode would roll `13` over to January).
#[derive(Debug, Clone)]
pub struct DateFormat {
    pattern: String,
    items: Vec<Item<'static>>,
}

impl DateFormat {
    /// Compiles `pattern`; the error names the unsupported letter or unclosed quote.
    pub fn new(pattern: &str) -> Result<Self, Invalid> {
        let mut items = Vec::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let (literal, next) = quoted(&chars, i)?;
                items.push(Item::OwnedLiteral(literal.into()));
                i = next;
            } else if c.is_ascii_alphabetic() {
                let count = chars[i..].iter().take_while(|&&d| d == c).count();
                items.extend(pattern_items(c, count)?);
                i += count;
            } else {
                items.push(Item::OwnedLiteral(c.to_string().into()));
                i += 1;
            }
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            items,
        })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Formats epoch milliseconds in UTC.
    pub fn format(&self, millis: i64) -> Result<String, Invalid> {
        Ok(utc(millis)?
            .format_with_items(self.items.iter())
            .to_string())
    }

    /// Parses `text` to epoch milliseconds. Missing date parts default to 1970-01-01 and
    /// missing time parts to zero, as with Java.
    pub fn parse(&self, text: &str) -> Result<i64, Invalid> {
        let mismatch = || {
            Invalid(format!(
                "value ({text}) does not match pattern ({})",
                self.pattern
            ))
        };
        let mut p = Parsed::new();
        chrono::format::parse(&mut p, text, self.items.iter()).map_err(|_| mismatch())?;
        let date = if p.year().is_none() && p.year_mod_100().is_none() {
            let month = p.month().unwrap_or(1);
            NaiveDate::from_ymd_opt(1970, month, p.day().unwrap_or(1))
        } else {
            if p.month().is_none() && p.ordinal().is_none() {
                p.set_month(1).map_err(|_| mismatch())?;
            }
            if p.day().is_none() && p.ordinal().is_none() {
                p.set_day(1).map_err(|_| mismatch())?;
            }
            p.to_naive_date().ok()
        };
        let date = date.ok_or_else(mismatch)?;
        let hour = match (p.hour_div_12(), p.hour_mod_12()) {
            (Some(div), Some(rem)) => div * 12 + rem,
            (None, Some(rem)) => rem,
            _ => 0,
        };
        let nanos = p.nanosecond().unwrap_or(0);
        let time = date
            .and_hms_nano_opt(
                hour,
                p.minute().unwrap_or(0),
                p.second().unwrap_or(0),
                nanos,
            )
            .ok_or_else(mismatch)?;
        let offset_millis = i64::from(p.offset().unwrap_or(0)) * 1000;
        Ok(time.and_utc().timestamp_millis() - offset_millis)
    }
}

/// A quoted literal starting at `chars[start] == '\''`: its text and the index after it.
fn quoted(chars: &[char], start: usize) -> Result<(String, usize), Invalid> {
    if chars.get(start + 1) == Some(&'\'') {
        return Ok(("'".to_owned(), start + 2));
    }
    let mut literal = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\'' {
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            return Ok((literal, i + 1));
        }
        literal.push(chars[i]);
        i += 1;
    }
    Err(Invalid("unterminated quote in date pattern".to_owned()))
}

/// The chrono items for `count` repetitions of the pattern letter `letter`.
fn pattern_items(letter: char, count: usize) -> Result<Vec<Item<'static>>, Invalid> {
    let spec: &'static str = match (letter, count) {
        ('y', 2) => "%y",
        ('y', 1) | ('y', 3) => "%-Y",
        ('y', _) => "%Y",
        ('M', 1) => "%-m",
        ('M', 2) => "%m",
        ('M', 3) => "%b",
        ('M', _) => "%B",
        ('d', 1) => "%-d",
        ('d', _) => "%d",
        ('D', _) => "%j",
        ('H', 1) => "%-H",
        ('H', _) => "%H",
        ('h', 1) => "%-I",
        ('h', _) => "%I",
        ('a', _) => "%p",
        ('m', 1) => "%-M",
        ('m', _) => "%M",
        ('s', 1) => "%-S",
        ('s', _) => "%S",
        ('S', 3) => "%3f",
        ('S', 6) => "%6f",
        ('S', 9) => "%9f",
        ('E', 1..=3) => "%a",
        ('E', _) => "%A",
        ('Z', _) => return Ok(vec![Item::Fixed(Fixed::TimezoneOffset)]),
        ('X', 1 | 2) => return Ok(vec![Item::Fixed(Fixed::TimezoneOffsetZ)]),
        ('X', 3) => return Ok(vec![Item::Fixed(Fixed::TimezoneOffsetColonZ)]),
        ('S', _) => {
            return Err(Invalid(format!(
                "unsupported date pattern {:?}: use SSS (milliseconds), SSSSSS or SSSSSSSSS",
                "S".repeat(count)
            )));
        }
        _ => {
            return Err(Invalid(format!(
                "unsupported date pattern letter {letter:?} (supported: y M d D H h a m s S E \
                 Z X and 'quoted text')"
            )));
        }
    };
    Ok(StrftimeItems::new(spec).collect())
}

/// Epoch milliseconds as a UTC date-time.
pub fn utc(millis: i64) -> Result<DateTime<Utc>, Invalid> {
    DateTime::from_timestamp_millis(millis)
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| {
            Invalid(format!(
                "timestamp {millis} ms is out of the supported range"
            ))
        })
}

/// Java's `Double.toString`: `1.0`, `1.5E10`, `1.0E-5`.
pub fn java_double(value: f64) -> String {
    java_decimal(value.abs(), value.to_string(), format!("{value:e}"))
}

/// Java's `Float.toString`, for `float32` values.
pub fn java_float(value: f32) -> String {
    java_decimal(
        f64::from(value.abs()),
        value.to_string(),
        format!("{value:e}"),
    )
}

fn java_decimal(magnitude: f64, plain: String, scientific: String) -> String {
    if plain == "NaN" {
        return plain;
    }
    if plain.ends_with("inf") {
        return plain.replace("inf", "Infinity");
    }
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        return if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        };
    }
    let (mantissa, exponent) = scientific
        .split_once('e')
        .expect("`{:e}` formatting always writes an exponent");
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}
