//! Signals and incremental snapshots against writes that race them, a `kill -9` in the middle,
//! and bad signals. (Deterministic cases are compared with Debezium in `postgres_cdc.rs`.)

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Host, Service, Workspace, jsonl, rest_port};
use crate::postgres_cdc::{cdc_config, cdc_to_file, psql, psql_in_background, query};
use crate::rest::http;

const ROWS: i64 = 50_000;

fn events(ws: &Workspace) -> Vec<Value> {
    jsonl(&ws.path("out/events.jsonl"))
}

fn reads(ws: &Workspace) -> usize {
    events(ws)
        .iter()
        .filter(|l| payload(l)["op"] == "r")
        .count()
}

/// An event's envelope, with or without schemas (`value.converter.schemas.enable`).
fn payload(line: &Value) -> &Value {
    let value = &line["value"];
    value.get("payload").unwrap_or(value)
}

/// The table's rows, id → n.
fn table(pg: &Service) -> BTreeMap<i64, i64> {
    query(pg, "SELECT id, n FROM events")
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
        let payload = payload(line);
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

/// Whether the committed offset holds a snapshot's progress (the key of a row emitted).
fn progress_committed(ws: &Workspace) -> bool {
    std::fs::read_to_string(ws.path("var/offsets/events-cdc.json"))
        .is_ok_and(|text| text.contains("\"incremental_snapshot_primary_key\":\"["))
}

/// SQL creating table `events` with `rows` rows `(id, 0)`.
fn events_table(rows: i64) -> String {
    format!(
        "CREATE TABLE events (id bigint PRIMARY KEY, n int NOT NULL); \
         INSERT INTO events SELECT g, 0 FROM generate_series(1, {rows}) g;"
    )
}

fn post_signal(host: &Host, body: Value) -> (u16, Value) {
    http(
        rest_port(host),
        "POST",
        "/connectors/events-cdc/signals",
        Some(&body),
    )
}

/// Starts writes that race the snapshot (every row updated or deleted, each in its own
/// transaction), has `host` snapshot `events` incrementally, kills it once its progress is
/// committed and restarts it; then checks that the events give the table, with no stale read,
/// and that rows were not all read again.
fn race_a_snapshot_through_a_kill_9(pg: &Service, ws: &Workspace, host: Host) {
    let writer = psql_in_background(
        pg,
        format!(
            "DO $$ BEGIN FOR i IN 1..6000 LOOP \
               UPDATE events SET n = n + 1 WHERE id = (i * 7919) % {ROWS} + 1; \
               IF i % 40 = 0 THEN DELETE FROM events WHERE id = (i * 104729) % {ROWS} + 1; END IF; \
               COMMIT; END LOOP; END $$;"
        ),
    );
    let execute = json!({"type": "execute-snapshot", "id": "backfill-1",
                         "data": {"data-collections": ["public\\.ev.*"], "type": "incremental"}});
    assert_eq!(post_signal(&host, execute).0, 202);
    // Chunks of 100 take it some seconds: killed once its progress is committed, it is
    // still under way.
    host.wait_for("the snapshot's progress in the offsets", || {
        progress_committed(ws).then_some(())
    });
    host.kill9();

    // Restarted, it resumes after the last row it emitted, not from the start.
    let host = ws.start();
    host.wait_for_log("Incremental snapshot in progress: reading its next chunk.");
    host.wait_for_log("Incremental snapshot completed.");
    writer.join().expect("the writer finished");
    let expected = table(pg);
    host.wait_for("the stream to catch up", || {
        (replay(&events(ws)) == expected).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
    let lines = events(ws);
    assert_eq!(replay(&lines), expected, "the events give the table");
    let reads = reads(ws);
    assert!(
        reads < (ROWS as usize) * 3 / 2,
        "rows read again after the crash are bounded by what was in flight, got {reads} reads"
    );
}

#[test]
fn a_read_only_incremental_snapshot_writes_nothing_and_survives_racing_writes_and_a_kill_9() {
    let pg = Service::start("postgres");
    // The connector's user may read the table and stream, nothing else; the publication is
    // the administrator's.
    psql(
        &pg,
        "postgres",
        &format!(
            "{} \
             CREATE PUBLICATION events_cdc FOR TABLE events; \
             CREATE ROLE reader LOGIN REPLICATION; GRANT SELECT ON events TO reader;",
            events_table(ROWS)
        ),
    );
    // A second slot sees everything written to the database from here on.
    psql(
        &pg,
        "postgres",
        "SELECT pg_create_logical_replication_slot('everything', 'test_decoding')",
    );
    let ws = cdc_to_file(
        &pg,
        "events",
        "public.events",
        json!({"database.user": "reader", "read.only": "true",
               "publication.autocreate.mode": "disabled", "snapshot.mode": "no_data",
               "heartbeat.interval.ms": "200",
               "incremental.snapshot.chunk.size": "400", "max.batch.size": "256"}),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");
    race_a_snapshot_through_a_kill_9(&pg, &ws, host);

    // Nothing but the writer's changes went through the WAL: no watermark, no heartbeat
    // marker, no signalling row.
    let written = query(
        &pg,
        "SELECT data FROM pg_logical_slot_peek_changes('everything', NULL, NULL) \
         WHERE data NOT LIKE 'BEGIN %' AND data NOT LIKE 'COMMIT %' \
           AND data NOT LIKE 'table public.events: %'",
    );
    assert!(written.trim().is_empty(), "written by Headwater: {written}");
}

#[test]
fn an_incremental_snapshot_racing_writes_and_a_kill_9_delivers_every_row_and_no_stale_read() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        &format!(
            "{} \
             CREATE TABLE debezium_signal (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, \
             data varchar(2048));",
            events_table(ROWS)
        ),
    );
    let ws = cdc_to_file(
        &pg,
        "events",
        "public.events",
        json!({"snapshot.mode": "no_data", "signal.data.collection": "public.debezium_signal",
               "incremental.snapshot.chunk.size": "100", "max.batch.size": "256"}),
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

    race_a_snapshot_through_a_kill_9(&pg, &ws, host);
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

/// The `op=r` events of `topic`, by their `source.snapshot`.
fn reads_of(lines: &[Value], topic: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in lines.iter().filter(|l| l["topic"] == topic) {
        let payload = payload(line);
        if payload["op"] == "r" {
            let kind = payload["source"]["snapshot"].as_str().unwrap_or("?");
            let kind = if kind == "incremental" {
                "incremental"
            } else {
                "initial"
            };
            *out.entry(kind.to_owned()).or_default() += 1;
        }
    }
    out
}

fn count_ops(lines: &[Value], topic: &str, op: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["topic"] == topic && payload(l)["op"] == op)
        .count()
}

/// Tables added to the capture of a running connector are snapshotted by themselves, with
/// no signal and no signalling table (the watermarks are logical decoding messages): one
/// added to `table.include.list`, one created later under a listed pattern; the table
/// captured from the start is not read again, and one removed stops emitting.
#[test]
fn tables_added_to_the_capture_are_snapshotted_alone_and_removed_ones_stop() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE a (id int PRIMARY KEY, v text); \
         INSERT INTO a SELECT g, 'a' || g FROM generate_series(1, 5) g; \
         CREATE TABLE b (id int PRIMARY KEY, v text); \
         INSERT INTO b SELECT g, 'b' || g FROM generate_series(1, 50) g;",
    );
    let ws = Workspace::new();
    let config = |tables: &str| {
        cdc_config(
            &pg,
            "grow-cdc",
            "grow",
            tables,
            json!({"incremental.snapshot.chunk.size": "16",
                   "headwater.table.poll.interval.ms": "300"}),
        )
    };
    ws.put_config("cdc.json", &config("public.a"));
    let mut sink = ws.file_sink("grow-sink", "unused", "out/events.jsonl");
    sink["config"].as_object_mut().unwrap().remove("topics");
    sink["config"]["topics.regex"] = json!("grow\\..*");
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    let lines = || jsonl(&ws.path("out/events.jsonl"));
    host.wait_for("the initial snapshot of a", || {
        (reads_of(&lines(), "grow.public.a").get("initial") == Some(&5)).then_some(())
    });

    // b joins the include list: read incrementally, alone.
    ws.put_config("cdc.json", &config("public.a,public.b,public\\.c.*"));
    host.wait_for("b's incremental snapshot", || {
        (reads_of(&lines(), "grow.public.b").get("incremental") == Some(&50)).then_some(())
    });
    psql(&pg, "postgres", "UPDATE b SET v = 'b-new' WHERE id = 7");
    host.wait_for("b's changes", || {
        (count_ops(&lines(), "grow.public.b", "u") == 1).then_some(())
    });

    // c1 is created under a listed pattern while streaming: added to the publication, its
    // rows read, its later changes streamed.
    psql(
        &pg,
        "postgres",
        "CREATE TABLE c1 (id int PRIMARY KEY, v text); \
         INSERT INTO c1 SELECT g, 'c' || g FROM generate_series(1, 20) g;",
    );
    host.wait_for("c1's incremental snapshot", || {
        (reads_of(&lines(), "grow.public.c1").get("incremental") == Some(&20)).then_some(())
    });
    psql(&pg, "postgres", "INSERT INTO c1 VALUES (21, 'c21')");
    host.wait_for("c1's changes", || {
        (count_ops(&lines(), "grow.public.c1", "c") == 1).then_some(())
    });

    // a leaves the capture: its changes stop; b's go on.
    ws.put_config("cdc.json", &config("public.b,public\\.c.*"));
    host.wait_for("the connector restarted with the third config", || {
        (host
            .log()
            .matches("connector=grow-cdc action=Updated")
            .count()
            >= 2)
            .then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(1));
    psql(
        &pg,
        "postgres",
        "UPDATE a SET v = 'a-new' WHERE id = 1; UPDATE b SET v = 'b-newer' WHERE id = 8",
    );
    host.wait_for("b's change after a left", || {
        (count_ops(&lines(), "grow.public.b", "u") == 2).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    let lines = lines();
    assert_eq!(
        count_ops(&lines, "grow.public.a", "u"),
        0,
        "a is no longer captured"
    );
    assert_eq!(
        reads_of(&lines, "grow.public.a"),
        BTreeMap::from([("initial".to_owned(), 5)]),
        "a is never read again"
    );
    assert_eq!(
        reads_of(&lines, "grow.public.b").get("incremental"),
        Some(&50)
    );
    assert_eq!(
        reads_of(&lines, "grow.public.c1").get("incremental"),
        Some(&20)
    );
    assert!(!log.contains("Connector task failed"), "{log}");
}

/// `kill -9` in the middle of the initial snapshot: the restart does not start over; it reads
/// what the snapshot had not, incrementally, from the last row it emitted, while the changes
/// made meanwhile stream from the snapshot's consistent point.
#[test]
fn an_initial_snapshot_killed_midway_resumes_from_its_last_row() {
    const INITIAL_ROWS: i64 = 50_000;
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        &format!(
            "{} \
             CREATE TABLE small (id int PRIMARY KEY, n int NOT NULL); \
             INSERT INTO small SELECT g, 0 FROM generate_series(1, 100) g;",
            events_table(INITIAL_ROWS)
        ),
    );
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &cdc_config(
            &pg,
            "events-cdc",
            "app",
            "public.events,public.small",
            json!({"snapshot.fetch.size": "500", "max.batch.size": "256",
                   "incremental.snapshot.chunk.size": "2000"}),
        ),
    );
    let mut sink = ws.file_sink("events-sink", "unused", "out/events.jsonl");
    let sink_config = sink["config"].as_object_mut().unwrap();
    sink_config.remove("topics");
    sink_config.insert("topics.regex".into(), json!("app\\.public\\..*"));
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    // Paused in the middle of the snapshot (the pause holds the source at its next batch),
    // then killed once what it sent is committed.
    host.wait_for("the snapshot's first rows", || {
        (reads(&ws) >= 1).then_some(())
    });
    let paused = http(
        rest_port(&host),
        "PUT",
        "/connectors/events-cdc/pause",
        None,
    );
    assert_eq!(paused.0, 202);
    host.wait_for("the snapshot's progress in the offsets", || {
        progress_committed(&ws).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    host.kill9();
    let before = reads(&ws);
    assert!(
        before < INITIAL_ROWS as usize,
        "paused before the end of the snapshot"
    );
    // Changes while it is down: streamed after the restart, from the consistent point.
    psql(
        &pg,
        "postgres",
        "UPDATE events SET n = n + 1 WHERE id % 1000 = 0; DELETE FROM events WHERE id % 997 = 0; \
         UPDATE small SET n = 5 WHERE id = 1;",
    );

    // The pause is kept across the restart (a target state): resume it.
    let host = ws.start();
    let resumed = http(
        rest_port(&host),
        "PUT",
        "/connectors/events-cdc/resume",
        None,
    );
    assert_eq!(resumed.0, 202);
    host.wait_for_log("The initial snapshot was interrupted");
    host.wait_for_log("Incremental snapshot completed.");
    let expected = table(&pg);
    host.wait_for("every row", || {
        (replay(&topic_events(&ws, "app.public.events")) == expected).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
    assert!(
        !log.contains("Snapshot started."),
        "the snapshot does not start over:\n{log}"
    );
    let lines = events(&ws);
    let reads = reads_of(&lines, "app.public.events");
    let initial = reads.get("initial").copied().unwrap_or(0);
    let resumed = reads.get("incremental").copied().unwrap_or(0);
    assert!(
        initial > 0 && initial <= before,
        "{initial} rows read before the crash"
    );
    // Rows read twice: only those emitted after the last committed offset.
    assert!(
        initial + resumed < INITIAL_ROWS as usize * 3 / 2,
        "{initial} + {resumed} reads for {INITIAL_ROWS} rows"
    );
    let small = topic_events(&ws, "app.public.small");
    assert_eq!(replay(&small).len(), 100, "the table after it is read too");
    assert_eq!(replay(&small).get(&1), Some(&5));
}

fn topic_events(ws: &Workspace, topic: &str) -> Vec<Value> {
    events(ws)
        .into_iter()
        .filter(|l| l["topic"] == topic)
        .collect()
}

/// Produces one record to partition 0 of `topic` with Kafka's own Python client.
fn produce_signal(broker: &Service, topic: &str, key: &str, value: &str) {
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    crate::kafka::client(&["produce-raw", &broker.url, topic, key, &hex]);
}

#[test]
fn signals_from_a_kafka_topic_drive_snapshots_and_are_not_replayed_after_a_restart() {
    let broker = Service::start("tansu");
    let pg = Service::start("postgres");
    psql(&pg, "postgres", &events_table(2000));
    crate::kafka::client(&["create", &broker.url, "app-signal", "1"]);
    // Debezium's keys: the channel, its cluster; the topic is the default <topic.prefix>-signal.
    let ws = cdc_to_file(
        &pg,
        "events",
        "public.events",
        json!({"snapshot.mode": "no_data", "signal.enabled.channels": "kafka",
               "signal.kafka.bootstrap.servers": broker.url,
               "incremental.snapshot.chunk.size": "500"}),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");

    // Another connector's signal (keyed with its topic.prefix) and a value that is no signal
    // are skipped; then ours.
    let execute = r#"{"id":"k-1","type":"execute-snapshot","data":{"data-collections":["public.events"],"type":"incremental"}}"#;
    produce_signal(&broker, "app-signal", "other", execute);
    produce_signal(&broker, "app-signal", "app", "not json");
    produce_signal(&broker, "app-signal", "app", execute);
    host.wait_for_log("its key is not this connector's topic.prefix");
    host.wait_for_log("the value is not JSON");
    host.wait_for_log("Incremental snapshot completed.");
    host.wait_for("every row read", || (reads(&ws) == 2000).then_some(()));
    assert!(host.stop().success());

    // Restarted, it reads after the last signal it acted on: the snapshot is not run again.
    let host = ws.start();
    host.wait_for_log("Streaming changes.");
    produce_signal(
        &broker,
        "app-signal",
        "app",
        r#"{"id":"k-2","type":"log","data":{"message":"signal after the restart"}}"#,
    );
    host.wait_for_log("signal after the restart");
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Incremental snapshot completed."), "{log}");
    assert_eq!(reads(&ws), 2000, "no row read twice");
    assert_eq!(replay(&events(&ws)).len(), 2000);
}
