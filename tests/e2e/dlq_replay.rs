//! `headwater dlq replay`: dead letters go back through their sink connector once the cause is
//! fixed, from the dead-letter file (no Kafka) or from a Kafka dead-letter topic.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Host, Service, Workspace, jsonl, rest_port};
use crate::kafka::{client, consume};

/// `headwater dlq <args>` against the host; its stdout.
fn dlq(host: &Host, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("dlq")
        .args(args)
        .args(["--url", &format!("http://127.0.0.1:{}", rest_port(host))])
        .env_remove("HEADWATER_REST_TOKEN")
        .output()
        .expect("run headwater dlq");
    assert!(
        out.status.success(),
        "headwater dlq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `headwater dlq replay <name> [--topic T]` against the host; its stdout.
fn replay(host: &Host, name: &str, topic: Option<&str>) -> String {
    match topic {
        Some(t) => dlq(host, &["replay", name, "--topic", t]),
        None => dlq(host, &["replay", name]),
    }
}

/// A sink casting `n` to `cast`: `int32` refuses the non-numeric values.
fn sink(ws: &Workspace, topics: &str, cast: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "headwater.file.FileSink",
        "topics": topics,
        "file": ws.path("out/sink.jsonl").display().to_string(),
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "errors.tolerance": "all",
        "transforms": "cast",
        "transforms.cast.type": "org.apache.kafka.connect.transforms.Cast$Value",
        "transforms.cast.spec": format!("n:{cast}"),
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    json!({"name": "casting", "config": config})
}

fn values(ws: &Workspace) -> Vec<Value> {
    jsonl(&ws.path("out/sink.jsonl"))
        .into_iter()
        .map(|l| l["value"].clone())
        .collect()
}

#[test]
fn dead_letters_in_the_file_are_replayed_after_the_fix() {
    let ws = Workspace::new();
    let events = [
        json!({"n": "1"}),
        json!({"n": "abc"}),
        json!({"n": "2"}),
        json!({"n": "x"}),
    ];
    ws.append_jsonl("in/events.jsonl", &events);
    ws.put_config(
        "source.json",
        &json!({"name": "events", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/events.jsonl").display().to_string(),
            "topic": "events",
        }}),
    );
    ws.put_config("sink.json", &sink(&ws, "events", "int32", json!({})));
    let host = ws.start();
    let letters = ws.path("var/dlq/casting.jsonl");
    host.wait_for("two dead letters", || {
        (jsonl(&letters).len() == 2).then_some(())
    });
    host.wait_for("two records written", || {
        (values(&ws).len() == 2).then_some(())
    });
    assert_eq!(values(&ws), vec![json!({"n": 1}), json!({"n": 2})]);

    // The last dead letters over REST: where each came from, what failed and why.
    let port = rest_port(&host);
    let (code, body) = crate::rest::http(port, "GET", "/connectors/casting/dlq?limit=1", None);
    assert_eq!(code, 200, "{body}");
    let shown = body["dead_letters"].as_array().expect("a list");
    assert_eq!(shown.len(), 1, "{body}");
    // The FileSource's offsets are byte positions: the fourth line starts at 32.
    assert_eq!(
        (&shown[0]["topic"], &shown[0]["offset"], &shown[0]["stage"]),
        (&json!("events"), &json!(32), &json!("TRANSFORMATION")),
        "{body}"
    );
    assert_eq!(shown[0]["value"], json!("{\"n\":\"x\"}"), "{body}");
    assert!(
        shown[0]["class"]
            .as_str()
            .is_some_and(|c| c.contains("Cast"))
            && shown[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains('x')),
        "{body}"
    );
    let (_, all) = crate::rest::http(port, "GET", "/connectors/casting/dlq", None);
    assert_eq!(
        all["dead_letters"].as_array().map(Vec::len),
        Some(2),
        "{all}"
    );
    let (code, _) = crate::rest::http(port, "GET", "/connectors/casting/dlq?limit=0", None);
    assert_eq!(code, 400);
    let (code, _) = crate::rest::http(port, "GET", "/connectors/nope/dlq", None);
    assert_eq!(code, 404);
    let listed = dlq(&host, &["list", "casting"]);
    let rows: Vec<&str> = listed.lines().collect();
    assert!(
        rows.len() == 3
            && rows[0].starts_with("FROM")
            && rows[1].starts_with("events [0] @10")
            && rows[2].contains("TRANSFORMATION")
            && rows[2].contains("value \"x\""),
        "{listed}"
    );

    // The fix: keep `n` as text. The connector restarts with the new config.
    ws.put_config("sink.json", &sink(&ws, "events", "string", json!({})));
    host.wait_for_log("Connector started. connector=casting action=Updated");
    let out = replay(&host, "casting", None);
    assert!(
        out.contains("Replayed 2 dead letter(s) of casting from the file"),
        "{out}"
    );
    let written = values(&ws);
    assert_eq!(written[2..], [json!({"n": "abc"}), json!({"n": "x"})]);
    assert!(!letters.exists(), "the replayed file is gone");
    assert!(!ws.path("var/dlq/casting.jsonl.replaying").exists());
    // Nothing left: a second replay is a no-op.
    assert!(replay(&host, "casting", None).contains("Replayed 0"));
    host.stop();
}

#[test]
fn dead_letters_in_a_kafka_topic_are_replayed_once() {
    let broker = Service::start("tansu");
    client(&["create", &broker.url, "numbers", "1"]);
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    let dlq = json!({
        "errors.deadletterqueue.topic.name": "casting-dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
    });
    ws.put_config("sink.json", &sink(&ws, "numbers", "int32", dlq.clone()));
    let host = ws.start();
    for (key, value) in [("a", "{\"n\":\"7\"}"), ("b", "{\"n\":\"seven\"}")] {
        let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
        client(&["produce-raw", &broker.url, "numbers", key, &hex]);
    }
    host.wait_for("one record written", || {
        (values(&ws).len() == 1).then_some(())
    });
    let letters = consume(&broker, "casting-dlq", 1);
    assert_eq!(letters[0]["key"], "b");

    ws.put_config("sink.json", &sink(&ws, "numbers", "string", dlq));
    host.wait_for_log("Connector started. connector=casting action=Updated");
    let out = replay(&host, "casting", Some("casting-dlq"));
    assert!(
        out.contains("Replayed 1 dead letter(s) of casting from the topic casting-dlq"),
        "{out}"
    );
    let written = jsonl(&ws.path("out/sink.jsonl"));
    assert_eq!(written.len(), 2);
    assert_eq!(written[1]["value"], json!({"n": "seven"}));
    assert_eq!(written[1]["key"], "b", "the original key");
    assert_eq!(written[1]["topic"], "numbers", "the original topic");
    // The replay group committed: the same letters are not sent twice.
    assert!(replay(&host, "casting", Some("casting-dlq")).contains("Replayed 0"));
    assert_eq!(jsonl(&ws.path("out/sink.jsonl")).len(), 2);
    host.stop();
}
