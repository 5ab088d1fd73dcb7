//! A stateful WASM transform (`plugins/rolling-aggregate`, built on `headwater_sdk::state`):
//! per-user rolling aggregates over transaction files, checked against a plain computation,
//! through two `kill -9`s: its state comes back as of the last checkpoint, so every output,
//! including those of replayed records, carries the right values.

use std::collections::{HashMap, HashSet};
use std::fs;

use serde_json::{Value, json};

use crate::harness::{Workspace, sink_values};
use crate::wasm::module;

const FILES: usize = 4;
const PER_FILE: i64 = 5_000;
const WINDOW: i64 = 600_000;

/// Transaction `i`: 200 ms apart, up to 3 s out of order, 150 users, amounts 1..100.
fn transaction(i: i64) -> (String, f64, i64) {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (
        format!("u{}", (h >> 20) % 150),
        1.0 + ((h >> 40) % 100) as f64,
        1_767_225_600_000 + i * 200 - (h % 3000) as i64,
    )
}

fn write_file(ws: &Workspace, file: usize) {
    let mut text = String::new();
    for i in file as i64 * PER_FILE..(file as i64 + 1) * PER_FILE {
        let (user, amount, ts) = transaction(i);
        text.push_str(&json!({"id": i, "user_id": user, "amount": amount, "ts": ts}).to_string());
        text.push('\n');
    }
    let tmp = ws.path(&format!("in/.tx-{file}.tmp"));
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, ws.path(&format!("in/tx-{file}.jsonl"))).unwrap();
}

/// (count, sum, max) per transaction id, as the plugin defines them, in file order.
fn reference() -> HashMap<i64, (u64, f64, f64)> {
    let mut recent: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
    let mut out = HashMap::new();
    for i in 0..FILES as i64 * PER_FILE {
        let (user, amount, t) = transaction(i);
        let events = recent.entry(user).or_default();
        events.push((t, amount));
        let newest = events.iter().map(|e| e.0).max().unwrap();
        events.retain(|(at, _)| *at > newest - WINDOW);
        let current: Vec<f64> = events
            .iter()
            .filter(|(at, _)| *at > t - WINDOW && *at <= t)
            .map(|e| e.1)
            .collect();
        let max = current.iter().cloned().fold(f64::MIN, f64::max);
        out.insert(i, (current.len() as u64, current.iter().sum(), max));
    }
    out
}

fn outputs(ws: &Workspace) -> Vec<Value> {
    sink_values(&ws.path("out/rolling.jsonl"))
}

#[test]
fn a_stateful_plugin_keeps_exact_state_across_kill_9() {
    let expected = reference();
    let ws = Workspace::new();
    fs::create_dir_all(ws.path("in")).unwrap();
    ws.put_config(
        "tx.json",
        &json!({"name": "tx", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/*.jsonl").display().to_string(),
            "topic": "tx",
            "timestamp.field": "ts",
            "batch.max.records": "250",
            "poll.interval.ms": "50",
            "transforms": "rolling",
            "transforms.rolling.type": "headwater.wasm.Transform",
            "transforms.rolling.module": module("rolling_aggregate"),
            "transforms.rolling.config.window.ms": WINDOW.to_string(),
        }}),
    );
    ws.put_config(
        "out.json",
        &ws.file_sink("rolling", "tx", "out/rolling.jsonl"),
    );
    let total = FILES * PER_FILE as usize;
    let seen = |ws: &Workspace| -> usize {
        outputs(ws)
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect::<HashSet<_>>()
            .len()
    };
    // Offsets of a stateful source are written only at checkpoints, with the state.
    let checkpointed = |ws: &Workspace| -> String {
        fs::read_to_string(ws.path("var/offsets/tx.json")).unwrap_or_default()
    };
    write_file(&ws, 0);
    let host = ws.start();
    host.wait_for("a checkpoint", || {
        (!checkpointed(&ws).is_empty()).then_some(())
    });
    host.kill9();
    let first = checkpointed(&ws);
    write_file(&ws, 1);
    write_file(&ws, 2);
    let host = ws.start();
    host.wait_for("a checkpoint past the first crash", || {
        (checkpointed(&ws) != first).then_some(())
    });
    host.kill9();
    write_file(&ws, 3);
    let host = ws.start();
    host.wait_for("every transaction", || (seen(&ws) == total).then_some(()));
    assert!(host.stop().success());

    for v in outputs(&ws) {
        let id = v["id"].as_i64().unwrap();
        let (count, sum, max) = expected[&id];
        assert_eq!(
            v["tx_count_24h"].as_u64().unwrap(),
            count,
            "transaction {id}: {v}"
        );
        assert!(
            (v["amount_sum_24h"].as_f64().unwrap() - sum).abs() < 1e-6,
            "{id}: {v}"
        );
        assert_eq!(v["amount_max_24h"].as_f64().unwrap(), max, "{id}: {v}");
    }
}

#[test]
fn a_stateful_plugin_is_refused_in_a_sink() {
    let ws = Workspace::new();
    let mut sink = ws.file_sink("sink", "tx", "out/x.jsonl");
    sink["config"]["transforms"] = json!("rolling");
    sink["config"]["transforms.rolling.type"] = json!("headwater.wasm.Transform");
    sink["config"]["transforms.rolling.module"] = json!(module("rolling_aggregate"));
    ws.put_config("sink.json", &sink);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("validate")
        .arg(ws.connectors_dir().join("sink.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("stateful WASM plugin"), "{text}");
    assert!(text.contains("source connector"), "{text}");
}
