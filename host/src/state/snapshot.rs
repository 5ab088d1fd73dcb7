//! Asynchronous checkpoints: a [`Snapshot`] records what a checkpoint writes (encoded changed
//! entries, step metadata) on the thread that owns the state, in milliseconds; writing it into
//! the store, the expensive part (a B-tree update per entry and an fsync), then runs on another
//! thread while the steps go on (Flink's asynchronous snapshots).
//!
//! Until a snapshot is written, the store's tables do not hold its changes: each
//! [`StateTable`](super::StateTable) answers reads of the entries it snapshotted from the
//! snapshot itself, and spills wait for the write (see [`super::StateStore::spill`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// A change to write: key, and the encoded value or `None` for a deletion.
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Changes of one table, sorted by key.
pub type Changes = Vec<Change>;

/// One write a snapshot holds, in the order the steps made them.
pub(super) enum SnapshotWrite {
    Changes {
        table: String,
        changes: Arc<Changes>,
    },
    RemovePrefixes {
        table: String,
        prefixes: Vec<Vec<u8>>,
    },
    Meta {
        name: String,
        value: Vec<u8>,
    },
}

/// One write of a [`Snapshot`], as [`Snapshot::view`] shows it.
#[derive(Debug)]
pub enum SnapshotView<'a> {
    Changes {
        table: &'a str,
        changes: &'a Changes,
    },
    /// Every entry of `table` whose key starts with one of `prefixes` is deleted.
    RemovePrefixes {
        table: &'a str,
        prefixes: &'a [Vec<u8>],
    },
    Meta {
        name: &'a str,
        value: &'a [u8],
    },
}

/// A checkpoint's writes, recorded and not yet written (see the module documentation).
pub struct Snapshot {
    generation: u64,
    writes: Vec<SnapshotWrite>,
    in_flight: InFlight,
    /// Ended (written or failed); otherwise dropping it ends it as failed, so that spills
    /// never wait for a snapshot nobody will write.
    ended: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("writes", &self.writes.len())
            .finish()
    }
}

impl Snapshot {
    pub(super) fn new(in_flight: &InFlight) -> Self {
        Self {
            generation: in_flight.begin(),
            writes: Vec::new(),
            in_flight: in_flight.clone(),
            ended: false,
        }
    }

    /// Numbers snapshots of a store in the order they are taken, from 1.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub(super) fn record_changes(&mut self, table: &str, changes: Arc<Changes>) {
        self.writes.push(SnapshotWrite::Changes {
            table: table.to_owned(),
            changes,
        });
    }

    pub(super) fn record_removal(&mut self, table: &str, prefixes: &[Vec<u8>]) {
        self.writes.push(SnapshotWrite::RemovePrefixes {
            table: table.to_owned(),
            prefixes: prefixes.to_vec(),
        });
    }

    pub(super) fn record_meta(&mut self, name: &str, value: &[u8]) {
        self.writes.push(SnapshotWrite::Meta {
            name: name.to_owned(),
            value: value.to_vec(),
        });
    }

    /// The writes recorded, in order (what a changelog copies before the store writes them).
    pub fn view(&self) -> impl Iterator<Item = SnapshotView<'_>> {
        self.writes.iter().map(|w| match w {
            SnapshotWrite::Changes { table, changes } => SnapshotView::Changes { table, changes },
            SnapshotWrite::RemovePrefixes { table, prefixes } => {
                SnapshotView::RemovePrefixes { table, prefixes }
            }
            SnapshotWrite::Meta { name, value } => SnapshotView::Meta { name, value },
        })
    }

    /// Adds a metadata value to write with the rest (where the changelog holds this
    /// checkpoint, known once it is produced).
    pub fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.record_meta(name, value);
    }

    pub(super) fn take_writes(&mut self) -> Vec<SnapshotWrite> {
        std::mem::take(&mut self.writes)
    }

    /// Marks it written (`true`) or abandoned.
    pub(super) fn end(mut self, written: bool) {
        self.ended = true;
        self.in_flight.end(self.generation, written);
    }
}

impl Drop for Snapshot {
    fn drop(&mut self) {
        if !self.ended {
            self.in_flight.end(self.generation, false);
        }
    }
}

/// The store's record of its snapshots: the one taken and not yet ended, and the newest
/// written.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Inner>);

#[derive(Default)]
struct Inner {
    /// Generation of the last snapshot taken, and whether it is still being written.
    open: Mutex<(u64, bool)>,
    ended: Condvar,
    written: AtomicU64,
}

impl InFlight {
    fn begin(&self) -> u64 {
        let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        open.0 += 1;
        open.1 = true;
        open.0
    }

    fn end(&self, generation: u64, written: bool) {
        let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.0 == generation {
            open.1 = false;
        }
        if written {
            self.0.written.fetch_max(generation, Ordering::Release);
        }
        self.0.ended.notify_all();
    }

    /// Blocks while a snapshot is being written.
    pub(super) fn wait(&self) {
        let mut open = self.0.open.lock().unwrap_or_else(|e| e.into_inner());
        while open.1 {
            open = self.0.ended.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    pub(super) fn written(&self, generation: u64) -> bool {
        self.0.written.load(Ordering::Acquire) >= generation
    }
}
