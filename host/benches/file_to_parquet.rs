//! File → Parquet throughput: Headwater's FileSource → ParquetSink pipeline against writing the
//! same rows with arrow-rs directly (arrow-json's reader feeding `ArrowWriter`, same writer
//! properties), in the same run.
//!
//!     cargo bench --bench file_to_parquet            # 1,000,000 rows
//!     HEADWATER_BENCH_ROWS=200000 cargo bench --bench file_to_parquet

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

// The same allocator as the `headwater` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
const MERCHANTS: [&str; 4] = ["grocer", "airline", "books", "fuel"];

fn generate(path: &Path, rows: usize) -> u64 {
    let mut out = BufWriter::new(File::create(path).expect("create input"));
    let mut state: u64 = 42;
    for i in 0..rows {
        // xorshift: deterministic, cheap pseudo-random values.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        writeln!(
            out,
            r#"{{"transaction_id":"tx-{i:09}","user_id":"u{:05}","amount":{}.{:02},"currency":"{}","merchant":"{}","card_present":{},"ts":"2024-01-{:02}T{:02}:{:02}:{:02}Z"}}"#,
            state % 50_000,
            state % 5_000,
            state % 100,
            CURRENCIES[(state % 3) as usize],
            MERCHANTS[(state % 4) as usize],
            state.is_multiple_of(2),
            // Event times advance through 28 days, as in a landed, time-ordered feed.
            1 + i * 28 / rows,
            state % 24,
            state % 60,
            (state >> 8) % 60,
        )
        .expect("write input");
    }
    out.flush().expect("flush input");
    std::fs::metadata(path).expect("input size").len()
}

fn props() -> WriterProperties {
    // What the Parquet sink uses by default.
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build()
}

fn baseline(input: &Path, output: &Path) -> Duration {
    let started = Instant::now();
    let mut reader = BufReader::new(File::open(input).expect("open input"));
    let (schema, _) =
        arrow_json::reader::infer_json_schema(&mut reader, Some(1000)).expect("infer schema");
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(4096)
        .build(BufReader::new(File::open(input).expect("open input")))
        .expect("json reader");
    let mut writer = ArrowWriter::try_new(
        File::create(output).expect("create output"),
        schema,
        Some(props()),
    )
    .expect("parquet writer");
    for batch in reader {
        writer.write(&batch.expect("decode")).expect("write");
    }
    writer.close().expect("close");
    started.elapsed()
}

fn headwater(input: &Path, work: &Path, rows: usize, timestamp_field: bool) -> Duration {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = headwater::runtime(&work.join("var"));
        let sink = headwater::config::connector::parse_json(
            &serde_json::json!({"name": "bench-sink", "config": {
                "connector.class": "headwater.parquet.ParquetSink",
                "topics": "bench",
                "path": work.join("out").display().to_string(),
                "flush.size": (rows + 1).to_string(),
                "rotate.interval.ms": "3600000",
            }})
            .to_string(),
            "bench",
            None,
        )
        .expect("sink config");
        let mut source_config = serde_json::json!({
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "bench",
        });
        if timestamp_field {
            source_config["timestamp.field"] = "ts".into();
        }
        let source = headwater::config::connector::parse_json(
            &serde_json::json!({"name": "bench-source", "config": source_config}).to_string(),
            "bench",
            None,
        )
        .expect("source config");
        let started = Instant::now();
        runtime
            .apply(sink, headwater::core::runtime::Origin::Rest)
            .await
            .expect("start sink");
        runtime
            .apply(source, headwater::core::runtime::Origin::Rest)
            .await
            .expect("start source");
        loop {
            let written = runtime.metrics("bench-sink").map_or(0, |m| m.records_out);
            if written as usize >= rows {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Shutdown commits the open file: the run ends when the rows are durable.
        runtime.shutdown().await;
        started.elapsed()
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks benches to list their tests
    }
    let rows: usize = std::env::var("HEADWATER_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input.jsonl");
    let bytes = generate(&input, rows);
    let mb = bytes as f64 / 1e6;
    println!("input: {rows} rows, {mb:.1} MB of JSONL");

    let report = |name: &str, d: Duration| {
        let secs = d.as_secs_f64();
        println!(
            "{name:<44} {:>8.3} s {:>12.0} rows/s {:>8.1} MB/s",
            secs,
            rows as f64 / secs,
            mb / secs
        );
        secs
    };
    // Best of three for each, interleaved, to damp noise on a shared 2-core machine.
    let mut base = f64::MAX;
    let mut plain = f64::MAX;
    let mut timed = f64::MAX;
    for round in 0..3 {
        let work = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&work).expect("work dir");
        base = base.min(report(
            "arrow-json -> ArrowWriter (baseline)",
            baseline(&input, &work.join("baseline.parquet")),
        ));
        plain = plain.min(report(
            "headwater FileSource -> ParquetSink",
            headwater(&input, &work.join("a"), rows, false),
        ));
        timed = timed.min(report(
            "headwater, timestamp.field -> 28 date partitions",
            headwater(&input, &work.join("b"), rows, true),
        ));
        std::fs::remove_dir_all(&work).expect("clean up");
    }
    println!("ratio headwater/baseline throughput: {:.2}", base / plain);
    println!("ratio with date partitions:          {:.2}", base / timed);
}
