//! Incremental snapshots, as Debezium runs them (the DBLog watermark algorithm): a table is
//! read in chunks of `incremental.snapshot.chunk.size` rows in key order while changes stream.
//!
//! For each chunk: a row marking the window's opening is written to the signalling table, the
//! chunk is read into memory, and a row marking its closing is written. Both marks come back
//! through the replication stream, in WAL order with the changes. A change streamed between
//! them to a row of the chunk is newer than what the query may have read, so the row is
//! dropped from the chunk (the streamed change stands); at the closing mark the rows left are
//! emitted (`op=r`, `source.snapshot=incremental`) and the next chunk is read. So no `r` event
//! ever follows a newer change of its row.
//!
//! With `read.only=true` nothing is written: each chunk is read in a snapshot whose position
//! in the WAL is known (`pg_current_wal_insert_lsn()` read in it; the replay position on a
//! standby), the window opens as the chunk is read and closes once the stream has delivered
//! every transaction committed before that position. A chunk is read only when the stream's
//! recent transactions are all visible to it (see `visibility.rs`), and in either mode a
//! change streamed from a transaction the chunk did not see drops its row even before the
//! window opens.
//!
//! Progress is kept in Debezium's offset keys (`incremental_snapshot_collections`,
//! `_primary_key`, `_maximum_key`, `incremental_snapshot_correlation_id`): a restart resumes
//! after the last row emitted. The keys hold JSON (the key's column texts) where Debezium holds
//! serialized Java objects; neither reads the other's offsets.

use std::collections::VecDeque;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use tokio_postgres::{Client, SimpleQueryMessage};

use super::catalog::{self, Table};
use super::config::CdcConfig;
use super::event::{At, Change, Events, Op, now_us};
use super::notify::{INCREMENTAL, Notifier};
use super::output::Output;
use super::pgoutput::Cell;
use super::signal::{self, SnapshotRequest};
use super::snapshot::cells;
use super::visibility::{Delivered, PgSnapshot};
use crate::connectors::postgres::error::PgError;
use crate::connectors::postgres::query_config::quote_identifier;

/// A key as the text of its columns (None: NULL), comparable between a chunk's rows and the
/// streamed changes (both come as PostgreSQL's text output, in the same session settings).
pub type KeyText = Vec<Option<String>>;

const COLLECTIONS_KEY: &str = "incremental_snapshot_collections";
const PRIMARY_KEY_KEY: &str = "incremental_snapshot_primary_key";
const MAXIMUM_KEY_KEY: &str = "incremental_snapshot_maximum_key";
const CORRELATION_KEY: &str = "incremental_snapshot_correlation_id";
/// Prefix of the logical decoding messages used as watermarks without a signalling table.
pub const WATERMARK_PREFIX: &str = "headwater.watermark";
/// How long a chunk waits for the transactions the stream delivered to become visible to new
/// snapshots (a moment, or as long as a synchronous standby takes to acknowledge) before the
/// task restarts, resuming the snapshot from its last row.
const VISIBILITY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The snapshot and the WAL position a chunk was read in, and which transactions were in
/// progress.
const CHUNK_SNAPSHOT: &str = "SELECT txid_current_snapshot()::text, \
     (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
           ELSE pg_current_wal_insert_lsn() END)::text";

/// A table to snapshot.
#[derive(Debug, Clone, PartialEq)]
struct Collection {
    /// `schema.table`.
    id: String,
    condition: Option<String>,
    surrogate_key: Option<String>,
}

impl Collection {
    /// As Debezium stores it in `incremental_snapshot_collections`.
    fn stored(&self) -> Value {
        let mut m = Map::new();
        m.insert(format!("{COLLECTIONS_KEY}_id"), json!(self.id));
        m.insert(
            format!("{COLLECTIONS_KEY}_additional_condition"),
            json!(self.condition),
        );
        m.insert(
            format!("{COLLECTIONS_KEY}_surrogate_key"),
            json!(self.surrogate_key),
        );
        Value::Object(m)
    }
}

/// Removes an incremental snapshot's progress from the offset.
pub fn clear_progress(out: &mut Output) {
    for key in [
        COLLECTIONS_KEY,
        PRIMARY_KEY_KEY,
        MAXIMUM_KEY_KEY,
        CORRELATION_KEY,
    ] {
        out.remove(key);
    }
}

/// The progress an initial snapshot leaves in the offset as it goes, in an incremental
/// snapshot's keys: were it interrupted, the rest (`tables`, the first one after `last`)
/// is read incrementally ([`Incremental::resume_from`]).
pub struct InitialProgress {
    /// `incremental_snapshot_collections` from each table on.
    remaining: Vec<String>,
}

/// The correlation id of an initial snapshot resumed incrementally.
pub const RESUMED_INITIAL: &str = "headwater-initial-snapshot";

impl InitialProgress {
    pub fn new(tables: &[String]) -> Self {
        let remaining = (0..tables.len())
            .map(|i| {
                let rest: Vec<Value> = tables[i..]
                    .iter()
                    .map(|t| {
                        Collection {
                            id: t.clone(),
                            condition: None,
                            surrogate_key: None,
                        }
                        .stored()
                    })
                    .collect();
                Value::Array(rest).to_string()
            })
            .collect();
        Self { remaining }
    }

    /// Row `key` of table `index` was emitted.
    pub fn emitted(&self, out: &mut Output, index: usize, key: &KeyText) {
        out.set(COLLECTIONS_KEY, self.remaining[index].clone());
        out.set(PRIMARY_KEY_KEY, json!(key).to_string());
        out.set(MAXIMUM_KEY_KEY, Value::Null);
        out.set(CORRELATION_KEY, RESUMED_INITIAL);
    }
}

/// Whether an offset holds an incremental snapshot's progress.
pub fn has_progress(offset: &Value) -> bool {
    offset.get(COLLECTIONS_KEY).is_some_and(Value::is_string)
}

/// Why a table's scan ended (Debezium's `TableScanCompletionStatus`).
#[derive(Debug, Clone, Copy)]
enum ScanEnd {
    Succeeded,
    Empty,
    NoPrimaryKey,
    UnknownSchema,
    SqlException,
}

impl ScanEnd {
    fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "SUCCEEDED",
            Self::Empty => "EMPTY",
            Self::NoPrimaryKey => "NO_PRIMARY_KEY",
            Self::UnknownSchema => "UNKNOWN_SCHEMA",
            Self::SqlException => "SQL_EXCEPTION",
        }
    }
}

/// The table being read, loaded from the catalog.
struct Scan {
    table: Arc<Table>,
    /// Columns the chunks are ordered by: the surrogate key, or the table's key.
    order_by: Vec<usize>,
}

/// What an incremental snapshot works with: the catalog connection, the event builder and
/// the stream's output.
pub struct Io<'a> {
    pub client: &'a Client,
    pub events: &'a Events,
    pub out: &'a mut Output,
    pub notifier: &'a Notifier,
}

/// The incremental snapshot of one connector.
pub struct Incremental {
    config: Arc<CdcConfig>,
    connector: Arc<str>,
    collections: VecDeque<Collection>,
    /// The id of the signal that started it: the id of its notifications.
    correlation_id: Option<String>,
    paused: bool,
    /// Tables a `stop-snapshot` asked to drop (empty list: all), applied at the next chunk.
    stop_requests: Vec<Vec<String>>,
    scan: Option<Scan>,
    /// The chunk being read: its id, whether its window is open, and its rows by key in key
    /// order.
    chunk_id: Option<String>,
    window_open: bool,
    window: IndexMap<KeyText, Vec<Cell>>,
    /// The snapshot the chunk in the window was read in.
    chunk_snapshot: Option<PgSnapshot>,
    /// `read.only`: the window closes once the stream is past this position.
    close_lsn: Option<u64>,
    /// `read.only`: every transaction committed before this position has been streamed.
    streamed_to: u64,
    /// Transactions the stream delivered lately.
    delivered: Delivered,
    open_timestamp: Option<String>,
    maximum_key: Option<KeyText>,
    /// Where the next chunk starts (after this key).
    chunk_end: Option<KeyText>,
    last_sent: Option<KeyText>,
    rows_scanned: u64,
}

impl Incremental {
    pub fn new(config: Arc<CdcConfig>, connector: Arc<str>) -> Self {
        Self {
            config,
            connector,
            collections: VecDeque::new(),
            correlation_id: None,
            paused: false,
            stop_requests: Vec::new(),
            scan: None,
            chunk_id: None,
            window_open: false,
            window: IndexMap::new(),
            chunk_snapshot: None,
            close_lsn: None,
            streamed_to: 0,
            delivered: Delivered::default(),
            open_timestamp: None,
            maximum_key: None,
            chunk_end: None,
            last_sent: None,
            rows_scanned: 0,
        }
    }

    pub fn running(&self) -> bool {
        !self.collections.is_empty()
    }

    /// Reads the progress a committed offset holds: a snapshot under way resumes after the
    /// last row it emitted. Returns whether one is.
    pub fn resume_from(&mut self, offset: &Value) -> bool {
        let Some(collections) = offset
            .get(COLLECTIONS_KEY)
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        else {
            return false;
        };
        let field = |c: &Value, k: &str| {
            c.get(format!("{COLLECTIONS_KEY}_{k}"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        self.collections = collections
            .iter()
            .filter_map(|c| {
                Some(Collection {
                    id: field(c, "id")?,
                    condition: field(c, "additional_condition"),
                    surrogate_key: field(c, "surrogate_key"),
                })
            })
            .collect();
        let key = |k: &str| {
            offset
                .get(k)
                .and_then(Value::as_str)
                .and_then(|s| serde_json::from_str::<KeyText>(s).ok())
        };
        self.last_sent = key(PRIMARY_KEY_KEY);
        self.chunk_end = self.last_sent.clone();
        self.maximum_key = key(MAXIMUM_KEY_KEY);
        self.correlation_id = offset
            .get(CORRELATION_KEY)
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.running()
    }

    /// Writes the progress into the offset of what is emitted next (or clears it when done).
    fn store(&self, out: &mut Output) {
        if !self.running() {
            clear_progress(out);
            return;
        }
        let collections: Vec<Value> = self.collections.iter().map(Collection::stored).collect();
        out.set(COLLECTIONS_KEY, Value::Array(collections).to_string());
        let text = |k: &Option<KeyText>| {
            k.as_ref()
                .map_or(Value::Null, |k| json!(k).to_string().into())
        };
        out.set(PRIMARY_KEY_KEY, text(&self.last_sent));
        out.set(MAXIMUM_KEY_KEY, text(&self.maximum_key));
        out.set(CORRELATION_KEY, json!(self.correlation_id));
    }

    fn collection_names(&self) -> String {
        let names: Vec<&str> = self.collections.iter().map(|c| c.id.as_str()).collect();
        names.join(",")
    }

    fn notify(&self, io: &mut Io<'_>, kind: &str, data: &[(&str, String)]) {
        if let Some(record) =
            io.notifier
                .notify(self.correlation_id.as_deref(), INCREMENTAL, kind, data)
        {
            io.out.push([record], io.events);
        }
    }

    /// `execute-snapshot`: adds the tables matching the request (captured ones only) and, if
    /// no snapshot runs, starts one.
    pub async fn execute(
        &mut self,
        io: &mut Io<'_>,
        id: &str,
        request: SnapshotRequest,
    ) -> Result<(), PgError> {
        let captured = catalog::captured_tables(io.client, &self.config).await?;
        let mut added = Vec::new();
        for pattern in &request.collections {
            let re = match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(re) => re,
                Err(e) => {
                    tracing::warn!(connector = %self.connector, signal = id, pattern = %pattern, error = %e, "Signal ignored: a data-collection is not a valid regular expression.");
                    return Ok(());
                }
            };
            let matching: Vec<String> = captured
                .iter()
                .filter(|(_, s, t)| self.config.filters.data(s, t))
                .map(|(_, s, t)| format!("{s}.{t}"))
                .filter(|name| re.is_match(name))
                .collect();
            if matching.is_empty() {
                tracing::warn!(connector = %self.connector, signal = id, data_collection = pattern, "execute-snapshot: no captured table matches this data-collection; it is left out (is it in table.include.list?).");
            }
            for name in matching {
                if added.iter().any(|c: &Collection| c.id == name)
                    || self.collections.iter().any(|c| c.id == name)
                {
                    continue;
                }
                let condition = request
                    .conditions
                    .iter()
                    .find(|(pattern, _)| {
                        regex::Regex::new(&format!("^(?:{pattern})$"))
                            .is_ok_and(|re| re.is_match(&name))
                    })
                    .map(|(_, filter)| filter.clone());
                added.push(Collection {
                    id: name,
                    condition,
                    surrogate_key: request.surrogate_key.clone(),
                });
            }
        }
        if added.is_empty() {
            tracing::warn!(connector = %self.connector, signal = id, "execute-snapshot: nothing to snapshot; the signal changes nothing.");
            return Ok(());
        }
        self.add(io, id, added).await
    }

    /// Snapshots tables newly captured (`schema.table` names): added to
    /// `table.include.list`, or created under one of its patterns while streaming.
    pub async fn snapshot_added(
        &mut self,
        io: &mut Io<'_>,
        tables: Vec<String>,
    ) -> Result<(), PgError> {
        let added: Vec<Collection> = tables
            .into_iter()
            .filter(|t| !self.collections.iter().any(|c| &c.id == t))
            .map(|id| Collection {
                id,
                condition: None,
                surrogate_key: None,
            })
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let id = format!("headwater-added-{}", uuid::Uuid::new_v4());
        self.add(io, &id, added).await
    }

    async fn add(
        &mut self,
        io: &mut Io<'_>,
        id: &str,
        added: Vec<Collection>,
    ) -> Result<(), PgError> {
        let start = !self.running();
        tracing::info!(connector = %self.connector, signal = id, tables = %added.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join(","), "Incremental snapshot requested.");
        self.collections.extend(added);
        if start {
            self.correlation_id = Some(id.to_owned());
            self.notify(
                io,
                "STARTED",
                &[("data_collections", self.collection_names())],
            );
            self.read_chunks(io).await?;
        } else {
            self.store(io.out);
        }
        Ok(())
    }

    /// `stop-snapshot`: applied before the next chunk, as Debezium does.
    pub fn stop(&mut self, collections: Vec<String>) {
        if !self.running() {
            tracing::warn!(connector = %self.connector, "stop-snapshot: no incremental snapshot is running; ignored.");
            return;
        }
        self.stop_requests.push(collections);
    }

    /// Continues a snapshot read back from the offsets ([`Self::resume_from`]) with its next
    /// chunk, once streaming has started.
    pub async fn restart(&mut self, io: &mut Io<'_>) -> Result<(), PgError> {
        if self.running() {
            tracing::info!(connector = %self.connector, table = ?self.collections.front().map(|c| &c.id), after_key = ?self.last_sent, "Incremental snapshot in progress: reading its next chunk.");
            self.read_chunks(io).await?;
        }
        Ok(())
    }

    pub fn pause(&mut self, io: &mut Io<'_>) {
        if self.running() && !self.paused {
            tracing::info!(connector = %self.connector, "Incremental snapshot paused.");
            self.paused = true;
            self.notify(
                io,
                "PAUSED",
                &[("data_collections", self.collection_names())],
            );
        }
    }

    pub async fn resume(&mut self, io: &mut Io<'_>) -> Result<(), PgError> {
        if self.running() && self.paused {
            tracing::info!(connector = %self.connector, "Incremental snapshot resumed.");
            self.paused = false;
            self.notify(
                io,
                "RESUMED",
                &[("data_collections", self.collection_names())],
            );
            self.read_chunks(io).await?;
        }
        Ok(())
    }

    /// The stream delivered transaction `xid` (at its commit).
    pub fn committed(&mut self, xid: u32) {
        self.delivered.push(xid);
    }

    /// A change of transaction `xid` streamed to `table`: inside an open window, or from a
    /// transaction the chunk's snapshot did not see, the chunk's copy of its row is older and
    /// is dropped.
    pub fn deduplicate(&mut self, table: &Table, tuple: &[Cell], xid: u32) {
        if self.window.is_empty() {
            return;
        }
        let unseen = || self.chunk_snapshot.as_ref().is_some_and(|s| !s.sees(xid));
        if !self.window_open && !unseen() {
            return;
        }
        let Some(scan) = &self.scan else { return };
        if scan.table.schema != table.schema || scan.table.name != table.name {
            return;
        }
        let key = key_of(tuple, &table.key);
        self.window.shift_remove(&key);
    }

    /// A watermark streamed back: `id` is the signalling row's id.
    pub async fn watermark(
        &mut self,
        io: &mut Io<'_>,
        id: &str,
        action: &signal::Action,
        lsn: u64,
    ) -> Result<(), PgError> {
        let Some(chunk) = &self.chunk_id else {
            return Ok(());
        };
        // A mark of an earlier chunk (replayed after a restart) is not ours.
        if !id.starts_with(chunk.as_str()) {
            return Ok(());
        }
        let closing = match action {
            signal::Action::WindowOpen => false,
            signal::Action::WindowClose => true,
            _ => return Ok(()),
        };
        if !closing {
            self.window_open = true;
            return Ok(());
        }
        self.window_open = false;
        self.send_window(io, lsn);
        self.read_chunks(io).await
    }

    /// `read.only`: every transaction committed before `lsn` has been streamed (a transaction
    /// beginning there, a keepalive between transactions, a commit's end). A window whose
    /// chunk was read before `lsn` closes: it saw nothing the stream has yet to deliver.
    pub async fn streamed(&mut self, io: &mut Io<'_>, lsn: u64) -> Result<(), PgError> {
        self.streamed_to = self.streamed_to.max(lsn);
        self.close_passed_windows(io).await
    }

    /// Reads the next chunk (and with `read.only`, the ones after while the stream is already
    /// past their position, as on an idle database).
    async fn read_chunks(&mut self, io: &mut Io<'_>) -> Result<(), PgError> {
        self.read_chunk(io).await?;
        self.close_passed_windows(io).await
    }

    /// `read.only`: while the stream is past the position the chunk in the window was read
    /// at, emits the chunk and reads the next.
    async fn close_passed_windows(&mut self, io: &mut Io<'_>) -> Result<(), PgError> {
        while let Some(close) = self.close_lsn
            && close <= self.streamed_to
        {
            self.close_lsn = None;
            self.window_open = false;
            self.send_window(io, self.streamed_to);
            self.read_chunk(io).await?;
        }
        Ok(())
    }

    /// The insert_delete strategy closes a window by deleting its opening row.
    pub async fn deleted_watermark(
        &mut self,
        io: &mut Io<'_>,
        id: &str,
        lsn: u64,
    ) -> Result<(), PgError> {
        if self.config.watermark_delete && id.ends_with("-open") {
            return self
                .watermark(io, id, &signal::Action::WindowClose, lsn)
                .await;
        }
        Ok(())
    }

    /// Emits the chunk's rows left in the window.
    fn send_window(&mut self, io: &mut Io<'_>, lsn: u64) {
        let Some(scan) = &self.scan else {
            self.window.clear();
            return;
        };
        let table = Arc::clone(&scan.table);
        let order_by = scan.order_by.clone();
        let ts_us = now_us();
        let mut records = Vec::with_capacity(2);
        for (_, row) in std::mem::take(&mut self.window) {
            records.clear();
            let change = Change {
                table: &table,
                op: Op::Read,
                old: None,
                old_full: false,
                new: Some(&row),
                at: At {
                    ts_us,
                    snapshot: "incremental",
                    lsn: None,
                    last_commit_lsn: Some(lsn),
                    tx_id: None,
                },
                tx: None,
            };
            self.last_sent = Some(key_of(&row, &order_by));
            match io.events.change(change, &mut records) {
                Ok(()) => io.out.push(records.drain(..), io.events),
                Err(message) => io.out.fail(
                    &table.topic,
                    format!("{}.{}: {message}", table.schema, table.name),
                ),
            }
        }
        self.store(io.out);
    }

    /// Applies the stop requests received since the last chunk.
    fn apply_stops(&mut self, io: &mut Io<'_>) {
        for request in std::mem::take(&mut self.stop_requests) {
            if !self.running() {
                tracing::warn!(connector = %self.connector, "stop-snapshot: no incremental snapshot is running; ignored.");
                continue;
            }
            let names: Vec<String> = if request.is_empty() {
                self.collections.iter().map(|c| c.id.clone()).collect()
            } else {
                let patterns: Vec<regex::Regex> = request
                    .iter()
                    .filter_map(|p| regex::Regex::new(&format!("^(?:{p})$")).ok())
                    .collect();
                self.collections
                    .iter()
                    .map(|c| c.id.clone())
                    .filter(|id| patterns.iter().any(|re| re.is_match(id)))
                    .collect()
            };
            let current = self.collections.front().map(|c| c.id.clone());
            let mut stopped = Vec::new();
            let mut stop_current = false;
            for name in names {
                if Some(&name) == current.as_ref() {
                    stop_current = true;
                } else if let Some(i) = self.collections.iter().position(|c| c.id == name) {
                    self.collections.remove(i);
                    stopped.push(name);
                }
            }
            if stop_current && let Some(current) = current {
                stopped.push(current);
                self.next_collection(io);
            }
            tracing::info!(connector = %self.connector, tables = %stopped.join(","), "Tables removed from the incremental snapshot.");
            self.notify(io, "ABORTED", &[("data_collections", stopped.join(","))]);
            if !self.running() {
                self.correlation_id = None;
            }
        }
    }

    /// Moves to the next table; at the end, the snapshot is complete.
    fn next_collection(&mut self, io: &mut Io<'_>) {
        self.collections.pop_front();
        self.scan = None;
        self.maximum_key = None;
        self.chunk_end = None;
        self.last_sent = None;
        self.rows_scanned = 0;
        self.window.clear();
        if !self.running() {
            tracing::info!(connector = %self.connector, "Incremental snapshot completed.");
            self.notify(io, "COMPLETED", &[]);
            self.correlation_id = None;
        }
    }

    fn scan_completed(&mut self, io: &mut Io<'_>, end: ScanEnd) {
        let scanned = self
            .collections
            .front()
            .map(|c| c.id.clone())
            .unwrap_or_default();
        self.notify(
            io,
            "TABLE_SCAN_COMPLETED",
            &[
                ("data_collections", self.collection_names()),
                ("scanned_collection", scanned),
                ("total_rows_scanned", self.rows_scanned.to_string()),
                ("status", end.name().to_owned()),
            ],
        );
        self.next_collection(io);
    }

    /// Reads the next chunk between an opening and a closing watermark.
    async fn read_chunk(&mut self, io: &mut Io<'_>) -> Result<(), PgError> {
        self.apply_stops(io);
        if !self.running() || self.paused {
            self.store(io.out);
            return Ok(());
        }
        let chunk_id = uuid::Uuid::new_v4().to_string();
        self.chunk_id = Some(chunk_id.clone());
        self.window_open = false;
        self.window.clear();
        self.chunk_snapshot = None;
        self.close_lsn = None;
        if !self.config.read_only {
            self.open_window(io.client, &chunk_id).await?;
        }
        while self.running() {
            let Some(collection) = self.collections.front().cloned() else {
                break;
            };
            if self.scan.is_none() {
                match self.load(io.client, &collection).await {
                    Ok(Some(scan)) => self.scan = Some(scan),
                    Ok(None) => {
                        tracing::warn!(connector = %self.connector, table = %collection.id, "Incremental snapshot of this table skipped: it has no primary key (send a surrogate-key).");
                        self.scan_completed(io, ScanEnd::NoPrimaryKey);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(connector = %self.connector, table = %collection.id, error = %e, "Incremental snapshot of this table skipped: its schema cannot be read.");
                        self.scan_completed(io, ScanEnd::UnknownSchema);
                        continue;
                    }
                }
            }
            if self.maximum_key.is_none() {
                match self.query_maximum_key(io.client, &collection).await {
                    Ok(Some(max)) => {
                        tracing::info!(connector = %self.connector, table = %collection.id, maximum_key = ?max, "Incremental snapshot of this table ends at this key.");
                        self.maximum_key = Some(max);
                    }
                    Ok(None) => {
                        tracing::info!(connector = %self.connector, table = %collection.id, "Incremental snapshot of this table finished: it is empty.");
                        self.scan_completed(io, ScanEnd::Empty);
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(connector = %self.connector, table = %collection.id, error = %e, "Incremental snapshot of this table skipped: reading its maximum key failed.");
                        self.scan_completed(io, ScanEnd::SqlException);
                        continue;
                    }
                }
            }
            match self.query_chunk(io.client, &collection).await? {
                Ok(()) if self.window.is_empty() => {
                    tracing::info!(connector = %self.connector, table = %collection.id, rows = self.rows_scanned, "Incremental snapshot of this table finished.");
                    self.scan_completed(io, ScanEnd::Succeeded);
                }
                Ok(()) => {
                    let join = |k: &Option<KeyText>| {
                        k.as_ref().map_or_else(
                            || "\"<null>\"".to_owned(),
                            |k| {
                                k.iter()
                                    .map(|c| c.as_deref().unwrap_or("<null>"))
                                    .collect::<Vec<_>>()
                                    .join(",")
                            },
                        )
                    };
                    self.notify(
                        io,
                        "IN_PROGRESS",
                        &[
                            ("data_collections", self.collection_names()),
                            ("current_collection_in_progress", collection.id.clone()),
                            ("maximum_key", join(&self.maximum_key)),
                            ("last_processed_key", join(&self.chunk_end)),
                        ],
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!(connector = %self.connector, table = %collection.id, error = %e, "Incremental snapshot of this table skipped: reading a chunk failed.");
                    self.scan_completed(io, ScanEnd::SqlException);
                }
            }
        }
        if !self.config.read_only {
            self.close_window(io.client, &chunk_id).await?;
        }
        self.store(io.out);
        Ok(())
    }

    /// The table of `collection` from the catalog, and the columns its chunks are ordered by;
    /// `None` when it has no key to order by.
    async fn load(
        &self,
        client: &Client,
        collection: &Collection,
    ) -> Result<Option<Scan>, PgError> {
        let (schema, name) = collection
            .id
            .split_once('.')
            .ok_or_else(|| PgError::State(format!("{:?} is not schema.table", collection.id)))?;
        if !self.config.filters.data(schema, name) {
            return Err(PgError::State(format!(
                "table {} is no longer captured (table.include.list changed)",
                collection.id
            )));
        }
        let oid: u32 = client
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &name],
            )
            .await
            .map_err(PgError::postgres(format!(
                "looking up table {}",
                collection.id
            )))?
            .ok_or_else(|| PgError::State(format!("table {} does not exist", collection.id)))?
            .get(0);
        let table = catalog::load(client, &self.config, oid).await?;
        let order_by = match &collection.surrogate_key {
            Some(column) => match table.columns.iter().position(|c| &c.name == column) {
                Some(i) => vec![i],
                None => {
                    return Err(PgError::State(format!(
                        "surrogate-key {column:?} is not a column of {}",
                        collection.id
                    )));
                }
            },
            None => table.key.clone(),
        };
        if order_by.is_empty() {
            return Ok(None);
        }
        Ok(Some(Scan { table, order_by }))
    }

    fn relation(&self) -> String {
        let table = &self.scan.as_ref().expect("loaded before querying").table;
        format!(
            "{}.{}",
            quote_identifier(&table.schema),
            quote_identifier(&table.name)
        )
    }

    /// The ordering columns, quoted and joined (`ROW(a, b)` when several).
    fn key_columns(&self, suffix: &str) -> (String, Vec<String>) {
        let scan = self.scan.as_ref().expect("loaded before querying");
        let names: Vec<String> = scan
            .order_by
            .iter()
            .map(|&i| quote_identifier(&scan.table.columns[i].name))
            .collect();
        let order = names
            .iter()
            .map(|n| format!("{n}{suffix}"))
            .collect::<Vec<_>>()
            .join(", ");
        (order, names)
    }

    async fn query_maximum_key(
        &self,
        client: &Client,
        collection: &Collection,
    ) -> Result<Option<KeyText>, PgError> {
        let (order, names) = self.key_columns(" DESC");
        let filter = collection
            .condition
            .as_ref()
            .map_or_else(String::new, |c| format!(" WHERE ({c})"));
        let sql = format!(
            "SELECT {} FROM {}{filter} ORDER BY {order} LIMIT 1",
            names.join(", "),
            self.relation()
        );
        let rows = client
            .simple_query(&sql)
            .await
            .map_err(PgError::postgres(format!("running {sql}")))?;
        Ok(rows.into_iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        }))
    }

    /// Reads the rows after `chunk_end` up to the maximum key into the window, in a snapshot
    /// that sees every transaction the stream delivered. The inner error is the table's (its
    /// scan ends); the outer one the task's (it restarts and resumes).
    async fn query_chunk(
        &mut self,
        client: &Client,
        collection: &Collection,
    ) -> Result<Result<(), PgError>, PgError> {
        let (order, names) = self.key_columns("");
        let scan = self.scan.as_ref().expect("loaded before querying");
        let columns = scan
            .table
            .columns
            .iter()
            .map(|c| quote_identifier(&c.name))
            .collect::<Vec<_>>()
            .join(", ");
        let mut conditions = Vec::new();
        if let Some(end) = &self.chunk_end {
            conditions.push(compare(&names, ">", end));
        }
        if let Some(max) = &self.maximum_key {
            conditions.push(compare(&names, "<=", max));
        }
        if let Some(condition) = &collection.condition {
            conditions.push(format!("({condition})"));
        }
        let filter = match conditions.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", conditions.join(" AND ")),
        };
        let sql = format!(
            "SELECT {columns} FROM {}{filter} ORDER BY {order} LIMIT {}",
            self.relation(),
            self.config.chunk_size
        );
        let started = std::time::Instant::now();
        let (snapshot, position, messages) = loop {
            let read = match read_in_snapshot(client, &sql).await {
                Ok(read) => read,
                Err(e) => return Ok(Err(e)),
            };
            match self.delivered.unseen_by(&read.0) {
                None => break read,
                Some(_) if started.elapsed() < VISIBILITY_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Some(xid) => {
                    return Err(PgError::State(format!(
                        "transaction {xid} was streamed but is still not visible to new \
                         snapshots after {} s (a synchronous standby not acknowledging?); the \
                         incremental snapshot resumes from its last row once it is",
                        VISIBILITY_WAIT.as_secs()
                    )));
                }
            }
        };
        let scan = self.scan.as_ref().expect("loaded before querying");
        let table = Arc::clone(&scan.table);
        let order_by = scan.order_by.clone();
        let mut last = None;
        for message in messages {
            let SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            let row = cells(&row);
            last = Some(key_of(&row, &order_by));
            self.window.insert(key_of(&row, &table.key), row);
            self.rows_scanned += 1;
        }
        if last.is_some() {
            self.chunk_end = last;
            if self.config.read_only {
                // The window opens now: what the stream delivers from here may be newer.
                self.window_open = true;
                self.close_lsn = Some(position);
            }
        }
        self.chunk_snapshot = Some(snapshot);
        Ok(Ok(()))
    }

    /// The signalling table, quoted; `None`: watermarks are logical decoding messages.
    fn signal_table(&self) -> Option<String> {
        let (schema, table) = self.config.filters.signal_table()?;
        Some(format!(
            "{}.{}",
            quote_identifier(schema),
            quote_identifier(table)
        ))
    }

    /// Without a signalling table, a watermark is a logical decoding message
    /// (`pg_logical_emit_message`, non-transactional: it comes through the slot at its place
    /// in the WAL, after every transaction committed before it): no table to create, no write
    /// to the database's tables. (`txid_current()` gives the transaction a commit record, so
    /// that its synchronous commit flushes the message.)
    fn message_watermark(id: &str) -> String {
        format!(
            "SELECT txid_current(); SELECT pg_logical_emit_message(false, {}, {})",
            literal(WATERMARK_PREFIX),
            literal(id)
        )
    }

    async fn open_window(&mut self, client: &Client, chunk_id: &str) -> Result<(), PgError> {
        let opened = timestamp();
        let data = json!({"openWindowTimestamp": opened}).to_string();
        self.open_timestamp = Some(opened);
        let id = format!("{chunk_id}-open");
        let sql = match self.signal_table() {
            Some(table) => format!(
                "INSERT INTO {table} VALUES ({}, {}, {})",
                literal(&id),
                literal(signal::WINDOW_OPEN),
                literal(&data)
            ),
            None => Self::message_watermark(&id),
        };
        write_watermark(client, &sql).await
    }

    async fn close_window(&mut self, client: &Client, chunk_id: &str) -> Result<(), PgError> {
        let Some(table) = self.signal_table() else {
            let sql = Self::message_watermark(&format!("{chunk_id}-close"));
            return write_watermark(client, &sql).await;
        };
        let sql = if self.config.watermark_delete {
            format!(
                "DELETE FROM {table} WHERE id = {}",
                literal(&format!("{chunk_id}-open"))
            )
        } else {
            let data = json!({"openWindowTimestamp": self.open_timestamp,
                              "closeWindowTimestamp": timestamp()})
            .to_string();
            format!(
                "INSERT INTO {table} VALUES ({}, {}, {})",
                literal(&format!("{chunk_id}-close")),
                literal(signal::WINDOW_CLOSE),
                literal(&data)
            )
        };
        write_watermark(client, &sql).await
    }
}

/// Runs `sql` in a repeatable-read transaction; returns the snapshot it read in, the WAL
/// position then (every transaction the snapshot sees committed before it), and the rows.
async fn read_in_snapshot(
    client: &Client,
    sql: &str,
) -> Result<(PgSnapshot, u64, Vec<SimpleQueryMessage>), PgError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(PgError::postgres(
            "starting an incremental snapshot chunk's transaction",
        ))?;
    let read = async {
        let row = client
            .simple_query(CHUNK_SNAPSHOT)
            .await
            .map_err(PgError::postgres(
                "reading a chunk's snapshot and WAL position",
            ))?
            .into_iter()
            .find_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            });
        let (snapshot, position) = row
            .as_ref()
            .and_then(|row| {
                let snapshot = PgSnapshot::parse(row.get(0)?)?;
                let position = pgwire_replication::Lsn::parse(row.get(1)?).ok()?;
                Some((snapshot, position.as_u64()))
            })
            .ok_or_else(|| {
                PgError::State(format!(
                    "the server answered {CHUNK_SNAPSHOT:?} with something else than a \
                     snapshot and a WAL position"
                ))
            })?;
        let messages = client
            .simple_query(sql)
            .await
            .map_err(PgError::postgres(format!("running {sql}")))?;
        Ok((snapshot, position, messages))
    }
    .await;
    let end = if read.is_ok() { "COMMIT" } else { "ROLLBACK" };
    client.batch_execute(end).await.map_err(PgError::postgres(
        "ending an incremental snapshot chunk's transaction",
    ))?;
    read
}

/// Commits a watermark so that the walsender ships it at once: with `synchronous_commit=off`
/// (set on many servers for speed) the commit would wait up to `wal_writer_delay` (200 ms by
/// default) before the slot sees it, and every chunk with it. `local` waits for the local
/// flush only, never for a synchronous standby.
async fn write_watermark(client: &Client, sql: &str) -> Result<(), PgError> {
    client
        .batch_execute(&format!(
            "BEGIN; SET LOCAL synchronous_commit TO local; {sql}; COMMIT"
        ))
        .await
        .map_err(PgError::postgres(format!(
            "writing an incremental snapshot watermark ({sql})"
        )))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The key of `row` at `columns`.
pub fn key_of(row: &[Cell], columns: &[usize]) -> KeyText {
    columns
        .iter()
        .map(|&i| match row.get(i) {
            Some(Cell::Text(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        })
        .collect()
}

/// `(a, b) <op> ('x', 'y')`: a row comparison, PostgreSQL typing each literal as its column.
fn compare(names: &[String], op: &str, key: &KeyText) -> String {
    let literal = |v: &Option<String>| match v {
        Some(text) => literal(text),
        None => "NULL".to_owned(),
    };
    let values: Vec<String> = key.iter().map(literal).collect();
    if names.len() == 1 {
        format!("{} {op} {}", names[0], values.join(", "))
    } else {
        format!("ROW({}) {op} ROW({})", names.join(", "), values.join(", "))
    }
}

/// An instant as Java's `Instant.toString` writes it (the watermark rows' data).
fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_bounds_compare_whole_keys() {
        let one = vec!["\"id\"".to_owned()];
        assert_eq!(compare(&one, ">", &vec![Some("4".into())]), "\"id\" > '4'");
        let two = vec!["\"a\"".to_owned(), "\"b\"".to_owned()];
        assert_eq!(
            compare(&two, "<=", &vec![Some("x'y".into()), Some("2".into())]),
            "ROW(\"a\", \"b\") <= ROW('x''y', '2')"
        );
    }

    #[test]
    fn keys_are_read_from_the_key_columns() {
        let row = vec![
            Cell::Text(bytes::Bytes::from_static(b"7")),
            Cell::Null,
            Cell::Text(bytes::Bytes::from_static(b"x")),
        ];
        assert_eq!(
            key_of(&row, &[2, 0]),
            vec![Some("x".into()), Some("7".into())]
        );
        assert_eq!(key_of(&row, &[1]), vec![None]);
    }
}
