//! Metrics reported by plugins (through the `metrics` import) and by the host about its WASM
//! steps, kept per connector and step, and rendered by `/metrics`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Whether a series adds up or holds the last value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One series, keyed by metric name, connector, step and the plugin's labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeriesKey {
    /// The full Prometheus name (`headwater_plugin_<name>` or a host metric).
    pub name: String,
    pub connector: String,
    pub step: String,
    pub labels: Vec<(String, String)>,
}

/// A snapshot row.
#[derive(Debug, Clone)]
pub struct Series {
    pub key: SeriesKey,
    pub kind: MetricKind,
    pub value: f64,
}

type Table = BTreeMap<SeriesKey, (MetricKind, f64)>;

fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// A plugin metric name as a Prometheus name: `headwater_plugin_` + `[a-z0-9_]`.
pub fn plugin_metric_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("headwater_plugin_{clean}")
}

/// Adds to a counter or sets a gauge. The key is copied only the first time the series is
/// seen (this runs once per batch).
pub fn record(key: &SeriesKey, kind: MetricKind, value: f64) {
    if !value.is_finite() {
        return;
    }
    let mut t = table();
    let entry = match t.get_mut(key) {
        Some(entry) => entry,
        None => t.entry(key.clone()).or_insert((kind, 0.0)),
    };
    match kind {
        MetricKind::Counter => entry.1 += value,
        MetricKind::Gauge => entry.1 = value,
    }
    entry.0 = kind;
}

/// Every series, sorted by name.
pub fn snapshot() -> Vec<Series> {
    table()
        .iter()
        .map(|(key, (kind, value))| Series {
            key: key.clone(),
            kind: *kind,
            value: *value,
        })
        .collect()
}
