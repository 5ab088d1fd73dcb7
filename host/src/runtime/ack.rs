//! Acknowledgements: a source's position is committed only when every record at or before it
//! has been flushed by every sink it went to (or sent to the dead-letter queue).
//!
//! Each batch a source sends is registered with its [`OffsetTracker`] along with the source
//! offsets it advances to, and yields one [`AckToken`] per sink that received part of it. A sink
//! acks its tokens after a successful flush. The tracker commits offsets in batch order: the
//! committed position is the one of the newest batch whose predecessors are all acknowledged.
//! A token dropped without `ack` (a sink that crashed) holds the position back, so a restart
//! replays from there: at-least-once, never a gap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::Notify;

use crate::api::offsets::SourceOffsets;

#[derive(Debug)]
struct BatchState {
    offsets: Vec<(Value, Value)>,
    done: bool,
}

#[derive(Debug)]
struct TrackerState {
    next_id: u64,
    /// Batches not yet folded into `committed`, by id.
    pending: BTreeMap<u64, BatchState>,
    /// Offsets as of the newest contiguous acknowledged batch.
    committed: SourceOffsets,
    /// True when `committed` changed since it was last persisted.
    dirty: bool,
}

/// Tracks the batches of one source task.
#[derive(Debug)]
pub struct OffsetTracker {
    state: Mutex<TrackerState>,
    changed: Notify,
}

impl OffsetTracker {
    pub fn new(committed: SourceOffsets) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(TrackerState {
                next_id: 0,
                pending: BTreeMap::new(),
                committed,
                dirty: false,
            }),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        // A panic while holding this lock cannot leave it half-updated in a way that matters
        // more than losing the process: keep going with the data.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a batch advancing the source to `offsets`, delivered to `sinks` sinks, and
    /// returns one token per sink. With no sink the batch counts as done at once.
    pub fn begin(self: &Arc<Self>, offsets: Vec<(Value, Value)>, sinks: usize) -> Vec<AckToken> {
        let id = {
            let mut state = self.lock();
            let id = state.next_id;
            state.next_id += 1;
            state.pending.insert(
                id,
                BatchState {
                    offsets,
                    done: false,
                },
            );
            id
        };
        if sinks == 0 {
            self.complete(id);
            return Vec::new();
        }
        let shared = Arc::new(Shared {
            id,
            remaining: AtomicUsize::new(sinks),
            tracker: Arc::clone(self),
        });
        (0..sinks)
            .map(|_| AckToken {
                shared: Arc::clone(&shared),
            })
            .collect()
    }

    fn complete(&self, id: u64) {
        let mut state = self.lock();
        if let Some(batch) = state.pending.get_mut(&id) {
            batch.done = true;
        }
        let mut advanced = false;
        while let Some(entry) = state.pending.first_entry() {
            if !entry.get().done {
                break;
            }
            let batch = entry.remove();
            for (partition, offset) in batch.offsets {
                state.committed.insert(partition, offset);
            }
            advanced = true;
        }
        if advanced {
            state.dirty = true;
            drop(state);
            self.changed.notify_one();
        }
    }

    /// Waits until the committed offsets change.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The committed offsets if they changed since the last call.
    pub fn take_dirty(&self) -> Option<SourceOffsets> {
        let mut state = self.lock();
        if !state.dirty {
            return None;
        }
        state.dirty = false;
        Some(state.committed.clone())
    }

    /// Marks offsets as not yet persisted again (after a failed write).
    pub fn mark_dirty(&self) {
        self.lock().dirty = true;
    }

    /// The offset of `partition` as of the newest batch every sink acknowledged.
    pub fn acknowledged(&self, partition: &Value) -> Option<Value> {
        self.lock().committed.get(partition).cloned()
    }

    /// Forgets the acknowledged offset of `partition` (a Kafka partition this consumer gave up
    /// and got back: what it acknowledged before is older than the group's offset now).
    pub fn forget(&self, partition: &Value) {
        self.lock().committed.remove(partition);
    }

    /// Every partition's offset as of the newest batch every sink acknowledged.
    pub fn committed(&self) -> SourceOffsets {
        self.lock().committed.clone()
    }

    /// Batches sent but not yet fully acknowledged.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }
}

#[derive(Debug)]
struct Shared {
    id: u64,
    remaining: AtomicUsize,
    tracker: Arc<OffsetTracker>,
}

/// One sink's share of one source batch. `ack` it after the records are durably written.
#[derive(Debug)]
#[must_use = "a token that is never acked holds its source's position back"]
pub struct AckToken {
    shared: Arc<Shared>,
}

impl AckToken {
    pub fn ack(self) {
        if self.shared.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.tracker.complete(self.shared.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn offsets(n: u64) -> Vec<(Value, Value)> {
        vec![(json!({"p": 0}), json!({"n": n}))]
    }

    #[test]
    fn commits_in_order_once_every_sink_acked() {
        let tracker = OffsetTracker::new(SourceOffsets::default());
        let mut first = tracker.begin(offsets(1), 2);
        let second = tracker.begin(offsets(2), 1);
        second.into_iter().for_each(AckToken::ack);
        assert!(tracker.take_dirty().is_none(), "batch 1 still pending");
        first.pop().unwrap().ack();
        assert!(tracker.take_dirty().is_none(), "one sink of batch 1 left");
        first.pop().unwrap().ack();
        let committed = tracker.take_dirty().unwrap();
        assert_eq!(committed.get(&json!({"p": 0})), Some(&json!({"n": 2})));
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_dropped_token_holds_the_position_back() {
        let tracker = OffsetTracker::new(SourceOffsets::default());
        drop(tracker.begin(offsets(1), 1));
        tracker
            .begin(offsets(2), 1)
            .into_iter()
            .for_each(AckToken::ack);
        assert!(tracker.take_dirty().is_none());
        assert_eq!(tracker.in_flight(), 2);
    }

    #[test]
    fn batches_without_sinks_complete_at_once() {
        let tracker = OffsetTracker::new(SourceOffsets::default());
        assert!(tracker.begin(offsets(7), 0).is_empty());
        let committed = tracker.take_dirty().unwrap();
        assert_eq!(committed.get(&json!({"p": 0})), Some(&json!({"n": 7})));
    }
}
