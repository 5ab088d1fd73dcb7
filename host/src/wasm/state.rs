//! The host side of the `state` interface: a stateful transform's durable keyed state.
//!
//! All instances of a step share one [`PluginState`]: a write-back table in the connector's
//! state store (`crate::state`), checkpointed with the source offsets. An instance's changes
//! during a call are buffered in its own store data and applied only when the call succeeds,
//! so a batch retried record by record (after a trap) does not apply its changes twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::state::{StateError, StateStore, StateTable, Writer, prefix_end};

/// Entries kept decoded per step; beyond it, state spills to the store on disk.
const CACHE_ENTRIES: usize = 100_000;

/// Changes of one call: key → new value, or `None` for a deletion.
pub type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

struct Inner {
    store: Arc<StateStore>,
    table: StateTable<Vec<u8>>,
    /// The newest record timestamp of the batches applied so far.
    watermark: i64,
}

/// One step's state (see the module documentation).
pub struct PluginState {
    name: String,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for PluginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginState")
            .field("name", &self.name)
            .finish()
    }
}

impl PluginState {
    /// State stored under `name` (`wasm:<alias>`), in memory until [`Self::restore`]
    /// attaches the connector's store (`headwater plugin test` never does).
    pub fn new(name: &str) -> Result<Arc<Self>, StateError> {
        let name = name.to_owned();
        Ok(Arc::new(Self {
            inner: Mutex::new(Inner {
                store: StateStore::in_memory()?,
                table: StateTable::new(name.clone(), CACHE_ENTRIES),
                watermark: i64::MIN,
            }),
            name,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic mid-update fails the task, which restarts from the last checkpoint.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn watermark_key(&self) -> String {
        format!("{}:watermark", self.name)
    }

    pub fn restore(&self, store: &Arc<StateStore>) -> Result<(), StateError> {
        let watermark = store
            .meta(&self.watermark_key())?
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(i64::MIN, i64::from_be_bytes);
        let mut inner = self.lock();
        inner.store = Arc::clone(store);
        inner.table = StateTable::new(self.name.clone(), CACHE_ENTRIES);
        inner.watermark = watermark;
        Ok(())
    }

    pub fn checkpoint(&self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        let mut inner = self.lock();
        inner.table.write_changes(writer)?;
        writer.put_meta(&self.watermark_key(), &inner.watermark.to_be_bytes())
    }

    pub fn watermark(&self) -> i64 {
        self.lock().watermark
    }

    pub fn get(&self, pending: &Pending, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(change) = pending.get(key) {
            return Ok(change.clone());
        }
        let mut inner = self.lock();
        let Inner { store, table, .. } = &mut *inner;
        Ok(table.get(store, key)?.cloned())
    }

    /// Up to `limit` live entries with `prefix`, from `start`, with `pending` applied.
    pub fn scan(
        &self,
        pending: &Pending,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::state::KeyValue>, StateError> {
        let from = if start > prefix { start } else { prefix };
        let end = prefix_end(prefix);
        if end.as_deref().is_some_and(|e| from >= e) {
            return Ok(Vec::new());
        }
        let inner = self.lock();
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut at = from.to_vec();
        loop {
            let (page, next) = inner.table.page(&inner.store, &at, end.as_deref(), limit)?;
            out.extend(page);
            // Pending changes up to where this page's stored entries reach.
            let upto = next.as_deref().or(end.as_deref());
            for (k, change) in pending.range(at.clone()..) {
                if upto.is_some_and(|u| k.as_slice() >= u) {
                    break;
                }
                match change {
                    Some(v) => out.insert(k.clone(), v.clone()),
                    None => out.remove(k),
                };
            }
            match next {
                Some(n) if out.len() < limit => at = n,
                _ => break,
            }
        }
        Ok(out.into_iter().take(limit).collect())
    }

    /// Applies a successful call's changes, then moves the watermark to `newest`.
    pub fn commit(&self, pending: Pending, newest: Option<i64>) -> Result<(), StateError> {
        let mut inner = self.lock();
        let Inner {
            store,
            table,
            watermark,
        } = &mut *inner;
        for (key, change) in pending {
            match change {
                Some(value) => *table.upsert(store, &key, Vec::new)? = value,
                None => table.remove(&key),
            }
        }
        table.bound_memory(store)?;
        if let Some(t) = newest {
            *watermark = (*watermark).max(t);
        }
        Ok(())
    }
}
