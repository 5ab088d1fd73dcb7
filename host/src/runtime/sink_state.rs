//! The state of a sink connector whose chain keeps state (windows, stateful plugins): which
//! input it has absorbed, and acknowledgements held until a checkpoint covers them.
//!
//! A checkpoint writes the chain's state with the newest position absorbed from every input
//! (each Kafka partition the sink consumes, each local source's partition), in one durable
//! transaction. It is taken only right after the sink flushed, so every result the state has
//! emitted is in the destination. Batches are acknowledged — a local source commits its offsets,
//! the Kafka consumer commits the group's offsets — only once a checkpoint holds their effect.
//! After a crash the sink resumes from the checkpoint: the Kafka consumer seeks to its offsets
//! (the checkpoint is the truth, as in Flink's KafkaSource), and records a local source replays
//! that the checkpoint already holds are skipped by their position.
//!
//! The checkpoint is asynchronous: its changes are recorded on the sink's task and written on a
//! blocking thread while the task goes on ([`crate::state::StateStore::snapshot`]); its batches
//! are acknowledged when the write is done, and the next checkpoint waits for it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api::error::RecordError;
use crate::api::offsets::SourceOffsets;
use crate::api::record::Record;
use crate::runtime::ack::AckToken;
use crate::runtime::changelog::{Changelog, ChangelogError};
use crate::state::{StateError, StateStore};
use crate::transforms::chain::Chain;

/// How often a stateful sink checkpoints, at its flushes, when it has absorbed anything since.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// A sink that batches for longer (a Parquet file per rotation) is made to flush, and
/// checkpoint, after this long: the acknowledgements wait for it.
pub const CHECKPOINT_FORCE_AFTER: Duration = Duration::from_secs(30);

/// Why a checkpoint could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
}

impl CheckpointError {
    /// Another host has taken a partition this checkpoint holds (see
    /// [`ChangelogError::fenced`]): nothing of it was written.
    pub fn fenced(&self) -> bool {
        matches!(self, Self::Changelog(e) if e.fenced)
    }
}

/// (source connector, source partition as canonical JSON): one input of the sink.
type Input = (Arc<str>, Arc<str>);

/// Where a checkpoint says how its state is kept (absent: one chain, as before per-partition
/// state existed).
const LAYOUT_META: &str = "sink.state.layout";

/// How a sink keeps its chain's state: the names the state is stored under depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One chain for all input (`tasks.max` = 1).
    One,
    /// One chain per input partition (`tasks.max` > 1, see `crate::runtime::partitioned`).
    PerPartition,
}

impl Layout {
    fn as_str(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::PerPartition => "per-partition",
        }
    }
}

/// The state partition of a Kafka position's partition (`{"topic":"t","partition":1}` → `t-1`).
fn scope_of_position(partition: &str) -> Option<String> {
    let p: Value = serde_json::from_str(partition).ok()?;
    Some(format!(
        "{}-{}",
        p["topic"].as_str()?,
        p["partition"].as_i64()?
    ))
}

fn is_marker(record: &Record) -> bool {
    record
        .headers
        .iter()
        .any(|h| h.key == crate::window::MARKER_HEADER)
}

/// See the module documentation.
#[derive(Debug)]
pub struct SinkState {
    store: Arc<StateStore>,
    layout: Layout,
    /// The newest position absorbed from each input.
    absorbed: HashMap<Input, u64>,
    /// Flushed batches no checkpoint holds yet.
    unconfirmed: Vec<AckToken>,
    /// The state changed since the last checkpoint.
    changed: bool,
    last_checkpoint: Instant,
    /// The checkpoint being written, if one is.
    writing: Option<Writing>,
    /// With state per Kafka partition: where each checkpoint is copied first.
    changelog: Option<Arc<Changelog>>,
}

impl SinkState {
    /// Opens `connector`'s state (its chains restore from the store themselves) and reads the
    /// positions of its last checkpoint. State checkpointed in another layout is refused: read
    /// the other way it would be silently empty, or stale.
    pub fn open(store: Arc<StateStore>, layout: Layout) -> Result<Self, StateError> {
        let checkpointed = store.checkpointed_offsets()?;
        let stored = match store.meta(LAYOUT_META)? {
            Some(bytes) if bytes == Layout::PerPartition.as_str().as_bytes() => {
                Layout::PerPartition
            }
            _ => Layout::One,
        };
        if checkpointed.is_some() && stored != layout {
            let (was, is) = match stored {
                Layout::PerPartition => (
                    "per input partition (tasks.max > 1 with Kafka)",
                    "one reader",
                ),
                Layout::One => (
                    "by one reader",
                    "per input partition (tasks.max > 1 with Kafka)",
                ),
            };
            return Err(StateError {
                path: store.path().to_owned(),
                message: format!(
                    "this connector's state was kept {was} and would now be kept {is}, under \
                     other names: set tasks.max back, or reset the connector's offsets \
                     (DELETE /connectors/<name>/offsets, which deletes its state) to start over"
                ),
            });
        }
        let checkpointed = checkpointed.unwrap_or_default();
        let absorbed = checkpointed
            .iter()
            .filter_map(|(key, offset)| {
                let source = key["source"].as_str()?;
                let partition = key.get("partition")?.to_string();
                Some((
                    (Arc::from(source), Arc::from(partition)),
                    offset["offset"].as_u64()?,
                ))
            })
            .collect();
        Ok(Self {
            store,
            layout,
            absorbed,
            unconfirmed: Vec::new(),
            changed: false,
            last_checkpoint: Instant::now(),
            writing: None,
            changelog: None,
        })
    }

    /// Copies every checkpoint to `changelog` before writing it locally.
    pub fn with_changelog(mut self, changelog: Arc<Changelog>) -> Self {
        self.changelog = Some(changelog);
        self
    }

    /// Every Kafka offset of `connector`'s own consumer in the checkpoint, by (topic, partition).
    pub fn kafka_offsets(&self, connector: &str) -> KafkaOffsets {
        self.absorbed
            .iter()
            .filter(|((source, _), _)| **source == *connector)
            .filter_map(|((_, partition), offset)| {
                let p: Value = serde_json::from_str(partition).ok()?;
                // A repartition topic's records are positioned by their upstream offsets.
                if p.get("src").is_some() {
                    return None;
                }
                let topic = p["topic"].as_str()?.to_owned();
                let number = i32::try_from(p["partition"].as_i64()?).ok()?;
                Some(((topic, number), i64::try_from(*offset).ok()?))
            })
            .collect()
    }

    /// A partition's state was restored (see `crate::runtime::changelog`): the positions
    /// absorbed from its inputs are those its state holds (`None`: as checkpointed here).
    pub fn restored(&mut self, connector: &str, scope: &str, positions: Option<&[(Value, u64)]>) {
        let Some(positions) = positions else {
            return;
        };
        self.absorbed.retain(|(source, partition), _| {
            **source != *connector || scope_of_position(partition).as_deref() != Some(scope)
        });
        for (partition, offset) in positions {
            self.absorbed.insert(
                (
                    Arc::from(connector),
                    Arc::from(partition.to_string().as_str()),
                ),
                *offset,
            );
        }
    }

    /// Drops the records of a batch the state already holds (a replay of what a checkpoint
    /// covers), and notes the others' positions as absorbed. Freshness is judged against the
    /// positions before the batch (its converted and refused records interleave), and, for the
    /// records `connector`'s own Kafka consumer read, against those before them in the same
    /// list too: a Kafka offset (or a repartition record's upstream offset) names one record,
    /// and after a crash the repartition topic holds records stage 1 produced again right
    /// behind their first copies, often in the same batch.
    pub fn absorb(
        &mut self,
        connector: &str,
        records: Vec<Record>,
        failed: Vec<(Record, RecordError)>,
    ) -> (Vec<Record>, Vec<(Record, RecordError)>) {
        self.changed = true;
        let mut taken = HashMap::new();
        let records: Vec<Record> = records
            .into_iter()
            .filter(|r| self.fresh(r, connector, &mut taken))
            .collect();
        let mut taken = HashMap::new();
        let failed: Vec<(Record, RecordError)> = failed
            .into_iter()
            .filter(|(r, _)| self.fresh(r, connector, &mut taken))
            .collect();
        for record in records.iter().chain(failed.iter().map(|(r, _)| r)) {
            self.note(record);
        }
        (records, failed)
    }

    /// `taken`: the newest position of each Kafka input taken from the list so far.
    fn fresh(&self, record: &Record, connector: &str, taken: &mut HashMap<Input, u64>) -> bool {
        // A repartition topic's watermark marker is never a replay of anything.
        if is_marker(record) {
            return true;
        }
        let Some(p) = record.position.as_ref() else {
            return true;
        };
        let input = (Arc::clone(&p.source), Arc::clone(&p.partition));
        if *p.source != *connector {
            // A local source's positions may repeat within a batch (records of one change).
            return self
                .absorbed
                .get(&input)
                .is_none_or(|done| p.offset > *done);
        }
        match taken.entry(input) {
            Entry::Occupied(mut newest) if p.offset > *newest.get() => {
                newest.insert(p.offset);
                true
            }
            Entry::Occupied(_) => false,
            Entry::Vacant(first) => {
                let fresh = self
                    .absorbed
                    .get(first.key())
                    .is_none_or(|done| p.offset > *done);
                if fresh {
                    first.insert(p.offset);
                }
                fresh
            }
        }
    }

    fn note(&mut self, record: &Record) {
        let Some(p) = record.position.as_ref().filter(|_| !is_marker(record)) else {
            return;
        };
        match self
            .absorbed
            .get_mut(&(Arc::clone(&p.source), Arc::clone(&p.partition)))
        {
            Some(done) => *done = (*done).max(p.offset),
            None => {
                tracing::debug!(source = %p.source, partition = %p.partition, position = p.offset, "First record of an input since the checkpoint.");
                self.absorbed
                    .insert((Arc::clone(&p.source), Arc::clone(&p.partition)), p.offset);
            }
        }
    }

    /// Notes that the state changed without input (a tick fired windows).
    pub fn touch(&mut self) {
        self.changed = true;
    }

    /// Holds flushed batches' acknowledgements until the next checkpoint.
    pub fn hold(&mut self, tokens: impl IntoIterator<Item = AckToken>) {
        self.unconfirmed.extend(tokens);
    }

    /// True when a checkpoint is due: something changed or waits for one, and the interval
    /// has passed.
    pub fn due(&self) -> bool {
        self.pending() && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
    }

    /// Something changed or waits for a checkpoint.
    pub fn pending(&self) -> bool {
        self.changed || !self.unconfirmed.is_empty()
    }

    /// True when a flush must be forced for a checkpoint (see [`CHECKPOINT_FORCE_AFTER`]).
    pub fn overdue(&self) -> bool {
        self.pending() && self.last_checkpoint.elapsed() >= CHECKPOINT_FORCE_AFTER
    }

    /// When to flush for a checkpoint, if one is pending: after the interval when the sink
    /// holds nothing unflushed (the flush costs nothing), else once overdue.
    pub fn next_due(&self, unflushed: bool) -> Option<tokio::time::Instant> {
        let wait = if unflushed {
            CHECKPOINT_FORCE_AFTER
        } else {
            CHECKPOINT_INTERVAL
        };
        self.pending()
            .then(|| tokio::time::Instant::from_std(self.last_checkpoint + wait))
    }

    /// The positions absorbed from `connector`'s own consumer, by input partition.
    fn positions_of(&self, connector: &str) -> Vec<(Value, u64)> {
        self.absorbed
            .iter()
            .filter(|((source, _), _)| **source == *connector)
            .filter_map(|((_, partition), offset)| {
                Some((serde_json::from_str(partition).ok()?, *offset))
            })
            .collect()
    }

    /// The positions absorbed, in the checkpoint's form.
    fn offsets(&self) -> SourceOffsets {
        let mut offsets = SourceOffsets::default();
        for ((source, partition), offset) in &self.absorbed {
            let partition: Value = serde_json::from_str(partition)
                .unwrap_or_else(|_| Value::String(partition.to_string()));
            offsets.insert(
                json!({ "source": &**source, "partition": partition }),
                json!({ "offset": offset }),
            );
        }
        offsets
    }

    /// The store the state is checkpointed in.
    pub fn store(&self) -> &Arc<StateStore> {
        &self.store
    }

    /// Starts a checkpoint of the chains' state with the positions absorbed (call it right
    /// after the sink flushed): the changes are recorded now, and written on a blocking thread
    /// while the sink goes on ([`StateStore::snapshot`]). The batches it covers are
    /// acknowledged once it is written ([`Self::settle`], [`Self::finish_writing`]). The
    /// checkpoint before must be settled first.
    pub fn checkpoint(&mut self, chains: &[Arc<Chain>], connector: &str) -> Result<(), StateError> {
        debug_assert!(
            self.writing.is_none(),
            "the previous checkpoint is settled first"
        );
        let offsets = self.offsets();
        let layout = self.layout.as_str();
        let snapshot = self.store.snapshot(|writer| {
            writer.put_meta(LAYOUT_META, layout.as_bytes())?;
            chains.iter().try_for_each(|c| c.write_state(writer))
        })?;
        let store = Arc::clone(&self.store);
        let task = match &self.changelog {
            None => tokio::task::spawn_blocking(move || {
                store
                    .write_snapshot(&offsets, snapshot)
                    .map_err(CheckpointError::from)
            }),
            Some(changelog) => {
                let changelog = Arc::clone(changelog);
                let positions = self.positions_of(connector);
                tokio::spawn(async move {
                    let mut snapshot = snapshot;
                    changelog.write(&store, &mut snapshot, &positions).await?;
                    let path = store.path().to_owned();
                    tokio::task::spawn_blocking(move || store.write_snapshot(&offsets, snapshot))
                        .await
                        .map_err(|e| StateError {
                            path,
                            message: format!("the checkpoint task failed: {e}"),
                        })?
                        .map_err(CheckpointError::from)
                })
            }
        };
        self.writing = Some(Writing {
            task,
            tokens: std::mem::take(&mut self.unconfirmed),
        });
        self.changed = false;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    /// A checkpoint is being written.
    pub fn writing(&self) -> bool {
        self.writing.is_some()
    }

    /// Waits until the checkpoint being written (if any) is, then finishes it
    /// ([`Self::finish_writing`]). `Ok(false)`: none was being written.
    pub async fn settle(&mut self) -> Result<bool, CheckpointError> {
        match self.writing.as_mut() {
            Some(w) => {
                let result = (&mut w.task).await;
                self.finish_writing(result).map(|()| true)
            }
            None => Ok(false),
        }
    }

    /// Acknowledges the batches the checkpoint just written holds (`result`: how its write
    /// task ended).
    pub fn finish_writing(
        &mut self,
        result: Result<Result<(), CheckpointError>, tokio::task::JoinError>,
    ) -> Result<(), CheckpointError> {
        let Some(writing) = self.writing.take() else {
            return Ok(());
        };
        result.map_err(|e| StateError {
            path: self.store.path().to_owned(),
            message: format!("the checkpoint task failed: {e}"),
        })??;
        for token in writing.tokens {
            token.ack();
        }
        Ok(())
    }
}

/// Completes when the checkpoint `state` is writing has been written (never when none is).
pub async fn written(
    state: &mut Option<SinkState>,
) -> Result<Result<(), CheckpointError>, tokio::task::JoinError> {
    match state.as_mut().and_then(|s| s.writing.as_mut()) {
        Some(w) => (&mut w.task).await,
        None => std::future::pending().await,
    }
}

/// Kafka offsets of the connector's own consumer, by (topic, partition).
pub type KafkaOffsets = HashMap<(String, i32), i64>;

/// A checkpoint being written, and what it settles.
#[derive(Debug)]
struct Writing {
    task: tokio::task::JoinHandle<Result<(), CheckpointError>>,
    /// The batches it holds.
    tokens: Vec<AckToken>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::record::{Payload, Position};

    fn at(source: &str, partition: &str, offset: u64) -> Record {
        let mut r = Record::new("clicks", Payload::null());
        r.position = Some(Position {
            source: Arc::from(source),
            partition: Arc::from(partition),
            offset,
        });
        r
    }

    /// Behind a repartition topic, records stage 1 produced again after a crash follow their
    /// first copies, often in the same batch: each counts once. A local source's positions,
    /// which may repeat within a batch, are judged against the batch's start only.
    #[test]
    fn a_record_read_twice_in_one_batch_counts_once() {
        let store = StateStore::in_memory().unwrap();
        let mut state = SinkState::open(store, Layout::PerPartition).unwrap();
        let repartition = r#"{"topic":"r","partition":0,"src":"clicks-1"}"#;
        let batch: Vec<Record> = [5, 6, 7, 5, 6, 7, 8]
            .into_iter()
            .map(|offset| at("sink", repartition, offset))
            .collect();
        let refused = vec![(
            at("sink", repartition, 4),
            RecordError::new(crate::api::error::Stage::ValueConverter, "c", "k", "m"),
        )];
        let (kept, failed) = state.absorb("sink", batch, refused);
        let offsets: Vec<u64> = kept
            .iter()
            .map(|r| r.position.as_ref().unwrap().offset)
            .collect();
        assert_eq!(offsets, [5, 6, 7, 8]);
        assert_eq!(
            failed.len(),
            1,
            "a refused record between them is still reported"
        );
        let local = r#"{"file":"a.jsonl"}"#;
        let (kept, _) = state.absorb(
            "sink",
            vec![at("files", local, 3), at("files", local, 3)],
            Vec::new(),
        );
        assert_eq!(
            kept.len(),
            2,
            "a local source's repeated position is not a replay"
        );
    }

    #[test]
    fn every_partition_absorbed_is_checkpointed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let chain = Arc::new(Chain::default());
        let mut state = SinkState::open(Arc::clone(&store), Layout::One).unwrap();
        for p in 0..4 {
            for offset in 1..=3u64 {
                let mut r = Record::new("clicks", Payload::null());
                r.position = Some(Position {
                    source: Arc::from("sink"),
                    partition: Arc::from(
                        crate::runtime::kafka_bus::intake::partition_key("clicks", p).to_string(),
                    ),
                    offset,
                });
                let (kept, _) = state.absorb("sink", vec![r.clone()], Vec::new());
                assert_eq!(kept.len(), 1);
                let (kept, _) = state.absorb("sink", vec![r], Vec::new());
                assert!(kept.is_empty(), "a replay is skipped");
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            state.checkpoint(&[chain], "sink").unwrap();
            state.settle().await.unwrap();
        });
        drop(state);
        let state = SinkState::open(Arc::clone(&store), Layout::One).unwrap();
        let offsets = state.kafka_offsets("sink");
        assert_eq!(offsets.len(), 4, "{offsets:?}");
        assert!(offsets.values().all(|o| *o == 3));
        // The same state read per partition (tasks.max changed) is refused, with what to do.
        let refused = SinkState::open(store, Layout::PerPartition).unwrap_err();
        assert!(refused.message.contains("set tasks.max back"), "{refused}");
    }
}
