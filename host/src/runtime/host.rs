//! The runtime: knows every connector (its config, where it was defined, its target state) and
//! runs a task for each one that is not STOPPED; starts, stops, pauses, restarts and shuts down.
//!
//! Lifetimes: a sink subscribes to the bus when it starts, so it never misses records of a
//! source started after it; stopping a sink unsubscribes it, drains its inbox, flushes and acks.
//! A source task runs with a committer beside it that persists the offsets its sinks
//! acknowledged. On shutdown, sources stop first, then sinks flush what they hold, then the
//! committers write the final offsets: a clean stop replays nothing.
//!
//! Authority: a connector belongs to where it was defined. A connector defined by a file in
//! `connectors.d/` is changed by editing or removing that file; the REST API may pause, resume,
//! stop and restart it but refuses (409) to change or delete its config, so the file and the
//! running connector never silently diverge. Connectors created over REST are stored in
//! `<data dir>/connectors.json` with every connector's target state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::api::allowed_env::AllowedEnv;
use crate::api::allowed_paths::AllowedPaths;
use crate::api::confine::Confine;
use crate::api::connector::{ConnectorType, Signal, TargetState};
use crate::api::error::ConnectorError;
use crate::api::metrics::{ConnectorMetrics, MetricsSnapshot};
use crate::api::offsets::SourceOffsets;
use crate::api::registry::Registry;
use crate::api::retry::Backoff;
use crate::config::connector::{ConfigErrors, ConnectorConfig};
use crate::offsets::{OffsetStore, OffsetStoreError};
use crate::runtime::bus::Bus;
use crate::runtime::kafka_bus::link::KafkaLink;
use crate::runtime::launch::Handle;
use crate::runtime::launch::{Running, TopicSet, start, stop, stop_all};
use crate::runtime::prepare::{Prepared, RunMode, prepare};
use crate::runtime::replay::{self, ReplayError, ReplayFrom, ReplayReport};
use crate::runtime::status::{ConnectorStatus, State, StatusBoard};
use crate::runtime::store::{ConnectorStore, StoreError, StoredConnector, Target};

/// What `apply` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Created,
    Updated,
    Unchanged,
}

/// Where a connector was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    Rest,
}

/// Why a runtime operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("Connector {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] ConfigErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Offsets(#[from] OffsetStoreError),
    #[error("deleting the state store {}: {source}", path.display())]
    StateFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("replaying the dead letters of {connector}: {source}")]
    Replay {
        connector: String,
        #[source]
        source: Box<ReplayError>,
    },
}

/// A config file in the watched directory that runs nothing: it cannot be read, its config is
/// invalid, or another connector has its name. Shown by the status API as FAILED, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedFile {
    /// The connector name the file gives (its stem when it cannot be read).
    pub name: String,
    pub file: PathBuf,
    pub reason: String,
    /// Its config, when it could be read.
    pub config: BTreeMap<String, String>,
    pub connector_type: Option<ConnectorType>,
}

/// A connector as the API shows it.
#[derive(Debug, Clone)]
pub struct ConnectorView {
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub connector_type: ConnectorType,
    pub origin: Origin,
    pub target: Target,
    pub status: ConnectorStatus,
    /// How many tasks it runs here (`tasks.max`); 0 when STOPPED (Kafka Connect then lists
    /// no tasks).
    pub tasks: usize,
}

pub(super) struct Entry {
    config: ConnectorConfig,
    origin: Origin,
    target: Target,
    connector_type: ConnectorType,
    pub(super) task: Option<Running>,
    topics: Arc<TopicSet>,
}

pub(super) struct Shared {
    pub(super) data_dir: PathBuf,
    pub(super) registry: Registry,
    pub(super) bus: Arc<Bus>,
    pub(super) offsets: OffsetStore,
    pub(super) status: StatusBoard,
    pub(super) metrics: Mutex<HashMap<String, Arc<ConnectorMetrics>>>,
    /// The worker's Kafka, if it has one.
    pub(super) kafka: Option<Arc<KafkaLink>>,
    /// The run's parameters, and whether it is bounded.
    pub(super) run: RunMode,
    /// Where the files of connectors created over REST may be (`[files] allowed_paths`).
    pub(super) allowed_paths: Arc<AllowedPaths>,
    /// Which environment variables `${env:...}` may read in connectors created over REST
    /// (`[providers] allowed_env`).
    pub(super) allowed_env: AllowedEnv,
    /// Sinks restarting because their destination failed (see [`retry_later`]) and not yet
    /// opened again: their open keeps waiting for the destination.
    pub(super) recovering: Mutex<std::collections::HashSet<String>>,
    /// Connectors whose task asks to be restarted (see [`Runtime::supervise`]).
    pub(super) restarts: tokio::sync::mpsc::UnboundedSender<RestartRequest>,
}

/// A task that ended asking to be started again (see [`Runtime::supervise`]).
#[derive(Debug)]
pub(super) struct RestartRequest {
    pub(super) connector: String,
    pub(super) why: RestartWhy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RestartWhy {
    /// Another host took its Kafka partitions ([`ConnectorError::Rejoin`]).
    Rejoin,
    /// Its destination failed in a way that may pass (a sink's [`ConnectorError::Retriable`]:
    /// Redis restarting, a connection reset).
    Retriable,
}

/// First wait before restarting a sink whose destination failed; doubled after each failure
/// in a row, up to [`RETRIABLE_DELAY_MAX`].
const RETRIABLE_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
const RETRIABLE_DELAY_MAX: std::time::Duration = std::time::Duration::from_secs(30);

impl Shared {
    /// Whether sink `name` is restarting after its destination failed.
    pub(super) fn is_recovering(&self, name: &str) -> bool {
        self.recovering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(name)
    }

    /// Sink `name` reached its destination again.
    pub(super) fn recovered(&self, name: &str) {
        self.recovering
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }
}

/// How long a task that must rejoin waits before it restarts: its consumer leaves the group
/// meanwhile, so the rebalance that follows counts it out, then in again.
const REJOIN_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs connectors. One per process.
pub struct Runtime {
    pub(super) shared: Arc<Shared>,
    pub(super) entries: tokio::sync::Mutex<BTreeMap<String, Entry>>,
    store: ConnectorStore,
    /// Target states restored for file-defined connectors the watcher has not applied yet.
    restored_targets: Mutex<BTreeMap<String, Target>>,
    /// The other end of [`Shared::restarts`], until [`Runtime::supervise`] takes it.
    restart_requests: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<RestartRequest>>>,
    /// Set by [`Runtime::shutdown`]: no task restarts after it.
    shut_down: std::sync::atomic::AtomicBool,
    /// The watched directory's files that run nothing, by the name they give (see
    /// [`RejectedFile`]); set by the watcher at each pass.
    rejected: Mutex<BTreeMap<String, RejectedFile>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("data_dir", &self.shared.data_dir)
            .finish()
    }
}

fn task_state(target: Target) -> Option<TargetState> {
    match target {
        Target::Started => Some(TargetState::Started),
        Target::Paused => Some(TargetState::Paused),
        Target::Stopped => None,
    }
}

/// The data directory: where connectors created over REST may read and write by default.
fn default_allowed_paths(data_dir: &Path) -> AllowedPaths {
    AllowedPaths::new(&[data_dir.to_path_buf()]).unwrap_or_else(|error| {
        tracing::error!(data_dir = %data_dir.display(), %error, "Cannot resolve the data directory: connectors created over REST may use no file.");
        AllowedPaths::none()
    })
}

impl Runtime {
    pub fn new(data_dir: &Path, registry: Registry) -> Self {
        let (restarts, restart_requests) = tokio::sync::mpsc::unbounded_channel();
        Self {
            shared: Arc::new(Shared {
                data_dir: data_dir.to_path_buf(),
                registry,
                bus: Bus::new(),
                offsets: OffsetStore::new(data_dir),
                status: StatusBoard::default(),
                metrics: Mutex::new(HashMap::new()),
                kafka: None,
                run: RunMode::default(),
                allowed_paths: Arc::new(default_allowed_paths(data_dir)),
                allowed_env: AllowedEnv::default(),
                recovering: Mutex::new(std::collections::HashSet::new()),
                restarts,
            }),
            entries: tokio::sync::Mutex::new(BTreeMap::new()),
            store: ConnectorStore::new(data_dir),
            restored_targets: Mutex::new(BTreeMap::new()),
            restart_requests: Mutex::new(Some(restart_requests)),
            shut_down: std::sync::atomic::AtomicBool::new(false),
            rejected: Mutex::new(BTreeMap::new()),
        }
    }

    /// Restarts the tasks that ask for it, as `POST /connectors/<name>/restart` would: a sink
    /// fenced out of Kafka partitions it lost ([`ConnectorError::Rejoin`]), and a sink whose
    /// destination failed in a way that may pass ([`ConnectorError::Retriable`]: Redis
    /// restarting). The latter waits with backoff (1 s doubling to 30 s while it keeps
    /// failing), and what it had not acknowledged is delivered again: Kafka Connect's worker
    /// retries a sink's `RetriableException` without limit, too. Call once, after the runtime
    /// is shared; without it such a task stays RESTARTING.
    pub fn supervise(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let mut requests = self
            .restart_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let runtime = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            // Per connector: the backoff of its failures in a row, and when it last restarted.
            let mut backoffs: HashMap<String, (Backoff, std::time::Instant)> = HashMap::new();
            while let Some(RestartRequest { connector, why }) = requests.recv().await {
                let delay = match why {
                    // The task's consumer is leaving its group meanwhile.
                    RestartWhy::Rejoin => REJOIN_DELAY,
                    RestartWhy::Retriable => {
                        let (backoff, last) =
                            backoffs.entry(connector.clone()).or_insert_with(|| {
                                (
                                    Backoff::new(RETRIABLE_DELAY, RETRIABLE_DELAY_MAX),
                                    std::time::Instant::now(),
                                )
                            });
                        // A task that ran for a while before failing again starts over.
                        if last.elapsed() > 2 * RETRIABLE_DELAY_MAX {
                            backoff.reset();
                        }
                        *last = std::time::Instant::now();
                        backoff.advance()
                    }
                };
                tokio::time::sleep(delay).await;
                let Some(runtime) = runtime.upgrade() else {
                    return;
                };
                match why {
                    RestartWhy::Rejoin => {
                        tracing::info!(connector = %connector, "Restarting the connector's task to rejoin its group.")
                    }
                    RestartWhy::Retriable => {
                        tracing::info!(connector = %connector, "Restarting the connector's task to reach its destination again.")
                    }
                }
                match runtime.restart(&connector, false).await {
                    Ok(true) if why == RestartWhy::Retriable => {
                        // Local sources replay what the old task held unacknowledged.
                        let mut entries = runtime.entries.lock().await;
                        runtime.replay_unacknowledged(&mut entries).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(connector = %connector, error = %e, "The connector's task could not be restarted.");
                    }
                }
            }
        }))
    }

    /// Connects the runtime to Kafka: sinks read the topics Kafka has, dead letters may go to
    /// Kafka topics, and with the Kafka bus sources produce to Kafka. Call before starting
    /// connectors.
    pub fn with_kafka(mut self, link: KafkaLink) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.kafka = Some(Arc::new(link)),
            None => tracing::error!("with_kafka called on a running runtime; ignored."),
        }
        self
    }

    /// Confines the files of connectors created over REST to `paths` (`[files] allowed_paths`).
    /// Call before starting connectors.
    pub fn with_allowed_paths(mut self, paths: AllowedPaths) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.allowed_paths = Arc::new(paths),
            None => tracing::error!("with_allowed_paths called on a running runtime; ignored."),
        }
        self
    }

    /// Lets connectors created over REST read these environment variables through `${env:...}`
    /// (`[providers] allowed_env`; none by default). Call before starting connectors.
    pub fn with_allowed_env(mut self, env: AllowedEnv) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.allowed_env = env,
            None => tracing::error!("with_allowed_env called on a running runtime; ignored."),
        }
        self
    }

    /// Sets the run's parameters and whether it is bounded (`headwater run --once`). Call
    /// before starting connectors.
    pub fn with_run_mode(mut self, run: RunMode) -> Self {
        match Arc::get_mut(&mut self.shared) {
            Some(shared) => shared.run = run,
            None => tracing::error!("with_run_mode called on a running runtime; ignored."),
        }
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.shared.registry
    }

    pub fn data_dir(&self) -> &Path {
        &self.shared.data_dir
    }

    /// The worker's Kafka, if it has one.
    pub fn kafka(&self) -> Option<&KafkaLink> {
        self.shared.kafka.as_deref()
    }

    /// Validates a config without running it. A config from a REST caller (`Origin::Rest`) may
    /// only name files under `[files] allowed_paths` and read the variables of `[providers]
    /// allowed_env`.
    pub fn validate(
        &self,
        config: &ConnectorConfig,
        origin: &Origin,
    ) -> Result<Prepared, ConfigErrors> {
        let confine = match origin {
            Origin::Rest => Some(Confine {
                paths: &self.shared.allowed_paths,
                env: &self.shared.allowed_env,
            }),
            Origin::File(_) => None,
        };
        prepare(
            &self.shared.registry,
            config,
            &self.shared.data_dir,
            self.shared.kafka.as_ref().map(|k| &k.settings),
            &self.shared.run,
            confine,
        )
    }

    /// Restores what `connectors.json` remembers: REST-created connectors start in their target
    /// state; target states of file-defined connectors wait for the watcher to apply the file.
    pub async fn restore(&self) -> Result<(), RuntimeError> {
        let stored = self.store.load()?;
        for (name, connector) in stored {
            match connector.config {
                Some(config) => {
                    let config = ConnectorConfig {
                        name: name.clone(),
                        config,
                    };
                    if let Err(e) = self
                        .apply_inner(config, Origin::Rest, Some(connector.target), false)
                        .await
                    {
                        tracing::error!(connector = %name, error = %e, "Cannot restore a connector created over REST.");
                    }
                }
                None => {
                    self.restored().insert(name, connector.target);
                }
            }
        }
        Ok(())
    }

    fn restored(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Target>> {
        self.restored_targets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a connector, or updates it if its config changed (restarting its task). An
    /// invalid config leaves a running instance of the same connector untouched.
    pub async fn apply(
        &self,
        config: ConnectorConfig,
        origin: Origin,
    ) -> Result<Applied, RuntimeError> {
        self.apply_inner(config, origin, None, true).await
    }

    /// `POST /connectors`: creates a connector that must not exist yet.
    pub async fn create(
        &self,
        config: ConnectorConfig,
        initial: Target,
    ) -> Result<(), RuntimeError> {
        self.apply_inner(config, Origin::Rest, Some(initial), true)
            .await
            .map(|_| ())
    }

    async fn apply_inner(
        &self,
        config: ConnectorConfig,
        origin: Origin,
        initial: Option<Target>,
        persist: bool,
    ) -> Result<Applied, RuntimeError> {
        let mut entries = self.entries.lock().await;
        let name = config.name.clone();
        // An initial state means "create": the connector must not exist yet (checked under
        // the lock, so two concurrent creates cannot both succeed).
        if initial.is_some() && entries.contains_key(&name) {
            return Err(RuntimeError::Conflict(format!(
                "Connector {name} already exists"
            )));
        }
        if let Some(existing) = entries.get(&name) {
            match (&existing.origin, &origin) {
                (Origin::Rest, Origin::File(path)) => {
                    return Err(RuntimeError::Conflict(format!(
                        "connector {name} was created over the REST API; the file {} is ignored \
                         (delete the connector over REST first)",
                        path.display()
                    )));
                }
                (Origin::File(path), Origin::Rest) => {
                    return Err(RuntimeError::Conflict(format!(
                        "connector {name} is defined by the file {}; edit or remove that file \
                         to change it",
                        path.display()
                    )));
                }
                _ => {}
            }
            if existing.config == config {
                return Ok(Applied::Unchanged);
            }
        }
        let prepared = self.validate(&config, &origin)?;
        // A new config starts afresh: failing to open fails it.
        self.shared.recovered(&name);
        for key in &prepared.unused_keys {
            tracing::warn!(connector = %name, key = %key, "Unknown configuration key; it is ignored.");
        }
        let connector_type = prepared.connector_type;
        let old = entries.remove(&name);
        let applied = if old.is_some() {
            Applied::Updated
        } else {
            Applied::Created
        };
        let target = old
            .as_ref()
            .map(|e| e.target)
            .or_else(|| self.restored().remove(&name))
            .or(initial)
            .unwrap_or_default();
        let replaced_failed_sink =
            old.is_some() && self.is_failed(&name) && connector_type == ConnectorType::Sink;
        let topics = old
            .as_ref()
            .map_or_else(Arc::default, |e| Arc::clone(&e.topics));
        let mut old_task = old.and_then(|e| e.task);
        if old_task.is_some() {
            self.shared.status.set(&name, State::Restarting, None);
        }
        // A new sink subscribes before the old one stops, so its topics are never without a
        // subscriber (records published meanwhile may reach both: at-least-once, never lost).
        // A new source starts after the old one wrote its final offsets.
        if connector_type == ConnectorType::Source
            && let Some(task) = old_task.take()
        {
            stop(task).await;
        }
        let task = self.start_task(prepared, target, &topics);
        if let Some(task) = old_task {
            stop(task).await;
        }
        if target == Target::Stopped {
            self.shared.status.set(&name, State::Stopped, None);
        }
        entries.insert(
            name.clone(),
            Entry {
                config,
                origin,
                target,
                connector_type,
                task,
                topics,
            },
        );
        tracing::info!(connector = %name, action = ?applied, "Connector started.");
        if replaced_failed_sink {
            self.replay_unacknowledged(&mut entries).await;
        }
        if persist {
            self.persist(&entries);
        }
        Ok(applied)
    }

    /// Starts the task of a prepared connector unless its target is STOPPED.
    fn start_task(
        &self,
        prepared: Prepared,
        target: Target,
        topics: &Arc<TopicSet>,
    ) -> Option<Running> {
        let initial = task_state(target)?;
        let name = prepared.config.name.clone();
        let metrics = self.metrics_for(&name);
        match start(&self.shared, prepared, initial, metrics, Arc::clone(topics)) {
            Ok(task) => Some(task),
            Err(e) => {
                self.fail(&name, &e);
                None
            }
        }
    }

    fn persist(&self, entries: &BTreeMap<String, Entry>) {
        let mut stored: BTreeMap<String, StoredConnector> = self
            .restored()
            .iter()
            .map(|(name, target)| {
                (
                    name.clone(),
                    StoredConnector {
                        target: *target,
                        config: None,
                    },
                )
            })
            .collect();
        for (name, entry) in entries {
            let config = match entry.origin {
                Origin::Rest => Some(entry.config.config.clone()),
                Origin::File(_) => None,
            };
            stored.insert(
                name.clone(),
                StoredConnector {
                    target: entry.target,
                    config,
                },
            );
        }
        if let Err(e) = self.store.save(&stored) {
            tracing::error!(error = %e, "Cannot persist connector configs and target states.");
        }
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

    /// Stops and forgets a connector. Its offsets stay (as in Kafka Connect). With
    /// `from` set, a connector defined elsewhere is not touched (409).
    pub async fn remove(&self, name: &str, from: Option<&Origin>) -> Result<(), RuntimeError> {
        let mut entries = self.entries.lock().await;
        let Some(entry) = entries.get(name) else {
            return Err(RuntimeError::NotFound(name.to_owned()));
        };
        match (from, &entry.origin) {
            (Some(Origin::Rest), Origin::File(path)) => {
                return Err(RuntimeError::Conflict(format!(
                    "connector {name} is defined by the file {}; remove that file to delete it",
                    path.display()
                )));
            }
            (Some(Origin::File(_)), Origin::Rest) => {
                return Err(RuntimeError::Conflict(format!(
                    "connector {name} was created over the REST API"
                )));
            }
            _ => {}
        }
        let entry = entries.remove(name).expect("checked above");
        self.shared.recovered(name);
        let failed_sink = self.is_failed(name) && entry.connector_type == ConnectorType::Sink;
        if let Some(task) = entry.task {
            stop(task).await;
        }
        tracing::info!(connector = %name, "Connector stopped.");
        self.shared.status.remove(name);
        if failed_sink {
            self.replay_unacknowledged(&mut entries).await;
        }
        self.persist(&entries);
        Ok(())
    }

    /// Pauses, resumes or stops a connector; the target state persists across restarts.
    pub async fn set_target(&self, name: &str, target: Target) -> Result<(), RuntimeError> {
        let mut entries = self.entries.lock().await;
        let entry = entries
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        entry.target = target;
        match (task_state(target), entry.task.as_ref()) {
            (Some(state), Some(task)) => {
                task.target.send_replace(state);
                if !self.is_failed(name) {
                    let shown = match state {
                        TargetState::Started => State::Running,
                        TargetState::Paused => State::Paused,
                    };
                    self.shared.status.set(name, shown, None);
                }
            }
            (Some(_), None) => {
                let config = entry.config.clone();
                let topics = Arc::clone(&entry.topics);
                let prepared = self.validate(&config, &entry.origin)?;
                let task = self.start_task(prepared, target, &topics);
                if let Some(entry) = entries.get_mut(name) {
                    entry.task = task;
                }
            }
            (None, _) => {
                if let Some(task) = entry.task.take() {
                    stop(task).await;
                }
                self.shared.status.set(name, State::Stopped, None);
            }
        }
        self.persist(&entries);
        Ok(())
    }

    /// Hands a signal to a running source that reads signals (the CDC source): Headwater's
    /// signal channel, which needs no write access to the source database.
    pub async fn signal(&self, name: &str, signal: Signal) -> Result<(), RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let class = entry
            .config
            .config
            .get("connector.class")
            .map(String::as_str)
            .unwrap_or_default();
        if !self
            .shared
            .registry
            .find(class)
            .is_some_and(|plugin| plugin.accepts_signals())
        {
            return Err(RuntimeError::BadRequest(format!(
                "connector {name} ({class}) does not read signals; signals are for \
                 io.debezium.connector.postgresql.PostgresConnector"
            )));
        }
        let sender = entry
            .task
            .as_ref()
            .and_then(|t| t.signals.as_ref())
            .ok_or_else(|| {
                RuntimeError::Conflict(format!(
                    "connector {name} is stopped: signals are read by its running task"
                ))
            })?;
        sender.try_send(signal).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => RuntimeError::Conflict(format!(
                "connector {name} has {} signals waiting to be read: try again later",
                crate::api::connector::SIGNAL_QUEUE
            )),
            tokio::sync::mpsc::error::TrySendError::Closed(_) => RuntimeError::Conflict(format!(
                "connector {name}'s task is not running (see its status)"
            )),
        })
    }

    pub async fn pause(&self, name: &str) -> Result<(), RuntimeError> {
        self.set_target(name, Target::Paused).await
    }

    pub async fn resume(&self, name: &str) -> Result<(), RuntimeError> {
        self.set_target(name, Target::Started).await
    }

    /// Restarts a connector's task (one task per connector: the connector and its task restart
    /// together). With `only_failed`, only a FAILED one. Returns whether it restarted.
    pub async fn restart(&self, name: &str, only_failed: bool) -> Result<bool, RuntimeError> {
        let mut entries = self.entries.lock().await;
        let entry = entries
            .get_mut(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        let shut_down = self.shut_down.load(std::sync::atomic::Ordering::Acquire);
        if shut_down || entry.target == Target::Stopped || (only_failed && !self.is_failed(name)) {
            return Ok(false);
        }
        self.shared.status.set(name, State::Restarting, None);
        if let Some(task) = entry.task.take() {
            stop(task).await;
        }
        let prepared = self.validate(&entry.config, &entry.origin)?;
        let topics = Arc::clone(&entry.topics);
        let target = entry.target;
        let task = self.start_task(prepared, target, &topics);
        if let Some(entry) = entries.get_mut(name) {
            entry.task = task;
        }
        Ok(true)
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
    async fn replay_unacknowledged(&self, entries: &mut BTreeMap<String, Entry>) {
        for (name, entry) in entries.iter_mut() {
            if entry.task.as_ref().is_none_or(|t| t.in_flight() == 0) {
                continue;
            }
            if let Some(task) = entry.task.take() {
                stop(task).await;
            }
            tracing::info!(connector = %name, "Replaying records a failed sink never acknowledged.");
            match self.validate(&entry.config, &entry.origin) {
                Ok(prepared) => {
                    entry.task = self.start_task(prepared, entry.target, &entry.topics);
                }
                Err(errors) => self.report_invalid(name, &errors),
            }
        }
    }

    /// Replaces the files the watcher found running nothing.
    pub fn set_rejected_files(&self, files: BTreeMap<String, RejectedFile>) {
        *self.rejected.lock().unwrap_or_else(|e| e.into_inner()) = files;
    }

    /// A rejected file giving `name`, unless a connector of that name runs (which the API
    /// shows instead).
    pub async fn rejected_file(&self, name: &str) -> Option<RejectedFile> {
        if self.entries.lock().await.contains_key(name) {
            return None;
        }
        let rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        rejected.get(name).cloned()
    }

    /// A rejected file giving the name of a connector that runs (one created over REST keeps
    /// its name): reported beside that connector, as a conflict.
    pub async fn conflicting_file(&self, name: &str) -> Option<RejectedFile> {
        if !self.entries.lock().await.contains_key(name) {
            return None;
        }
        let rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        rejected.get(name).cloned()
    }

    /// The rejected files whose name no running connector has.
    pub async fn rejected_files(&self) -> Vec<RejectedFile> {
        let entries = self.entries.lock().await;
        let rejected = self.rejected.lock().unwrap_or_else(|e| e.into_inner());
        rejected
            .values()
            .filter(|r| !entries.contains_key(&r.name))
            .cloned()
            .collect()
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

    /// Every connector's counters.
    pub fn all_metrics(&self) -> BTreeMap<String, MetricsSnapshot> {
        let metrics = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        metrics
            .iter()
            .map(|(name, m)| (name.clone(), m.snapshot()))
            .collect()
    }

    fn view(&self, entry: &Entry) -> ConnectorView {
        let status = self
            .shared
            .status
            .get(&entry.config.name)
            .unwrap_or(ConnectorStatus {
                state: State::Unassigned,
                trace: None,
            });
        ConnectorView {
            name: entry.config.name.clone(),
            config: entry.config.config.clone(),
            connector_type: entry.connector_type,
            origin: entry.origin.clone(),
            target: entry.target,
            status,
            // A connector that failed to start still shows its (failed) task.
            tasks: match entry.target {
                Target::Stopped => 0,
                _ => entry.task.as_ref().map_or(1, |t| t.tasks),
            },
        }
    }

    /// Every connector, by name.
    pub async fn connectors(&self) -> Vec<ConnectorView> {
        let entries = self.entries.lock().await;
        entries.values().map(|e| self.view(e)).collect()
    }

    pub async fn connector(&self, name: &str) -> Result<ConnectorView, RuntimeError> {
        let entries = self.entries.lock().await;
        entries
            .get(name)
            .map(|e| self.view(e))
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))
    }

    /// Topics the connector produced to or consumed from since it was created or reset.
    pub async fn topics(&self, name: &str) -> Result<Vec<String>, RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Ok(entry.topics.list())
    }

    pub async fn reset_topics(&self, name: &str) -> Result<(), RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        entry.topics.clear();
        Ok(())
    }

    /// Sends a sink connector's dead letters through it again (see [`crate::runtime::replay`]).
    pub async fn replay(&self, name: &str, from: ReplayFrom) -> Result<ReplayReport, RuntimeError> {
        let (inbox, (key, value)) = {
            let entries = self.entries.lock().await;
            let entry = entries
                .get(name)
                .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
            if entry.connector_type != ConnectorType::Sink {
                return Err(RuntimeError::BadRequest(format!(
                    "{name} is a source connector: replay its dead letters into the sink \
                     connector that consumes its topics"
                )));
            }
            match entry.task.as_ref().map(|t| &t.handle) {
                Some(Handle::Sink(h)) => (h.inbox.clone(), h.converters.clone()),
                _ => {
                    return Err(RuntimeError::Conflict(format!(
                        "connector {name} is not running; resume it before replaying its dead letters"
                    )));
                }
            }
        };
        let kafka = self.shared.kafka.as_ref().map(|k| k.settings.clone());
        let report = replay::run(
            name,
            &from,
            &self.shared.data_dir,
            kafka,
            &inbox,
            (key, value),
        )
        .await
        .map_err(|source| RuntimeError::Replay {
            connector: name.to_owned(),
            source: Box::new(source),
        })?;
        tracing::info!(connector = %name, replayed = report.replayed, refused = report.refused, from = %report.from, "Dead letters replayed.");
        Ok(report)
    }

    /// The committed source offsets of a connector (sinks have none on the embedded bus).
    pub async fn offsets(&self, name: &str) -> Result<SourceOffsets, RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        if entry.connector_type == ConnectorType::Sink {
            return Ok(SourceOffsets::default());
        }
        Ok(self.shared.offsets.load(name)?)
    }

    /// The offsets committed under `name`, whether or not a connector of that name runs (a
    /// config file refused for now resumes from them once fixed).
    pub fn stored_offsets(&self, name: &str) -> Result<SourceOffsets, RuntimeError> {
        Ok(self.shared.offsets.load(name)?)
    }

    fn require_stopped(entry: &Entry) -> Result<(), RuntimeError> {
        if entry.target != Target::Stopped || entry.task.is_some() {
            return Err(RuntimeError::BadRequest(
                "Connectors must be in the STOPPED state before their offsets can be modified. \
                 This can be done for the specified connector by issuing a 'PUT' request to the \
                 '/connectors/{connector}/stop' endpoint"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Sets (or, with `None`, forgets) the offsets of some source partitions. STOPPED only.
    pub async fn alter_offsets(
        &self,
        name: &str,
        changes: Vec<(Value, Option<Value>)>,
    ) -> Result<(), RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Self::require_stopped(entry)?;
        if entry.connector_type == ConnectorType::Sink {
            return Err(RuntimeError::BadRequest(format!(
                "connector {name} is a sink: on the embedded bus it has no offsets to alter"
            )));
        }
        let mut offsets = self.shared.offsets.load(name)?;
        for (partition, offset) in changes {
            match offset {
                Some(offset) => offsets.insert(partition, offset),
                None => offsets.remove(&partition),
            }
        }
        self.forget_state(name)?;
        Ok(self.shared.offsets.save(name, &offsets)?)
    }

    /// Deletes a connector's transform state (windows, plugin state): it describes the records
    /// up to the old offsets, so new offsets start it afresh. Its checkpoint would otherwise
    /// take precedence over the offsets file at the next start.
    pub(super) fn forget_state(&self, name: &str) -> Result<(), RuntimeError> {
        let path = crate::state::StateStore::path_for(&self.shared.data_dir, name);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(connector = %name, path = %path.display(), "Transform state deleted with the offsets.");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RuntimeError::StateFile { path, source }),
        }
    }

    /// Forgets every offset of a connector. STOPPED only.
    pub async fn reset_offsets(&self, name: &str) -> Result<(), RuntimeError> {
        let entries = self.entries.lock().await;
        let entry = entries
            .get(name)
            .ok_or_else(|| RuntimeError::NotFound(name.to_owned()))?;
        Self::require_stopped(entry)?;
        self.forget_state(name)?;
        Ok(self.shared.offsets.delete(name)?)
    }

    /// Stops everything: sources, then sinks (final flush), then the offset committers.
    pub async fn shutdown(&self) {
        let mut entries = self.entries.lock().await;
        self.shut_down
            .store(true, std::sync::atomic::Ordering::Release);
        let tasks: Vec<Running> = entries.values_mut().filter_map(|e| e.task.take()).collect();
        stop_all(tasks).await;
        tracing::info!("All connectors stopped.");
    }

    pub(crate) fn metrics_for(&self, name: &str) -> Arc<ConnectorMetrics> {
        let mut metrics = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Arc::clone(metrics.entry(name.to_owned()).or_default())
    }

    fn fail(&self, name: &str, error: &ConnectorError) {
        fail(&self.shared, name, error);
    }
}

/// A task that lost work to another host (see [`ConnectorError::Rejoin`]) is restarted by
/// [`Runtime::supervise`] rather than left FAILED; RESTARTING meanwhile, with the reason.
pub(super) fn rejoin(shared: &Shared, name: &str, error: &ConnectorError) {
    let trace = error.trace();
    tracing::warn!(connector = %name, error = %trace, "Another host took this connector's work; its task restarts and rejoins.");
    shared.status.set(name, State::Restarting, Some(trace));
    // Only a runtime being dropped has no receiver; its tasks stop anyway.
    let _ = shared.restarts.send(RestartRequest {
        connector: name.to_owned(),
        why: RestartWhy::Rejoin,
    });
}

/// A sink whose destination failed in a way that may pass (see [`ConnectorError::Retriable`])
/// is restarted by [`Runtime::supervise`] with backoff rather than left FAILED; RESTARTING
/// meanwhile, with the reason.
pub(super) fn retry_later(shared: &Shared, name: &str, error: &ConnectorError) {
    shared
        .recovering
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_owned());
    let trace = error.trace();
    tracing::warn!(connector = %name, error = %trace, "The sink's destination failed; its task restarts with backoff and delivers again what it had not acknowledged.");
    shared.status.set(name, State::Restarting, Some(trace));
    let _ = shared.restarts.send(RestartRequest {
        connector: name.to_owned(),
        why: RestartWhy::Retriable,
    });
}

pub(super) fn fail(shared: &Shared, name: &str, error: &ConnectorError) {
    let trace = error.trace();
    tracing::error!(connector = %name, error = %trace, "Connector task failed.");
    shared.status.set(name, State::Failed, Some(trace));
}

/// Process-wide settings of a host, made once at its start by `headwater run` (and by the
/// benchmarks, which measure the host as it runs).
///
/// Transparent huge pages are turned off for the process: mimalloc asks the kernel for them on
/// its arenas (`madvise`, which the common `madvise` THP mode honours), and a 2 MiB page that is
/// partly used is resident whole. On the Kafka window benchmark they were ~15 MiB of a
/// ~215 MiB peak, at the same rate. (Redis asks for them off, too.) An error means a kernel
/// without the setting (before 3.15): nothing is lost but that memory.
pub fn prepare_process() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}
