//! Durable keyed state for stateful transforms (`headwater.window.Aggregate`, WASM plugins'
//! state), in one redb database per connector: `<data dir>/state/<connector>.redb`.
//!
//! Exactly-once state across restarts: a checkpoint ([`StateStore::checkpoint`]) writes every
//! step's changes *and* the source offsets they correspond to in one durable transaction; the
//! source runner takes it when every record sent so far is acknowledged by the sinks. Between
//! checkpoints, steps spill cold entries into scratch tables (`<table>~spill`, non-durable
//! commits) that reads consult first; a checkpoint folds them into the tables, and opening the
//! store discards them. So the tables always hold exactly the state of the checkpointed offsets,
//! whether the process stopped cleanly or crashed, and the source resumes from those offsets:
//! no input is counted twice or lost.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition, TableHandle};

/// Suffix of the scratch table of spilled entries.
const SPILL: &str = "~spill";
/// First byte of a scratch entry: a deletion, or a value.
const DELETED: u8 = 0;
const VALUE: u8 = 1;

use std::collections::BTreeSet;

use crate::api::offsets::SourceOffsets;
use crate::api::record::Record;
use crate::api::transform::{BatchOutput, BatchTransform, TransformError};

mod scope;
mod snapshot;
mod table;

pub use scope::{Import, ScopeChange, rename_scope, scope_of_name};
pub use snapshot::{Change, Changes, Snapshot, SnapshotView};
use snapshot::{InFlight, SnapshotWrite};
pub use table::{Entry, Page, StateTable, prefix_end};

/// redb's page cache (its default is 1 GiB), per store, so per stateful connector (or
/// partition). Hot entries live decoded in each table's own cache, and pages redb misses come
/// from the OS page cache: 64 MiB bought no speed and cost 60–75 MiB of resident memory (the
/// window benches at 1,000,000 groups, and Kafka-fed, run at 8, 16 and 64 MiB).
const PAGE_CACHE_BYTES: usize = 8 << 20;

/// The store's own table: the offsets of the last checkpoint, and steps' small metadata.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("headwater.meta");
const OFFSETS: &str = "source.offsets";

/// A stored entry: key and value bytes.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StateError {
    pub path: PathBuf,
    pub message: String,
}

/// One connector's state database.
pub struct StateStore {
    db: Database,
    path: PathBuf,
    /// The snapshot taken but not yet written, if any (see [`Self::snapshot`]).
    in_flight: InFlight,
    /// The read transaction point reads share until the next commit (see [`OpenRead`]).
    reader: std::sync::Mutex<Option<OpenRead>>,
}

/// A table of the store opened for reading.
type ByteTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A read transaction kept for point reads ([`StateStore::get`]), with the tables it opened
/// (`None`: absent). Beginning a transaction and opening two tables per read took most of a
/// read: a Kafka-fed window read 388,000 evicted windows back per million clicks. It is dropped
/// at every commit, before the commit's snapshot counts as written, so a read never sees a
/// state older than the last commit and no old pages stay pinned.
struct OpenRead {
    txn: redb::ReadTransaction,
    tables: std::collections::HashMap<String, Option<ByteTable>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

fn table(name: &str) -> TableDefinition<'_, &'static [u8], &'static [u8]> {
    TableDefinition::new(name)
}

/// Writes of one transaction, to any table of the store: into the tables at a checkpoint,
/// into their scratch tables when spilling; or recorded into a [`Snapshot`] that a checkpoint
/// writes later, off the thread that changes the state.
pub struct Writer<'t> {
    target: Target<'t>,
    store: &'t StateStore,
}

enum Target<'t> {
    Txn {
        txn: &'t redb::WriteTransaction,
        spilling: bool,
    },
    Snapshot(&'t mut Snapshot),
}

impl<'t> Writer<'t> {
    /// Sets (`Some`) or deletes (`None`) entries of `table_name`.
    pub fn apply<'a>(
        &mut self,
        table_name: &str,
        entries: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StateError> {
        let store = self.store;
        let err = |e: redb::Error| store.error(e);
        let (txn, spilling) = match &mut self.target {
            Target::Txn { txn, spilling } => (*txn, *spilling),
            Target::Snapshot(snapshot) => {
                let changes = entries
                    .into_iter()
                    .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                    .collect();
                snapshot.record_changes(table_name, Arc::new(changes));
                return Ok(());
            }
        };
        if spilling {
            let name = format!("{table_name}{SPILL}");
            let mut t = txn.open_table(table(&name)).map_err(|e| err(e.into()))?;
            let mut tagged = Vec::new();
            for (key, value) in entries {
                tagged.clear();
                match value {
                    Some(v) => {
                        tagged.push(VALUE);
                        tagged.extend_from_slice(v);
                    }
                    None => tagged.push(DELETED),
                }
                t.insert(key, tagged.as_slice())
                    .map_err(|e| err(e.into()))?;
            }
            return Ok(());
        }
        let mut t = txn
            .open_table(table(table_name))
            .map_err(|e| err(e.into()))?;
        for (key, value) in entries {
            match value {
                Some(v) => t.insert(key, v).map(drop),
                None => t.remove(key).map(drop),
            }
            .map_err(|e| err(e.into()))?;
        }
        Ok(())
    }

    /// [`Self::apply`] of changes sorted by key, shared with the caller: a table keeps what a
    /// snapshot holds to answer reads until the snapshot is written ([`Self::snapshot`]).
    pub fn apply_changes(
        &mut self,
        table_name: &str,
        changes: Arc<Changes>,
    ) -> Result<(), StateError> {
        match &mut self.target {
            Target::Snapshot(snapshot) => {
                snapshot.record_changes(table_name, changes);
                Ok(())
            }
            Target::Txn { .. } => self.apply(
                table_name,
                changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            ),
        }
    }

    /// Deletes every entry of `table_name` whose key starts with one of `prefixes` (a closed
    /// window end's groups), before the changes applied after it.
    pub fn remove_prefixes(
        &mut self,
        table_name: &str,
        prefixes: &[Vec<u8>],
    ) -> Result<(), StateError> {
        if prefixes.is_empty() {
            return Ok(());
        }
        let store = self.store;
        let err = |e: redb::Error| store.error(e);
        match &mut self.target {
            Target::Snapshot(snapshot) => {
                snapshot.record_removal(table_name, prefixes);
                Ok(())
            }
            Target::Txn { spilling: true, .. } => {
                Err(store.error("a spill removes no prefix (a bug)"))
            }
            Target::Txn { txn, .. } => {
                let mut t = txn
                    .open_table(table(table_name))
                    .map_err(|e| err(e.into()))?;
                for prefix in prefixes {
                    // Key by key: redb's `retain_in` rewrote pages per deletion, and took a
                    // third of the Kafka window bench's time.
                    let keys = {
                        let range = match prefix_end(prefix) {
                            Some(end) => t.range::<&[u8]>(prefix.as_slice()..end.as_slice()),
                            None => t.range::<&[u8]>(prefix.as_slice()..),
                        }
                        .map_err(|e| err(e.into()))?;
                        let mut keys = Vec::new();
                        for entry in range {
                            keys.push(entry.map_err(|e| err(e.into()))?.0.value().to_vec());
                        }
                        keys
                    };
                    for key in keys {
                        t.remove(key.as_slice()).map_err(|e| err(e.into()))?;
                    }
                }
                Ok(())
            }
        }
    }

    /// The generation of the snapshot being recorded; `None` when writing to the store.
    pub fn snapshot(&self) -> Option<u64> {
        match &self.target {
            Target::Snapshot(s) => Some(s.generation()),
            Target::Txn { .. } => None,
        }
    }

    fn txn(&self) -> Result<&'t redb::WriteTransaction, StateError> {
        match &self.target {
            Target::Txn { txn, .. } => Ok(*txn),
            Target::Snapshot(_) => Err(self
                .store
                .error("a snapshot has no transaction to read (a bug)")),
        }
    }

    /// Folds every scratch table into its table and deletes it (at a checkpoint, before the
    /// cached changes, which are newer).
    fn fold_spills(&mut self) -> Result<(), StateError> {
        let store = self.store;
        let err = |e: redb::Error| store.error(e);
        let txn = self.txn()?;
        let names: Vec<String> = txn
            .list_tables()
            .map_err(|e| err(e.into()))?
            .map(|t| t.name().to_owned())
            .filter(|n| n.ends_with(SPILL))
            .collect();
        for name in names {
            let entries = {
                let t = txn.open_table(table(&name)).map_err(|e| err(e.into()))?;
                let mut out = Vec::new();
                for item in t.iter().map_err(|e| err(e.into()))? {
                    let (k, v) = item.map_err(|e| err(e.into()))?;
                    out.push((k.value().to_vec(), v.value().to_vec()));
                }
                out
            };
            let main = &name[..name.len() - SPILL.len()];
            self.apply(
                main,
                entries
                    .iter()
                    .map(|(k, v)| (k.as_slice(), (v.first() == Some(&VALUE)).then(|| &v[1..]))),
            )?;
            txn.delete_table(table(&name)).map_err(|e| err(e.into()))?;
        }
        Ok(())
    }

    /// The store's file (for error messages).
    pub fn path(&self) -> &Path {
        &self.store.path
    }

    /// Sets a small named value of the store's metadata (a step's watermark).
    pub fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StateError> {
        if let Target::Snapshot(snapshot) = &mut self.target {
            snapshot.record_meta(name, value);
            return Ok(());
        }
        let mut t = self
            .txn()?
            .open_table(META)
            .map_err(|e| self.store.error(e))?;
        t.insert(name, value).map_err(|e| self.store.error(e))?;
        Ok(())
    }
}

impl StateStore {
    /// The database file of `connector` under `data_dir`.
    pub fn path_for(data_dir: &Path, connector: &str) -> PathBuf {
        data_dir
            .join("state")
            .join(format!("{}.redb", crate::offsets::file_stem(connector)))
    }

    /// Opens (or creates) a store; after a crash redb rolls back to the last durable commit.
    pub fn open(path: &Path) -> Result<Arc<Self>, StateError> {
        let error = |message: String| StateError {
            path: path.to_owned(),
            message,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(path)
            .map_err(|e| {
                error(format!(
                    "{e} (is another Headwater process running this connector?)"
                ))
            })?;
        let store = Self {
            db,
            path: path.to_owned(),
            in_flight: InFlight::default(),
            reader: std::sync::Mutex::new(None),
        };
        store.discard_spills()?;
        Ok(Arc::new(store))
    }

    /// Drops the scratch tables: what was spilled since the last checkpoint (a run that
    /// stopped after it, or a task going back to it).
    pub fn discard_spills(&self) -> Result<(), StateError> {
        let spills: Vec<String> = self
            .tables()?
            .into_iter()
            .filter(|n| n.ends_with(SPILL))
            .collect();
        if spills.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        for name in &spills {
            txn.delete_table(table(name)).map_err(|e| self.error(e))?;
        }
        self.commit_txn(txn)
    }

    /// Deletes the state of one state partition: the tables and metadata its steps keep
    /// under `<name>@<scope>` (see `crate::api::transform::ChainContext::state_name`).
    pub fn forget_scope(&self, scope: &str) -> Result<(), StateError> {
        // `window:w@t-1`, `window:w@t-1:sessions`, `window:w@t-1:progress.v2`, each with its
        // scratch table: the scope ends the name or is followed by `:`.
        let whole = format!("@{scope}");
        let part = format!("{whole}:");
        let in_scope = |name: &str| {
            let name = name.strip_suffix(SPILL).unwrap_or(name);
            name.ends_with(&whole) || name.contains(&part)
        };
        let tables: Vec<String> = self.tables()?.into_iter().filter(|n| in_scope(n)).collect();
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        for name in &tables {
            txn.delete_table(table(name)).map_err(|e| self.error(e))?;
        }
        {
            let mut meta = txn.open_table(META).map_err(|e| self.error(e))?;
            let mut keys = Vec::new();
            for entry in meta.iter().map_err(|e| self.error(e))? {
                let (key, _) = entry.map_err(|e| self.error(e))?;
                if in_scope(key.value()) {
                    keys.push(key.value().to_owned());
                }
            }
            for key in keys {
                meta.remove(key.as_str()).map_err(|e| self.error(e))?;
            }
        }
        self.commit_txn(txn)
    }

    /// A store in memory, for state nobody checkpoints (`headwater plugin test`, unit tests).
    pub fn in_memory() -> Result<Arc<Self>, StateError> {
        let db = redb::Builder::new()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StateError {
                path: PathBuf::from(":memory:"),
                message: e.to_string(),
            })?;
        Ok(Arc::new(Self {
            db,
            path: PathBuf::from(":memory:"),
            in_flight: InFlight::default(),
            reader: std::sync::Mutex::new(None),
        }))
    }

    /// The database file (`:memory:` for [`Self::in_memory`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: impl std::fmt::Display) -> StateError {
        StateError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// The source offsets of the last checkpoint; `None` if none was taken.
    pub fn checkpointed_offsets(&self) -> Result<Option<SourceOffsets>, StateError> {
        let Some(bytes) = self.meta(OFFSETS)? else {
            return Ok(None);
        };
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
        SourceOffsets::from_json(&value)
            .map(Some)
            .ok_or_else(|| self.error("the checkpointed offsets are corrupt"))
    }

    /// A small named value written with [`Writer::put_meta`].
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let t = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        Ok(t.get(name)
            .map_err(|e| self.error(e))?
            .map(|v| v.value().to_vec()))
    }

    /// One entry of `table_name` (its scratch table first).
    pub fn get(&self, table_name: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let mut reader = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let open = match reader.as_mut() {
            Some(open) => open,
            None => reader.insert(OpenRead {
                txn: self.db.begin_read().map_err(|e| self.error(e))?,
                tables: std::collections::HashMap::new(),
            }),
        };
        if let Some(tagged) = self.read_one(open, &format!("{table_name}{SPILL}"), key)? {
            return Ok((tagged.first() == Some(&VALUE)).then(|| tagged[1..].to_vec()));
        }
        self.read_one(open, table_name, key)
    }

    fn read_one(
        &self,
        open: &mut OpenRead,
        table_name: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StateError> {
        if !open.tables.contains_key(table_name) {
            let t = match open.txn.open_table(table(table_name)) {
                Ok(t) => Some(t),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(self.error(e)),
            };
            open.tables.insert(table_name.to_owned(), t);
        }
        let Some(Some(t)) = open.tables.get(table_name) else {
            return Ok(None);
        };
        Ok(t.get(key)
            .map_err(|e| self.error(e))?
            .map(|v| v.value().to_vec()))
    }

    /// Entries of `table_name` with `from <= key < to` (`to = None`: to the end), in key
    /// order, its scratch table included (`None`: deleted there).
    pub fn range(
        &self,
        table_name: &str,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>, StateError> {
        self.range_limited(table_name, from, to, usize::MAX)
    }

    /// [`Self::range`] up to the `limit`-th key of the table and its scratch table together.
    pub fn range_limited(
        &self,
        table_name: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let mut entries: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> = self
            .scan(&txn, table_name, from, to, limit)?
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect();
        let spill = format!("{table_name}{SPILL}");
        for (k, mut tagged) in self.scan(&txn, &spill, from, to, limit)? {
            let value = (tagged.first() == Some(&VALUE)).then(|| tagged.split_off(1));
            entries.insert(k, value);
        }
        // Both scans stop after `limit` keys: past the first `limit` of the union, one of them
        // may be missing keys, so keep only those.
        while entries.len() > limit {
            entries.pop_last();
        }
        Ok(entries)
    }

    fn scan(
        &self,
        txn: &redb::ReadTransaction,
        table_name: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StateError> {
        let t = match txn.open_table(table(table_name)) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.error(e)),
        };
        let iter = match to {
            Some(to) => t.range::<&[u8]>(from..to),
            None => t.range::<&[u8]>(from..),
        }
        .map_err(|e| self.error(e))?;
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item.map_err(|e| self.error(e))?;
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Writes that may be lost in a crash (spilled cold entries): cheap, no fsync.
    pub fn spill(
        &self,
        write: impl FnOnce(&mut Writer<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        // A snapshot being written folds the scratch tables it finds into the tables, under
        // its own (older) changes: a spill written before it starts would be overwritten.
        self.in_flight.wait();
        self.commit(redb::Durability::None, None, write)
    }

    /// Writes the steps' state and the offsets it corresponds to, durably, in one transaction.
    pub fn checkpoint(
        &self,
        offsets: &SourceOffsets,
        write: impl FnOnce(&mut Writer<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        self.commit(redb::Durability::Immediate, Some(offsets), write)
    }

    fn commit(
        &self,
        durability: redb::Durability,
        offsets: Option<&SourceOffsets>,
        write: impl FnOnce(&mut Writer<'_>) -> Result<(), StateError>,
    ) -> Result<(), StateError> {
        let mut txn = self.db.begin_write().map_err(|e| self.error(e))?;
        txn.set_durability(durability);
        {
            let mut writer = Writer {
                target: Target::Txn {
                    txn: &txn,
                    spilling: offsets.is_none(),
                },
                store: self,
            };
            if offsets.is_some() {
                writer.fold_spills()?;
            }
            write(&mut writer)?;
            if let Some(offsets) = offsets {
                writer.put_meta(OFFSETS, offsets.to_json().to_string().as_bytes())?;
            }
        }
        self.commit_txn(txn)
    }

    /// Commits `txn`; point reads begin a new read transaction after it, so they see it.
    fn commit_txn(&self, txn: redb::WriteTransaction) -> Result<(), StateError> {
        let committed = txn.commit().map_err(|e| self.error(e));
        self.reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        committed
    }

    /// Records a checkpoint's writes without writing them, for [`Self::write_snapshot`] to
    /// write on another thread while the steps go on changing their state (Flink's
    /// asynchronous snapshots). Until it is written, the tables answer reads of what it holds
    /// from it, and spills wait. One snapshot at a time: write (or drop) one before the next.
    pub fn snapshot(
        &self,
        write: impl FnOnce(&mut Writer<'_>) -> Result<(), StateError>,
    ) -> Result<Snapshot, StateError> {
        // Tables keep one snapshot's changes for reads: the previous one must be written.
        self.in_flight.wait();
        let mut snapshot = Snapshot::new(&self.in_flight);
        let mut writer = Writer {
            target: Target::Snapshot(&mut snapshot),
            store: self,
        };
        // On an error the snapshot is dropped, which ends it.
        write(&mut writer)?;
        Ok(snapshot)
    }

    /// Writes a [`Snapshot`] and the offsets it corresponds to, durably, in one transaction.
    pub fn write_snapshot(
        &self,
        offsets: &SourceOffsets,
        mut snapshot: Snapshot,
    ) -> Result<(), StateError> {
        let writes = snapshot.take_writes();
        let result = self.commit(redb::Durability::Immediate, Some(offsets), |w| {
            for write in writes {
                match write {
                    SnapshotWrite::Changes { table, changes } => {
                        w.apply_changes(&table, changes)?
                    }
                    SnapshotWrite::RemovePrefixes { table, prefixes } => {
                        w.remove_prefixes(&table, &prefixes)?
                    }
                    SnapshotWrite::Meta { name, value } => w.put_meta(&name, &value)?,
                }
            }
            Ok(())
        });
        snapshot.end(result.is_ok());
        result
    }

    /// Whether the snapshot of `generation` is written: its changes are in the tables.
    pub fn written(&self, generation: u64) -> bool {
        self.in_flight.written(generation)
    }

    /// Names of the tables (for `headwater` diagnostics and tests).
    pub fn tables(&self) -> Result<Vec<String>, StateError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        Ok(txn
            .list_tables()
            .map_err(|e| self.error(e))?
            .map(|t| t.name().to_owned())
            .collect())
    }
}

/// A step with state that outlives batches: restored from its connector's [`StateStore`] when
/// the task starts, written into each checkpoint (taken with the source offsets, see
/// this module).
pub trait StatefulStep: Send + Sync {
    /// Attaches the store and loads what the step keeps in memory (watermarks).
    fn restore(&self, store: &Arc<StateStore>) -> Result<(), StateError>;
    /// Writes every change since the last checkpoint.
    fn checkpoint(&self, writer: &mut Writer<'_>) -> Result<(), StateError>;

    /// Called now and then while no batch comes: a step whose output depends on processing
    /// time (an input gone idle lets the watermark move) emits it here.
    fn tick(&self) -> BatchOutput {
        BatchOutput::default()
    }

    /// The end of a bounded input (`headwater run --once`): the step emits everything it still
    /// holds (a window step: the final watermark fires every window), the first page now and
    /// the rest through [`Self::tick`] while [`Self::pending`]. `None` once already called
    /// (or when the step holds nothing to emit at the end).
    fn finish(&self) -> Option<BatchOutput> {
        None
    }

    /// The Kafka partitions the connector's consumer owns now, as records' positions name
    /// them (`{"partition":0,"topic":"clicks"}`).
    fn assign(&self, _partitions: &BTreeSet<String>) {}

    /// True when the step groups records by fields its input is not partitioned by, so that
    /// with several readers its input must first be re-keyed through a repartition topic
    /// (`crate::runtime::shuffle`).
    fn needs_repartition(&self) -> bool {
        false
    }

    /// True when the step reads fields of every record's value (a window's group and event
    /// time): a Kafka consumer feeding it parses values on its own thread.
    fn reads_fields(&self) -> bool {
        false
    }

    /// For the repartition topic's shuffle: the record's group key (the bytes its partition is
    /// chosen by) and event time.
    fn shuffle_key(&self, _record: &mut Record) -> Result<(Vec<u8>, i64), TransformError> {
        Err(TransformError::data("this step is not re-keyed (a bug)"))
    }

    /// The record's event time as the step reads it, if the step has one and the record
    /// gives it: a Kafka consumer feeding the step reads its partitions in event-time order
    /// by it (`crate::runtime::kafka_bus::aligned`).
    fn event_time(&self, _record: &mut Record) -> Option<i64> {
        None
    }

    /// True while the step has output it emits over several calls (a window end shared by
    /// many groups closes a page at a time): the runtime calls [`Self::tick`] until it is
    /// false, writing each call's output before the next.
    fn pending(&self) -> bool {
        false
    }
}

/// A batch step with state: what a connector's chain checkpoints.
pub trait StatefulTransform: BatchTransform + StatefulStep {}

impl<T: BatchTransform + StatefulStep> StatefulTransform for T {}
