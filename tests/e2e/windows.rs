//! `headwater.window.Aggregate` end to end: click files → 5-minute windows per user → a sink,
//! compared with a plain reference computation; the same run with `kill -9` twice mid-stream
//! ends with identical window results.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;

use serde_json::json;

use crate::harness::{Workspace, jsonl, sink_values};

const FILES: usize = 6;
const PER_FILE: i64 = 30_000;
const SIZE: i64 = 300_000;
const DELAY: i64 = 5_000;

/// Click `i`: 100 ms apart, up to 3 s out of order, one in 50 a minute late (dropped once its
/// window is closed).
fn click(i: i64) -> (String, String, i64) {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = (h % 3000) as i64;
    let late = if h.is_multiple_of(50) { 60_000 } else { 0 };
    (
        format!("u{}", (h >> 20) % 300),
        format!("/p/{}", (h >> 40) % 20),
        1_767_225_600_000 + i * 100 - jitter - late,
    )
}

fn write_file(ws: &Workspace, file: usize) {
    let mut text = String::new();
    for i in file as i64 * PER_FILE..(file as i64 + 1) * PER_FILE {
        let (user, page, ts) = click(i);
        text.push_str(&json!({"user_id": user, "page": page, "ts": ts}).to_string());
        text.push('\n');
    }
    let tmp = ws.path(&format!("in/.part-{file}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, ws.path(&format!("in/part-{file}.jsonl"))).unwrap();
}

type Windows = BTreeMap<(String, i64), (u64, u64)>;

/// What a reader of the files in order must compute: each click counted in its window unless
/// the watermark (newest time − delay) had already reached the window's last millisecond
/// (`end - 1`, Flink's rule) when it arrived.
fn reference() -> Windows {
    let (mut watermark, mut newest) = (i64::MIN, i64::MIN);
    let mut windows: BTreeMap<(String, i64), (u64, BTreeSet<String>)> = BTreeMap::new();
    for i in 0..FILES as i64 * PER_FILE {
        let (user, page, t) = click(i);
        let start = t.div_euclid(SIZE) * SIZE;
        if start + SIZE - 1 > watermark {
            let w = windows.entry((user, start)).or_default();
            w.0 += 1;
            w.1.insert(page);
        }
        if t > newest {
            newest = t;
            watermark = watermark.max(t - DELAY);
        }
    }
    windows
        .into_iter()
        .filter(|((_, start), _)| start + SIZE - 1 <= watermark)
        .map(|(k, (n, pages))| (k, (n, pages.len() as u64)))
        .collect()
}

/// The last result the sink received per (user, window).
fn results(ws: &Workspace) -> Windows {
    let mut out = Windows::new();
    for v in sink_values(&ws.path("out/features.jsonl")) {
        out.insert(
            (
                v["user_id"].as_str().unwrap().to_owned(),
                v["window_start"].as_i64().unwrap(),
            ),
            (
                v["click_count_5min"].as_u64().unwrap(),
                v["unique_pages_5min"].as_u64().unwrap(),
            ),
        );
    }
    out
}

/// `config` (a connector's `{"name", "config"}`) with a 5-minute window per user added to its
/// chain.
fn with_window(mut config: serde_json::Value, aggregates: &str, cache: &str) -> serde_json::Value {
    let window = json!({
        "transforms": "window",
        "transforms.window.type": "headwater.window.Aggregate",
        "transforms.window.group.by": "user_id",
        "transforms.window.window.size.ms": SIZE.to_string(),
        "transforms.window.time.field": "ts",
        "transforms.window.watermark.delay.ms": DELAY.to_string(),
        "transforms.window.aggregates": aggregates,
        "transforms.window.state.cache.max.entries": cache,
    });
    for (k, v) in window.as_object().into_iter().flatten() {
        config["config"][k] = v.clone();
    }
    config
}

fn workspace() -> Workspace {
    let ws = Workspace::new();
    fs::create_dir_all(ws.path("in")).unwrap();
    let mut clicks = with_window(
        json!({"name": "clicks", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/*.jsonl").display().to_string(),
            "topic": "clicks",
            "batch.max.records": "500",
            "poll.interval.ms": "50",
        }}),
        "click_count_5min:count,unique_pages_5min:count_distinct(page)",
        "200",
    );
    clicks["config"]["transforms.window.output.topic"] = json!("click-features");
    ws.put_config("clicks.json", &clicks);
    ws.put_config(
        "features.json",
        &ws.file_sink("features", "click-features", "out/features.jsonl"),
    );
    ws
}

#[test]
fn windows_match_the_reference_and_survive_kill_9() {
    let expected = reference();
    assert!(expected.len() > 5_000, "{} windows", expected.len());

    let ws = workspace();
    for file in 0..2 {
        write_file(&ws, file);
    }
    let host = ws.start();
    host.wait_for("some window results", || {
        (results(&ws).len() > 1_000).then_some(())
    });
    host.kill9();
    for file in 2..4 {
        write_file(&ws, file);
    }
    // Offsets of a stateful source are written only at checkpoints, with the state.
    let checkpointed =
        || fs::read_to_string(ws.path("var/offsets/clicks.json")).unwrap_or_default();
    let before = checkpointed();
    let host = ws.start();
    host.wait_for("results and a checkpoint past the first crash", || {
        (results(&ws).len() > expected.len() / 2 && checkpointed() != before).then_some(())
    });
    host.kill9();
    for file in 4..FILES {
        write_file(&ws, file);
    }
    let host = ws.start();
    host.wait_for("every window", || (results(&ws) == expected).then_some(()));
    let log = host.log();
    assert!(host.stop().success());
    assert!(log.contains("Connector started"), "{log}");
    assert!(
        ws.path("var/state/clicks.redb").exists(),
        "the state store lives under the data dir"
    );
}

/// A window end shared by more groups than a close emits per call (10,000) closes page by page,
/// in a source connector's chain and in a sink connector's fed by a local source: every group's
/// window arrives once, with its count, through a state cache far smaller than the groups.
#[test]
fn a_window_end_with_25000_groups_closes_completely_in_a_source_and_in_a_sink() {
    const USERS: i64 = 25_000;
    const T0: i64 = 1_767_225_600_000;
    let ws = Workspace::new();
    fs::create_dir_all(ws.path("in")).unwrap();
    // Every user clicks once or twice in the first window; one click ten minutes later closes it.
    let mut text = String::new();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..USERS + USERS / 5 {
        let user = format!("u{}", i % USERS);
        text.push_str(&json!({"user_id": user, "page": "/", "ts": T0 + i}).to_string());
        text.push('\n');
        *expected.entry(user).or_default() += 1;
    }
    text.push_str(&json!({"user_id": "closer", "page": "/", "ts": T0 + 2 * SIZE}).to_string());
    text.push('\n');
    let windowed = |config| with_window(config, "n:count", "4000");
    let source = |name: &str, topic: &str| {
        json!({"name": name, "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/*.jsonl").display().to_string(),
            "topic": topic,
            "batch.max.records": "1000",
        }})
    };
    ws.put_config(
        "windowed-source.json",
        &windowed(source("windowed-source", "features")),
    );
    ws.put_config(
        "source-results.json",
        &ws.file_sink("source-results", "features", "out/source.jsonl"),
    );
    ws.put_config("raw.json", &source("raw", "raw-clicks"));
    ws.put_config(
        "windowed-sink.json",
        &windowed(ws.file_sink("windowed-sink", "raw-clicks", "out/sink.jsonl")),
    );
    let tmp = ws.path("in/.clicks.tmp");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, ws.path("in/clicks.jsonl")).unwrap();

    let host = ws.start();
    for (what, file) in [("source", "out/source.jsonl"), ("sink", "out/sink.jsonl")] {
        let got = host.wait_for(&format!("every window closed in the {what}"), || {
            let values = jsonl(&ws.path(file));
            (values.len() >= USERS as usize).then_some(values)
        });
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for line in &got {
            // The sink's own value converter: with schemas (source side) or without.
            let v = if line["value"]["payload"].is_object() {
                &line["value"]["payload"]
            } else {
                &line["value"]
            };
            let user = v["user_id"].as_str().unwrap_or_default().to_owned();
            let previous = counts.insert(user.clone(), v["n"].as_u64().unwrap_or_default());
            assert!(previous.is_none(), "{what}: {user}'s window emitted twice");
        }
        assert!(
            counts == expected,
            "{what}: the windows differ from the reference"
        );
    }
    assert!(host.stop().success());
}
