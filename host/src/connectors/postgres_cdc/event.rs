//! Debezium's change events: the envelope (`before`, `after`, `source`, `transaction`, `op`,
//! `ts_*`), its schemas, the key, tombstones, the `__debezium.*` headers, heartbeats and
//! transaction metadata events, all field for field as Debezium 3.6 emits them.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::catalog::{Column, Table};
use super::config::{BinaryMode, CdcConfig};
use super::pgoutput::Cell;
use super::types::{Kind, ValueError, convert, zero};
use crate::api::record::{Data, Header, Payload, Position, Record, Schema};

/// Debezium's version string in `source.version`: the events are the ones that release emits.
pub const DEBEZIUM_VERSION: &str = "3.6.3.Final";

/// The operation of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Create,
    Update,
    Delete,
    Truncate,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Self::Read => "r",
            Self::Create => "c",
            Self::Update => "u",
            Self::Delete => "d",
            Self::Truncate => "t",
        }
    }
}

/// Where in the database an event happened: the `source` block's changing part.
#[derive(Debug, Clone, Copy)]
pub struct At {
    /// Commit time (streaming) or snapshot start (snapshot), µs since the epoch.
    pub ts_us: i64,
    /// `true`, `first`, `first_in_data_collection`, `last_in_data_collection`, `last` or
    /// `false`.
    pub snapshot: &'static str,
    /// None for incremental snapshot rows (read by a query, at no WAL position).
    pub lsn: Option<u64>,
    pub last_commit_lsn: Option<u64>,
    pub tx_id: Option<i64>,
}

/// A transaction's events as Debezium numbers them (`provide.transaction.metadata`): every
/// event counts, a key change's delete and create as two.
#[derive(Debug, Default)]
pub struct TxOrder {
    pub xid: u32,
    /// Events so far.
    pub events: u64,
    /// Events per `schema.table`, in first-seen order.
    pub per_table: Vec<(String, u64)>,
}

impl TxOrder {
    pub fn new(xid: u32) -> Self {
        Self {
            xid,
            ..Self::default()
        }
    }

    /// Counts one more event of `collection`, at `lsn`: its transaction block.
    fn next(&mut self, collection: &str, lsn: u64) -> Value {
        self.events += 1;
        let order = match self.per_table.iter_mut().find(|(t, _)| t == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.per_table.push((collection.to_owned(), 1));
                1
            }
        };
        json!({"id": format!("{}:{lsn}", self.xid), "total_order": self.events,
               "data_collection_order": order})
    }
}

pub fn source_schema() -> Value {
    json!({"type": "struct", "fields": [
        {"type": "string", "optional": false, "field": "version"},
        {"type": "string", "optional": false, "field": "connector"},
        {"type": "string", "optional": false, "field": "name"},
        {"type": "int64", "optional": false, "field": "ts_ms"},
        {"type": "string", "optional": true, "name": "io.debezium.data.Enum", "version": 1,
         "parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
         "default": "false", "field": "snapshot"},
        {"type": "string", "optional": false, "field": "db"},
        {"type": "string", "optional": true, "field": "sequence"},
        {"type": "int64", "optional": true, "field": "ts_us"},
        {"type": "int64", "optional": true, "field": "ts_ns"},
        {"type": "string", "optional": false, "field": "schema"},
        {"type": "string", "optional": false, "field": "table"},
        {"type": "int64", "optional": true, "field": "txId"},
        {"type": "int64", "optional": true, "field": "lsn"},
        {"type": "int64", "optional": true, "field": "xmin"},
        {"type": "string", "optional": true, "field": "origin"},
        {"type": "int64", "optional": true, "field": "origin_lsn"},
    ], "optional": false, "name": "io.debezium.connector.postgresql.Source", "version": 1, "field": "source"})
}

pub fn transaction_block_schema() -> Value {
    json!({"type": "struct", "fields": [
        {"type": "string", "optional": false, "field": "id"},
        {"type": "int64", "optional": false, "field": "total_order"},
        {"type": "int64", "optional": false, "field": "data_collection_order"},
    ], "optional": true, "name": "event.block", "version": 1, "field": "transaction"})
}

/// Processing time now, µs since the epoch.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A random-enough run id in UUID form (headers only; no security purpose).
fn run_id() -> String {
    use sha2::Digest;
    let seed = format!("{}-{}", now_us(), std::process::id());
    let h = sha2::Sha256::digest(seed.as_bytes());
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-7{:01x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        h[0],
        h[1],
        h[2],
        h[3],
        h[4],
        h[5],
        h[6] & 0xf,
        h[7],
        (h[8] & 0x3f) | 0x80,
        h[9],
        h[10],
        h[11],
        h[12],
        h[13],
        h[14],
        h[15]
    )
}

/// A value as SimpleHeaderConverter writes it: strings raw, anything else as JSON.
fn header(key: &str, value: &Value) -> Header {
    let bytes = match value {
        Value::String(s) => Bytes::from(s.clone()),
        other => Bytes::from(other.to_string()),
    };
    Header {
        key: key.to_owned(),
        value: Some(bytes),
    }
}

/// A row the change cannot be turned into an event: a value that does not parse as its column
/// type says. It names the column (`key column` for the old key of an update or delete). The
/// record goes to the error policy.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{}column {column} holds text that is not UTF-8", key_prefix(*.key))]
    NotUtf8 { column: String, key: bool },
    #[error("{}column {column}: {source}", key_prefix(*.key))]
    Value {
        column: String,
        key: bool,
        #[source]
        source: ValueError,
    },
}

fn key_prefix(key: bool) -> &'static str {
    if key { "key " } else { "" }
}

/// Builds the records of one connector.
#[derive(Debug)]
pub struct Events {
    config: Arc<CdcConfig>,
    connector: Arc<str>,
    partition: Arc<str>,
    context_headers: Vec<Header>,
    /// The schemas of heartbeats and transaction events, built once.
    heartbeat_schemas: (Schema, Schema),
    transaction_schemas: (Schema, Schema),
}

/// A change to emit: its table, operation, tuples and place.
pub struct Change<'a> {
    pub table: &'a Table,
    pub op: Op,
    pub old: Option<&'a [Cell]>,
    /// Whether `old` is a whole row (REPLICA IDENTITY FULL) rather than just the key.
    pub old_full: bool,
    pub new: Option<&'a [Cell]>,
    pub at: At,
    /// The transaction's numbering, with `provide.transaction.metadata` (streamed changes).
    pub tx: Option<&'a mut TxOrder>,
}

impl Events {
    pub fn new(config: Arc<CdcConfig>, connector: Arc<str>) -> Self {
        let partition: Arc<str> = Arc::from(partition_of(&config.prefix).to_string());
        let context_headers = vec![
            header(
                "__debezium.context.connectorLogicalName",
                &json!(config.prefix),
            ),
            header("__debezium.context.taskId", &json!("0")),
            header("__debezium.context.connectorName", &json!("postgresql")),
            header("__debezium.context.runId", &json!(run_id())),
        ];
        Self {
            config,
            connector,
            partition,
            context_headers,
            heartbeat_schemas: (
                Schema::new(json!({"type": "struct", "fields": [
                    {"type": "string", "optional": false, "field": "serverName"}],
                    "optional": false, "name": "io.debezium.connector.common.ServerNameKey"})),
                Schema::new(json!({"type": "struct", "fields": [
                    {"type": "int64", "optional": false, "field": "ts_ms"}],
                    "optional": false, "name": "io.debezium.connector.common.Heartbeat"})),
            ),
            transaction_schemas: (
                Schema::new(json!({"type": "struct", "fields": [
                    {"type": "string", "optional": false, "field": "id"}],
                    "optional": false, "name": "io.debezium.connector.common.TransactionMetadataKey",
                    "version": 1})),
                Schema::new(transaction_value_schema()),
            ),
        }
    }

    pub fn position(&self, serial: u64) -> Position {
        Position {
            source: Arc::clone(&self.connector),
            partition: Arc::clone(&self.partition),
            offset: serial,
        }
    }

    /// The `source` block, as JSON.
    fn source_json(&self, table: &Table, at: &At) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        let mut s = JsonObject::new(&mut out);
        s.field("version", DEBEZIUM_VERSION);
        s.field("connector", "postgresql");
        s.field("name", &self.config.prefix);
        s.field("ts_ms", &at.ts_us.div_euclid(1000));
        s.field("snapshot", at.snapshot);
        s.field("db", &self.config.dbname);
        let last = at.last_commit_lsn.map(|l| l.to_string());
        // An incremental snapshot row has no LSN of its own: Debezium repeats the last one.
        let lsn = at.lsn.map(|l| l.to_string()).or_else(|| last.clone());
        s.field("sequence", &json!([last, lsn]).to_string());
        s.field("ts_us", &at.ts_us);
        s.field("ts_ns", &(at.ts_us * 1000));
        s.field("schema", &table.schema);
        s.field("table", &table.name);
        s.field("txId", &at.tx_id);
        s.field("lsn", &at.lsn);
        s.field("xmin", &Value::Null);
        s.field("origin", &Value::Null);
        s.field("origin_lsn", &Value::Null);
        s.end();
        out
    }

    /// The row struct of a tuple, as JSON; `fallback` supplies unchanged TOASTed values (the
    /// old row under REPLICA IDENTITY FULL). In an old-key tuple (`key_only`) the other columns
    /// are absent: Debezium fills them with their default, their type's zero when NOT NULL, or
    /// null.
    fn row(
        &self,
        table: &Table,
        cells: &[Cell],
        fallback: Option<&[Cell]>,
        key_only: bool,
    ) -> Result<Vec<u8>, EventError> {
        let modes = &self.config.modes;
        let mut out = Vec::with_capacity(32 * table.columns.len());
        let mut row = JsonObject::new(&mut out);
        for (i, column) in table.columns.iter().enumerate() {
            if !column.kept {
                continue;
            }
            let cell = match cells.get(i) {
                Some(Cell::UnchangedToast) => match fallback.and_then(|f| f.get(i)) {
                    Some(old @ Cell::Text(_)) => old,
                    _ => &Cell::UnchangedToast,
                },
                Some(cell) => cell,
                None => &Cell::Null,
            };
            let value = match cell {
                Cell::Text(text) => {
                    let text = std::str::from_utf8(text).map_err(|_| EventError::NotUtf8 {
                        column: column.name.clone(),
                        key: false,
                    })?;
                    convert(&column.kind, modes, text).map_err(|source| EventError::Value {
                        column: column.name.clone(),
                        key: false,
                        source,
                    })?
                }
                Cell::Null => self.absent(column, key_only),
                Cell::UnchangedToast => self.placeholder(&column.kind),
            };
            row.field(&column.name, &value);
        }
        row.end();
        Ok(out)
    }

    /// The value of a column a tuple has no value for.
    fn absent(&self, column: &Column, key_only: bool) -> Value {
        match &column.default {
            Some(default) if key_only => default.clone(),
            _ if column.optional => Value::Null,
            _ => zero(&column.kind, &self.config.modes),
        }
    }

    fn placeholder(&self, kind: &Kind) -> Value {
        use base64::Engine;
        let text = &self.config.placeholder;
        match kind {
            Kind::Bytes if self.config.modes.binary != BinaryMode::Hex => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(text.as_bytes()))
            }
            Kind::Array(_) => json!([text]),
            _ => Value::String(text.clone()),
        }
    }

    /// The key struct of a tuple, `None` for a table without a key.
    fn key(&self, table: &Table, cells: &[Cell]) -> Result<Payload, EventError> {
        let Some(schema) = &table.key_schema else {
            return Ok(Payload::null());
        };
        let modes = &self.config.modes;
        let mut key = Map::with_capacity(table.key.len());
        for &i in &table.key {
            let column = &table.columns[i];
            let value = match cells.get(i) {
                Some(Cell::Text(text)) => {
                    let text = std::str::from_utf8(text).map_err(|_| EventError::NotUtf8 {
                        column: column.name.clone(),
                        key: true,
                    })?;
                    convert(&column.kind, modes, text).map_err(|source| EventError::Value {
                        column: column.name.clone(),
                        key: true,
                        source,
                    })?
                }
                _ => self.absent(column, true),
            };
            key.insert(column.name.clone(), value);
        }
        Ok(Payload::data(Data {
            schema: Some(schema.clone()),
            value: Value::Object(key),
        }))
    }

    fn record(&self, topic: &str, key: Payload, value: Payload, ts_ms: i64) -> Record {
        let mut record = Record::new(topic, value);
        record.key = key;
        record.timestamp = Some(ts_ms);
        record.headers = self.context_headers.clone();
        record
    }

    /// The records of one change: one event; for a delete also its tombstone; for an update
    /// that changed the key, delete + tombstone + create with the old/new key headers.
    pub fn change(&self, change: Change<'_>, out: &mut Vec<Record>) -> Result<(), EventError> {
        let table = change.table;
        let now = now_us();
        let source = self.source_json(table, &change.at);
        let (collection, lsn) = (
            format!("{}.{}", table.schema, table.name),
            change.at.lsn.unwrap_or(0),
        );
        let mut tx_order = change.tx;
        let mut next_tx = || -> Value {
            tx_order
                .as_deref_mut()
                .map_or(Value::Null, |t| t.next(&collection, lsn))
        };
        // Written as bytes beside the table's schema: a tree per event (a map per row and
        // for the source block, a string per key) was several times the size of its JSON, and
        // most sinks only write it out again.
        let envelope = |before: Option<&[u8]>, after: Option<&[u8]>, op: Op, tx: Value| {
            let rows = before.map_or(0, <[u8]>::len) + after.map_or(0, <[u8]>::len);
            // The rest fits in 256 bytes, transaction block included: `Bytes` keeps the
            // capacity, so a buffer that had to grow would hold twice the event.
            let mut out = Vec::with_capacity(rows + source.len() + 256);
            let mut v = JsonObject::new(&mut out);
            v.raw("before", before.unwrap_or(b"null"));
            v.raw("after", after.unwrap_or(b"null"));
            v.raw("source", &source);
            v.field("transaction", &tx);
            v.field("op", op.code());
            v.field("ts_ms", &now.div_euclid(1000));
            v.field("ts_us", &now);
            v.field("ts_ns", &(now * 1000));
            v.end();
            Payload::json_with_schema(Bytes::from(out), table.envelope_schema.clone())
        };
        let ts_ms = now.div_euclid(1000);
        let full_old = change.old.filter(|_| change.old_full);
        match change.op {
            Op::Read | Op::Create => {
                let new = change.new.unwrap_or(&[]);
                let key = self.key(table, new)?;
                let after = self.row(table, new, None, false)?;
                out.push(self.record(
                    &table.topic,
                    key,
                    envelope(None, Some(&after), change.op, next_tx()),
                    ts_ms,
                ));
            }
            Op::Update => {
                let new = change.new.unwrap_or(&[]);
                let new_key = self.key(table, new)?;
                let before = match change.old {
                    Some(old) if change.old_full => Some(self.row(table, old, None, false)?),
                    _ => None,
                };
                let after = self.row(table, new, full_old, false)?;
                let old_key = match change.old {
                    Some(old) => Some(self.key(table, old)?),
                    None => None,
                };
                match old_key.filter(|k| table.key_schema.is_some() && *k != new_key) {
                    None => out.push(self.record(
                        &table.topic,
                        new_key,
                        envelope(before.as_deref(), Some(&after), Op::Update, next_tx()),
                        ts_ms,
                    )),
                    Some(old_key) => {
                        // The key changed: Debezium emits the delete of the old key (with the
                        // new key in a header), its tombstone, then the create.
                        let old = change.old.unwrap_or(&[]);
                        let deleted = self.row(table, old, None, !change.old_full)?;
                        let new_key_header = header(
                            "__debezium.newkey",
                            &new_key.parsed().map_or(Value::Null, |d| d.value.clone()),
                        );
                        let old_key_header = header(
                            "__debezium.oldkey",
                            &old_key.parsed().map_or(Value::Null, |d| d.value.clone()),
                        );
                        let mut delete = self.record(
                            &table.topic,
                            old_key.clone(),
                            envelope(Some(&deleted), None, Op::Delete, next_tx()),
                            ts_ms,
                        );
                        delete.headers.push(new_key_header.clone());
                        out.push(delete);
                        if self.config.tombstones {
                            let mut tombstone =
                                self.record(&table.topic, old_key, Payload::null(), ts_ms);
                            tombstone.headers.push(new_key_header);
                            out.push(tombstone);
                        }
                        let mut create = self.record(
                            &table.topic,
                            new_key,
                            envelope(None, Some(&after), Op::Create, next_tx()),
                            ts_ms,
                        );
                        create.headers.push(old_key_header);
                        out.push(create);
                    }
                }
            }
            Op::Delete => {
                let old = change.old.unwrap_or(&[]);
                let key = self.key(table, old)?;
                let before = self.row(table, old, None, !change.old_full)?;
                out.push(self.record(
                    &table.topic,
                    key.clone(),
                    envelope(Some(&before), None, Op::Delete, next_tx()),
                    ts_ms,
                ));
                if self.config.tombstones {
                    out.push(self.record(&table.topic, key, Payload::null(), ts_ms));
                }
            }
            Op::Truncate => out.push(self.record(
                &table.topic,
                Payload::null(),
                envelope(None, None, Op::Truncate, next_tx()),
                ts_ms,
            )),
        }
        Ok(())
    }

    /// A heartbeat record: `{"ts_ms"}` keyed by the server name.
    pub fn heartbeat(&self) -> Record {
        let now = now_us();
        let topic = self.config.heartbeat_topic();
        let key = Payload::data(Data {
            schema: Some(self.heartbeat_schemas.0.clone()),
            value: json!({"serverName": self.config.prefix}),
        });
        let value = Payload::data(Data {
            schema: Some(self.heartbeat_schemas.1.clone()),
            value: json!({"ts_ms": now.div_euclid(1000)}),
        });
        self.record(&topic, key, value, now.div_euclid(1000))
    }

    /// A BEGIN or END transaction metadata event. `end`: the events and the events per
    /// `schema.table` in first-seen order (END only; listed in Debezium's order).
    pub fn transaction_event(
        &self,
        id: &str,
        commit_us: i64,
        end: Option<(u64, &[(String, u64)])>,
    ) -> Record {
        let key = Payload::data(Data {
            schema: Some(self.transaction_schemas.0.clone()),
            value: json!({"id": id}),
        });
        let (status, count, collections) = match end {
            None => ("BEGIN", Value::Null, Value::Null),
            Some((count, per_table)) => (
                "END",
                json!(count),
                Value::Array(
                    super::java_order::hash_map_order(per_table)
                        .into_iter()
                        .map(|(t, n)| json!({"data_collection": t, "event_count": n}))
                        .collect(),
                ),
            ),
        };
        let value = Payload::data(Data {
            schema: Some(self.transaction_schemas.1.clone()),
            value: json!({"status": status, "id": id, "event_count": count,
                          "data_collections": collections, "ts_ms": commit_us.div_euclid(1000)}),
        });
        // Debezium's transaction events carry no context headers.
        let mut record = self.record(
            &self.config.transaction_metadata_topic(),
            key,
            value,
            commit_us.div_euclid(1000),
        );
        record.headers.clear();
        record
    }
}

fn transaction_value_schema() -> Value {
    json!({"type": "struct", "fields": [
        {"type": "string", "optional": false, "field": "status"},
        {"type": "string", "optional": false, "field": "id"},
        {"type": "int64", "optional": true, "field": "event_count"},
        {"type": "array", "items": {"type": "struct", "fields": [
            {"type": "string", "optional": false, "field": "data_collection"},
            {"type": "int64", "optional": false, "field": "event_count"}],
            "optional": true, "name": "event.collection", "version": 1},
            "optional": true, "field": "data_collections"},
        {"type": "int64", "optional": false, "field": "ts_ms"},
    ], "optional": false, "name": "io.debezium.connector.common.TransactionMetadataValue", "version": 1})
}

/// A JSON object written field by field, as serde_json writes a map (compact, in the order
/// given): an event's bytes without the tree.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(b',');
        }
        write_json(self.out, key);
        self.out.push(b':');
    }

    fn field(&mut self, key: &str, value: &(impl serde::Serialize + ?Sized)) {
        self.key(key);
        write_json(self.out, value);
    }

    /// A field whose value is already JSON.
    fn raw(&mut self, key: &str, json: &[u8]) {
        self.key(key);
        self.out.extend_from_slice(json);
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

fn write_json(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
    // Strings, numbers and JSON values: nothing here can fail to serialize into a Vec.
    serde_json::to_writer(out, value).expect("writing JSON to a Vec cannot fail");
}

/// The source partition of a connector: `{"server": <prefix>}`, as Debezium stores it.
pub fn partition_of(prefix: &str) -> Value {
    json!({"server": prefix})
}
