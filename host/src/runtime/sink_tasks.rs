//! A sink run as several tasks in one process (`tasks.max`), as Kafka Connect runs a sink
//! connector's tasks: each task is a consumer in the sink's group `connect-<name>` with its own
//! share of the partitions, its own transform chain and its own instance of the sink, each on
//! its own consumer thread and tokio task. A Kafka-fed sink then uses as many cores as it has
//! tasks, up to its topics' partition count (a task beyond it is a group member without
//! partitions, as in Kafka Connect).
//!
//! Only what needs no coordination between tasks runs as several: a sink whose plugin
//! [`ConnectorPlugin::runs_in_parallel`], reading Kafka, in a run that does not end, with a
//! chain that keeps no state. A chain with state keeps it per Kafka partition and moves it
//! between hosts, one consumer per host (`crate::runtime::partitioned`); a bounded run stages
//! and publishes its output once (`crate::runtime::bounded`); a sink without Kafka is fed by
//! local sources through one subscription. Those run one task, and say why once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use crate::api::allowed_paths::AllowedPaths;
use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task, TaskIndex};
use crate::api::error::ConnectorError;
use crate::api::options::Options;
use crate::api::transform::ChainContext;
use crate::transforms::chain::Chain;

/// What a connector's tasks share about one another: they stop together, and one of them
/// reports why.
#[derive(Debug)]
pub(super) struct Siblings {
    /// Cancelled when the connector stops or one of its tasks fails: every task's runner and
    /// consumer stop on it (the runners flush first).
    pub stop: CancellationToken,
    /// A task failed: the first to fail set the connector's status (FAILED, or RESTARTING and a
    /// restart asked for); the others stop with it without asking again.
    failed: AtomicBool,
    /// One of the tasks reached its destination: one that then cannot is waited for, not
    /// FAILED (the destination exists).
    opened: AtomicBool,
}

impl Siblings {
    /// The tasks of a connector whose stop is `connector`.
    pub(super) fn new(connector: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            stop: connector.child_token(),
            failed: AtomicBool::new(false),
            opened: AtomicBool::new(false),
        })
    }

    /// Whether this is the connector's first task to fail (it reports the failure); the other
    /// tasks are stopped either way.
    pub(super) fn first_failure(&self) -> bool {
        self.stop.cancel();
        !self.failed.swap(true, Ordering::AcqRel)
    }

    /// Whether one of the tasks failed.
    pub(super) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    pub(super) fn note_opened(&self) {
        self.opened.store(true, Ordering::Release);
    }

    pub(super) fn any_opened(&self) -> bool {
        self.opened.load(Ordering::Acquire)
    }

    /// What a task's consumer calls when it cannot run: the connector is FAILED with the
    /// reason (unless a task failed first) and every task stops.
    pub(super) fn on_consumer_failure(
        self: &Arc<Self>,
        host: &Arc<crate::runtime::host::Shared>,
        name: &str,
    ) -> Box<dyn FnOnce(ConnectorError) + Send> {
        let (siblings, host, name) = (Arc::clone(self), Arc::clone(host), name.to_owned());
        Box::new(move |e| {
            if siblings.first_failure() {
                crate::runtime::host::fail(&host, &name, &e);
            }
        })
    }
}

/// What decides how many tasks a connector runs here.
pub(super) struct TaskPlan<'a> {
    pub connector: &'a str,
    pub tasks_max: usize,
    pub plugin: &'a dyn ConnectorPlugin,
    pub reads_kafka: bool,
    pub bounded: bool,
    pub stateful: bool,
}

impl TaskPlan<'_> {
    /// How many tasks the connector runs in this process, and why one when `tasks.max` asks
    /// for more. Logs the reason.
    pub(super) fn count(&self) -> (usize, Option<&'static str>) {
        if self.tasks_max <= 1 || self.plugin.connector_type() != ConnectorType::Sink {
            return (1, None);
        }
        let one_because = if !self.plugin.runs_in_parallel() {
            Some("its sink class writes one output that tasks cannot share")
        } else if !self.reads_kafka {
            Some("it reads no Kafka (the worker config has no [kafka] section)")
        } else if self.bounded {
            Some("a bounded run (--once) publishes its output once, from one task")
        } else if self.stateful {
            Some(
                "its chain keeps state per Kafka partition, which moves between hosts, not \
                 tasks: tasks.max above 1 lets the hosts running it share its partitions",
            )
        } else {
            None
        };
        match one_because {
            Some(why) => {
                tracing::info!(connector = %self.connector, tasks_max = self.tasks_max, why = %why, "The connector runs one task here.");
                (1, Some(why))
            }
            None => (self.tasks_max, None),
        }
    }
}

/// How the tasks after the first are built: the same config through the same plugin, each with
/// its own chain and sink (task 0 is built by `prepare` itself, which also checked the config).
#[derive(Clone)]
pub struct SiblingTasks {
    plugin: Arc<dyn ConnectorPlugin>,
    /// The connector's config, providers resolved.
    config: BTreeMap<String, String>,
    confine: Option<Arc<AllowedPaths>>,
    chain: ChainContext,
    build: BuildContext,
}

impl std::fmt::Debug for SiblingTasks {
    // The config holds resolved secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiblingTasks")
            .field("class", &self.plugin.class())
            .field("tasks", &self.build.task.of)
            .finish_non_exhaustive()
    }
}

/// One more task of a sink: its sink and chain.
pub struct SiblingTask {
    pub sink: Box<dyn crate::api::connector::Sink>,
    pub chain: Chain,
}

impl SiblingTasks {
    pub(super) fn new(
        plugin: Arc<dyn ConnectorPlugin>,
        config: BTreeMap<String, String>,
        confine: Option<Arc<AllowedPaths>>,
        chain: ChainContext,
        build: BuildContext,
    ) -> Self {
        Self {
            plugin,
            config,
            confine,
            chain,
            build,
        }
    }

    /// How many tasks the connector runs, the first included.
    pub fn count(&self) -> usize {
        self.build.task.of
    }

    /// Builds task `id` (1 ..= count - 1).
    pub fn build(&self, id: usize) -> Result<SiblingTask, ConnectorError> {
        let mut options = Options::new(self.config.clone());
        if let Some(paths) = &self.confine {
            options.confine(Arc::clone(paths));
        }
        let chain = crate::transforms::build_chain(&mut options, &self.chain);
        let ctx = BuildContext {
            task: TaskIndex {
                id,
                of: self.count(),
            },
            ..self.build.clone()
        };
        let task = self.plugin.build(&mut options, &ctx);
        let issues: Vec<String> = options
            .issues()
            .iter()
            .map(|i| format!("{}: {}", i.key, i.message))
            .collect();
        match task {
            Some(Task::Sink(sink)) if issues.is_empty() => Ok(SiblingTask { sink, chain }),
            _ => Err(ConnectorError::fatal(
                format!("building task {id}"),
                format!(
                    "the config that built task 0 did not build it again: {}",
                    issues.join("; ")
                ),
            )),
        }
    }
}

/// What a sibling task shares with the connector's first task.
pub(super) struct Shares<'a> {
    pub host: &'a Arc<crate::runtime::host::Shared>,
    pub name: &'a str,
    pub link: &'a Arc<crate::runtime::kafka_bus::link::KafkaLink>,
    pub selector: &'a crate::runtime::bus::TopicSelector,
    pub group: &'a str,
    pub converters: &'a (
        crate::converters::BuiltinConverter,
        crate::converters::BuiltinConverter,
    ),
    pub reporter: &'a Arc<crate::runtime::reporter::ErrorReporter>,
    pub metrics: &'a Arc<crate::api::metrics::ConnectorMetrics>,
    pub topics: &'a Arc<crate::runtime::launch::TopicSet>,
    /// The connector's: cancelled when it stops.
    pub stopped: &'a CancellationToken,
    pub siblings: &'a Arc<Siblings>,
    pub target: &'a tokio::sync::watch::Receiver<crate::api::connector::TargetState>,
}

/// Starts task `id`: its consumer thread, feeding its own sink runner. The runner's handle and
/// the thread's, for the connector's stop to wait on.
pub(super) fn start(
    shared: &Shares<'_>,
    id: usize,
    task: SiblingTask,
) -> Result<(tokio::task::JoinHandle<()>, std::thread::JoinHandle<()>), ConnectorError> {
    use crate::runtime::bus::{INBOX_CAPACITY, Subscription};
    use crate::runtime::kafka_bus::intake::{self, IntakeSpec, Reading};
    use crate::runtime::sink_runner::{SinkChain, SinkRunner};

    let (inbox, receiver) = tokio::sync::mpsc::channel(INBOX_CAPACITY);
    let flush_now = Arc::new(tokio::sync::Notify::new());
    let done = CancellationToken::new();
    let intake_stop = shared.siblings.stop.child_token();
    let chain = Arc::new(task.chain);
    let spec = IntakeSpec {
        connector: shared.name.to_owned(),
        settings: shared.link.settings.clone(),
        selector: shared.selector.clone(),
        only_existing: !shared.link.bus,
        key_converter: shared.converters.0.clone(),
        value_converter: shared.converters.1.clone(),
        group: shared.group.to_owned(),
        task: id,
        behind_repartition: None,
        parse_values: chain.parses_values(),
        // Read by a stateful sink's aligned reader only: a sibling's chain keeps no state.
        event_time: None,
        inbox,
        flush_now: Arc::clone(&flush_now),
        cancel: intake_stop.clone(),
        sink_done: done.clone(),
        on_failure: shared
            .siblings
            .on_consumer_failure(shared.host, shared.name),
        reading: Reading::Group,
        metrics: Arc::clone(shared.metrics),
        bounded: None,
    };
    let thread = intake::spawn(spec)
        .map_err(|e| ConnectorError::fatal("starting the Kafka consumer thread", e))?;
    let runner = SinkRunner {
        name: shared.name.to_owned(),
        task: id,
        siblings: Arc::clone(shared.siblings),
        stopped: shared.stopped.clone(),
        shared: Arc::clone(shared.host),
        chain: SinkChain::One(chain),
        reporter: Arc::clone(shared.reporter),
        metrics: Arc::clone(shared.metrics),
        topics: Arc::clone(shared.topics),
        cancel: shared.siblings.stop.clone(),
        target: shared.target.clone(),
        held: Vec::new(),
        unflushed: Default::default(),
        flush_now,
        done,
        intake_stop,
        state: None,
        bounded: None,
    };
    // Fed by its consumer only: the embedded bus's local sources feed task 0.
    let subscription = Subscription {
        id: u64::MAX,
        inbox: receiver,
    };
    let run = tokio::spawn(runner.run(task.sink, subscription));
    Ok((run, thread))
}
