//! The runtime in process, with test connectors whose behaviour each test sets (in the spirit
//! of Vector's `topology/test`): lifecycle, backpressure from a slow sink, and a sink that
//! crashes mid-stream losing nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::api::connector::{
    BuildContext, ConnectorPlugin, ConnectorType, Sink, Source, SourceBatch, SourceContext, Task,
};
use crate::api::error::{ConnectorError, RecordError};
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Payload, Record};
use crate::api::registry::Registry;
use crate::config::connector::{ConnectorConfig, parse_json};
use crate::runtime::host::{Origin, Runtime};
use crate::runtime::status::State;
use crate::runtime::store::Target;

/// What a test observes of its connectors, by `test.id`.
#[derive(Debug, Default)]
struct Probe {
    /// Records the source has handed to `send` (and `send` returned).
    sent: AtomicU64,
    /// Values the sink flushed, in order (with duplicates after a crash).
    flushed: Mutex<Vec<i64>>,
    /// Flushes so far.
    flushes: AtomicUsize,
}

static PROBES: LazyLock<Mutex<HashMap<String, Arc<Probe>>>> = LazyLock::new(Default::default);

fn probe(id: &str) -> Arc<Probe> {
    let mut probes = PROBES.lock().unwrap();
    Arc::clone(probes.entry(id.to_owned()).or_default())
}

const ID: ConfigKey = ConfigKey::new("test.id", KeyType::String, "The test's probe.").required();
const TOTAL: ConfigKey = ConfigKey::new("total", KeyType::Long, "Records to emit.");
const TOPIC: ConfigKey = ConfigKey::new("topic", KeyType::String, "Topic to emit to.");
const DELAY: ConfigKey = ConfigKey::new("write.delay.ms", KeyType::Long, "Pause per write.");
const FAIL_AT: ConfigKey = ConfigKey::new("fail.at.flush", KeyType::Long, "Flush that fails.");

/// Emits `{"n": i}` for i in 0..total, ten per batch, resuming after its committed offset.
struct CountingSource {
    probe: Arc<Probe>,
    total: u64,
    topic: String,
}

#[async_trait]
impl Source for CountingSource {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        let partition = json!({"counter": "test"});
        let mut next = ctx
            .committed(&partition)
            .and_then(|o| o["next"].as_u64())
            .unwrap_or(0);
        while next < self.total {
            let end = (next + 10).min(self.total);
            let records = (next..end)
                .map(|i| Record::new(self.topic.clone(), Payload::value(json!({"n": i}))))
                .collect();
            let batch = SourceBatch {
                records,
                offsets: vec![(partition.clone(), json!({"next": end}))],
                ..SourceBatch::default()
            };
            ctx.send(batch).await?;
            if ctx.cancellation().is_cancelled() {
                return Ok(());
            }
            self.probe.sent.fetch_add(end - next, Ordering::SeqCst);
            next = end;
        }
        ctx.cancellation().cancelled().await;
        Ok(())
    }
}

/// Buffers values; a flush records them in the probe. It may be slow, and may fail one flush.
struct ProbeSink {
    probe: Arc<Probe>,
    delay: Duration,
    fail_at: Option<usize>,
    buffer: Vec<i64>,
}

#[async_trait]
impl Sink for ProbeSink {
    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        tokio::time::sleep(self.delay).await;
        for mut record in records {
            let n = record
                .value
                .get()
                .ok()
                .and_then(|d| d.value["n"].as_i64())
                .unwrap_or(-1);
            self.buffer.push(n);
        }
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        let count = self.probe.flushes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at == Some(count) {
            self.buffer.clear();
            return Err(ConnectorError::fatal("flushing", "the test sink crashed"));
        }
        let mut flushed = self.probe.flushed.lock().unwrap();
        flushed.append(&mut self.buffer);
        Ok(())
    }
}

struct Plugin(ConnectorType);

impl ConnectorPlugin for Plugin {
    fn class(&self) -> &'static str {
        match self.0 {
            ConnectorType::Source => "test.CountingSource",
            ConnectorType::Sink => "test.ProbeSink",
        }
    }

    fn connector_type(&self) -> ConnectorType {
        self.0
    }

    fn keys(&self) -> &'static [ConfigKey] {
        &[ID, TOTAL, TOPIC, DELAY, FAIL_AT]
    }

    fn build(&self, options: &mut Options, _: &BuildContext) -> Option<Task> {
        let probe = probe(&options.string(&ID)?);
        Some(match self.0 {
            ConnectorType::Source => Task::Source(Box::new(CountingSource {
                probe,
                total: options.u64(&TOTAL).unwrap_or(100),
                topic: options.string(&TOPIC).unwrap_or_else(|| "t".into()),
            })),
            ConnectorType::Sink => Task::Sink(Box::new(ProbeSink {
                probe,
                delay: Duration::from_millis(options.u64(&DELAY).unwrap_or(0)),
                fail_at: options.u64(&FAIL_AT).map(|n| n as usize),
                buffer: Vec::new(),
            })),
        })
    }
}

fn runtime(dir: &std::path::Path) -> Runtime {
    Runtime::new(
        dir,
        Registry::new(vec![
            Arc::new(Plugin(ConnectorType::Source)),
            Arc::new(Plugin(ConnectorType::Sink)),
        ]),
    )
}

fn config(name: &str, config: Value) -> ConnectorConfig {
    parse_json(
        &json!({"name": name, "config": config}).to_string(),
        "test",
        None,
    )
    .unwrap()
}

/// Creates connector `name` as the REST API would.
async fn create(rt: &Runtime, name: &str, config_map: Value) {
    rt.apply(config(name, config_map), Origin::Rest)
        .await
        .unwrap();
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_run_pause_resume_stop_and_go() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let p = probe("lifecycle");
    create(
        &rt,
        "sink",
        json!({"connector.class": "test.ProbeSink", "topics": "t", "test.id": "lifecycle"}),
    )
    .await;
    create(
        &rt,
        "source",
        json!({"connector.class": "test.CountingSource", "total": "50", "test.id": "lifecycle"}),
    )
    .await;
    eventually("all 50 records", || p.flushed.lock().unwrap().len() == 50).await;
    assert_eq!(*p.flushed.lock().unwrap(), (0..50).collect::<Vec<_>>());

    rt.pause("source").await.unwrap();
    assert_eq!(rt.status("source").unwrap().state, State::Paused);
    rt.resume("source").await.unwrap();
    assert_eq!(rt.status("source").unwrap().state, State::Running);
    rt.set_target("source", Target::Stopped).await.unwrap();
    assert_eq!(rt.status("source").unwrap().state, State::Stopped);
    assert_eq!(rt.connector("source").await.unwrap().tasks, 0);
    rt.remove("source", None).await.unwrap();
    assert!(rt.status("source").is_none());
    assert!(
        rt.pause("source").await.is_err(),
        "a removed connector is gone"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_holds_the_source_back() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let p = probe("backpressure");
    create(
        &rt,
        "slow",
        json!({"connector.class": "test.ProbeSink", "topics": "t",
            "test.id": "backpressure", "write.delay.ms": "20"}),
    )
    .await;
    create(
        &rt,
        "fast",
        json!({"connector.class": "test.CountingSource", "total": "100000",
            "test.id": "backpressure"}),
    )
    .await;
    // At 20 ms a batch of ten the sink takes ~200 s for everything; meanwhile the source may
    // only run ahead by what the bounded channels hold.
    let mut widest = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let sent = p.sent.load(Ordering::SeqCst);
        let written = p.flushed.lock().unwrap().len() as u64;
        widest = widest.max(sent.saturating_sub(written));
    }
    assert!(
        p.sent.load(Ordering::SeqCst) < 100_000,
        "the source was not held back"
    );
    assert!(
        widest <= 200,
        "the source ran {widest} records ahead of the sink (the bus holds a few batches)"
    );
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_crashes_loses_nothing_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(dir.path());
    let p = probe("crash");
    create(
        &rt,
        "sink",
        json!({"connector.class": "test.ProbeSink", "topics": "t",
            "test.id": "crash", "fail.at.flush": "3", "write.delay.ms": "5"}),
    )
    .await;
    create(
        &rt,
        "source",
        json!({"connector.class": "test.CountingSource", "total": "300",
            "test.id": "crash"}),
    )
    .await;
    eventually("the sink to fail", || {
        rt.status("sink").is_some_and(|s| s.state == State::Failed)
    })
    .await;
    let trace = rt.status("sink").unwrap().trace.unwrap_or_default();
    assert!(trace.contains("the test sink crashed"), "{trace}");

    // The source's committed position covers only what the sink flushed: stopped and started
    // again, it replays the rest into the restarted sink.
    rt.set_target("source", Target::Stopped).await.unwrap();
    assert!(rt.restart("sink", true).await.unwrap());
    rt.set_target("source", Target::Started).await.unwrap();
    eventually("every record after the restart", || {
        let flushed = p.flushed.lock().unwrap();
        (0..300).all(|n| flushed.contains(&n))
    })
    .await;
    rt.shutdown().await;
}
