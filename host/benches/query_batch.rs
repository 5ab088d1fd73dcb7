//! A day of a PostgreSQL table to Parquet, as a batch job does it (issue 19's benchmark), against
//! the ceiling on this machine, in one run on one PostgreSQL:
//!
//! - PostgreSQL's own `COPY (query) TO STDOUT` (CSV), read by pyarrow and written to Parquet
//!   (zstd, dictionaries for the text columns as the sink's default) as it streams in;
//! - `headwater run --once`: a QuerySource reading the day (`timestamp.from`/`until`, mode
//!   `incrementing`) in 4 ranges of the id read concurrently (Spark's `numPartitions`), then in
//!   one, into a ParquetSink; timed from process start to exit.
//!
//! Run it with:
//!
//!     cargo bench --bench query_batch                         # 5,000,000 rows
//!     HEADWATER_BENCH_ROWS=500000 cargo bench --bench query_batch
//!
//! Needs PostgreSQL and pyarrow (scripts/setup.sh).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[path = "../../tests/support/service.rs"]
mod service;
use service::Service;

#[path = "common/figure.rs"]
mod figure;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/run.rs"]
mod run;
use figure::{Figure, thousands};

const DAY: &str = "2024-03-05";

/// The table: `rows` transactions of one day, ids 1..=rows.
fn fill(port: u16, rows: u64) {
    pg::psql(
        port,
        "postgres",
        &[
            "-c",
            &format!(
                "DROP TABLE IF EXISTS tx; \
                 CREATE TABLE tx (id bigint PRIMARY KEY, user_id text, amount_cents bigint, \
                 merchant text, card_present boolean, updated_at timestamp NOT NULL); \
                 INSERT INTO tx SELECT i, 'u' || (i % 50000), (i * 7919) % 100000, \
                 (ARRAY['grocer','airline','books','fuel'])[1 + i % 4], i % 2 = 0, \
                 timestamp '{DAY}' + (i % 86400) * interval '1 second' \
                 FROM generate_series(1::bigint, {rows}) i;"
            ),
        ],
    );
    pg::psql(port, "postgres", &["-c", "VACUUM ANALYZE tx"]);
}

/// The ceiling: COPY of the day's rows as CSV, streamed into pyarrow's CSV reader and
/// ParquetWriter (zstd, as the sink). Seconds.
fn copy_to_parquet(service: &Service, out: &Path) -> f64 {
    let script = r#"
import subprocess, sys
import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
url, day, out = sys.argv[1:4]
query = (f"COPY (SELECT id, user_id, amount_cents, merchant, card_present, updated_at FROM tx "
         f"WHERE updated_at >= '{day}' AND updated_at < date '{day}' + 1) TO STDOUT WITH (FORMAT csv, HEADER)")
psql = subprocess.Popen(["psql", "-X", "-q", "-c", query, url], stdout=subprocess.PIPE)
reader = csv.open_csv(psql.stdout)
# Dictionaries for the text columns only, as the sink writes them (dictionary.columns=strings).
strings = [f.name for f in reader.schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]
with pq.ParquetWriter(out, reader.schema, compression="zstd", use_dictionary=strings) as writer:
    for batch in reader:
        writer.write_batch(batch)
assert psql.wait() == 0
"#;
    let started = Instant::now();
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(&service.url)
        .arg(DAY)
        .arg(out)
        .status()
        .expect("run python3 with pyarrow");
    assert!(status.success(), "the COPY → pyarrow baseline failed");
    started.elapsed().as_secs_f64()
}

/// `headwater run --once` reading the day in `ranges` ranges. Seconds.
fn headwater(service: &Service, work: &Path, rows: u64, ranges: u32) -> f64 {
    let connectors = work.join("connectors.d");
    std::fs::create_dir_all(&connectors).expect("connectors dir");
    let rest = service
        .url
        .split_once("://")
        .map_or(service.url.as_str(), |(_, r)| r);
    let source = serde_json::json!({"name": "tx-day", "config": {
        "connector.class": "headwater.postgres.QuerySource",
        "connection.url": format!("jdbc:postgresql://{rest}"),
        "table": "tx",
        "mode": "incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at",
        "timestamp.from": "${param:ds}",
        "timestamp.until": "${param:ds} 23:59:59.999999",
        "partition.column": "id",
        "partition.lower.bound": "1",
        "partition.upper.bound": (rows + 1).to_string(),
        "partition.count": ranges.to_string(),
        "topic.prefix": "day-",
        "batch.max.rows": "10000",
    }});
    let sink = serde_json::json!({"name": "tx-offline", "config": {
        "connector.class": "headwater.parquet.ParquetSink",
        "topics": "day-tx",
        "path": work.join("offline").display().to_string(),
        "write.mode": "overwrite-partitions",
        // A TIMESTAMP column, as pyarrow makes of the CSV's.
        "timestamp.columns": "updated_at",
        "flush.size": "1000000",
        "rotate.interval.ms": "3600000",
    }});
    for config in [source, sink] {
        let name = config["name"].as_str().expect("named").to_owned();
        std::fs::write(connectors.join(format!("{name}.json")), config.to_string())
            .expect("write config");
    }
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .current_dir(work)
        .args(["run", "--once", "--set", &format!("ds={DAY}")])
        .args(["--connectors-dir", "connectors.d", "--data-dir", "var"])
        .output()
        .expect("run headwater");
    let took = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "headwater run --once failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("tx-offline") && l.contains(&format!(" {rows} "))),
        "not every row was written:\n{summary}"
    );
    took
}

fn main() {
    if run::listing_only() {
        return;
    }
    let rows = run::rows(5_000_000);
    let service = Service::start("postgres");
    let started = Instant::now();
    fill(service.port, rows);
    println!(
        "table: {rows} rows of one day ({:.0} s to fill)",
        started.elapsed().as_secs_f64()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let report = |name: &str, secs: f64| {
        println!(
            "{name:<58} {secs:>7.2} s {:>10.0} rows/s",
            rows as f64 / secs
        );
        secs
    };
    // Interleaved, best of two: the machine is shared by the database and the reader.
    let (mut ceiling, mut four, mut one) = (f64::MAX, f64::MAX, f64::MAX);
    for round in 0..2 {
        let work = dir.path().join(format!("round-{round}"));
        std::fs::create_dir_all(&work).expect("work dir");
        ceiling = ceiling.min(report(
            "COPY (query) TO STDOUT -> pyarrow -> Parquet (ceiling)",
            copy_to_parquet(&service, &work.join("copy.parquet")),
        ));
        four = four.min(report(
            "headwater run --once, QuerySource 4 ranges -> ParquetSink",
            headwater(&service, &work.join("four"), rows, 4),
        ));
        one = one.min(report(
            "headwater run --once, QuerySource 1 range -> ParquetSink",
            headwater(&service, &work.join("one"), rows, 1),
        ));
        std::fs::remove_dir_all(&work).expect("clean up");
    }
    println!(
        "ratio headwater (4 ranges) / ceiling: {:.2}",
        ceiling / four
    );
    println!("ratio headwater (1 range) / ceiling:  {:.2}", ceiling / one);
    let copy = ("COPY TO STDOUT → pyarrow → Parquet", rows as f64 / ceiling);
    for (ranges, secs) in [(4, four), (1, one)] {
        Figure::beside(
            &format!(
                "PostgreSQL query → Parquet, {ranges} range{} ({} rows, from process start)",
                if ranges == 1 { "" } else { "s" },
                thousands(rows)
            ),
            "rows/s",
            rows as f64 / secs,
            copy,
            // Issue 19's goal is for the partitioned read.
            (ranges == 4).then_some(0.8),
        )
        .record();
    }
}
