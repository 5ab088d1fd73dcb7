//! Reading a file from a position in bounded chunks: JSONL lines, CSV rows, Parquet rows.
//!
//! Text formats are read up to the last complete line, so a file still being appended to is
//! never cut mid-record; a final line without a newline is taken only once the file stopped
//! growing (`final_tail`). All functions here block: call them from `spawn_blocking`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use super::FileError;
use super::json_field::validate_and_extract;

/// Most bytes read from a text file per chunk (a longer line is read whole, up to the line
/// limit).
const CHUNK_BYTES: usize = 8 << 20;

/// How much of a line over the limit its dead letter keeps.
const OVERSIZED_PREFIX_BYTES: usize = 1024;

/// How much one read may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most records.
    pub max_records: usize,
    /// Longest line (`max.record.bytes`): a longer one becomes an invalid record holding its
    /// first bytes, and is skipped without being held in memory.
    pub max_line_bytes: usize,
}

/// Fewest bytes read per chunk.
const MIN_READ_BYTES: usize = 64 << 10;

/// One record read from a file.
#[derive(Debug)]
pub struct Item {
    /// Position of the record's first byte (or row index).
    pub start: u64,
    /// Position after the record: where reading resumes.
    pub end: u64,
    pub content: Content,
}

#[derive(Debug)]
pub enum Content {
    /// A JSON text (a JSONL line, or a Parquet row rendered as JSON), with the value of the
    /// requested top-level field (see `field` of the read functions) when it has it.
    Json(Bytes, Option<Value>),
    /// A CSV row as an object.
    Row(Value),
    /// Bytes that are not a valid record, and why.
    Invalid(Bytes, String),
}

/// What a chunk read returned.
#[derive(Debug, Default)]
pub struct Chunk {
    pub items: Vec<Item>,
    /// Position after everything consumed (blank lines included).
    pub end: u64,
    pub bytes: u64,
}

fn read_error(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Read {
        path: path.display().to_string(),
        source,
    }
}

/// A line's start, end (after its newline) and bytes (without the newline); for a line over
/// the limit, its first bytes and its whole length.
type Line = (u64, u64, Bytes, Option<u64>);

/// Reads complete lines from `start`, at most `limits.max_records` of them (blank lines are
/// skipped but consumed), reading about `hint_bytes` (what those lines are expected to take).
/// Returns the lines with their positions and the position after the last one.
fn read_lines(
    path: &Path,
    start: u64,
    limits: Limits,
    hint_bytes: usize,
    final_tail: bool,
) -> Result<(Vec<Line>, u64), FileError> {
    let mut file = File::open(path).map_err(read_error(path))?;
    file.seek(SeekFrom::Start(start))
        .map_err(read_error(path))?;
    let mut want = hint_bytes.clamp(MIN_READ_BYTES, CHUNK_BYTES);
    // One spare byte: `read_to_end` then sees the limit without growing (and copying) the buffer.
    let mut buf = Vec::with_capacity(want + 1);
    // Read a chunk; if it holds no newline and is not at EOF, keep reading (one long line).
    let mut at_eof = false;
    loop {
        let before = buf.len();
        (&mut file)
            .take(want as u64)
            .read_to_end(&mut buf)
            .map_err(read_error(path))?;
        let newline = buf[before..].contains(&b'\n');
        if !newline && buf.len() > limits.max_line_bytes {
            // The first line is over the limit: skip it without holding it.
            buf.truncate(OVERSIZED_PREFIX_BYTES);
            return skip_oversized(path, file, start, buf, final_tail);
        }
        if buf.len() - before < want {
            at_eof = true;
            break;
        }
        if newline {
            break;
        }
        want = CHUNK_BYTES;
    }
    let complete = match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => 0,
    };
    let usable = if at_eof && final_tail {
        buf.len()
    } else {
        complete
    };
    let data = Bytes::from(buf).slice(..usable);
    let mut lines = Vec::new();
    let mut offset = 0usize;
    while offset < data.len() && lines.len() < limits.max_records {
        let line_end = data[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| offset + i);
        let next = (line_end + 1).min(data.len());
        let mut line = data.slice(offset..line_end);
        if line.last() == Some(&b'\r') {
            line = line.slice(..line.len() - 1);
        }
        let (line_start, line_end) = (start + offset as u64, start + next as u64);
        if line.len() > limits.max_line_bytes {
            let length = line.len() as u64;
            let prefix = line.slice(..OVERSIZED_PREFIX_BYTES.min(line.len()));
            lines.push((line_start, line_end, prefix, Some(length)));
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push((line_start, line_end, line, None));
        }
        offset = next;
    }
    Ok((lines, start + offset as u64))
}

/// Reads on past a line over the limit that starts at `start` (`prefix` holds its first
/// bytes), a chunk at a time, to its newline: it is returned alone, as its first bytes and
/// length. A line still being written (no newline yet, and not `final_tail`) returns nothing:
/// the next read looks again.
fn skip_oversized(
    path: &Path,
    mut file: File,
    start: u64,
    prefix: Vec<u8>,
    final_tail: bool,
) -> Result<(Vec<Line>, u64), FileError> {
    let mut chunk = vec![0u8; CHUNK_BYTES];
    file.seek(SeekFrom::Start(start))
        .map_err(read_error(path))?;
    let mut length = 0u64;
    loop {
        let read = file.read(&mut chunk).map_err(read_error(path))?;
        if read == 0 {
            if !final_tail {
                return Ok((Vec::new(), start));
            }
            let line = (start, start + length, Bytes::from(prefix), Some(length));
            return Ok((vec![line], start + length));
        }
        if let Some(i) = chunk[..read].iter().position(|b| *b == b'\n') {
            let end = start + length + i as u64 + 1;
            let line = (start, end, Bytes::from(prefix), Some(length + i as u64));
            return Ok((vec![line], end));
        }
        length += read as u64;
    }
}

/// The reason of an invalid record for a line of `length` bytes over `limits`.
fn oversized(length: u64, limits: Limits) -> String {
    format!(
        "a line of {length} bytes is longer than max.record.bytes ({}); the dead letter keeps \
         its first {OVERSIZED_PREFIX_BYTES} bytes (raise max.record.bytes to read such lines)",
        limits.max_line_bytes
    )
}

/// JSONL: each non-blank line is one JSON value, checked for validity here; `field`'s value is
/// extracted in the same pass.
pub fn read_jsonl(
    path: &Path,
    start: u64,
    limits: Limits,
    hint_bytes: usize,
    final_tail: bool,
    field: Option<&str>,
) -> Result<Chunk, FileError> {
    let (lines, end) = read_lines(path, start, limits, hint_bytes, final_tail)?;
    let items = lines
        .into_iter()
        .map(|(start, end, line, over)| {
            if let Some(length) = over {
                let content = Content::Invalid(line, oversized(length, limits));
                return Item {
                    start,
                    end,
                    content,
                };
            }
            let content = match validate_and_extract(&line, field) {
                Ok(value) => Content::Json(line, value),
                Err(e) => Content::Invalid(line, format!("invalid JSON: {e}")),
            };
            Item {
                start,
                end,
                content,
            }
        })
        .collect();
    Ok(Chunk {
        items,
        end,
        bytes: end - start,
    })
}

/// The header row of a CSV file and the position after it (`None` if not complete yet).
pub fn read_csv_header(
    path: &Path,
    delimiter: u8,
    max_line_bytes: usize,
) -> Result<Option<(Vec<String>, u64)>, FileError> {
    let limits = Limits {
        max_records: 1,
        max_line_bytes,
    };
    let (lines, _) = read_lines(path, 0, limits, MIN_READ_BYTES, false)?;
    let Some((_, end, line, over)) = lines.into_iter().next() else {
        return Ok(None);
    };
    if let Some(length) = over {
        return Err(FileError::Read {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("the CSV header: {}", oversized(length, limits))),
        });
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(&line[..]);
    let mut record = csv::StringRecord::new();
    let found = reader
        .read_record(&mut record)
        .map_err(|e| FileError::Read {
            path: path.display().to_string(),
            source: std::io::Error::other(e),
        })?;
    if !found {
        return Ok(None);
    }
    let header = record.iter().map(|h| h.trim().to_owned()).collect();
    Ok(Some((header, end)))
}

/// A CSV cell as JSON: with `infer`, integers, decimals and booleans become numbers and
/// booleans and empty cells null; otherwise a string.
fn csv_cell(cell: &str, infer: bool) -> Value {
    if !infer {
        return Value::String(cell.to_owned());
    }
    if cell.is_empty() {
        return Value::Null;
    }
    // Codes such as zip codes or account numbers keep their leading zeros as text.
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    if digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0.") {
        return Value::String(cell.to_owned());
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Value::from(i);
    }
    if cell.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = cell.parse::<f64>()
        && f.is_finite()
    {
        return Value::from(f);
    }
    match cell {
        "true" | "TRUE" | "True" => Value::Bool(true),
        "false" | "FALSE" | "False" => Value::Bool(false),
        _ => Value::String(cell.to_owned()),
    }
}

/// CSV rows from `start` (past the header), as objects keyed by the header.
/// How a CSV file is read.
#[derive(Debug, Clone, Copy)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub infer_types: bool,
}

pub fn read_csv(
    path: &Path,
    header: &[String],
    start: u64,
    limits: Limits,
    hint_bytes: usize,
    final_tail: bool,
    options: CsvOptions,
) -> Result<Chunk, FileError> {
    let (lines, end) = read_lines(path, start, limits, hint_bytes, final_tail)?;
    let CsvOptions {
        delimiter,
        infer_types: infer,
    } = options;
    let mut items = Vec::with_capacity(lines.len());
    let mut record = csv::StringRecord::new();
    for (line_start, line_end, line, over) in lines {
        if let Some(length) = over {
            items.push(Item {
                start: line_start,
                end: line_end,
                content: Content::Invalid(line, oversized(length, limits)),
            });
            continue;
        }
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .from_reader(&line[..]);
        let content = match reader.read_record(&mut record) {
            Ok(true) if record.len() == header.len() => {
                let row: Map<String, Value> = header
                    .iter()
                    .zip(record.iter())
                    .map(|(h, cell)| (h.clone(), csv_cell(cell, infer)))
                    .collect();
                Content::Row(Value::Object(row))
            }
            Ok(true) => Content::Invalid(
                line,
                format!(
                    "CSV row has {} fields but the header has {}",
                    record.len(),
                    header.len()
                ),
            ),
            Ok(false) => continue,
            Err(e) => Content::Invalid(line, format!("invalid CSV: {e}")),
        };
        items.push(Item {
            start: line_start,
            end: line_end,
            content,
        });
    }
    Ok(Chunk {
        items,
        end,
        bytes: end - start,
    })
}

/// Opens a Parquet file positioned at row `start`.
pub fn open_parquet(
    path: &Path,
    start: u64,
    batch_size: usize,
) -> Result<ParquetRecordBatchReader, FileError> {
    let file = File::open(path).map_err(read_error(path))?;
    let parquet_error = |source| FileError::Parquet {
        path: path.display().to_string(),
        source,
    };
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(parquet_error)?
        .with_batch_size(batch_size)
        .with_offset(usize::try_from(start).unwrap_or(usize::MAX))
        .build()
        .map_err(parquet_error)
}

/// The next rows of an open Parquet reader, rendered as JSON lines. `None` at the end.
pub fn read_parquet(
    path: &Path,
    reader: &mut ParquetRecordBatchReader,
    start: u64,
    field: Option<&str>,
) -> Result<Option<Chunk>, FileError> {
    let Some(batch) = reader.next() else {
        return Ok(None);
    };
    let to_json_error = |source| FileError::ParquetToJson {
        path: path.display().to_string(),
        source,
    };
    let batch = batch.map_err(to_json_error)?;
    let mut writer = arrow_json::LineDelimitedWriter::new(Vec::new());
    writer.write(&batch).map_err(to_json_error)?;
    writer.finish().map_err(to_json_error)?;
    let text = Bytes::from(writer.into_inner());
    let mut items = Vec::with_capacity(batch.num_rows());
    let mut offset = 0;
    let mut row = start;
    while offset < text.len() {
        let end = text[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| offset + i);
        let line = text.slice(offset..end);
        let content = match field.map(|f| validate_and_extract(&line, Some(f))) {
            Some(Ok(value)) => Content::Json(line, value),
            None => Content::Json(line, None),
            Some(Err(e)) => Content::Invalid(line, format!("row is not valid JSON: {e}")),
        };
        items.push(Item {
            start: row,
            end: row + 1,
            content,
        });
        row += 1;
        offset = end + 1;
    }
    let bytes = text.len() as u64;
    Ok(Some(Chunk {
        items,
        end: row,
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(max_records: usize) -> Limits {
        Limits {
            max_records,
            max_line_bytes: 1 << 20,
        }
    }

    #[test]
    fn lines_over_the_limit_become_invalid_records_and_reading_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jsonl");
        let small = Limits {
            max_records: 10,
            max_line_bytes: 2000,
        };
        // A long line inside a chunk, then one longer than a chunk (skipped chunk by chunk),
        // then one still being written (no newline yet).
        let long = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
        let huge = format!("{{\"pad\":\"{}\"}}", "y".repeat(CHUNK_BYTES + 10));
        let text = format!("{{\"a\":1}}\n{long}\n{{\"a\":2}}\n");
        std::fs::write(&path, &text).unwrap();
        let chunk = read_jsonl(&path, 0, small, 0, false, None).unwrap();
        let reasons: Vec<_> = chunk
            .items
            .iter()
            .map(|i| match &i.content {
                Content::Json(..) => "json".to_owned(),
                Content::Invalid(prefix, why) => {
                    assert_eq!(prefix.len(), OVERSIZED_PREFIX_BYTES);
                    why.clone()
                }
                Content::Row(_) => unreachable!(),
            })
            .collect();
        assert_eq!(reasons[0], "json");
        assert!(
            reasons[1].contains(&format!("a line of {} bytes", long.len())),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("max.record.bytes (2000)"),
            "{reasons:?}"
        );
        assert_eq!(reasons[2], "json");
        assert_eq!(chunk.end, text.len() as u64);

        std::fs::write(&path, format!("{text}{huge}\n{{\"a\":3}}\n{huge}")).unwrap();
        let skipped = read_jsonl(&path, chunk.end, small, 0, false, None).unwrap();
        assert_eq!(skipped.items.len(), 1);
        assert!(matches!(&skipped.items[0].content, Content::Invalid(p, why)
            if p.len() == OVERSIZED_PREFIX_BYTES && why.contains(&format!("a line of {} bytes", huge.len()))));
        let after = skipped.end;
        assert_eq!(after, (text.len() + huge.len() + 1) as u64);
        let next = read_jsonl(&path, after, small, 0, false, None).unwrap();
        assert_eq!(
            next.items.len(),
            1,
            "the line after it, and nothing of the unfinished one"
        );
        let unfinished = read_jsonl(&path, next.end, small, 0, false, None).unwrap();
        assert!(unfinished.items.is_empty());
        assert_eq!(unfinished.end, next.end, "waits for its newline");
        let last = read_jsonl(&path, next.end, small, 0, true, None).unwrap();
        assert_eq!(last.items.len(), 1, "once the file stopped growing");
    }

    #[test]
    fn jsonl_reads_complete_lines_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":\n{\"a\":3}").unwrap();
        let chunk = read_jsonl(&path, 0, limits(10), 0, false, None).unwrap();
        assert_eq!(chunk.items.len(), 2, "the unterminated last line waits");
        assert!(
            matches!(chunk.items[1].content, Content::Invalid(_, ref m) if m.contains("invalid JSON"))
        );
        assert_eq!(chunk.end, 15);
        let rest = read_jsonl(&path, chunk.end, limits(10), 0, true, None).unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.end, 22);
        let limited = read_jsonl(&path, 0, limits(1), 0, false, None).unwrap();
        assert_eq!(limited.items.len(), 1);
        assert_eq!(limited.end, 8);
    }

    #[test]
    fn csv_rows_are_typed_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(
            &path,
            "id,amount,ok,name\n1,2.5,true,\"x, y\"\n2,,false,z\n3,4\n",
        )
        .unwrap();
        let (header, start) = read_csv_header(&path, b',', 1 << 20).unwrap().unwrap();
        let options = CsvOptions {
            delimiter: b',',
            infer_types: true,
        };
        let chunk = read_csv(&path, &header, start, limits(10), 0, false, options).unwrap();
        let rows: Vec<_> = chunk
            .items
            .iter()
            .map(|i| match &i.content {
                Content::Row(v) => v.clone(),
                Content::Invalid(_, m) => json!(m),
                Content::Json(..) => json!(null),
            })
            .collect();
        assert_eq!(
            rows[0],
            json!({"id": 1, "amount": 2.5, "ok": true, "name": "x, y"})
        );
        assert_eq!(
            rows[1],
            json!({"id": 2, "amount": null, "ok": false, "name": "z"})
        );
        assert_eq!(rows[2], json!("CSV row has 2 fields but the header has 4"));
    }
}
