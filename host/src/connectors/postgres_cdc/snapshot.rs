//! The initial snapshot: every captured row as an `op=r` event, read inside the slot's exported
//! snapshot (REPEATABLE READ), so the stream that follows starts exactly where it ends: no
//! gap, no overlap. Tables are read through a cursor, `snapshot.fetch.size` rows at a time, so
//! memory stays bounded whatever their size.

use std::sync::Arc;

use bytes::Bytes;
use tokio_postgres::{Client, SimpleQueryMessage};

use super::catalog::{self, Table};
use super::config::CdcConfig;
use super::event::{At, Change, Events, Op, now_us};
use super::incremental::{self, InitialProgress, key_of};
use super::notify::{INITIAL, Notifier};
use super::output::Output;
use super::pgoutput::Cell;
use crate::api::connector::SourceContext;
use crate::api::error::ConnectorError;
use crate::connectors::postgres::error::PgError;
use crate::connectors::postgres::query_config::quote_identifier;

/// One row read, waiting for the next so its `source.snapshot` marker is known.
struct Pending {
    table: Arc<Table>,
    /// The table's place in the snapshot.
    index: usize,
    row: Vec<Cell>,
    first_in_table: bool,
}

pub struct Snapshot<'a> {
    pub client: &'a Client,
    pub config: &'a CdcConfig,
    pub events: &'a Events,
    pub out: &'a mut Output,
    /// The slot's consistent point: every snapshot event carries it as its LSN.
    pub lsn: u64,
    /// Rows emitted so far.
    pub emitted: u64,
    pub notifier: &'a Notifier,
    /// Tables are read in key order and the offset says how far: an interrupted snapshot
    /// resumes incrementally (`snapshot.mode` initial or when_needed, every table keyed).
    pub resumable: bool,
    pub progress: Option<InitialProgress>,
}

/// `schema.table` names joined by commas, as notifications list them.
fn names<'t>(tables: impl Iterator<Item = &'t (u32, String, String)>) -> String {
    tables
        .map(|(_, schema, table)| format!("{schema}.{table}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A row read with the simple query protocol (text values), as replication delivers rows.
pub fn cells(row: &tokio_postgres::SimpleQueryRow) -> Vec<Cell> {
    (0..row.len())
        .map(|i| match row.get(i) {
            Some(text) => Cell::Text(Bytes::copy_from_slice(text.as_bytes())),
            None => Cell::Null,
        })
        .collect()
}

/// A failed snapshot statement: the snapshot starts over on the next session.
fn retriable(context: &str) -> impl FnOnce(tokio_postgres::Error) -> ConnectorError {
    let context = context.to_owned();
    move |source| ConnectorError::retriable("snapshot", PgError::postgres(context)(source))
}

impl Snapshot<'_> {
    /// Reads all captured tables inside `exported` and emits their rows. The caller commits
    /// nothing: the transaction is ended here.
    pub async fn run(
        &mut self,
        ctx: &mut dyn SourceContext,
        exported: &str,
        tables: &[(u32, String, String)],
    ) -> Result<(), ConnectorError> {
        // The signalling table is streamed, not snapshotted (as in Debezium).
        let captured = names(tables.iter());
        let tables: Vec<_> = tables
            .iter()
            .filter(|(_, schema, table)| self.config.filters.data(schema, table))
            .collect();
        let snapshotted = names(tables.iter().copied());
        self.notify("STARTED", &[]);
        let started = now_us();
        self.client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '{}'",
                exported.replace('\'', "''")
            ))
            .await
            .map_err(retriable("starting the snapshot transaction"))?;
        let tx_id = self
            .client
            .query_one(
                "SELECT txid_snapshot_xmin(txid_current_snapshot())::int8",
                &[],
            )
            .await
            .map(|r| r.get::<_, i64>(0))
            .map_err(retriable("reading the snapshot transaction"))?;
        tracing::info!(
            connector = %ctx.connector(),
            tables = tables.len(),
            lsn = self.lsn,
            "Snapshot started."
        );
        self.out.set("snapshot", true);
        self.out.set("last_snapshot_record", false);
        self.out.set("lsn", self.lsn);
        self.out.set("txId", tx_id);
        self.out.set("ts_usec", started);
        let mut pending: Option<Pending> = None;
        let mut total = 0u64;
        let mut loaded = Vec::with_capacity(tables.len());
        for (oid, _, _) in &tables {
            loaded.push(
                catalog::load(self.client, self.config, *oid)
                    .await
                    .map_err(|e| ConnectorError::retriable("snapshot", e))?,
            );
        }
        // A table without a key cannot be resumed in the middle: with one, the snapshot
        // starts over after a crash, as before.
        incremental::clear_progress(self.out);
        self.progress = (self.resumable && loaded.iter().all(|t| !t.key.is_empty())).then(|| {
            let names: Vec<String> = loaded
                .iter()
                .map(|t| format!("{}.{}", t.schema, t.name))
                .collect();
            InitialProgress::new(&names)
        });
        for (index, table) in loaded.into_iter().enumerate() {
            let columns = table
                .columns
                .iter()
                .map(|c| quote_identifier(&c.name))
                .collect::<Vec<_>>()
                .join(", ");
            // In key order when resumable: the offset's key then says what was read.
            let order = match self.progress {
                Some(_) => format!(
                    " ORDER BY {}",
                    table
                        .key
                        .iter()
                        .map(|&i| quote_identifier(&table.columns[i].name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None => String::new(),
            };
            let select = format!(
                "DECLARE headwater_snapshot NO SCROLL CURSOR FOR SELECT {columns} FROM {}.{}{order}",
                quote_identifier(&table.schema),
                quote_identifier(&table.name)
            );
            let snapshotting = format!("snapshotting {}.{}", table.schema, table.name);
            let collection = format!("{}.{}", table.schema, table.name);
            self.notify(
                "IN_PROGRESS",
                &[
                    ("current_collection_in_progress", collection.clone()),
                    ("data_collections", snapshotted.clone()),
                ],
            );
            let rows_before = total;
            self.client
                .batch_execute(&select)
                .await
                .map_err(retriable(&snapshotting))?;
            let fetch = format!("FETCH {} FROM headwater_snapshot", self.config.fetch_size);
            let mut first_in_table = true;
            loop {
                if ctx.cancellation().is_cancelled() {
                    return Ok(());
                }
                let messages = self
                    .client
                    .simple_query(&fetch)
                    .await
                    .map_err(retriable(&snapshotting))?;
                let mut rows = 0;
                for message in messages {
                    let SimpleQueryMessage::Row(row) = message else {
                        continue;
                    };
                    rows += 1;
                    let cells = cells(&row);
                    if let Some(previous) = pending.take() {
                        let last_in_table = !Arc::ptr_eq(&previous.table, &table);
                        self.emit(ctx, previous, last_in_table, false, started, tx_id)
                            .await?;
                    }
                    pending = Some(Pending {
                        table: Arc::clone(&table),
                        index,
                        row: cells,
                        first_in_table,
                    });
                    first_in_table = false;
                    total += 1;
                }
                if rows < self.config.fetch_size {
                    break;
                }
            }
            self.client
                .batch_execute("CLOSE headwater_snapshot")
                .await
                .map_err(retriable("ending a snapshot cursor"))?;
            self.notify(
                "TABLE_SCAN_COMPLETED",
                &[
                    ("scanned_collection", collection),
                    ("data_collections", captured.clone()),
                    ("total_rows_scanned", (total - rows_before).to_string()),
                    ("status", "SUCCEEDED".to_owned()),
                ],
            );
        }
        if let Some(last) = pending.take() {
            self.emit(ctx, last, true, true, started, tx_id).await?;
        }
        self.notify("COMPLETED", &[]);
        incremental::clear_progress(self.out);
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(retriable("ending the snapshot transaction"))?;
        self.out.set("last_snapshot_record", true);
        self.out.flush(ctx).await?;
        tracing::info!(connector = %ctx.connector(), rows = total, "Snapshot completed.");
        Ok(())
    }

    /// An `Initial Snapshot` notification, in line with the rows.
    fn notify(&mut self, kind: &str, data: &[(&str, String)]) {
        if let Some(record) = self.notifier.notify(None, INITIAL, kind, data) {
            self.out.push([record], self.events);
        }
    }

    async fn emit(
        &mut self,
        ctx: &mut dyn SourceContext,
        row: Pending,
        last_in_table: bool,
        last: bool,
        started: i64,
        tx_id: i64,
    ) -> Result<(), ConnectorError> {
        let first = self.emitted == 0;
        // Debezium's order of precedence for the marker (a one-row snapshot is `last`).
        let marker = if last {
            "last"
        } else if first {
            "first"
        } else if last_in_table {
            "last_in_data_collection"
        } else if row.first_in_table {
            "first_in_data_collection"
        } else {
            "true"
        };
        let mut records = Vec::with_capacity(1);
        let change = Change {
            table: &row.table,
            op: Op::Read,
            old: None,
            old_full: false,
            new: Some(&row.row),
            at: At {
                ts_us: started,
                snapshot: marker,
                lsn: Some(self.lsn),
                last_commit_lsn: None,
                tx_id: Some(tx_id),
            },
            tx: None,
        };
        match self.events.change(change, &mut records) {
            Ok(()) => self.out.push(records, self.events),
            Err(message) => self.out.fail(
                &row.table.topic,
                format!("{}.{}: {message}", row.table.schema, row.table.name),
            ),
        }
        self.emitted += 1;
        if self.out.full() {
            // The batch's offset says how far the snapshot got (written per batch, not per
            // row: only a flushed offset is ever read back).
            if let Some(progress) = &self.progress {
                progress.emitted(self.out, row.index, &key_of(&row.row, &row.table.key));
            }
            self.out.flush(ctx).await?;
        }
        Ok(())
    }
}
