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

/// Where the stateful plugin runs: in the source connector's chain, or in the sink's (fed by
/// the source on the embedded bus, acknowledging a batch only once a checkpoint holds it).
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Source,
    Sink,
}

fn plugin_workspace(place: Place) -> Workspace {
    let ws = Workspace::new();
    fs::create_dir_all(ws.path("in")).unwrap();
    let plugin = json!({
        "transforms": "rolling",
        "transforms.rolling.type": "headwater.wasm.Transform",
        "transforms.rolling.module": module("rolling_aggregate"),
        "transforms.rolling.config.window.ms": WINDOW.to_string(),
    });
    let mut source = json!({"name": "tx", "config": {
        "connector.class": "headwater.file.FileSource",
        "path": ws.path("in/*.jsonl").display().to_string(),
        "topic": "tx",
        "timestamp.field": "ts",
        "batch.max.records": "250",
        "poll.interval.ms": "50",
    }});
    let mut sink = ws.file_sink("rolling", "tx", "out/rolling.jsonl");
    let chain = match place {
        Place::Source => &mut source,
        Place::Sink => &mut sink,
    };
    for (k, v) in plugin.as_object().unwrap() {
        chain["config"][k] = v.clone();
    }
    ws.put_config("tx.json", &source);
    ws.put_config("out.json", &sink);
    ws
}

/// Three runs, two ended by `kill -9` after a checkpoint; every output equals the reference.
fn survives_kill_9(place: Place) {
    let expected = reference();
    let ws = plugin_workspace(place);
    let total = FILES * PER_FILE as usize;
    let seen = |ws: &Workspace| -> usize {
        outputs(ws)
            .iter()
            .map(|v| v["id"].as_i64().unwrap())
            .collect::<HashSet<_>>()
            .len()
    };
    // The source's offsets move only with checkpoints: of its own state, or of the sink's
    // (the sink acknowledges a batch once a checkpoint holds it).
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
fn a_stateful_plugin_keeps_exact_state_across_kill_9() {
    survives_kill_9(Place::Source);
}

#[test]
fn a_stateful_plugin_in_a_sink_fed_by_a_file_source_keeps_exact_state_across_kill_9() {
    survives_kill_9(Place::Sink);
}
