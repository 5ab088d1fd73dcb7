//! The book chapter's window job on a clicks file, Headwater beside Apache Flink: events/s and
//! peak RSS of FileSource → `headwater.window.Aggregate` (5-minute tumbling windows, a 5-second
//! watermark, `count` + exact `count_distinct` per user) → BlackholeSink, and of the same job in
//! Flink SQL (PyFlink, local mini-cluster, blackhole sink) when a PyFlink is given.
//!
//!     cargo bench --bench file_window                                  # 2,000,000 clicks
//!     FLINK_PYTHON=/tmp/flink-venv/bin/python cargo bench --bench file_window
//!     HEADWATER_BENCH_ROWS=500000 cargo bench --bench file_window
//!
//! The clicks come from `host/testdata/flink/gen_clicks.py` (flink-bench's generator: 1,000
//! users, 200 pages, out of order by up to 3 s, 2% late). Headwater runs in a child process
//! (its peak RSS is its own), timed from starting the connectors until the source has read the
//! whole file. Flink's time is its own job runtime (`net_runtime_ms`, start-up excluded); its
//! peak RSS is the largest sum of its java and python processes' RSS, sampled every 50 ms.
//! Set up PyFlink once with `python3 -m venv /tmp/flink-venv &&
//! /tmp/flink-venv/bin/pip install apache-flink==2.3.0` (Java 17 needed).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

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

const TIMEOUT: Duration = Duration::from_secs(600);

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/flink")
        .join(name)
}

/// The child: the two connectors, until the source has read every click.
fn headwater_side(clicks: &Path, rows: u64) {
    // As `headwater run` sets the process up (transparent huge pages off).
    headwater::runtime::host::prepare_process().expect("turning transparent huge pages off");
    let work = tempfile::tempdir().expect("temp dir");
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let elapsed = rt.block_on(async {
        use headwater::config::connector::parse_json;
        use headwater::runtime::host::Origin;
        let runtime = headwater::runtime(&work.path().join("var"))
            // Its files are in temp dirs, which a connector applied as over REST may only use
            // when they are allowed paths.
            .with_allowed_paths(run::temp_dirs_allowed());
        let parse = |config: serde_json::Value| {
            parse_json(&config.to_string(), "bench", None).expect("connector config")
        };
        let sink = parse(serde_json::json!({"name": "features", "config": {
            "connector.class": "headwater.blackhole.BlackholeSink",
            "topics": "features",
        }}));
        let source = parse(serde_json::json!({"name": "clicks", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": clicks.display().to_string(),
            "topic": "clicks",
            "transforms": "window",
            "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id",
            "transforms.window.window.size.ms": "300000",
            "transforms.window.time.field": "event_time",
            "transforms.window.watermark.delay.ms": "5000",
            "transforms.window.aggregates":
                "click_count_5min:count,unique_pages_5min:count_distinct(page_id)",
            "transforms.window.output.topic": "features",
        }}));
        let started = Instant::now();
        runtime.apply(sink, Origin::Rest).await.expect("sink");
        runtime.apply(source, Origin::Rest).await.expect("source");
        loop {
            let read = runtime.metrics("clicks").map_or(0, |m| m.records_in);
            if read >= rows {
                break;
            }
            assert!(started.elapsed() < TIMEOUT, "read {read} of {rows}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let elapsed = started.elapsed();
        runtime.shutdown().await;
        elapsed
    });
    let rate = rows as f64 / elapsed.as_secs_f64();
    let rss = peak_rss_mib();
    println!(
        "headwater: FileSource -> window -> blackhole: {rate:>9.0} events/s ({:.2} s), peak RSS {rss:.0} MiB",
        elapsed.as_secs_f64(),
    );
    let path = format!("file → window → blackhole ({} clicks)", thousands(rows));
    // Flink's figures, when it ran first (FLINK_PYTHON).
    let flink_rate: Option<f64> = std::env::var("HEADWATER_BENCH_FLINK_RATE")
        .ok()
        .and_then(|v| v.parse().ok());
    let flink_rss: Option<f64> = std::env::var("HEADWATER_BENCH_FLINK_RSS")
        .ok()
        .and_then(|v| v.parse().ok());
    match flink_rate {
        Some(flink) => Figure::beside(&path, "events/s", rate, ("Flink (PyFlink)", flink), None),
        None => Figure::alone(&path, "events/s", rate, Better::Higher, None),
    }
    .record();
    let rss_path = format!("{path}, peak RSS");
    match flink_rss {
        // Less is better: the ratio is Flink's RSS over Headwater's.
        Some(flink) => Figure {
            better: Better::Lower,
            ..Figure::beside(&rss_path, "MiB", rss, ("Flink (PyFlink)", flink), None)
        },
        None => Figure::alone(&rss_path, "MiB", rss, Better::Lower, None),
    }
    .record();
}

/// RSS in MiB of the processes whose command line mentions `needle` (and not this bench).
fn rss_of(needle: &str) -> f64 {
    let mut kib = 0u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Ok(cmdline) = std::fs::read(dir.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if !(cmdline.contains(needle) || cmdline.contains("pyflink")) || cmdline.contains("--bench")
        {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        kib += status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    kib as f64 / 1024.0
}

/// Flink's events/s and peak RSS in MiB.
fn flink_side(python: &str, clicks_for_flink: &Path, rows: u64) -> (f64, f64) {
    let mut child = Command::new(python)
        .arg(testdata("flink_job.py"))
        .arg("--input")
        .arg(clicks_for_flink)
        .args(["--parallelism", "2", "--sink", "blackhole"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run flink_job.py");
    let mut peak: f64 = 0.0;
    while child.try_wait().expect("flink job status").is_none() {
        peak = peak.max(rss_of("flink_job.py"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("flink job output");
    let line = String::from_utf8_lossy(&out.stdout);
    let timing: serde_json::Value = line
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("flink_job.py prints its timings");
    let net_ms = timing["net_runtime_ms"].as_f64().expect("net_runtime_ms");
    println!(
        "flink {}: filesystem -> window -> blackhole (parallelism 2): {:>9.0} events/s \
         ({:.2} s job runtime, start-up excluded), peak RSS {peak:.0} MiB",
        timing["flink"].as_str().unwrap_or("?"),
        rows as f64 / (net_ms / 1000.0),
        net_ms / 1000.0
    );
    (rows as f64 / (net_ms / 1000.0), peak)
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = run::rows(2_000_000);
    if let Ok(clicks) = std::env::var("HEADWATER_BENCH_CLICKS") {
        headwater_side(Path::new(&clicks), rows);
        return;
    }
    let work = tempfile::tempdir().expect("temp dir");
    let clicks = work.path().join("clicks.jsonl");
    let status = Command::new("python3")
        .arg(testdata("gen_clicks.py"))
        .arg(&clicks)
        .arg(rows.to_string())
        .status()
        .expect("generate clicks");
    assert!(status.success());
    println!("file_window: {rows} clicks (gen_clicks.py, 1,000 users)");
    // Flink first, so the Headwater side can report its figures beside Flink's.
    let flink = match std::env::var("FLINK_PYTHON") {
        Ok(python) => Some(flink_side(
            &python,
            &work.path().join("clicks.flink.jsonl"),
            rows,
        )),
        Err(_) => {
            println!("flink: skipped (set FLINK_PYTHON to a PyFlink 2.3 python)");
            None
        }
    };
    let mut headwater = Command::new(std::env::current_exe().expect("own path"));
    headwater
        .arg("--bench")
        .env("HEADWATER_BENCH_CLICKS", &clicks)
        .env("HEADWATER_BENCH_ROWS", rows.to_string());
    if let Some((rate, rss)) = flink {
        headwater
            .env("HEADWATER_BENCH_FLINK_RATE", rate.to_string())
            .env("HEADWATER_BENCH_FLINK_RSS", rss.to_string());
    }
    let status = headwater.status().expect("run the Headwater side");
    assert!(status.success());
}
