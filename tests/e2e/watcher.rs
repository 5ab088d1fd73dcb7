//! connectors.d: add, change, remove, invalid files.

use std::fs;
use std::io::Write;

use serde_json::{Value, json};

use crate::harness::{Host, Workspace, jsonl};

fn append(ws: &Workspace, rel: &str, values: impl IntoIterator<Item = Value>) {
    let values: Vec<Value> = values.into_iter().collect();
    ws.append_jsonl(rel, &values);
}

fn source(ws: &Workspace) -> Value {
    json!({"name": "watch-source", "config": {
        "connector.class": "headwater.file.FileSource",
        "path": ws.path("in/events.jsonl").display().to_string(),
        "topic": "events",
        "poll.interval.ms": "50",
    }})
}

fn sink(ws: &Workspace, out: &str) -> Value {
    json!({"name": "watch-sink", "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": "events",
        "file": ws.path(out).display().to_string(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
    }})
}

fn wait_lines(host: &Host, ws: &Workspace, rel: &str, n: usize) {
    host.wait_for(&format!("{n} lines in {rel}"), || {
        (jsonl(&ws.path(rel)).len() >= n).then_some(())
    });
}

/// Waits until the source committed everything in its input, i.e. read the whole file.
fn wait_source_caught_up(host: &Host, ws: &Workspace) {
    let size = fs::metadata(ws.path("in/events.jsonl")).unwrap().len();
    host.wait_for("the source to read its whole input", || {
        let offsets: Value =
            serde_json::from_slice(&fs::read(ws.path("var/offsets/watch-source.json")).ok()?)
                .ok()?;
        (offsets["offsets"][0]["offset"]["position"].as_u64()? == size).then_some(())
    });
}

#[test]
fn files_added_changed_broken_and_removed_drive_the_connectors() {
    let ws = Workspace::new();
    append(&ws, "in/events.jsonl", (0..5).map(|i| json!({"n": i})));
    let host = ws.start();

    // Added: both connectors start.
    ws.put_config("sink.json", &sink(&ws, "out/a.jsonl"));
    ws.put_config("source.json", &source(&ws));
    wait_lines(&host, &ws, "out/a.jsonl", 5);
    assert_eq!(jsonl(&ws.path("out/a.jsonl"))[4]["value"], json!({"n": 4}));

    // Changed: the sink restarts with its new output file.
    ws.put_config("sink.json", &sink(&ws, "out/b.jsonl"));
    host.wait_for_log("action=Updated");
    append(&ws, "in/events.jsonl", (5..8).map(|i| json!({"n": i})));
    wait_lines(&host, &ws, "out/b.jsonl", 3);
    assert_eq!(
        jsonl(&ws.path("out/a.jsonl")).len(),
        5,
        "the old sink stopped"
    );

    // Broken files are reported and change nothing.
    fs::write(
        ws.connectors_dir().join("broken.json"),
        "{\"name\": \"x\", \"config\": {",
    )
    .unwrap();
    host.wait_for_log("Invalid connector config file");
    ws.put_config(
        "unknown.json",
        &json!({"name": "mystery", "config": {"connector.class": "com.example.Nope"}}),
    );
    host.wait_for_log(
        "unknown connector class \"com.example.Nope\"; known classes: headwater.blackhole.BlackholeSink, headwater.file.FileSink",
    );
    let mut bad_sink = sink(&ws, "out/c.jsonl");
    bad_sink["config"]["topics"] = json!("");
    ws.put_config("sink.json", &bad_sink);
    host.wait_for_log("Must configure one of topics or topics.regex");
    append(&ws, "in/events.jsonl", (8..10).map(|i| json!({"n": i})));
    wait_lines(&host, &ws, "out/b.jsonl", 5);
    assert!(
        !ws.path("out/c.jsonl").exists(),
        "the invalid version never ran"
    );
    // The status API lists the files that run nothing as FAILED with why: under the file's
    // stem when it cannot be read, else under the name it gives. A broken edit of a running
    // connector leaves the running version listed.
    let port = crate::harness::rest_port(&host);
    let listed = host.wait_for("the broken files listed", || {
        let (_, listed) = crate::rest::http(port, "GET", "/connectors?expand=status", None);
        (listed.get("broken").is_some() && listed.get("mystery").is_some()).then_some(listed)
    });
    let trace = |name: &str| {
        assert_eq!(
            listed[name]["status"]["connector"]["state"], "FAILED",
            "{listed}"
        );
        listed[name]["status"]["connector"]["trace"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(trace("broken").contains("broken.json"), "{listed}");
    assert!(
        trace("mystery").contains("unknown connector class"),
        "{listed}"
    );
    assert_eq!(
        listed["watch-sink"]["status"]["connector"]["state"], "RUNNING",
        "{listed}"
    );
    let (code, status) = crate::rest::http(port, "GET", "/connectors/mystery/status", None);
    assert_eq!(
        (code, &status["connector"]["state"]),
        (200, &json!("FAILED"))
    );
    fs::remove_file(ws.connectors_dir().join("broken.json")).unwrap();
    ws.remove_config("unknown.json");
    host.wait_for("fixed files gone from the list", || {
        let (_, names) = crate::rest::http(port, "GET", "/connectors", None);
        let names: Vec<&str> = names.as_array()?.iter().filter_map(Value::as_str).collect();
        (!names.contains(&"broken") && !names.contains(&"mystery")).then_some(())
    });

    // Removed: the sink stops; the source holds what it reads next (nothing is dropped for
    // want of a reader) until a sink subscribes again.
    ws.remove_config("sink.json");
    host.wait_for_log("Connector stopped. connector=watch-sink");
    append(&ws, "in/events.jsonl", (10..12).map(|i| json!({"n": i})));
    host.wait_for_log("Source waiting for a sink");
    assert_eq!(jsonl(&ws.path("out/b.jsonl")).len(), 5);
    ws.put_config("sink.json", &sink(&ws, "out/b.jsonl"));
    wait_source_caught_up(&host, &ws);
    wait_lines(&host, &ws, "out/b.jsonl", 7);
    assert!(host.stop().success());
}

#[test]
fn several_quick_writes_start_the_connector_once() {
    let ws = Workspace::new();
    append(&ws, "in/events.jsonl", (0..3).map(|i| json!({"n": i})));
    let host = ws.start();
    ws.put_config("source.json", &source(&ws));
    // An editor that writes the file in pieces.
    let text = serde_json::to_string_pretty(&sink(&ws, "out/a.jsonl")).unwrap();
    let path = ws.connectors_dir().join("sink.json");
    let mut f = fs::File::create(&path).unwrap();
    for chunk in text.as_bytes().chunks(text.len() / 3 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
    }
    drop(f);
    wait_lines(&host, &ws, "out/a.jsonl", 3);
    let starts = host
        .log()
        .matches("Connector started. connector=watch-sink action=Created")
        .count();
    assert_eq!(starts, 1, "started once; log:\n{}", host.log());
    assert!(host.stop().success());
}

/// A file giving the name of a connector created over REST is refused and reported beside it
/// as a conflict; the REST connector runs on untouched, and the report goes with the file.
#[test]
fn a_file_naming_a_rest_connector_is_reported_as_a_conflict_and_changes_nothing() {
    let ws = Workspace::new();
    let host = ws.start();
    let port = crate::harness::rest_port(&host);
    let rest_sink = sink(&ws, "out/rest.jsonl");
    let (code, _) = crate::rest::http(port, "POST", "/connectors", Some(&rest_sink));
    assert_eq!(code, 201);
    ws.put_config("dup.json", &sink(&ws, "out/file.jsonl"));
    let status = host.wait_for("the conflict reported", || {
        let (_, status) = crate::rest::http(port, "GET", "/connectors/watch-sink/status", None);
        status.get("conflict").is_some().then_some(status)
    });
    assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
    let conflict = &status["conflict"];
    assert!(
        conflict["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("dup.json"))
            && conflict["reason"]
                .as_str()
                .is_some_and(|r| r.contains("created over the REST API")),
        "{status}"
    );
    let (_, listed) = crate::rest::http(port, "GET", "/connectors?expand=status", None);
    assert_eq!(
        listed["watch-sink"]["status"]["conflict"], *conflict,
        "{listed}"
    );
    let (_, config) = crate::rest::http(port, "GET", "/connectors/watch-sink/config", None);
    assert!(
        config["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("rest.jsonl")),
        "the REST config stands: {config}"
    );
    ws.remove_config("dup.json");
    host.wait_for("the conflict gone with the file", || {
        let (_, status) = crate::rest::http(port, "GET", "/connectors/watch-sink/status", None);
        status.get("conflict").is_none().then_some(())
    });
    assert!(host.stop().success());
}
