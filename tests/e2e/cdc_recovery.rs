//! The CDC source across failures: Headwater killed with -9 mid-stream, and PostgreSQL
//! killed and restarted under it. Every change must arrive (at least once) and the offsets keep
//! Debezium's shape.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Service, Workspace, jsonl};
use crate::postgres_cdc::{cdc_to_file, psql};

/// The ids of the rows created (snapshot or insert) that reached the sink.
fn delivered(ws: &Workspace) -> (BTreeSet<i64>, usize) {
    let lines = jsonl(&ws.path("out/events.jsonl"));
    let ids: Vec<i64> = lines
        .iter()
        .filter_map(|l| l["value"]["payload"]["after"]["id"].as_i64())
        .collect();
    let count = ids.len();
    (ids.into_iter().collect(), count)
}

fn setup(pg: &Service) -> Workspace {
    psql(
        pg,
        "postgres",
        "CREATE TABLE events (id bigint PRIMARY KEY, n int NOT NULL); \
         INSERT INTO events SELECT g, g FROM generate_series(1, 100) g;",
    );
    cdc_to_file(
        pg,
        "events",
        "public.events",
        json!({"max.batch.size": "64"}),
    )
}

/// Inserts ids `from..=to`, one transaction each, from a background thread.
fn insert_rows(pg: &Service, from: i64, to: i64) -> std::thread::JoinHandle<()> {
    let sql = format!(
        "DO $$ BEGIN FOR i IN {from}..{to} LOOP INSERT INTO events VALUES (i, i); COMMIT; END LOOP; END $$;"
    );
    crate::postgres_cdc::psql_in_background(pg, sql)
}

#[test]
fn kill_9_mid_stream_then_restart_delivers_every_change() {
    let pg = Service::start("postgres");
    let ws = setup(&pg);
    let host = ws.start();
    host.wait_for("the snapshot", || {
        (delivered(&ws).0.len() >= 100).then_some(())
    });
    let writer = insert_rows(&pg, 101, 3000);
    host.wait_for("part of the stream", || {
        (delivered(&ws).1 >= 600).then_some(())
    });
    host.kill9();
    writer.join().expect("the writer finished");

    let host = ws.start();
    let expected: BTreeSet<i64> = (1..=3000).collect();
    host.wait_for("every row", || (delivered(&ws).0 == expected).then_some(()));
    // A little longer: nothing unexpected arrives afterwards.
    std::thread::sleep(Duration::from_millis(500));
    let log = host.log();
    assert!(host.stop().success());
    let (ids, count) = delivered(&ws);
    assert_eq!(ids, expected, "every change delivered");
    assert!(
        count < 3000 + 1000,
        "replays after the crash are bounded by the unacknowledged tail, got {count} records"
    );
    assert!(!log.contains("Connector task failed"), "{log}");
    // The snapshot is not taken again: every snapshot row appears once, before the crash.
    let reads = jsonl(&ws.path("out/events.jsonl"))
        .iter()
        .filter(|l| l["value"]["payload"]["op"] == "r")
        .count();
    assert_eq!(reads, 100);

    let offsets: Value = serde_json::from_slice(
        &std::fs::read(ws.path("var/offsets/events-cdc.json")).expect("offsets file"),
    )
    .unwrap();
    let entry = &offsets["offsets"][0];
    assert_eq!(entry["partition"], json!({"server": "app"}));
    for key in ["lsn", "lsn_proc", "lsn_commit", "txId", "ts_usec"] {
        assert!(entry["offset"][key].is_u64(), "offset {key}: {entry}");
    }
}

#[test]
fn a_postgres_restart_mid_stream_is_ridden_out_and_nothing_is_lost() {
    let pg = Service::start("postgres");
    let ws = setup(&pg);
    let host = ws.start();
    host.wait_for("the snapshot", || {
        (delivered(&ws).0.len() >= 100).then_some(())
    });
    insert_rows(&pg, 101, 500).join().unwrap();
    host.wait_for("the first changes", || {
        (delivered(&ws).0.len() >= 500).then_some(())
    });
    // The test server commits asynchronously (fast, not crash-safe): make its data durable so
    // the crash tests Headwater, not the server's settings.
    psql(&pg, "postgres", "CHECKPOINT;");
    pg.kill9();
    host.wait_for_log("PostgreSQL CDC session ended; reconnecting.");
    pg.restart();
    insert_rows(&pg, 501, 1000).join().unwrap();
    let expected: BTreeSet<i64> = (1..=1000).collect();
    host.wait_for("every row", || (delivered(&ws).0 == expected).then_some(()));
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
}

/// Writes ids `from..=to` into `events` in one COPY, which PostgreSQL logs as multi-row
/// inserts: the rows of one page (~185 here) share one LSN.
fn copy_rows(pg: &Service, ws: &Workspace, from: i64, to: i64) {
    let rows: String = (from..=to).map(|i| format!("{i}\t{i}\n")).collect();
    let file = ws.path(&format!("rows-{from}.tsv"));
    std::fs::write(&file, rows).expect("write the rows");
    psql(
        pg,
        "postgres",
        &format!("COPY events (id, n) FROM '{}'", file.display()),
    );
}

/// Stops the host (`kill -9`, or SIGTERM) once the sink holds part of a 40,000-row
/// transaction, restarts it, and checks that every row arrives and that the rows written
/// before the stop are not all written again.
fn stop_inside_a_large_transaction(kill: bool) {
    let pg = Service::start("postgres");
    let ws = setup(&pg);
    let host = ws.start();
    host.wait_for("the snapshot", || {
        (delivered(&ws).0.len() >= 100).then_some(())
    });
    copy_rows(&pg, &ws, 101, 40100);
    host.wait_for("part of the transaction", || {
        (delivered(&ws).1 >= 2000).then_some(())
    });
    match kill {
        true => host.kill9(),
        false => assert!(host.stop().success()),
    }
    let before = delivered(&ws).1;

    let host = ws.start();
    let expected: BTreeSet<i64> = (1..=40100).collect();
    host.wait_for("every row", || (delivered(&ws).0 == expected).then_some(()));
    std::thread::sleep(Duration::from_millis(500));
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
    let (ids, count) = delivered(&ws);
    assert_eq!(ids, expected, "every change delivered");
    // What the sink wrote after the last offsets the host saved comes again (at least once);
    // the rows before them do not: replaying the transaction from its start would write
    // every row written before the stop twice.
    assert!(
        count < 40100 + before / 2,
        "the {before} rows written before the stop were written again: {count} records"
    );
}

/// A transaction much larger than a batch is handed on in batches while it streams (so the
/// host does not hold it whole), and a crash between those batches loses nothing. A batch
/// never ends inside a run of changes that share an LSN: a restart skips every change at or
/// before the offset's LSN.
#[test]
fn kill_9_inside_a_large_transaction_then_restart_delivers_it() {
    stop_inside_a_large_transaction(true);
}

/// The same with a clean stop: what the host hands on as it stops leaves no change of a
/// shared LSN behind either.
#[test]
fn a_stop_inside_a_large_transaction_then_restart_delivers_it() {
    stop_inside_a_large_transaction(false);
}
