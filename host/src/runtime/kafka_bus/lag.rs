//! Consumer lag: for each Kafka partition a sink's consumer owns, its log end minus the group's
//! committed offset, measured every few seconds on the consumer's own thread. That thread also
//! measures while the sink holds it back (its inbox full, a paused or slow sink), when
//! librdkafka's statistics, which only a poll serves, would stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use crate::api::metrics::{ConnectorMetrics, PartitionLag};

/// How often the lag is measured.
const EVERY: Duration = Duration::from_secs(5);
/// How long one offsets request may take.
const WAIT: Duration = Duration::from_secs(2);

/// Measures a consumer group's lag into the connector's metrics.
pub(super) struct LagMeter {
    metrics: Arc<ConnectorMetrics>,
    group: String,
    /// The sink's task whose consumer this is.
    task: usize,
    next: Instant,
}

impl LagMeter {
    pub(super) fn new(metrics: Arc<ConnectorMetrics>, group: &str, task: usize) -> Self {
        Self {
            metrics,
            group: group.to_owned(),
            task,
            next: Instant::now(),
        }
    }

    /// Measures when it is due.
    pub(super) fn tick<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if Instant::now() < self.next {
            return;
        }
        self.next = Instant::now() + EVERY;
        self.metrics
            .set_consumer_lag(&self.group, self.task, measure(consumer, self.task));
    }

    /// The consumer's partitions changed: measure at the next tick.
    pub(super) fn due_now(&mut self) {
        self.next = Instant::now();
    }

    /// The consumer stopped: it owns nothing any more.
    pub(super) fn clear(&self) {
        self.metrics
            .set_consumer_lag(&self.group, self.task, Vec::new());
    }
}

/// The lag of each assigned partition: its log end (ListOffsets; tansu 0.6 answers its newest
/// batch's first offset, so there up to a batch less) minus the group's committed offset, or,
/// for a partition the group never committed, minus the consumer's position, else its start.
fn measure<C: ConsumerContext>(consumer: &BaseConsumer<C>, task: usize) -> Vec<PartitionLag> {
    let Ok(assignment) = consumer.assignment() else {
        return Vec::new();
    };
    if assignment.count() == 0 {
        return Vec::new();
    }
    let committed = consumer.committed_offsets(assignment.clone(), WAIT).ok();
    let position = consumer.position().ok();
    let done = |list: Option<&TopicPartitionList>, topic: &str, partition: i32| {
        list.and_then(|l| l.find_partition(topic, partition))
            .and_then(|e| e.offset().to_raw())
            .filter(|o| *o >= 0)
    };
    assignment
        .elements()
        .iter()
        .filter_map(|e| {
            let (topic, partition) = (e.topic(), e.partition());
            let (start, end) = consumer.fetch_watermarks(topic, partition, WAIT).ok()?;
            let done = done(committed.as_ref(), topic, partition)
                .or_else(|| done(position.as_ref(), topic, partition))
                .unwrap_or(start);
            Some(PartitionLag {
                topic: topic.to_owned(),
                partition,
                lag: (end - done).max(0),
                task,
            })
        })
        .collect()
}
