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

/// PostgreSQL's own JSON for each row of `query` (`row_to_json`, in a UTC session as the
/// source's), one value per row.
fn row_to_json(pg: &Service, query: &str) -> Vec<Value> {
    crate::postgres_cdc::query(
        pg,
        &format!("SET TIME ZONE 'UTC'; SELECT row_to_json(hw_row) FROM ({query}) hw_row"),
    )
    .lines()
    .filter(|line| *line != "SET")
    .map(|line| serde_json::from_str(line).expect("row_to_json is JSON"))
    .collect()
}

/// `a` and `b` are the same JSON, keys in the same order, numbers compared as numbers
/// (PostgreSQL writes a float8 of 1 as `1` and 1e20 as `1e+20`; Headwater `1.0` and `1e20`),
/// to the last bit serde_json reads exactly (it may round a decimal text 1 ulp off).
fn assert_same_json(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let ulps = 2.0 * f64::EPSILON * x.abs().max(y.abs());
            assert!((x - y).abs() <= ulps, "{at}: {x} against {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{at}: the columns, in order");
            for (key, value) in x {
                assert_same_json(value, &y[key], &format!("{at}.{key}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}: {a} against {b}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_same_json(x, y, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

/// Rows are read in binary and written as JSON by Headwater for the common types, and by
/// PostgreSQL for the others: every value must be what `row_to_json` makes of it, edge values
/// (infinities, BC dates, years past 9999, NaN, escapes, padding) included.
#[test]
fn rows_read_in_binary_are_what_row_to_json_makes_of_them() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "CREATE TABLE kinds (id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, \
           f4 float4, f8 float8, t text, v varchar(20), c char(5), n name, \
           ts timestamp, tz timestamptz, d date, u uuid, j json, jb jsonb, \
           num numeric(12,3), arr text[], by bytea, iv interval, ip inet, \"odd \"\"name\"\"\" int); \
         INSERT INTO kinds VALUES \
          (1, true, -32768, -2147483648, -9223372036854775808, 0.1, 0.1, 'plain', 'v', 'ab', 'nm', \
           '2024-03-05 01:02:03.456789', '2024-03-05 01:02:03+05', '2024-02-29', \
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"a\": [1, 2.50]}', '{\"b\": {\"c\": null}}', \
           12.5, '{x,\"y z\",NULL}', '\\x00ff', '1 day 02:03:04', '10.0.0.1/8', 7), \
          (2, false, 32767, 2147483647, 9223372036854775807, 'NaN', 'Infinity', \
           E'quote \" backslash \\\\ tab \\t newline \\n bell \\u0007 é 🦀', '', ' ', '', \
           '2024-03-05 00:00:00', '1999-12-31 23:59:59.999999+00', 'infinity', \
           '00000000-0000-0000-0000-000000000000', '[]', '\"s\"', 'NaN', '{}', '', '-1 mon', '::1', NULL), \
          (3, NULL, NULL, NULL, NULL, '-Infinity', '-Infinity', NULL, NULL, NULL, NULL, \
           'infinity', '-infinity', '-infinity', NULL, 'null', 'null', NULL, NULL, NULL, NULL, NULL, NULL), \
          (4, true, 0, 0, 0, 3.4e38, 1e20, 'x', 'x', 'x', 'x', \
           '0044-03-15 12:00:00.1 BC', '0001-01-01 00:00:00+00 BC', '4713-01-01 BC', NULL, '1', '1.5', \
           -0.001, NULL, NULL, NULL, NULL, NULL), \
          (5, true, 1, 1, 1, 1e-45, 5e-324, 'x', 'x', 'x', 'x', \
           '10000-01-01 00:00:00.5', '294276-12-31 23:59:59.999999+00', '5874897-12-31', NULL, NULL, NULL, \
           0, NULL, NULL, NULL, NULL, NULL), \
          (6, true, 1, 1, 1, 1, -0.0, 'x', 'x', 'x', 'x', \
           '1900-02-28 23:00:00', '2000-01-01 00:00:00+00', '2000-01-01', NULL, NULL, NULL, \
           0, NULL, NULL, NULL, NULL, NULL);",
    );
    let ws = Workspace::new();
    ws.put_config(
        "kinds.json",
        &json!({"name": "kinds-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": jdbc(&pg),
            "mode": "incrementing",
            "table": "kinds",
            "incrementing.column.name": "id",
            "topic.prefix": "pg-",
            "poll.interval.ms": "100",
        }}),
    );
    // Columns that repeat a name cannot be read one by one: the row is read whole.
    let repeated_query = "SELECT 1 AS a, 'two' AS a, now() - now() AS gap";
    ws.put_config(
        "repeated.json",
        &json!({"name": "repeated-source", "config": {
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": jdbc(&pg),
            "mode": "bulk",
            "query": repeated_query,
            "topic.prefix": "repeated",
            "poll.interval.ms": "60000",
        }}),
    );
    ws.put_config(
        "kinds-sink.json",
        &ws.file_sink("kinds-sink", "pg-kinds", "out/kinds.jsonl"),
    );
    ws.put_config(
        "repeated-sink.json",
        &ws.file_sink("repeated-sink", "repeated", "out/repeated.jsonl"),
    );
    let host = ws.start();
    let (kinds, repeated) = host.wait_for("every row", || {
        let kinds = sink_values(&ws.path("out/kinds.jsonl"));
        let repeated = sink_values(&ws.path("out/repeated.jsonl"));
        (kinds.len() == 6 && !repeated.is_empty()).then_some((kinds, repeated))
    });
    assert!(host.stop().success());
    let expected = row_to_json(&pg, "SELECT * FROM kinds ORDER BY id");
    assert_eq!(expected.len(), 6);
    for (got, want) in kinds.iter().zip(&expected) {
        assert_same_json(got, want, &format!("row {}", want["id"]));
    }
    // Read whole (one column by name would be ambiguous), as PostgreSQL wrote it.
    assert_eq!(repeated[0], row_to_json(&pg, repeated_query)[0]);
}
