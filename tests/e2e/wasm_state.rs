//! A stateful WASM transform (`plugins/rolling-aggregate`, built on `headwater_sdk::state`):
//! per-user rolling aggregates over transaction files, checked against a plain computation,
//! through two `kill -9`s: its state comes back as of the last checkpoint, so every output,
//! including those of replayed records, carries the right values.

use std::collections::{HashMap, HashSet};
use std::fs;

use serde_json::{Value, json};

use crate::harness::{Service, Workspace, jsonl, sink_values};
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

/// The sink's values: the payloads of its JSON-with-schema lines, or, with a schemaless value
/// converter (the Kafka-fed sink), the values themselves.
/// How many distinct transactions the sink has written.
fn seen(ws: &Workspace) -> usize {
    outputs(ws)
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect::<HashSet<_>>()
        .len()
}

fn outputs(ws: &Workspace) -> Vec<Value> {
    let path = ws.path("out/rolling.jsonl");
    let with_schema = sink_values(&path);
    if with_schema.iter().all(Value::is_object) {
        return with_schema;
    }
    jsonl(&path)
        .into_iter()
        .map(|l| l["value"].clone())
        .collect()
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
    assert_outputs_match(&ws, &expected);
}

/// Every output (replayed records' included) carries the reference's values.
fn assert_outputs_match(ws: &Workspace, expected: &HashMap<i64, (u64, f64, f64)>) {
    for v in outputs(ws) {
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

/// The plugin in a sink reading a 4-partition topic keyed by user with `tasks.max` 2: its
/// state is kept per partition (each user's in one), through a `kill -9`.
#[test]
fn a_stateful_plugin_keeps_exact_state_per_kafka_partition_across_kill_9() {
    const PARTITIONS: i64 = 4;
    let expected = reference();
    let broker = Service::start("tansu");
    crate::kafka::client(&["create", &broker.url, "tx", &PARTITIONS.to_string()]);
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    let mut sink = ws.file_sink("rolling", "tx", "out/rolling.jsonl");
    for (k, v) in [
        ("tasks.max", json!("2")),
        ("transforms", json!("rolling")),
        ("transforms.rolling.type", json!("headwater.wasm.Transform")),
        (
            "transforms.rolling.module",
            json!(module("rolling_aggregate")),
        ),
        (
            "transforms.rolling.config.window.ms",
            json!(WINDOW.to_string()),
        ),
        (
            "key.converter",
            json!("org.apache.kafka.connect.storage.StringConverter"),
        ),
        (
            "value.converter",
            json!("org.apache.kafka.connect.json.JsonConverter"),
        ),
        ("value.converter.schemas.enable", json!("false")),
    ] {
        sink["config"][k] = v;
    }
    ws.put_config("out.json", &sink);
    let produce = |ids: std::ops::Range<i64>| {
        let records = ids.map(|i| {
            let (user, amount, ts) = transaction(i);
            let n: i64 = user.trim_start_matches('u').parse().unwrap();
            let value = json!({"id": i, "user_id": user, "amount": amount, "ts": ts});
            // The plugin's time is the record's: the message timestamp, as a FileSource's
            // `timestamp.field` gives it.
            ((n % PARTITIONS) as i32, user, value.to_string(), Some(ts))
        });
        crate::kafka::produce_one_per_batch(&broker.url, "tx", records);
    };
    let total = FILES as i64 * PER_FILE;
    let host = ws.start();
    crate::kafka::wait_for_partitions(&host);
    produce(0..total / 2);
    host.wait_for("some outputs", || {
        (seen(&ws) * 4 > total as usize).then_some(())
    });
    host.kill9();
    std::thread::sleep(crate::kafka::SESSION_EXPIRY);
    let host = ws.start();
    crate::kafka::wait_for_partitions(&host);
    produce(total / 2..total);
    host.wait_for("every transaction", || {
        (seen(&ws) == total as usize).then_some(())
    });
    assert!(host.stop().success());
    assert_outputs_match(&ws, &expected);
    // Each partition's state under its own name, the unit a host owns.
    let store = headwater::state::StateStore::open(&ws.path("var/state/rolling.redb")).unwrap();
    let tables = store.tables().unwrap();
    for p in 0..PARTITIONS {
        let name = format!("wasm:rolling@tx-{p}");
        assert!(tables.contains(&name), "{name} in {tables:?}");
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
