//! The book chapter's Flink SQL job and Headwater's window step on the same clicks: every window
//! Headwater emits equals the one Apache Flink 2.3 emitted (`host/testdata/flink/`, produced by
//! `../shared/tools/flink-bench` with parallelism 1, per-record watermarks, no allowed lateness,
//! late records dropped; see the README there).

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Workspace, sink_values};

/// (user, window end) → (COUNT(*), COUNT(DISTINCT page_id)).
type Windows = BTreeMap<(String, i64), (u64, u64)>;

fn testdata(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/flink")
        .join(name)
}

fn flink_windows() -> Windows {
    let text = std::fs::read_to_string(testdata("flink-windows.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["window_end"].as_i64().unwrap(),
                ),
                (
                    v["click_count_5min"].as_u64().unwrap(),
                    v["unique_pages_5min"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn every_window_equals_flinks() {
    let ws = Workspace::new();
    let clicks = ws.path("in/clicks.jsonl");
    // The clicks Flink read: gen_clicks.py is deterministic for a seed.
    let out = Command::new("python3")
        .arg(testdata("gen_clicks.py"))
        .arg(&clicks)
        .args(["40000", "--users", "300", "--seed", "1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(ws.path("in/clicks.flink.jsonl")).unwrap();
    let newest = sink_values_of(&clicks)
        .iter()
        .map(|c| time_ms(&c["event_time"]))
        .max()
        .unwrap();
    ws.put_config(
        "clicks.json",
        &json!({"name": "clicks", "config": {
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
        }}),
    );
    ws.put_config(
        "features.json",
        &ws.file_sink("features", "features", "out/features.jsonl"),
    );
    // Flink ends its bounded input with a final watermark that fires every window; Headwater's
    // stream stops at the newest click minus the delay: the windows that fired by then.
    let flink = flink_windows();
    let fired: Windows = flink
        .iter()
        .filter(|((_, end), _)| end - 1 <= newest - 5_000)
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert!(fired.len() > 1_000, "{} windows", fired.len());
    let host = ws.start();
    let got = host.wait_for("every fired window", || {
        let got = headwater_windows(&ws);
        (got.len() >= fired.len()).then_some(got)
    });
    assert!(host.stop().success());
    let differing: Vec<_> = got
        .iter()
        .filter(|(k, v)| fired.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), *v, flink.get(k).copied()))
        .collect();
    assert!(
        differing.is_empty(),
        "{} of {} windows differ from Flink's (key, headwater, flink): {:?}",
        differing.len(),
        got.len(),
        &differing[..differing.len().min(10)]
    );
    assert_eq!(got.len(), fired.len());
}

fn sink_values_of(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn time_ms(v: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

fn headwater_windows(ws: &Workspace) -> Windows {
    sink_values(&ws.path("out/features.jsonl"))
        .into_iter()
        .map(|v| {
            (
                (
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["window_end"].as_i64().unwrap(),
                ),
                (
                    v["click_count_5min"].as_u64().unwrap(),
                    v["unique_pages_5min"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}
