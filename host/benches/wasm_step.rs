//! What a WASM step costs.
//!
//! 1. Boundary cost: a pass-through plugin (`plugins/passthrough`) as a chain step over
//!    ~200-byte records at batch sizes 1, 100 and 1000, in ns per record. This is the whole
//!    step: encoding the batch arena, the call, and rebuilding records from the output.
//! 2. Pipeline cost: FileSource -> ParquetSink with and without that step, in the same run,
//!    each from a host's start with the module compiled (as a restart finds it in the data
//!    dir's cache); the first start, which compiles it, is printed apart.
//!
//! Run:
//!
//!     cargo bench --bench wasm_step
//!     HEADWATER_BENCH_ROWS=500000 cargo bench --bench wasm_step
//!
//! Builds the plugins first (`cargo build --release --target wasm32-wasip2` in plugins/).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use headwater::api::options::Options;
use headwater::api::record::{Payload, Record};
use headwater::api::transform::ChainContext;
use headwater::transforms::build_chain;
use headwater::transforms::chain::Chain;

mod common;
#[path = "common/cpu.rs"]
mod cpu;
use cpu::cpu_seconds;
#[path = "common/figure.rs"]
mod figure;
use common::{generate, headwater};
use figure::{Better, Figure, thousands};

// The same allocator as the `headwater` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn passthrough() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--release",
            "--target",
            "wasm32-wasip2",
            "-p",
            "passthrough",
        ])
        .current_dir(&root)
        .status()
        .expect("run cargo for the plugins");
    assert!(status.success(), "building plugins/passthrough failed");
    root.join("target/wasm32-wasip2/release/passthrough.wasm")
}

fn chain(module: &Path, batch_size: usize, data_dir: &Path) -> Chain {
    let config: BTreeMap<String, String> = [
        ("transforms", "p".to_owned()),
        ("transforms.p.type", "headwater.wasm.Transform".to_owned()),
        ("transforms.p.module", module.display().to_string()),
        ("transforms.p.batch.size", batch_size.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut options = Options::new(config);
    let ctx = ChainContext {
        connector: "bench".into(),
        data_dir: data_dir.to_path_buf(),
        inputs: headwater::api::transform::Inputs::One,
        state_scope: None,
        per_partition: false,
        kafka: false,
        bounded: false,
    };
    let chain = build_chain(&mut options, &ctx);
    assert!(options.issues().is_empty(), "{:?}", options.issues());
    chain
}

/// ~208-byte records: a 16-byte key, a ~170-byte JSON value, one header.
fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let value = format!(
                r#"{{"transaction_id":"tx-{i:09}","user_id":"u{:05}","amount":{}.{:02},"currency":"EUR","merchant":"airline","card_present":true,"ts":"2024-01-05T10:11:12Z"}}"#,
                i % 50_000,
                i % 5_000,
                i % 100
            );
            let mut r = Record::new("bench", Payload::json_bytes(Bytes::from(value)));
            r.key = Payload::json_bytes(Bytes::from(format!("\"k-{i:011}\"")));
            r.headers.push(headwater::api::record::Header::text("source", "bench"));
            r.timestamp = Some(1_704_449_472_000);
            r
        })
        .collect()
}

/// Nanoseconds per record through `chain`, best of five runs of `total` records.
fn per_record(chain: &Chain, batch: usize, total: usize) -> f64 {
    let input = records(batch);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let batches: Vec<Vec<Record>> = (0..total / batch).map(|_| input.clone()).collect();
        let started = Instant::now();
        for b in batches {
            let out = chain.apply_batch(b);
            assert_eq!(out.kept.len(), batch);
            std::hint::black_box(out);
        }
        best = best.min(started.elapsed().as_nanos() as f64 / total as f64);
    }
    best
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benches to list their tests
    }
    let module = passthrough();
    let dir = tempfile::tempdir().expect("temp dir");

    println!("pass-through WASM step, ~208-byte records (ns/record, best of 5):");
    let empty = Chain::new(Vec::new());
    for batch in [1usize, 100, 1000] {
        let total = if batch == 1 { 20_000 } else { 200_000 };
        let step = chain(&module, batch, dir.path());
        let with = per_record(&step, batch, total);
        let without = per_record(&empty, batch, total);
        println!(
            "  batch {batch:>5}: {with:>8.0} ns/record with the step, {without:>5.0} without: \
             {:>8.0} ns/record for the step",
            with - without
        );
        if batch == 1000 {
            Figure::alone(
                "pass-through WASM step, ~208-byte records, batch 1,000",
                "ns/record",
                with - without,
                Better::Lower,
                Some(50.0),
            )
            .record();
        }
    }

    let rows: usize = std::env::var("HEADWATER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let input = dir.path().join("input.jsonl");
    let bytes = generate(&input, rows);
    println!(
        "pipeline: FileSource -> ParquetSink, {rows} rows, {:.1} MB of JSONL",
        bytes as f64 / 1e6
    );
    let with_step = serde_json::json!({
        "transforms": "p",
        "transforms.p.type": "headwater.wasm.Transform",
        "transforms.p.module": module.display().to_string(),
    });
    let report = |name: &str, (d, cpu): (Duration, f64)| {
        let secs = d.as_secs_f64();
        println!(
            "  {name:<34} {secs:>8.3} s {:>12.0} rows/s {:>6.0} ns CPU/row",
            rows as f64 / secs,
            cpu * 1e9 / rows as f64
        );
        secs
    };
    let timed = |work: &Path, extra: serde_json::Value| {
        let cpu = cpu_seconds();
        let elapsed = headwater(&input, work, rows, extra);
        (elapsed, cpu_seconds() - cpu)
    };
    // A host compiles a module once, into its data dir's cache, and every restart loads it
    // from there: the first start is timed apart, the rounds start with the compiled module.
    let first = dir.path().join("first-start");
    let first_start = report(
        "with the step, first start",
        timed(&first, with_step.clone()),
    );
    let compiled = first.join("var/wasm-cache");
    // Best of three each, interleaved, to damp noise on a shared 2-core machine.
    let (mut plain, mut wasm) = (f64::MAX, f64::MAX);
    for round in 0..3 {
        let work = dir.path().join(format!("round-{round}"));
        plain = plain.min(report(
            "without a WASM step",
            timed(&work.join("a"), serde_json::json!({})),
        ));
        copy_dir(&compiled, &work.join("b/var/wasm-cache"));
        wasm = wasm.min(report(
            "with a pass-through WASM step",
            timed(&work.join("b"), with_step.clone()),
        ));
        std::fs::remove_dir_all(&work).expect("clean up");
    }
    println!(
        "ratio throughput with/without the WASM step: {:.2}",
        plain / wasm
    );
    Figure::beside(
        &format!(
            "file → Parquet with a pass-through WASM step ({} rows)",
            thousands(rows as u64)
        ),
        "rows/s",
        rows as f64 / wasm,
        ("the same without the step", rows as f64 / plain),
        Some(0.95),
    )
    .record();
    Figure::alone(
        &format!(
            "file → Parquet with a pass-through WASM step, first start: the module compiled ({} rows)",
            thousands(rows as u64)
        ),
        "rows/s",
        rows as f64 / first_start,
        Better::Higher,
        None,
    )
    .record();
}

/// Copies the files of `from` (one level: the module cache) into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the module cache");
    for entry in std::fs::read_dir(from).expect("the first start's module cache") {
        let path = entry.expect("a cache entry").path();
        let name = path.file_name().expect("a file name");
        std::fs::copy(&path, to.join(name)).expect("copy a compiled module");
    }
}
