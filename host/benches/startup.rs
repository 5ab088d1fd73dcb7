//! Start-up with the ten pipelines of a typical host (issue 21's table): a `headwater run`
//! process with 15 connectors over real services — 2 PostgreSQL CDC sources, each into a
//! RedisSink through a WASM step; 3 sinks reading Kafka topics (Redis, 2 Parquet); 3
//! FileSources, each into its ParquetSink; 2 Kafka → window → Redis sinks.
//!
//! Two times, from spawning the process: until `/health` says healthy and every connector and
//! task is RUNNING (which Headwater reports once it has built a connector's chain — WASM
//! module compiled or loaded — and launched its tasks, before they have connected); and until
//! a record placed in every input while the host was down has come out of each pipeline that
//! writes per record (a CDC row in Redis, a click in Redis, a Parquet file in each of the five
//! lakes, whose sinks here commit a file per record): the host actually serving. The windowed
//! sinks only restore their state at start (no window closes on one click).
//!
//! The first start is cold (replication slots and publications created, the WASM module
//! compiled into the module cache); then the host is stopped (SIGTERM) and started again
//! `HEADWATER_BENCH_ROUNDS` times (default 5) on the same data directory: the restart of a
//! host, modules cached. (Kafka's default, dynamic group membership: on tansu a static member's
//! join takes ~6 s, confluent-kafka's consumer alone as Headwater's.) Also reports the
//! process's peak RSS once serving.
//!
//! Then the host under load: `HEADWATER_BENCH_ROWS` records (default 100,000) into each of the
//! ten inputs at once, its RSS sampled every 100 ms until every sink has taken them; then the
//! same again while Redis holds every write for 15 s (`CLIENT PAUSE ... WRITE`), so the Redis
//! sinks stall with a backlog: issue 21's "RSS of ten pipelines at full load, then one sink
//! slowed".
//!
//!     cargo bench --bench startup
//!     HEADWATER_BENCH_ROWS=20000 HEADWATER_BENCH_ROUNDS=2 cargo bench --bench startup
//!
//! Needs PostgreSQL, Redis, the tansu broker (scripts/setup.sh) and the plugins
//! (`cargo build --release --target wasm32-wasip2` in plugins/, which the bench runs).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[path = "../../tests/support/service.rs"]
mod service;
use service::{Service, repo_root};
#[path = "common/pg.rs"]
mod pg;
#[path = "common/produce.rs"]
mod produce;
#[path = "common/rss.rs"]
mod rss;
// Not its row count: this bench's load is its connectors.
#[path = "common/figure.rs"]
mod figure;
#[allow(dead_code)]
#[path = "common/run.rs"]
mod run;
use figure::{Better, Figure};

const TIMEOUT: Duration = Duration::from_secs(120);

/// The pass-through plugin, built if needed.
fn passthrough() -> PathBuf {
    let plugins = repo_root().join("plugins");
    let status = Command::new("cargo")
        .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&plugins)
        .status()
        .expect("build the plugins");
    assert!(status.success(), "building plugins/ failed");
    plugins.join("target/wasm32-wasip2/release/passthrough.wasm")
}

/// The ten pipelines' connector configs (15 connectors).
fn configs(pg_port: u16, redis: &str, wasm: &Path, work: &Path) -> Vec<serde_json::Value> {
    let mut configs = Vec::new();
    for table in ["orders", "users"] {
        configs.push(
            serde_json::json!({"name": format!("{table}-cdc"), "config": {
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "database.hostname": "127.0.0.1", "database.port": pg_port.to_string(),
                "database.user": "postgres", "database.dbname": "startbench",
                "topic.prefix": "pg", "slot.name": format!("start_{table}"),
                "publication.name": format!("start_{table}"),
                "publication.autocreate.mode": "filtered",
                "table.include.list": format!("public.{table}"),
            }}),
        );
        configs.push(
            serde_json::json!({"name": format!("{table}-online"), "config": {
                "connector.class": "headwater.redis.RedisSink",
                "topics": format!("pg.public.{table}"),
                "transforms": "unwrap,wasm",
                "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
                "transforms.wasm.type": "headwater.wasm.Transform",
                "transforms.wasm.module": wasm.display().to_string(),
                "redis.uri": redis, "key.prefix": format!("{table}:"), "key.fields": "id",
            }}),
        );
    }
    let kafka_json = |config: serde_json::Value| {
        let mut config = config;
        let map = config.as_object_mut().expect("object");
        for (k, v) in [
            (
                "key.converter",
                "org.apache.kafka.connect.storage.StringConverter",
            ),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("value.converter.schemas.enable", "false"),
        ] {
            map.insert(k.into(), v.into());
        }
        config
    };
    configs.push(
        serde_json::json!({"name": "clicks-online", "config": kafka_json(serde_json::json!({
            "connector.class": "headwater.redis.RedisSink", "topics": "clicks",
            "redis.uri": redis, "key.prefix": "click:", "key.fields": "id",
        }))}),
    );
    for topic in ["clicks", "views"] {
        configs.push(serde_json::json!({"name": format!("{topic}-lake"), "config": kafka_json(serde_json::json!({
            "connector.class": "headwater.parquet.ParquetSink", "topics": topic,
            "path": work.join(format!("out/{topic}")).display().to_string(),
            "flush.size": "1",
        }))}));
        configs.push(serde_json::json!({"name": format!("{topic}-windows"), "config": kafka_json(serde_json::json!({
            "connector.class": "headwater.redis.RedisSink", "topics": topic,
            "transforms": "window", "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id",
            "transforms.window.window.size.ms": "300000",
            "transforms.window.time.field": "ts",
            "transforms.window.aggregates": "n:count",
            "redis.uri": redis, "key.prefix": format!("{topic}-win:"),
            "key.fields": "user_id,window_start",
        }))}));
    }
    for feed in ["payments", "refunds", "sessions"] {
        configs.push(
            serde_json::json!({"name": format!("{feed}-files"), "config": {
                "connector.class": "headwater.file.FileSource",
                "path": work.join(format!("in/{feed}/*.jsonl")).display().to_string(),
                "topic": feed,
            }}),
        );
        configs.push(
            serde_json::json!({"name": format!("{feed}-lake"), "config": {
                "connector.class": "headwater.parquet.ParquetSink", "topics": feed,
                "path": work.join(format!("out/{feed}")).display().to_string(),
                "flush.size": "1",
            }}),
        );
    }
    configs
}

/// Every connector and its tasks RUNNING, through the REST API.
fn all_running(port: u16, expected: usize) -> bool {
    let health = ureq::get(format!("http://127.0.0.1:{port}/health")).call();
    if !health.is_ok_and(|r| r.status() == 200) {
        return false;
    }
    let Some(status) = ureq::get(format!("http://127.0.0.1:{port}/connectors?expand=status"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
    else {
        return false;
    };
    let Some(connectors) = status.as_object() else {
        return false;
    };
    connectors.len() == expected
        && connectors.values().all(|c| {
            let status = &c["status"];
            status["connector"]["state"] == "RUNNING"
                && status["tasks"]
                    .as_array()
                    .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "RUNNING"))
        })
}

/// The lakes a per-record check looks at.
const LAKES: [&str; 5] = ["clicks", "views", "payments", "refunds", "sessions"];

/// Committed Parquet files under `dir` (in-progress and staged files start with a dot).
fn parquet_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                0
            } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                parquet_files(&e.path())
            } else {
                usize::from(name.ends_with(".parquet"))
            }
        })
        .sum()
}

/// One record into every input while the host is down; returns the lakes' file counts before.
fn place_records(round: u64, pg_port: u16, producer: &BaseProducer, work: &Path) -> Vec<usize> {
    let before = LAKES
        .iter()
        .map(|l| parquet_files(&work.join(format!("out/{l}"))))
        .collect();
    pg::psql(
        pg_port,
        "startbench",
        &[
            "-c",
            &format!("INSERT INTO orders VALUES ({round}, 12.5)"),
            "-c",
            &format!("INSERT INTO users VALUES ({round}, 'u{round}')"),
        ],
    );
    let click = format!(
        r#"{{"id":{round},"user_id":"u1","ts":{}}}"#,
        1_767_225_600_000u64 + round
    );
    for topic in ["clicks", "views"] {
        producer
            .send(BaseRecord::to(topic).key("u1").payload(&click))
            .expect("produce");
    }
    producer
        .flush(Duration::from_secs(10))
        .expect("flush the producer");
    for feed in ["payments", "refunds", "sessions"] {
        std::fs::write(
            work.join(format!("in/{feed}/r{round}.jsonl")),
            format!("{{\"id\":{round},\"amount\":3.5}}\n"),
        )
        .expect("write an input file");
    }
    before
}

/// Which per-record pipelines have written the round's record, by name.
fn served(
    round: u64,
    redis: &mut redis::Connection,
    work: &Path,
    before: &[usize],
) -> Vec<(String, bool)> {
    let mut done: Vec<(String, bool)> = ["orders", "users", "click"]
        .iter()
        .map(|prefix| {
            let key = format!("{prefix}:{round}");
            let exists: bool = redis::cmd("EXISTS").arg(&key).query(redis).unwrap_or(false);
            (format!("{prefix} → Redis"), exists)
        })
        .collect();
    for (lake, before) in LAKES.iter().zip(before) {
        let files = parquet_files(&work.join(format!("out/{lake}")));
        done.push((format!("{lake} → Parquet"), files > *before));
    }
    done
}

/// What a start took: seconds to every connector RUNNING, to serving, and the peak RSS then.
struct Started {
    host: Child,
    /// Its REST port.
    port: u16,
    running: f64,
    serving: f64,
    rss: f64,
    /// Each pipeline's first output, in seconds from the spawn.
    firsts: Vec<(String, f64)>,
}

/// Starts the host and waits until it serves the round's records.
fn start(
    work: &Path,
    expected: usize,
    round: u64,
    redis: &mut redis::Connection,
    before: &[usize],
) -> Started {
    let ready = work.join("ready.json");
    let _ = std::fs::remove_file(&ready);
    let started = Instant::now();
    let host = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("run")
        .arg("--config")
        .arg(work.join("worker.toml"))
        .arg("--connectors-dir")
        .arg(work.join("connectors.d"))
        .arg("--data-dir")
        .arg(work.join("var"))
        .args(["--rest-listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(work.join("host.log")).expect("log file"))
        .spawn()
        .expect("start headwater");
    let deadline = |what: &str| {
        assert!(
            started.elapsed() < TIMEOUT,
            "{what} after {TIMEOUT:?}: see {}",
            work.join("host.log").display()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let port = loop {
        let port = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|r| r["rest"].as_str()?.rsplit(':').next()?.parse::<u16>().ok());
        if let Some(port) = port {
            break port;
        }
        deadline("no REST port");
    };
    while !all_running(port, expected) {
        deadline("not every connector RUNNING");
    }
    let running = started.elapsed().as_secs_f64();
    let mut firsts: Vec<(String, f64)> = Vec::new();
    loop {
        let done = served(round, redis, work, before);
        let now = started.elapsed().as_secs_f64();
        for (name, _) in done.iter().filter(|(_, d)| *d) {
            if !firsts.iter().any(|(n, _)| n == name) {
                firsts.push((name.clone(), now));
            }
        }
        if firsts.len() == done.len() {
            break;
        }
        deadline("not every pipeline served its record");
    }
    let serving = started.elapsed().as_secs_f64();
    let rss = rss::status_mib(&host.id().to_string(), "VmHWM");
    Started {
        host,
        port,
        running,
        serving,
        rss,
        firsts,
    }
}

/// `HEADWATER_BENCH_ONLY=cdc|kafka|files` feeds only those inputs in the load phase, to see
/// which pipelines hold the memory.
fn only() -> Option<String> {
    std::env::var("HEADWATER_BENCH_ONLY").ok()
}

/// Every connector's task counters since the host started, in one request:
/// connector → `{"records_in": .., "records_out": .., ...}`.
fn counters(port: u16) -> serde_json::Value {
    ureq::get(format!("http://127.0.0.1:{port}/connectors?expand=status"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
        .unwrap_or_default()
}

/// What each sink has taken or written when a load of `rows` per input has gone through:
/// (connector, counter). The windowed sinks write windows, not records: they count records in.
const DRAINED: [(&str, &str); 10] = [
    ("orders-online", "records_out"),
    ("users-online", "records_out"),
    ("clicks-online", "records_out"),
    ("clicks-lake", "records_out"),
    ("views-lake", "records_out"),
    ("clicks-windows", "records_in"),
    ("views-windows", "records_in"),
    ("payments-lake", "records_out"),
    ("refunds-lake", "records_out"),
    ("sessions-lake", "records_out"),
];

/// `rows` more into every input: a transaction of `rows` inserts into each table, `rows` clicks
/// into each topic, a file of `rows` lines into each folder. `batch` numbers the load.
fn load(batch: u64, rows: u64, pg_port: u16, producer: &BaseProducer, work: &Path) {
    let first = 1_000_000 * (batch + 1);
    let last = first + rows - 1;
    let fed = |kind: &str| only().is_none_or(|k| k == kind);
    if fed("cdc") {
        pg::psql(
            pg_port,
            "startbench",
            &[
                "-c",
                &format!(
                    "INSERT INTO orders SELECT g, g % 1000 FROM generate_series({first}, {last}) g"
                ),
                "-c",
                &format!(
                    "INSERT INTO users SELECT g, 'u' || g FROM generate_series({first}, {last}) g"
                ),
            ],
        );
    }
    for feed in ["payments", "refunds", "sessions"]
        .into_iter()
        .filter(|_| fed("files"))
    {
        let lines: String = (first..=last)
            .map(|i| {
                format!(
                    "{{\"id\":{i},\"user_id\":\"u{}\",\"amount\":{}.5}}\n",
                    i % 5000,
                    i % 100
                )
            })
            .collect();
        let landing = work.join(format!("in/{feed}/.load-{batch}"));
        std::fs::write(&landing, lines).expect("write a load file");
        std::fs::rename(&landing, work.join(format!("in/{feed}/load-{batch}.jsonl")))
            .expect("land a load file");
    }
    for i in (first..=last).filter(|_| fed("kafka")) {
        let click = format!(
            r#"{{"id":{i},"user_id":"u{}","page":"/p/{}","ts":{}}}"#,
            i % 10_000,
            i % 50,
            1_767_225_600_000 + i
        );
        let key = format!("u{}", i % 10_000);
        for topic in ["clicks", "views"] {
            produce::send_waiting(producer, BaseRecord::to(topic).key(&key).payload(&click));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("flush the producer");
}

/// Samples the host's RSS every 100 ms until every sink has taken `want` records; returns the
/// peak RSS and the seconds it took.
fn drain(host: &Child, port: u16, want: u64) -> (f64, f64) {
    let started = Instant::now();
    let mut peak = 0f64;
    let fed = |connector: &str| match only().as_deref() {
        None => true,
        Some("cdc") => connector == "orders-online" || connector == "users-online",
        Some("files") => ["payments-lake", "refunds-lake", "sessions-lake"].contains(&connector),
        Some(_) => connector.starts_with("clicks") || connector.starts_with("views"),
    };
    loop {
        peak = peak.max(rss::status_mib(&host.id().to_string(), "VmRSS"));
        let all = counters(port);
        let taken = |(c, name): &(&str, &str)| {
            all[*c]["status"]["tasks"][0]["counters"][*name]
                .as_u64()
                .unwrap_or(0)
        };
        if DRAINED
            .iter()
            .filter(|(c, _)| fed(c))
            .all(|d| taken(d) >= want)
        {
            return (peak, started.elapsed().as_secs_f64());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the load did not drain: {:?}",
            DRAINED.iter().map(|d| (d.0, taken(d))).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Stops the host as a service manager does (SIGTERM), and waits for it.
fn stop(mut host: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let _ = host.wait();
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rounds: usize = run::env_number("HEADWATER_BENCH_ROUNDS", 5);
    let wasm = passthrough();
    let postgres = Service::start("postgres");
    let redis = Service::start("redis");
    let broker = Service::start("tansu");
    pg::psql(
        postgres.port,
        "postgres",
        &["-c", "CREATE DATABASE startbench"],
    );
    pg::psql(
        postgres.port,
        "startbench",
        &[
            "-c",
            "CREATE TABLE orders (id bigint PRIMARY KEY, amount numeric)",
            "-c",
            "CREATE TABLE users (id bigint PRIMARY KEY, name text)",
        ],
    );
    for topic in ["clicks", "views"] {
        let status = Command::new("python3")
            .arg(repo_root().join("host/testdata/kafka/client.py"))
            .args(["create", &broker.url, topic, "4"])
            .status()
            .expect("create the topic");
        assert!(status.success());
    }
    let work = tempfile::tempdir().expect("temp dir");
    let work = work.path();
    let connectors = work.join("connectors.d");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let configs = configs(postgres.port, &redis.url, &wasm, work);
    for config in &configs {
        let name = config["name"].as_str().expect("named");
        std::fs::write(connectors.join(format!("{name}.json")), config.to_string())
            .expect("write config");
    }
    for feed in ["payments", "refunds", "sessions"] {
        std::fs::create_dir_all(work.join(format!("in/{feed}"))).expect("input dir");
    }
    std::fs::write(
        work.join("worker.toml"),
        format!("[kafka]\nbootstrap_servers = \"{}\"\n", broker.url),
    )
    .expect("worker config");
    let n = configs.len();
    println!("startup: {n} connectors (10 pipelines) on PostgreSQL, Redis and tansu");
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.url)
        .create()
        .expect("producer");
    let mut redis = redis::Client::open(redis.url.as_str())
        .and_then(|c| c.get_connection())
        .expect("connect to Redis");

    let mut starts = Vec::new();
    for round in 0..=rounds as u64 {
        let before = place_records(round, postgres.port, &producer, work);
        let started = start(work, n, round, &mut redis, &before);
        println!(
            "{}: every connector RUNNING after {:.3} s, serving after {:.3} s, peak RSS {:.0} MiB",
            if round == 0 {
                "first start (slots, publications, module compiled)"
            } else {
                "restart (modules cached)"
            },
            started.running,
            started.serving,
            started.rss
        );
        let firsts: Vec<String> = started
            .firsts
            .iter()
            .map(|(name, t)| format!("{name} {t:.2} s"))
            .collect();
        println!("  first output: {}", firsts.join(", "));
        stop(started.host);
        starts.push((started.running, started.serving, started.rss));
    }
    let (cold_running, cold_serving, _) = starts.remove(0);
    let median = |pick: fn(&(f64, f64, f64)) -> f64| {
        let mut v: Vec<f64> = starts.iter().map(pick).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (running, serving, rss) = (median(|s| s.0), median(|s| s.1), median(|s| s.2));
    println!(
        "restart, median of {rounds}: every connector RUNNING after {running:.3} s, serving after \
         {serving:.3} s, peak RSS {rss:.0} MiB"
    );
    Figure::alone(
        &format!("restart to healthy (every connector RUNNING), {n} connectors"),
        "s",
        running,
        Better::Lower,
        Some(1.0),
    )
    .record();
    Figure::alone(
        &format!("restart to serving (a record through every pipeline), {n} connectors"),
        "s",
        serving,
        Better::Lower,
        None,
    )
    .record();
    Figure::alone(
        &format!("first start to serving, {n} connectors (slots created, module compiled)"),
        "s",
        cold_serving,
        Better::Lower,
        None,
    )
    .record();
    println!("first start: every connector RUNNING after {cold_running:.3} s");
    Figure::alone(
        &format!("peak RSS once serving, {n} connectors, idle"),
        "MiB",
        rss,
        Better::Lower,
        None,
    )
    .record();

    // Under load: every input fed at once, then the same again while Redis holds every write
    // (CLIENT PAUSE WRITE): the Redis sinks stall, and memory must not grow with their backlog.
    let rows = run::rows(100_000);
    let round = rounds as u64 + 1;
    let before = place_records(round, postgres.port, &producer, work);
    let host = start(work, n, round, &mut redis, &before);
    let started = Instant::now();
    load(0, rows, postgres.port, &producer, work);
    let (loaded_rss, took) = drain(&host.host, host.port, rows + 1);
    let loaded_took = started.elapsed().as_secs_f64().max(took);
    println!(
        "load: {rows} records into each of the 10 inputs drained in {loaded_took:.1} s, peak RSS \
         {loaded_rss:.0} MiB"
    );
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "15000", "WRITE"])
        .query(&mut redis)
        .expect("pause Redis writes");
    let paused = Instant::now();
    load(1, rows, postgres.port, &producer, work);
    let mut stalled_rss = 0f64;
    while paused.elapsed() < Duration::from_secs(15) {
        stalled_rss = stalled_rss.max(rss::status_mib(&host.host.id().to_string(), "VmRSS"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let (after_rss, _) = drain(&host.host, host.port, 2 * rows + 1);
    let stalled_rss = stalled_rss.max(after_rss);
    println!(
        "the same again with Redis writes paused for 15 s: peak RSS {stalled_rss:.0} MiB \
         (before the pause {loaded_rss:.0} MiB)"
    );
    stop(host.host);
    let path = format!(
        "RSS of {n} connectors under load ({} records per input)",
        figure::thousands(rows)
    );
    Figure::alone(&path, "MiB", loaded_rss, Better::Lower, Some(150.0)).record();
    Figure::alone(
        &format!("{path}, Redis sinks stalled 15 s"),
        "MiB",
        stalled_rss,
        Better::Lower,
        Some(150.0),
    )
    .record();
}
