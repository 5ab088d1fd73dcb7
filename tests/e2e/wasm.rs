//! WASM plugins in connectors: the example plugins on real records, failures isolated to the
//! records that cause them, hot reload, contract versions, and `headwater plugin` from scratch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::{Workspace, jsonl, rest_port};

/// Builds the example plugins (once per test process; cargo makes it a no-op when fresh) and
/// returns the directory of the `.wasm` files.
fn plugins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2"])
            .current_dir(&root)
            .status()
            .expect("run cargo for the plugins");
        assert!(status.success(), "building the example plugins failed");
        root.join("target/wasm32-wasip2/release")
    })
}

fn module(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

/// The value payloads a FileSink wrote.
fn values(path: &Path) -> Vec<Value> {
    jsonl(path)
        .into_iter()
        .map(|l| l["value"]["payload"].clone())
        .collect()
}

fn header<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line["headers"]
        .as_array()?
        .iter()
        .rev()
        .find(|h| h["key"] == key)?["value"]
        .as_str()
}

fn http_text(port: u16, path: &str) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

fn sink(ws: &Workspace, name: &str, topic: &str, file: &str) -> Value {
    json!({"name": name, "config": {
        "connector.class": "headwater.file.FileSink",
        "topics": topic,
        "file": ws.path(file).display().to_string(),
    }})
}

#[test]
fn feature_transform_pii_mask_and_expectations_run_in_one_chain() {
    let ws = Workspace::new();
    let input = ws.path("in/tx.jsonl");
    std::fs::write(
        &input,
        concat!(
            r#"{"transaction_id":"t1","user_id":"u0001","amount":100,"currency":"EUR","ts":"2024-01-06T13:05:00Z","email":"alice@example.com","card_number":"4111111111111111"}"#, "\n",
            r#"{"transaction_id":"t2","user_id":"u0002","amount":-5,"currency":"USD","ts":"2024-01-02T08:00:00Z","email":"bob@example.com","card_number":"4000000000000002"}"#, "\n",
            r#"{"transaction_id":"t3","user_id":"u0003","amount":7,"currency":"GBP","ts":"2024-01-03T23:59:00Z","email":"carol@example.com","card_number":"4000000000000010"}"#, "\n",
            r#"{"transaction_id":"t4","user_id":"u0004","amount":"n/a","currency":"USD","ts":"2024-01-03T10:00:00Z"}"#, "\n",
        ),
    )
    .unwrap();
    ws.put_config(
        "source.json",
        &json!({"name": "tx-source", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "tx",
            "errors.tolerance": "all",
            "transforms": "features,quality,pii",
            "transforms.features.type": "headwater.wasm.Transform",
            "transforms.features.module": module("features"),
            "transforms.features.config.rates": "USD:1,EUR:1.1,GBP:1.25",
            "transforms.quality.type": "headwater.wasm.Check",
            "transforms.quality.module": module("expectations"),
            "transforms.quality.config.expect.amount.min": "0",
            "transforms.quality.config.expect.currency.in_set": "USD,EUR",
            "transforms.quality.config.expect.currency.severity": "warning",
            "transforms.pii.type": "headwater.wasm.Transform",
            "transforms.pii.module": module("pii_mask"),
            "transforms.pii.config.hash.fields": "email",
            "transforms.pii.config.salt": "pepper",
            "transforms.pii.config.mask.fields": "card_number",
            "transforms.pii.config.mask.keep.last": "4",
        }}),
    );
    ws.put_config("sink.json", &sink(&ws, "tx-sink", "tx", "out/tx.jsonl"));
    let host = ws.start();
    let out = ws.path("out/tx.jsonl");
    let dlq = ws.path("var/dlq/tx-source.jsonl");
    host.wait_for("two records out, two dead letters", || {
        (jsonl(&out).len() == 2 && jsonl(&dlq).len() == 2).then_some(())
    });
    let metrics = http_text(rest_port(&host), "/metrics");
    assert!(host.stop().success());

    let lines = jsonl(&out);
    let got = values(&out);
    assert_eq!(got[0]["transaction_id"], "t1");
    assert_eq!(got[0]["amount_base"], json!(110.0));
    assert_eq!(got[0]["amount_bucket"], "50-200");
    assert_eq!(got[0]["hour_of_day"], json!(13));
    assert_eq!(got[0]["is_weekend"], json!(true));
    // printf 'pepperalice@example.com' | sha256sum
    assert_eq!(
        got[0]["email"],
        "8b8d9adc4875c0dca816e3e17b7ac87b45e40945b731fa02e3b42bf101589e21"
    );
    assert_eq!(got[0]["card_number"], "************1111");
    assert_eq!(header(&lines[0], "headwater.quality.violations"), None);
    // GBP is outside the set at warning severity: tagged, not stopped.
    assert_eq!(got[1]["transaction_id"], "t3");
    assert_eq!(
        header(&lines[1], "headwater.quality.violations"),
        Some("currency.in_set")
    );

    let dead = jsonl(&dlq);
    let reason = |d: &Value| {
        header(d, "__connect.errors.exception.message")
            .unwrap_or("")
            .to_owned()
    };
    let negative = dead
        .iter()
        .find(|d| reason(d).contains("amount.between"))
        .expect("t2 in the DLQ");
    assert!(
        reason(negative).contains("-5 is outside [0, inf]"),
        "{}",
        reason(negative)
    );
    assert_eq!(
        header(negative, "__connect.errors.exception.class.name"),
        Some("headwater.wasm.QualityViolation")
    );
    let not_a_number = dead
        .iter()
        .find(|d| reason(d).contains("n/a"))
        .expect("t4 in the DLQ");
    assert!(
        reason(not_a_number).contains("field `amount` must be a number"),
        "{}",
        reason(not_a_number)
    );
    assert_eq!(
        header(not_a_number, "__connect.errors.transformation.alias")
            .or(header(not_a_number, "__connect.errors.class.name")),
        header(not_a_number, "__connect.errors.class.name"),
    );

    for needle in [
        r#"headwater_plugin_expectation_evaluated_total{connector="tx-source",step="quality",column="amount",expectation="between"} 3"#,
        r#"headwater_plugin_expectation_unexpected_total{connector="tx-source",step="quality",column="amount",expectation="between"} 1"#,
        r#"headwater_wasm_violations_total{connector="tx-source",step="quality",rule="currency.in_set",severity="warning"} 1"#,
        r#"headwater_plugin_features_computed_total{connector="tx-source",step="features",currency="EUR"} 1"#,
    ] {
        assert!(metrics.contains(needle), "missing {needle} in:\n{metrics}");
    }
}

#[test]
fn panics_loops_memory_bombs_and_bad_records_go_to_the_dlq_and_the_rest_flows() {
    let ws = Workspace::new();
    let input = ws.path("in/events.jsonl");
    let events: Vec<Value> = ["ok", "panic", "ok", "loop", "bomb", "error", "ok"]
        .iter()
        .enumerate()
        .map(|(i, a)| json!({"id": i.to_string(), "action": a}))
        .collect();
    ws.append_jsonl("in/events.jsonl", &events);
    ws.put_config(
        "source.json",
        &json!({"name": "rowdy", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "events",
            "poll.interval.ms": "50",
            "errors.tolerance": "all",
            "transforms": "misbehave",
            "transforms.misbehave.type": "headwater.wasm.Transform",
            "transforms.misbehave.module": module("misbehave"),
            "transforms.misbehave.timeout.ms": "200",
            "transforms.misbehave.max.memory.bytes": "16777216",
        }}),
    );
    ws.put_config(
        "sink.json",
        &sink(&ws, "events-sink", "events", "out/events.jsonl"),
    );
    let host = ws.start();
    let out = ws.path("out/events.jsonl");
    let dlq = ws.path("var/dlq/rowdy.jsonl");
    host.wait_for("three good records and four dead letters", || {
        (values(&out).len() == 3 && jsonl(&dlq).len() == 4).then_some(())
    });
    // Still running: a later record goes through.
    ws.append_jsonl("in/events.jsonl", &[json!({"id": "7", "action": "ok"})]);
    host.wait_for("the later record", || {
        (values(&out).len() == 4).then_some(())
    });
    assert!(host.stop().success());

    let ids: Vec<String> = values(&out)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["0", "2", "6", "7"], "good records in order");
    assert!(values(&out).iter().all(|v| v["plugin_tag"] == "v1"));

    let dead = jsonl(&dlq);
    let by_id = |id: &str| {
        dead.iter()
            .find(|d| {
                d["value"]
                    .as_str()
                    .is_some_and(|v| v.contains(&format!("\"id\":\"{id}\"")))
            })
            .unwrap_or_else(|| panic!("record {id} not in the DLQ: {dead:?}"))
    };
    let expect = [
        ("1", "headwater.wasm.Trap", "asked to panic by record 1"),
        (
            "3",
            "headwater.wasm.Timeout",
            "ran longer than timeout.ms=200",
        ),
        (
            "4",
            "headwater.wasm.MemoryLimitExceeded",
            "above max.memory.bytes=16777216",
        ),
        (
            "5",
            "headwater.wasm.BadRecord",
            "this record asked for an error",
        ),
    ];
    for (id, class, text) in expect {
        let d = by_id(id);
        assert_eq!(
            header(d, "__connect.errors.exception.class.name"),
            Some(class),
            "{d}"
        );
        let message = header(d, "__connect.errors.exception.message").unwrap();
        assert!(message.contains(text), "record {id}: {message}");
        assert_eq!(header(d, "__connect.errors.stage"), Some("TRANSFORMATION"));
    }
}

#[test]
fn a_changed_module_is_reloaded_without_restarting_the_connector() {
    let ws = Workspace::new();
    let live = ws.path("plugins/step.wasm");
    std::fs::create_dir_all(live.parent().unwrap()).unwrap();
    std::fs::copy(module("misbehave"), &live).unwrap();
    let input = ws.path("in/events.jsonl");
    ws.append_jsonl("in/events.jsonl", &[json!({"n": 1})]);
    ws.put_config(
        "source.json",
        &json!({"name": "reloading", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "events",
            "poll.interval.ms": "50",
            "transforms": "step",
            "transforms.step.type": "headwater.wasm.Transform",
            "transforms.step.module": live.display().to_string(),
        }}),
    );
    ws.put_config(
        "sink.json",
        &sink(&ws, "reload-sink", "events", "out/events.jsonl"),
    );
    let host = ws.start();
    let out = ws.path("out/events.jsonl");
    host.wait_for("the first record", || {
        (values(&out).len() == 1).then_some(())
    });
    assert_eq!(values(&out)[0]["plugin_tag"], "v1");

    // Replace the file atomically, as a deploy would.
    let staged = ws.path("plugins/step.wasm.new");
    std::fs::copy(module("passthrough"), &staged).unwrap();
    std::fs::rename(&staged, &live).unwrap();
    // The file is checked (at most every 250 ms) when a batch arrives.
    std::thread::sleep(std::time::Duration::from_millis(300));
    ws.append_jsonl("in/events.jsonl", &[json!({"n": 2})]);
    host.wait_for_log("Reloaded the changed WASM module.");
    host.wait_for("the second record", || {
        (values(&out).len() == 2).then_some(())
    });
    // A broken file is refused; the loaded version keeps running.
    std::fs::write(&live, b"not wasm at all").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ws.append_jsonl("in/events.jsonl", &[json!({"n": 3})]);
    host.wait_for_log(
        "The changed WASM module cannot be used; the previous version keeps running.",
    );
    host.wait_for("the third record", || {
        (values(&out).len() == 3).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    let got = values(&out);
    assert_eq!(
        got[1],
        json!({"n": 2}),
        "the new module passes records unchanged"
    );
    assert_eq!(got[2], json!({"n": 3}));
    assert!(!log.contains("Connector task failed"), "{log}");
}

#[test]
fn modules_of_another_contract_or_kind_are_refused_with_a_clear_error() {
    let ws = Workspace::new();
    let config = |file: &str, class: &str, module: String| {
        let path = ws.connectors_dir().join(file);
        std::fs::write(
            &path,
            json!({"name": file, "config": {
                "connector.class": "headwater.file.FileSource",
                "path": "in/*.jsonl",
                "topic": "t",
                "transforms": "p",
                "transforms.p.type": class,
                "transforms.p.module": module,
            }})
            .to_string(),
        )
        .unwrap();
        path
    };
    let validate = |path: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_headwater"))
            .current_dir(ws.path(""))
            .args(["validate"])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = validate(&config(
        "other.json",
        "headwater.wasm.Transform",
        module("other_wit"),
    ));
    assert!(!ok);
    assert!(
        text.contains("transforms.p.module:")
            && text.contains("built against headwater:plugin@0.2.0, but this Headwater speaks headwater:plugin@0.1.0"),
        "{text}"
    );
    let (ok, text) = validate(&config(
        "kind.json",
        "headwater.wasm.Transform",
        module("expectations"),
    ));
    assert!(!ok);
    assert!(
        text.contains("is a check plugin; use `headwater.wasm.Check`"),
        "{text}"
    );
    let (ok, text) = validate(&config(
        "missing.json",
        "headwater.wasm.Check",
        "nowhere.wasm".into(),
    ));
    assert!(!ok);
    assert!(text.contains("cannot read module nowhere.wasm"), "{text}");
    let path = config("cfg.json", "headwater.wasm.Check", module("expectations"));
    let (ok, text) = validate(&path);
    assert!(!ok);
    assert!(
        text.contains(
            "transforms.p.config: the plugin refused its configuration: no expectations configured"
        ),
        "{text}"
    );
}
