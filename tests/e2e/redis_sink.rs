//! The Redis sink against a real redis-server: layouts, TTLs, Debezium semantics, the
//! event-time guard, and Redis dying mid-stream.

use std::collections::HashMap;
use std::fs;

use redis::Commands;
use serde_json::{Value, json};

use crate::harness::{Host, Service, Workspace, rest_port};
use crate::rest::task_status;

pub fn connect(redis: &Service) -> redis::Connection {
    redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_connection()
        .expect("connect to the test redis")
}

fn write_lines(ws: &Workspace, rel: &str, values: &[Value]) {
    ws.append_jsonl(rel, values);
}

fn pipeline(ws: &Workspace, redis: &Service, sink: Value) {
    ws.put_config(
        "source.json",
        &json!({"name": "rows", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/rows.jsonl").display().to_string(),
            "topic": "users",
            "poll.interval.ms": "50",
        }}),
    );
    let mut config = json!({
        "connector.class": "headwater.redis.RedisSink",
        "topics": "users",
        "redis.uri": redis.url,
        "errors.retry.timeout": "-1",
        "errors.retry.delay.max.ms": "1000",
    });
    for (k, v) in sink.as_object().unwrap() {
        config[k] = v.clone();
    }
    ws.put_config("sink.json", &json!({"name": "online", "config": config}));
}

fn wait_for_hash(host: &Host, conn: &mut redis::Connection, key: &str, field: &str, want: &str) {
    host.wait_for(&format!("{key}.{field} = {want}"), || {
        let got: Option<String> = conn.hget(key, field).ok()?;
        (got.as_deref() == Some(want)).then_some(())
    });
}

#[test]
fn hash_and_string_layouts_write_exact_keys_fields_and_ttls() {
    let redis = Service::start("redis");
    let mut conn = connect(&redis);
    let ws = Workspace::new();
    write_lines(
        &ws,
        "in/rows.jsonl",
        &[
            json!({"user_id": "u1", "country": "de", "clicks": 3, "score": 0.5, "tags": ["a", "b"], "note": null}),
            json!({"user_id": "u2", "country": "fr", "clicks": 1, "score": 2.0, "tags": [], "note": "x"}),
        ],
    );
    pipeline(
        &ws,
        &redis,
        json!({"key.prefix": "user:", "key.fields": "user_id", "ttl.seconds": "600"}),
    );
    let host = ws.start();
    wait_for_hash(&host, &mut conn, "user:u2", "note", "x");
    let u1: HashMap<String, String> = conn.hgetall("user:u1").unwrap();
    let expected: HashMap<String, String> = [
        ("user_id", "u1"),
        ("country", "de"),
        ("clicks", "3"),
        ("score", "0.5"),
        ("tags", "[\"a\",\"b\"]"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(u1, expected, "null fields are not stored");
    let ttl: i64 = conn.ttl("user:u1").unwrap();
    assert!((1..=600).contains(&ttl), "ttl {ttl}");
    assert!(host.stop().success());

    // The same rows as JSON strings.
    let ws = Workspace::new();
    write_lines(
        &ws,
        "in/rows.jsonl",
        &[json!({"user_id": "u3", "clicks": 7})],
    );
    pipeline(
        &ws,
        &redis,
        json!({"redis.layout": "string", "key.prefix": "${topic}:", "key.fields": "user_id"}),
    );
    let host = ws.start();
    let value: String = host.wait_for("users:u3", || conn.get("users:u3").ok());
    assert_eq!(
        serde_json::from_str::<Value>(&value).unwrap(),
        json!({"user_id": "u3", "clicks": 7})
    );
    let ttl: i64 = conn.ttl("users:u3").unwrap();
    assert_eq!(ttl, -1, "no ttl.seconds: no expiry");
    assert!(host.stop().success());
}

#[test]
fn debezium_changes_mirror_the_table_and_late_events_never_overwrite() {
    let redis = Service::start("redis");
    let mut conn = connect(&redis);
    let ws = Workspace::new();
    let event = |op: &str, before: Value, after: Value| json!({"before": before, "after": after, "op": op, "source": {"table": "users"}, "ts_ms": 1});
    write_lines(
        &ws,
        "in/rows.jsonl",
        &[
            event("r", Value::Null, json!({"id": 1, "name": "ann", "ts": 100})),
            event("c", Value::Null, json!({"id": 2, "name": "bob", "ts": 100})),
            event(
                "u",
                Value::Null,
                json!({"id": 1, "name": "anna", "ts": 300}),
            ),
            // Late: older than what Redis holds for id 1.
            event(
                "u",
                Value::Null,
                json!({"id": 1, "name": "ANN-OLD", "ts": 200}),
            ),
            event("d", json!({"id": 2, "ts": 400}), Value::Null),
            // Late upsert after the delete: must not bring id 2 back.
            event(
                "u",
                Value::Null,
                json!({"id": 2, "name": "zombie", "ts": 350}),
            ),
            event("c", Value::Null, json!({"id": 3, "name": "cy", "ts": 500})),
        ],
    );
    pipeline(
        &ws,
        &redis,
        json!({"key.prefix": "u:", "key.fields": "id", "timestamp.field": "ts"}),
    );
    let host = ws.start();
    wait_for_hash(&host, &mut conn, "u:3", "name", "cy");
    assert!(host.stop().success());
    let one: HashMap<String, String> = conn.hgetall("u:1").unwrap();
    assert_eq!(one["name"], "anna");
    assert_eq!(one["_ts"], "300");
    let exists: bool = conn.exists("u:2").unwrap();
    assert!(!exists, "deleted, and the late upsert did not resurrect it");
}

#[test]
fn redis_killed_and_restarted_mid_stream_ends_in_the_expected_state() {
    let redis = Service::start("redis");
    let mut conn = connect(&redis);
    let ws = Workspace::new();
    // 200 users, each updated 50 times; the last update of user n has clicks = 49.
    let rows: Vec<Value> = (0..50)
        .flat_map(|round| (0..200).map(move |u| json!({"user": u, "clicks": round})))
        .collect();
    write_lines(&ws, "in/rows.jsonl", &rows[..4000]);
    pipeline(
        &ws,
        &redis,
        json!({"key.prefix": "c:", "key.fields": "user"}),
    );
    let host = ws.start();
    wait_for_hash(&host, &mut conn, "c:199", "clicks", "19");
    redis.kill9();
    write_lines(&ws, "in/rows.jsonl", &rows[4000..]);
    host.wait_for_log("Operation failed; retrying.");
    redis.restart();
    let mut conn = connect(&redis);
    for user in 0..200 {
        wait_for_hash(&host, &mut conn, &format!("c:{user}"), "clicks", "49");
    }
    assert!(host.stop().success());
    let keys: Vec<String> = conn.keys("c:*").unwrap();
    assert_eq!(keys.len(), 200);
}

fn feast(repo: &std::path::Path, redis: &Service, args: &[&str]) -> String {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/feast/feast_repo.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(repo)
        .arg(format!("127.0.0.1:{}", redis.port))
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "Feast's SDK failed (is feast installed? run scripts/setup.sh):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn feasts_own_sdk_reads_the_feast_layout() {
    let redis = Service::start("redis");
    let ws = Workspace::new();
    let repo = ws.path("feast");
    feast(&repo, &redis, &["apply"]);
    write_lines(
        &ws,
        "in/rows.jsonl",
        &[
            json!({"user_id": 1, "clicks": 5, "score": 0.25, "country": "de", "ts": "2024-03-01T10:00:00Z"}),
            json!({"user_id": 2, "clicks": 9, "score": 1.5, "country": "fr", "ts": "2024-03-01T10:00:00Z"}),
            json!({"user_id": 1, "clicks": 7, "score": 0.75, "country": "de", "ts": "2024-03-01T11:00:00Z"}),
            // Late: older than the row above; Feast's rule keeps the newer one.
            json!({"user_id": 1, "clicks": 1, "score": 0.0, "country": "xx", "ts": "2024-03-01T09:00:00Z"}),
        ],
    );
    pipeline(
        &ws,
        &redis,
        json!({
            "redis.layout": "feast",
            "feast.project": "headwater_test",
            "feast.feature.view": "user_stats",
            "feast.entity.columns": "user_id:int64",
            "feast.features": "clicks:int64,score:double,country:string",
            "timestamp.field": "ts",
            "ttl.seconds": "3600",
        }),
    );
    let host = ws.start();
    host.wait_for("the four rows written", || {
        let offsets: Value =
            serde_json::from_slice(&fs::read(ws.path("var/offsets/rows.json")).ok()?).ok()?;
        let size = fs::metadata(ws.path("in/rows.jsonl")).ok()?.len();
        (offsets["offsets"][0]["offset"]["position"].as_u64()? == size).then_some(())
    });
    assert!(host.stop().success());
    let read: Value =
        serde_json::from_str(&feast(&repo, &redis, &["read", "1", "2", "3"])).unwrap();
    assert_eq!(read["user_id"], json!([1, 2, 3]));
    assert_eq!(read["clicks"], json!([7, 9, null]));
    assert_eq!(read["score"], json!([0.75, 1.5, null]));
    assert_eq!(read["country"], json!(["de", "fr", null]));
}

#[test]
fn rediss_connects_over_tls_with_a_configured_ca() {
    let redis = Service::start_with("redis", &[("REDIS_TLS", "yes")]);
    let ca = redis.ca.clone().expect("a TLS redis names its CA");
    let ws = Workspace::new();
    write_lines(
        &ws,
        "in/rows.jsonl",
        &[json!({"user_id": "t1", "clicks": 4})],
    );
    pipeline(
        &ws,
        &redis,
        json!({"key.prefix": "tls:", "key.fields": "user_id", "redis.tls.ca.file": ca.display().to_string()}),
    );
    let host = ws.start();
    let clicks = host.wait_for("the row over TLS", || {
        let out = std::process::Command::new("redis-cli")
            .args(["--tls", "--cacert"])
            .arg(&ca)
            .args(["-p", &redis.port.to_string(), "hget", "tls:t1", "clicks"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (text == "4").then_some(text)
    });
    assert_eq!(clicks, "4");
    assert!(host.stop().success());
}

/// Redis killed and restarted under a sink with default error settings (no retries): the sink
/// is not left FAILED. Its task shows RESTARTING with the reason while Redis is down, restarts
/// with backoff, and every record — those it held when Redis died and those read meanwhile —
/// reaches Redis once it is back (found by the chaos soak).
#[test]
fn a_redis_restart_leaves_the_sink_running_and_loses_nothing() {
    let redis = Service::start("redis");
    let ws = Workspace::new();
    let rows = |range: std::ops::Range<i32>| -> Vec<Value> {
        range
            .map(|i| json!({"user_id": format!("u{i}"), "n": i}))
            .collect()
    };
    write_lines(&ws, "in/rows.jsonl", &rows(0..50));
    ws.put_config(
        "source.json",
        &json!({"name": "rows", "config": {
            "connector.class": "headwater.file.FileSource",
            "path": ws.path("in/rows.jsonl").display().to_string(),
            "topic": "users", "poll.interval.ms": "50"}}),
    );
    ws.put_config(
        "sink.json",
        &json!({"name": "online", "config": {
            "connector.class": "headwater.redis.RedisSink", "topics": "users",
            "redis.uri": redis.url, "key.prefix": "user:", "key.fields": "user_id"}}),
    );
    let host = ws.start();
    let port = rest_port(&host);
    let mut conn = connect(&redis);
    wait_for_hash(&host, &mut conn, "user:u49", "n", "49");

    redis.kill9();
    write_lines(&ws, "in/rows.jsonl", &rows(50..100));
    let status = host.wait_for("the sink to notice Redis is gone", || {
        let status = task_status(port, "online");
        (status["state"] == "RESTARTING").then_some(status)
    });
    assert!(
        status["trace"]
            .as_str()
            .is_some_and(|t| t.contains("Redis")),
        "the reason is shown: {status}"
    );
    redis.restart();
    let mut conn = connect(&redis);
    for i in 50..100 {
        wait_for_hash(&host, &mut conn, &format!("user:u{i}"), "n", &i.to_string());
    }
    host.wait_for("the sink to run again", || {
        (task_status(port, "online")["state"] == "RUNNING").then_some(())
    });
    assert!(host.stop().success());
}
