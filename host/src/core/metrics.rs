//! Per-connector counters, the same for every connector (Vector's uniform telemetry). They are
//! plain atomics here; the REST issue exports them in Prometheus format.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct ConnectorMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    bytes_in: AtomicU64,
    errors: AtomicU64,
    dead_letters: AtomicU64,
    dropped: AtomicU64,
}

/// A point-in-time copy of a connector's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_in: self.records_in.load(Ordering::Relaxed),
            records_out: self.records_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            dead_letters: self.dead_letters.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}
