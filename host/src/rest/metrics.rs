//! `GET /metrics`: every connector's counters in the Prometheus text format, rendered with
//! `prometheus-client` from the runtime's counters at scrape time.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::AppState;
use super::error::ApiError;
use crate::api::metrics::{HistogramSnapshot, MetricsSnapshot};
use crate::runtime::host::Runtime;
use crate::runtime::status::State as ConnectorState;
use crate::wasm::metrics::MetricKind;

type Field = fn(&MetricsSnapshot) -> u64;

/// Counter name (without `_total`), help, and which counter of the snapshot it shows.
const COUNTERS: [(&str, &str, Field); 10] = [
    (
        "headwater_connector_records_in",
        "Records a source read or a sink received.",
        |m| m.records_in,
    ),
    (
        "headwater_connector_records_out",
        "Records a source published or a sink wrote.",
        |m| m.records_out,
    ),
    (
        "headwater_connector_bytes_in",
        "Bytes a source read or a sink received.",
        |m| m.bytes_in,
    ),
    (
        "headwater_connector_errors",
        "Records that failed a stage.",
        |m| m.errors,
    ),
    (
        "headwater_connector_dead_letters",
        "Records written to the dead-letter queue.",
        |m| m.dead_letters,
    ),
    (
        "headwater_connector_records_dropped",
        "Records dropped on purpose (filters, time windows, no subscriber, already written).",
        |m| m.dropped,
    ),
    (
        "headwater_connector_files_committed",
        "Files a file-writing sink (Parquet) committed.",
        |m| m.files_committed,
    ),
    (
        "headwater_connector_state_restores",
        "State partitions a sink restored when the group assigned them (tasks.max > 1).",
        |m| m.restores,
    ),
    (
        "headwater_connector_state_restored_changes",
        "State changes those restores applied from the connector's changelog topic.",
        |m| m.restored_changes,
    ),
    (
        "headwater_connector_state_standby_updates",
        "State changes applied to this host's warm standby copies (state.standby.enabled).",
        |m| m.standby_updates,
    ),
];

type HistogramField = fn(&MetricsSnapshot) -> &HistogramSnapshot;

const HISTOGRAMS: [(&str, &str, HistogramField); 3] = [
    (
        "headwater_connector_batch_latency_seconds",
        "Time to take one batch through the transforms to the bus (sources) or into the sink.",
        |m| &m.batch_latency,
    ),
    (
        "headwater_connector_flush_latency_seconds",
        "Time of one sink flush (what makes written records durable).",
        |m| &m.flush_latency,
    ),
    (
        "headwater_connector_end_to_end_latency_seconds",
        "From a record's event time (its timestamp) to the sink's flush that made it durable.",
        |m| &m.end_to_end_latency,
    ),
];

type GaugeField = fn(&MetricsSnapshot) -> Option<f64>;

/// Gauges of one value per connector, shown where the connector reports them.
const GAUGES: [(&str, &str, GaugeField); 4] = [
    (
        "headwater_connector_oldest_unflushed_seconds",
        "How long the oldest record a sink has written but not yet flushed has waited.",
        |m| m.oldest_unflushed.map(|d| d.as_secs_f64()),
    ),
    (
        "headwater_connector_source_lag_bytes",
        "Bytes a source has yet to read: WAL between the server's position and a CDC slot's \
         confirmed one, the unread tails of a FileSource's files.",
        |m| m.source_lag_bytes.map(|b| b as f64),
    ),
    (
        "headwater_connector_source_lag_seconds",
        "How old the newest change a source read was when it read it (a CDC commit's age); 0 \
         once caught up.",
        |m| m.source_lag.map(|d| d.as_secs_f64()),
    ),
    (
        "headwater_connector_unread_topics",
        "Topics a source is waiting on because no sink subscribes to them \
         (`topic.unsubscribed=wait`): its records are held and its offsets do not move; 0 when \
         none.",
        |m| m.unread_topics.as_ref().map(|t| t.len() as f64),
    ),
];

#[derive(Debug)]
struct RuntimeCollector(Arc<Runtime>);

impl Collector for RuntimeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshot = self.0.all_metrics();
        for (name, help, field) in COUNTERS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (connector, m) in &snapshot {
                let labels = [("connector", connector.as_str())];
                ConstCounter::new(field(m)).encode(metric.encode_family(&labels)?)?;
            }
        }
        for (name, help, field) in HISTOGRAMS {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (connector, m) in &snapshot {
                let labels = [("connector", connector.as_str())];
                let h = field(m);
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &h.buckets, None)?;
            }
        }
        for (name, help, field) in GAUGES {
            let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for (connector, m) in &snapshot {
                if let Some(value) = field(m) {
                    let labels = [("connector", connector.as_str())];
                    ConstGauge::new(value).encode(metric.encode_family(&labels)?)?;
                }
            }
        }
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut metric = encoder.encode_descriptor(
            "headwater_connector_freshness_seconds",
            "Now minus the newest event time a sink has made durable.",
            None,
            MetricType::Gauge,
        )?;
        for (connector, m) in &snapshot {
            if let Some(event_ms) = m.newest_event_ms {
                let labels = [("connector", connector.as_str())];
                let age = (now_ms - event_ms) as f64 / 1000.0;
                ConstGauge::new(age).encode(metric.encode_family(&labels)?)?;
            }
        }
        let mut metric = encoder.encode_descriptor(
            "headwater_connector_state_partitions_restoring",
            "State partitions being restored from the changelog before their records are read.",
            None,
            MetricType::Gauge,
        )?;
        for (connector, m) in &snapshot {
            let labels = [("connector", connector.as_str())];
            ConstGauge::new(i64::try_from(m.restoring).unwrap_or(i64::MAX))
                .encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "headwater_connector_state_restore_records_remaining",
            "Changelog records the restores under way have left to read (Kafka Streams' \
             restore-remaining-records-total).",
            None,
            MetricType::Gauge,
        )?;
        for (connector, m) in &snapshot {
            let labels = [("connector", connector.as_str())];
            let left: u64 = m
                .restores_under_way
                .iter()
                .filter_map(|r| r.remaining())
                .sum();
            ConstGauge::new(i64::try_from(left).unwrap_or(i64::MAX))
                .encode(metric.encode_family(&labels)?)?;
        }
        let mut metric = encoder.encode_descriptor(
            "headwater_connector_consumer_lag",
            "Records of a Kafka partition a sink has not committed yet: its log end minus the \
             group's committed offset (measured every 5 s).",
            None,
            MetricType::Gauge,
        )?;
        for (connector, m) in &snapshot {
            for lag in &m.consumer_lag {
                let partition = lag.partition.to_string();
                let labels = [
                    ("connector", connector.as_str()),
                    ("topic", lag.topic.as_str()),
                    ("partition", partition.as_str()),
                ];
                ConstGauge::new(lag.lag).encode(metric.encode_family(&labels)?)?;
            }
        }
        let statuses = self.0.statuses();
        let mut metric = encoder.encode_descriptor(
            "headwater_connector_running",
            "1 when the connector's task is RUNNING, 0 otherwise.",
            None,
            MetricType::Gauge,
        )?;
        for (connector, status) in &statuses {
            let labels = [
                ("connector", connector.as_str()),
                ("state", status.state.as_str()),
            ];
            let up = i64::from(status.state == ConnectorState::Running);
            ConstGauge::new(up).encode(metric.encode_family(&labels)?)?;
        }
        encode_wasm(&mut encoder)
    }
}

/// Help text of the host's own WASM step metrics; the rest come from plugins.
fn wasm_help(name: &str) -> &'static str {
    match name {
        "headwater_wasm_calls" => "Calls into a WASM step's plugin (one per batch).",
        "headwater_wasm_failures" => {
            "Failed calls into a WASM plugin, by kind (trap, timeout, memory limit, plugin error)."
        }
        "headwater_wasm_reloads" => "Times a WASM step reloaded its changed module.",
        "headwater_wasm_violations" => {
            "Data-quality violations a WASM check reported, by rule and severity."
        }
        _ => "Reported by a WASM plugin.",
    }
}

/// Series from WASM steps and their plugins, labelled with connector and step.
fn encode_wasm(encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let series = crate::wasm::metrics::snapshot();
    let mut i = 0;
    while i < series.len() {
        let name = &series[i].key.name;
        let family: Vec<_> = series[i..]
            .iter()
            .take_while(|s| &s.key.name == name)
            .collect();
        i += family.len();
        let kind = match family[0].kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
        };
        let mut metric = encoder.encode_descriptor(name, wasm_help(name), None, kind)?;
        for s in family {
            let mut labels = vec![
                ("connector".to_owned(), s.key.connector.clone()),
                ("step".to_owned(), s.key.step.clone()),
            ];
            labels.extend(s.key.labels.iter().cloned());
            match s.kind {
                MetricKind::Counter => {
                    ConstCounter::new(s.value).encode(metric.encode_family(&labels)?)?
                }
                MetricKind::Gauge => {
                    ConstGauge::new(s.value).encode(metric.encode_family(&labels)?)?
                }
            }
        }
    }
    Ok(())
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>) -> Result<Response, ApiError> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RuntimeCollector(Arc::clone(&state.runtime))));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
