//! `headwater.postgres.QuerySource`: rows of a query or table, polled with Confluent's JDBC
//! source modes. PostgreSQL turns each row into JSON itself (`row_to_json`), so every column
//! type arrives as PostgreSQL renders it; the cursor columns are read alongside as integers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Statement};

use super::error::{PgError, describe};
use super::query_config::{Mode, QuerySourceConfig, Source as Rows, quote_identifier};
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
    /// Confluent's partition: `{"table": ..}` or `{"query": ..}`.
    partition: Value,
    partition_key: Arc<str>,
    sql: String,
    args: Vec<Arg>,
    /// Numbers the records (the Kafka-style offset of the embedded topic).
    next_offset: i64,
}

/// A parameter of the poll statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    /// The last incrementing value (NULL at the start).
    Incrementing,
    /// The last timestamp in µs since the epoch (NULL at the start).
    Timestamp,
    /// `timestamp.delay.interval.ms`.
    Delay,
}

/// The poll statement (the rows as JSON text, then the cursor columns, under the cursor
/// condition) and the parameters it takes, in order.
fn statement(config: &QuerySourceConfig) -> (String, Vec<Arg>) {
    let base = match &config.source {
        Rows::Query(q) => q.clone(),
        Rows::Table(t) => format!("SELECT * FROM {}", quote_identifier(t)),
    };
    let column = |c: &Option<String>| {
        let name = c.as_deref().unwrap_or_default().trim().trim_matches('"');
        format!("t.\"{}\"", name.replace('"', "\"\""))
    };
    let (inc, ts) = (column(&config.incrementing), column(&config.timestamp));
    // Integer µs arithmetic, no floating point: equality on the last timestamp is exact.
    let since =
        |n: usize| format!("('epoch'::timestamptz + ${n}::bigint * interval '1 microsecond')");
    let before = |n: usize| format!("now() - ${n}::bigint * interval '1 millisecond'");
    let (filter, order, args) = match config.mode {
        Mode::Bulk => (String::new(), String::new(), vec![]),
        Mode::Incrementing => (
            format!(" WHERE $1::bigint IS NULL OR {inc} > $1"),
            format!(" ORDER BY {inc}"),
            vec![Arg::Incrementing],
        ),
        Mode::Timestamp => (
            format!(
                " WHERE {ts} < {} AND ($1::bigint IS NULL OR {ts} > {})",
                before(2),
                since(1)
            ),
            format!(" ORDER BY {ts}"),
            vec![Arg::Timestamp, Arg::Delay],
        ),
        Mode::TimestampIncrementing => (
            format!(
                " WHERE {ts} < {} AND ($1::bigint IS NULL OR {ts} > {} \
                 OR ({ts} = {} AND ($2::bigint IS NULL OR {inc} > $2)))",
                before(3),
                since(1),
                since(1)
            ),
            format!(" ORDER BY {ts}, {inc}"),
            vec![Arg::Timestamp, Arg::Incrementing, Arg::Delay],
        ),
    };
    let inc_col = if config.mode.uses_incrementing() {
        format!("({inc})::bigint")
    } else {
        "NULL::bigint".to_owned()
    };
    let ts_col = if config.mode.uses_timestamp() {
        format!("(extract(epoch from {ts}) * 1000000)::bigint")
    } else {
        "NULL::bigint".to_owned()
    };
    let sql =
        format!("SELECT row_to_json(t)::text, {inc_col}, {ts_col} FROM ({base}) t{filter}{order}");
    (sql, args)
}

impl QuerySource {
    pub fn new(config: QuerySourceConfig, ctx: &BuildContext) -> Self {
        let partition = match &config.source {
            Rows::Table(t) => json!({ "table": t }),
            Rows::Query(q) => json!({ "query": q }),
        };
        let (sql, args) = statement(&config);
        Self {
            args,
            partition_key: Arc::from(partition.to_string()),
            partition,
            connector: Arc::from(ctx.connector.as_str()),
            sql,
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

    /// One poll: streams the new rows and publishes them in batches. Database errors come back
    /// as `Ok(Err(..))` (reconnect); publishing errors as `Err` (the task stops).
    async fn poll(
        &mut self,
        client: &Client,
        prepared: &mut Option<Statement>,
        cursor: &mut Cursor,
        ctx: &mut dyn SourceContext,
    ) -> Result<Result<(), tokio_postgres::Error>, ConnectorError> {
        let delay = self.config.timestamp_delay_ms as i64;
        let params: Vec<&(dyn ToSql + Sync)> = self
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
        let statement = match prepared {
            Some(s) => s.clone(),
            None => match client.prepare(&self.sql).await {
                Ok(s) => prepared.insert(s).clone(),
                Err(e) => return Ok(Err(e)),
            },
        };
        let rows = match client.query_raw(&statement, params).await {
            Ok(rows) => rows,
            Err(e) => return Ok(Err(e)),
        };
        futures_util::pin_mut!(rows);
        let mut batch = SourceBatch::default();
        loop {
            let row = match rows.try_next().await {
                Ok(row) => row,
                Err(e) => return Ok(Err(e)),
            };
            let Some(row) = row else { break };
            let text: String = row.get(0);
            let incrementing: Option<i64> = row.get(1);
            let timestamp_us: Option<i64> = row.get(2);
            batch.bytes += text.len() as u64;
            if self.config.mode != Mode::Bulk {
                *cursor = Cursor {
                    incrementing: incrementing.or(cursor.incrementing),
                    timestamp_us: timestamp_us.or(cursor.timestamp_us),
                };
            }
            let mut record = Record::new(
                self.config.topic.clone(),
                Payload::json_bytes(Bytes::from(text)),
            );
            record.offset = self.next_offset;
            self.next_offset += 1;
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
                    partition: Arc::clone(&self.partition_key),
                    offset,
                });
            batch.records.push(record);
            if batch.records.len() >= self.config.batch_max_rows {
                self.publish(&mut batch, *cursor, ctx).await?;
            }
        }
        self.publish(&mut batch, *cursor, ctx).await?;
        Ok(Ok(()))
    }

    async fn publish(
        &self,
        batch: &mut SourceBatch,
        cursor: Cursor,
        ctx: &mut dyn SourceContext,
    ) -> Result<(), ConnectorError> {
        if batch.records.is_empty() {
            return Ok(());
        }
        let mut full = std::mem::take(batch);
        if self.config.mode != Mode::Bulk {
            full.offsets = vec![(self.partition.clone(), cursor.to_offset())];
        }
        ctx.send(full).await
    }
}

#[async_trait]
impl Source for QuerySource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        let mut cursor = Cursor::from_offset(ctx.committed(&self.partition));
        let cancel = ctx.cancellation().clone();
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
                    polled = self.poll(&client, &mut prepared, &mut cursor, ctx) => polled?,
                    _ = cancel.cancelled() => return Ok(()),
                };
                if let Err(e) = polled {
                    if let Some(db) = e
                        .as_db_error()
                        .filter(|d| d.code().code().starts_with("42"))
                    {
                        // A bad query, table or column (SQLSTATE class 42): retrying cannot help.
                        return Err(ConnectorError::Config(format!(
                            "the poll query failed: {}: {}; query: {}",
                            db.code().code(),
                            db.message(),
                            self.sql
                        )));
                    }
                    tracing::warn!(connector = %self.connector, error = %describe(&e), "PostgreSQL poll failed; reconnecting.");
                    break;
                }
                if ctx.bounded() {
                    // One complete pass: a poll reads every row past the cursor.
                    return Ok(());
                }
                ctx.idle().await?;
                tokio::select! {
                    _ = tokio::time::sleep(self.config.poll_interval) => {}
                    _ = cancel.cancelled() => return Ok(()),
                }
            }
        }
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
