//! The streaming-features example (`examples/features/`), configs as shipped: click events in
//! 5-minute windows per user into Redis, transactions in daily windows per user into the
//! Parquet offline store; both checked against a plain computation over the same input.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;

use redis::Commands;
use serde_json::Value;

use crate::harness::{Service, Workspace, jsonl, parquet_rows};
use crate::redis_sink::connect;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python(args: &[&str], cwd: &std::path::Path) {
    let out = Command::new("python3")
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Closed windows of (group, start) → records in arrival order, with Flink's rule: a window
/// fires once the watermark reaches its last millisecond (`end - 1`), and a record counts
/// unless that is past the watermark by more than `lateness`.
fn windows_of(
    events: &[(String, i64, Value)],
    size: i64,
    delay: i64,
    lateness: i64,
) -> BTreeMap<(String, i64), Vec<Value>> {
    let (mut watermark, mut newest) = (i64::MIN, i64::MIN);
    let mut windows: BTreeMap<(String, i64), Vec<Value>> = BTreeMap::new();
    for (group, t, row) in events {
        let start = t.div_euclid(size) * size;
        if start + size - 1 + lateness > watermark {
            windows
                .entry((group.clone(), start))
                .or_default()
                .push(row.clone());
        }
        if *t > newest {
            newest = *t;
            watermark = watermark.max(t - delay);
        }
    }
    windows.retain(|(_, start), _| start + size - 1 <= watermark);
    windows
}

fn ms(ts: &Value) -> i64 {
    ts.as_i64().unwrap_or_else(|| {
        chrono::DateTime::parse_from_rfc3339(ts.as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    })
}

/// The demo's transactions in the order the file source reads them, with a numeric amount.
fn transactions(root: &std::path::Path) -> Vec<(String, i64, Value)> {
    let mut rows = Vec::new();
    for day in ["2024-01-01", "2024-01-02", "2024-01-03"] {
        let dir = root.join(format!("transactions/date={day}"));
        let jsonl_path = dir.join("part-0.jsonl");
        let day_rows: Vec<Value> = if jsonl_path.exists() {
            std::fs::read_to_string(&jsonl_path)
                .unwrap()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        } else {
            let mut reader = csv::Reader::from_path(dir.join("part-0.csv")).unwrap();
            reader
                .deserialize::<HashMap<String, String>>()
                .map(|r| serde_json::to_value(r.unwrap()).unwrap())
                .collect()
        };
        for mut row in day_rows {
            let amount = match &row["amount"] {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.parse::<f64>().ok(),
                _ => None,
            };
            let Some(amount) = amount else { continue };
            row["amount"] = amount.into();
            let user = row["user_id"].as_str().unwrap().to_owned();
            rows.push((user, ms(&row["ts"]), row));
        }
    }
    rows
}

#[test]
fn the_features_example_matches_a_plain_computation() {
    let redis = Service::start("redis");
    let ws = Workspace::new();
    for entry in std::fs::read_dir(repo().join("examples/features/connectors.d")).unwrap() {
        let path = entry.unwrap().path();
        let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        ws.put_config(path.file_name().unwrap().to_str().unwrap(), &config);
    }
    let data = ws.path("var/features");
    std::fs::create_dir_all(data.join("clicks")).unwrap();
    let clicks_file = data.join("clicks/clicks.jsonl");
    python(
        &[
            repo().join("examples/features/clicks.py").to_str().unwrap(),
            clicks_file.to_str().unwrap(),
        ],
        &ws.path(""),
    );
    python(
        &[
            repo().join("scripts/demo-data.py").to_str().unwrap(),
            data.to_str().unwrap(),
        ],
        &ws.path(""),
    );

    let clicks: Vec<(String, i64, Value)> = jsonl(&clicks_file)
        .into_iter()
        .map(|c| (c["user_id"].as_str().unwrap().to_owned(), ms(&c["ts"]), c))
        .collect();
    let click_windows = windows_of(&clicks, 300_000, 5_000, 60_000);
    // Redis holds each user's newest closed window.
    let mut newest: BTreeMap<String, (i64, u64, u64)> = BTreeMap::new();
    for ((user, start), rows) in &click_windows {
        let pages: BTreeSet<&str> = rows.iter().map(|r| r["page"].as_str().unwrap()).collect();
        newest.insert(
            user.clone(),
            (*start, rows.len() as u64, pages.len() as u64),
        );
    }
    let daily = windows_of(&transactions(&data), 86_400_000, 600_000, 0);
    assert_eq!(
        daily.keys().map(|(_, d)| *d).collect::<BTreeSet<_>>().len(),
        2,
        "days 1 and 2 close; day 3 waits for later events"
    );

    let host = ws.start_with_env(&[("HEADWATER_REDIS_URI", redis.url.as_str())]);
    let mut conn = connect(&redis);
    host.wait_for("every user's newest window in Redis", || {
        newest
            .iter()
            .all(|(user, (start, _, _))| {
                let stored: Option<i64> =
                    conn.hget(format!("user:{user}"), "window_start").unwrap();
                stored == Some(*start)
            })
            .then_some(())
    });
    for (user, (start, count, pages)) in &newest {
        let hash: HashMap<String, String> = conn.hgetall(format!("user:{user}")).unwrap();
        assert_eq!(
            hash["click_count_5min"],
            count.to_string(),
            "{user} {start}"
        );
        assert_eq!(
            hash["unique_pages_5min"],
            pages.to_string(),
            "{user} {start}"
        );
        assert_eq!(hash["window_end"], (start + 300_000).to_string());
    }
    let dead: Vec<Value> = jsonl(&ws.path("var/dlq/clicks-windows.jsonl"));
    assert!(
        !dead.is_empty(),
        "clicks past allowed lateness are dead letters"
    );

    let offline = ws.path("var/features/daily");
    host.wait_for("the closed days in Parquet", || {
        (parquet_rows(&offline).len() >= daily.len()).then_some(())
    });
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
    let rows = parquet_rows(&offline);
    assert_eq!(rows.len(), daily.len());
    for (path, row) in rows {
        let key = (
            row["user_id"].as_str().unwrap().to_owned(),
            row["window_start"].as_i64().unwrap(),
        );
        let txs = &daily[&key];
        let amounts: Vec<f64> = txs.iter().map(|t| t["amount"].as_f64().unwrap()).collect();
        let merchants: BTreeSet<&str> = txs
            .iter()
            .map(|t| t["merchant"].as_str().unwrap())
            .collect();
        assert_eq!(
            row["tx_count_1d"].as_u64().unwrap(),
            txs.len() as u64,
            "{key:?}"
        );
        let sum: f64 = amounts.iter().sum();
        assert!(
            (row["amount_sum_1d"].as_f64().unwrap() - sum).abs() < 1e-6,
            "{key:?}"
        );
        let max = amounts.iter().cloned().fold(f64::MIN, f64::max);
        assert!(
            (row["amount_max_1d"].as_f64().unwrap() - max).abs() < 1e-9,
            "{key:?}"
        );
        assert_eq!(
            row["merchants_1d"].as_u64().unwrap(),
            merchants.len() as u64
        );
        let day = chrono::DateTime::from_timestamp_millis(key.1)
            .unwrap()
            .format("date=%Y-%m-%d");
        assert!(
            path.display().to_string().contains(&day.to_string()),
            "{} for {key:?}",
            path.display()
        );
    }
}

/// The Kafka version as shipped (`examples/features/kafka`): the same clicks produced to a
/// 4-partition topic keyed by user, windowed by the Redis sink connector that reads it. Each
/// user's hash holds its newest fired window. A click counts unless its window is past the
/// watermark plus the allowed lateness; the watermark is the minimum over partitions, never
/// ahead of the file's, so a window holds at least the clicks the file order counts, and at
/// most all of its clicks: exactly them wherever no click of it was late in the file order.
#[test]
fn the_kafka_version_matches_a_plain_computation() {
    let redis = Service::start("redis");
    let broker = Service::start("tansu");
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\n",
        broker.url
    ));
    let dir = repo().join("examples/features/kafka/connectors.d");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        ws.put_config(path.file_name().unwrap().to_str().unwrap(), &config);
    }
    let clicks_file = ws.path("in/clicks.jsonl");
    python(
        &[
            repo().join("examples/features/clicks.py").to_str().unwrap(),
            clicks_file.to_str().unwrap(),
        ],
        &ws.path(""),
    );
    python(
        &[
            repo()
                .join("examples/features/kafka/produce.py")
                .to_str()
                .unwrap(),
            &broker.url,
            "clicks",
            clicks_file.to_str().unwrap(),
        ],
        &ws.path(""),
    );
    let clicks: Vec<(String, i64, Value)> = jsonl(&clicks_file)
        .into_iter()
        .map(|c| (c["user_id"].as_str().unwrap().to_owned(), ms(&c["ts"]), c))
        .collect();
    let counted = windows_of(&clicks, 300_000, 5_000, 60_000);
    let all = windows_of(&clicks, 300_000, 5_000, i64::MAX / 4);
    let summary = |rows: &[Value]| -> (u64, u64) {
        let pages: BTreeSet<&str> = rows.iter().map(|r| r["page"].as_str().unwrap()).collect();
        (rows.len() as u64, pages.len() as u64)
    };
    let mut newest: BTreeMap<String, i64> = BTreeMap::new();
    for (user, start) in counted.keys() {
        newest.insert(user.clone(), *start);
    }

    let host = ws.start_with_env(&[("HEADWATER_REDIS_URI", redis.url.as_str())]);
    let mut conn = connect(&redis);
    host.wait_for("every user's newest window in Redis", || {
        newest
            .iter()
            .all(|(user, start)| {
                let stored: Option<i64> =
                    conn.hget(format!("user:{user}"), "window_start").unwrap();
                stored == Some(*start)
            })
            .then_some(())
    });
    let mut exact = 0;
    for (user, start) in &newest {
        let hash: HashMap<String, String> = conn.hgetall(format!("user:{user}")).unwrap();
        let got = (
            hash["click_count_5min"].parse::<u64>().unwrap(),
            hash["unique_pages_5min"].parse::<u64>().unwrap(),
        );
        let key = (user.clone(), *start);
        let (low, high) = (summary(&counted[&key]), summary(&all[&key]));
        assert!(
            low.0 <= got.0 && got.0 <= high.0 && low.1 <= got.1 && got.1 <= high.1,
            "{user} {start}: {got:?} not within {low:?}..{high:?}"
        );
        if low == high {
            assert_eq!(got, low, "{user} {start}");
            exact += 1;
        }
        assert_eq!(hash["window_end"], (start + 300_000).to_string());
    }
    assert!(
        exact * 10 >= newest.len() * 9,
        "{exact} of {}",
        newest.len()
    );
    let dead: Vec<Value> = jsonl(&ws.path("var/dlq/clicks-stream.jsonl"));
    assert!(
        !dead.is_empty(),
        "clicks past allowed lateness are dead letters"
    );
    let log = host.log();
    assert!(host.stop().success());
    assert!(!log.contains("Connector task failed"), "{log}");
}
