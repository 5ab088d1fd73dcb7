//! A one-pass decoder of flat JSON rows into Arrow columns, for the rows most sinks see: an
//! object of numbers, booleans, strings and timestamps, read straight into the column builders.
//!
//! arrow-json's decoder is general (any nesting, coercions, field order) and goes through a
//! tape: each row is tokenized, then each column gathers its values from the tape. On flat rows
//! that was ~30% of a query-to-Parquet run's samples. This decoder takes only the plain subset
//! of JSON whose meaning is the same for both (integers that fit, finite numbers, strings,
//! `true`/`false`, `null`, ISO-8601 text in timestamp columns) and gives up on anything else
//! (an unknown or repeated key, a float in an integer column, a nested value, a malformed row),
//! leaving the whole chunk to arrow-json, which decodes it or says what is wrong.

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMillisecondBuilder,
};
use arrow_array::timezone::Tz;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, SchemaRef, TimeUnit};

/// A column the decoder can fill.
enum Column {
    Int64(Int64Builder),
    Float64(Float64Builder),
    Boolean(BooleanBuilder),
    Utf8(StringBuilder),
    /// Milliseconds, from ISO-8601 text or an integer, as arrow-json reads them; whether the
    /// column's zone is UTC.
    Timestamp(TimestampMillisecondBuilder, Tz, bool),
}

impl Column {
    fn for_type(data_type: &DataType, rows: usize) -> Option<Self> {
        Some(match data_type {
            DataType::Int64 => Self::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float64 => Self::Float64(Float64Builder::with_capacity(rows)),
            DataType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Utf8 => Self::Utf8(StringBuilder::with_capacity(rows, rows * 8)),
            DataType::Timestamp(TimeUnit::Millisecond, zone) => {
                // arrow-json reads text without an offset in the column's zone (UTC without one).
                let tz: Tz = zone.as_deref().unwrap_or("+00:00").parse().ok()?;
                let utc = zone.as_deref().is_none_or(|z| z == "+00:00" || z == "UTC");
                let builder = TimestampMillisecondBuilder::with_capacity(rows)
                    .with_data_type(data_type.clone());
                Self::Timestamp(builder, tz, utc)
            }
            _ => return None,
        })
    }

    fn append_null(&mut self) {
        match self {
            Self::Int64(b) => b.append_null(),
            Self::Float64(b) => b.append_null(),
            Self::Boolean(b) => b.append_null(),
            Self::Utf8(b) => b.append_null(),
            Self::Timestamp(b, ..) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Self::Int64(b) => Arc::new(b.finish()),
            Self::Float64(b) => Arc::new(b.finish()),
            Self::Boolean(b) => Arc::new(b.finish()),
            Self::Utf8(b) => Arc::new(b.finish()),
            Self::Timestamp(b, ..) => Arc::new(b.finish()),
        }
    }
}

/// Whether rows of `schema` can be decoded here: at most 64 top-level columns of the types
/// above, named once each, without characters JSON escapes (their keys are matched as written).
fn supports(schema: &SchemaRef) -> bool {
    let fields = schema.fields();
    fields.len() <= 64
        && fields.iter().enumerate().all(|(i, f)| {
            Column::for_type(f.data_type(), 0).is_some()
                && f.name()
                    .bytes()
                    .all(|c| c >= 0x20 && c != b'"' && c != b'\\')
                && !fields[..i].iter().any(|g| g.name() == f.name())
        })
}

/// Decodes `rows` (`count` of them, each one JSON object) with `schema`, or `None` when a row
/// is outside the plain subset (arrow-json then decodes the chunk).
pub fn decode<'a>(
    schema: &SchemaRef,
    count: usize,
    rows: impl Iterator<Item = &'a [u8]>,
) -> Option<RecordBatch> {
    if !supports(schema) {
        return None;
    }
    let fields = schema.fields();
    let mut columns: Vec<Column> = fields
        .iter()
        .map(|f| Column::for_type(f.data_type(), count))
        .collect::<Option<_>>()?;
    let names: Vec<&[u8]> = fields.iter().map(|f| f.name().as_bytes()).collect();
    // Each name as its key is written without escapes, quotes included.
    let keys: Vec<Vec<u8>> = names
        .iter()
        .map(|n| [&b"\""[..], n, b"\""].concat())
        .collect();
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let nullable: u64 = fields
        .iter()
        .enumerate()
        .filter(|(_, f)| f.is_nullable())
        .fold(0, |mask, (i, _)| mask | 1 << i);
    let all: u64 = if fields.len() == 64 {
        u64::MAX
    } else {
        (1 << fields.len()) - 1
    };
    for row in rows {
        let seen = Reader { text: row, at: 0 }.row(&names, &keys, &mut columns)?;
        let missing = all & !seen;
        if missing & !nullable != 0 {
            return None;
        }
        for (i, column) in columns.iter_mut().enumerate() {
            if missing & (1 << i) != 0 {
                column.append_null();
            }
        }
    }
    let arrays = columns.iter_mut().map(Column::finish).collect();
    RecordBatch::try_new(Arc::clone(schema), arrays).ok()
}

/// Milliseconds since the epoch of `YYYY-MM-DD[T ]HH:MM:SS[.fraction][Z|±HH:MM]`, the shape
/// nearly every writer uses, read without arrow-cast's general parser (`string_to_datetime`
/// was ~5% of a query-to-Parquet run's samples); the same value, the fraction truncated to
/// milliseconds. Text without an offset counts only in a UTC column (`utc`). `None` for any
/// other shape: the general parser reads it.
fn iso_millis(s: &[u8], utc: bool) -> Option<i64> {
    let number = |at: usize, len: usize| -> Option<u32> {
        s.get(at..at + len)?.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    if s.len() < 19
        || s[4] != b'-'
        || s[7] != b'-'
        || !matches!(s[10], b'T' | b' ')
        || s[13] != b':'
        || s[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(number(0, 4)?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, number(5, 2)?, number(8, 2)?)?;
    let time = date.and_hms_opt(number(11, 2)?, number(14, 2)?, number(17, 2)?)?;
    let mut millis = time.and_utc().timestamp_millis();
    let mut at = 19;
    if s.get(at) == Some(&b'.') {
        let digits = s[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if digits == 0 || digits > 9 {
            return None;
        }
        let shown = digits.min(3);
        let fraction = number(at + 1, shown)?;
        millis += i64::from(fraction * 10u32.pow(3 - shown as u32));
        at += 1 + digits;
    }
    match &s[at..] {
        [] if utc => Some(millis),
        [b'Z'] => Some(millis),
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (number(at + 1, 2)?, number(at + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let offset = i64::from(hours * 3600 + minutes * 60) * 1000;
            Some(if *sign == b'+' {
                millis - offset
            } else {
                millis + offset
            })
        }
        _ => None,
    }
}

/// A cursor over one row's text.
struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Reads the row's object into `columns`; the columns it set, as a bit mask.
    fn row(&mut self, names: &[&[u8]], keys: &[&[u8]], columns: &mut [Column]) -> Option<u64> {
        let mut seen = 0u64;
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            // Rows usually repeat one field order: the next field's key is tried first.
            let mut next = 0;
            loop {
                self.skip_whitespace();
                let i = match keys.get(next) {
                    Some(key) if self.text[self.at..].starts_with(key) => {
                        self.at += key.len();
                        next
                    }
                    _ => {
                        let key = self.string_bytes()?;
                        if key.contains(&b'\\') {
                            return None;
                        }
                        names.iter().position(|n| *n == key)?
                    }
                };
                if seen & (1 << i) != 0 {
                    return None;
                }
                seen |= 1 << i;
                next = i + 1;
                self.expect(b':')?;
                self.value(&mut columns[i])?;
                match self.next_byte()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        self.skip_whitespace();
        (self.at == self.text.len()).then_some(seen)
    }

    fn value(&mut self, column: &mut Column) -> Option<()> {
        self.skip_whitespace();
        if self.text[self.at..].starts_with(b"null") {
            self.at += 4;
            column.append_null();
            return Some(());
        }
        match column {
            Column::Int64(b) => b.append_value(self.integer()?),
            Column::Float64(b) => b.append_value(self.number()?),
            Column::Boolean(b) => {
                let rest = &self.text[self.at..];
                let value = if rest.starts_with(b"true") {
                    true
                } else if rest.starts_with(b"false") {
                    false
                } else {
                    return None;
                };
                self.at += if value { 4 } else { 5 };
                b.append_value(value);
            }
            Column::Utf8(b) => {
                let text = self.string()?;
                b.append_value(&*text);
            }
            Column::Timestamp(b, tz, utc) => {
                let millis = match self.peek()? {
                    b'"' => {
                        let text = self.string()?;
                        match iso_millis(text.as_bytes(), *utc) {
                            Some(millis) => millis,
                            None => arrow_cast::parse::string_to_datetime(tz, &text)
                                .ok()?
                                .timestamp_millis(),
                        }
                    }
                    _ => self.integer()?,
                };
                b.append_value(millis);
            }
        }
        Some(())
    }

    /// A JSON integer that fits an `i64`, not followed by a fraction or an exponent.
    fn integer(&mut self) -> Option<i64> {
        let start = self.at;
        let negative = self.text.get(self.at) == Some(&b'-');
        if negative {
            self.at += 1;
        }
        let digits = self.digits();
        // JSON has no leading zeros; a fraction or exponent is arrow-json's to read.
        if digits == 0
            || (digits > 1 && self.text[self.at - digits] == b'0')
            || matches!(self.text.get(self.at), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        std::str::from_utf8(&self.text[start..self.at])
            .ok()?
            .parse()
            .ok()
    }

    /// A JSON number as an `f64` (correctly rounded, as arrow-json's parser).
    fn number(&mut self) -> Option<f64> {
        let start = self.at;
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let digits = self.digits();
        if digits == 0 || (digits > 1 && self.text[self.at - digits] == b'0') {
            return None;
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if matches!(self.text.get(self.at), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.text.get(self.at), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let value: f64 = std::str::from_utf8(&self.text[start..self.at])
            .ok()?
            .parse()
            .ok()?;
        value.is_finite().then_some(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.text.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// A string's text, unescaped.
    fn string(&mut self) -> Option<std::borrow::Cow<'a, str>> {
        let start = self.at;
        let raw = self.string_bytes()?;
        match raw.contains(&b'\\') {
            false => std::str::from_utf8(raw)
                .ok()
                .map(std::borrow::Cow::Borrowed),
            true => serde_json::from_slice::<String>(&self.text[start..self.at])
                .ok()
                .map(std::borrow::Cow::Owned),
        }
    }

    /// A string's bytes between its quotes, escapes left as written; `None` for a raw control
    /// character (not JSON) or no closing quote.
    fn string_bytes(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match *self.text.get(self.at)? {
                b'"' => break,
                b'\\' => self.at += 2,
                c if c < 0x20 => return None,
                _ => self.at += 1,
            }
        }
        let raw = self.text.get(start..self.at)?;
        self.at += 1;
        Some(raw)
    }

    fn skip_whitespace(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.text.get(self.at).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next_byte()? == c).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_schema::{Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into())),
                true,
            ),
        ]))
    }

    /// arrow-json's decoding of the same rows, strict as the sink's.
    fn arrow_json(
        schema: &SchemaRef,
        rows: &[&str],
    ) -> Result<Option<RecordBatch>, arrow_schema::ArrowError> {
        let mut decoder = arrow_json::ReaderBuilder::new(Arc::clone(schema))
            .with_strict_mode(true)
            .build_decoder()?;
        let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
        decoder.decode(text.as_bytes())?;
        decoder.flush()
    }

    fn fast(schema: &SchemaRef, rows: &[&str]) -> Option<RecordBatch> {
        decode(schema, rows.len(), rows.iter().map(|r| r.as_bytes()))
    }

    #[test]
    fn plain_rows_decode_as_arrow_json_decodes_them() {
        let rows = [
            r#"{"id":1,"name":"a","score":1.5,"ok":true,"ts":"2024-03-05T10:00:00Z"}"#,
            r#"{ "id" : -42 , "name" : "é \u00e9 \n \"q\"" , "score" : -0.0 , "ok" : false , "ts" : "2024-03-05 10:00:00.123" }"#,
            r#"{"ts":"2024-03-05T12:00:00+02:00","ok":null,"score":1e-7,"name":null,"id":null}"#,
            r#"{"id":9223372036854775807,"score":12345678901234567890,"ts":1709632800123}"#,
            r#"{}"#,
            r#"{"name":"","score":0,"ts":"2024-03-05"}  "#,
            r#"{"id":0,"score":2.5E+3,"ts":null}"#,
            r#"{"ts":"1969-12-31T23:59:59.9995Z"}"#,
            r#"{"ts":"2024-03-05T10:00:00.123456789-05:30"}"#,
            r#"{"ts":"2024-02-29 00:00:00.5"}"#,
            r#"{"ts":"2024-03-05T10:00:00.1234567891Z"}"#,
            r#"{"ts":"2024-03-05T23:59:59+14:00"}"#,
            r#"{"ts":"0001-01-01T00:00:00Z"}"#,
            r#"{"ts":"2024-03-05T10:00:00+0200"}"#,
            r#"{"ts":"2024-03-05T10:00:00.000"}"#,
        ];
        let schema = schema();
        let expected = arrow_json(&schema, &rows).expect("arrow-json decodes them");
        assert_eq!(fast(&schema, &rows), expected);
        assert!(expected.is_some_and(|b| b.num_rows() == rows.len()));
    }

    #[test]
    fn iso_text_reads_as_arrow_cast_reads_it() {
        let tz: Tz = "+00:00".parse().expect("a zone");
        let mut read = 0;
        for date in [
            "1969-12-31",
            "1970-01-01",
            "2000-02-29",
            "2024-03-05",
            "9999-12-31",
            "0001-01-01",
            "2023-02-29",
        ] {
            for separator in ["T", " "] {
                for time in ["00:00:00", "23:59:59", "12:34:56", "24:00:00", "23:59:60"] {
                    for fraction in ["", ".5", ".123", ".1239", ".000001", ".123456789"] {
                        for offset in ["", "Z", "+02:00", "-05:30", "+14:00", "-00:00"] {
                            let text = format!("{date}{separator}{time}{fraction}{offset}");
                            let general = arrow_cast::parse::string_to_datetime(&tz, &text)
                                .ok()
                                .map(|t| t.timestamp_millis());
                            // None: left to the general parser.
                            if let Some(millis) = iso_millis(text.as_bytes(), true) {
                                assert_eq!(Some(millis), general, "{text}");
                                read += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(read, 6 * 2 * 3 * 6 * 6, "every valid text is read here");
        assert_eq!(iso_millis(b"2024-03-05T10:00:00", false), None);
    }

    #[test]
    fn anything_outside_the_plain_subset_is_left_to_arrow_json() {
        let schema = schema();
        for row in [
            r#"{"id":1.0}"#,                 // a float in an integer column
            r#"{"id":1e3}"#,                 // an exponent in an integer column
            r#"{"id":"1"}"#,                 // text in an integer column
            r#"{"id":01}"#,                  // not JSON
            r#"{"id":9223372036854775808}"#, // past i64
            r#"{"ok":1}"#,                   // a number in a boolean column
            r#"{"name":5}"#,                 // a number in a text column
            r#"{"name":{"a":1}}"#,           // nested
            r#"{"other":1}"#,                // not in the schema
            r#"{"id":1,"id":2}"#,            // repeated
            r#"{"id":1}{"id":2}"#,           // two objects
            r#"{"id":1,}"#,                  // not JSON
            "{\"name\":\"a\tb\"}",           // a raw control character
            r#"{"name":"\x"}"#,              // a bad escape
            r#"{"score":1.}"#,               // not JSON
            r#"{"score":NaN}"#,              // not JSON
            r#"{"ts":"yesterday"}"#,         // not a date-time
            r#"{"id":1"#,                    // cut short
            r#"{"i\u0064":1}"#,              // an escaped key
        ] {
            assert_eq!(fast(&schema, &[row]), None, "{row}");
        }
    }

    #[test]
    fn a_missing_required_field_is_left_to_arrow_json() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        assert!(fast(&schema, &[r#"{"id":1}"#]).is_some());
        assert_eq!(fast(&schema, &[r#"{"name":"a"}"#]), None);
        assert_eq!(fast(&schema, &[r#"{"id":null}"#]), None);
        assert!(arrow_json(&schema, &[r#"{"name":"a"}"#]).is_err());
    }

    #[test]
    fn only_flat_schemas_of_these_types_are_supported() {
        assert!(supports(&schema()));
        let nested = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Struct(vec![Field::new("a", DataType::Int64, true)].into()),
            true,
        )]));
        assert!(!supports(&nested));
        let micros = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        )]));
        assert!(!supports(&micros));
        let quoted = Arc::new(Schema::new(vec![Field::new("a\"b", DataType::Int64, true)]));
        assert!(!supports(&quoted));
        let twice = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("a", DataType::Utf8, true),
        ]));
        assert!(!supports(&twice));
        let wide = Arc::new(Schema::new(
            (0..65)
                .map(|i| Field::new(format!("c{i}"), DataType::Int64, true))
                .collect::<Vec<_>>(),
        ));
        assert!(!supports(&wide));
        assert_eq!(decode(&wide, 1, std::iter::once(&b"{}"[..])), None);
    }
}
