//! The book chapter's streaming job from Kafka: events/s and peak RSS of a sink connector that
//! reads a 4-partition click topic on tansu and windows it (`headwater.window.Aggregate`,
//! 5-minute tumbling windows, `count` + exact `count_distinct`, 100,000 users, a state cache of
//! 150,000 windows) into the
//! BlackholeSink, beside a plain rdkafka consumer loop reading the same topic.
//!
//!     cargo bench --bench kafka_window                     # 1,000,000 clicks
//!     HEADWATER_BENCH_ROWS=3000000 cargo bench --bench kafka_window
//!     HEADWATER_BENCH_CONFIG='{"transforms.window.state.cache.max.entries":"200000"}' \
//!         cargo bench --bench kafka_window              # keys added to the sink's config
//!     HEADWATER_BENCH_CONSUMER='{"fetch.wait.max.ms":"500"}' \
//!         cargo bench --bench kafka_window              # librdkafka settings of both sides
//!
//! Needs the tansu broker (scripts/setup.sh builds it). Headwater runs in a child process, so
//! its peak RSS (VmHWM) is its own; it is timed from starting the connector until it has taken
//! in every click (the windows' state checkpointed with the consumed offsets as it goes).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[path = "common/produce.rs"]
mod produce;
#[path = "../../tests/support/service.rs"]
mod service;
use service::{Service, repo_root};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/rss.rs"]
mod rss;

#[path = "common/figure.rs"]
mod figure;
#[path = "common/run.rs"]
mod run;
use figure::{Better, Figure, thousands};
use rss::peak_rss_mib;

const TOPIC: &str = "bench-click-events";
const USERS: u64 = 100_000;
/// The windows kept decoded in memory: 1.5 times the users.
const CACHE: u64 = USERS * 3 / 2;
/// A side that has not read everything by then is stuck, not slow.
const TIMEOUT: Duration = Duration::from_secs(600);

/// Clicks keyed by page (not by the user the windows group by), event time 1 ms apart.
fn produce(bootstrap: &str, rows: u64) {
    let status = std::process::Command::new("python3")
        .arg(repo_root().join("host/testdata/kafka/client.py"))
        .args(["create", bootstrap, TOPIC, "4"])
        .status()
        .expect("create the topic");
    assert!(status.success());
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()
        .expect("producer");
    for i in 0..rows {
        let user = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % USERS;
        let page = format!("/page/{}", (i * 7) % 200);
        let value = format!(
            r#"{{"user_id":"user{user}","page_id":"{page}","action":"view","ts":{}}}"#,
            1_748_764_800_000u64 + i
        );
        produce::send_waiting(&producer, BaseRecord::to(TOPIC).key(&page).payload(&value));
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(120)).expect("produced");
}

/// The client settings both sides read with: Headwater's, plus `HEADWATER_BENCH_CONSUMER`.
fn settings(bootstrap: &str) -> headwater::kafka::KafkaSettings {
    let mut settings = headwater::kafka::KafkaSettings::new(bootstrap);
    if let Ok(extra) = std::env::var("HEADWATER_BENCH_CONSUMER") {
        let extra: std::collections::BTreeMap<String, String> = serde_json::from_str(&extra)
            .expect("HEADWATER_BENCH_CONSUMER is a JSON object of strings");
        settings.consumer.extend(extra);
    }
    settings
}

/// A plain consumer loop: poll, touch the payload, count.
fn plain(bootstrap: &str, rows: u64) -> Duration {
    let consumer: BaseConsumer = settings(bootstrap)
        .consumer_config("bench-plain", "bench-plain")
        .create()
        .expect("consumer");
    let started = Instant::now();
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    let (mut seen, mut bytes) = (0u64, 0usize);
    while seen < rows {
        assert!(
            started.elapsed() < TIMEOUT,
            "the plain consumer read {seen} of {rows}"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    assert!(bytes > 0);
    started.elapsed()
}

/// The child: the windowing sink connector, until it has taken in every click.
fn headwater_side(bootstrap: &str, rows: u64) {
    // As `headwater run` sets the process up (transparent huge pages off).
    headwater::runtime::host::prepare_process().expect("turning transparent huge pages off");
    let work = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let (elapsed, cache) = rt.block_on(async {
        use headwater::config::connector::parse_json;
        use headwater::runtime::host::Origin;
        use headwater::runtime::kafka_bus::link::KafkaLink;
        let link = KafkaLink::new(settings(bootstrap), false);
        let runtime = headwater::runtime(&work.path().join("var")).with_kafka(link);
        let mut config = serde_json::json!({"name": "bench-window", "config": {
            "connector.class": "headwater.blackhole.BlackholeSink",
            "topics": TOPIC,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "window",
            "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id",
            "transforms.window.window.size.ms": "300000",
            "transforms.window.time.field": "ts",
            "transforms.window.watermark.delay.ms": "5000",
            "transforms.window.aggregates":
                "click_count_5min:count,unique_pages_5min:count_distinct(page_id)",
            // Sized for the load, as docs/src/state.md advises: every user's window, plus the
            // next window's users while the last one closes. At the default (100,000), the
            // cache evicts and reads back windows at every window end: ~0.6 of the rate.
            "transforms.window.state.cache.max.entries": CACHE.to_string(),
        }});
        if let Ok(extra) = std::env::var("HEADWATER_BENCH_CONFIG") {
            let extra: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&extra).expect("HEADWATER_BENCH_CONFIG is a JSON object");
            config["config"]
                .as_object_mut()
                .expect("config object")
                .extend(extra);
        }
        let cache = config["config"]["transforms.window.state.cache.max.entries"]
            .as_str()
            .unwrap_or("the default")
            .to_owned();
        let sink = parse_json(&config.to_string(), "bench", None).expect("sink config");
        let started = Instant::now();
        runtime.apply(sink, Origin::Rest).await.expect("sink");
        loop {
            let taken = runtime.metrics("bench-window").map_or(0, |m| m.records_in);
            if taken >= rows {
                break;
            }
            assert!(
                started.elapsed() < TIMEOUT,
                "Headwater took in {taken} of {rows}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        runtime.shutdown().await;
        (elapsed, cache)
    });
    let rate = rows as f64 / elapsed.as_secs_f64();
    let rss = peak_rss_mib();
    println!(
        "headwater: Kafka -> window (count + count_distinct, {USERS} users, cache {cache}) -> \
         blackhole: {rate:>9.0} events/s ({:.2} s), peak RSS {rss:.0} MiB",
        elapsed.as_secs_f64(),
    );
    let path = format!(
        "Kafka → window → blackhole, {} users ({} clicks)",
        thousands(USERS),
        thousands(rows)
    );
    let plain: f64 = run::env_number("HEADWATER_BENCH_PLAIN_RATE", f64::NAN);
    Figure::beside(
        &path,
        "events/s",
        rate,
        ("plain rdkafka consumer loop", plain),
        Some(0.8),
    )
    .record();
    Figure::alone(
        &format!("{path}, peak RSS"),
        "MiB",
        rss,
        Better::Lower,
        Some(200.0),
    )
    .record();
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = run::rows(1_000_000);
    if let Ok(bootstrap) = std::env::var("HEADWATER_BENCH_BOOTSTRAP") {
        headwater_side(&bootstrap, rows);
        return;
    }
    let broker = Service::start("tansu");
    produce(&broker.url, rows);
    println!("kafka_window: {rows} clicks in {TOPIC} (4 partitions, keyed by page) on tansu");
    let plain_time = plain(&broker.url, rows);
    println!(
        "plain rdkafka consumer loop: {:>9.0} records/s ({:.2} s)",
        rows as f64 / plain_time.as_secs_f64(),
        plain_time.as_secs_f64()
    );
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--bench")
        .env("HEADWATER_BENCH_BOOTSTRAP", &broker.url)
        .env("HEADWATER_BENCH_ROWS", rows.to_string())
        .env(
            "HEADWATER_BENCH_PLAIN_RATE",
            (rows as f64 / plain_time.as_secs_f64()).to_string(),
        )
        .status()
        .expect("run the Headwater side");
    assert!(status.success());
}
