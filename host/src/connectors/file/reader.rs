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

/// Most bytes read from a text file per chunk (a longer line is read whole anyway).
const CHUNK_BYTES: usize = 8 << 20;

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

/// A line's start, end (after its newline) and bytes (without the newline).
type Line = (u64, u64, Bytes);

/// Reads complete lines from `start`, at most `max_lines` of them (blank lines are skipped but
/// consumed), reading about `hint_bytes` (what `max_lines` lines are expected to take). Returns
/// the lines with their positions and the position after the last one.
fn read_lines(
    path: &Path,
    start: u64,
    max_lines: usize,
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
        if buf.len() - before < want {
            at_eof = true;
            break;
        }
        if buf[before..].contains(&b'\n') {
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
    while offset < data.len() && lines.len() < max_lines {
        let line_end = data[offset..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |i| offset + i);
        let next = (line_end + 1).min(data.len());
        let mut line = data.slice(offset..line_end);
        if line.last() == Some(&b'\r') {
            line = line.slice(..line.len() - 1);
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push((start + offset as u64, start + next as u64, line));
        }
        offset = next;
    }
    Ok((lines, start + offset as u64))
}

/// JSONL: each non-blank line is one JSON value, checked for validity here; `field`'s value is
/// extracted in the same pass.
pub fn read_jsonl(
    path: &Path,
    start: u64,
    max_records: usize,
    hint_bytes: usize,
    final_tail: bool,
    field: Option<&str>,
) -> Result<Chunk, FileError> {
    let (lines, end) = read_lines(path, start, max_records, hint_bytes, final_tail)?;
    let items = lines
        .into_iter()
        .map(|(start, end, line)| {
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
) -> Result<Option<(Vec<String>, u64)>, FileError> {
    let (lines, _) = read_lines(path, 0, 1, MIN_READ_BYTES, false)?;
    let Some((_, end, line)) = lines.into_iter().next() else {
        return Ok(None);
    };
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
    max_records: usize,
    hint_bytes: usize,
    final_tail: bool,
    options: CsvOptions,
) -> Result<Chunk, FileError> {
    let (lines, end) = read_lines(path, start, max_records, hint_bytes, final_tail)?;
    let CsvOptions {
        delimiter,
        infer_types: infer,
    } = options;
    let mut items = Vec::with_capacity(lines.len());
    let mut record = csv::StringRecord::new();
    for (line_start, line_end, line) in lines {
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

    #[test]
    fn jsonl_reads_complete_lines_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{\"a\":1}\n\n{\"a\":\n{\"a\":3}").unwrap();
        let chunk = read_jsonl(&path, 0, 10, 0, false, None).unwrap();
        assert_eq!(chunk.items.len(), 2, "the unterminated last line waits");
        assert!(
            matches!(chunk.items[1].content, Content::Invalid(_, ref m) if m.contains("invalid JSON"))
        );
        assert_eq!(chunk.end, 15);
        let rest = read_jsonl(&path, chunk.end, 10, 0, true, None).unwrap();
        assert_eq!(rest.items.len(), 1);
        assert_eq!(rest.end, 22);
        let limited = read_jsonl(&path, 0, 1, 0, false, None).unwrap();
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
        let (header, start) = read_csv_header(&path, b',').unwrap().unwrap();
        let options = CsvOptions {
            delimiter: b',',
            infer_types: true,
        };
        let chunk = read_csv(&path, &header, start, 10, 0, false, options).unwrap();
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
