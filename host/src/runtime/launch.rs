//! Starting and stopping one connector's task: wiring a built task to the bus, its transform
//! chain, error reporter, offsets and metrics.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::connector::{TargetState, Task};
use crate::api::error::ConnectorError;
use crate::api::metrics::ConnectorMetrics;
use crate::api::record::Record;
use crate::converters::BuiltinConverter;
use crate::runtime::ack::OffsetTracker;
use crate::runtime::bounded::BoundedTask;
use crate::runtime::bus::TopicSelector;
use crate::runtime::bus::{Delivery, INBOX_CAPACITY, Subscription};
use crate::runtime::changelog::{Changelog, Standby};
use crate::runtime::host::{Shared, fail};
use crate::runtime::kafka_bus::intake::{self, EventTimeOf, IntakeSpec, Reading};
use crate::runtime::kafka_bus::link::KafkaLink;
use crate::runtime::kafka_bus::publish::KafkaPublisher;
use crate::runtime::partitioned::{Ownership, PartitionedChains};
use crate::runtime::prepare::Prepared;
use crate::runtime::reporter::ErrorReporter;
use crate::runtime::shuffle;
use crate::runtime::sink_runner::{SinkChain, SinkRunner};
use crate::runtime::sink_state::{Layout, SinkState};
use crate::runtime::source_context::{Publisher, SourceTaskContext};
use crate::runtime::source_runner::{commit_loop, run_source};
use crate::runtime::status::State;
use crate::state::StateStore;

/// How long a stopping source waits for sinks to acknowledge what it already sent, so its final
/// offsets include them. Whatever is not acknowledged by then is replayed on the next start.
const SOURCE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The topics a connector produced to or consumed from (Kafka Connect's topic tracking).
#[derive(Debug, Default)]
pub struct TopicSet {
    topics: Mutex<BTreeSet<String>>,
}

impl TopicSet {
    /// Notes the topics of a batch (one lock per batch; consecutive duplicates skipped).
    pub fn note(&self, records: &[Record]) {
        let mut last: Option<&str> = None;
        let mut new: Vec<&str> = Vec::new();
        for r in records {
            if last != Some(r.topic.as_str()) && !new.contains(&r.topic.as_str()) {
                new.push(&r.topic);
            }
            last = Some(&r.topic);
        }
        if new.is_empty() {
            return;
        }
        let mut topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        for t in new {
            if !topics.contains(t) {
                topics.insert(t.to_owned());
            }
        }
    }

    pub fn list(&self) -> Vec<String> {
        let topics = self.topics.lock().unwrap_or_else(|e| e.into_inner());
        topics.iter().cloned().collect()
    }

    pub fn clear(&self) {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

pub(super) struct SourceHandle {
    run: JoinHandle<()>,
    committer: JoinHandle<()>,
    stop_committer: CancellationToken,
    pub(super) tracker: Arc<OffsetTracker>,
}

pub(super) struct SinkHandle {
    /// The sink runner of each of its tasks (`tasks.max`, see `super::sink_tasks`).
    runs: Vec<JoinHandle<()>>,
    /// The sink's inbox (its first task's) and converters, for replaying dead letters into it.
    pub(super) inbox: mpsc::Sender<Delivery>,
    pub(super) converters: (BuiltinConverter, BuiltinConverter),
    /// The threads consuming the sink's topics from Kafka (one per task), if it reads Kafka.
    intake: Vec<std::thread::JoinHandle<()>>,
    /// Stage 1 of a repartition topic (`crate::runtime::shuffle`).
    shuffle: Option<JoinHandle<()>>,
}

pub(super) enum Handle {
    Source(SourceHandle),
    Sink(SinkHandle),
}

/// A running task.
pub(super) struct Running {
    pub(super) name: String,
    pub(super) cancel: CancellationToken,
    pub(super) target: watch::Sender<TargetState>,
    pub(super) handle: Handle,
    /// How many tasks it runs (`tasks.max`, see `super::sink_tasks`).
    pub(super) tasks: usize,
    /// Where REST signals go (sources only).
    pub(super) signals: Option<mpsc::Sender<crate::api::connector::Signal>>,
    /// In a bounded run: how far the task is through its input (see `super::bounded`).
    pub(super) bounded: Option<BoundedTask>,
}

impl Running {
    /// Batches sent but not yet acknowledged by every sink (sources only).
    pub(super) fn in_flight(&self) -> usize {
        match &self.handle {
            Handle::Source(h) => h.tracker.in_flight(),
            Handle::Sink(_) => 0,
        }
    }

    pub(super) fn is_source(&self) -> bool {
        matches!(self.handle, Handle::Source(_))
    }
}

/// Starts `prepared` in `initial` state.
pub(super) fn start(
    shared: &Arc<Shared>,
    prepared: Prepared,
    initial: TargetState,
    metrics: Arc<ConnectorMetrics>,
    topics: Arc<TopicSet>,
) -> Result<Running, ConnectorError> {
    let name = prepared.config.name.clone();
    let cancel = CancellationToken::new();
    let (target_tx, target_rx) = watch::channel(initial);
    // The worker's Kafka as this connector sees it (its client overrides applied).
    let kafka = with_overrides(shared, &prepared);
    let key_converter = prepared.key_converter.clone();
    let value_converter = prepared.value_converter.clone();
    let reporter = Arc::new(ErrorReporter::new(
        Arc::from(name.as_str()),
        prepared.policy.clone(),
        &shared.data_dir,
        Arc::clone(&metrics),
        kafka.clone(),
        (key_converter.clone(), value_converter.clone()),
    ));
    let chain = Arc::new(prepared.chain);
    let unsubscribed = prepared.unsubscribed;
    // Set before the tasks start: a task failing at once (a consumer property librdkafka
    // refuses) must not have its FAILED overwritten.
    let state = match initial {
        TargetState::Started => State::Running,
        TargetState::Paused => State::Paused,
    };
    shared.status.set(&name, state, None);
    let mut signals = None;
    let mut bounded = None;
    // A bounded run's own name (its config, parameters and attempt): its consumer group's.
    let run_id = shared.run.run_id(&prepared.config, &shared.data_dir);
    let mut tasks = 1;
    // A sink's per-task gauges are of the tasks starting now (`tasks.max` may have changed).
    metrics.forget_tasks();
    let handle = match prepared.task {
        Task::Sink(sink) => {
            // Every task is built before any starts: a task that cannot be built leaves
            // none running.
            let siblings = match &prepared.siblings {
                Some(siblings) => (1..siblings.count())
                    .map(|id| siblings.build(id))
                    .collect::<Result<Vec<_>, _>>()?,
                None => Vec::new(),
            };
            let selector = prepared
                .topics
                .expect("prepare sets topics for every sink connector");
            let (inbox, receiver) = mpsc::channel(INBOX_CAPACITY);
            let on_kafka_bus = shared.kafka.as_ref().is_some_and(|k| k.bus);
            let id = if on_kafka_bus {
                // Every record comes through Kafka: nothing to take from the embedded bus.
                u64::MAX
            } else {
                shared
                    .bus
                    .subscribe_with(&name, selector.clone(), inbox.clone())
            };
            let subscription = Subscription {
                id,
                inbox: receiver,
            };
            let flush_now = Arc::new(Notify::new());
            let done = CancellationToken::new();
            // A stateful chain resumes from its checkpoint: the state, and the positions of
            // the input it holds (Kafka offsets the consumer starts from).
            let state = if chain.is_stateful() {
                let path = StateStore::path_for(&shared.data_dir, &name);
                let store = StateStore::open(&path)
                    .map_err(|e| ConnectorError::fatal("opening the state store", e))?;
                if prepared.partitioned.is_none() {
                    chain
                        .restore_state(&store)
                        .map_err(|e| ConnectorError::fatal("restoring transform state", e))?;
                }
                let layout = match prepared.partitioned {
                    Some(_) => Layout::PerPartition,
                    None => Layout::One,
                };
                Some(
                    SinkState::open(store, layout)
                        .map_err(|e| ConnectorError::fatal("restoring transform state", e))?,
                )
            } else {
                None
            };
            // State per Kafka partition moves between hosts through a changelog.
            let changelog = match (&kafka, &prepared.partitioned) {
                (Some(link), Some(_)) => {
                    let changelog = Changelog::new(&name, Arc::clone(link))?;
                    Some(Arc::new(match prepared.standby {
                        true => changelog.with_standby(),
                        false => changelog,
                    }))
                }
                _ => None,
            };
            let state = match (state, &changelog) {
                (Some(state), Some(changelog)) => Some(state.with_changelog(Arc::clone(changelog))),
                (state, _) => state,
            };
            let shuffle_builder = prepared
                .partitioned
                .clone()
                .filter(|_| prepared.repartition);
            // Warm standby copies, followed while the sink runs (see `changelog::Standby`).
            let mut standby_task = None;
            // How the consumer reads, and the chain (or chains) its records go through.
            let (reading, sink_chain) = match (&state, prepared.partitioned) {
                (Some(state), Some(builder)) => {
                    let ownership = Ownership::new();
                    let changelog = changelog.ok_or_else(|| {
                        ConnectorError::fatal(
                            "keeping state per partition",
                            "it needs Kafka (the worker's [kafka] section) for its changelog",
                        )
                    })?;
                    if prepared.standby {
                        let standby = Standby::new(
                            Arc::clone(&changelog),
                            Arc::clone(state.store()),
                            Arc::clone(&ownership),
                            Arc::clone(&metrics),
                        );
                        standby_task = Some(tokio::spawn(standby.run(cancel.clone())));
                    }
                    let chains = PartitionedChains::new(
                        &name,
                        builder,
                        Arc::clone(state.store()),
                        Arc::clone(&ownership),
                        changelog,
                    );
                    (
                        Reading::Partitioned(ownership),
                        SinkChain::PerPartition { chains },
                    )
                }
                (Some(state), None) => (
                    Reading::Every {
                        checkpointed: state.kafka_offsets(&name),
                        on_assign: {
                            let chain = Arc::clone(&chain);
                            Box::new(move |partitions| chain.assign(partitions))
                        },
                    },
                    SinkChain::One(Arc::clone(&chain)),
                ),
                (None, _) => (Reading::Group, SinkChain::One(Arc::clone(&chain))),
            };
            let mut intakes = Vec::new();
            let mut shuffle = None;
            if let (Some(link), Some(builder)) = (&kafka, shuffle_builder) {
                let (thread, task) = start_shuffle(
                    shared,
                    &name,
                    link,
                    &builder,
                    selector.clone(),
                    (key_converter.clone(), value_converter.clone()),
                    Arc::clone(&reporter),
                    &cancel,
                )?;
                intakes.push(thread);
                shuffle = Some(task);
            }
            // Behind a repartition topic the sink reads it, not its topics.
            let (read_selector, behind_repartition, group, converters) = match &shuffle {
                Some(_) => (
                    TopicSelector::List([shuffle::topic_name(&name)].into_iter().collect()),
                    Some(selector.clone()),
                    shuffle::state_group(&name),
                    (shuffle::internal_converter(), shuffle::internal_converter()),
                ),
                None => (
                    selector.clone(),
                    None,
                    // A bounded run's Kafka offsets are the run's own, as its other offsets.
                    match &run_id {
                        Some(run) => format!("connect-{name}-run-{run}"),
                        None => format!("connect-{name}"),
                    },
                    (key_converter.clone(), value_converter.clone()),
                ),
            };
            // Its tasks stop together: at a stop, or when one of them fails.
            let sibling_set = super::sink_tasks::Siblings::new(&cancel);
            let intake_stop = sibling_set.stop.child_token();
            // A bounded run reads the sink's topics up to their end offsets at the start.
            let kafka_read = (shared.run.bounded && kafka.is_some())
                .then(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
            let intake = match &kafka {
                Some(link) => {
                    let spec = IntakeSpec {
                        connector: name.clone(),
                        settings: link.settings.clone(),
                        selector: read_selector,
                        only_existing: !link.bus && behind_repartition.is_none(),
                        key_converter: converters.0,
                        value_converter: converters.1,
                        group: group.clone(),
                        task: 0,
                        behind_repartition,
                        parse_values: chain.parses_values(),
                        event_time: chain.leads_with_event_time().then(|| {
                            let chain = Arc::clone(&chain);
                            Arc::new(move |record: &mut Record| chain.leading_event_time(record))
                                as EventTimeOf
                        }),
                        inbox: inbox.clone(),
                        flush_now: Arc::clone(&flush_now),
                        // The consumer also stops when the sink fails, leaving the group so
                        // that its partitions go to the hosts still running (as Kafka Connect
                        // stops a failed task's consumer).
                        cancel: intake_stop.clone(),
                        sink_done: done.clone(),
                        on_failure: sibling_set.on_consumer_failure(shared, &name),
                        reading,
                        metrics: Arc::clone(&metrics),
                        bounded: kafka_read.clone(),
                    };
                    Some(intake::spawn(spec).map_err(|e| {
                        ConnectorError::fatal("starting the Kafka consumer thread", e)
                    })?)
                }
                None => None,
            };
            intakes.extend(intake);
            let (bounded_sink, bounded_task) = match shared.run.bounded {
                true => {
                    let (sink_end, task_end) = super::bounded::sink_channels(kafka_read);
                    (Some(sink_end), Some(task_end))
                }
                false => (None, None),
            };
            bounded = bounded_task;
            let runner = SinkRunner {
                bounded: bounded_sink,
                name: name.clone(),
                task: 0,
                siblings: Arc::clone(&sibling_set),
                stopped: cancel.clone(),
                shared: Arc::clone(shared),
                chain: sink_chain,
                reporter: Arc::clone(&reporter),
                metrics: Arc::clone(&metrics),
                topics: Arc::clone(&topics),
                cancel: sibling_set.stop.clone(),
                target: target_rx.clone(),
                held: Vec::new(),
                unflushed: Default::default(),
                flush_now,
                done,
                intake_stop,
                state,
            };
            let mut runs = vec![tokio::spawn(async move {
                runner.run(sink, subscription).await;
                // The copies are followed until the task is over: a task started next
                // must not find this one still writing them.
                if let Some(standby) = standby_task {
                    let _ = standby.await;
                }
            })];
            if let Some(link) = kafka.as_ref().filter(|_| !siblings.is_empty()) {
                let shares = super::sink_tasks::Shares {
                    host: shared,
                    name: &name,
                    link,
                    selector: &selector,
                    group: &group,
                    converters: &(key_converter.clone(), value_converter.clone()),
                    reporter: &reporter,
                    metrics: &metrics,
                    topics: &topics,
                    stopped: &cancel,
                    siblings: &sibling_set,
                    target: &target_rx,
                };
                for (id, task) in (1..).zip(siblings) {
                    match super::sink_tasks::start(&shares, id, task) {
                        Ok((run, thread)) => {
                            runs.push(run);
                            intakes.push(thread);
                        }
                        Err(e) => {
                            // The tasks already started stop (they flush and commit), and are
                            // waited for as the connector's when it stops.
                            if sibling_set.first_failure() {
                                fail(shared, &name, &e);
                            }
                            break;
                        }
                    }
                }
            }
            tasks = runs.len();
            Handle::Sink(SinkHandle {
                runs,
                intake: intakes,
                shuffle,
                inbox,
                converters: (key_converter, value_converter),
            })
        }
        Task::Source(source) => {
            // Starting from scratch after a read error would re-emit everything: refuse.
            let mut committed = shared
                .offsets
                .load(&name)
                .map_err(|e| ConnectorError::fatal("loading committed offsets", e))?;
            // Stateful steps resume from their checkpoint: its offsets, not the offsets file
            // (which may be ahead of the state), say where the source starts again.
            let state = if chain.is_stateful() {
                let path = StateStore::path_for(&shared.data_dir, &name);
                let store = StateStore::open(&path)
                    .map_err(|e| ConnectorError::fatal("opening the state store", e))?;
                chain
                    .restore_state(&store)
                    .map_err(|e| ConnectorError::fatal("restoring transform state", e))?;
                if let Some(offsets) = store
                    .checkpointed_offsets()
                    .map_err(|e| ConnectorError::fatal("reading the state checkpoint", e))?
                {
                    committed = offsets;
                }
                Some(store)
            } else {
                None
            };
            let tracker = OffsetTracker::new(committed.clone());
            let (signal_tx, signal_rx) = mpsc::channel(crate::api::connector::SIGNAL_QUEUE);
            signals = Some(signal_tx);
            let committed_at_start = committed.clone();
            let stop_committer = CancellationToken::new();
            // With state, offsets are written only at checkpoints, with the state they match
            // (`SourceTaskContext::checkpoint`): written ahead of the state, a crash before the
            // next checkpoint would resume past records the state never kept.
            let committer = tokio::spawn(commit_loop(
                name.clone(),
                Arc::clone(&tracker),
                shared.offsets.clone(),
                stop_committer.clone(),
                state.is_none(),
            ));
            let ctx = SourceTaskContext {
                connector: Arc::from(name.as_str()),
                committed,
                chain,
                reporter: Arc::clone(&reporter),
                publisher: publisher(shared, kafka, key_converter, value_converter)?,
                tracker: Arc::clone(&tracker),
                cancel: cancel.clone(),
                target: target_rx,
                metrics,
                topics,
                state,
                offset_store: shared.offsets.clone(),
                last_checkpoint: std::time::Instant::now(),
                checkpointed: committed_at_start,
                state_ahead: false,
                signals: Some(signal_rx),
                bounded: shared.run.bounded,
                unsubscribed,
                may_go_unread: Default::default(),
            };
            let progress = match shared.run.bounded {
                true => {
                    let (progress, task) = super::bounded::source_channels();
                    bounded = Some(task);
                    Some(progress)
                }
                false => None,
            };
            let run = tokio::spawn(run_source(
                name.clone(),
                Arc::clone(shared),
                source,
                ctx,
                reporter,
                progress,
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
        name,
        cancel,
        target: target_tx,
        handle,
        tasks,
        signals,
        bounded,
    })
}

/// Starts stage 1 of a repartition topic: a consumer of the sink's topics (group
/// `connect-<name>`) feeding a [`shuffle::Shuffle`] task that produces to the topic.
#[allow(clippy::too_many_arguments)]
fn start_shuffle(
    shared: &Arc<Shared>,
    name: &str,
    link: &Arc<KafkaLink>,
    builder: &crate::runtime::partitioned::ChainBuilder,
    selector: TopicSelector,
    (key_converter, value_converter): (BuiltinConverter, BuiltinConverter),
    reporter: Arc<ErrorReporter>,
    cancel: &CancellationToken,
) -> Result<(std::thread::JoinHandle<()>, JoinHandle<()>), ConnectorError> {
    let (prefix, keyer) = builder
        .shuffle()
        .map_err(|e| ConnectorError::fatal("building the shuffle's transform chain", e))?;
    let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
    let done = CancellationToken::new();
    let on_failure = |shared: &Arc<Shared>, name: &str| -> Box<dyn FnOnce(ConnectorError) + Send> {
        let (shared, name) = (Arc::clone(shared), name.to_owned());
        Box::new(move |e| fail(&shared, &name, &e))
    };
    let spec = IntakeSpec {
        connector: name.to_owned(),
        settings: link.settings.clone(),
        selector,
        only_existing: !link.bus,
        key_converter,
        value_converter,
        group: format!("connect-{name}"),
        task: 0,
        behind_repartition: None,
        parse_values: false,
        event_time: None,
        inbox: tx,
        // The shuffle acknowledges a batch once Kafka has it: nothing to flush.
        flush_now: Arc::new(Notify::new()),
        cancel: cancel.clone(),
        sink_done: done.clone(),
        on_failure: on_failure(shared, name),
        reading: Reading::Group,
        metrics: reporter.metrics(),
        bounded: None,
    };
    let thread = intake::spawn(spec)
        .map_err(|e| ConnectorError::fatal("starting the shuffle's Kafka consumer thread", e))?;
    let topic = shuffle::topic_name(name);
    let stage = shuffle::Shuffle {
        connector: name.to_owned(),
        prefix: Arc::new(prefix),
        keyer,
        producer: link.producer()?,
        topic: topic.clone(),
        partitions: link.settings.topic_partitions,
        inbox: rx,
        reporter,
        cancel: cancel.clone(),
    };
    let (link, shared, name) = (Arc::clone(link), Arc::clone(shared), name.to_owned());
    let task = tokio::spawn(async move {
        let result = match link.topics.ensure(&topic, None).await {
            Ok(()) => stage.run().await,
            Err(e) => Err(e),
        };
        done.cancel();
        if let Err(e) = result {
            fail(&shared, &name, &e);
        }
    });
    Ok((thread, task))
}

/// Waits for a sink runner, then for its Kafka consumer's last commit.
async fn await_sink(name: &str, h: SinkHandle) {
    for run in h.runs {
        await_task(name, run).await;
    }
    if let Some(shuffle) = h.shuffle {
        await_task(name, shuffle).await;
    }
    for intake in h.intake {
        let joined = tokio::task::spawn_blocking(move || intake.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            tracing::error!(connector = %name, "Kafka consumer thread panicked.");
        }
    }
}

/// The worker's Kafka with the connector's `producer.override.*` and `consumer.override.*`
/// applied (the shared link, and its producer, when there are none).
fn with_overrides(shared: &Shared, prepared: &Prepared) -> Option<Arc<KafkaLink>> {
    let link = shared.kafka.as_ref()?;
    if prepared.producer_overrides.is_empty() && prepared.consumer_overrides.is_empty() {
        return Some(Arc::clone(link));
    }
    let settings = link
        .settings
        .with_overrides(&prepared.producer_overrides, &prepared.consumer_overrides);
    Some(Arc::new(KafkaLink::new(settings, link.bus)))
}

/// Where a source's records go: Kafka on the Kafka bus, else the embedded bus.
fn publisher(
    shared: &Shared,
    kafka: Option<Arc<KafkaLink>>,
    key: BuiltinConverter,
    value: BuiltinConverter,
) -> Result<Publisher, ConnectorError> {
    match kafka {
        Some(link) if link.bus => Ok(Publisher::Kafka(Box::new(KafkaPublisher::new(
            link, key, value,
        )?))),
        _ => Ok(Publisher::Embedded(Arc::clone(&shared.bus))),
    }
}

pub(super) async fn await_task(name: &str, handle: JoinHandle<()>) {
    if let Err(e) = handle.await {
        tracing::error!(connector = %name, error = %e, "Connector task panicked.");
    }
}

/// Stops a task: a sink drains and flushes; a source stops reading, gives its sinks
/// [`SOURCE_DRAIN_TIMEOUT`] to acknowledge, and writes its final offsets.
pub(super) async fn stop(r: Running) {
    r.cancel.cancel();
    match r.handle {
        Handle::Sink(h) => await_sink(&r.name, h).await,
        Handle::Source(h) => {
            await_task(&r.name, h.run).await;
            let deadline = tokio::time::Instant::now() + SOURCE_DRAIN_TIMEOUT;
            while h.tracker.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            h.stop_committer.cancel();
            await_task(&r.name, h.committer).await;
        }
    }
}

/// Stops many tasks the way a shutdown must: sources first, then sinks (which flush and ack
/// what the sources sent), then the sources' committers (which write the final offsets).
pub(super) async fn stop_all(tasks: Vec<Running>) {
    let (sources, sinks): (Vec<_>, Vec<_>) = tasks.into_iter().partition(Running::is_source);
    for r in sources.iter().chain(&sinks) {
        if r.is_source() {
            r.cancel.cancel();
        }
    }
    let mut committers = Vec::new();
    for r in sources {
        if let Handle::Source(h) = r.handle {
            await_task(&r.name, h.run).await;
            committers.push((r.name, h.committer, h.stop_committer));
        }
    }
    for r in &sinks {
        r.cancel.cancel();
    }
    for r in sinks {
        if let Handle::Sink(h) = r.handle {
            await_sink(&r.name, h).await;
        }
    }
    for (name, committer, stop) in committers {
        stop.cancel();
        await_task(&name, committer).await;
    }
}
