//! A row as the JSON object `row_to_json` would make of it, rendered here from PostgreSQL's
//! binary format.
//!
//! `row_to_json` costs the server about four times what sending the same rows in binary does
//! (5.3 against 1.3 CPU-seconds for 2,000,000 rows of six columns), and on a small machine the
//! database and Headwater share the cores. So the common column types are read in binary and
//! written as JSON here; every other type is still rendered by PostgreSQL, column by column
//! (`to_json(col)::text`), so the output keeps `row_to_json`'s values for all types. A query
//! whose columns repeat a name cannot be read column by column (the name is ambiguous) and is
//! read whole with `row_to_json`.

use std::error::Error as StdError;

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, Type};

use super::poll_statement::CursorAt;

/// How one column's value is read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `text`, `varchar`, `bpchar`, `name`: a JSON string.
    Text,
    Timestamp,
    TimestampTz,
    Date,
    Uuid,
    /// `json`: its text, embedded as it is.
    Json,
    /// `jsonb`: a version byte, then its text.
    Jsonb,
    /// Any other type: PostgreSQL's own JSON text of the value (`to_json(col)::text`).
    Rendered,
}

impl Kind {
    fn of(ty: &Type) -> Self {
        match *ty {
            Type::BOOL => Self::Bool,
            Type::INT2 => Self::Int2,
            Type::INT4 => Self::Int4,
            Type::INT8 => Self::Int8,
            Type::FLOAT4 => Self::Float4,
            Type::FLOAT8 => Self::Float8,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => Self::Text,
            Type::TIMESTAMP => Self::Timestamp,
            Type::TIMESTAMPTZ => Self::TimestampTz,
            Type::DATE => Self::Date,
            Type::UUID => Self::Uuid,
            Type::JSON => Self::Json,
            Type::JSONB => Self::Jsonb,
            _ => Self::Rendered,
        }
    }
}

#[derive(Debug)]
pub struct Column {
    name: String,
    /// `{"name":` for the first column, `,"name":` for the others.
    key: Vec<u8>,
    kind: Kind,
}

/// Turns rows of one statement into JSON objects.
#[derive(Debug)]
pub enum RowJson {
    /// Column by column, in the order of the query's columns (at least one).
    Columns(Vec<Column>),
    /// Column 0 holds the whole row as `row_to_json` text: for a query whose columns repeat
    /// a name, or that has none (`{}`).
    Whole,
}

/// A column's value could not be read as its type says.
#[derive(Debug, thiserror::Error)]
#[error("column {column:?} ({ty}): {reason}")]
pub struct DecodeError {
    column: String,
    ty: String,
    reason: String,
}

impl RowJson {
    /// How rows with the query's `columns` (as PostgreSQL describes them) are rendered.
    pub fn for_columns(columns: &[tokio_postgres::Column]) -> Self {
        let mut names = std::collections::HashSet::new();
        if columns.is_empty() || !columns.iter().all(|c| names.insert(c.name())) {
            return Self::Whole;
        }
        let columns = columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut key = vec![if i == 0 { b'{' } else { b',' }];
                serde_json::to_writer(&mut key, c.name()).expect("writing to a Vec cannot fail");
                key.push(b':');
                Column {
                    name: c.name().to_owned(),
                    key,
                    kind: Kind::of(c.type_()),
                }
            })
            .collect();
        Self::Columns(columns)
    }

    /// The select list that reads the row's columns from the subquery aliased `alias`.
    pub fn select_list(&self, alias: &str) -> String {
        let Self::Columns(columns) = self else {
            return format!("row_to_json({alias})::text");
        };
        columns
            .iter()
            .map(|c| {
                let column = format!("{alias}.\"{}\"", c.name.replace('"', "\"\""));
                match c.kind {
                    Kind::Rendered => format!("to_json({column})::text"),
                    _ => column,
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the row's columns are selected one by one, each as it is unless its type is
    /// rendered by PostgreSQL (not `bigint`, `timestamp`, ...), so the cursor may read them.
    pub fn reads_columns(&self) -> bool {
        matches!(self, Self::Columns(_))
    }

    /// How many leading columns of a row the JSON object takes.
    pub fn width(&self) -> usize {
        match self {
            Self::Columns(columns) => columns.len(),
            Self::Whole => 1,
        }
    }

    /// Appends the row's JSON object to `out`.
    pub fn write(&self, row: &Row, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let columns = match self {
            Self::Columns(columns) => columns,
            Self::Whole => {
                let text = read(row, 0)?;
                out.extend_from_slice(text.unwrap_or(b"null"));
                return Ok(());
            }
        };
        for (i, column) in columns.iter().enumerate() {
            out.extend_from_slice(&column.key);
            let Some(bytes) = read(row, i)? else {
                out.extend_from_slice(b"null");
                continue;
            };
            write_value(column.kind, bytes, out).map_err(|reason| decode_error(row, i, reason))?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// The raw binary value of any column (`None` for NULL).
struct Raw<'a>(Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Self(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn read(row: &Row, i: usize) -> Result<Option<&[u8]>, DecodeError> {
    row.try_get::<_, Raw>(i)
        .map(|raw| raw.0)
        .map_err(|e| decode_error(row, i, e))
}

/// The row's cursor values: its incrementing value and its timestamp in µs since the Unix
/// epoch, where `at` says they are.
pub fn cursor(row: &Row, at: CursorAt) -> Result<(Option<i64>, Option<i64>), DecodeError> {
    let incrementing = match at.incrementing {
        Some(i) => integer(row, i)?,
        None => None,
    };
    let timestamp = match at.timestamp {
        Some(i) => epoch_micros(row, i)?,
        None => None,
    };
    Ok((incrementing, timestamp))
}

/// The `bigint` in column `i`.
fn integer(row: &Row, i: usize) -> Result<Option<i64>, DecodeError> {
    let Some(bytes) = read(row, i)? else {
        return Ok(None);
    };
    fixed(bytes)
        .map(|b| Some(i64::from_be_bytes(b)))
        .map_err(|reason| decode_error(row, i, reason))
}

/// Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const UNIX_TO_POSTGRES_MICROS: i64 = 946_684_800_000_000;

/// Column `i`, a `timestamp`, `timestamptz` or µs since the Unix epoch as a `bigint`, as µs
/// since the Unix epoch; `None` for NULL and the infinities.
fn epoch_micros(row: &Row, i: usize) -> Result<Option<i64>, DecodeError> {
    let is_timestamp = row
        .columns()
        .get(i)
        .is_some_and(|c| matches!(*c.type_(), Type::TIMESTAMP | Type::TIMESTAMPTZ));
    Ok(match integer(row, i)? {
        Some(i64::MAX | i64::MIN) if is_timestamp => None,
        Some(micros) if is_timestamp => Some(micros + UNIX_TO_POSTGRES_MICROS),
        other => other,
    })
}

fn decode_error(row: &Row, i: usize, reason: impl std::fmt::Display) -> DecodeError {
    let column = row.columns().get(i);
    DecodeError {
        column: column.map_or_else(String::new, |c| c.name().to_owned()),
        ty: column.map_or_else(String::new, |c| c.type_().to_string()),
        reason: reason.to_string(),
    }
}

/// Why a value's bytes are not what its type says.
#[derive(Debug, thiserror::Error)]
enum BadValue {
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    #[error("unknown jsonb binary version {0}")]
    JsonbVersion(u8),
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], BadValue> {
    bytes.try_into().map_err(|_| BadValue::Length {
        expected: N,
        got: bytes.len(),
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, BadValue> {
    Ok(std::str::from_utf8(bytes)?)
}

fn write_value(kind: Kind, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), BadValue> {
    let mut ints = itoa::Buffer::new();
    match kind {
        Kind::Bool => out.extend_from_slice(match bytes {
            [0] => b"false",
            _ => b"true",
        }),
        Kind::Int2 => {
            out.extend_from_slice(ints.format(i16::from_be_bytes(fixed(bytes)?)).as_bytes())
        }
        Kind::Int4 => {
            out.extend_from_slice(ints.format(i32::from_be_bytes(fixed(bytes)?)).as_bytes())
        }
        Kind::Int8 => {
            out.extend_from_slice(ints.format(i64::from_be_bytes(fixed(bytes)?)).as_bytes())
        }
        Kind::Float4 => write_float(f64::from(f32::from_be_bytes(fixed(bytes)?)), true, out),
        Kind::Float8 => write_float(f64::from_be_bytes(fixed(bytes)?), false, out),
        Kind::Text => write_string(utf8(bytes)?, out),
        Kind::Timestamp | Kind::TimestampTz => {
            let micros = i64::from_be_bytes(fixed(bytes)?);
            out.push(b'"');
            write_timestamp(micros, kind == Kind::TimestampTz, out);
            out.push(b'"');
        }
        Kind::Date => {
            out.push(b'"');
            write_date(i32::from_be_bytes(fixed(bytes)?), out);
            out.push(b'"');
        }
        Kind::Uuid => {
            let id = uuid::Uuid::from_bytes(fixed(bytes)?);
            out.push(b'"');
            out.extend_from_slice(
                id.hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    .as_bytes(),
            );
            out.push(b'"');
        }
        Kind::Json | Kind::Rendered => out.extend_from_slice(utf8(bytes)?.as_bytes()),
        Kind::Jsonb => match bytes.split_first() {
            Some((1, text)) => out.extend_from_slice(utf8(text)?.as_bytes()),
            Some((version, _)) => return Err(BadValue::JsonbVersion(*version)),
            None => {
                return Err(BadValue::Length {
                    expected: 1,
                    got: 0,
                });
            }
        },
    }
    Ok(())
}

fn write_string(text: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
}

/// Finite floats as JSON numbers (the shortest text that reads back the same value, as
/// PostgreSQL writes them); NaN and the infinities as strings, as `to_json` does.
fn write_float(value: f64, single: bool, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 {
            b"\"Infinity\""
        } else {
            b"\"-Infinity\""
        });
    } else {
        // A single-precision value is printed as one, or 0.1 would read 0.10000000149011612.
        let written = if single {
            serde_json::to_writer(out, &(value as f32))
        } else {
            serde_json::to_writer(out, &value)
        };
        written.expect("writing to a Vec cannot fail");
    }
}

/// Days from 0000-03-01 (proleptic Gregorian) to 2000-01-01, PostgreSQL's epoch.
const EPOCH_DAYS_FROM_MARCH_0: i64 = 730_425;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// The civil date of `days` after 2000-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + EPOCH_DAYS_FROM_MARCH_0;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` as PostgreSQL's XSD style writes it: at least four digits of year, and years
/// up to 0 as `(1 - year)` with ` BC` after the whole value (the caller adds it).
fn write_ymd(year: i64, month: u32, day: u32, out: &mut Vec<u8>) {
    let shown = if year > 0 { year } else { 1 - year };
    push_padded(shown.unsigned_abs(), 4, out);
    out.push(b'-');
    push_padded(u64::from(month), 2, out);
    out.push(b'-');
    push_padded(u64::from(day), 2, out);
}

/// `n` in decimal, zero-padded to `width` digits.
fn push_padded(n: u64, width: usize, out: &mut Vec<u8>) {
    if width == 2 && n < 100 {
        // The months, days, hours, minutes and seconds of every timestamp.
        out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
        return;
    }
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    out.extend(std::iter::repeat_n(
        b'0',
        width.saturating_sub(digits.len()),
    ));
    out.extend_from_slice(digits.as_bytes());
}

fn write_date(days: i32, out: &mut Vec<u8>) {
    match days {
        i32::MAX => out.extend_from_slice(b"infinity"),
        i32::MIN => out.extend_from_slice(b"-infinity"),
        _ => {
            let (year, month, day) = civil(i64::from(days));
            write_ymd(year, month, day, out);
            if year <= 0 {
                out.extend_from_slice(b" BC");
            }
        }
    }
}

fn write_timestamp(micros: i64, utc_offset: bool, out: &mut Vec<u8>) {
    match micros {
        i64::MAX => return out.extend_from_slice(b"infinity"),
        i64::MIN => return out.extend_from_slice(b"-infinity"),
        _ => {}
    }
    let (year, month, day) = civil(micros.div_euclid(MICROS_PER_DAY));
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    let (seconds, fraction) = (of_day / 1_000_000, of_day % 1_000_000);
    write_ymd(year, month, day, out);
    for (separator, part) in [
        (b'T', seconds / 3600),
        (b':', seconds / 60 % 60),
        (b':', seconds % 60),
    ] {
        out.push(separator);
        push_padded(part as u64, 2, out);
    }
    if fraction != 0 {
        // Six digits of microseconds without the trailing zeros.
        let (mut fraction, mut width) = (fraction as u64, 6);
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        out.push(b'.');
        push_padded(fraction, width, out);
    }
    if utc_offset {
        // The session's time zone is UTC (set on connect).
        out.extend_from_slice(b"+00:00");
    }
    if year <= 0 {
        out.extend_from_slice(b" BC");
    }
}
