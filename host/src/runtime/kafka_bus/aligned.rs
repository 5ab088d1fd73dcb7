//! Reading a stateful sink's partitions in step, so that no partition runs ahead of the others.
//!
//! A window's watermark is the minimum over its input partitions (Flink's rule): while one
//! partition is behind, every window the others have moved past stays open, in the state
//! cache. A consumer that reads whatever arrives first lets a partition run far ahead — tansu
//! 0.6 answers a fetch with the first requested partition's records only, so a 4-partition
//! topic was read nearly one partition after the other, and a window bench kept 2–4 window
//! ends open at once, each with every user's state, evicting and reading back the cache. Any
//! broker does the same to a partition with a backlog (a consumer catching up after a stop).
//!
//! So the intake of a stateful sink reads each partition from its own librdkafka queue and
//! takes the next records from the partitions furthest behind in event time — Kafka Streams'
//! rule (`PartitionGroup`: the next record comes from the partition with the lowest
//! timestamp), with Flink's watermark alignment's allowance: a partition reads at most
//! [`DRIFT_MS`] past the one furthest behind. The time is the event time as the chain's window
//! reads it (its `time.field`), else the Kafka record timestamp: in a backfill, Kafka times
//! squeeze hours of events into seconds, so they align poorly.
//!
//! A partition that is ahead is left in its queue; once that queue holds `queued.min.messages`,
//! librdkafka stops fetching it, and the broker's answers carry the partitions that are
//! behind. Nothing is paused or seeked (pausing and resuming partitions lost records against
//! tansu 0.6). A partition holds the others back only while it has records to give: one read
//! to its end (librdkafka's partition EOF) or whose queue stayed empty for [`STALL`] no longer
//! does, until its next record, and neither does one whose last record had no time. The order
//! only decides which records are read first: every record is read, and the results do not
//! depend on it (the watermark is the minimum over partitions either way).

use std::collections::BTreeSet;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;

use crate::api::kafka::KafkaSettings;

use super::intake::{
    Batch, BatchBuilder, IntakeContext, IntakeSpec, MAX_BATCH, POLL_WAIT, PartitionNames,
    log_consumer_error, read_queue,
};

/// How far (in event time) a partition may read ahead of the one furthest behind. Small
/// against windows; large enough that partitions are read in runs of records rather than a
/// few at a time, and that the others go on while the one behind waits for a fetch.
const DRIFT_MS: i64 = 20_000;
/// How long an empty queue of a partition that is not at its end holds the others back: the
/// time a fetch takes, with room to spare. A partition whose leader is away does not stop the
/// others for longer (its records cannot close windows meanwhile anyway).
const STALL: Duration = Duration::from_secs(1);
/// How long one wait for the partition furthest behind lasts before the others are checked.
const WAIT_SLICE: Duration = Duration::from_millis(10);

/// librdkafka settings of an aligned consumer, where the connector's `consumer.override.*`
/// keys do not set them. With one queue per partition, librdkafka's prefetch limits apply to
/// each partition rather than to the consumer, and a partition that is ahead keeps what was
/// fetched for it until the others catch up: these bound that.
const DEFAULTS: &[(&str, &str)] = &[
    // The end of a partition is reported, so that the others stop waiting for it.
    ("enable.partition.eof", "true"),
    // `queued.min.messages` (10,000 records, the connectors' default) now counts per partition
    // in every case; this caps the bytes of a partition's queue too (large records).
    ("queued.max.messages.kbytes", "4096"),
    // A fetch answer brings what one partition may bring (`max.partition.fetch.bytes`, 1 MiB),
    // whatever the broker does with the per-partition limit: tansu 0.6 ignores it and answered
    // with whole partitions (librdkafka's 50 MiB default), which then waited in their queues —
    // 490 MiB of a 1M-click bench.
    ("fetch.max.bytes", "1048576"),
    // tansu 0.6 sleeps about half this wait before answering a fetch, data or not: with 1 MiB
    // answers, 100 ms capped the bench at ~140,000 records/s, 20 ms at ~170,000. A broker
    // that answers when data is there (Kafka) is not slowed by it; an idle consumer asks 50
    // times a second.
    ("fetch.wait.max.ms", "20"),
];

/// Sets the [`DEFAULTS`] that the connector's `consumer.override.*` keys leave unset.
pub(super) fn configure(config: &mut ClientConfig, settings: &KafkaSettings) {
    for (key, value) in DEFAULTS {
        // librdkafka refuses a `fetch.max.bytes` below `message.max.bytes`: a connector that
        // raises the latter keeps librdkafka's fetch size.
        let raised_message_size =
            *key == "fetch.max.bytes" && settings.consumer.contains_key("message.max.bytes");
        if !settings.consumer.contains_key(*key) && !raised_message_size {
            config.set(*key, *value);
        }
    }
}

/// One queue per assigned partition, read furthest-behind first.
pub(super) struct AlignedReader {
    partitions: Vec<PartitionReader>,
    wake: Arc<Wake>,
}

struct PartitionReader {
    queue: PartitionQueue<IntakeContext>,
    progress: Progress,
}

/// How far a partition has been read, and whether the others wait for it.
#[derive(Debug, Clone)]
struct Progress {
    /// The newest record time read (`i64::MIN` before the first record).
    newest: i64,
    /// librdkafka said the partition is read to its end, and nothing came since.
    at_end: bool,
    /// Since when polls found the queue empty, while not at its end.
    empty_since: Option<Instant>,
    /// Its last record had no time: it is read as records come, and holds nothing back.
    untimed: bool,
}

impl Progress {
    /// Whether the partitions ahead of it wait for it.
    fn holds_back(&self) -> bool {
        !self.at_end && !self.untimed && self.empty_since.is_none_or(|t| t.elapsed() < STALL)
    }

    /// Notes a poll that found its queue empty.
    fn empty(&mut self) {
        self.empty_since.get_or_insert_with(Instant::now);
    }

    /// Notes a record read, with its time if it has one.
    fn read(&mut self, time: Option<i64>) {
        self.at_end = false;
        self.empty_since = None;
        self.untimed = time.is_none();
        if let Some(time) = time {
            self.newest = self.newest.max(time);
        }
    }

    /// Whether it is past `limit` (and so is not read until the others catch up).
    fn ahead_of(&self, limit: i64) -> bool {
        self.newest > limit && !self.untimed
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            newest: i64::MIN,
            at_end: false,
            empty_since: None,
            untimed: false,
        }
    }
}

impl AlignedReader {
    /// Gives each assigned partition its own queue. Called right after every `assign`, which
    /// ends the queues split before. A partition librdkafka does not know keeps feeding the
    /// consumer's main queue, which [`Self::poll_batch`] reads too.
    pub(super) fn split(
        consumer: &Arc<BaseConsumer<IntakeContext>>,
        assigned: &BTreeSet<(String, i32)>,
    ) -> Self {
        let wake = Arc::new(Wake::default());
        let partitions = assigned
            .iter()
            .filter_map(|(topic, partition)| {
                let queue = consumer.split_partition_queue(topic, *partition);
                if queue.is_none() {
                    tracing::debug!(
                        topic,
                        partition,
                        "No queue of its own for a partition; it is read from the consumer's queue."
                    );
                }
                queue
            })
            .map(|mut queue| {
                let wake = Arc::clone(&wake);
                queue.set_nonempty_callback(move || wake.notify());
                PartitionReader {
                    queue,
                    progress: Progress::default(),
                }
            })
            .collect();
        Self { partitions, wake }
    }

    /// The newest timestamp the partitions may read up to: [`DRIFT_MS`] past the progress of
    /// the partition furthest behind among those that hold the others back.
    fn limit(&self) -> i64 {
        limit(self.partitions.iter().map(|p| &p.progress))
    }

    /// Reads up to [`MAX_BATCH`] records, from the partitions that are behind. Waits up to
    /// [`POLL_WAIT`] for the first. `None` when nothing was read (or the task stopped while
    /// the schema registry was away).
    pub(super) fn poll_batch(
        &mut self,
        consumer: &BaseConsumer<IntakeContext>,
        spec: &IntakeSpec,
        source: &Arc<str>,
        names: &mut PartitionNames,
    ) -> Option<Batch> {
        let mut batch = BatchBuilder::default();
        // The consumer's own queue: callbacks, errors, and records fetched before the split.
        read_queue(consumer, &mut batch, Duration::ZERO, spec, source, names)?;
        let started = Instant::now();
        while batch.len() < MAX_BATCH {
            let limit = self.limit();
            // Before the scan: a record arriving during it makes the wait below return at once.
            self.wake.reset();
            let mut read_any = false;
            for reader in self.partitions.iter_mut() {
                if reader.progress.ahead_of(limit) {
                    continue;
                }
                while batch.len() < MAX_BATCH {
                    let polled = reader.queue.poll(Duration::ZERO);
                    match polled {
                        Some(Ok(message)) => {
                            read_any = true;
                            let kafka_time = message.timestamp().to_millis();
                            let record = batch.take(&message, spec, source, names)?;
                            let time = match &spec.event_time {
                                Some(event_time) => record.and_then(|r| event_time(r)),
                                None => kafka_time,
                            };
                            reader.progress.read(time);
                            if reader.progress.ahead_of(limit) {
                                break;
                            }
                        }
                        Some(Err(KafkaError::PartitionEOF(_))) => {
                            reader.progress.at_end = true;
                            break;
                        }
                        Some(Err(e)) => {
                            log_consumer_error(spec, &e);
                            break;
                        }
                        None => {
                            reader.progress.empty();
                            break;
                        }
                    }
                }
            }
            if read_any {
                continue;
            }
            if batch.len() > 0 || started.elapsed() >= POLL_WAIT {
                break;
            }
            // Until a queue gets records (a partition behind, or any once none holds back).
            self.wake.wait(WAIT_SLICE);
        }
        batch.finish()
    }
}

/// See [`AlignedReader::limit`].
fn limit<'a>(partitions: impl Iterator<Item = &'a Progress>) -> i64 {
    partitions
        .filter(|p| p.holds_back())
        .map(|p| p.newest)
        .min()
        .map_or(i64::MAX, |floor| floor.saturating_add(DRIFT_MS))
}

/// Set by librdkafka's thread when a partition queue gets records, so a reader waiting for
/// the partition behind wakes as soon as its records are fetched.
#[derive(Default)]
struct Wake {
    ready: Mutex<bool>,
    changed: Condvar,
}

impl Wake {
    fn notify(&self) {
        *self.ready.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_one();
    }

    fn reset(&self) {
        *self.ready.lock().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Waits until notified, at most `timeout`.
    fn wait(&self, timeout: Duration) {
        let ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self
            .changed
            .wait_timeout_while(ready, timeout, |ready| !*ready);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(newest: i64) -> Progress {
        Progress {
            newest,
            ..Progress::default()
        }
    }

    #[test]
    fn the_partition_furthest_behind_sets_how_far_the_others_read() {
        let partitions = [at(2_001 + DRIFT_MS), at(2_000), at(2_000 + DRIFT_MS)];
        assert_eq!(limit(partitions.iter()), 2_000 + DRIFT_MS);
        assert!(partitions[0].ahead_of(limit(partitions.iter())));
        assert!(!partitions[2].ahead_of(limit(partitions.iter())));
        // Before its first record, a partition holds every other back.
        let partitions = [at(10_000), Progress::default()];
        assert_eq!(limit(partitions.iter()), i64::MIN + DRIFT_MS);
    }

    #[test]
    fn a_partition_at_its_end_stalled_or_untimed_holds_nothing_back() {
        let mut ended = at(0);
        ended.at_end = true;
        let mut stalled = at(0);
        stalled.empty_since = Instant::now().checked_sub(STALL + Duration::from_millis(1));
        let mut untimed = at(0);
        untimed.read(None);
        let mut waiting = at(0);
        waiting.empty();
        let partitions = [at(50_000), ended, stalled, untimed.clone()];
        assert_eq!(limit(partitions.iter()), 50_000 + DRIFT_MS);
        // An untimed partition is read whatever the limit.
        assert!(!untimed.ahead_of(i64::MIN));
        // A queue empty for less than the stall time still holds the others back.
        assert_eq!(limit([at(50_000), waiting].iter()), DRIFT_MS);
        // None holds back: no limit.
        assert_eq!(limit([ended_at(5)].iter()), i64::MAX);
    }

    #[test]
    fn a_record_ends_the_wait_and_time_never_goes_back() {
        let mut progress = at(0);
        progress.at_end = true;
        progress.empty();
        progress.read(Some(9_000));
        progress.read(Some(4_000));
        assert_eq!(
            progress.newest, 9_000,
            "an out-of-order record does not move it back"
        );
        assert!(progress.holds_back());
        progress.read(None);
        assert!(
            !progress.holds_back(),
            "a record without time: read as it comes"
        );
        progress.read(Some(9_500));
        assert!(progress.holds_back());
    }

    fn ended_at(newest: i64) -> Progress {
        Progress {
            newest,
            at_end: true,
            ..Progress::default()
        }
    }
}
