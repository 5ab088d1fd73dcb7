//! `headwater validate`: every problem named, non-zero exit.

use std::process::Command;

use serde_json::json;

use crate::harness::Workspace;

fn validate(files: &[std::path::PathBuf]) -> (bool, String) {
    run_validate(None, files)
}

/// `headwater validate --config <worker> <file>`: the file checked against a worker config.
fn validate_with(worker: &std::path::Path, file: &std::path::Path) -> (bool, String) {
    run_validate(Some(worker), &[file.to_path_buf()])
}

fn run_validate(worker: Option<&std::path::Path>, files: &[std::path::PathBuf]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_headwater"));
    command.arg("validate");
    if let Some(worker) = worker {
        command.arg("--config").arg(worker);
    }
    let output = command
        .args(files)
        .output()
        .expect("run headwater validate");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn valid_configs_pass_and_every_problem_is_named() {
    let ws = Workspace::new();
    let good = ws.path("good.json");
    std::fs::write(
        &good,
        json!({"name": "good", "config": {
            "connector.class": "headwater.file.FileSource", "path": "in/*.jsonl", "topic": "t",
            "transforms": "r",
            "transforms.r.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.r.regex": "(.*)", "transforms.r.replacement": "$1-copy",
            "some.extra": "x",
        }})
        .to_string(),
    )
    .unwrap();
    let (ok, out) = validate(std::slice::from_ref(&good));
    assert!(ok, "{out}");
    assert!(
        out.contains("OK: connector 'good' (source headwater.file.FileSource)"),
        "{out}"
    );
    assert!(
        out.contains("unknown key \"some.extra\" is ignored"),
        "{out}"
    );

    let bad = ws.path("bad.json");
    std::fs::write(
        &bad,
        json!({"name": "bad", "config": {
            "connector.class": "FileSource",
            "poll.interval.ms": "soon",
            "errors.tolerance": "some",
            "transforms": "x",
            "transforms.x.type": "org.example.Nope",
        }})
        .to_string(),
    )
    .unwrap();
    let unknown = ws.path("unknown.properties");
    std::fs::write(
        &unknown,
        "name=unknown\nconnector.class=com.example.Missing\n",
    )
    .unwrap();
    let (ok, out) = validate(&[good, bad, unknown]);
    assert!(!ok);
    for expected in [
        "Connector 'bad' configuration is invalid and contains the following 5 error(s):",
        "errors.tolerance: expected one of none, all, got \"some\"",
        "transforms.x.type: unknown transformation class \"org.example.Nope\"; known classes: org.apache.kafka.connect.transforms.Cast$Key",
        "poll.interval.ms: expected a positive integer, got \"soon\"",
        "topic: missing required key, which has no default value",
        "path: missing required key: set `path` (or `file`)",
        "connector.class: unknown connector class \"com.example.Missing\"; known classes: headwater.blackhole.BlackholeSink, headwater.file.FileSink, headwater.file.FileSource, headwater.kafka.KafkaSink, headwater.parquet.ParquetSink",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

/// A sink with a window step is valid, and `validate` says how it reads Kafka and where its
/// state goes.
#[test]
fn a_windowing_sink_is_valid_and_validate_says_what_it_does() {
    let ws = Workspace::new();
    let file = ws.path("stream.json");
    std::fs::write(
        &file,
        json!({"name": "clicks-stream", "config": {
            "connector.class": "headwater.file.FileSink", "topics": "clicks",
            "file": "out/features.jsonl",
            "transforms": "window",
            "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id",
            "transforms.window.window.size.ms": "300000",
            "transforms.window.aggregates": "n:count",
        }})
        .to_string(),
    )
    .unwrap();
    let (ok, out) = validate(std::slice::from_ref(&file));
    assert!(ok, "{out}");
    assert!(
        out.contains("reads every partition of the sink's Kafka topics"),
        "{out}"
    );
    assert!(out.contains("no repartition topic"), "{out}");
    assert!(out.contains("state/clicks-stream.redb"), "{out}");
}

/// With Kafka in the worker config and `tasks.max` 2, a windowing sink keeps state per
/// partition, behind a repartition topic unless the topic is keyed by the groups; without
/// Kafka the repartition topic is impossible and validate says why.
#[test]
fn a_windowing_sink_with_several_tasks_is_repartitioned_unless_keyed_by_its_groups() {
    let ws = Workspace::new();
    let worker = ws.path("worker.toml");
    std::fs::write(&worker, "[kafka]\nbootstrap_servers = \"127.0.0.1:9\"\n").unwrap();
    let config = |extra: &[(&str, &str)]| {
        let mut config = json!({
            "connector.class": "headwater.file.FileSink", "topics": "clicks",
            "file": "out/features.jsonl", "tasks.max": "2",
            "transforms": "window",
            "transforms.window.type": "headwater.window.Aggregate",
            "transforms.window.group.by": "user_id",
            "transforms.window.window.size.ms": "300000",
            "transforms.window.aggregates": "n:count",
        });
        for (k, v) in extra {
            config[*k] = json!(v);
        }
        json!({"name": "clicks-stream", "config": config}).to_string()
    };
    let run = |file: &std::path::Path| validate_with(&worker, file);
    // Grouped by a field the topic may not be keyed by: re-keyed through a repartition topic.
    let split = ws.path("split.json");
    std::fs::write(&split, config(&[])).unwrap();
    let (ok, out) = run(&split);
    assert!(ok, "{out}");
    assert!(
        out.contains("headwater-clicks-stream-repartition")
            && out.contains("group connect-clicks-stream-state"),
        "{out}"
    );
    let keyed = ws.path("keyed.json");
    std::fs::write(
        &keyed,
        config(&[("transforms.window.group.by.partitioned", "true")]),
    )
    .unwrap();
    let (ok, out) = run(&keyed);
    assert!(ok, "{out}");
    assert!(out.contains("state per input partition"), "{out}");
    assert!(out.contains("group connect-clicks-stream"), "{out}");
    // Without Kafka the same config has one reader; the window that would need a repartition
    // topic is refused all the same.
    let (ok, out) = validate(std::slice::from_ref(&keyed));
    assert!(ok, "{out}");
    assert!(out.contains("one reader"), "{out}");
    let (ok, out) = validate(std::slice::from_ref(&split));
    assert!(!ok, "{out}");
    assert!(
        out.contains("needs a repartition topic, and so Kafka")
            && out.contains("group.by.partitioned")
            && out.contains("tasks.max=1"),
        "{out}"
    );
}

/// `validate` says how many tasks a sink runs in each host: `tasks.max` of them when it reads
/// Kafka and keeps no state, else one and why.
#[test]
fn validate_says_how_many_tasks_a_sink_runs() {
    let ws = Workspace::new();
    let worker = ws.path("worker.toml");
    std::fs::write(&worker, "[kafka]\nbootstrap_servers = \"127.0.0.1:9\"\n").unwrap();
    let file = ws.path("store.json");
    std::fs::write(
        &file,
        json!({"name": "store", "config": {
            "connector.class": "headwater.parquet.ParquetSink", "topics": "clicks",
            "path": "out/store", "tasks.max": "3",
        }})
        .to_string(),
    )
    .unwrap();
    let (ok, out) = validate_with(&worker, &file);
    assert!(ok, "{out}");
    assert!(
        out.contains("tasks: 3 in each host, each a consumer of group connect-store"),
        "{out}"
    );
    let (ok, out) = validate(std::slice::from_ref(&file));
    assert!(ok, "{out}");
    assert!(
        out.contains("tasks: 1 in each host (it reads no Kafka"),
        "{out}"
    );
}
