//! `kill -9` mid-stream, restart: every row lands in Parquet exactly once.

use std::collections::HashSet;
use std::fs;

use serde_json::json;

use crate::harness::{Workspace, parquet_rows};

const FILES: usize = 10;
const ROWS_PER_FILE: usize = 20_000;

fn write_input(ws: &Workspace, file: usize) {
    let mut text = String::with_capacity(ROWS_PER_FILE * 100);
    for i in 0..ROWS_PER_FILE {
        let id = file * ROWS_PER_FILE + i;
        text.push_str(
            &json!({"id": id, "user": format!("u{}", id % 97), "amount": id as f64 / 100.0,
                    "ts": 1_704_067_200_000i64 + (id as i64) * 1000})
            .to_string(),
        );
        text.push('\n');
    }
    // Written under another name and renamed: the source never sees a half-written file.
    let tmp = ws.path(&format!("in/.part-{file:02}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, ws.path(&format!("in/part-{file:02}.jsonl"))).unwrap();
}

fn committed_ids(ws: &Workspace) -> Vec<i64> {
    parquet_rows(&ws.path("out/store"))
        .into_iter()
        .map(|(_, row)| row["id"].as_i64().expect("integer id"))
        .collect()
}

#[test]
fn kill_9_mid_stream_then_restart_loses_and_duplicates_nothing() {
    let ws = Workspace::new();
    ws.put_config(
        "source.json",
        &json!({"name": "crash-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/*.jsonl").display().to_string(),
            "topic": "events",
            "timestamp.field": "ts",
            "batch.max.records": "500",
            "poll.interval.ms": "50",
        }}),
    );
    ws.put_config(
        "sink.json",
        &json!({"name": "crash-sink", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "events",
            "path": ws.path("out/store").display().to_string(),
            "flush.size": "1500",
            "rotate.interval.ms": "200",
        }}),
    );
    for file in 0..3 {
        write_input(&ws, file);
    }
    let host = ws.start();
    host.wait_for("some committed rows", || {
        (committed_ids(&ws).len() > 20_000).then_some(())
    });
    host.kill9();

    for file in 3..6 {
        write_input(&ws, file);
    }
    let host = ws.start();
    host.wait_for("rows past the first crash", || {
        (committed_ids(&ws).len() > 70_000).then_some(())
    });
    host.kill9();

    for file in 6..FILES {
        write_input(&ws, file);
    }
    let host = ws.start();
    let total = FILES * ROWS_PER_FILE;
    host.wait_for("every row", || {
        (committed_ids(&ws).len() >= total).then_some(())
    });
    assert!(host.stop().success());

    let ids = committed_ids(&ws);
    let unique: HashSet<i64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), total, "no row lost");
    assert_eq!(ids.len(), total, "no row duplicated");
    let offsets: serde_json::Value =
        serde_json::from_slice(&fs::read(ws.path("var/offsets/crash-source.json")).unwrap())
            .expect("offsets file is intact JSON");
    assert_eq!(offsets["offsets"].as_array().unwrap().len(), FILES);
}
