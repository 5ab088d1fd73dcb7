//! What the web console costs a running pipeline: a `headwater run` process moves a JSONL file
//! through FileSource → ParquetSink, timed from the moment the file lands until the sink has
//! written every row, with the console closed and with it open in headless Chromium (two tabs
//! polling every two seconds: the connectors page and the sink's page), runs alternating.
//!
//!     cargo bench --bench console_cost                       # 4,000,000 rows (~6 s a run here), 4 runs each
//!     HEADWATER_BENCH_ROWS=300000 HEADWATER_BENCH_ROUNDS=6 cargo bench --bench console_cost
//!
//! Needs Chromium, its driver and selenium (`scripts/setup.sh`).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// Only its input generator: the in-process pipeline it also has is not what runs here.
#[allow(dead_code)]
mod common;
use common::generate;
#[path = "common/figure.rs"]
mod figure;
#[path = "common/run.rs"]
mod run;
use run::{env_number, listing_only, rows};

/// The bench's own readings go through the REST API too (every 50 ms, in both arms).
fn records_out(port: u16) -> u64 {
    ureq::get(format!(
        "http://127.0.0.1:{port}/connectors/bench-sink/status"
    ))
    .call()
    .ok()
    .and_then(|mut r| r.body_mut().read_json::<serde_json::Value>().ok())
    .and_then(|s| s["tasks"][0]["counters"]["records_out"].as_u64())
    .unwrap_or(0)
}

fn start_host(work: &Path, rows: u64) -> (Child, u16) {
    let connectors = work.join("connectors.d");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    std::fs::create_dir_all(work.join("in")).expect("input dir");
    let configs = [
        serde_json::json!({"name": "bench-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": work.join("in/*.jsonl").display().to_string(),
            "topic": "bench",
            "poll.interval.ms": "50",
        }}),
        serde_json::json!({"name": "bench-sink", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "bench",
            "path": work.join("out").display().to_string(),
            "flush.size": (rows + 1).to_string(),
            "rotate.interval.ms": "3600000",
        }}),
    ];
    for config in configs {
        let name = config["name"].as_str().expect("named").to_owned();
        std::fs::write(connectors.join(format!("{name}.json")), config.to_string())
            .expect("write config");
    }
    let ready = work.join("ready.json");
    let child = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("run")
        .arg("--connectors-dir")
        .arg(&connectors)
        .arg("--data-dir")
        .arg(work.join("var"))
        .args(["--rest-listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start headwater");
    let deadline = Instant::now() + Duration::from_secs(30);
    let port = loop {
        let port = std::fs::read_to_string(&ready)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|r| r["rest"].as_str()?.rsplit(':').next()?.parse().ok());
        if let Some(port) = port {
            break port;
        }
        assert!(Instant::now() < deadline, "headwater did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, port)
}

/// Headless Chromium showing the console, until its stdin closes.
fn open_console(port: u16) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/console/hold_open.py");
    let mut browser = Command::new("python3")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}"))
        .arg("bench-sink")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the browser (python3 with selenium, chromium: scripts/setup.sh)");
    let mut line = String::new();
    BufReader::new(browser.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read the browser's output");
    assert_eq!(line.trim(), "open", "the console did not open");
    browser
}

/// One run: seconds from the file landing to every row written.
fn run(input: &Path, rows: u64, console: bool) -> f64 {
    let work = tempfile::tempdir().expect("temp dir");
    let (mut host, port) = start_host(work.path(), rows);
    let browser = console.then(|| open_console(port));
    // Settled: the host idle (and the browser past its start-up) before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    let landing = work.path().join("in/.landing");
    std::fs::hard_link(input, &landing).expect("link the input");
    let started = Instant::now();
    std::fs::rename(&landing, work.path().join("in/input.jsonl")).expect("land the input");
    while records_out(port) < rows {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = started.elapsed().as_secs_f64();
    if let Some(mut browser) = browser {
        drop(browser.stdin.take()); // closes the browser
        let _ = browser.wait();
    }
    let _ = host.kill();
    let _ = host.wait();
    took
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    if listing_only() {
        return;
    }
    let rows = rows(4_000_000);
    let rounds: usize = env_number("HEADWATER_BENCH_ROUNDS", 4);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.jsonl");
    let bytes = generate(&input, rows as usize);
    println!(
        "input: {rows} rows, {:.1} MB of JSONL; {rounds} runs each, alternating",
        bytes as f64 / 1e6
    );
    let (mut closed, mut open) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first, so a drift of the machine hits both alike.
        for console in [round % 2 == 1, round % 2 == 0] {
            let took = run(&input, rows, console);
            println!(
                "run {round}: console {:<6} {took:>7.3} s {:>10.0} rows/s",
                if console { "open" } else { "closed" },
                rows as f64 / took
            );
            if console { &mut open } else { &mut closed }.push(took);
        }
    }
    let spread = |v: &[f64]| {
        let (min, max) = v
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        (max - min) / min * 100.0
    };
    let (spread_closed, spread_open) = (spread(&closed), spread(&open));
    let (closed_median, open_median) = (median(&mut closed), median(&mut open));
    println!(
        "median: closed {:.0} rows/s, open {:.0} rows/s; open/closed throughput {:.3}",
        rows as f64 / closed_median,
        rows as f64 / open_median,
        closed_median / open_median
    );
    println!(
        "spread (max-min)/min: closed {spread_closed:.1}%, open {spread_open:.1}% (the noise)"
    );
    figure::Figure::beside(
        &format!(
            "file → Parquet with the console open ({} rows, median)",
            figure::thousands(rows)
        ),
        "rows/s",
        rows as f64 / open_median,
        (
            "the same with the console closed",
            rows as f64 / closed_median,
        ),
        None,
    )
    .record();
}
