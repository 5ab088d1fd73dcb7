//! Signals and incremental snapshots against writes that race them, a `kill -9` in the middle,
//! and bad signals. (Deterministic cases are compared with Debezium in `postgres_cdc.rs`.)

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Host, Service, Workspace, jsonl, rest_port};
use crate::postgres_cdc::{cdc_config, psql};
use crate::rest::http;

const ROWS: i64 = 20_000;

fn events(ws: &Workspace) -> Vec<Value> {
    jsonl(&ws.path("out/events.jsonl"))
}

fn reads(ws: &Workspace) -> usize {
    events(ws)
        .iter()
        .filter(|l| l["value"]["payload"]["op"] == "r")
        .count()
}

/// The table's rows, id → n.
fn table(pg: &Service) -> BTreeMap<i64, i64> {
    let out = std::process::Command::new("psql")
        .args([
            "-X",
            "-At",
            "-F",
            ",",
            "-c",
            "SELECT id, n FROM events",
            &pg.url,
        ])
        .output()
        .expect("run psql");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (id, n) = l.split_once(',')?;
            Some((id.parse().ok()?, n.parse().ok()?))
        })
        .collect()
}

/// The rows the events describe, replayed in order; panics if an `r` event carries an older
/// row than an event before it (it would overwrite a newer change), or follows its delete.
fn replay(lines: &[Value]) -> BTreeMap<i64, i64> {
    let mut rows = BTreeMap::new();
    let mut newest: BTreeMap<i64, i64> = BTreeMap::new();
    let mut deleted = std::collections::BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let payload = &line["value"]["payload"];
        let Some(op) = payload["op"].as_str() else {
            continue;
        };
        match op {
            "d" => {
                let id = payload["before"]["id"].as_i64().expect("id");
                rows.remove(&id);
                deleted.insert(id);
            }
            _ => {
                let id = payload["after"]["id"].as_i64().expect("id");
                let n = payload["after"]["n"].as_i64().expect("n");
                if op == "r" {
                    assert!(
                        !deleted.contains(&id),
                        "line {i}: a read of row {id} after its delete"
                    );
                    let seen = newest.get(&id).copied().unwrap_or(i64::MIN);
                    assert!(
                        n >= seen,
                        "line {i}: a read of row {id} with n={n} after n={seen}"
                    );
                }
                let entry = newest.entry(id).or_insert(n);
                *entry = (*entry).max(n);
                rows.insert(id, n);
            }
        }
    }
    rows
}

fn post_signal(host: &Host, body: Value) -> (u16, Value) {
    http(
        rest_port(host),
        "POST",
        "/connectors/events-cdc/signals",
        Some(&body),
    )
}

#[test]
fn an_incremental_snapshot_racing_writes_and_a_kill_9_delivers_every_row_and_no_stale_read() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        &format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, n int NOT NULL); \
             INSERT INTO events SELECT g, 0 FROM generate_series(1, {ROWS}) g; \
             CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, \
             data varchar(2048));"
        ),
    );
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &cdc_config(
            &pg,
            "events-cdc",
            "app",
            "public.events",
            json!({"snapshot.mode": "no_data", "signal.data.collection": "public.debezium_signal",
                   "incremental.snapshot.chunk.size": "500", "max.batch.size": "256"}),
        ),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("events-sink", "app.public.events", "out/events.jsonl"),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");

    // Bad signals are refused or logged, and change nothing.
    let (code, _) = post_signal(&host, json!({"data": {}}));
    assert_eq!(code, 400, "a signal without a type");
    assert_eq!(
        post_signal(&host, json!({"type": "reboot", "id": "bad-1"})).0,
        202
    );
    host.wait_for_log("unknown signal type \"reboot\"");
    let nope = json!({"type": "execute-snapshot", "data": {"data-collections": ["public.nope"]}});
    assert_eq!(post_signal(&host, nope).0, 202);
    host.wait_for_log("execute-snapshot: nothing to snapshot");
    let sink = http(
        rest_port(&host),
        "POST",
        "/connectors/events-sink/signals",
        Some(&json!({"type": "log", "data": {"message": "hi"}})),
    );
    assert_eq!(sink.0, 400, "a sink reads no signals: {}", sink.1);

    // Writes race the snapshot: every row is updated or deleted, each in its own transaction.
    let writer = {
        let url = pg.url.clone();
        std::thread::spawn(move || {
            let sql = format!(
                "DO $$ BEGIN FOR i IN 1..6000 LOOP \
                   UPDATE events SET n = n + 1 WHERE id = (i * 7919) % {ROWS} + 1; \
                   IF i % 40 = 0 THEN DELETE FROM events WHERE id = (i * 104729) % {ROWS} + 1; END IF; \
                   COMMIT; END LOOP; END $$;"
            );
            let out = std::process::Command::new("psql")
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", &sql, &url])
                .output()
                .expect("run psql");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
    };
    let execute = json!({"type": "execute-snapshot", "id": "backfill-1",
                         "data": {"data-collections": ["public\\.ev.*"], "type": "incremental"}});
    assert_eq!(post_signal(&host, execute).0, 202);
    host.wait_for("part of the snapshot", || {
        (reads(&ws) >= 6_000).then_some(())
    });
    host.kill9();

    // Restarted, it resumes after the last row it emitted, not from the start.
    let host = ws.start();
    host.wait_for_log("Incremental snapshot in progress: reading its next chunk.");
    host.wait_for_log("Incremental snapshot completed.");
    writer.join().expect("the writer finished");
    let expected = table(&pg);
    host.wait_for("the stream to catch up", || {
        (replay(&events(&ws)) == expected).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
    let lines = events(&ws);
    assert_eq!(replay(&lines), expected, "the events give the table");
    let reads = reads(&ws);
    assert!(
        reads < (ROWS as usize) * 3 / 2,
        "rows read again after the crash are bounded by what was in flight, got {reads} reads"
    );
    // Progress is in Debezium's offset keys while it runs, and gone once it completed.
    let offsets: Value = serde_json::from_slice(
        &std::fs::read(ws.path("var/offsets/events-cdc.json")).expect("offsets file"),
    )
    .unwrap();
    let offset = &offsets["offsets"][0]["offset"];
    assert!(
        offset.get("incremental_snapshot_collections").is_none(),
        "{offset}"
    );
    assert!(offset["lsn"].is_u64(), "{offset}");
}
