//! CDC throughput and latency, against the two baselines of `../shared/tools/cdc-bench/`, in one
//! run on one PostgreSQL:
//!
//! - PostgreSQL's walsender shipping pgoutput to `pg_recvlogical` (the ceiling for any client);
//! - genuine Debezium 3.6 (embedded engine, JsonConverter with schemas, one JSON line per event);
//! - Headwater: the PostgresConnector → FileSink (one JSON line per event, key and value
//!   through the JsonConverter with schemas), timed from the first commit until the sink has
//!   written all N events.
//!
//! Then commit-to-sink latency at a steady rate: single-row transactions at `RATE`/s; each
//! event's latency is when its line is visible in the sink's file minus its commit time
//! (`source.ts_us`), the file being polled every millisecond.
//!
//!     cargo bench --bench cdc                                   # N=200000, B=1000
//!     HEADWATER_BENCH_ROWS=300000 HEADWATER_BENCH_RATE=2000 cargo bench --bench cdc
//!     HEADWATER_BENCH_SINK_CONFIG='{"transforms":"unwrap",
//!         "transforms.unwrap.type":"io.debezium.transforms.ExtractNewRecordState"}' \
//!         cargo bench --bench cdc                           # keys added to the sink's config
//!
//! Needs PostgreSQL (scripts/setup.sh), and for the Debezium figure Java 17 and the oracle's
//! jars (run `../shared/tools/debezium-oracle/run-oracle.sh` once); without them that line is
//! skipped.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../tests/support/service.rs"]
mod service;
use service::{Service, repo_root};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "common/figure.rs"]
mod figure;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/run.rs"]
mod run;
use figure::{Better, Figure, thousands};

fn tools() -> PathBuf {
    repo_root().join("../shared/tools")
}

struct Postgres {
    port: u16,
    _service: Service,
}

impl Postgres {
    fn start() -> Self {
        let service = Service::start("postgres");
        Self {
            port: service.port,
            _service: service,
        }
    }

    fn psql(&self, db: &str, args: &[&str]) {
        pg::psql(self.port, db, args);
    }
}

/// Runs one of the shared baseline scripts; its summary line, or why it did not run.
fn baseline(script: &str, port: u16, n: usize, b: usize) -> Option<String> {
    let path = tools().join("cdc-bench").join(script);
    if !path.exists() {
        println!("{script}: not found at {}", path.display());
        return None;
    }
    let out = Command::new("bash")
        .arg(&path)
        .args([port.to_string(), n.to_string(), b.to_string()])
        .output()
        .expect("run baseline");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() {
        println!(
            "{script}: skipped ({}{})",
            text,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    let line = text.lines().last().unwrap_or_default().to_owned();
    println!("{line}");
    Some(line)
}

/// The events/s figure of a baseline's summary line (`-> 19,500 events/s`).
fn rate_of(line: &str) -> Option<f64> {
    let after = line.split("-> ").nth(1)?;
    after
        .split_whitespace()
        .next()?
        .replace(',', "")
        .parse()
        .ok()
}

fn dml(n: usize, b: usize) -> String {
    (0..n)
        .step_by(b)
        .map(|s| {
            let e = (s + b).min(n);
            format!(
                "INSERT INTO public.events (id, user_id, page, amount) SELECT g, 'u' || (g % 1000), \
                 '/p/' || (g % 37), (g % 10000) / 100.0 FROM generate_series({}, {e}) g;\n",
                s + 1
            )
        })
        .collect()
}

const TABLE: &str = "CREATE TABLE public.events (id bigint PRIMARY KEY, user_id text NOT NULL, \
                     page text, amount numeric(12,2), ts timestamptz NOT NULL DEFAULT now())";

fn configs(port: u16, out: &Path) -> (String, String) {
    let source = serde_json::json!({"name": "bench-cdc", "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": port.to_string(),
        "database.user": "postgres",
        "database.password": "postgres",
        "database.dbname": "hwbench",
        "topic.prefix": "bench",
        "slot.name": "hw_bench",
        "publication.name": "hw_bench_pub",
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public.events",
    }});
    let mut sink = serde_json::json!({"name": "bench-sink", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": "bench.public.events",
        "file": out.display().to_string(),
    }});
    // HEADWATER_BENCH_SINK_CONFIG='{"transforms":"unwrap",...}' adds keys to the sink's config.
    if let Ok(extra) = std::env::var("HEADWATER_BENCH_SINK_CONFIG") {
        let extra: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&extra).expect("HEADWATER_BENCH_SINK_CONFIG is a JSON object");
        if let Some(config) = sink["config"].as_object_mut() {
            config.extend(extra);
        }
    }
    (source.to_string(), sink.to_string())
}

/// A new `hwbench` database with the empty events table, and no slot left from a run before.
fn fresh_database(pg: &Postgres) {
    pg.psql(
        "postgres",
        &[
            "-c",
            "DROP DATABASE IF EXISTS hwbench",
            "-c",
            "CREATE DATABASE hwbench",
            "-c",
            "SELECT pg_drop_replication_slot('hw_bench') FROM pg_replication_slots \
             WHERE slot_name = 'hw_bench'",
        ],
    );
    pg.psql("hwbench", &["-c", TABLE]);
}

/// Starts the CDC source and the FileSink writing `out`, and waits until it streams; returns
/// the runtime and a client of the benchmark database.
async fn start_pipeline(
    port: u16,
    work: &Path,
    out: &Path,
) -> (headwater::runtime::host::Runtime, tokio_postgres::Client) {
    let runtime = headwater::runtime(&work.join("var"))
        // Its files are in temp dirs, which a connector applied as over REST may only use
        // when they are allowed paths.
        .with_allowed_paths(run::temp_dirs_allowed());
    let (source, sink) = configs(port, out);
    let parse =
        |s: &str| headwater::config::connector::parse_json(s, "bench", None).expect("config");
    for (config, what) in [(sink, "start sink"), (source, "start source")] {
        runtime
            .apply(parse(&config), headwater::runtime::host::Origin::Rest)
            .await
            .expect(what);
    }
    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={port} user=postgres dbname=hwbench"),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect");
    tokio::spawn(conn);
    wait_streaming(&client).await;
    (runtime, client)
}

/// Waits until the slot is streaming (the snapshot of the empty table is done).
async fn wait_streaming(client: &tokio_postgres::Client) {
    for _ in 0..600 {
        let active = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'hw_bench' AND active",
                &[],
            )
            .await
            .expect("query slots");
        if active.is_some() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the CDC source never started streaming");
}

/// Headwater's throughput: events/s from the first commit to the last event written.
fn headwater_throughput(pg: &Postgres, n: usize, b: usize) -> f64 {
    fresh_database(pg);
    let work = tempfile::tempdir().expect("temp dir");
    let dml_file = work.path().join("dml.sql");
    std::fs::write(&dml_file, dml(n, b)).expect("write dml");
    let out = work.path().join("out.jsonl");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let (runtime, _client) = start_pipeline(pg.port, work.path(), &out).await;
        let started = Instant::now();
        let port = pg.port;
        let dml_run = tokio::task::spawn_blocking(move || {
            Command::new("psql")
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "hwbench",
                ])
                .args(["-p", &port.to_string(), "-f"])
                .arg(&dml_file)
                .status()
                .expect("psql")
        });
        loop {
            let written = runtime.metrics("bench-sink").map_or(0, |m| m.records_out);
            if written as usize >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let elapsed = started.elapsed();
        let dml_took = dml_run.await.expect("dml");
        assert!(dml_took.success());
        runtime.shutdown().await;
        let rate = n as f64 / elapsed.as_secs_f64();
        println!(
            "headwater: {n} inserts, captured all after {:.1}s -> {rate:.0} events/s end to end",
            elapsed.as_secs_f64()
        );
        rate
    })
}

/// Commit-to-sink latency at a steady rate of single-row transactions.
/// Returns the p99 in milliseconds.
fn headwater_latency(pg: &Postgres, rate: usize, seconds: usize) -> f64 {
    fresh_database(pg);
    let work = tempfile::tempdir().expect("temp dir");
    let out = work.path().join("out.jsonl");
    let total = rate * seconds;
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let (runtime, client) = start_pipeline(pg.port, work.path(), &out).await;

        // The reader: new lines of the sink's file, stamped when first seen.
        let reader_out = out.clone();
        let reader = std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(total);
            let mut offset = 0u64;
            let deadline = Instant::now() + Duration::from_secs(seconds as u64 + 30);
            while latencies.len() < total && Instant::now() < deadline {
                if let Ok(mut file) = std::fs::File::open(&reader_out) {
                    let _ = file.seek(SeekFrom::Start(offset));
                    let mut reader = BufReader::new(file);
                    let mut line = String::new();
                    while reader.read_line(&mut line).unwrap_or(0) > 0 {
                        if !line.ends_with('\n') {
                            break;
                        }
                        offset += line.len() as u64;
                        let seen = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_micros() as i64);
                        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                        if let Some(commit) = v["value"]["payload"]["source"]["ts_us"].as_i64() {
                            latencies.push(seen - commit);
                        }
                        line.clear();
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            latencies
        });
        // Commit durably (the test server defaults to asynchronous commit, which holds WAL
        // back from the walsender for up to wal_writer_delay): latency is measured from a
        // commit the walsender can ship at once.
        client
            .batch_execute("SET synchronous_commit TO on")
            .await
            .expect("synchronous commit");
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = tokio::time::Instant::now();
        let insert = client
            .prepare("INSERT INTO public.events (id, user_id, page, amount) VALUES ($1, 'u', '/p', 1.5)")
            .await
            .expect("prepare");
        // How long each commit took to return: a commit's timestamp is taken before its WAL is
        // flushed, so a slow flush (the disk) shows as latency that is not the pipeline's.
        let mut commits = Vec::with_capacity(total);
        for id in 0..total as i64 {
            next += interval;
            tokio::time::sleep_until(next).await;
            let started = Instant::now();
            client.execute(&insert, &[&id]).await.expect("insert");
            commits.push(started.elapsed());
        }
        commits.sort_unstable();
        let mut latencies = tokio::task::spawn_blocking(move || reader.join().expect("reader"))
            .await
            .expect("join");
        runtime.shutdown().await;
        latencies.sort_unstable();
        let pick = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        println!(
            "headwater latency at {rate} commits/s for {seconds}s ({} events): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            latencies.len(),
            pick(0.50) as f64 / 1000.0,
            pick(0.99) as f64 / 1000.0,
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        );
        println!(
            "  the commits themselves (INSERT round trip, synchronous_commit on): p99 {:.1} ms, max {:.1} ms",
            commits[commits.len() * 99 / 100].as_secs_f64() * 1000.0,
            commits.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        );
        pick(0.99) as f64 / 1000.0
    })
}

fn main() {
    if run::listing_only() {
        return;
    }
    let n = run::rows(200_000) as usize;
    let b = run::env_number("HEADWATER_BENCH_BATCH", 1000);
    let rate = run::env_number("HEADWATER_BENCH_RATE", 1000);
    let pg = Postgres::start();
    println!("CDC benchmark: {n} single-row inserts committed in batches of {b}, one PostgreSQL");
    // HEADWATER_BENCH_BASELINES=no measures Headwater alone (e.g. under a profiler).
    let baselines = std::env::var("HEADWATER_BENCH_BASELINES").map_or(true, |v| v != "no");
    let (ceiling, debezium) = if baselines {
        (
            baseline("walsender-ceiling.sh", pg.port, n, b).and_then(|l| rate_of(&l)),
            baseline("debezium-throughput.sh", pg.port, n, b).and_then(|l| rate_of(&l)),
        )
    } else {
        (None, None)
    };
    let ours = headwater_throughput(&pg, n, b);
    let path = format!(
        "PostgreSQL CDC → FileSink, streaming ({} inserts, {b} per transaction)",
        thousands(n as u64)
    );
    if let Some(debezium) = debezium {
        println!("headwater / debezium: {:.1}x", ours / debezium);
        Figure::beside(
            &path,
            "events/s",
            ours,
            ("Debezium 3.6", debezium),
            Some(6.0),
        )
        .record();
    }
    match ceiling {
        Some(ceiling) => Figure::beside(
            &path,
            "events/s",
            ours,
            ("walsender → pg_recvlogical", ceiling),
            Some(0.65),
        ),
        None => Figure::alone(&path, "events/s", ours, Better::Higher, None),
    }
    .record();
    let p99 = headwater_latency(&pg, rate, 10);
    Figure::alone(
        &format!("PostgreSQL CDC commit → sink latency p99, {rate} commits/s"),
        "ms",
        p99,
        Better::Lower,
        None,
    )
    .record();
}
