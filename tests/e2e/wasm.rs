//! WASM plugins in connectors: the example plugins on real records, failures isolated to the
//! records that cause them, hot reload, contract versions, and `headwater plugin` from scratch.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::harness::{Workspace, header, jsonl, rest_port, sink_values};

/// Builds the example plugins (once per test process; cargo makes it a no-op when fresh) and
/// returns the directory of the `.wasm` files.
pub fn plugins() -> &'static Path {
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

pub fn module(name: &str) -> String {
    plugins().join(format!("{name}.wasm")).display().to_string()
}

pub(crate) fn http_text(port: u16, path: &str) -> String {
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
    ws.put_config("sink.json", &ws.file_sink("tx-sink", "tx", "out/tx.jsonl"));
    let host = ws.start();
    let out = ws.path("out/tx.jsonl");
    let dlq = ws.path("var/dlq/tx-source.jsonl");
    host.wait_for("two records out, two dead letters", || {
        (jsonl(&out).len() == 2 && jsonl(&dlq).len() == 2).then_some(())
    });
    // The sink notes its newest event time (freshness) once the write is acknowledged, a moment
    // after the line is in the file.
    let metrics = host.wait_for("the sink's freshness in /metrics", || {
        let text = http_text(rest_port(&host), "/metrics");
        text.contains(r#"headwater_connector_freshness_seconds{connector="tx-sink"}"#)
            .then_some(text)
    });
    assert!(host.stop().success());

    // Each module was compiled once into the data dir's cache, named by content hash.
    let cached: Vec<String> = std::fs::read_dir(ws.path("var/wasm-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cwasm"))
        .collect();
    assert_eq!(cached.len(), 3, "{cached:?}");
    assert!(
        cached
            .iter()
            .all(|n| n.len() > 64 && n.contains("-wasmtime48.0.8-")),
        "{cached:?}"
    );

    let lines = jsonl(&out);
    let got = sink_values(&out);
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
    assert_dashboard_metrics_exist(&metrics);
}

/// Every metric the Grafana dashboard in the repository (`docs/grafana/headwater.json`)
/// queries has series in `metrics`, the `/metrics` text of a host running connectors with
/// WASM steps: a renamed metric fails here, not on an operator's empty panel.
fn assert_dashboard_metrics_exist(metrics: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/headwater.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read the dashboard"))
            .expect("the dashboard is JSON");
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    queries.extend(
        dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["definition"].as_str().map(str::to_owned)),
    );
    let mut names = std::collections::BTreeSet::new();
    for query in &queries {
        let mut rest = query.as_str();
        while let Some(at) = rest.find("headwater_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() >= 15, "the dashboard's metrics: {names:?}");
    for name in names {
        let has_series = metrics
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
        assert!(
            has_series,
            "the dashboard queries {name}, which /metrics lacks:\n{metrics}"
        );
    }
}

#[test]
fn panics_loops_memory_bombs_and_bad_records_go_to_the_dlq_and_the_rest_flows() {
    let ws = Workspace::new();
    let input = ws.path("in/events.jsonl");
    let events: Vec<Value> = [
        "ok", "panic", "ok", "loop", "bomb", "error", "ok", "grow", "hello",
    ]
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
        &ws.file_sink("events-sink", "events", "out/events.jsonl"),
    );
    let host = ws.start();
    let out = ws.path("out/events.jsonl");
    let dlq = ws.path("var/dlq/rowdy.jsonl");
    host.wait_for("five good records and four dead letters", || {
        (sink_values(&out).len() == 5 && jsonl(&dlq).len() == 4).then_some(())
    });
    // An instance whose memory grew past half the cap is not reused.
    host.wait_for_log("Replacing a WASM instance whose memory grew past half its cap.");
    // Still running: a later record goes through.
    ws.append_jsonl("in/events.jsonl", &[json!({"id": "9", "action": "ok"})]);
    host.wait_for("the later record", || {
        (sink_values(&out).len() == 6).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    // The guest's stderr (here, the panic message) is in the host log, with connector and step.
    let panic_line = log
        .lines()
        .find(|l| l.contains("asked to panic by record 1") && l.contains("stream=\"stderr\""))
        .unwrap_or_else(|| panic!("no guest stderr line in the log:\n{log}"));
    assert!(
        panic_line.contains("connector=rowdy") && panic_line.contains("step=misbehave"),
        "{panic_line}"
    );
    // The SDK's `log` goes through the host's `log` import.
    assert!(
        log.lines().any(|l| l.contains("INFO")
            && l.contains("hello from record 8")
            && l.contains("connector=rowdy step=misbehave")),
        "no plugin log line in:\n{log}"
    );

    let ids: Vec<String> = sink_values(&out)
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["0", "2", "6", "7", "8", "9"], "good records in order");
    assert!(
        sink_values(&out)
            .iter()
            .all(|v| v["plugin_tag"] == "v1" || v["action"] == "grow" || v["action"] == "hello")
    );

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
        &ws.file_sink("reload-sink", "events", "out/events.jsonl"),
    );
    let host = ws.start();
    let out = ws.path("out/events.jsonl");
    host.wait_for("the first record", || {
        (sink_values(&out).len() == 1).then_some(())
    });
    assert_eq!(sink_values(&out)[0]["plugin_tag"], "v1");

    // Replace the file atomically, as a deploy would.
    let staged = ws.path("plugins/step.wasm.new");
    std::fs::copy(module("passthrough"), &staged).unwrap();
    std::fs::rename(&staged, &live).unwrap();
    // The file is checked (at most every 250 ms) when a batch arrives.
    std::thread::sleep(std::time::Duration::from_millis(300));
    ws.append_jsonl("in/events.jsonl", &[json!({"n": 2})]);
    host.wait_for_log("Reloaded the changed WASM module.");
    host.wait_for("the second record", || {
        (sink_values(&out).len() == 2).then_some(())
    });
    // A broken file is refused; the loaded version keeps running.
    std::fs::write(&live, b"not wasm at all").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ws.append_jsonl("in/events.jsonl", &[json!({"n": 3})]);
    host.wait_for_log(
        "The changed WASM module cannot be used; the previous version keeps running.",
    );
    host.wait_for("the third record", || {
        (sink_values(&out).len() == 3).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    let got = sink_values(&out);
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

fn headwater(args: &[&str], dir: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .args(args)
        .current_dir(dir)
        // Reuse compiled dependencies across runs (the scaffold is its own workspace).
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/target/scaffolds"),
        )
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plugin_new_then_build_then_test_works_from_scratch() {
    let ws = Workspace::new();
    let root = ws.path("");
    for (name, kind) in [("my-features", "transform"), ("my-check", "check")] {
        let (ok, out, err) = headwater(&["plugin", "new", name, "--kind", kind], &root);
        assert!(ok, "{out}{err}");
        assert!(out.contains("headwater plugin build"), "{out}");
        let crate_dir = root.join(name);
        let (ok, out, err) = headwater(&["plugin", "build"], &crate_dir);
        assert!(ok, "plugin build failed:\n{out}\n{err}");
        let wasm = out
            .lines()
            .find_map(|l| l.strip_prefix("built "))
            .unwrap_or_else(|| panic!("no built module in: {out}"))
            .to_owned();
        assert!(
            wasm.ends_with(&format!("{}.wasm", name.replace('-', "_"))),
            "{wasm}"
        );

        let (ok, out, err) = headwater(&["plugin", "inspect", &wasm], &crate_dir);
        assert!(ok, "{err}");
        assert!(out.contains(&format!("name:        {name}")), "{out}");

        let (ok, out, err) = headwater(
            &[
                "plugin",
                "test",
                &wasm,
                "--input",
                "sample.jsonl",
                "--config",
                "factor=3",
            ][..if kind == "transform" { 7 } else { 5 }],
            &crate_dir,
        );
        assert!(ok, "{err}");
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(err.contains("3 records"), "{err}");
        if kind == "transform" {
            assert_eq!(
                lines[0]["outputs"][0]["value"]["amount_scaled"],
                json!(37.5)
            );
            assert_eq!(
                lines[1]["outputs"][0]["value"]["amount_scaled"],
                json!(-9.0)
            );
            assert_eq!(lines[2]["outputs"], json!([]));
            assert_eq!(
                lines[2]["error"],
                "field `amount` must be a number, got \"n/a\""
            );
        } else {
            assert_eq!(lines[0]["violations"], json!([]));
            for line in &lines[1..] {
                assert_eq!(line["violations"][0]["rule"], "amount.positive", "{line}");
                assert_eq!(line["violations"][0]["severity"], "error");
            }
        }
    }
}

#[test]
fn expectations_follow_great_expectations_rules_per_batch() {
    let ws = Workspace::new();
    let input = ws.path("in/users.jsonl");
    let rows = [
        json!({"id": 1, "email": "a@x.io", "age": 30, "plan": "pro", "name": "Ann"}),
        json!({"id": 2, "email": "b@x.io", "age": 0, "plan": "free", "name": "Bo"}),
        json!({"id": 2, "email": "nope", "age": 130, "plan": "gold", "name": ""}),
        json!({"id": 4, "age": null, "plan": "free", "name": "Dee"}),
        json!({"id": 5, "email": "e@x.io", "age": "old", "plan": "free", "name": "Eve"}),
    ];
    ws.append_jsonl("in/users.jsonl", &rows);
    ws.put_config(
        "source.json",
        &json!({"name": "users", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "users",
            "transforms": "quality",
            "transforms.quality.type": "headwater.wasm.Check",
            "transforms.quality.module": module("expectations"),
            "transforms.quality.violations.error": "tag",
            "transforms.quality.config.expect.id.unique": "true",
            "transforms.quality.config.expect.email.not_null": "true",
            "transforms.quality.config.expect.email.regex": "^[^@]+@[^@]+$",
            "transforms.quality.config.expect.age.min": "0",
            "transforms.quality.config.expect.age.max": "120",
            "transforms.quality.config.expect.age.strict_min": "true",
            "transforms.quality.config.expect.plan.in_set": "free,pro",
            // One bad plan in five is within `mostly`: no plan violation.
            "transforms.quality.config.expect.plan.mostly": "0.8",
            "transforms.quality.config.expect.name.length_min": "1",
            "transforms.quality.config.expect.name.length_max": "3",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("users-sink", "users", "out/users.jsonl"),
    );
    let host = ws.start();
    let out = ws.path("out/users.jsonl");
    host.wait_for("five tagged records", || {
        (jsonl(&out).len() == 5).then_some(())
    });
    assert!(host.stop().success());
    let tags: Vec<Option<String>> = jsonl(&out)
        .iter()
        .map(|l| header(l, "headwater.quality.violations").map(str::to_owned))
        .collect();
    let expected = [
        None,
        // age 0 fails the strict minimum; id 2 occurs twice (both are flagged).
        Some("age.between,id.unique"),
        // duplicate id, bad email, age above max, empty name (plan within `mostly`).
        Some("age.between,email.regex,id.unique,name.length"),
        // missing email; a null age is skipped as in Great Expectations.
        Some("email.not_null"),
        // "old" is not a number.
        Some("age.between"),
    ];
    for (i, (got, want)) in tags.iter().zip(expected).enumerate() {
        assert_eq!(got.as_deref(), want, "record {i}");
    }

    // `plugin test --batch` judges the sample as one batch, as the connector did.
    let wasm = module("expectations");
    let args = [
        "plugin",
        "test",
        &wasm,
        "--input",
        "in/users.jsonl",
        "--batch",
        "--config",
        "expect.id.unique=true",
    ];
    let (ok, out, err) = headwater(&args, &ws.path(""));
    assert!(ok, "{err}");
    let flagged: Vec<u64> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["violations"] != json!([]))
        .map(|l| l["line"].as_u64().unwrap())
        .collect();
    assert_eq!(flagged, [2, 3]);
    assert!(err.contains("one batch"), "{err}");
}

#[test]
fn a_violation_set_to_fail_stops_the_task_before_anything_is_delivered() {
    let ws = Workspace::new();
    let input = ws.path("in/tx.jsonl");
    ws.append_jsonl(
        "in/tx.jsonl",
        &[
            json!({"id": 1, "amount": 5}),
            json!({"id": 2, "amount": -1}),
        ],
    );
    ws.put_config(
        "source.json",
        &json!({"name": "strict-quality", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": input.display().to_string(),
            "topic": "tx",
            "transforms": "quality",
            "transforms.quality.type": "headwater.wasm.Check",
            "transforms.quality.module": module("expectations"),
            "transforms.quality.config.expect.amount.min": "0",
            "transforms.quality.violations.error": "fail",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("strict-sink", "tx", "out/tx.jsonl"),
    );
    let host = ws.start();
    host.wait_for_log("Connector task failed. connector=strict-quality");
    let status = http_text(rest_port(&host), "/connectors/strict-quality/status");
    assert!(host.stop().success());
    assert!(status.contains("\"state\":\"FAILED\""), "{status}");
    assert!(
        status.contains("violated amount.between (error): `amount`: -1 is outside [0, inf]"),
        "{status}"
    );
    assert!(
        jsonl(&ws.path("out/tx.jsonl")).is_empty(),
        "nothing of the failed batch was delivered"
    );
    assert!(!ws.path("var/offsets/strict-quality.json").exists());
}
