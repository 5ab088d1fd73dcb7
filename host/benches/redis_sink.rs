//! Redis sink throughput: entity rows/s from a JSONL file through Headwater's FileSource →
//! RedisSink (hash layout, one pipeline per batch) against `redis-benchmark` sending pipelined
//! HSETs with the same field count to the same server, in the same run.
//!
//!     cargo bench --bench redis_sink                       # 200,000 rows of 10 fields
//!     HEADWATER_BENCH_ROWS=50000 cargo bench --bench redis_sink
//!
//! Needs redis-server and redis-benchmark (scripts/setup.sh installs them).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[path = "../../tests/support/service.rs"]
mod service;
use service::Service;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Features per row besides the entity id.
const FEATURES: usize = 9;
/// Pipeline depth for redis-benchmark: about one Headwater batch.
const PIPELINE: usize = 1000;

/// A Redis without persistence (the benchmark measures the sink, not the disk).
struct Redis {
    port: u16,
    _service: Service,
}

impl Redis {
    fn start() -> Self {
        let service = Service::start_with("redis", &[("REDIS_PERSIST", "no")]);
        Self {
            port: service.port,
            _service: service,
        }
    }

    fn flush_all(&self) {
        let status = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "flushall"])
            .output()
            .expect("redis-cli");
        assert!(status.status.success());
    }
}

#[path = "common/figure.rs"]
mod figure;
#[path = "common/run.rs"]
mod run;

fn generate(path: &Path, rows: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).expect("create input"));
    for i in 0..rows {
        write!(out, "{{\"id\":{i}").expect("write");
        for f in 0..FEATURES {
            write!(out, ",\"f{f}\":{}", (i * 31 + f * 7) % 1000).expect("write");
        }
        writeln!(out, "}}").expect("write");
    }
    out.flush().expect("flush input");
}

fn headwater(input: &Path, work: &Path, port: u16, rows: usize) -> Duration {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        use headwater::config::connector::parse_json;
        use headwater::runtime::host::Origin;
        let runtime = headwater::runtime(&work.join("var"))
            // Its files are in temp dirs, which a connector applied as over REST may only use
            // when they are allowed paths.
            .with_allowed_paths(run::temp_dirs_allowed());
        let sink = parse_json(
            &serde_json::json!({"name": "bench-redis", "config": {
                "connector.class": "headwater.redis.RedisSink",
                "topics": "bench",
                "redis.uri": format!("redis://127.0.0.1:{port}"),
                "key.prefix": "hw:",
                "key.fields": "id",
            }})
            .to_string(),
            "bench",
            None,
        )
        .expect("sink config");
        let source = parse_json(
            &serde_json::json!({"name": "bench-source", "config": {
                "connector.class": "headwater.file.FileSource",
                "path": input.display().to_string(),
                "topic": "bench",
                "batch.max.records": PIPELINE.to_string(),
            }})
            .to_string(),
            "bench",
            None,
        )
        .expect("source config");
        let started = Instant::now();
        runtime.apply(sink, Origin::Rest).await.expect("sink");
        runtime.apply(source, Origin::Rest).await.expect("source");
        while runtime.metrics("bench-redis").map_or(0, |m| m.records_out) < rows as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        runtime.shutdown().await;
        started.elapsed()
    })
}

/// `redis-benchmark` pipelined HSET of the same field count; returns requests per second.
fn redis_benchmark(port: u16, rows: usize) -> f64 {
    let mut args: Vec<String> = [
        "-p",
        &port.to_string(),
        "-n",
        &rows.to_string(),
        "-r",
        &rows.to_string(),
        "-P",
        &PIPELINE.to_string(),
        "-c",
        "1",
        "-q",
        "hset",
        "rb:__rand_int__",
        "id",
        "__rand_int__",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for f in 0..FEATURES {
        args.push(format!("f{f}"));
        args.push("123".into());
    }
    let out = Command::new("redis-benchmark")
        .args(&args)
        .output()
        .expect("run redis-benchmark (scripts/setup.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    // "hset rb:__rand_int__ ...: 123456.79 requests per second, p50=..."
    text.split("requests per second")
        .next()
        .and_then(|s| s.rsplit(' ').nth(1))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("cannot read redis-benchmark output: {text}"))
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = usize::try_from(run::rows(200_000)).unwrap_or(usize::MAX);
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("rows.jsonl");
    generate(&input, rows);
    println!(
        "{rows} entity rows of {} fields, pipeline/batch {PIPELINE}",
        FEATURES + 1
    );
    let mut best_hw = 0f64;
    let mut best_rb = 0f64;
    for round in 0..3 {
        redis.flush_all();
        let rb = redis_benchmark(redis.port, rows);
        redis.flush_all();
        let work = dir.path().join(format!("round-{round}"));
        let hw = rows as f64 / headwater(&input, &work, redis.port, rows).as_secs_f64();
        println!(
            "redis-benchmark pipelined HSET: {rb:>10.0} rows/s   headwater: {hw:>10.0} rows/s"
        );
        best_hw = best_hw.max(hw);
        best_rb = best_rb.max(rb);
    }
    println!(
        "ratio headwater/redis-benchmark (best of 3): {:.2}",
        best_hw / best_rb
    );
    figure::Figure::beside(
        &format!(
            "file → Redis hash, {} fields ({} rows)",
            FEATURES + 1,
            figure::thousands(rows as u64)
        ),
        "rows/s",
        best_hw,
        ("redis-benchmark -P 1000 HSET", best_rb),
        Some(0.8),
    )
    .record();
}
