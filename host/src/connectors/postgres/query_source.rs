//! `headwater.postgres.QuerySource`: rows of a query or table, polled with Confluent's JDBC
//! source modes. Each row becomes the JSON object `row_to_json` would make of it (see
//! [`super::row_json`]); the cursor columns are read alongside as integers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};
use tokio_util::sync::CancellationToken;

use super::error::{PgError, describe};
use super::poll_statement::{Arg, CursorAt, PollStatement};
use super::query_config::{Mode, QuerySourceConfig, Source as Rows, quote_identifier};
use super::row_json::{self, DecodeError, RowJson};
use crate::api::connector::{BuildContext, Source, SourceBatch, SourceContext};
use crate::api::error::ConnectorError;
use crate::api::record::{Payload, Position, Record};
use crate::api::retry::Backoff;

/// Longest pause between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where the last published row left off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Cursor {
    incrementing: Option<i64>,
    /// Microseconds since the epoch of the last timestamp.
    timestamp_us: Option<i64>,
}

impl Cursor {
    /// Reads Confluent's offset shape: `incrementing`, `timestamp` (ms) and `timestamp_nanos`
    /// (the fraction of the second).
    fn from_offset(offset: Option<&Value>) -> Self {
        let Some(offset) = offset else {
            return Self::default();
        };
        let timestamp_us = offset["timestamp"].as_i64().map(|ms| {
            let nanos = offset["timestamp_nanos"]
                .as_i64()
                .unwrap_or((ms.rem_euclid(1000)) * 1_000_000);
            ms.div_euclid(1000) * 1_000_000 + nanos / 1000
        });
        Self {
            incrementing: offset["incrementing"].as_i64(),
            timestamp_us,
        }
    }

    fn to_offset(self) -> Value {
        let mut offset = serde_json::Map::new();
        if let Some(i) = self.incrementing {
            offset.insert("incrementing".into(), json!(i));
        }
        if let Some(us) = self.timestamp_us {
            offset.insert("timestamp".into(), json!(us.div_euclid(1000)));
            offset.insert(
                "timestamp_nanos".into(),
                json!(us.rem_euclid(1_000_000) * 1000),
            );
        }
        Value::Object(offset)
    }
}

pub struct QuerySource {
    config: QuerySourceConfig,
    connector: Arc<str>,
    /// What is read: one range, or `partition.count` ranges read concurrently.
    ranges: Vec<Range>,
    /// Numbers the records (the Kafka-style offset of the embedded topic).
    next_offset: i64,
}

/// One range of the read: its own statement, source partition and offset.
#[derive(Debug)]
struct Range {
    /// Confluent's partition, `{"table": ..}` or `{"query": ..}`, with `"range": i` when the
    /// read is split.
    partition: Value,
    partition_key: Arc<str>,
    statement: PollStatement,
}

/// A range's statement, prepared on its connection.
struct Prepared {
    statement: Statement,
    row: RowJson,
    cursor: CursorAt,
    /// The statement as error messages show it.
    shown: String,
}

/// What a range reader hands the task.
enum Polled {
    /// Rows to send, with the range's offset after them.
    Batch(SourceBatch),
    /// The range has read everything new for now.
    CaughtUp,
}

/// The most rows a batch reserves room for before it has them.
const MAX_RESERVED_ROWS: usize = 16_384;

/// The size of the blocks rows' JSON texts are written into: a few hundred rows each, so a
/// record kept longer than its batch (a dead letter) holds little memory.
const TEXT_BLOCK: usize = 64 * 1024;

/// Batches a range reader may have ready while the task sends the others'.
const READ_AHEAD: usize = 2;

impl QuerySource {
    pub fn new(config: QuerySourceConfig, ctx: &BuildContext) -> Self {
        let split = config.ranges.as_ref().map_or(1, |r| r.count);
        let ranges = (0..split)
            .map(|i| {
                let mut partition = match &config.source {
                    Rows::Table(t) => json!({ "table": t }),
                    Rows::Query(q) => json!({ "query": q }),
                };
                if split > 1 {
                    partition["range"] = json!(i);
                }
                Range {
                    partition_key: Arc::from(partition.to_string()),
                    partition,
                    statement: PollStatement::new(&config, i),
                }
            })
            .collect();
        Self {
            ranges,
            connector: Arc::from(ctx.connector.as_str()),
            config,
            next_offset: 0,
        }
    }

    async fn connect(&self) -> Result<Client, PgError> {
        let client = super::client::connect(&self.config.connection, &self.connector).await?;
        // Timestamps without a time zone are read as UTC, like the cursor.
        client
            .batch_execute("SET TIME ZONE 'UTC'")
            .await
            .map_err(PgError::postgres("setting the session time zone"))?;
        Ok(client)
    }

    /// Prepares `range`'s statement on `client`: describes the query's columns, then reads
    /// them as [`RowJson`] says.
    async fn prepare(
        &self,
        client: &Client,
        range: &Range,
    ) -> Result<Prepared, tokio_postgres::Error> {
        let described = client.prepare(&range.statement.describe).await?;
        let row = RowJson::for_columns(described.columns());
        let not_null = self.partition_not_null(client).await?;
        let written = range.statement.sql(&row, described.columns(), not_null);
        let statement = client.prepare(&written.sql).await?;
        Ok(Prepared {
            statement,
            row,
            cursor: written.cursor,
            shown: written.shown,
        })
    }

    /// Whether the partition column of a partitioned table read can hold no NULL: declared NOT
    /// NULL by a validated constraint on a table whose rows are all its own (a plain table
    /// without inheritance children, or a partitioned one, whose partitions share its NOT
    /// NULLs). A query's columns may be NULL whatever their table says (an outer join): false.
    async fn partition_not_null(&self, client: &Client) -> Result<bool, tokio_postgres::Error> {
        let (Rows::Table(table), Some(ranges)) = (&self.config.source, &self.config.ranges) else {
            return Ok(false);
        };
        if ranges.count < 2 {
            return Ok(false);
        }
        // PostgreSQL 18 marks a NOT VALID NOT NULL constraint in attnotnull too.
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await?
            .get(0);
        let valid = if version >= 180_000 {
            "a.attnotnullvalid"
        } else {
            "true"
        };
        let column = ranges.column.trim().trim_matches('"');
        let sql = format!(
            "SELECT a.attnotnull AND {valid} AND (c.relkind = 'p' OR (c.relkind = 'r' AND \
             NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid))) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE a.attrelid = $1::text::regclass AND a.attname = $2 AND NOT a.attisdropped"
        );
        let row = client
            .query_opt(&sql, &[&quote_identifier(table), &column])
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }

    /// One poll of `range`: streams the new rows and hands them over in batches. Failures come
    /// back as `Ok(Err(..))`; `Err` when the task stopped taking batches.
    async fn poll(
        &self,
        client: &Client,
        range: &Range,
        prepared: &mut Option<Prepared>,
        cursor: &mut Cursor,
        out: &mpsc::Sender<Polled>,
    ) -> Result<Result<(), PollError>, Stopped> {
        let delay = self.config.timestamp_delay_ms as i64;
        let params: Vec<&(dyn ToSql + Sync)> = range
            .statement
            .args
            .iter()
            .map(|a| -> &(dyn ToSql + Sync) {
                match a {
                    Arg::Incrementing => &cursor.incrementing,
                    Arg::Timestamp => &cursor.timestamp_us,
                    Arg::Delay => &delay,
                }
            })
            .collect();
        // Prepared once per connection, reused by every poll on it.
        let prepared = match prepared {
            Some(p) => &*p,
            None => match self.prepare(client, range).await {
                Ok(p) => &*prepared.insert(p),
                Err(e) => return Ok(Err(PollError::Db(e))),
            },
        };
        let rows = match client.query_raw(&prepared.statement, params).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(PollError::Db(e))),
        };
        // Each row's JSON is written here, then copied into a block shared by the rows after
        // it: one allocation per block instead of two per row (a vector, then the shared
        // count of the `Bytes` made from it).
        let mut text = Vec::new();
        let mut block = BytesMut::new();
        futures_util::pin_mut!(rows);
        let mut batch = self.new_batch();
        loop {
            let row = match rows.try_next().await {
                Ok(row) => row,
                Err(e) => return Ok(Err(PollError::Db(e))),
            };
            let Some(row) = row else { break };
            text.clear();
            if let Err(e) = prepared.row.write(&row, &mut text) {
                return Ok(Err(PollError::Decode(e)));
            }
            let read = row_json::cursor(&row, prepared.cursor);
            let (incrementing, timestamp_us) = match read {
                Ok(cursor) => cursor,
                Err(e) => return Ok(Err(PollError::Decode(e))),
            };
            batch.bytes += text.len() as u64;
            if block.capacity() < text.len() {
                block.reserve(TEXT_BLOCK.max(text.len()));
            }
            block.extend_from_slice(&text);
            if self.config.mode != Mode::Bulk {
                *cursor = Cursor {
                    incrementing: incrementing.or(cursor.incrementing),
                    timestamp_us: timestamp_us.or(cursor.timestamp_us),
                };
            }
            let mut record = Record::new(
                self.config.topic.clone(),
                Payload::json_bytes(block.split().freeze()),
            );
            record.timestamp = timestamp_us.map(|us| us.div_euclid(1000));
            // A monotonic position lets sinks skip what they already hold after a crash.
            let position = match self.config.mode {
                Mode::Incrementing => incrementing,
                Mode::Timestamp => timestamp_us,
                _ => None,
            };
            record.position = position
                .and_then(|p| u64::try_from(p).ok())
                .map(|offset| Position {
                    source: Arc::clone(&self.connector),
                    partition: Arc::clone(&range.partition_key),
                    offset,
                });
            batch.records.push(record);
            if batch.records.len() >= self.config.batch_max_rows {
                self.hand_over(&mut batch, range, *cursor, out).await?;
            }
        }
        self.hand_over(&mut batch, range, *cursor, out).await?;
        Ok(Ok(()))
    }

    /// An empty batch with room for a full one: growing a vector of records one doubling at a
    /// time copies each of them about twice.
    fn new_batch(&self) -> SourceBatch {
        SourceBatch {
            records: Vec::with_capacity(self.config.batch_max_rows.min(MAX_RESERVED_ROWS)),
            ..SourceBatch::default()
        }
    }

    async fn hand_over(
        &self,
        batch: &mut SourceBatch,
        range: &Range,
        cursor: Cursor,
        out: &mpsc::Sender<Polled>,
    ) -> Result<(), Stopped> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let mut full = std::mem::replace(batch, self.new_batch());
        if self.config.mode != Mode::Bulk {
            full.offsets = vec![(range.partition.clone(), cursor.to_offset())];
        }
        out.send(Polled::Batch(full)).await.map_err(|_| Stopped)
    }

    /// Reads `range` from `cursor` on its own connection: polls until stopped, or once in a
    /// bounded run.
    async fn read_range(
        &self,
        range: &Range,
        mut cursor: Cursor,
        out: mpsc::Sender<Polled>,
        cancel: CancellationToken,
        bounded: bool,
    ) -> Result<(), ConnectorError> {
        let mut backoff = Backoff::new(Duration::from_millis(500), MAX_BACKOFF);
        loop {
            let client = tokio::select! {
                client = self.connect() => client,
                _ = cancel.cancelled() => return Ok(()),
            };
            let client = match client {
                Ok(c) => {
                    backoff.reset();
                    c
                }
                Err(e) => {
                    tracing::warn!(connector = %self.connector, error = %e, retry_in_ms = backoff.delay().as_millis() as u64, "Cannot connect to PostgreSQL; retrying.");
                    if !backoff.wait(&cancel).await {
                        return Ok(());
                    }
                    continue;
                }
            };
            let mut prepared = None;
            loop {
                let polled = tokio::select! {
                    polled = self.poll(&client, range, &mut prepared, &mut cursor, &out) => polled,
                    _ = cancel.cancelled() => return Ok(()),
                };
                let Ok(polled) = polled else {
                    // The task stopped taking batches: it is ending.
                    return Ok(());
                };
                let e = match polled {
                    Ok(()) => None,
                    Err(PollError::Db(e)) => Some(e),
                    Err(PollError::Decode(e)) => {
                        return Err(ConnectorError::Fatal {
                            context: format!("reading a row of {}", range.partition),
                            source: Box::new(e),
                        });
                    }
                };
                if let Some(e) = e {
                    if let Some(db) = e.as_db_error().filter(|d| {
                        let class = &d.code().code()[..2];
                        class == "42" || class == "22"
                    }) {
                        // A bad query, table or column (class 42), or a value PostgreSQL cannot
                        // read (class 22: a timestamp.from it cannot parse): retrying cannot help.
                        return Err(ConnectorError::Config(format!(
                            "the poll query failed: {}: {}; query: {}",
                            db.code().code(),
                            db.message(),
                            prepared
                                .as_ref()
                                .map_or_else(|| range.statement.shown(), |p| p.shown.clone())
                        )));
                    }
                    tracing::warn!(connector = %self.connector, error = %describe(&e), "PostgreSQL poll failed; reconnecting.");
                    break;
                }
                if bounded {
                    // One complete pass: a poll reads every row past the cursor.
                    return Ok(());
                }
                if out.send(Polled::CaughtUp).await.is_err() {
                    return Ok(());
                }
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
        }
    }
}

/// The task stopped taking batches.
#[derive(Debug)]
struct Stopped;

/// Why a poll failed.
#[derive(Debug)]
enum PollError {
    /// The database failed or refused the statement.
    Db(tokio_postgres::Error),
    /// A value was not what its column's type says.
    Decode(DecodeError),
}

#[async_trait]
impl Source for QuerySource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        let cursors: Vec<Cursor> = self
            .ranges
            .iter()
            .map(|r| Cursor::from_offset(ctx.committed(&r.partition)))
            .collect();
        // Stops the other ranges when one fails, or when the task stops taking batches.
        let cancel = ctx.cancellation().child_token();
        let bounded = ctx.bounded();
        let (out, mut taken) = mpsc::channel(READ_AHEAD * self.ranges.len());
        let this = &*self;
        let readers = futures_util::future::join_all(this.ranges.iter().zip(cursors).map(
            |(range, cursor)| {
                let (out, cancel) = (out.clone(), cancel.clone());
                async move {
                    let read = this
                        .read_range(range, cursor, out, cancel.clone(), bounded)
                        .await;
                    if read.is_err() {
                        cancel.cancel();
                    }
                    read
                }
            },
        ));
        drop(out);
        let mut next_offset = this.next_offset;
        let send = async {
            let mut caught_up = 0;
            while let Some(polled) = taken.recv().await {
                match polled {
                    Polled::Batch(mut batch) => {
                        for record in &mut batch.records {
                            record.offset = next_offset;
                            next_offset += 1;
                        }
                        if let Err(e) = ctx.send(batch).await {
                            cancel.cancel();
                            return Err(e);
                        }
                    }
                    // Every range caught up once more: a moment for stateful transforms to
                    // checkpoint.
                    Polled::CaughtUp => {
                        caught_up += 1;
                        if caught_up % this.ranges.len() == 0 {
                            ctx.idle().await?;
                        }
                    }
                }
            }
            Ok(())
        };
        let (read, sent) = tokio::join!(readers, send);
        self.next_offset = next_offset;
        sent?;
        read.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_in_confluents_shape() {
        let cursor = Cursor {
            incrementing: Some(42),
            timestamp_us: Some(1_704_067_200_123_456),
        };
        let offset = cursor.to_offset();
        assert_eq!(
            offset,
            json!({"incrementing": 42, "timestamp": 1_704_067_200_123i64, "timestamp_nanos": 123_456_000})
        );
        assert_eq!(Cursor::from_offset(Some(&offset)), cursor);
        assert_eq!(Cursor::from_offset(None), Cursor::default());
    }
}
