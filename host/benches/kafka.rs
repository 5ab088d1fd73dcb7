//! Kafka consume throughput: records/s from a tansu topic through Headwater's Kafka intake
//! (consumer group, JsonConverter, commits after each flush) into the BlackholeSink, against a
//! plain rdkafka consumer loop reading the same topic in the same run.
//!
//!     cargo bench --bench kafka                       # 500,000 records of ~170 bytes, 4 partitions
//!     HEADWATER_BENCH_ROWS=200000 cargo bench --bench kafka
//!
//! Needs the tansu broker (scripts/setup.sh builds it). Each side reads the whole topic in its
//! own consumer group, timed from subscribing to the last record.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;
#[path = "common/figure.rs"]
mod figure;
#[path = "common/produce.rs"]
mod produce;
#[path = "../../tests/support/service.rs"]
mod service;
use service::{Service, repo_root};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOPIC: &str = "bench-clicks";
const PARTITIONS: &str = "4";
/// Records of the tasks.max comparison.
const TASKS_ROWS: usize = 200_000;
/// How long a paused sink's tasks are given to join their group and prefetch its topic.
const GROUP_SETTLES: Duration = Duration::from_secs(6);
/// A side that has not read everything by then is stuck, not slow.
const TIMEOUT: Duration = Duration::from_secs(300);

fn produce(bootstrap: &str, rows: usize) -> u64 {
    create_topic(bootstrap, TOPIC);
    produce_to(bootstrap, TOPIC, rows)
}

fn create_topic(bootstrap: &str, topic: &str) {
    let script = repo_root().join("host/testdata/kafka/client.py");
    let status = Command::new("python3")
        .arg(script)
        .args(["create", bootstrap, topic, PARTITIONS])
        .status()
        .expect("create the topic");
    assert!(status.success());
}

/// Produces `rows` click records to `topic`; returns their bytes.
fn produce_to(bootstrap: &str, topic: &str, rows: usize) -> u64 {
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    let mut bytes = 0u64;
    for i in 0..rows {
        let key = format!("u{:05}", i % 50_000);
        let value = format!(
            r#"{{"id":{i},"user_id":"{key}","page":"/products/{}","referrer":"https://example.com/search?q={}","ts":{}}}"#,
            i % 997,
            i % 31,
            1_700_000_000_000u64 + i as u64
        );
        bytes += value.len() as u64;
        produce::send_waiting(&producer, BaseRecord::to(topic).key(&key).payload(&value));
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).expect("produced");
    bytes
}

/// A plain consumer loop: poll, touch the payload, count. Returns the elapsed time.
fn plain(bootstrap: &str, group: &str, rows: usize) -> Duration {
    let settings = headwater::kafka::KafkaSettings::new(bootstrap);
    let consumer: BaseConsumer = settings
        .consumer_config(group, group)
        .create()
        .expect("consumer");
    let started = Instant::now();
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let mut seen = 0usize;
    let mut bytes = 0usize;
    while seen < rows {
        if started.elapsed() > TIMEOUT {
            panic!("the plain consumer read {seen} of {rows} records in {TIMEOUT:?}");
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let elapsed = started.elapsed();
    assert!(bytes > 0);
    elapsed
}

/// Runs a BlackholeSink `name` (so group `connect-<name>`) until it has read every record.
fn headwater(bootstrap: &str, name: &str, work: &Path, rows: usize) -> Duration {
    let config = serde_json::json!({
        "connector.class": "headwater.blackhole.BlackholeSink",
        "topics": TOPIC,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    });
    run_sink(bootstrap, name, config, work, rows, false)
}

/// Runs a ParquetSink `name` with `tasks` tasks until it has written every record.
/// Runs on librdkafka's mock cluster, in this process: on tansu 0.6 a partition that moves
/// while it is read (the first task may own every partition until the second has joined)
/// resumes after the record batch holding the committed offset, skipping the rest of it.
fn to_parquet(bootstrap: &str, name: &str, tasks: usize, work: &Path, rows: usize) -> Duration {
    let topic = TOPIC;
    let config = serde_json::json!({
        "connector.class": "headwater.parquet.ParquetSink",
        "topics": topic,
        "tasks.max": tasks.to_string(),
        // Every record prefetched while the sink is paused (librdkafka's default, not
        // Headwater's tenth of it): what is timed is the sink's work, not tansu's fetches.
        "consumer.override.queued.min.messages": "100000",
        "path": work.join("var").join(name).display().to_string(),
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    });
    run_sink(bootstrap, name, config, work, rows, true)
}

/// Runs sink connector `name` with `config` until it has taken every record.
fn run_sink(
    bootstrap: &str,
    name: &str,
    config: serde_json::Value,
    work: &Path,
    rows: usize,
    settle: bool,
) -> Duration {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        use headwater::config::connector::parse_json;
        use headwater::runtime::host::Origin;
        use headwater::runtime::kafka_bus::link::KafkaLink;
        let link = KafkaLink::new(headwater::kafka::KafkaSettings::new(bootstrap), false);
        let runtime = headwater::runtime(&work.join("var")).with_kafka(link);
        let sink = parse_json(
            &serde_json::json!({"name": name, "config": config}).to_string(),
            "bench",
            None,
        )
        .expect("sink config");
        let mut started = Instant::now();
        let mut cpu_at_start = cpu_seconds();
        runtime.apply(sink, Origin::Rest).await.expect("sink");
        if settle {
            // Paused while the group settles (Kafka holds a new group's first assignment
            // back 3 s, `group.initial.rebalance.delay.ms`) and the consumers prefetch (each
            // task's inbox takes 4 batches, the rest waits in librdkafka's queues). The sink's
            // work is timed from the resume.
            runtime.pause(name).await.expect("pause");
            tokio::time::sleep(GROUP_SETTLES).await;
            runtime.resume(name).await.expect("resume");
            started = Instant::now();
            cpu_at_start = cpu_seconds();
        }
        loop {
            let out = runtime.metrics(name).map_or(0, |m| m.records_out);
            if out >= rows as u64 {
                break;
            }
            if started.elapsed() > TIMEOUT {
                panic!("Headwater read {out} of {rows} records in {TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        if settle {
            println!(
                "{name}: {:.2} cores busy in this process while timed",
                (cpu_seconds() - cpu_at_start) / elapsed.as_secs_f64()
            );
        }
        runtime.shutdown().await;
        elapsed
    })
}

fn main() {
    let rows: usize = std::env::var("HEADWATER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500_000);
    let broker = Service::start("tansu");
    let bytes = produce(&broker.url, rows);
    println!(
        "kafka: {rows} records ({:.0} bytes each) in {TOPIC} ({PARTITIONS} partitions) on tansu",
        bytes as f64 / rows as f64
    );
    let work = tempfile::tempdir().expect("temp dir");
    // Plain first, Headwater second, then both again (each run in a group of its own): the
    // second pair is the one reported (the broker's caches are warm for both).
    let _ = plain(&broker.url, "bench-plain-1", rows);
    let _ = headwater(&broker.url, "bench-kafka-1", work.path(), rows);
    let plain_time = plain(&broker.url, "bench-plain-2", rows);
    let headwater_time = headwater(&broker.url, "bench-kafka-2", work.path(), rows);
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!(
        "plain rdkafka consumer loop: {:>10.0} records/s ({:.2} s)",
        rate(plain_time),
        plain_time.as_secs_f64()
    );
    println!(
        "headwater intake -> JsonConverter -> blackhole: {:>10.0} records/s ({:.2} s)",
        rate(headwater_time),
        headwater_time.as_secs_f64()
    );
    println!(
        "ratio: {:.2} (goal >= 0.8)",
        rate(headwater_time) / rate(plain_time)
    );
    figure::Figure::beside(
        &format!(
            "Kafka → JsonConverter → blackhole, {PARTITIONS} partitions ({} records)",
            figure::thousands(rows as u64)
        ),
        "records/s",
        rate(headwater_time),
        ("plain rdkafka consumer loop", rate(plain_time)),
        Some(0.8),
    )
    .record();
    // tasks.max: the same topic into Parquet (JSON decoding, Arrow encoding and zstd on the
    // sink's side) by one task, then by two, each in a group of its own; twice, interleaved,
    // the faster of each kept (the runs are short).
    let mock = rdkafka::mocking::MockCluster::new(1).expect("start a mock Kafka cluster");
    mock.create_topic(TOPIC, PARTITIONS.parse().expect("a number"), 1)
        .expect("create the topic");
    let mock_bootstrap = mock.bootstrap_servers();
    // No more than one consumer prefetches while paused (~240,000 of these records; past
    // that it stalls on the mock cluster's next fetches for about a second).
    let rows = rows.min(TASKS_ROWS);
    produce_to(&mock_bootstrap, TOPIC, rows);
    let mut one = Duration::MAX;
    let mut two = Duration::MAX;
    for round in 0..2 {
        let name = |tasks| format!("bench-parquet-{tasks}-{round}");
        one = one.min(to_parquet(&mock_bootstrap, &name(1), 1, work.path(), rows));
        two = two.min(to_parquet(&mock_bootstrap, &name(2), 2, work.path(), rows));
    }
    println!(
        "Kafka -> Parquet, 1 task: {:>10.0} records/s ({:.2} s); 2 tasks: {:>10.0} records/s ({:.2} s); 2 / 1: {:.2}",
        rate(one),
        one.as_secs_f64(),
        rate(two),
        two.as_secs_f64(),
        rate(two) / rate(one)
    );
    figure::Figure::beside(
        &format!(
            "Kafka (mock cluster) → Parquet, tasks.max 2, {PARTITIONS} partitions ({} records)",
            figure::thousands(rows as u64)
        ),
        "records/s",
        rate(two),
        ("the same with tasks.max 1", rate(one)),
        None,
    )
    .record();
}
