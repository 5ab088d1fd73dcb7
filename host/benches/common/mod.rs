//! What the pipeline benches share: generated transaction input, and a timed run of the
//! FileSource -> ParquetSink pipeline inside one process.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

const CURRENCIES: [&str; 3] = ["USD", "EUR", "GBP"];
const MERCHANTS: [&str; 4] = ["grocer", "airline", "books", "fuel"];

pub fn generate(path: &Path, rows: usize) -> u64 {
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

/// Runs FileSource -> ParquetSink over `input` until `rows` are written and durable.
/// `source_extra` adds keys to the source config (a timestamp field, transforms).
pub fn headwater(
    input: &Path,
    work: &Path,
    rows: usize,
    source_extra: serde_json::Value,
) -> Duration {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(async {
        let runtime = headwater::runtime(&work.join("var"))
            // Its files are in temp dirs, which a connector applied as over REST may only use
            // when they are allowed paths.
            .with_allowed_paths(
                headwater::api::allowed_paths::AllowedPaths::new(&[
                    std::env::temp_dir(),
                    // The plugins a bench's chain loads.
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target"),
                ])
                .expect("the temp dir and plugins/target as allowed paths"),
            );
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
        if let (Some(config), Some(extra)) =
            (source_config.as_object_mut(), source_extra.as_object())
        {
            config.extend(extra.clone());
        }
        let source = headwater::config::connector::parse_json(
            &serde_json::json!({"name": "bench-source", "config": source_config}).to_string(),
            "bench",
            None,
        )
        .expect("source config");
        let started = Instant::now();
        runtime
            .apply(sink, headwater::runtime::host::Origin::Rest)
            .await
            .expect("start sink");
        runtime
            .apply(source, headwater::runtime::host::Origin::Rest)
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
