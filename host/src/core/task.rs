//! What a connector implements: a [`Source`] or a [`Sink`], and the [`ConnectorPlugin`] that
//! builds one from config. The runtime drives them; see `runtime.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ack::OffsetTracker;
use super::bus::Bus;
use super::error::{ConnectorError, RecordError};
use super::metrics::ConnectorMetrics;
use super::record::Record;
use super::reporter::ErrorReporter;
use super::transform::Chain;
use crate::config::options::{ConfigKey, Options};
use crate::offsets::SourceOffsets;

/// Whether a connector produces or consumes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Sink => "sink",
        }
    }
}

/// What a plugin may use while building its task. Building must not do I/O: `headwater
/// validate` builds tasks too.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub connector: String,
    pub data_dir: PathBuf,
    /// `key.converter` and `value.converter` as configured (sinks that serialize use them).
    pub key_converter: crate::converters::Converter,
    pub value_converter: crate::converters::Converter,
    /// The worker's Kafka (`[kafka]`), for connectors that talk to Kafka themselves.
    pub kafka: Option<crate::kafka::KafkaSettings>,
}

/// A built, not yet running, task.
pub enum Task {
    Source(Box<dyn Source>),
    Sink(Box<dyn Sink>),
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Source(_) => f.write_str("Task::Source"),
            Self::Sink(_) => f.write_str("Task::Sink"),
        }
    }
}

/// A connector class: its names, its documented keys, and how to build its task.
pub trait ConnectorPlugin: Send + Sync {
    /// Headwater's class name, e.g. `headwater.file.FileSource`.
    fn class(&self) -> &'static str;
    /// Other accepted class names (Kafka Connect's or Debezium's).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn connector_type(&self) -> ConnectorType;
    /// Every connector-specific key, documented.
    fn keys(&self) -> &'static [ConfigKey];
    /// Pulls the connector's own keys out of `options` and builds the task. Problems are
    /// recorded in `options`; `None` when the config is invalid.
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task>;
}

/// A source task. `run` reads from its system until cancelled (or, for finite sources, until
/// done) and hands records to [`SourceContext::send`].
#[async_trait]
pub trait Source: Send {
    async fn run(&mut self, ctx: &mut SourceContext) -> Result<(), ConnectorError>;
}

/// A sink task. The runtime calls `write` with each batch, then `flush` whenever
/// `flush_due` says so, at `flush_deadline`, and before stopping; records are acknowledged to
/// their sources only after a successful flush.
#[async_trait]
pub trait Sink: Send {
    /// Prepares the sink (connects, recovers state). Called before the first write.
    async fn open(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Whether this sink already durably holds the record (after a crash between its commit
    /// and the source's offset commit). Such records are acknowledged without being written.
    fn already_written(&self, _record: &Record) -> bool {
        false
    }

    /// Takes a batch; may buffer. Returns the records it could not write, for the DLQ.
    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError>;

    /// Makes everything written so far durable.
    async fn flush(&mut self) -> Result<(), ConnectorError>;

    /// True when buffered data should be flushed now (a size threshold was reached).
    fn flush_due(&self) -> bool {
        true
    }

    /// The latest time buffered data may wait before a flush (a time threshold).
    fn flush_deadline(&self) -> Option<Instant> {
        None
    }
}

/// The requested state of a running connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
}

/// What a source task uses to emit records and read its committed offsets.
#[derive(Debug)]
pub struct SourceContext {
    pub(super) connector: Arc<str>,
    pub(super) committed: SourceOffsets,
    pub(super) chain: Arc<Chain>,
    pub(super) reporter: Arc<ErrorReporter>,
    pub(super) publisher: Publisher,
    pub(super) tracker: Arc<OffsetTracker>,
    pub(super) cancel: CancellationToken,
    pub(super) target: watch::Receiver<TargetState>,
    pub(super) metrics: Arc<ConnectorMetrics>,
    pub(super) topics: Arc<super::launch::TopicSet>,
    /// The connector's state store when its chain has stateful steps.
    pub(super) state: Option<Arc<crate::state::StateStore>>,
    /// Where offsets are persisted (by the checkpoint, when the chain has state).
    pub(super) offset_store: crate::offsets::OffsetStore,
    pub(super) last_checkpoint: std::time::Instant,
    /// The offsets of the last checkpoint.
    pub(super) checkpointed: crate::offsets::SourceOffsets,
    /// The chain's state has absorbed a batch the tracker does not know yet.
    pub(super) state_ahead: bool,
}

/// Where a source's records go: the embedded bus, or Kafka (`bus.kind = "kafka"`).
#[derive(Debug)]
pub enum Publisher {
    Embedded(Arc<Bus>),
    Kafka(Box<super::kafka_publish::KafkaPublisher>),
}

/// One poll's worth of source output.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub records: Vec<Record>,
    /// Records that could not be read (a malformed line), for the error policy.
    pub failed: Vec<(Record, RecordError)>,
    /// The source offsets (partition, offset) reached after this batch.
    pub offsets: Vec<(Value, Value)>,
    /// Bytes read, for metrics.
    pub bytes: u64,
}

impl SourceContext {
    pub fn connector(&self) -> &str {
        &self.connector
    }

    /// The offset committed for `partition` before this task started.
    pub fn committed(&self, partition: &Value) -> Option<&Value> {
        self.committed.get(partition)
    }

    /// The offset of `partition` as of the newest batch every sink has flushed: what a source
    /// may confirm to its upstream (a replication slot) without risking loss.
    pub fn acknowledged(&self, partition: &Value) -> Option<Value> {
        if self.state.is_some() {
            // With stateful transforms a restart resumes from the checkpoint: upstream must
            // keep everything after it.
            return self.checkpointed.get(partition).cloned();
        }
        self.tracker.acknowledged(partition)
    }

    /// Batches sent whose records are not all flushed yet.
    pub fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    /// Cancelled when the task must stop; select on it while waiting for data.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn metrics(&self) -> &ConnectorMetrics {
        &self.metrics
    }

    /// Waits while the connector is paused. Returns false if the task was cancelled meanwhile.
    async fn wait_until_started(&mut self) -> bool {
        loop {
            if *self.target.borrow_and_update() == TargetState::Started {
                return true;
            }
            tokio::select! {
                _ = self.cancel.cancelled() => return false,
                changed = self.target.changed() => if changed.is_err() { return false },
            }
        }
    }

    /// Runs the batch through the connector's transforms, reports failures per the error
    /// policy, and publishes the rest. Waits while paused and while sinks are busy.
    pub async fn send(&mut self, batch: SourceBatch) -> Result<(), ConnectorError> {
        if !self.wait_until_started().await {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let SourceBatch {
            records,
            mut failed,
            offsets,
            bytes,
        } = batch;
        self.metrics
            .add_in((records.len() + failed.len()) as u64, bytes);
        // From here until the batch is registered with the tracker, the state holds records
        // no offset accounts for: a checkpoint must not be taken (see `final_checkpoint`).
        self.state_ahead = self.state.is_some();
        let out = self.chain.apply_batch_async(records).await;
        if let Some(reason) = out.fatal {
            return Err(ConnectorError::fatal("transform chain", reason));
        }
        failed.extend(out.failed);
        self.reporter.report(failed).await?;
        self.metrics.add_dropped(out.dropped as u64);
        self.topics.note(&out.kept);
        let published = out.kept.len();
        // A stopped (or failed) sink may never make room: stopping must not wait for it. An
        // interrupted publish leaves its batch unacknowledged, to be replayed.
        let (discarded, refused) = match &self.publisher {
            Publisher::Embedded(bus) => tokio::select! {
                discarded = bus.publish(out.kept, offsets, &self.tracker) => (discarded, 0),
                _ = self.cancel.cancelled() => return Ok(()),
            },
            Publisher::Kafka(kafka) => {
                let Some((records, refused)) = kafka.serialize(out.kept, &self.cancel).await else {
                    return Ok(());
                };
                // Records the converters refuse are dead letters (counted as errors), written
                // before the batch's position can be committed.
                let count = refused.len();
                self.reporter.report(refused).await?;
                tokio::select! {
                    sent = kafka.send(records, offsets, &self.tracker) => sent?,
                    _ = self.cancel.cancelled() => return Ok(()),
                }
                (0, count)
            }
        };
        self.state_ahead = false;
        self.metrics.add_dropped(discarded as u64);
        self.metrics
            .add_out((published - discarded - refused) as u64);
        self.metrics.batch_latency.observe(started.elapsed());
        let since = self.last_checkpoint.elapsed();
        // Without waiting when the sinks are caught up; waiting for them (a Parquet sink
        // acknowledges at each file rotation) only once a checkpoint is long overdue.
        if since >= CHECKPOINT_INTERVAL && self.tracker.in_flight() == 0
            || since >= CHECKPOINT_FORCE_AFTER
        {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// After a failed run, before the source runs again (sources resume from
    /// [`Self::committed`]): from what the sinks acknowledged; with stateful transforms, from
    /// their last checkpoint, the state going back to it too, so the retry counts nothing twice.
    pub(super) fn rewind(&mut self) -> Result<(), ConnectorError> {
        let Some(store) = self.state.clone() else {
            self.committed = self.tracker.committed();
            return Ok(());
        };
        store
            .discard_spills()
            .and_then(|()| self.chain.restore_state(&store))
            .map_err(|e| ConnectorError::fatal("restoring transform state", e))?;
        self.committed = self.checkpointed.clone();
        self.state_ahead = false;
        Ok(())
    }

    /// A source with nothing to send calls this now and then (between polls): stateful
    /// transforms checkpoint what the last batches changed, so an idle stream does not keep
    /// its newest state only in memory.
    pub async fn idle(&mut self) -> Result<(), ConnectorError> {
        if self.state.is_some()
            && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
            && self.tracker.committed() != self.checkpointed
        {
            self.checkpoint().await?;
        }
        Ok(())
    }

    /// Checkpoints the chain's state (if it has any) with the offsets it corresponds to. Waits
    /// until every batch sent is acknowledged, so the state and the offsets describe the same
    /// records, and every window result emitted so far is in the sinks.
    pub(super) async fn checkpoint(&mut self) -> Result<(), ConnectorError> {
        let Some(store) = self.state.clone() else {
            return Ok(());
        };
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                _ = self.tracker.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = self.cancel.cancelled() => return Ok(()),
            }
        }
        self.write_checkpoint(store).await
    }

    /// The last checkpoint of a stopping task: taken if the sinks acknowledge everything sent
    /// within `wait`; otherwise the next start replays from the previous checkpoint.
    pub(super) async fn final_checkpoint(&mut self, wait: std::time::Duration) {
        let Some(store) = self.state.clone() else {
            return;
        };
        if self.state_ahead {
            tracing::info!(connector = %self.connector, "Stopped mid-batch; no final state checkpoint (the next start replays from the last one).");
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                _ = self.tracker.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(connector = %self.connector, "Records still unacknowledged at stop; no final state checkpoint (the next start replays from the last one).");
                    return;
                }
            }
        }
        if let Err(e) = self.write_checkpoint(store).await {
            tracing::error!(connector = %self.connector, error = %e, "Final state checkpoint failed; the next start replays from the last one.");
        }
    }

    async fn write_checkpoint(
        &mut self,
        store: Arc<crate::state::StateStore>,
    ) -> Result<(), ConnectorError> {
        let offsets = self.tracker.committed();
        self.checkpointed = offsets.clone();
        let chain = Arc::clone(&self.chain);
        let (file, name) = (self.offset_store.clone(), self.connector.to_string());
        tokio::task::spawn_blocking(move || {
            chain.checkpoint(&store, &offsets)?;
            // The offsets file follows (for the REST API and tools); the store stays the
            // source of truth on restart.
            if let Err(e) = file.save(&name, &offsets) {
                tracing::warn!(connector = %name, error = %e, "Could not write the offsets file after a checkpoint.");
            }
            Ok::<_, crate::state::StateError>(())
        })
        .await
        .map_err(|e| ConnectorError::fatal("checkpointing state", e.to_string()))?
        .map_err(|e| ConnectorError::retriable("checkpointing state", e))?;
        self.last_checkpoint = std::time::Instant::now();
        Ok(())
    }
}

/// How often a source with stateful transforms checkpoints their state with its offsets, when
/// its sinks have acknowledged everything sent. A restart replays the input since the last
/// checkpoint (window results from it may be emitted again, identical).
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// After this long without a checkpoint, the source waits for its sinks to take one.
const CHECKPOINT_FORCE_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
