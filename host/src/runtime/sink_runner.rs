//! Running a sink task: deliveries in, transforms, writes, flushes on size and time, and
//! acknowledgements after each successful flush — with a stateful chain, after the checkpoint
//! that follows it (`crate::runtime::sink_state`).

use std::sync::Arc;

use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::api::connector::{Sink, TargetState};
use crate::api::error::ConnectorError;
use crate::api::metrics::{ConnectorMetrics, now_ms};
use crate::api::retry::Retry;
use crate::runtime::ack::AckToken;
use crate::runtime::bounded::{BoundedSink, EndInput, InputProgress};
use crate::runtime::bus::{Delivery, Subscription};
use crate::runtime::host::{Shared, fail, rejoin, retry_later};
use crate::runtime::launch::TopicSet;
use crate::runtime::partitioned::{PartitionError, PartitionedChains};
use crate::runtime::reporter::ErrorReporter;
use crate::runtime::sink_state::CheckpointError;
use crate::runtime::sink_state::{SinkState, written};
use crate::runtime::sink_tasks::Siblings;
use crate::transforms::chain::{Chain, ChainOutput};

/// How long a stopping sink may take for its last flush.
const FINAL_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A sink's transform chain: one for all its input, or one per input partition (see
/// `crate::runtime::partitioned`).
pub(super) enum SinkChain {
    One(Arc<Chain>),
    PerPartition { chains: PartitionedChains },
}

impl SinkChain {
    async fn apply(&mut self, records: Vec<crate::api::record::Record>) -> ChainOutput {
        match self {
            Self::One(chain) => chain.apply_batch_async(records).await,
            Self::PerPartition { chains, .. } => {
                chains.apply(records).await.unwrap_or_else(|e| ChainOutput {
                    fatal: Some(e.to_string()),
                    ..ChainOutput::default()
                })
            }
        }
    }

    fn tick(&mut self) -> ChainOutput {
        match self {
            Self::One(chain) => chain.tick(),
            Self::PerPartition { chains, .. } => chains.tick().unwrap_or_else(fatal),
        }
    }

    /// The end of a bounded input (see [`Chain::finish`]), chain by chain.
    fn finish(&mut self) -> Option<ChainOutput> {
        match self {
            Self::One(chain) => chain.finish(),
            Self::PerPartition { chains, .. } => chains.all().iter().find_map(|c| c.finish()),
        }
    }

    fn pending(&self) -> bool {
        match self {
            Self::One(chain) => chain.pending(),
            Self::PerPartition { chains, .. } => chains.pending(),
        }
    }

    /// Restores the state of partitions assigned since the last call, before any of their
    /// records is processed, and takes the input positions it holds.
    async fn restore_assigned(
        &mut self,
        state: &mut SinkState,
        name: &str,
        metrics: &ConnectorMetrics,
    ) -> Result<(), ConnectorError> {
        let Self::PerPartition { chains, .. } = self else {
            return Ok(());
        };
        if !chains.restores_pending() {
            return Ok(());
        }
        // A checkpoint being written would put back the positions the restore replaces.
        self.settle(state).await?;
        let Self::PerPartition { chains, .. } = self else {
            return Ok(());
        };
        let restored = chains
            .restore_assigned(metrics)
            .await
            .map_err(|e| match &e {
                PartitionError::Changelog { source, .. } if !source.lost => {
                    ConnectorError::retriable("restoring a partition's state", e)
                }
                _ => ConnectorError::fatal("restoring a partition's state", e),
            })?;
        for partition in restored {
            state.restored(name, &partition.scope, partition.positions.as_deref());
        }
        Ok(())
    }

    /// Lets go of revoked partitions' chains when they hold nothing a checkpoint lacks.
    fn release_revoked(&mut self, state: &SinkState) {
        if let Self::PerPartition { chains, .. } = self
            && !state.pending()
            && !state.writing()
        {
            chains.release_revoked();
        }
    }

    /// Starts a checkpoint of the state of every chain, once the one before is written (see
    /// [`SinkState::checkpoint`]).
    async fn checkpoint(
        &mut self,
        state: &mut SinkState,
        name: &str,
    ) -> Result<(), ConnectorError> {
        self.settle(state).await?;
        let chains = match self {
            Self::One(chain) => vec![Arc::clone(chain)],
            Self::PerPartition { chains, .. } => chains.all(),
        };
        state
            .checkpoint(&chains, name)
            .map_err(|e| ConnectorError::retriable("checkpointing state", e))
    }

    /// Waits for the checkpoint being written, if any, and finishes it.
    async fn settle(&mut self, state: &mut SinkState) -> Result<(), ConnectorError> {
        match state.settle().await {
            Ok(false) => Ok(()),
            written => self.written(state, written.map(drop)),
        }
    }

    /// A checkpoint was written (or failed): revoked partitions' chains can go.
    fn written(
        &mut self,
        state: &SinkState,
        written: Result<(), CheckpointError>,
    ) -> Result<(), ConnectorError> {
        written.map_err(|e| match e.fenced() {
            true => ConnectorError::rejoin("checkpointing state", e),
            false => ConnectorError::retriable("checkpointing state", e),
        })?;
        self.release_revoked(state);
        Ok(())
    }
}

/// A chain output that stops the task with the reason.
fn fatal(e: PartitionError) -> ChainOutput {
    ChainOutput {
        fatal: Some(e.to_string()),
        ..ChainOutput::default()
    }
}

/// What a sink has written and not yet flushed: its records' event times (a flush makes them
/// durable: their end-to-end latency and the sink's freshness are measured then) and when the
/// oldest arrived.
#[derive(Debug, Default)]
pub(super) struct Unflushed {
    /// Event times and how many records in a row had each (records of a transaction, or
    /// produced in the same millisecond, share one entry).
    event_ms: Vec<(i64, u64)>,
    since_ms: Option<i64>,
}

impl Unflushed {
    fn written(&mut self, event_ms: impl Iterator<Item = i64>) {
        self.since_ms.get_or_insert_with(now_ms);
        for t in event_ms {
            match self.event_ms.last_mut() {
                Some((last, n)) if *last == t => *n += 1,
                _ => self.event_ms.push((t, 1)),
            }
        }
    }

    /// Everything written is durable now.
    fn flushed(&mut self, metrics: &ConnectorMetrics, task: usize) {
        let now = now_ms();
        if let Some(newest) = self.event_ms.iter().map(|(t, _)| *t).max() {
            metrics.note_durable_event(newest);
        }
        metrics.end_to_end_latency.observe_ms(
            self.event_ms
                .iter()
                .map(|(t, n)| (now.saturating_sub(*t), *n)),
        );
        // The capacity stays for the next records.
        self.event_ms.clear();
        self.since_ms = None;
        metrics.set_unflushed_since(task, None);
    }
}

pub(super) struct SinkRunner {
    pub(super) name: String,
    /// Which of the connector's tasks this is (`tasks.max`; 0 when it runs one).
    pub(super) task: usize,
    /// What the connector's tasks share: when one fails, the others flush, commit and stop
    /// too (the connector is FAILED or restarting as a whole), and only the first reports.
    pub(super) siblings: Arc<Siblings>,
    /// Cancelled when the connector stops (`cancel` is also cancelled when a sibling fails).
    pub(super) stopped: CancellationToken,
    pub(super) shared: Arc<Shared>,
    pub(super) chain: SinkChain,
    pub(super) reporter: Arc<ErrorReporter>,
    pub(super) metrics: Arc<ConnectorMetrics>,
    pub(super) topics: Arc<TopicSet>,
    pub(super) cancel: CancellationToken,
    pub(super) target: watch::Receiver<TargetState>,
    /// Tokens of records written but not yet flushed.
    pub(super) held: Vec<AckToken>,
    /// The records the held tokens cover, for freshness and latency metrics.
    pub(super) unflushed: Unflushed,
    /// Notified when the sink must flush now (Kafka partitions are being revoked).
    pub(super) flush_now: Arc<Notify>,
    /// Cancelled when this runner has finished: flushed what it could, or failed.
    pub(super) done: CancellationToken,
    /// Stops the sink's Kafka consumer (cancelled when the sink fails).
    pub(super) intake_stop: CancellationToken,
    /// With a stateful chain: what it absorbed and the acknowledgements awaiting a checkpoint.
    pub(super) state: Option<SinkState>,
    /// In a bounded run: when the input ends, and how far the sink got (`super::bounded`).
    pub(super) bounded: Option<BoundedSink>,
}

/// How often a stateful chain is told that processing time moved on (idle inputs).
const TICK: std::time::Duration = std::time::Duration::from_secs(1);

impl SinkRunner {
    pub(super) async fn run(mut self, mut sink: Box<dyn Sink>, mut sub: Subscription) {
        let done = self.done.clone();
        self.run_inner(&mut sink, &mut sub).await;
        // A checkpoint still being written (the last flush timed out) holds the state store
        // open: the task started next could not open it.
        if let Some(state) = self.state.as_mut()
            && let Err(e) = state.settle().await
        {
            tracing::warn!(connector = %self.name, error = %e, "The last checkpoint could not be written.");
        }
        done.cancel();
    }

    async fn run_inner(&mut self, sink: &mut Box<dyn Sink>, sub: &mut Subscription) {
        // Stopped because another of the connector's tasks failed: what this one holds is
        // flushed, but its subscription is kept until the connector stops, as a failed task's
        // is (below).
        let mut sibling_failed = false;
        let result = match self.serve(sink, sub).await {
            // Graceful part: no new deliveries, take what is queued, flush it.
            Ok(()) => {
                sibling_failed = self.siblings.failed() && !self.stopped.is_cancelled();
                if !sibling_failed {
                    self.shared.bus.unsubscribe(sub.id);
                    sub.inbox.close();
                }
                // A destination that cannot take the last flush (a broker down) must not hold
                // the shutdown: what is not flushed is not acknowledged, so it is replayed.
                match tokio::time::timeout(FINAL_FLUSH_TIMEOUT, self.drain(sink, sub)).await {
                    Ok(drained) => drained,
                    Err(_) => {
                        tracing::warn!(
                            connector = %self.name,
                            timeout_s = FINAL_FLUSH_TIMEOUT.as_secs(),
                            "The sink did not flush in time while stopping; its unflushed records will be replayed."
                        );
                        Ok(())
                    }
                }
            }
            Err(e) => Err(e),
        };
        if sibling_failed && result.is_ok() {
            self.done.cancel();
            self.stopped.cancelled().await;
            self.shared.bus.unsubscribe(sub.id);
            return;
        }
        if let Err(e) = result {
            // A checkpoint being written still holds what it holds: its batches are
            // acknowledged, the rest is replayed.
            if let Some(state) = self.state.as_mut()
                && let Err(e) = self.chain.settle(state).await
            {
                tracing::warn!(connector = %self.name, error = %e, "The last checkpoint could not be written.");
            }
            if !self.siblings.first_failure() {
                // Another task failed first and reported it (one restart, one status).
                tracing::warn!(connector = %self.name, task = self.task, error = %e.trace(), "The task failed while stopping with the connector's other tasks.");
            } else if e.is_rejoin() {
                rejoin(&self.shared, &self.name, &e);
            } else if e.is_retriable()
                && self.bounded.is_none()
                // A sink none of whose tasks reached its destination fails, as a Kafka Connect
                // task whose start() throws does; one that lost it, or is restarting after
                // losing it, waits for it.
                && (self.siblings.any_opened()
                    || self.shared.is_recovering(&self.name))
            {
                retry_later(&self.shared, &self.name, &e);
            } else {
                fail(&self.shared, &self.name, &e);
            }
            // Its Kafka consumer commits what was acknowledged and leaves the group at once:
            // the partitions go on on the other hosts instead of waiting for this one.
            self.done.cancel();
            self.intake_stop.cancel();
            // A failed sink keeps its subscription without reading it: its inbox fills and
            // its sources wait, so nothing is acknowledged past what it wrote. Unsubscribing
            // would let sources commit records no sink received.
            self.stopped.cancelled().await;
            self.shared.bus.unsubscribe(sub.id);
        }
    }

    async fn serve(
        &mut self,
        sink: &mut Box<dyn Sink>,
        sub: &mut Subscription,
    ) -> Result<(), ConnectorError> {
        let mut retry = Retry::new(self.reporter.policy());
        loop {
            match sink.open().await {
                Ok(()) => break,
                Err(e) => retry.backoff(e, &self.cancel, "opening sink").await?,
            }
        }
        self.siblings.note_opened();
        self.shared.recovered(&self.name);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut end_of_input = self.bounded.as_ref().map(|b| b.end_input.clone());
        loop {
            let started = *self.target.borrow_and_update() == TargetState::Started;
            if !started
                && (!self.held.is_empty() || self.state.as_ref().is_some_and(SinkState::pending))
            {
                // Paused: make what we hold durable, then idle.
                self.flush(sink).await?;
            }
            let deadline = sink.flush_deadline().filter(|_| !self.held.is_empty());
            // A stateful sink flushes (and checkpoints) once a checkpoint is due, so its
            // batches are acknowledged even when the destination batches for longer.
            let unflushed = !self.held.is_empty();
            let checkpoint = self.state.as_ref().and_then(|s| s.next_due(unflushed));
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Ok(()),
                changed = self.target.changed() => if changed.is_err() { return Ok(()) },
                // Before the next delivery: under load one is always ready.
                result = written(&mut self.state) => {
                    if let Some(state) = self.state.as_mut() {
                        let written = state.finish_writing(result);
                        self.chain.written(state, written)?;
                    }
                }
                delivery = sub.inbox.recv(), if started => match delivery {
                    Some(d) => self.handle(sink, d).await?,
                    None => return Ok(()),
                },
                _ = sleep_until_opt(deadline), if deadline.is_some() => self.flush(sink).await?,
                _ = sleep_until_opt(checkpoint), if checkpoint.is_some() => self.flush(sink).await?,
                _ = self.flush_now.notified() => self.drain(sink, sub).await?,
                stage = input_ended(&mut end_of_input), if end_of_input.is_some() => {
                    self.end_input(stage, sink, sub).await?;
                    if stage == EndInput::Finish {
                        end_of_input = None;
                    }
                }
                _ = tick.tick(), if started && self.state.is_some() => {
                    // A close a checkpoint left under way (after a restart) finishes here too.
                    self.tick(sink).await?;
                    self.finish_closes(sink).await?;
                }
            }
        }
    }

    async fn drain(
        &mut self,
        sink: &mut Box<dyn Sink>,
        sub: &mut Subscription,
    ) -> Result<(), ConnectorError> {
        while let Ok(d) = sub.inbox.try_recv() {
            self.handle(sink, d).await?;
        }
        if let Some(state) = self.state.as_ref() {
            // Revoked partitions with nothing to checkpoint leave memory now.
            self.chain.release_revoked(state);
        }
        if !self.held.is_empty() || self.state.as_ref().is_some_and(SinkState::pending) {
            self.flush(sink).await?;
            if let Some(state) = self.state.as_mut()
                && state.pending()
            {
                // Partitions being revoked, or the task stopping: what was flushed is
                // checkpointed now, not at the next interval.
                self.chain.checkpoint(state, &self.name).await?;
            }
        }
        if let Some(state) = self.state.as_mut() {
            self.chain.settle(state).await?;
        }
        Ok(())
    }

    /// The end of a bounded input (see `super::bounded`): every source has sent everything, so
    /// the inbox holds the rest; the chain's windows fire on all of it, and everything is
    /// flushed and checkpointed, which acknowledges the sources' batches.
    async fn end_input(
        &mut self,
        stage: EndInput,
        sink: &mut Box<dyn Sink>,
        sub: &mut Subscription,
    ) -> Result<(), ConnectorError> {
        while let Ok(d) = sub.inbox.try_recv() {
            self.handle(sink, d).await?;
        }
        if stage == EndInput::Drain {
            if let Some(bounded) = &self.bounded {
                let _ = bounded.progress.send(InputProgress::Exhausted);
            }
            return Ok(());
        }
        while let Some(mut out) = self.chain.finish() {
            if let Some(state) = self.state.as_mut() {
                state.touch();
            }
            // Results a resumed run already wrote (see `Operator::finish`).
            out.kept.retain(|r| !sink.already_written(r));
            self.write(sink, out, std::time::Instant::now()).await?;
            self.finish_closes(sink).await?;
        }
        self.flush(sink).await?;
        if let Some(state) = self.state.as_mut() {
            self.chain.checkpoint(state, &self.name).await?;
            self.chain.settle(state).await?;
        }
        let mut retry = Retry::new(self.reporter.policy());
        loop {
            match sink.end_input().await {
                Ok(()) => break,
                Err(e) => {
                    retry
                        .backoff(e, &self.cancel, "publishing the run's output")
                        .await?
                }
            }
        }
        if let Some(bounded) = &self.bounded {
            let _ = bounded.progress.send(InputProgress::Done);
        }
        Ok(())
    }

    /// Lets a stateful chain act on processing time (idle inputs let the watermark move).
    async fn tick(&mut self, sink: &mut Box<dyn Sink>) -> Result<(), ConnectorError> {
        if let Some(state) = self.state.as_mut() {
            self.chain
                .restore_assigned(state, &self.name, &self.metrics)
                .await?;
        }
        let mut out = self.chain.tick();
        if out.fatal.is_none() && out.kept.is_empty() && out.failed.is_empty() {
            return Ok(());
        }
        // Final results a resumed bounded run already wrote (see `Operator::finish`).
        out.kept.retain(|r| !sink.already_written(r));
        if let Some(state) = self.state.as_mut() {
            state.touch();
        }
        self.write(sink, out, std::time::Instant::now()).await
    }

    async fn handle(
        &mut self,
        sink: &mut Box<dyn Sink>,
        delivery: Delivery,
    ) -> Result<(), ConnectorError> {
        let started = std::time::Instant::now();
        let Delivery {
            records,
            failed,
            ack,
        } = delivery;
        let (records, failed) = match self.state.as_mut() {
            // Records a checkpoint already holds (a local source replaying) are skipped.
            Some(state) => {
                self.chain
                    .restore_assigned(state, &self.name, &self.metrics)
                    .await?;
                state.absorb(&self.name, records, failed)
            }
            None => (records, failed),
        };
        self.reporter.report_from(self.task, failed).await?;
        self.topics.note(&records);
        let bytes: usize = records.iter().map(|r| r.approx_size()).sum();
        self.metrics.add_in(records.len() as u64, bytes as u64);
        let before = records.len();
        let mut records = records;
        // Every record must reach the state, even one whose output the sink already has.
        // (`retain` moves no record while none is removed, the common case.)
        if self.state.is_none() {
            records.retain(|r| !sink.already_written(r));
        }
        self.metrics.add_dropped((before - records.len()) as u64);
        let mut out = self.chain.apply(records).await;
        if self.state.is_some() {
            let before = out.kept.len();
            out.kept.retain(|r| !sink.already_written(r));
            self.metrics.add_dropped((before - out.kept.len()) as u64);
        }
        self.held.push(ack);
        self.write(sink, out, started).await?;
        self.finish_closes(sink).await
    }

    /// A window end shared by many groups closes a page per call: the rest is written now,
    /// page by page, before the next batch is taken.
    async fn finish_closes(&mut self, sink: &mut Box<dyn Sink>) -> Result<(), ConnectorError> {
        while self.chain.pending() && !self.cancel.is_cancelled() {
            self.tick(sink).await?;
        }
        Ok(())
    }

    /// Writes what the chain kept, reports what failed, and flushes when the sink wants it.
    async fn write(
        &mut self,
        sink: &mut Box<dyn Sink>,
        out: ChainOutput,
        started: std::time::Instant,
    ) -> Result<(), ConnectorError> {
        if let Some(reason) = out.fatal {
            return Err(ConnectorError::fatal("transform chain", reason));
        }
        self.reporter.report_from(self.task, out.failed).await?;
        self.metrics.add_dropped(out.dropped as u64);
        let written = out.kept.len();
        if written > 0 {
            self.unflushed
                .written(out.kept.iter().filter_map(|r| r.timestamp));
            self.metrics
                .set_unflushed_since(self.task, self.unflushed.since_ms);
        }
        let failed = sink.write(out.kept).await?;
        self.metrics.add_out((written - failed.len()) as u64);
        self.reporter.report_from(self.task, failed).await?;
        self.metrics.batch_latency.observe(started.elapsed());
        if sink.flush_due() || self.state.as_ref().is_some_and(SinkState::overdue) {
            self.flush(sink).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, sink: &mut Box<dyn Sink>) -> Result<(), ConnectorError> {
        let started = std::time::Instant::now();
        let mut retry = Retry::new(self.reporter.policy());
        loop {
            match sink.flush().await {
                Ok(()) => break,
                Err(e) => retry.backoff(e, &self.cancel, "flushing sink").await?,
            }
        }
        self.metrics.flush_latency.observe(started.elapsed());
        if let Some(files) = sink.files_committed() {
            self.metrics.set_files_committed(self.task, files);
        }
        self.unflushed.flushed(&self.metrics, self.task);
        let Some(state) = self.state.as_mut() else {
            for token in self.held.drain(..) {
                token.ack();
            }
            return Ok(());
        };
        // Everything the state emitted is in the destination now: the moment a checkpoint
        // may be taken. The batches are acknowledged once one holds them.
        state.hold(self.held.drain(..));
        if state.due() {
            self.chain.checkpoint(state, &self.name).await?;
        }
        Ok(())
    }
}

/// Resolves when a bounded run moves the end of the sink's input on (never without one).
async fn input_ended(end: &mut Option<watch::Receiver<EndInput>>) -> EndInput {
    if let Some(end) = end
        && end.changed().await.is_ok()
    {
        return *end.borrow_and_update();
    }
    std::future::pending().await
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
