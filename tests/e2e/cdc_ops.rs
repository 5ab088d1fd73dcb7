//! Operating the CDC source: heartbeats, a slot that keeps moving while the captured tables are
//! quiet and others are busy, offsets over the REST API, and configs refused with reasons.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Service, Workspace, jsonl, rest_port};
use crate::postgres_cdc::{cdc_config, cdc_to_file, psql};
use crate::rest::{http, metric, task_status};

/// The slot's confirmed position and the server's current WAL position, as numbers.
fn positions(pg: &Service, slot: &str) -> (u64, u64) {
    slot_and_server(pg, slot, "confirmed_flush_lsn")
}

/// The slot's restart position and the server's current WAL position: the WAL between them is
/// what the slot keeps on the server.
fn retained(pg: &Service, slot: &str) -> (u64, u64) {
    slot_and_server(pg, slot, "restart_lsn")
}

/// The slot's position `column` and the server's current WAL position, as numbers (zeros
/// while the slot does not exist).
fn slot_and_server(pg: &Service, slot: &str, column: &str) -> (u64, u64) {
    let out = crate::postgres_cdc::query(
        pg,
        &format!(
            "SELECT {column} - '0/0'::pg_lsn, pg_current_wal_lsn() - '0/0'::pg_lsn \
             FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ),
    );
    let (a, b) = out.trim().split_once(',').unwrap_or(("0", "0"));
    (
        a.parse::<f64>().unwrap_or(0.0) as u64,
        b.parse::<f64>().unwrap_or(0.0) as u64,
    )
}

#[test]
fn heartbeats_keep_a_quiet_slot_moving_and_offsets_show_debeziums_shape() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE quiet (id int PRIMARY KEY); INSERT INTO quiet VALUES (1); \
         CREATE TABLE busy (id serial PRIMARY KEY, pad text);",
    );
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &cdc_config(
            &pg,
            "quiet-cdc",
            "ops",
            "public.quiet",
            json!({"heartbeat.interval.ms": "200"}),
        ),
    );
    let mut sink = ws.file_sink("ops-sink", "unused", "out/ops.jsonl");
    sink["config"].as_object_mut().unwrap().remove("topics");
    sink["config"]["topics.regex"] = json!("ops\\..*|__debezium-heartbeat\\.ops");
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    host.wait_for("the snapshot row", || {
        (!jsonl(&ws.path("out/ops.jsonl")).is_empty()).then_some(())
    });

    // Another table writes a lot of WAL; the captured one stays quiet.
    psql(
        &pg,
        "postgres",
        "INSERT INTO busy (pad) SELECT repeat('x', 1000) FROM generate_series(1, 20000);",
    );
    let (_, written_to) = positions(&pg, "quiet_cdc");
    host.wait_for("the slot to pass the busy table's writes", || {
        let (confirmed, _) = positions(&pg, "quiet_cdc");
        (confirmed >= written_to).then_some(())
    });

    let lines = jsonl(&ws.path("out/ops.jsonl"));
    let heartbeats: Vec<&Value> = lines
        .iter()
        .filter(|l| l["topic"] == "__debezium-heartbeat.ops")
        .collect();
    assert!(
        heartbeats.len() >= 2,
        "heartbeats flow: {}",
        heartbeats.len()
    );
    assert_eq!(
        heartbeats[0]["key"]["payload"],
        json!({"serverName": "ops"})
    );
    assert_eq!(
        heartbeats[0]["key"]["schema"]["name"],
        "io.debezium.connector.common.ServerNameKey"
    );
    assert!(heartbeats[0]["value"]["payload"]["ts_ms"].is_i64());

    // Offsets over the REST API, in Debezium's shape.
    let port = rest_port(&host);
    let (status, body) = http(port, "GET", "/connectors/quiet-cdc/offsets", None);
    assert_eq!(status, 200, "{body}");
    let entry = &body["offsets"][0];
    assert_eq!(entry["partition"], json!({"server": "ops"}));
    assert!(entry["offset"]["lsn"].is_u64(), "{body}");
    assert!(host.stop().success());
}

/// `heartbeat.action.query` runs at every heartbeat: the rows it inserts into a captured table
/// stream like any change. A query that fails stops the connector, naming the query.
#[test]
fn a_heartbeat_action_query_runs_at_every_heartbeat() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE beats (id serial PRIMARY KEY, at timestamptz DEFAULT now());",
    );
    let ws = Workspace::new();
    let beating = |name: &str, query: &str| {
        cdc_config(
            &pg,
            name,
            name,
            "public.beats",
            json!({"heartbeat.interval.ms": "200", "heartbeat.action.query": query}),
        )
    };
    ws.put_config(
        "cdc.json",
        &beating("beat", "INSERT INTO public.beats DEFAULT VALUES"),
    );
    // No sink reads the broken connector's topics: it drops its records rather than wait for
    // one, so its heartbeat (and the failing query) runs whatever comes first.
    let mut broken = beating("broken", "INSERT INTO public.nowhere DEFAULT VALUES");
    broken["config"]["topic.unsubscribed"] = json!("discard");
    ws.put_config("broken.json", &broken);
    let mut sink = ws.file_sink("beat-sink", "unused", "out/beats.jsonl");
    sink["config"].as_object_mut().unwrap().remove("topics");
    sink["config"]["topics.regex"] = json!("beat\\.public\\.beats");
    ws.put_config("sink.json", &sink);
    let host = ws.start();
    host.wait_for("rows the heartbeats inserted, streamed", || {
        let creates = jsonl(&ws.path("out/beats.jsonl"))
            .iter()
            .filter(|l| l["value"]["payload"]["op"] == "c")
            .count();
        (creates >= 3).then_some(())
    });
    let port = rest_port(&host);
    let trace = host.wait_for("the broken query's connector FAILED", || {
        let (_, status) = http(port, "GET", "/connectors/broken/status", None);
        (status["connector"]["state"] == "FAILED").then(|| {
            status["connector"]["trace"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    });
    assert!(
        trace.contains("heartbeat.action.query") && trace.contains("public.nowhere"),
        "{trace}"
    );
    assert!(host.stop().success());
}

#[test]
fn unsupported_plugins_bad_slot_names_and_missing_prefixes_are_refused_by_name() {
    let ws = Workspace::new();
    let file = ws.path("cdc.json");
    std::fs::write(
        &file,
        json!({"name": "bad-cdc", "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.user": "postgres",
            "database.dbname": "app",
            "plugin.name": "decoderbufs",
            "slot.name": "Bad-Slot",
            "snapshot.mode": "sometimes",
            "table.include.list": "public.a",
            "table.exclude.list": "public.b",
        }})
        .to_string(),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run headwater validate");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{out}");
    for expected in [
        "plugin.name",
        "set plugin.name=pgoutput",
        "slot.name",
        "lower-case letters, digits and underscores",
        "topic.prefix",
        "snapshot.mode",
        "table.exclude.list",
        "cannot be used together with table.include.list",
    ] {
        assert!(out.contains(expected), "expected {expected:?} in:\n{out}");
    }
}

#[test]
fn a_refused_login_fails_the_task_with_the_servers_reason() {
    let pg = Service::start("postgres");
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &json!({"name": "no-user", "config": {
            "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
            "database.hostname": "127.0.0.1",
            "database.port": pg.port.to_string(),
            "database.user": "nobody_here",
            "database.dbname": "postgres",
            "topic.prefix": "x",
        }}),
    );
    let host = ws.start();
    host.wait_for_log("Connector task failed");
    let log = host.log();
    assert!(host.stop().success());
    assert!(log.contains("role \"nobody_here\" does not exist"), "{log}");
}

fn mode_config(pg: &Service, name: &str, mode: &str) -> Value {
    cdc_config(
        pg,
        name,
        "m",
        "public.items",
        json!({"snapshot.mode": mode}),
    )
}

/// `[op, after.id]` of each line the items sink wrote.
fn ops_and_ids(ws: &Workspace) -> Vec<Value> {
    jsonl(&ws.path("out/items.jsonl"))
        .iter()
        .map(|l| {
            json!([
                l["value"]["payload"]["op"],
                l["value"]["payload"]["after"]["id"]
            ])
        })
        .collect()
}

#[test]
fn snapshot_modes_no_data_and_initial_only() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1), (2);",
    );
    let ws = Workspace::new();
    ws.put_config("stream.json", &mode_config(&pg, "stream-only", "no_data"));
    ws.put_config(
        "sink.json",
        &ws.file_sink("items-sink", "m.public.items", "out/items.jsonl"),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");
    psql(&pg, "postgres", "INSERT INTO items VALUES (3);");
    host.wait_for("the streamed insert", || {
        (!jsonl(&ws.path("out/items.jsonl")).is_empty()).then_some(())
    });
    assert!(host.stop().success());
    let ops = ops_and_ids(&ws);
    assert_eq!(ops, [json!(["c", 3])], "no_data: no snapshot, changes only");

    let ws = Workspace::new();
    ws.put_config("snap.json", &mode_config(&pg, "snap-only", "initial_only"));
    ws.put_config(
        "sink.json",
        &ws.file_sink("items-sink", "m.public.items", "out/items.jsonl"),
    );
    let host = ws.start();
    host.wait_for("the snapshot", || {
        (jsonl(&ws.path("out/items.jsonl")).len() >= 3).then_some(())
    });
    psql(&pg, "postgres", "INSERT INTO items VALUES (4);");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(host.stop().success());
    let ids = ops_and_ids(&ws);
    assert_eq!(
        ids,
        [json!(["r", 1]), json!(["r", 2]), json!(["r", 3])],
        "initial_only: the snapshot, then nothing"
    );
}

#[test]
fn capture_over_tls_verifies_the_server_against_sslrootcert() {
    let pg = Service::start_with("postgres", &[("PG_TLS", "yes")]);
    let ca = pg.ca.clone().expect("service.sh names the test CA");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items VALUES (1);",
    );
    let ws = Workspace::new();
    let mut config = mode_config(&pg, "tls-cdc", "initial");
    config["config"]["database.sslmode"] = json!("verify-full");
    config["config"]["database.sslrootcert"] = json!(ca.display().to_string());
    ws.put_config("cdc.json", &config);
    ws.put_config(
        "sink.json",
        &ws.file_sink("items-sink", "m.public.items", "out/items.jsonl"),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");
    psql(&pg, "postgres", "INSERT INTO items VALUES (2);");
    host.wait_for("the snapshot row and the streamed one, over TLS", || {
        (jsonl(&ws.path("out/items.jsonl")).len() == 2).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("reconnecting"), "{log}");
}

/// The value of one series (`name{labels}`) in `/metrics`.
fn series(host: &crate::harness::Host, series: &str) -> Option<f64> {
    let metrics = crate::wasm::http_text(rest_port(host), "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// While its sink is paused, a CDC connector's slot holds the WAL of what it cannot deliver:
/// the lag in bytes shows it (in `/metrics` and the status) and falls once the sink resumes;
/// the sink reports the end-to-end latency of every record it made durable and how long its
/// oldest unflushed one has waited.
#[test]
fn a_paused_sinks_slot_lag_shows_in_bytes_and_the_sink_reports_end_to_end_latency() {
    const LAG_BYTES: &str = "headwater_connector_source_lag_bytes{connector=\"lag-cdc\"}";
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE lagged (id int PRIMARY KEY, pad text NOT NULL)",
    );
    let ws = cdc_to_file(
        &pg,
        "lag",
        "public.lagged",
        json!({"snapshot.mode": "no_data"}),
    );
    let host = ws.start();
    host.wait_for_log("Streaming changes.");
    let insert = |from: i64, to: i64| {
        psql(
            &pg,
            "postgres",
            &format!(
                "INSERT INTO lagged SELECT g, repeat('x', 200) FROM generate_series({from}, {to}) g"
            ),
        );
    };
    let lines = || jsonl(&ws.path("out/lag.jsonl")).len();
    insert(1, 10);
    host.wait_for("10 events", || (lines() == 10).then_some(()));
    host.wait_for("the slot caught up", || {
        series(&host, LAG_BYTES).filter(|b| *b < 64.0 * 1024.0)
    });

    let port = rest_port(&host);
    assert_eq!(http(port, "PUT", "/connectors/lag-sink/pause", None).0, 202);
    insert(11, 20_010);
    let held = host.wait_for("the WAL the paused sink holds back", || {
        series(&host, LAG_BYTES).filter(|b| *b >= 2_000_000.0)
    });
    let (_, status) = http(port, "GET", "/connectors/lag-cdc/status", None);
    let lag = &status["tasks"][0]["source_lag"];
    assert!(
        lag["bytes"].as_f64().is_some_and(|b| b >= held * 0.9) && lag["seconds"].is_number(),
        "{status}"
    );
    assert_eq!(
        http(port, "PUT", "/connectors/lag-sink/resume", None).0,
        202
    );
    host.wait_for("every event", || (lines() == 20_010).then_some(()));
    host.wait_for("the slot caught up again", || {
        series(&host, LAG_BYTES).filter(|b| *b < 64.0 * 1024.0)
    });

    // Each record the sink made durable is in its latency histogram.
    let durable = host.wait_for("every record's end-to-end latency", || {
        series(
            &host,
            "headwater_connector_end_to_end_latency_seconds_count{connector=\"lag-sink\"}",
        )
        .filter(|n| *n >= 20_010.0)
    });
    assert_eq!(durable, 20_010.0);
    let (_, status) = http(port, "GET", "/connectors/lag-sink/status", None);
    let task = &status["tasks"][0];
    assert!(task["oldest_unflushed_seconds"].is_number(), "{status}");
    assert_eq!(task["end_to_end_latency"]["count"], 20_010, "{status}");
    assert!(
        task["end_to_end_latency"]["p99_seconds_at_most"].is_number(),
        "{status}"
    );
    assert!(host.stop().success());
}

/// A CDC source whose topic no sink reads yet holds its changes, and with them its slot's WAL:
/// the status and the lag metric say how much. Killed while it waits and started again with a
/// sink, it delivers every change once.
#[test]
fn a_cdc_source_waiting_for_a_sink_holds_its_slot_and_loses_nothing_to_a_crash() {
    let pg = Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE held (id int PRIMARY KEY, note text)",
    );
    let ws = Workspace::new();
    ws.put_config(
        "cdc.json",
        &cdc_config(&pg, "held-cdc", "app", "public.held", json!({})),
    );
    let host = ws.start();
    let port = rest_port(&host);
    host.wait_for_log("Streaming changes. connector=held-cdc");
    let (restart_before, _) = retained(&pg, "held_cdc");
    psql(
        &pg,
        "postgres",
        "INSERT INTO held SELECT i, repeat('x', 200) FROM generate_series(1, 2000) i",
    );
    let task = host.wait_for("the source to wait, and the lag to show", || {
        let task = task_status(port, "held-cdc");
        let bytes = task["source_lag"]["bytes"].as_u64().unwrap_or(0);
        (task.get("waiting_for_sink").is_some() && bytes > 100_000).then_some(task)
    });
    assert_eq!(
        task["waiting_for_sink"]["topics"],
        json!(["app.public.held"]),
        "{task}"
    );
    assert!(metric(port, "headwater_connector_source_lag_bytes", "held-cdc").unwrap() > 100_000.0);
    assert_eq!(
        metric(port, "headwater_connector_unread_topics", "held-cdc"),
        Some(1.0)
    );
    // The slot keeps the inserts' WAL on the server.
    let (restart, server) = retained(&pg, "held_cdc");
    assert_eq!(restart, restart_before, "the slot did not let go");
    assert!(server - restart > 100_000, "{restart} {server}");

    host.kill9();
    ws.put_config(
        "sink.json",
        &ws.file_sink("held-sink", "app.public.held", "out/held.jsonl"),
    );
    let host = ws.start();
    let port = rest_port(&host);
    let out = ws.path("out/held.jsonl");
    let got = host.wait_for("every change", || {
        let got = jsonl(&out);
        (got.len() >= 2000).then_some(got)
    });
    let mut ids: Vec<i64> = got
        .iter()
        .map(|r| r["value"]["payload"]["after"]["id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=2000).collect::<Vec<_>>(), "every change once");
    assert!(
        task_status(port, "held-cdc")
            .get("waiting_for_sink")
            .is_none()
    );
    assert!(host.stop().success());
}
