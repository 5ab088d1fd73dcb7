//! The runtime's side of [`SourceContext`]: a source task's batches go through its transform
//! chain and error policy to the bus; with stateful transforms, checkpoints pair the chain's
//! state with the offsets the sinks acknowledged.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api::connector::{SourceBatch, SourceContext, TargetState};
use crate::api::error::ConnectorError;
use crate::api::error::RecordError;
use crate::api::metrics::ConnectorMetrics;
use crate::api::offsets::SourceOffsets;
use crate::api::record::Record;
use crate::runtime::ack::OffsetTracker;
use crate::runtime::bus::{Bus, Unsubscribed};
use crate::runtime::reporter::ErrorReporter;
use crate::transforms::chain::{Chain, ChainOutput};

/// A running source task's context.
#[derive(Debug)]
pub struct SourceTaskContext {
    pub(super) connector: Arc<str>,
    pub(super) committed: SourceOffsets,
    pub(super) chain: Arc<Chain>,
    pub(super) reporter: Arc<ErrorReporter>,
    pub(super) publisher: Publisher,
    pub(super) tracker: Arc<OffsetTracker>,
    pub(super) cancel: CancellationToken,
    pub(super) target: watch::Receiver<TargetState>,
    pub(super) metrics: Arc<ConnectorMetrics>,
    pub(super) topics: Arc<crate::runtime::launch::TopicSet>,
    /// The connector's state store when its chain has stateful steps.
    pub(super) state: Option<Arc<crate::state::StateStore>>,
    /// Where offsets are persisted (by the checkpoint, when the chain has state).
    pub(super) offset_store: crate::offsets::OffsetStore,
    pub(super) last_checkpoint: std::time::Instant,
    /// The offsets of the last checkpoint.
    pub(super) checkpointed: crate::api::offsets::SourceOffsets,
    /// The chain's state has absorbed a batch the tracker does not know yet.
    pub(super) state_ahead: bool,
    /// Signals sent through the REST API, until the source takes them.
    pub(super) signals: Option<tokio::sync::mpsc::Receiver<crate::api::connector::Signal>>,
    /// A bounded run (`headwater run --once`).
    pub(super) bounded: bool,
    /// `topic.unsubscribed`: what becomes of records no sink reads.
    pub(super) unsubscribed: Unsubscribed,
    /// Topics the source declared may go unread ([`SourceContext::may_go_unread`]).
    pub(super) may_go_unread: std::collections::HashSet<String>,
}

/// Where a source's records go: the embedded bus, or Kafka (`bus.kind = "kafka"`).
#[derive(Debug)]
pub enum Publisher {
    Embedded(Arc<Bus>),
    Kafka(Box<crate::runtime::kafka_bus::publish::KafkaPublisher>),
}

#[async_trait]
impl SourceContext for SourceTaskContext {
    fn connector(&self) -> &str {
        &self.connector
    }

    fn take_signals(
        &mut self,
    ) -> Option<tokio::sync::mpsc::Receiver<crate::api::connector::Signal>> {
        self.signals.take()
    }

    fn committed(&self, partition: &Value) -> Option<&Value> {
        self.committed.get(partition)
    }

    fn acknowledged(&self, partition: &Value) -> Option<Value> {
        if self.state.is_some() {
            // With stateful transforms a restart resumes from the checkpoint: upstream must
            // keep everything after it.
            return self.checkpointed.get(partition).cloned();
        }
        self.tracker.acknowledged(partition)
    }

    fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    fn bounded(&self) -> bool {
        self.bounded
    }

    fn metrics(&self) -> &Arc<ConnectorMetrics> {
        &self.metrics
    }

    fn may_go_unread(&mut self, topics: Vec<String>) {
        self.may_go_unread.extend(topics);
    }

    async fn send(&mut self, batch: SourceBatch) -> Result<(), ConnectorError> {
        if !self.wait_until_started().await {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let SourceBatch {
            records,
            failed,
            offsets,
            bytes,
        } = batch;
        self.metrics
            .add_in((records.len() + failed.len()) as u64, bytes);
        // From here until the batch is registered with the tracker, the state holds records
        // no offset accounts for: a checkpoint must not be taken (see `final_checkpoint`).
        self.state_ahead = self.state.is_some();
        let out = self.chain.apply_batch_async(records).await;
        if !self.publish(out, failed, offsets).await? {
            return Ok(());
        }
        if !self.publish_closes().await? {
            return Ok(());
        }
        self.state_ahead = false;
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

    async fn idle(&mut self) -> Result<(), ConnectorError> {
        if self.state.is_some()
            && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
            && self.tracker.committed() != self.checkpointed
        {
            self.checkpoint().await?;
        }
        Ok(())
    }
}

impl SourceTaskContext {
    /// Sends the chain's output of a batch (with the batch's offsets, and the records the
    /// source could not read) to the bus or Kafka. `false` when stopped meanwhile.
    async fn publish(
        &mut self,
        out: ChainOutput,
        mut failed: Vec<(Record, RecordError)>,
        offsets: Vec<(Value, Value)>,
    ) -> Result<bool, ConnectorError> {
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
            Publisher::Embedded(bus) => {
                if self.unsubscribed == Unsubscribed::Wait
                    && !self.wait_for_readers(bus, &out.kept).await?
                {
                    return Ok(false);
                }
                tokio::select! {
                    discarded = bus.publish(out.kept, offsets, &self.tracker) => (discarded, 0),
                    _ = self.cancel.cancelled() => return Ok(false),
                }
            }
            Publisher::Kafka(kafka) => {
                let Some((records, refused)) = kafka.serialize(out.kept, &self.cancel).await else {
                    return Ok(false);
                };
                // Records the converters refuse are dead letters (counted as errors), written
                // before the batch's position can be committed.
                let count = refused.len();
                self.reporter.report(refused).await?;
                tokio::select! {
                    sent = kafka.send(records, offsets, &self.tracker) => sent?,
                    _ = self.cancel.cancelled() => return Ok(false),
                }
                (0, count)
            }
        };
        self.metrics.add_dropped(discarded as u64);
        self.metrics
            .add_out((published - discarded - refused) as u64);
        Ok(true)
    }

    /// Holds a batch while a topic of it has no reader: nothing of it is published, so the
    /// source's offsets stay where they are and the source reads no further (a CDC slot keeps
    /// its WAL meanwhile). Its status and `headwater_connector_unread_topics` say which topics.
    /// `false` when stopped meanwhile. A bounded run's connectors are all started at once, so
    /// no reader can come: there the source fails instead.
    async fn wait_for_readers(
        &self,
        bus: &Bus,
        records: &[Record],
    ) -> Result<bool, ConnectorError> {
        let mut changes = bus.subscription_changes();
        loop {
            changes.borrow_and_update();
            let mut unread = bus.unread_topics(records);
            unread.retain(|t| !self.may_go_unread.contains(t));
            let waiting = !unread.is_empty();
            if waiting && self.bounded {
                return Err(ConnectorError::Config(
                    crate::runtime::bus::unread_in_bounded_run(&unread),
                ));
            }
            if self.metrics.set_unread_topics(unread.clone()) && waiting {
                tracing::warn!(
                    connector = %self.connector,
                    topics = ?unread,
                    "Source waiting for a sink: {}.",
                    crate::runtime::bus::waiting_message(&unread)
                );
            }
            if !waiting {
                return Ok(true);
            }
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return Ok(false) },
                _ = self.cancel.cancelled() => return Ok(false),
            }
        }
    }

    /// A window end shared by many groups closes a page per call: the rest follows, page by
    /// page, before any checkpoint (which must find every result published). `false` when
    /// stopped meanwhile.
    async fn publish_closes(&mut self) -> Result<bool, ConnectorError> {
        while self.chain.pending() {
            let out = self.chain.tick();
            if !self.publish(out, Vec::new(), Vec::new()).await? {
                return Ok(false);
            }
        }
        Ok(true)
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

    /// Checkpoints the chain's state (if it has any) with the offsets it corresponds to. Waits
    /// until every batch sent is acknowledged, so the state and the offsets describe the same
    /// records, and every window result emitted so far is in the sinks.
    pub(super) async fn checkpoint(&mut self) -> Result<(), ConnectorError> {
        let Some(store) = self.state.clone() else {
            return Ok(());
        };
        if !self.all_acknowledged().await {
            return Ok(());
        }
        self.write_checkpoint(store).await
    }

    /// Waits until the sinks acknowledged every batch sent; `false` when stopped meanwhile.
    async fn all_acknowledged(&self) -> bool {
        while self.tracker.in_flight() > 0 {
            tokio::select! {
                _ = self.tracker.changed() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                _ = self.cancel.cancelled() => return false,
            }
        }
        true
    }

    /// The end of a bounded input (see `super::bounded`): the chain's windows fire and their
    /// results are published; `Exhausted` is reported; then, once the sinks have acknowledged
    /// every batch (after the run ended their input), the last checkpoint is taken and `Done`
    /// reported.
    pub(super) async fn end_of_input(
        &mut self,
        progress: &watch::Sender<super::bounded::InputProgress>,
    ) -> Result<(), ConnectorError> {
        use super::bounded::InputProgress;
        self.state_ahead = self.state.is_some();
        while let Some(out) = self.chain.finish() {
            if !self.publish(out, Vec::new(), Vec::new()).await? || !self.publish_closes().await? {
                return Ok(());
            }
        }
        self.state_ahead = false;
        let _ = progress.send(InputProgress::Exhausted);
        self.checkpoint().await?;
        if self.cancel.is_cancelled() || !self.all_acknowledged().await {
            return Ok(());
        }
        let _ = progress.send(InputProgress::Done);
        Ok(())
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
