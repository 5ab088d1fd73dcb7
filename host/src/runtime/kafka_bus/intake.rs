//! Feeding a sink from Kafka: a consumer in group `connect-<sink>` reads the sink's topics,
//! converts each message with the sink's key and value converters, and hands batches to the
//! sink's inbox like any local source would.
//!
//! Offsets are committed to Kafka only for records the sink flushed: each batch is registered
//! with an [`OffsetTracker`] whose acknowledged offsets this loop commits. When the group takes
//! partitions away, the consumer asks the sink to flush, waits for the acknowledgements and
//! commits before letting go, so the next owner starts exactly after what was written here.
//!
//! A sink whose chain keeps state (windows) reads differently, as Flink's KafkaSource does: its
//! checkpoint is the truth. The consumer assigns itself every partition of the sink's topics
//! (no group rebalancing, so one host's windows see every record of their group), starts each
//! from the checkpointed offset, and finds new partitions and topics every few seconds. It
//! reads the partitions in step, furthest behind in event time first (`super::aligned`). The
//! group's offsets are still committed, after each checkpoint, for lag and tooling.
//!
//! The consumer runs on its own thread: librdkafka's rebalance callbacks run inside `poll`, and
//! waiting for the sink there must not hold up an async worker.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::api::convert::Converter;
use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::metrics::ConnectorMetrics;
use crate::api::offsets::SourceOffsets;
use crate::api::record::{Header, Payload, Position, Record};
use crate::api::retry::{Backoff, INITIAL_DELAY};
use crate::converters::BuiltinConverter;
use crate::kafka::client::{KafkaSettings, connector_error, is_partition_eof};
use crate::runtime::ack::OffsetTracker;
use crate::runtime::bus::{Delivery, TopicSelector};
use crate::runtime::partitioned::Ownership;

use super::aligned::{self, AlignedReader};
use super::lag::LagMeter;

/// Most records handed to the sink in one batch (Kafka's `max.poll.records` default).
pub(super) const MAX_BATCH: usize = 500;
/// How long a poll waits for the first message of a batch.
pub(super) const POLL_WAIT: Duration = Duration::from_millis(100);
/// How long partitions being revoked (or a stopping consumer) wait for the sink's flush.
const FLUSH_WAIT: Duration = Duration::from_secs(30);
/// Pause between checks while waiting for the sink.
const WAIT_STEP: Duration = Duration::from_millis(5);
/// The first pause while the sink's inbox is full; it doubles up to [`WAIT_STEP`].
const FIRST_INBOX_PAUSE: Duration = Duration::from_micros(100);
/// How long a rebalance waits for the group's committed offsets, and how often it asks.
const COMMITTED_WAIT: Duration = Duration::from_secs(10);
const COMMITTED_TRIES: u32 = 3;
/// How often a sink on the embedded bus looks for listed topics Kafka does not have yet.
const TOPIC_RECHECK: Duration = Duration::from_secs(5);

/// Told the partitions a stateful sink's consumer owns, as records' positions name them.
pub type OnAssign = Box<dyn Fn(&BTreeSet<String>) + Send>;

/// Everything a sink's Kafka consumer needs.
pub struct IntakeSpec {
    pub connector: String,
    pub settings: KafkaSettings,
    pub selector: TopicSelector,
    /// Consume only the listed topics Kafka already has (the embedded bus: topics missing from
    /// Kafka are the local sources' business). With the Kafka bus every listed topic is read.
    pub only_existing: bool,
    pub key_converter: BuiltinConverter,
    pub value_converter: BuiltinConverter,
    pub inbox: mpsc::Sender<Delivery>,
    /// Notified to make the sink flush now (before partitions are revoked).
    pub flush_now: Arc<Notify>,
    /// Cancelled when the task stops.
    pub cancel: CancellationToken,
    /// Cancelled when the sink runner has finished (flushed what it could, or failed).
    pub sink_done: CancellationToken,
    /// Called when the consumer cannot run (a client property librdkafka refuses, a bad
    /// subscription): the connector is marked FAILED with the reason.
    pub on_failure: Box<dyn FnOnce(ConnectorError) + Send>,
    pub reading: Reading,
    /// The consumer group (`connect-<name>`, or a repartition topic's stage 2 group).
    pub group: String,
    /// Which of the sink's tasks this consumer feeds (`tasks.max`; 0 when it runs one).
    pub task: usize,
    /// Reading a repartition topic (`crate::runtime::shuffle`): the upstream topics. Records
    /// take back their upstream topic and are positioned by their upstream partition and
    /// offset.
    pub behind_repartition: Option<TopicSelector>,
    /// Parse each value into its structured form here, on the consumer's thread: the sink's
    /// chain reads fields of every record (a window), and its task is the busier one.
    pub parse_values: bool,
    /// How the sink's chain reads a record's event time, when it starts with a window on event
    /// time: a stateful sink reads its partitions in step by it (see `aligned`), rather than
    /// by the Kafka timestamps.
    pub event_time: Option<EventTimeOf>,
    /// Where the consumer's lag is reported (see `super::lag`).
    pub metrics: Arc<ConnectorMetrics>,
    /// A bounded run: set once the consumer has handed the sink everything up to the end
    /// offsets its topics had when it started (`crate::runtime::bounded`).
    pub bounded: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// A bounded run's end: the end offsets of the sink's topics when the consumer started.
struct EndOffsets {
    ends: HashMap<(String, i32), i64>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl EndOffsets {
    /// The high watermarks of every partition of the wanted topics Kafka has now.
    fn take(
        spec: &IntakeSpec,
        consumer: &BaseConsumer<IntakeContext>,
        done: Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        let mut ends = HashMap::new();
        for topic in metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .filter(|t| spec.selector.matches(t.name()))
        {
            for partition in topic.partitions() {
                let (low, high) = consumer.fetch_watermarks(
                    topic.name(),
                    partition.id(),
                    Duration::from_secs(10),
                )?;
                if high > low {
                    ends.insert((topic.name().to_owned(), partition.id()), high);
                }
            }
        }
        tracing::info!(connector = %spec.connector, partitions = ends.len(), "Bounded run: reading the sink's topics up to their end offsets now.");
        Ok(Self { ends, done })
    }

    /// Marks the input read once every partition was read to its end offset.
    fn check(&self, read: &HashMap<(String, i32), i64>) {
        if self
            .ends
            .iter()
            .all(|(key, end)| read.get(key).is_some_and(|next| next >= end))
        {
            self.done.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// A record's event time as a sink's chain reads it.
pub type EventTimeOf = Arc<dyn Fn(&mut Record) -> Option<i64> + Send + Sync>;

/// Which partitions the consumer reads, and from where.
pub enum Reading {
    /// The partitions the group assigns, from the group's offsets (a stateless sink).
    Group,
    /// Every partition of the sink's topics, from the checkpoint (a stateful sink with one
    /// task: the checkpoint is the truth, as in Flink's KafkaSource).
    Every {
        /// The checkpointed offsets by (topic, partition); a partition the checkpoint lacks
        /// starts from the group's committed offset, or `auto.offset.reset`.
        checkpointed: HashMap<(String, i32), i64>,
        /// Told the partitions the consumer owns (as records' positions name them) whenever
        /// they change.
        on_assign: OnAssign,
    },
    /// The partitions the group assigns, each with its own state (a stateful sink with
    /// `tasks.max` > 1, see `crate::runtime::partitioned`): the group's offsets, which follow
    /// the checkpoints, say where each starts; records the checkpoint already holds are
    /// skipped by the sink.
    Partitioned(Arc<Ownership>),
}

impl std::fmt::Debug for IntakeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntakeSpec")
            .field("connector", &self.connector)
            .field("selector", &self.selector)
            .finish()
    }
}

/// Starts the consumer thread.
pub fn spawn(mut spec: IntakeSpec) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(match spec.task {
            0 => format!("kafka-in-{}", spec.connector),
            task => format!("kafka-in-{}-{task}", spec.connector),
        })
        .spawn(move || {
            let on_failure = std::mem::replace(&mut spec.on_failure, Box::new(|_| {}));
            if let Err(e) = run(spec) {
                on_failure(connector_error("running the sink's Kafka consumer", e));
            }
        })
}

pub(super) struct IntakeContext {
    connector: String,
    group: String,
    /// Which of the sink's tasks the consumer feeds.
    task: usize,
    /// Set by a rebalance: the lag is measured again at once, so that a partition that moved
    /// to another task of this host is not listed by both for the next seconds.
    assignment_changed: std::sync::atomic::AtomicBool,
    /// With state per partition: told what the group assigns and revokes.
    ownership: Option<Arc<Ownership>>,
    /// Behind a repartition topic: the upstream topics, whose partitions are the inputs of
    /// every partition's windows.
    upstream: Option<TopicSelector>,
    /// Why the consumer must stop, found in a rebalance callback (which cannot return it).
    failure: std::sync::Mutex<Option<rdkafka::error::KafkaError>>,
    tracker: Arc<OffsetTracker>,
    flush_now: Arc<Notify>,
    sink_done: CancellationToken,
}

impl ClientContext for IntakeContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if is_missing_topic(&error) {
            tracing::debug!(connector = %self.connector, reason, "A subscribed topic does not exist yet.");
        } else if is_partition_eof(&error) {
            // Aligned intake asks for partition ends (`enable.partition.eof`) to know when its
            // inputs are caught up; librdkafka reports each one here as an error too.
            tracing::trace!(connector = %self.connector, reason, "A partition was read to its end.");
        } else {
            tracing::warn!(connector = %self.connector, error = %error, reason, "Kafka client error.");
        }
    }
}

pub(super) fn is_missing_topic(error: &rdkafka::error::KafkaError) -> bool {
    error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition)
}

impl ConsumerContext for IntakeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.assignment_changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
        match rebalance {
            Rebalance::Revoke(partitions) => {
                tracing::info!(
                    connector = %self.connector,
                    partitions = partitions.count(),
                    "Partitions revoked; flushing the sink before committing."
                );
                if let Some(ownership) = &self.ownership {
                    // Before the flush: the checkpoint it ends with lets their state go.
                    ownership.revoke(&topic_partitions(partitions));
                }
                self.flush_now.notify_one();
                wait_for_sink(&self.tracker, &self.sink_done);
                commit(consumer, &self.tracker, Some(partitions), CommitMode::Sync);
                // Partitions kept (cooperative rebalancing) are committed by the next round.
                self.tracker.mark_dirty();
            }
            Rebalance::Assign(partitions) => {
                for p in partitions.elements() {
                    self.tracker
                        .forget(&partition_key(p.topic(), p.partition()));
                }
                if let Some(ownership) = &self.ownership {
                    self.assign_partitioned(consumer, ownership, partitions);
                }
                tracing::info!(
                    connector = %self.connector,
                    group = %self.group,
                    partitions = partitions.count(),
                    task = self.task,
                    "Partitions assigned."
                );
            }
            Rebalance::Error(e) => {
                tracing::warn!(connector = %self.connector, error = %e, "Rebalance failed.");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            // The next commit carries the same or newer offsets; nothing is lost meanwhile.
            tracing::warn!(connector = %self.connector, error = %e, "Offset commit failed; will retry.");
            self.tracker.mark_dirty();
        }
    }
}

impl IntakeContext {
    /// Tells the sink's partitioned state which partitions it owns now, with the group's
    /// offsets its restore checks the changelog against.
    fn assign_partitioned(
        &self,
        consumer: &BaseConsumer<Self>,
        ownership: &Ownership,
        partitions: &TopicPartitionList,
    ) {
        // A restore checks the changelog against the group's offsets: without them the task
        // cannot tell whether the state it finds is the one they need, and stops (FAILED, with
        // the reason) rather than guess.
        let committed = match committed_offsets(consumer, partitions) {
            Ok(committed) => committed,
            Err(e) => {
                tracing::error!(connector = %self.connector, error = %e, "Could not read the group's committed offsets of the assigned partitions.");
                *self
                    .failure
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                return;
            }
        };
        let assigned: Vec<(String, i32, Option<i64>)> = partitions
            .elements()
            .iter()
            .map(|p| {
                let offset = committed
                    .find_partition(p.topic(), p.partition())
                    .and_then(|e| e.offset().to_raw())
                    .filter(|o| *o >= 0);
                (p.topic().to_owned(), p.partition(), offset)
            })
            .collect();
        if let Some(upstream) = &self.upstream {
            match consumer.fetch_metadata(None, COMMITTED_WAIT) {
                Ok(metadata) => ownership.set_upstream(
                    metadata
                        .topics()
                        .iter()
                        .filter(|t| t.error().is_none() && upstream.matches(t.name()))
                        .flat_map(|t| {
                            t.partitions()
                                .iter()
                                .map(|p| format!("{}-{}", t.name(), p.id()))
                        })
                        .collect(),
                ),
                Err(e) => {
                    *self
                        .failure
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    return;
                }
            }
        }
        ownership.assign(&assigned);
    }
}

/// The group's committed offsets of `partitions`, with a few tries (the coordinator may be
/// loading); an error of any partition is an error.
fn committed_offsets(
    consumer: &BaseConsumer<IntakeContext>,
    partitions: &TopicPartitionList,
) -> KafkaResult<TopicPartitionList> {
    let mut tries = 0;
    loop {
        tries += 1;
        let result = consumer
            .committed_offsets(partitions.clone(), COMMITTED_WAIT)
            .and_then(
                |list| match list.elements().iter().find_map(|e| e.error().err()) {
                    Some(e) => Err(e),
                    None => Ok(list),
                },
            );
        match result {
            Err(e) if tries < COMMITTED_TRIES => {
                tracing::warn!(error = %e, "Reading the group's committed offsets failed; retrying.");
            }
            result => return result,
        }
    }
}

/// The (topic, partition) pairs of a list.
fn topic_partitions(list: &TopicPartitionList) -> Vec<(String, i32)> {
    list.elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect()
}

/// Waits until every batch handed to the sink is acknowledged (or the sink is gone).
fn wait_for_sink(tracker: &OffsetTracker, sink_done: &CancellationToken) {
    let deadline = Instant::now() + FLUSH_WAIT;
    while tracker.in_flight() > 0 && !sink_done.is_cancelled() && Instant::now() < deadline {
        std::thread::sleep(WAIT_STEP);
    }
}

/// The waits of this thread while the schema registry is unreachable: 300 ms doubling to 30 s.
fn registry_backoff() -> Backoff {
    Backoff::new(INITIAL_DELAY, Duration::from_secs(30))
}

/// The source partition of a topic partition, in the offsets' JSON form.
pub fn partition_key(topic: &str, partition: i32) -> Value {
    json!({ "topic": topic, "partition": partition })
}

/// Commits the acknowledged offsets of the assigned partitions (or of `only` those).
fn commit(
    consumer: &BaseConsumer<IntakeContext>,
    tracker: &OffsetTracker,
    only: Option<&TopicPartitionList>,
    mode: CommitMode,
) {
    let Some(acked) = tracker.take_dirty() else {
        return;
    };
    let assigned = match only {
        Some(tpl) => tpl.clone(),
        None => match consumer.assignment() {
            Ok(tpl) => tpl,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the partition assignment.");
                tracker.mark_dirty();
                return;
            }
        },
    };
    let list = offsets_to_commit(&acked, &assigned);
    if list.count() == 0 {
        return;
    }
    if let Err(e) = consumer.commit(&list, mode) {
        tracing::warn!(error = %e, "Offset commit failed; will retry.");
        tracker.mark_dirty();
    }
}

/// Acknowledged offsets restricted to the partitions this member owns: committing a
/// partition another member took over would move its position backwards.
fn offsets_to_commit(acked: &SourceOffsets, assigned: &TopicPartitionList) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for elem in assigned.elements() {
        let key = partition_key(elem.topic(), elem.partition());
        if let Some(next) = acked.get(&key).and_then(|o| o["offset"].as_i64())
            && list
                .add_partition_offset(elem.topic(), elem.partition(), Offset::Offset(next))
                .is_err()
        {
            tracing::warn!(topic = elem.topic(), "Invalid offset to commit; skipped.");
        }
    }
    list
}

fn run(spec: IntakeSpec) -> Result<(), rdkafka::error::KafkaError> {
    let tracker = OffsetTracker::new(SourceOffsets::default());
    let context = IntakeContext {
        connector: spec.connector.clone(),
        group: spec.group.clone(),
        task: spec.task,
        assignment_changed: std::sync::atomic::AtomicBool::new(false),
        ownership: match &spec.reading {
            Reading::Partitioned(ownership) => Some(Arc::clone(ownership)),
            Reading::Group | Reading::Every { .. } => None,
        },
        upstream: spec.behind_repartition.clone(),
        failure: std::sync::Mutex::new(None),
        tracker: Arc::clone(&tracker),
        flush_now: Arc::clone(&spec.flush_now),
        sink_done: spec.sink_done.clone(),
    };
    let group = spec.group.clone();
    // Kafka Connect names a task's consumer by its task: the group's members tell which is which.
    let client_id = match spec.task {
        0 => format!("headwater-{}", spec.connector),
        task => format!("headwater-{}-{task}", spec.connector),
    };
    let mut config = match spec.reading {
        // Assigns itself every partition: never a group member.
        Reading::Every { .. } => spec.settings.consumer_config(&group, &client_id),
        Reading::Group | Reading::Partitioned(_) => spec
            .settings
            .group_consumer_config(&group, &client_id, spec.task),
    };
    if matches!(spec.reading, Reading::Partitioned(_))
        && config.get("partition.assignment.strategy").is_none()
    {
        // A rebalance revokes only the partitions that move: the others keep their state in
        // memory and never stop (Kafka Streams' default protocol).
        config.set("partition.assignment.strategy", "cooperative-sticky");
    }
    if matches!(spec.reading, Reading::Every { .. }) {
        aligned::configure(&mut config, &spec.settings);
    }
    let consumer: Arc<BaseConsumer<IntakeContext>> = Arc::new(config.create_with_context(context)?);
    let mut subscription = Subscription::new(&spec);
    let source: Arc<str> = Arc::from(spec.connector.as_str());
    let mut names = PartitionNames::default();
    // A stateful sink reads its partitions in step (see `aligned`); the reader of the current
    // assignment, by the assignment's generation.
    let mut aligned: Option<(u64, AlignedReader)> = None;
    let mut lag = LagMeter::new(Arc::clone(&spec.metrics), &spec.group, spec.task);
    let end_offsets = match &spec.bounded {
        Some(done) => Some(EndOffsets::take(&spec, &consumer, Arc::clone(done))?),
        None => None,
    };
    if let Some(end) = &end_offsets {
        end.check(&subscription.read);
    }
    while !spec.cancel.is_cancelled() {
        if !subscription.refresh(&spec, &consumer)? {
            std::thread::sleep(POLL_WAIT);
            continue;
        }
        let batch = if matches!(spec.reading, Reading::Every { .. }) {
            if aligned.as_ref().map(|(generation, _)| *generation) != Some(subscription.generation)
            {
                // The old queues go first: dropping one clears the callback of the
                // partition's queue, which the new reader sets again.
                drop(aligned.take());
                aligned = Some((
                    subscription.generation,
                    AlignedReader::split(&consumer, &subscription.assigned),
                ));
            }
            aligned
                .as_mut()
                .and_then(|(_, reader)| reader.poll_batch(&consumer, &spec, &source, &mut names))
        } else {
            poll_batch(&consumer, &spec, &source, &mut names)
        };
        if let Some(e) = consumer
            .context()
            .failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            return Err(e);
        }
        commit(&consumer, &tracker, None, CommitMode::Async);
        if consumer
            .context()
            .assignment_changed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            lag.due_now();
        }
        lag.tick(&consumer);
        let Some((records, failed, offsets)) = batch else {
            continue;
        };
        subscription.note_read(&offsets);
        let ack = tracker
            .begin(offsets, 1)
            .pop()
            .expect("begin returns one token per sink");
        let mut delivery = Delivery {
            records,
            failed,
            ack,
        };
        // Waits while the sink's inbox is full; the group heartbeat runs on librdkafka's thread.
        // The pause starts short: a busy sink frees a slot within a batch's time (~3 ms for a
        // window), and a fixed 5 ms left it waiting for this thread.
        let mut pause = FIRST_INBOX_PAUSE;
        loop {
            match spec.inbox.try_send(delivery) {
                Ok(()) => break,
                Err(mpsc::error::TrySendError::Full(back)) => {
                    if spec.cancel.is_cancelled() {
                        lag.clear();
                        return finish(&consumer, &tracker, &spec);
                    }
                    // Held back by the sink: what it has not taken grows behind.
                    lag.tick(&consumer);
                    delivery = back;
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(WAIT_STEP);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    lag.clear();
                    return finish(&consumer, &tracker, &spec);
                }
            }
        }
        if let Some(end) = &end_offsets {
            end.check(&subscription.read);
        }
    }
    lag.clear();
    finish(&consumer, &tracker, &spec)
}

/// A stopping consumer waits for the sink's last flush and commits it before leaving the group.
fn finish(
    consumer: &BaseConsumer<IntakeContext>,
    tracker: &OffsetTracker,
    spec: &IntakeSpec,
) -> Result<(), rdkafka::error::KafkaError> {
    wait_for_sink(tracker, &spec.sink_done);
    commit(consumer, tracker, None, CommitMode::Sync);
    if matches!(spec.reading, Reading::Every { .. }) {
        consumer.unassign()?;
    } else {
        consumer.unsubscribe();
    }
    Ok(())
}

/// What the sink reads from Kafka: a regex (librdkafka's form, `^` first) or listed topics.
/// With `only_existing` (the embedded bus), listed topics Kafka does not have yet are looked
/// for again every [`TOPIC_RECHECK`], so a topic created after the sink started is read too.
struct Subscription {
    wanted: Vec<String>,
    only_existing: bool,
    current: Vec<String>,
    next_check: Instant,
    said_waiting: bool,
    /// A stateful sink's: the partitions assigned, and the next offset to read of each
    /// partition read so far (kept when new partitions are added to the assignment).
    assigned: BTreeSet<(String, i32)>,
    read: HashMap<(String, i32), i64>,
    /// Counts the assignments made: each ends the partition queues split before.
    generation: u64,
}

impl Subscription {
    fn new(spec: &IntakeSpec) -> Self {
        let (mut wanted, only_existing) = match &spec.selector {
            TopicSelector::Regex(re) => (vec![format!("^(?:{})$", re.as_str())], false),
            TopicSelector::List(topics) => (topics.iter().cloned().collect(), spec.only_existing),
        };
        wanted.sort();
        Self {
            wanted,
            only_existing,
            current: Vec::new(),
            next_check: Instant::now(),
            said_waiting: false,
            assigned: BTreeSet::new(),
            read: HashMap::new(),
            generation: 0,
        }
    }

    /// Notes the next offsets to read after a batch.
    fn note_read(&mut self, offsets: &[(Value, Value)]) {
        for (key, next) in offsets {
            if let (Some(topic), Some(partition), Some(next)) = (
                key["topic"].as_str(),
                key["partition"]
                    .as_i64()
                    .and_then(|p| i32::try_from(p).ok()),
                next["offset"].as_i64(),
            ) {
                self.read.insert((topic.to_owned(), partition), next);
            }
        }
    }

    /// A stateful sink's consumer: assigns itself every partition of the wanted topics that
    /// Kafka has, each from where it was read to, else from the checkpoint, else from the
    /// group's offset. Returns whether anything is assigned.
    fn assign_all(
        &mut self,
        spec: &IntakeSpec,
        consumer: &BaseConsumer<IntakeContext>,
        checkpointed: &HashMap<(String, i32), i64>,
        on_assign: &OnAssign,
    ) -> Result<bool, rdkafka::error::KafkaError> {
        if Instant::now() < self.next_check {
            return Ok(!self.assigned.is_empty());
        }
        self.next_check = Instant::now() + TOPIC_RECHECK;
        let metadata = match consumer.fetch_metadata(None, Duration::from_secs(10)) {
            Ok(metadata) => metadata,
            Err(e) => {
                tracing::warn!(connector = %spec.connector, error = %e, retry_in_s = TOPIC_RECHECK.as_secs(), "Could not list Kafka's topics; retrying.");
                return Ok(!self.assigned.is_empty());
            }
        };
        let found: BTreeSet<(String, i32)> = metadata
            .topics()
            .iter()
            .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
            .filter(|t| spec.selector.matches(t.name()))
            .flat_map(|t| t.partitions().iter().map(|p| (t.name().to_owned(), p.id())))
            .collect();
        if found == self.assigned {
            return Ok(!found.is_empty());
        }
        let mut list = TopicPartitionList::new();
        for (topic, partition) in &found {
            let key = (topic.clone(), *partition);
            let offset = match self.read.get(&key).or_else(|| checkpointed.get(&key)) {
                Some(next) => Offset::Offset(*next),
                None => Offset::Stored,
            };
            list.add_partition_offset(topic, *partition, offset)?;
        }
        consumer.assign(&list)?;
        self.generation += 1;
        tracing::info!(
            connector = %spec.connector,
            partitions = found.len(),
            "Reading every partition of the sink's topics from the state checkpoint."
        );
        tracing::debug!(
            connector = %spec.connector,
            from = ?list
                .elements()
                .iter()
                .map(|e| format!("{}/{}@{:?}", e.topic(), e.partition(), e.offset()))
                .collect::<Vec<_>>(),
            "Starting positions."
        );
        let names = found
            .iter()
            .map(|(topic, partition)| partition_key(topic, *partition).to_string())
            .collect();
        on_assign(&names);
        self.assigned = found;
        Ok(!self.assigned.is_empty())
    }

    /// Subscribes to what is wanted (and, with `only_existing`, in Kafka) when that changed.
    /// Returns whether anything is subscribed.
    fn refresh(
        &mut self,
        spec: &IntakeSpec,
        consumer: &BaseConsumer<IntakeContext>,
    ) -> Result<bool, rdkafka::error::KafkaError> {
        if let Reading::Every {
            checkpointed,
            on_assign,
        } = &spec.reading
        {
            return self.assign_all(spec, consumer, checkpointed, on_assign);
        }
        if self.current.len() == self.wanted.len() || Instant::now() < self.next_check {
            return Ok(!self.current.is_empty());
        }
        self.next_check = Instant::now() + TOPIC_RECHECK;
        let topics = if self.only_existing {
            match consumer.fetch_metadata(None, Duration::from_secs(10)) {
                Ok(metadata) => self
                    .wanted
                    .iter()
                    .filter(|t| metadata.topics().iter().any(|m| m.name() == t.as_str()))
                    .cloned()
                    .collect(),
                Err(e) => {
                    tracing::warn!(connector = %spec.connector, error = %e, retry_in_s = TOPIC_RECHECK.as_secs(), "Could not list Kafka's topics; retrying.");
                    return Ok(!self.current.is_empty());
                }
            }
        } else {
            self.wanted.clone()
        };
        if topics != self.current && !topics.is_empty() {
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer.subscribe(&refs)?;
            tracing::info!(connector = %spec.connector, group = %spec.group, topics = ?topics, "Consuming from Kafka.");
            if let Reading::Partitioned(ownership) = &spec.reading {
                ownership.set_topics(topics.clone());
            }
            self.current = topics;
        } else if self.current.is_empty() && !self.said_waiting {
            self.said_waiting = true;
            tracing::debug!(connector = %spec.connector, recheck_s = TOPIC_RECHECK.as_secs(), "None of the sink's topics is in Kafka yet; reading local sources.");
        }
        Ok(!self.current.is_empty())
    }
}

/// Records converted, records that failed conversion, and the offsets reached per partition.
pub(super) type Batch = (Vec<Record>, Vec<(Record, RecordError)>, Vec<(Value, Value)>);

/// Each topic partition's name in records' positions (its [`partition_key`] as text), built
/// once per partition rather than once per record.
#[derive(Default)]
pub(super) struct PartitionNames(Vec<(String, i32, Arc<str>)>);

impl PartitionNames {
    pub(super) fn get(&mut self, topic: &str, partition: i32) -> Arc<str> {
        if let Some((_, _, name)) = self
            .0
            .iter()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(partition_key(topic, partition).to_string());
        self.0
            .push((topic.to_owned(), partition, Arc::clone(&name)));
        name
    }
}

fn poll_batch(
    consumer: &BaseConsumer<IntakeContext>,
    spec: &IntakeSpec,
    source: &Arc<str>,
    names: &mut PartitionNames,
) -> Option<Batch> {
    let mut batch = BatchBuilder::default();
    read_queue(consumer, &mut batch, POLL_WAIT, spec, source, names)?;
    batch.finish()
}

/// Reads the consumer's own queue into `batch` until the batch is full or the queue empty,
/// waiting up to `wait` for the first message (polling also serves librdkafka's callbacks).
/// `None` when the task stopped (see [`BatchBuilder::take`]).
pub(super) fn read_queue(
    consumer: &BaseConsumer<IntakeContext>,
    batch: &mut BatchBuilder,
    mut wait: Duration,
    spec: &IntakeSpec,
    source: &Arc<str>,
    names: &mut PartitionNames,
) -> Option<()> {
    while batch.len() < MAX_BATCH {
        match consumer.poll(wait) {
            None => break,
            Some(Ok(message)) => {
                batch.take(&message, spec, source, names)?;
            }
            Some(Err(e)) => {
                log_consumer_error(spec, &e);
                break;
            }
        }
        wait = Duration::ZERO;
    }
    Some(())
}

/// Logs what a poll returned instead of a message, unless it is expected: a partition's end
/// (reported for an aligned reader), a listed topic Kafka does not have yet.
pub(super) fn log_consumer_error(spec: &IntakeSpec, error: &rdkafka::error::KafkaError) {
    match error {
        rdkafka::error::KafkaError::PartitionEOF(_) => {}
        e if is_missing_topic(e) => {}
        e => tracing::warn!(connector = %spec.connector, error = %e, "Kafka consumer error."),
    }
}

/// The batch being read: records converted, records that failed conversion, and the next
/// offset of each partition it reached.
#[derive(Default)]
pub(super) struct BatchBuilder {
    records: Vec<Record>,
    failed: Vec<(Record, RecordError)>,
    reached: Vec<(String, i32, i64)>,
}

impl BatchBuilder {
    pub(super) fn len(&self) -> usize {
        self.records.len() + self.failed.len()
    }

    /// Converts and adds a message: the record, `Some(None)` when it failed conversion (it is
    /// a dead letter), `None` when the task stopped while the schema registry was away —
    /// nothing of this batch may then be handed over or committed (the next owner reads it
    /// again).
    pub(super) fn take(
        &mut self,
        message: &BorrowedMessage<'_>,
        spec: &IntakeSpec,
        source: &Arc<str>,
        names: &mut PartitionNames,
    ) -> Option<Option<&mut Record>> {
        let (topic, partition, next) = (message.topic(), message.partition(), message.offset() + 1);
        match self
            .reached
            .iter_mut()
            .find(|(t, p, _)| *p == partition && t == topic)
        {
            Some((_, _, offset)) => *offset = next,
            None => self.reached.push((topic.to_owned(), partition, next)),
        }
        let position = names.get(topic, partition);
        match convert_waiting(message, spec, source, position)? {
            Ok(record) => {
                self.records.push(record);
                Some(self.records.last_mut())
            }
            Err(failure) => {
                self.failed.push(*failure);
                Some(None)
            }
        }
    }

    /// The batch, unless nothing was read.
    pub(super) fn finish(self) -> Option<Batch> {
        let offsets: Vec<(Value, Value)> = self
            .reached
            .into_iter()
            .map(|(t, p, next)| (partition_key(&t, p), json!({ "offset": next })))
            .collect();
        (!offsets.is_empty()).then_some((self.records, self.failed, offsets))
    }
}

/// A Kafka message as a record, through the sink's converters. On failure, the record keeps the
/// original bytes for the dead-letter queue.
fn convert(
    message: &BorrowedMessage<'_>,
    spec: &IntakeSpec,
    source: &Arc<str>,
    position: Arc<str>,
) -> Result<Record, Conversion> {
    let key_bytes = message.key().map(Bytes::copy_from_slice);
    let value_bytes = message.payload().map(Bytes::copy_from_slice);
    let mut record = Record {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis(),
        key: Payload::null(),
        value: Payload::null(),
        headers: message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| Header {
                        key: h.key.to_owned(),
                        value: h.value.map(Bytes::copy_from_slice),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        position: Some(Position {
            source: Arc::clone(source),
            partition: position,
            offset: u64::try_from(message.offset() + 1).unwrap_or(0),
        }),
    };
    if spec.behind_repartition.is_some() {
        from_repartition(&mut record, message, source);
    }
    let read = |converter: &BuiltinConverter, bytes: &Option<Bytes>| match bytes {
        Some(b) => converter.read(b.clone()),
        None => Ok(Payload::null()),
    };
    let failure = match read(&spec.key_converter, &key_bytes) {
        Ok(key) => match read(&spec.value_converter, &value_bytes) {
            Ok(value) => {
                record.key = key;
                record.value = value;
                if spec.parse_values {
                    // Not JSON: the step reading it says so, with its context.
                    let _ = record.value.get();
                }
                return Ok(record);
            }
            Err(e) => (Stage::ValueConverter, spec.value_converter.class(), e),
        },
        Err(e) => (Stage::KeyConverter, spec.key_converter.class(), e),
    };
    let (stage, class, error) = failure;
    if error.is_transient() {
        return Err(Conversion::Transient(error));
    }
    // The dead letter carries the bytes exactly as they were consumed.
    record.key = key_bytes.map(Payload::json_bytes).unwrap_or_default();
    record.value = value_bytes.map(Payload::json_bytes).unwrap_or_default();
    let error = RecordError::new(
        stage,
        class,
        crate::api::error::DATA_EXCEPTION,
        error.to_string(),
    );
    Err(Conversion::Refused(Box::new((record, error))))
}

/// A repartition topic's record takes back its upstream topic, and is positioned by its
/// upstream partition and offset (a marker, at 0).
fn from_repartition(record: &mut Record, message: &BorrowedMessage<'_>, source: &Arc<str>) {
    use crate::runtime::shuffle::{OFFSET_HEADER, SRC_HEADER, TOPIC_HEADER, position_partition};
    let text = |key: &str| {
        record
            .headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned)
    };
    let src = text(SRC_HEADER).unwrap_or_default();
    let offset: i64 = text(OFFSET_HEADER)
        .and_then(|o| o.parse().ok())
        .unwrap_or(-1);
    if let Some(topic) = text(TOPIC_HEADER) {
        record.topic = topic;
    }
    record
        .headers
        .retain(|h| ![SRC_HEADER, OFFSET_HEADER, TOPIC_HEADER].contains(&h.key.as_str()));
    record.position = Some(Position {
        source: Arc::clone(source),
        partition: Arc::from(position_partition(
            message.topic(),
            message.partition(),
            &src,
        )),
        offset: u64::try_from(offset + 1).unwrap_or(0),
    });
}

/// Why a message could not become a record.
enum Conversion {
    /// The data is bad: a dead letter with the bytes as consumed.
    Refused(Box<(Record, RecordError)>),
    /// The converter's schema registry could not be reached: worth waiting for.
    Transient(crate::api::convert::ConvertError),
}

/// [`convert`], waiting with backoff while the schema registry is unreachable (a registry
/// outage must not turn every record into a dead letter). `None` when the task stops meanwhile.
fn convert_waiting(
    message: &BorrowedMessage<'_>,
    spec: &IntakeSpec,
    source: &Arc<str>,
    position: Arc<str>,
) -> Option<Result<Record, Box<(Record, RecordError)>>> {
    let mut backoff = registry_backoff();
    loop {
        match convert(message, spec, source, Arc::clone(&position)) {
            Ok(record) => return Some(Ok(record)),
            Err(Conversion::Refused(failure)) => return Some(Err(failure)),
            Err(Conversion::Transient(e)) => {
                tracing::warn!(connector = %spec.connector, error = %e, retry_in_ms = backoff.delay().as_millis() as u64, "The schema registry is unreachable; waiting for it.");
                if !backoff.wait_blocking(&spec.cancel, WAIT_STEP * 10) {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owned_partitions_are_committed() {
        let mut acked = SourceOffsets::default();
        acked.insert(partition_key("t", 0), json!({"offset": 10}));
        acked.insert(partition_key("t", 1), json!({"offset": 7}));
        let mut assigned = TopicPartitionList::new();
        assigned.add_partition("t", 1);
        assigned.add_partition("t", 2);
        let list = offsets_to_commit(&acked, &assigned);
        let elements = list.elements();
        assert_eq!(
            elements.len(),
            1,
            "partition 0 moved to another member; 2 has no ack"
        );
        assert_eq!(elements[0].partition(), 1);
        assert_eq!(elements[0].offset(), Offset::Offset(7));
    }
}
