//! The runtime: starts, stops, pauses and restarts connectors, and shuts down gracefully.
//!
//! Lifetimes: a sink subscribes to the bus when it starts, so it never misses records of a
//! source started after it; stopping a sink unsubscribes it, drains its inbox, flushes and acks.
//! A source task runs with a committer beside it that persists the tracker's committed offsets.
//! On shutdown, sources stop first, then sinks flush what they hold, then the committers write
//! the final offsets: a clean stop replays nothing.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::ack::OffsetTracker;
use super::bus::Bus;
use super::error::ConnectorError;
use super::metrics::{ConnectorMetrics, MetricsSnapshot};
use super::registry::Registry;
use super::reporter::ErrorReporter;
use super::sink_runner::SinkRunner;
use super::source_runner::{commit_loop, run_source};
use super::status::{ConnectorStatus, State, StatusBoard};
use super::task::{ConnectorType, SourceContext, TargetState, Task};
use crate::config::common::{Prepared, prepare};
use crate::config::connector::{ConfigErrors, ConnectorConfig};
use crate::offsets::OffsetStore;

/// How long a stopping source waits for sinks to acknowledge what it already sent, so its final
/// offsets include them. Whatever is not acknowledged by then is replayed on the next start.
const SOURCE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

struct SourceHandle {
    run: JoinHandle<()>,
    committer: JoinHandle<()>,
    stop_committer: CancellationToken,
    tracker: Arc<OffsetTracker>,
}

enum Handle {
    Source(SourceHandle),
    Sink(JoinHandle<()>),
}

struct Running {
    config: ConnectorConfig,
    cancel: CancellationToken,
    target: watch::Sender<TargetState>,
    handle: Handle,
}

pub(super) struct Shared {
    pub(super) data_dir: PathBuf,
    pub(super) registry: Registry,
    pub(super) bus: Arc<Bus>,
    pub(super) offsets: OffsetStore,
    pub(super) status: StatusBoard,
    pub(super) metrics: Mutex<HashMap<String, Arc<ConnectorMetrics>>>,
}

/// Runs connectors. One per process.
pub struct Runtime {
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<BTreeMap<String, Running>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.shared.data_dir)
            .finish()
    }
}

impl Runtime {
    pub fn new(data_dir: &Path, registry: Registry) -> Self {
        Self {
            shared: Arc::new(Shared {
                data_dir: data_dir.to_path_buf(),
                registry,
                bus: Bus::new(),
                offsets: OffsetStore::new(data_dir),
                status: StatusBoard::default(),
                metrics: Mutex::new(HashMap::new()),
            }),
            running: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// Validates a config without running it.
    pub fn validate(&self, config: &ConnectorConfig) -> Result<Prepared, ConfigErrors> {
        prepare(&self.shared.registry, config, &self.shared.data_dir)
    }

    /// Starts a connector, or restarts it if its config changed. An invalid config leaves a
    /// running instance of the same connector untouched.
    pub async fn apply(&self, config: ConnectorConfig) -> Result<Applied, ConfigErrors> {
        let mut running = self.running.lock().await;
        if running
            .get(&config.name)
            .is_some_and(|r| r.config == config)
        {
            return Ok(Applied::Unchanged);
        }
        let prepared = self.validate(&config)?;
        for key in &prepared.unused_keys {
            tracing::warn!(connector = %config.name, key = %key, "Unknown configuration key; it is ignored.");
        }
        let name = config.name.clone();
        let old = running.remove(&name);
        let replaced_failed_sink = old.is_some()
            && self.is_failed(&name)
            && prepared.connector_type == ConnectorType::Sink;
        let applied = if old.is_some() {
            self.shared.status.set(&name, State::Restarting, None);
            Applied::Updated
        } else {
            Applied::Created
        };
        // A new sink subscribes before the old one stops, so its topics are never without a
        // subscriber (records published meanwhile may reach both: at-least-once, never lost).
        // A new source starts after the old one wrote its final offsets.
        let old = match (old, prepared.connector_type) {
            (Some(old), ConnectorType::Source) => {
                stop_one(old).await;
                None
            }
            (old, _) => old,
        };
        let started = self.start(prepared).await;
        if let Some(old) = old {
            stop_one(old).await;
        }
        match started {
            Ok(started) => {
                self.shared.status.set(&name, State::Running, None);
                running.insert(name.clone(), started);
                tracing::info!(connector = %name, action = ?applied, "Connector started.");
            }
            Err(e) => self.fail(&name, &e),
        }
        if replaced_failed_sink {
            self.replay_unacknowledged(&mut running).await;
        }
        Ok(applied)
    }

    /// Records that a connector's config is invalid (for status), without touching a running
    /// instance.
    pub fn report_invalid(&self, name: &str, errors: &ConfigErrors) {
        tracing::error!(connector = %name, error = %errors, "Invalid connector config.");
        if self
            .shared
            .status
            .get(name)
            .is_none_or(|s| s.state != State::Running)
        {
            self.shared
                .status
                .set(name, State::Failed, Some(errors.to_string()));
        }
    }

    /// Stops and forgets a connector. Its offsets stay (as in Kafka Connect).
    pub async fn remove(&self, name: &str) -> bool {
        let mut running = self.running.lock().await;
        let old = running.remove(name);
        let found = old.is_some();
        let failed_sink = self.is_failed(name)
            && old
                .as_ref()
                .is_some_and(|r| matches!(r.handle, Handle::Sink(_)));
        if let Some(old) = old {
            stop_one(old).await;
            tracing::info!(connector = %name, "Connector stopped.");
        }
        self.shared.status.remove(name);
        if failed_sink {
            self.replay_unacknowledged(&mut running).await;
        }
        found
    }

    fn is_failed(&self, name: &str) -> bool {
        self.shared
            .status
            .get(name)
            .is_some_and(|s| s.state == State::Failed)
    }

    /// After a failed sink is replaced or removed, the batches it held will never be
    /// acknowledged. Sources with unacknowledged batches restart from their committed offsets,
    /// so those records reach the sinks now subscribed (sinks that already have some of them
    /// see them again: at-least-once).
    async fn replay_unacknowledged(&self, running: &mut BTreeMap<String, Running>) {
        let stalled: Vec<String> = running
            .iter()
            .filter(|(_, r)| matches!(&r.handle, Handle::Source(h) if h.tracker.in_flight() > 0))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stalled {
            let Some(old) = running.remove(&name) else {
                continue;
            };
            let config = old.config.clone();
            stop_one(old).await;
            tracing::info!(connector = %name, "Replaying records a failed sink never acknowledged.");
            let started = match self.validate(&config) {
                Ok(prepared) => self.start(prepared).await,
                Err(errors) => {
                    self.report_invalid(&name, &errors);
                    continue;
                }
            };
            match started {
                Ok(r) => {
                    running.insert(name, r);
                }
                Err(e) => self.fail(&name, &e),
            }
        }
    }

    pub async fn pause(&self, name: &str) -> bool {
        self.set_target(name, TargetState::Paused).await
    }

    pub async fn resume(&self, name: &str) -> bool {
        self.set_target(name, TargetState::Started).await
    }

    async fn set_target(&self, name: &str, target: TargetState) -> bool {
        let running = self.running.lock().await;
        let Some(r) = running.get(name) else {
            return false;
        };
        r.target.send_replace(target);
        if self
            .shared
            .status
            .get(name)
            .is_some_and(|s| s.state != State::Failed)
        {
            let state = match target {
                TargetState::Started => State::Running,
                TargetState::Paused => State::Paused,
            };
            self.shared.status.set(name, state, None);
        }
        true
    }

    pub fn status(&self, name: &str) -> Option<ConnectorStatus> {
        self.shared.status.get(name)
    }

    pub fn statuses(&self) -> BTreeMap<String, ConnectorStatus> {
        self.shared.status.all()
    }

    pub fn metrics(&self, name: &str) -> Option<MetricsSnapshot> {
        let metrics = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        metrics.get(name).map(|m| m.snapshot())
    }

    /// Names of running connectors and the config each runs with.
    pub async fn configs(&self) -> BTreeMap<String, ConnectorConfig> {
        let running = self.running.lock().await;
        running
            .iter()
            .map(|(k, v)| (k.clone(), v.config.clone()))
            .collect()
    }

    /// Stops everything: sources, then sinks (final flush), then the offset committers.
    pub async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        let all: Vec<(String, Running)> = std::mem::take(&mut *running).into_iter().collect();
        let (sources, sinks): (Vec<_>, Vec<_>) = all
            .into_iter()
            .partition(|(_, r)| matches!(r.handle, Handle::Source(_)));
        let mut committers = Vec::new();
        for (_, r) in &sources {
            r.cancel.cancel();
        }
        for (name, r) in sources {
            if let Handle::Source(h) = r.handle {
                await_task(&name, h.run).await;
                committers.push((name, h.committer, h.stop_committer));
            }
        }
        for (_, r) in &sinks {
            r.cancel.cancel();
        }
        for (name, r) in sinks {
            if let Handle::Sink(h) = r.handle {
                await_task(&name, h).await;
            }
        }
        for (name, committer, stop) in committers {
            stop.cancel();
            await_task(&name, committer).await;
        }
        tracing::info!("All connectors stopped.");
    }

    fn metrics_for(&self, name: &str) -> Arc<ConnectorMetrics> {
        let mut metrics = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(metrics.entry(name.to_owned()).or_default())
    }

    async fn start(&self, prepared: Prepared) -> Result<Running, ConnectorError> {
        let name = prepared.config.name.clone();
        let cancel = CancellationToken::new();
        let (target_tx, target_rx) = watch::channel(TargetState::Started);
        let metrics = self.metrics_for(&name);
        let reporter = Arc::new(ErrorReporter::new(
            Arc::from(name.as_str()),
            prepared.policy.clone(),
            &self.shared.data_dir,
            Arc::clone(&metrics),
        ));
        let chain = Arc::new(prepared.chain);
        self.shared.status.set(&name, State::Running, None);
        let handle = match prepared.task {
            Task::Sink(sink) => {
                let selector = prepared
                    .topics
                    .expect("prepare sets topics for every sink connector");
                let subscription = self.shared.bus.subscribe(&name, selector);
                let runner = SinkRunner {
                    name: name.clone(),
                    shared: Arc::clone(&self.shared),
                    chain,
                    reporter,
                    metrics,
                    cancel: cancel.clone(),
                    target: target_rx,
                    held: Vec::new(),
                };
                Handle::Sink(tokio::spawn(runner.run(sink, subscription)))
            }
            Task::Source(source) => {
                // Starting from scratch after a read error would re-emit everything: refuse.
                let committed = self
                    .shared
                    .offsets
                    .load(&name)
                    .map_err(|e| ConnectorError::fatal("loading committed offsets", e))?;
                let tracker = OffsetTracker::new(committed.clone());
                let stop_committer = CancellationToken::new();
                let committer = tokio::spawn(commit_loop(
                    name.clone(),
                    Arc::clone(&tracker),
                    self.shared.offsets.clone(),
                    stop_committer.clone(),
                ));
                let ctx = SourceContext {
                    connector: Arc::from(name.as_str()),
                    committed,
                    chain,
                    reporter: Arc::clone(&reporter),
                    bus: Arc::clone(&self.shared.bus),
                    tracker: Arc::clone(&tracker),
                    cancel: cancel.clone(),
                    target: target_rx,
                    metrics,
                };
                let run = tokio::spawn(run_source(
                    name.clone(),
                    Arc::clone(&self.shared),
                    source,
                    ctx,
                    reporter,
                ));
                Handle::Source(SourceHandle {
                    run,
                    committer,
                    stop_committer,
                    tracker,
                })
            }
        };
        Ok(Running {
            config: prepared.config,
            cancel,
            target: target_tx,
            handle,
        })
    }

    fn fail(&self, name: &str, error: &ConnectorError) {
        fail(&self.shared, name, error);
    }
}

pub(super) fn fail(shared: &Shared, name: &str, error: &ConnectorError) {
    let trace = error.trace();
    tracing::error!(connector = %name, error = %trace, "Connector task failed.");
    shared.status.set(name, State::Failed, Some(trace));
}

async fn await_task(name: &str, handle: JoinHandle<()>) {
    if let Err(e) = handle.await {
        tracing::error!(connector = %name, error = %e, "Connector task panicked.");
    }
}

async fn stop_one(r: Running) {
    r.cancel.cancel();
    match r.handle {
        Handle::Sink(h) => await_task(&r.config.name, h).await,
        Handle::Source(h) => {
            await_task(&r.config.name, h.run).await;
            let deadline = tokio::time::Instant::now() + SOURCE_DRAIN_TIMEOUT;
            while h.tracker.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            h.stop_committer.cancel();
            await_task(&r.config.name, h.committer).await;
        }
    }
}
