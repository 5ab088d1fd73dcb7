//! `headwater.postgres.QuerySource` against a real PostgreSQL: Confluent JDBC source modes, new
//! and updated rows, resume from the committed cursor, and a clear error for a bad query.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Service, Workspace, sink_values};

fn psql(pg: &Service, sql: &str) {
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, &pg.url])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A JDBC URL for the test server (what a Confluent JDBC source config holds).
pub fn jdbc(pg: &Service) -> String {
    let rest = pg.url.split_once("://").map_or(pg.url.as_str(), |(_, r)| r);
    format!("jdbc:postgresql://{rest}")
}

#[test]
fn timestamp_and_incrementing_mode_reads_new_and_updated_rows_and_resumes() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "CREATE TABLE orders (id serial PRIMARY KEY, amount numeric(10,2), note text, \
         tags text[], updated_at timestamp NOT NULL DEFAULT clock_timestamp()); \
         INSERT INTO orders (amount, note, tags) VALUES (12.50, 'first', '{a,b}'), (3, 'second', NULL), (7.25, 'third', '{}');",
    );
    let ws = Workspace::new();
    ws.put_config(
        "source.json",
        &json!({"name": "orders-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": jdbc(&pg),
            "mode": "timestamp+incrementing",
            "table": "public.orders",
            "timestamp.column.name": "updated_at",
            "incrementing.column.name": "id",
            "topic.prefix": "pg-",
            "poll.interval.ms": "100",
            "batch.max.rows": "2",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("pg-orders-sink", "pg-orders", "out/orders.jsonl"),
    );
    let host = ws.start();
    host.wait_for("the three rows", || {
        (sink_values(&ws.path("out/orders.jsonl")).len() == 3).then_some(())
    });
    let first = sink_values(&ws.path("out/orders.jsonl"));
    assert_eq!(first[0]["id"], json!(1));
    assert_eq!(first[0]["amount"], json!(12.50));
    assert_eq!(first[0]["note"], "first");
    assert_eq!(first[0]["tags"], json!(["a", "b"]));
    assert_eq!(first[1]["tags"], Value::Null);

    psql(
        &pg,
        "INSERT INTO orders (amount, note) VALUES (1, 'fourth'), (2, 'fifth'); \
         UPDATE orders SET note = 'first, edited', updated_at = clock_timestamp() WHERE id = 1;",
    );
    host.wait_for("two new rows and one update", || {
        (sink_values(&ws.path("out/orders.jsonl")).len() == 6).then_some(())
    });
    assert!(host.stop().success());

    // While Headwater is down: one more row. After the restart only it arrives.
    psql(
        &pg,
        "INSERT INTO orders (amount, note) VALUES (9, 'sixth');",
    );
    let host = ws.start();
    host.wait_for("the row written while stopped", || {
        (sink_values(&ws.path("out/orders.jsonl")).len() == 7).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(host.stop().success());
    let notes: Vec<String> = sink_values(&ws.path("out/orders.jsonl"))
        .iter()
        .map(|v| v["note"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        notes,
        [
            "first",
            "second",
            "third",
            "fourth",
            "fifth",
            "first, edited",
            "sixth"
        ],
        "every change once, in cursor order"
    );
    let offsets: Value =
        serde_json::from_slice(&std::fs::read(ws.path("var/offsets/orders-source.json")).unwrap())
            .unwrap();
    let offset = &offsets["offsets"][0];
    assert_eq!(offset["partition"], json!({"table": "public.orders"}));
    assert_eq!(offset["offset"]["incrementing"], json!(6));
    assert!(offset["offset"]["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
}

#[test]
fn incrementing_mode_over_a_query_and_a_bad_column_fails_clearly() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "CREATE TABLE events (seq bigint PRIMARY KEY, kind text, payload jsonb); \
         INSERT INTO events VALUES (10, 'click', '{\"page\": \"/\"}'), (11, 'skip', NULL), (12, 'view', '[1,2]');",
    );
    let ws = Workspace::new();
    ws.put_config(
        "source.json",
        &json!({"name": "events-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": pg.url,
            "mode": "incrementing",
            "query": "SELECT seq, kind, payload FROM events WHERE kind <> 'skip'",
            "incrementing.column.name": "seq",
            "topic.prefix": "events",
            "poll.interval.ms": "100",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("events-sink", "events", "out/events.jsonl"),
    );
    ws.put_config(
        "broken.json",
        &json!({"name": "broken-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": pg.url,
            "mode": "incrementing",
            "table": "events",
            "incrementing.column.name": "no_such_column",
            "topic.prefix": "broken-",
        }}),
    );
    let host = ws.start();
    host.wait_for("two events", || {
        (sink_values(&ws.path("out/events.jsonl")).len() == 2).then_some(())
    });
    psql(&pg, "INSERT INTO events VALUES (13, 'click', '{}');");
    host.wait_for("the new event", || {
        (sink_values(&ws.path("out/events.jsonl")).len() == 3).then_some(())
    });
    host.wait_for_log("Connector task failed. connector=broken-source");
    let log = host.log();
    assert!(host.stop().success());
    assert!(
        log.contains("the poll query failed: 42703") && log.contains("no_such_column"),
        "{log}"
    );
    let got = sink_values(&ws.path("out/events.jsonl"));
    assert_eq!(
        got,
        [
            json!({"seq": 10, "kind": "click", "payload": {"page": "/"}}),
            json!({"seq": 12, "kind": "view", "payload": [1, 2]}),
            json!({"seq": 13, "kind": "click", "payload": {}}),
        ]
    );
}

#[test]
fn a_postgres_restart_is_ridden_out_and_nothing_is_lost() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "CREATE TABLE ticks (id bigserial PRIMARY KEY, n int); \
         INSERT INTO ticks (n) SELECT g FROM generate_series(1, 50) g;",
    );
    let ws = Workspace::new();
    ws.put_config(
        "source.json",
        &json!({"name": "ticks-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": jdbc(&pg),
            "mode": "incrementing",
            "table": "ticks",
            "incrementing.column.name": "id",
            "topic.prefix": "pg-",
            "poll.interval.ms": "100",
            "batch.max.rows": "20",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("pg-ticks-sink", "pg-ticks", "out/ticks.jsonl"),
    );
    let host = ws.start();
    host.wait_for("the first rows", || {
        (sink_values(&ws.path("out/ticks.jsonl")).len() == 50).then_some(())
    });
    // The test server commits asynchronously (fast, not crash-safe): make its data durable so
    // the crash tests Headwater, not the server's settings.
    psql(&pg, "CHECKPOINT;");
    pg.kill9();
    host.wait_for_log("PostgreSQL poll failed; reconnecting.");
    pg.restart();
    psql(
        &pg,
        "INSERT INTO ticks (n) SELECT g FROM generate_series(51, 80) g;",
    );
    host.wait_for("the rows written after the restart", || {
        (sink_values(&ws.path("out/ticks.jsonl")).len() == 80).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    let ns: Vec<i64> = sink_values(&ws.path("out/ticks.jsonl"))
        .iter()
        .map(|v| v["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, (1..=80).collect::<Vec<_>>(), "every row once, in order");
    assert!(!log.contains("Connector task failed"), "{log}");
}

#[test]
fn tls_connections_verify_the_server_against_sslrootcert() {
    let pg = Service::start_with("postgres", &[("PG_TLS", "yes")]);
    let ca = pg.ca.clone().expect("service.sh names the test CA");
    psql(
        &pg,
        "CREATE TABLE secrets (id int PRIMARY KEY, v text); INSERT INTO secrets VALUES (1, 'over tls');",
    );
    let base = format!(
        "jdbc:postgresql://127.0.0.1:{}/postgres?user=postgres",
        pg.port
    );
    let ws = Workspace::new();
    let source = |name: &str, url: String| {
        json!({"name": name, "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": url,
            "mode": "incrementing",
            "table": "secrets",
            "incrementing.column.name": "id",
            "topic.prefix": format!("{name}-"),
            "poll.interval.ms": "100",
        }})
    };
    ws.put_config(
        "tls.json",
        &source(
            "tls",
            format!("{base}&sslmode=verify-full&sslrootcert={}", ca.display()),
        ),
    );
    ws.put_config("plain.json", &source("plain", base.clone()));
    ws.put_config(
        "sink.json",
        &ws.file_sink("tls-secrets-sink", "tls-secrets", "out/secrets.jsonl"),
    );
    let host = ws.start();
    host.wait_for("the row read over TLS", || {
        (sink_values(&ws.path("out/secrets.jsonl")).len() == 1).then_some(())
    });
    // The server takes TLS only: the plain connector is refused and keeps retrying.
    host.wait_for_log("Cannot connect to PostgreSQL; retrying. connector=plain");
    let log = host.log();
    assert!(host.stop().success());
    assert_eq!(
        sink_values(&ws.path("out/secrets.jsonl"))[0],
        json!({"id": 1, "v": "over tls"})
    );
    assert!(log.contains("no encryption"), "{log}");
}
