//! File → Parquet throughput: Headwater's FileSource → ParquetSink pipeline against writing the
//! same rows with arrow-rs directly (arrow-json's reader feeding `ArrowWriter`, same writer
//! properties), in the same run; and with `timestamp.field` and date partitions, against
//! arrow-rs writing one file per day (28 writers) as well as one file.
//!
//!     cargo bench --bench file_to_parquet            # 1,000,000 rows
//!     HEADWATER_BENCH_ROWS=200000 cargo bench --bench file_to_parquet

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{generate, headwater};
#[path = "common/figure.rs"]
mod figure;
use figure::{Figure, thousands};

use arrow_array::cast::AsArray;
use arrow_schema::{Schema, SchemaRef};
use headwater::connectors::parquet::Dictionary;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

// The same allocator as the `headwater` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What the Parquet sink uses by default for a file of `schema`.
fn props(schema: &Schema) -> WriterProperties {
    let base = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    Dictionary::Strings.properties(&base, schema)
}

/// arrow-json's reader over `input`, with the schema it infers from the first 1,000 rows.
fn json_reader(input: &Path) -> (SchemaRef, arrow_json::Reader<BufReader<File>>) {
    let mut reader = BufReader::new(File::open(input).expect("open input"));
    let (schema, _) =
        arrow_json::reader::infer_json_schema(&mut reader, Some(1000)).expect("infer schema");
    let schema = Arc::new(schema);
    let reader = arrow_json::ReaderBuilder::new(Arc::clone(&schema))
        .with_batch_size(4096)
        .build(BufReader::new(File::open(input).expect("open input")))
        .expect("json reader");
    (schema, reader)
}

fn baseline(input: &Path, output: &Path) -> Duration {
    let started = Instant::now();
    let (schema, reader) = json_reader(input);
    let mut writer = ArrowWriter::try_new(
        File::create(output).expect("create output"),
        Arc::clone(&schema),
        Some(props(&schema)),
    )
    .expect("parquet writer");
    for batch in reader {
        writer.write(&batch.expect("decode")).expect("write");
    }
    writer.close().expect("close");
    started.elapsed()
}

/// The same with a file per day, as the date-partitioned sink writes: each batch split into its
/// runs of one day (the input is time-ordered, so a run is a zero-copy slice), each run written
/// by that day's `ArrowWriter`, all closed at the end.
fn baseline_partitioned(input: &Path, output: &Path) -> Duration {
    let started = Instant::now();
    let (schema, reader) = json_reader(input);
    let mut writers: HashMap<String, ArrowWriter<File>> = HashMap::new();
    for batch in reader {
        let batch = batch.expect("decode");
        let ts = batch
            .column_by_name("ts")
            .expect("ts column")
            .as_string::<i32>();
        let day = |row: usize| &ts.value(row)[..10];
        let mut start = 0;
        while start < batch.num_rows() {
            let mut end = start + 1;
            while end < batch.num_rows() && day(end) == day(start) {
                end += 1;
            }
            let writer = writers.entry(day(start).to_owned()).or_insert_with(|| {
                let dir = output.join(format!("date={}", day(start)));
                std::fs::create_dir_all(&dir).expect("partition dir");
                ArrowWriter::try_new(
                    File::create(dir.join("part-0.parquet")).expect("create output"),
                    Arc::clone(&schema),
                    Some(props(&schema)),
                )
                .expect("parquet writer")
            });
            writer
                .write(&batch.slice(start, end - start))
                .expect("write");
            start = end;
        }
    }
    for (_, writer) in writers {
        writer.close().expect("close");
    }
    started.elapsed()
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
    let mut base_days = f64::MAX;
    let mut plain = f64::MAX;
    let mut timed = f64::MAX;
    for round in 0..3 {
        let work = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&work).expect("work dir");
        base = base.min(report(
            "arrow-json -> ArrowWriter (baseline)",
            baseline(&input, &work.join("baseline.parquet")),
        ));
        base_days = base_days.min(report(
            "arrow-json -> ArrowWriter per day (baseline)",
            baseline_partitioned(&input, &work.join("baseline-days")),
        ));
        plain = plain.min(report(
            "headwater FileSource -> ParquetSink",
            headwater(&input, &work.join("a"), rows, serde_json::json!({})),
        ));
        timed = timed.min(report(
            "headwater, timestamp.field -> 28 date partitions",
            headwater(
                &input,
                &work.join("b"),
                rows,
                serde_json::json!({"timestamp.field": "ts"}),
            ),
        ));
        std::fs::remove_dir_all(&work).expect("clean up");
    }
    println!("ratio headwater/baseline throughput: {:.2}", base / plain);
    println!("ratio with date partitions:          {:.2}", base / timed);
    println!(
        "ratio with date partitions / baseline per day: {:.2}",
        base_days / timed
    );
    let arrow = ("arrow-rs alone", rows as f64 / base);
    let size = thousands(rows as u64);
    Figure::beside(
        &format!("file → Parquet ({size} rows)"),
        "rows/s",
        rows as f64 / plain,
        arrow,
        Some(0.8),
    )
    .record();
    Figure::beside(
        &format!("file → Parquet, date partitions ({size} rows)"),
        "rows/s",
        rows as f64 / timed,
        arrow,
        Some(0.8),
    )
    .record();
    Figure::beside(
        &format!("file → Parquet, date partitions ({size} rows)"),
        "rows/s",
        rows as f64 / timed,
        ("arrow-rs alone, a file per day", rows as f64 / base_days),
        Some(0.8),
    )
    .record();
}
