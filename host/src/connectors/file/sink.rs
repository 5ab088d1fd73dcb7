//! The FileSink task: each record as one JSON line
//! `{"topic","partition","offset","timestamp","headers","key","value"}`, key and value as the
//! configured converters write them (with the JSON converter, exactly its JSON). Lines are
//! appended and synced at every flush.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use super::FileError;
use super::sink_config::FileSinkConfig;
use crate::api::connector::{BuildContext, Sink};
use crate::api::convert::{Converter, Rendered};
use crate::api::error::DATA_EXCEPTION;
use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::record::Record;
use crate::api::record::bytes_json;

/// `headwater.file.FileSink`.
pub struct FileSink {
    config: FileSinkConfig,
    key_converter: Arc<dyn Converter>,
    value_converter: Arc<dyn Converter>,
    file: Option<File>,
    buffer: Vec<u8>,
}

impl FileSink {
    pub fn new(config: FileSinkConfig, ctx: &BuildContext) -> Self {
        Self {
            config,
            key_converter: ctx.key_converter.clone(),
            value_converter: ctx.value_converter.clone(),
            file: None,
            buffer: Vec::new(),
        }
    }

    /// A path that cannot be a file (a file where a directory should be, no permission, a
    /// directory where the file should be) fails the task; anything else (a full disk, an
    /// interrupted write) may pass, and the task is restarted to try again.
    fn write_error(&self, source: std::io::Error) -> ConnectorError {
        use std::io::ErrorKind;
        let lasting = matches!(
            source.kind(),
            ErrorKind::NotADirectory
                | ErrorKind::IsADirectory
                | ErrorKind::PermissionDenied
                | ErrorKind::ReadOnlyFilesystem
                | ErrorKind::InvalidInput
                | ErrorKind::InvalidFilename
        );
        let error = FileError::Write {
            path: self.config.file.display().to_string(),
            source,
        };
        if lasting {
            ConnectorError::fatal("writing the FileSink output", error)
        } else {
            ConnectorError::retriable("writing the FileSink output", error)
        }
    }

    /// Appends the record's line to the buffer.
    fn write_line(&mut self, record: &mut Record) -> Result<(), RecordError> {
        let convert_error = |stage, e: crate::api::record::ParseError| {
            RecordError::new(
                stage,
                "headwater.file.FileSink",
                DATA_EXCEPTION,
                e.to_string(),
            )
        };
        let key = self
            .key_converter
            .rendered(&mut record.key)
            .map_err(|e| convert_error(Stage::KeyConverter, e))?;
        let value = self
            .value_converter
            .rendered(&mut record.value)
            .map_err(|e| convert_error(Stage::ValueConverter, e))?;
        let line = Line {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            headers: record
                .headers
                .iter()
                .map(|h| HeaderLine {
                    key: &h.key,
                    value: bytes_json(h.value.as_ref()),
                })
                .collect(),
            key,
            value,
        };
        serde_json::to_writer(&mut self.buffer, &line).expect("writing JSON to a Vec cannot fail");
        self.buffer.push(b'\n');
        Ok(())
    }
}

/// One output line, serialized straight from the record (no intermediate JSON tree).
#[derive(Serialize)]
struct Line<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    headers: Vec<HeaderLine<'a>>,
    key: Rendered<'a>,
    value: Rendered<'a>,
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    key: &'a str,
    value: Value,
}

#[async_trait]
impl Sink for FileSink {
    async fn open(&mut self) -> Result<(), ConnectorError> {
        if let Some(dir) = self.config.file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| self.write_error(e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.config.file)
            .map_err(|e| self.write_error(e))?;
        drop_torn_line(&file).map_err(|e| self.write_error(e))?;
        self.file = Some(file);
        Ok(())
    }

    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        let mut failed = Vec::new();
        for mut record in records {
            if let Err(e) = self.write_line(&mut record) {
                failed.push((record, e));
            }
        }
        Ok(failed)
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let Some(file) = self.file.as_mut() else {
            return Err(ConnectorError::fatal(
                "writing the FileSink output",
                "flush called before open",
            ));
        };
        let result = file.write_all(&self.buffer).and_then(|()| file.sync_data());
        result.map_err(|e| self.write_error(e))?;
        self.buffer.clear();
        Ok(())
    }
}

/// A crash mid-write leaves a last line without its newline; its record was never
/// acknowledged and comes again. Cut it, so the file stays one JSON document per line.
fn drop_torn_line(file: &std::fs::File) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut reader = file;
    let mut tail = Vec::new();
    let start = len.saturating_sub(1 << 20);
    reader.seek(SeekFrom::Start(start))?;
    reader.read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    // No newline in the last MiB (or at all): not a file of ours to cut; leave it.
    let Some(i) = tail.iter().rposition(|&b| b == b'\n') else {
        return Ok(());
    };
    let keep = start + i as u64 + 1;
    tracing::warn!(
        bytes = len - keep,
        "Cutting a torn last line left by a crash from the sink file."
    );
    file.set_len(keep)
}
