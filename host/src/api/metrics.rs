//! Per-connector telemetry, the same for every connector (Vector's uniform telemetry): plain
//! atomics updated on the hot path, read by the REST API's `/metrics` at scrape time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bounds (seconds) of the latency histograms: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A fixed-bucket latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// One count per bucket of [`LATENCY_BUCKETS`], plus the overflow bucket.
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A histogram's state: per-bucket counts (not cumulative), total and sum.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, count in this bucket)`; the last bound is +Inf.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl HistogramSnapshot {
    /// The upper bound of the bucket holding quantile `q` (0..=1): the value is at most this
    /// (infinite in the overflow bucket); `None` without observations.
    pub fn quantile_bound(&self, q: f64) -> Option<f64> {
        let rank = (q * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        self.buckets.iter().find_map(|(bound, n)| {
            seen += n;
            (seen >= rank).then_some(*bound)
        })
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let index = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.counts[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Observes `n` values of `age` milliseconds for each `(age, n)` of `ages_ms` (negative
    /// ages count as 0), with one atomic update per bucket rather than per value.
    pub fn observe_ms(&self, ages_ms: impl IntoIterator<Item = (i64, u64)>) {
        let mut counts = [0u64; LATENCY_BUCKETS.len() + 1];
        let mut sum_ms = 0u64;
        for (age, n) in ages_ms {
            let ms = u64::try_from(age).unwrap_or(0);
            let secs = ms as f64 / 1000.0;
            let index = LATENCY_BUCKETS
                .iter()
                .position(|bound| secs <= *bound)
                .unwrap_or(LATENCY_BUCKETS.len());
            counts[index] += n;
            sum_ms = sum_ms.saturating_add(ms.saturating_mul(n));
        }
        for (total, n) in self.counts.iter().zip(counts) {
            if n > 0 {
                total.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sum_nanos
            .fetch_add(sum_ms.saturating_mul(1_000_000), Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let bounds = LATENCY_BUCKETS.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.counts)
            .map(|(bound, count)| (bound, count.load(Ordering::Relaxed)))
            .collect();
        HistogramSnapshot {
            count: buckets.iter().map(|(_, c)| c).sum(),
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

#[derive(Debug)]
pub struct ConnectorMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    bytes_in: AtomicU64,
    errors: AtomicU64,
    dead_letters: AtomicU64,
    dropped: AtomicU64,
    /// Gauges each of a sink's tasks sets for itself (`tasks.max`), by task id.
    per_task: Mutex<Vec<TaskGauges>>,
    /// Time to take one batch through transforms into the bus (sources) or the sink.
    pub batch_latency: Histogram,
    /// Time of a sink's flush (what makes records durable).
    pub flush_latency: Histogram,
    /// Newest event time (epoch ms) a sink has made durable; `i64::MIN` before the first.
    newest_event_ms: AtomicI64,
    /// From a record's event time to the moment a sink made it durable.
    pub end_to_end_latency: Histogram,
    /// Bytes a source has yet to read (a replication slot's WAL, files' unread tails); -1:
    /// not reported.
    source_lag_bytes: AtomicI64,
    /// How old the newest change a source read was when it read it (ms); -1: not reported.
    source_lag_ms: AtomicI64,
    /// State partitions being restored from their changelog now.
    restoring: AtomicU64,
    /// State partitions restored (from the local store or the changelog).
    restores: AtomicU64,
    /// Changes applied from changelogs by those restores.
    restored_changes: AtomicU64,
    /// The restores reading their changelog now, by state partition.
    under_way: Mutex<BTreeMap<String, Arc<RestoreProgress>>>,
    /// Changes applied to warm standby copies.
    standby_updates: AtomicU64,
    /// Kafka consumer lag by consumer group and task (a sink behind a repartition topic has
    /// two groups, a sink run as several tasks a consumer per task): `(topic, partition, lag)`
    /// of its assigned partitions.
    consumer_lag: Mutex<BTreeMap<(String, usize), Vec<PartitionLag>>>,
    /// The topics a source is holding records of because no sink reads them
    /// (`topic.unsubscribed=wait`); `None` until a source published, or for sinks.
    unread_topics: Mutex<Option<Vec<String>>>,
}

/// A Kafka partition's lag: its log end minus the group's committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub lag: i64,
    /// The task whose consumer owns the partition.
    pub task: usize,
}

/// What one task of a sink reports about itself.
#[derive(Debug, Clone, Copy)]
struct TaskGauges {
    /// When (epoch ms) the oldest record the task holds unflushed arrived; -1: none; -2: not
    /// reported (not a sink, or one that has not written yet).
    unflushed_since_ms: i64,
    /// Files the task committed since it started (sinks that write files).
    files_committed: u64,
}

impl Default for TaskGauges {
    fn default() -> Self {
        Self {
            unflushed_since_ms: -2,
            files_committed: 0,
        }
    }
}

impl Default for ConnectorMetrics {
    fn default() -> Self {
        Self {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            per_task: Mutex::new(Vec::new()),
            batch_latency: Histogram::default(),
            flush_latency: Histogram::default(),
            newest_event_ms: AtomicI64::new(i64::MIN),
            end_to_end_latency: Histogram::default(),
            source_lag_bytes: AtomicI64::new(-1),
            source_lag_ms: AtomicI64::new(-1),
            restoring: AtomicU64::new(0),
            restores: AtomicU64::new(0),
            restored_changes: AtomicU64::new(0),
            under_way: Mutex::new(BTreeMap::new()),
            standby_updates: AtomicU64::new(0),
            consumer_lag: Mutex::new(BTreeMap::new()),
            unread_topics: Mutex::new(None),
        }
    }
}

/// A point-in-time copy of a connector's telemetry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// Records read by a source or received by a sink.
    pub records_in: u64,
    /// Records a source published or a sink wrote.
    pub records_out: u64,
    pub bytes_in: u64,
    /// Records that failed a stage.
    pub errors: u64,
    /// Records written to the dead-letter queue.
    pub dead_letters: u64,
    /// Records dropped on purpose (a Filter, an outside time window, no subscriber).
    pub dropped: u64,
    /// Files a sink committed.
    pub files_committed: u64,
    pub batch_latency: HistogramSnapshot,
    pub flush_latency: HistogramSnapshot,
    /// Newest event time (epoch ms) a sink made durable, if any.
    pub newest_event_ms: Option<i64>,
    /// Event time to durable in a sink, per record with an event time.
    pub end_to_end_latency: HistogramSnapshot,
    /// How long the oldest record a sink holds unflushed has waited (zero: none held); `None`
    /// for sources.
    pub oldest_unflushed: Option<Duration>,
    /// Bytes a source has yet to read, where it knows.
    pub source_lag_bytes: Option<u64>,
    /// How old the newest change a source read was when it read it.
    pub source_lag: Option<Duration>,
    /// State partitions being restored now.
    pub restoring: u64,
    /// State partitions restored.
    pub restores: u64,
    /// Changes applied from changelogs by restores.
    pub restored_changes: u64,
    /// The restores reading their changelog now.
    pub restores_under_way: Vec<RestoreSnapshot>,
    /// Changes applied to warm standby copies.
    pub standby_updates: u64,
    /// Kafka consumer lag of the partitions the sink's consumers own.
    pub consumer_lag: Vec<PartitionLag>,
    /// Topics a source waits on for want of a sink reading them; `None` for sinks.
    pub unread_topics: Option<Vec<String>>,
}

/// How far the restore of one state partition from its changelog has come: updated by the
/// reader as it goes (Kafka Streams' `StateRestoreListener`), shown in the connector's status.
#[derive(Debug)]
pub struct RestoreProgress {
    /// The changelog topic.
    pub topic: String,
    pub partition: i32,
    started: Instant,
    /// Records read so far.
    read: AtomicU64,
    /// The next offset to read.
    next: AtomicI64,
    /// The log's end as the reader last saw it (-1: not known yet).
    end: AtomicI64,
}

/// A copy of a [`RestoreProgress`] at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreSnapshot {
    pub topic: String,
    pub partition: i32,
    pub records_read: u64,
    pub next_offset: i64,
    /// The log's end, when the reader has seen it.
    pub end_offset: Option<i64>,
    pub elapsed: Duration,
}

impl RestoreProgress {
    pub fn new(topic: &str, partition: i32) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            started: Instant::now(),
            read: AtomicU64::new(0),
            next: AtomicI64::new(0),
            end: AtomicI64::new(-1),
        }
    }

    /// The reader starts (again) at `offset`.
    pub fn reading_from(&self, offset: i64) {
        self.next.store(offset, Ordering::Relaxed);
    }

    /// A record read; `next` is the offset after it.
    pub fn read_one(&self, next: i64) {
        self.read.fetch_add(1, Ordering::Relaxed);
        self.next.store(next, Ordering::Relaxed);
    }

    /// The log ends at `end` (its high watermark).
    pub fn log_end(&self, end: i64) {
        self.end.store(end, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RestoreSnapshot {
        let end = self.end.load(Ordering::Relaxed);
        RestoreSnapshot {
            topic: self.topic.clone(),
            partition: self.partition,
            records_read: self.read.load(Ordering::Relaxed),
            next_offset: self.next.load(Ordering::Relaxed),
            end_offset: (end >= 0).then_some(end),
            elapsed: self.started.elapsed(),
        }
    }
}

impl RestoreSnapshot {
    /// Records left to read, when the log's end is known.
    pub fn remaining(&self) -> Option<u64> {
        self.end_offset
            .map(|end| u64::try_from(end - self.next_offset).unwrap_or(0))
    }

    /// Time left at the rate read so far: how far behind the state is, in seconds.
    pub fn seconds_remaining(&self) -> Option<f64> {
        let rate = self.records_read as f64 / self.elapsed.as_secs_f64();
        match self.remaining()? {
            0 => Some(0.0),
            left if rate.is_finite() && rate > 0.0 => Some(left as f64 / rate),
            _ => None,
        }
    }
}

impl ConnectorMetrics {
    pub fn add_in(&self, records: u64, bytes: u64) {
        self.records_in.fetch_add(records, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }
    pub fn add_out(&self, records: u64) {
        self.records_out.fetch_add(records, Ordering::Relaxed);
    }
    pub fn add_errors(&self, n: u64) {
        self.errors.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_dead_letters(&self, n: u64) {
        self.dead_letters.fetch_add(n, Ordering::Relaxed);
    }
    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }
    /// Task `task` of a file-writing sink has committed `files` files since it started.
    pub fn set_files_committed(&self, task: usize, files: u64) {
        self.with_task(task, |g| g.files_committed = files);
    }
    /// Notes that records with event times up to `event_ms` are durable in the sink.
    pub fn note_durable_event(&self, event_ms: i64) {
        self.newest_event_ms.fetch_max(event_ms, Ordering::Relaxed);
    }
    /// Task `task` of a sink holds records unflushed since `since_ms` (epoch ms), or none
    /// (`None`).
    pub fn set_unflushed_since(&self, task: usize, since_ms: Option<i64>) {
        self.with_task(task, |g| g.unflushed_since_ms = since_ms.unwrap_or(-1));
    }

    /// A sink's tasks start again: the gauges of the tasks before them go.
    pub fn forget_tasks(&self) {
        self.per_task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn with_task(&self, task: usize, set: impl FnOnce(&mut TaskGauges)) {
        let mut tasks = self.per_task.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() <= task {
            tasks.resize(task + 1, TaskGauges::default());
        }
        set(&mut tasks[task]);
    }
    /// A source has `bytes` left to read upstream.
    pub fn set_source_lag_bytes(&self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.source_lag_bytes.store(bytes, Ordering::Relaxed);
    }
    /// A source waits for a sink to read `topics` (empty: it does not wait). Returns whether
    /// that changed.
    pub fn set_unread_topics(&self, topics: Vec<String>) -> bool {
        let mut unread = self.unread_topics.lock().unwrap_or_else(|e| e.into_inner());
        let changed = unread.as_ref() != Some(&topics);
        *unread = Some(topics);
        changed
    }
    /// The newest change a source read was `behind` old when read (zero: caught up).
    pub fn set_source_lag(&self, behind: Duration) {
        let ms = i64::try_from(behind.as_millis()).unwrap_or(i64::MAX);
        self.source_lag_ms.store(ms, Ordering::Relaxed);
    }
    /// `partitions` state partitions start restoring.
    pub fn restoring(&self, partitions: u64) {
        self.restoring.fetch_add(partitions, Ordering::Relaxed);
    }
    /// One state partition finished restoring (`changes` applied from its changelog), or
    /// gave up (`None`).
    pub fn restored(&self, changes: Option<u64>) {
        self.restoring.fetch_sub(1, Ordering::Relaxed);
        if let Some(changes) = changes {
            self.restores.fetch_add(1, Ordering::Relaxed);
            self.restored_changes.fetch_add(changes, Ordering::Relaxed);
        }
    }
    /// A restore of `progress`'s partition starts reading its changelog; it shows in the
    /// status until [`Self::restore_done`].
    pub fn restore_started(&self, scope: &str, progress: Arc<RestoreProgress>) {
        let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
        under_way.insert(scope.to_owned(), progress);
    }

    /// The lag of the partitions task `task`'s consumer in group `group` owns now.
    pub fn set_consumer_lag(&self, group: &str, task: usize, lags: Vec<PartitionLag>) {
        let mut all = self.consumer_lag.lock().unwrap_or_else(|e| e.into_inner());
        all.insert((group.to_owned(), task), lags);
    }

    /// `changes` applied to a warm standby copy.
    pub fn standby_updated(&self, changes: u64) {
        self.standby_updates.fetch_add(changes, Ordering::Relaxed);
    }

    pub fn restore_done(&self, scope: &str) {
        let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
        under_way.remove(scope);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let restores_under_way = self
            .under_way
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .map(|p| p.snapshot())
            .collect();
        let newest = self.newest_event_ms.load(Ordering::Relaxed);
        let known = |v: i64| u64::try_from(v).ok();
        let (unflushed, files_committed) = {
            let tasks = self.per_task.lock().unwrap_or_else(|e| e.into_inner());
            // The oldest record any task holds; none held only when no task holds one.
            let oldest = tasks
                .iter()
                .map(|g| g.unflushed_since_ms)
                .filter(|since| *since >= 0)
                .min()
                .or_else(|| tasks.iter().map(|g| g.unflushed_since_ms).max());
            (oldest, tasks.iter().map(|g| g.files_committed).sum())
        };
        let oldest_unflushed = match unflushed.unwrap_or(-2) {
            -2 => None,
            -1 => Some(Duration::ZERO),
            since => Some(Duration::from_millis(known(now_ms() - since).unwrap_or(0))),
        };
        MetricsSnapshot {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            files_committed,
            batch_latency: self.batch_latency.snapshot(),
            flush_latency: self.flush_latency.snapshot(),
            newest_event_ms: (newest != i64::MIN).then_some(newest),
            end_to_end_latency: self.end_to_end_latency.snapshot(),
            oldest_unflushed,
            source_lag_bytes: known(self.source_lag_bytes.load(Ordering::Relaxed)),
            source_lag: known(self.source_lag_ms.load(Ordering::Relaxed))
                .map(Duration::from_millis),
            restoring: self.restoring.load(Ordering::Relaxed),
            restores: self.restores.load(Ordering::Relaxed),
            restored_changes: self.restored_changes.load(Ordering::Relaxed),
            restores_under_way,
            standby_updates: self.standby_updates.load(Ordering::Relaxed),
            consumer_lag: self
                .consumer_lag
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .flatten()
                .cloned()
                .collect(),
            unread_topics: self
                .unread_topics
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_bounded_by_their_buckets() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile_bound(0.5), None);
        h.observe_ms([(1, 3), (4, 1), (30_000, 1)]);
        let s = h.snapshot();
        assert_eq!(s.quantile_bound(0.5), Some(0.001));
        assert_eq!(s.quantile_bound(0.8), Some(0.005));
        assert_eq!(s.quantile_bound(0.99), Some(f64::INFINITY));
    }

    #[test]
    fn ages_are_counted_in_their_buckets_and_summed() {
        let h = Histogram::default();
        h.observe_ms([(0, 1), (3, 2), (20_000, 1), (-5, 1)]);
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(
            s.buckets[0].1, 2,
            "0 ms and a clock a little ahead count in the first"
        );
        let five_ms = LATENCY_BUCKETS.iter().position(|b| *b == 0.005).unwrap();
        assert_eq!(s.buckets[five_ms].1, 2);
        assert_eq!(s.buckets.last().unwrap().1, 1, "20 s overflows");
        assert!((s.sum_seconds - 20.006).abs() < 1e-9, "{}", s.sum_seconds);
    }

    #[test]
    fn a_restore_estimates_the_time_left_from_its_rate() {
        let snapshot = |read, next, end: Option<i64>| RestoreSnapshot {
            topic: "t".into(),
            partition: 0,
            records_read: read,
            next_offset: next,
            end_offset: end,
            elapsed: Duration::from_secs(2),
        };
        // 1,000 read in 2 s from offset 0; 3,000 left at 500/s.
        let going = snapshot(1_000, 1_000, Some(4_000));
        assert_eq!(going.remaining(), Some(3_000));
        assert_eq!(going.seconds_remaining(), Some(6.0));
        assert_eq!(snapshot(0, 0, None).seconds_remaining(), None);
        assert_eq!(snapshot(0, 0, Some(10)).seconds_remaining(), None);
        assert_eq!(snapshot(10, 10, Some(10)).seconds_remaining(), Some(0.0));
    }

    #[test]
    fn histogram_counts_land_in_their_buckets() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.buckets[0], (0.0005, 1));
        assert_eq!(s.buckets[3], (0.005, 1));
        assert_eq!(s.buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((s.sum_seconds - 60.0033).abs() < 1e-6);
    }
}
