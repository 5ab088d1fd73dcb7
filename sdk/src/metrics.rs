//! Metrics: counters and gauges aggregated inside the plugin and sent to the host once per
//! batch, where they are exported to Prometheus as `headwater_plugin_<name>` with the
//! connector, the step and the labels given here.

use std::cell::RefCell;
use std::collections::BTreeMap;

/// Metric name and labels.
pub type Series = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub counters: BTreeMap<Series, f64>,
    pub gauges: BTreeMap<Series, f64>,
}

thread_local! {
    pub(crate) static PENDING: RefCell<Pending> = RefCell::new(Pending::default());
}

fn series(name: &str, labels: &[(&str, &str)]) -> Series {
    let labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    (name.to_owned(), labels)
}

/// Adds `value` to the counter `name` (a running total on the host).
pub fn counter(name: &str, value: f64, labels: &[(&str, &str)]) {
    PENDING.with_borrow_mut(|p| *p.counters.entry(series(name, labels)).or_default() += value);
}

/// Sets the gauge `name` to `value` (the last value in a batch wins).
pub fn gauge(name: &str, value: f64, labels: &[(&str, &str)]) {
    PENDING.with_borrow_mut(|p| {
        p.gauges.insert(series(name, labels), value);
    });
}

/// Takes what was recorded since the last call.
pub(crate) fn take() -> Pending {
    PENDING.with_borrow_mut(std::mem::take)
}
