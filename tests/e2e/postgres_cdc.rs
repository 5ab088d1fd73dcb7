//! `io.debezium.connector.postgresql.PostgresConnector` against a real PostgreSQL, compared
//! record for record with genuine Debezium 3.6 output (`host/testdata/cdc/`), after masking
//! the fields that differ between any two runs (the oracle's `normalize.py` list).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::harness::{Host, Service, Workspace, jsonl};

fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cdc")
}

/// A PostgresConnector config for the test server's `postgres` database: capture `table`
/// under `prefix`, with a slot and publication named after the connector, plus `extra` keys.
pub fn cdc_config(pg: &Service, name: &str, prefix: &str, table: &str, extra: Value) -> Value {
    let slot = name.replace('-', "_");
    let mut config = json!({"name": name, "config": {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": pg.port.to_string(),
        "database.user": "postgres",
        "database.dbname": "postgres",
        "topic.prefix": prefix,
        "slot.name": slot,
        "publication.name": slot,
        "publication.autocreate.mode": "filtered",
        "table.include.list": table,
    }});
    if let (Some(config), Some(extra)) = (config["config"].as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

/// A workspace where `<name>-cdc` captures `table` (prefix `app`, `extra` keys) and
/// `<name>-sink` writes its topic to `out/<name>.jsonl`.
pub fn cdc_to_file(pg: &Service, name: &str, table: &str, extra: Value) -> Workspace {
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &cdc_config(pg, &format!("{name}-cdc"), "app", table, extra),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink(
            &format!("{name}-sink"),
            &format!("app.{table}"),
            &format!("out/{name}.jsonl"),
        ),
    );
    ws
}

/// Runs SQL (a file or a statement) against `db`.
pub fn psql(pg: &Service, db: &str, sql: &str) {
    let base = pg.url.rsplit_once('/').map_or(pg.url.as_str(), |(b, _)| b);
    let url = format!("{base}/{db}");
    let source = if Path::new(sql).is_file() { "-f" } else { "-c" };
    run_psql(&["-q", "-v", "ON_ERROR_STOP=1", source, sql, &url]);
}

/// Runs SQL against `pg` on a thread of its own (writes that race the connector); the handle
/// panics on join if psql failed.
pub fn psql_in_background(pg: &Service, sql: String) -> std::thread::JoinHandle<()> {
    let url = pg.url.clone();
    std::thread::spawn(move || {
        run_psql(&["-q", "-v", "ON_ERROR_STOP=1", "-c", &sql, &url]);
    })
}

/// What a query returns, as psql prints it unaligned (`-At`, fields separated by commas).
pub fn query(pg: &Service, sql: &str) -> String {
    run_psql(&["-At", "-F", ",", "-c", sql, &pg.url])
}

/// Runs psql (without `~/.psqlrc`) and returns what it printed; panics with its errors if it
/// failed.
fn run_psql(args: &[&str]) -> String {
    let out = Command::new("psql")
        .arg("-X")
        .args(args)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Debezium properties file as a Kafka Connect JSON config, pointed at `pg`.
fn properties_config(file: &str, pg: &Service) -> Value {
    let text = std::fs::read_to_string(cases().join(file)).expect("read properties");
    let mut config = Map::new();
    let mut name = String::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
    {
        let (k, v) = line.split_once('=').expect("key=value");
        if k == "name" {
            name = v.to_owned();
            continue;
        }
        let v = if v == "PORT" {
            pg.port.to_string()
        } else {
            v.to_owned()
        };
        config.insert(k.to_owned(), Value::String(v));
    }
    json!({"name": name, "config": config})
}

/// Replaces what changes from run to run, exactly as `normalize.py` does.
fn mask(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let volatile = matches!(
                    k.as_str(),
                    "ts_ms"
                        | "ts_us"
                        | "ts_ns"
                        | "txId"
                        | "lsn"
                        | "sequence"
                        | "__debezium.context.runId"
                ) || (k == "id" && v.as_str().is_some_and(|s| s.contains(':') || is_uuid(s)))
                    // Notifications' time, watermark rows' times.
                    || k == "timestamp"
                    || (k == "data"
                        && v.as_str().is_some_and(|s| s.contains("openWindowTimestamp")));
                if volatile {
                    *v = json!("<v>");
                } else {
                    mask(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask),
        _ => {}
    }
}

/// A random id (a notification's, a chunk's), with the `-open` / `-close` of watermark rows.
fn is_uuid(s: &str) -> bool {
    let s = s
        .strip_suffix("-open")
        .or_else(|| s.strip_suffix("-close"))
        .unwrap_or(s);
    s.len() == 36 && s.bytes().filter(|&b| b == b'-').count() == 4
}

/// A Debezium golden line as comparable parts: topic, key, value, and header payloads.
fn golden_record(line: &Value) -> Value {
    let headers: Map<String, Value> = line["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v["payload"].clone()))
                .collect()
        })
        .unwrap_or_default();
    let mut record = json!({"topic": line["topic"], "key": line["key"], "value": line["value"], "headers": headers});
    mask(&mut record);
    record
}

/// A FileSink line in the same shape. Header values are text (SimpleHeaderConverter): JSON
/// when they parse as an object, strings otherwise.
fn our_record(line: &Value) -> Value {
    let headers: Map<String, Value> = line["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let text = h["value"].as_str().unwrap_or_default();
                    let value = match serde_json::from_str::<Value>(text) {
                        Ok(v @ Value::Object(_)) => v,
                        _ => Value::String(text.to_owned()),
                    };
                    (h["key"].as_str().unwrap_or_default().to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut record = json!({"topic": line["topic"], "key": line["key"], "value": line["value"], "headers": headers});
    mask(&mut record);
    record
}

fn assert_same(ours: &[Value], golden: &[Value]) {
    for (i, (o, g)) in ours.iter().zip(golden).enumerate() {
        let (o, g) = (our_record(o), golden_record(g));
        if o != g {
            let diff = first_difference(&o, &g, String::new()).unwrap_or_default();
            panic!(
                "record {i} differs from Debezium's at {diff}\nours:   {}\ngolden: {}",
                serde_json::to_string(&o).unwrap(),
                serde_json::to_string(&g).unwrap()
            );
        }
    }
    assert_eq!(ours.len(), golden.len(), "as many records as Debezium");
}

/// The path of the first difference between two JSON trees.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let here = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => {
                        if let Some(d) = first_difference(p, q, here) {
                            return Some(d);
                        }
                    }
                    (p, q) => return Some(format!("{here}: {p:?} vs {q:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| first_difference(p, q, format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: {a} vs {b}")),
    }
}

fn output_lines(ws: &Workspace) -> Vec<Value> {
    jsonl(&ws.path("out/cdc.jsonl"))
}

fn wait_for_lines(host: &Host, ws: &Workspace, n: usize) {
    host.wait_for(&format!("{n} records"), || {
        (output_lines(ws).len() >= n).then_some(())
    });
}

/// Runs a case: setup SQL, the connector, the snapshot, the changes; then compares.
fn run_case(
    config: impl FnOnce(&Service) -> Value,
    setup: &Path,
    changes: &Path,
    golden: &Path,
    topics_regex: &str,
) {
    run_case_in(
        Order::AsEmitted,
        config,
        setup,
        changes,
        golden,
        topics_regex,
    );
}

/// How records are compared with Debezium's.
#[derive(Clone, Copy, PartialEq)]
enum Order {
    /// In the order emitted.
    AsEmitted,
    /// In the order emitted within each topic (where the interleaving of topics legitimately
    /// differs).
    ByTopic,
}

fn run_case_in(
    order: Order,
    config: impl FnOnce(&Service) -> Value,
    setup: &Path,
    changes: &Path,
    golden: &Path,
    topics_regex: &str,
) {
    let pg = Service::start("postgres");
    psql(&pg, "postgres", "CREATE DATABASE goldendb");
    psql(&pg, "goldendb", &setup.display().to_string());
    let golden: Vec<Value> = jsonl(golden);
    let snapshot = initial_reads(&golden);

    let ws = Workspace::new();
    ws.put_config("cdc.json", &config(&pg));
    let mut sink = ws.file_sink("cdc-sink", "unused", "out/cdc.jsonl");
    sink["config"].as_object_mut().unwrap().remove("topics");
    sink["config"]["topics.regex"] = json!(topics_regex);
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    wait_for_lines(&host, &ws, snapshot);
    psql(&pg, "goldendb", &changes.display().to_string());
    wait_for_lines(&host, &ws, golden.len());
    // Anything extra would show up now.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(host.stop().success());
    let arranged = |mut lines: Vec<Value>| {
        if order == Order::ByTopic {
            // A stable sort: each topic's records keep their order.
            lines.sort_by(|a, b| a["topic"].as_str().cmp(&b["topic"].as_str()));
        }
        lines
    };
    assert_same(&arranged(output_lines(&ws)), &arranged(golden));
}

#[test]
fn the_shared_golden_set_matches_debezium_record_for_record() {
    let dir = cases().join("golden");
    let base: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("debezium-config.json")).unwrap())
            .unwrap();
    run_case(
        |pg| {
            // The config names the oracle's server; the test's is elsewhere.
            let mut config = base;
            config["config"]["database.port"] = json!(pg.port.to_string());
            config
        },
        &dir.join("setup.sql"),
        &dir.join("changes.sql"),
        &dir.join("all-records.jsonl"),
        "dbserver1\\..*",
    );
}

fn types_case(properties: &str, golden: &str, prefix: &str) {
    let dir = cases();
    run_case(
        |pg| properties_config(properties, pg),
        &dir.join("types-setup.sql"),
        &dir.join("types-changes.sql"),
        &dir.join(golden),
        &format!("{prefix}\\..*"),
    );
}

/// A case whose files are all named after it: `<name>.properties`, `<name>-setup.sql`,
/// `<name>-changes.sql`, `<name>.jsonl`.
fn types_like_case(properties: &str, name: &str, prefix: &str) {
    let dir = cases();
    run_case(
        |pg| properties_config(properties, pg),
        &dir.join(format!("{name}-setup.sql")),
        &dir.join(format!("{name}-changes.sql")),
        &dir.join(format!("{name}.jsonl")),
        &format!("{prefix}\\..*"),
    );
}

#[test]
fn more_types_with_transaction_metadata_and_no_tombstones_match_debezium() {
    types_case("types.properties", "types.jsonl", "kinds");
}

#[test]
fn string_decimals_connect_times_hex_binary_and_string_intervals_match_debezium() {
    types_case("modes.properties", "modes.jsonl", "modes");
}

#[test]
fn double_decimals_microsecond_times_and_base64_binary_match_debezium() {
    types_case("micros.properties", "micros.jsonl", "micros");
}

/// Transaction metadata as Debezium gives it: a key change inside a transaction (a delete, its
/// tombstone and a create, each counted), a transaction over two tables, a TRUNCATE alone in
/// its transaction (skipped: BEGIN and an END counting 0) and among other changes, single
/// statements.
#[test]
fn transaction_metadata_of_key_changes_truncates_and_two_tables_matches_debezium() {
    txmeta_case("txmeta.properties", "txmeta.jsonl", "txmeta");
}

/// The same changes without tombstones, and with TRUNCATE emitted (`skipped.operations=none`).
#[test]
fn transaction_metadata_without_tombstones_and_with_truncates_matches_debezium() {
    txmeta_case("txmeta-quiet.properties", "txmeta-quiet.jsonl", "txquiet");
}

/// Types Debezium maps its own way: bit(1) as a boolean, bit(n) and varbit as `Bits`, hstore as
/// JSON, ltree, point as a `Point` struct, ranges, MAC addresses, oid, char, name; the
/// geometric types it does not know are left out.
#[test]
fn bits_hstore_ltree_points_ranges_and_unknown_types_match_debezium() {
    types_like_case("shapes.properties", "shapes", "shapes");
}

/// The same with `include.unknown.datatypes=true`: the geometric columns come as the bytes of
/// their text, as Debezium writes it.
#[test]
fn unknown_types_kept_as_bytes_match_debezium() {
    let dir = cases();
    run_case(
        |pg| properties_config("shapes-unknown.properties", pg),
        &dir.join("shapes-setup.sql"),
        &dir.join("shapes-changes.sql"),
        &dir.join("shapes-unknown.jsonl"),
        "unknowns\\..*",
    );
}

/// A partitioned table captured by its own name with `publish.via.partition.root=true`: its
/// partitions' changes, a row moving between partitions included, come under its topic.
#[test]
fn a_partitioned_table_published_via_its_root_matches_debezium() {
    types_like_case("partitions.properties", "partitions", "parts");
}

/// An incremental snapshot started by an `execute-snapshot` signal inserted into the
/// signalling table, in chunks of 4 rows, with an update in the signal's transaction (so
/// Debezium's chunks read it, deterministically); the watermark rows and the notifications of
/// both snapshots (`notification.enabled.channels=sink,log`) included.
#[test]
fn an_incremental_snapshot_signalled_through_the_signalling_table_matches_debezium() {
    incremental_case("incremental");
}

/// Signals controlling it, in fixed places: `execute-snapshot` of two tables with an
/// `additional-conditions` filter, `pause-snapshot` and `stop-snapshot` (one table) in its
/// transaction (they apply at the next chunk), an update while paused (read by a later
/// chunk), then `resume-snapshot` and `log`; windows closed by deleting their opening row
/// (`insert_delete`), chunks of 3.
#[test]
fn an_incremental_snapshot_paused_resumed_stopped_and_filtered_matches_debezium() {
    incremental_case("incremental-control");
}

/// `read.only=true`: the same snapshot with no watermark written. Debezium emits the first
/// chunk before the signal's own row and Headwater after it (each once the stream has passed
/// the chunk), so the records are compared topic by topic.
#[test]
fn a_read_only_incremental_snapshot_matches_debezium_topic_by_topic() {
    let dir = cases();
    run_case_in(
        Order::ByTopic,
        |pg| properties_config("incremental-readonly.properties", pg),
        &dir.join("incremental-setup.sql"),
        &dir.join("incremental-readonly-changes.sql"),
        &dir.join("incremental-readonly.jsonl"),
        "inc.*",
    );
}

/// The initial snapshot's rows of a golden capture (incremental snapshots come with the
/// changes).
fn initial_reads(golden: &[Value]) -> usize {
    golden
        .iter()
        .filter(|l| {
            l["value"]["payload"]["op"] == "r"
                && l["value"]["payload"]["source"]["snapshot"] != "incremental"
        })
        .count()
}

fn incremental_case(name: &str) {
    let dir = cases();
    run_case(
        |pg| properties_config(&format!("{name}.properties"), pg),
        &dir.join(format!("{name}-setup.sql")),
        &dir.join(format!("{name}-changes.sql")),
        &dir.join(format!("{name}.jsonl")),
        "inc.*",
    );
}

fn txmeta_case(properties: &str, golden: &str, prefix: &str) {
    let dir = cases();
    run_case(
        |pg| properties_config(properties, pg),
        &dir.join("txmeta-setup.sql"),
        &dir.join("txmeta-changes.sql"),
        &dir.join(golden),
        &format!("{prefix}\\..*"),
    );
}

fn count_lines(path: &Path) -> usize {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0;
    while let Ok(read) = file.read(&mut buf) {
        if read == 0 {
            break;
        }
        n += buf[..read].iter().filter(|&&b| b == b'\n').count();
    }
    n
}

/// `digest.py`'s digest of a capture: its records without schemas, masked.
fn digest(path: &Path) -> String {
    let out = Command::new("python3")
        .arg(cases().join("digest.py"))
        .arg(path)
        .output()
        .expect("run python3 digest.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn a_100k_row_snapshot_matches_debezium_by_digest() {
    let dir = cases();
    let pg = Service::start("postgres");
    psql(&pg, "postgres", "CREATE DATABASE goldendb");
    psql(
        &pg,
        "goldendb",
        &dir.join("snapshot-100k-setup.sql").display().to_string(),
    );
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &properties_config("snapshot-100k.properties", &pg),
    );
    // Debezium's output for these rows is 388 MB, mostly the same schema 100,000 times: the
    // schemas are checked by the other cases, the data here, by digest.
    let mut sink = ws.file_sink("wide-sink", "big.public.wide", "out/cdc.jsonl");
    sink["config"]["key.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
    sink["config"]["key.converter.schemas.enable"] = json!("false");
    sink["config"]["value.converter"] = json!("org.apache.kafka.connect.json.JsonConverter");
    sink["config"]["value.converter.schemas.enable"] = json!("false");
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    let out = ws.path("out/cdc.jsonl");
    host.wait_for("100,000 snapshot records", || {
        (count_lines(&out) >= 100_000).then_some(())
    });
    assert!(host.stop().success());
    assert_eq!(count_lines(&out), 100_000, "each row once");
    let golden = std::fs::read_to_string(dir.join("snapshot-100k.sha256")).unwrap();
    assert_eq!(
        digest(&out),
        golden.trim(),
        "the snapshot's records equal Debezium's, in order"
    );
}

#[test]
fn columns_added_and_dropped_while_streaming_excluded_columns_and_chosen_keys_match_debezium() {
    types_like_case("evolve.properties", "evolve", "evolve");
}
