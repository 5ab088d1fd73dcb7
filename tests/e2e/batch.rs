//! Bounded runs for schedulers (`headwater run --once`): a date-partitioned lake → per-user
//! daily features → Parquet `date=ds`, run per date with `--set ds=...`, checked against duckdb
//! over the same input; re-runs leave one copy; failures and too many dead letters exit
//! non-zero with the reason.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::Workspace;
use crate::postgres_cdc::{psql, query};
use crate::postgres_query::jdbc;

const DATES: [&str; 2] = ["2024-03-04", "2024-03-05"];

/// Transactions of `date`, in two files, out of event-time order (as partitioned extracts
/// arrive), with some users absent on some days.
fn write_lake(ws: &Workspace, date: &str, seed: u64) {
    let dir = ws.path(&format!("lake/transactions/date={date}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut state = seed;
    for part in 0..2 {
        let mut lines = String::new();
        for _ in 0..600 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let user = format!("u{:02}", state % (7 + seed % 5));
            let amount = (state % 10_000) as f64 / 100.0;
            let (h, m) = ((state >> 20) % 24, (state >> 30) % 60);
            lines.push_str(&format!(
                "{}\n",
                json!({"user_id": user, "amount": amount, "ts": format!("{date}T{h:02}:{m:02}:00Z")})
            ));
        }
        std::fs::write(dir.join(format!("part-{part}.jsonl")), lines).unwrap();
    }
}

/// The daily job of `examples/batch/connectors.d`: the lake's `date=${param:ds}` → per-user
/// daily features → Parquet, replacing the partitions a run writes (paths relative to the
/// workspace, where the runs start). `sink_extra` overrides keys of the sink.
fn daily_job(ws: &Workspace, sink_extra: Value) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/batch/connectors.d");
    for file in ["transactions-daily.json", "offline-daily.json"] {
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(example.join(file)).unwrap()).unwrap();
        if file.starts_with("offline") {
            for (k, v) in sink_extra.as_object().into_iter().flatten() {
                config["config"][k] = v.clone();
            }
        }
        ws.put_config(file, &config);
    }
}

/// `headwater run --once` in the workspace with `args`; its output.
fn run_once(ws: &Workspace, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_headwater"))
        .current_dir(ws.path(""))
        .args([
            "run",
            "--once",
            "--connectors-dir",
            "connectors.d",
            "--data-dir",
            "var",
        ])
        .args(
            ws.path("worker.toml")
                .exists()
                .then_some(["--config", "worker.toml"])
                .into_iter()
                .flatten(),
        )
        .args(args)
        .env("HEADWATER_LOG", "info")
        .output()
        .expect("run headwater run --once")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A connector's row of the run's summary: type, records in, records out, dead letters.
fn summary_row(out: &Output, connector: &str) -> Vec<String> {
    text(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|fields| fields.first().map(String::as_str) == Some(connector))
        .map(|fields| fields[1..].to_vec())
        .unwrap_or_default()
}

/// Compares the offline store's partition of `date` with duckdb's own aggregation of the lake,
/// user by user; `None` when equal, else what differs.
fn compare_with_duckdb(root: &Path, date: &str) -> Option<String> {
    let script = r#"
import sys, duckdb
root, date = sys.argv[1], sys.argv[2]
con = duckdb.connect()
got = con.execute(
    "select user_id, total_amount, transaction_count, avg_amount, max_amount "
    "from read_parquet(?) order by user_id", [f"{root}/offline/user-daily/date={date}/*.parquet"]).fetchall()
want = con.execute(
    "select user_id, sum(amount), count(*), avg(amount), max(amount) "
    "from read_json_auto(?) group by user_id order by user_id",
    [f"{root}/lake/transactions/date={date}/*.jsonl"]).fetchall()
def same(a, b):
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and abs(x - y) <= 1e-9 * max(1, abs(y)))
        for x, y in zip(a, b))
if len(got) != len(want) or not all(same(g, w) for g, w in zip(got, want)):
    print("headwater:", got)
    print("duckdb:   ", want)
    sys.exit(1)
files = con.execute("select count(*) from glob(?)", [f"{root}/offline/user-daily/date={date}/*.parquet"]).fetchone()[0]
print(len(got), files)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root)
        .arg(date)
        .output()
        .expect("run python3 with duckdb");
    if out.status.success() {
        let shown = text(&out.stdout);
        let mut counts = shown.split_whitespace();
        let users: usize = counts.next()?.parse().ok()?;
        let files: usize = counts.next()?.parse().ok()?;
        (users == 0 || files != 1).then(|| format!("{users} users in {files} files"))
    } else {
        Some(format!("{}{}", text(&out.stdout), text(&out.stderr)))
    }
}

#[test]
fn a_daily_job_run_per_date_matches_duckdb_and_a_rerun_leaves_one_copy() {
    let ws = Workspace::new();
    write_lake(&ws, DATES[0], 11);
    write_lake(&ws, DATES[1], 23);
    daily_job(&ws, json!({}));
    for date in [DATES[0], DATES[1], DATES[0]] {
        let out = run_once(&ws, &["--set", &format!("ds={date}")]);
        assert!(
            out.status.success(),
            "the run of {date} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        // One result per user of the day out of 1,200 records in.
        let row = summary_row(&out, "transactions-daily");
        assert_eq!(row[..2], ["source", "1200"], "{}", text(&out.stdout));
        assert_eq!(summary_row(&out, "offline-daily")[1], row[2]);
        // One file for the day's partition (the flush size is larger than the run).
        assert_eq!(summary_row(&out, "offline-daily")[4], "1");
        assert!(text(&out.stdout).contains("Run complete"));
    }
    for date in DATES {
        if let Some(diff) = compare_with_duckdb(ws.path("").as_path(), date) {
            panic!("date {date}: {diff}");
        }
    }
    // Feast's own SDK serves point-in-time features from the store: a day's features from the
    // end of that day on (its window_end, a TIMESTAMP column), for two days (the view's ttl).
    assert_feast_serves_the_days(&ws);
    // The lake changes (a late correction): re-running the date replaces its partition.
    std::fs::remove_file(ws.path(&format!("lake/transactions/date={}/part-1.jsonl", DATES[1])))
        .unwrap();
    let out = run_once(&ws, &["--set", &format!("ds={}", DATES[1])]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        summary_row(&out, "transactions-daily")[..2],
        ["source", "600"]
    );
    if let Some(diff) = compare_with_duckdb(ws.path("").as_path(), DATES[1]) {
        panic!("date {} after the correction: {diff}", DATES[1]);
    }
    // Nothing staged is left beside the store.
    let beside: Vec<String> = std::fs::read_dir(ws.path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("staging"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}

#[test]
fn a_bounded_run_fails_with_the_reason() {
    let ws = Workspace::new();
    write_lake(&ws, DATES[0], 5);
    // No --set ds: the placeholder is named, nothing runs.
    daily_job(&ws, json!({}));
    let out = run_once(&ws, &[]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("parameter ds is not set") && stderr.contains("--set ds=<value>"),
        "{stderr}"
    );
    let validate = Command::new(env!("CARGO_BIN_EXE_headwater"))
        .current_dir(ws.path(""))
        .args(["validate", "--once", "connectors.d/transactions-daily.json"])
        .output()
        .unwrap();
    assert!(!validate.status.success());
    assert!(
        text(&validate.stdout).contains("${param:ds}"),
        "{}",
        text(&validate.stdout)
    );

    // No sink of the run reads the source's topic: nothing could, so the run fails at once,
    // naming the topic, rather than drop the records or wait forever.
    daily_job(&ws, json!({"topics": "elsewhere"}));
    let out = run_once(&ws, &["--set", &format!("ds={}", DATES[0])]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("connector transactions-daily failed")
            && stderr.contains("no sink of this run subscribes to topic(s) \"user-daily\""),
        "{stderr}"
    );

    // A sink that cannot write: the run ends non-zero, naming the connector and why.
    std::fs::write(ws.path("blocked"), "a file where a directory should be").unwrap();
    daily_job(
        &ws,
        json!({"path": ws.path("blocked/offline").display().to_string()}),
    );
    let out = run_once(&ws, &["--set", &format!("ds={}", DATES[0])]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("connector offline-daily failed") && stderr.contains("blocked"),
        "{stderr}"
    );

    // Dead letters over the limit.
    daily_job(&ws, json!({}));
    let lake = ws.path(&format!("lake/transactions/date={}/part-2.jsonl", DATES[0]));
    std::fs::write(
        &lake,
        "{\"user_id\":\"u1\",\"amount\":\"lots\",\"ts\":\"2024-03-04T01:00:00Z\"}\n\
         {\"user_id\":\"u2\",\"amount\":\"many\",\"ts\":\"2024-03-04T02:00:00Z\"}\n",
    )
    .unwrap();
    let out = run_once(
        &ws,
        &[
            "--set",
            &format!("ds={}", DATES[0]),
            "--max-dead-letters",
            "1",
        ],
    );
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("2 dead letters, more than --max-dead-letters 1"),
        "{stderr}"
    );
    // Started again with the same configs and parameters, the interrupted run resumes; its
    // output is one copy (the results it staged before the stop are not written twice).
    let out = run_once(
        &ws,
        &[
            "--set",
            &format!("ds={}", DATES[0]),
            "--max-dead-letters",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(summary.contains("Resumed the interrupted run"), "{summary}");
    let users = |root: &Path| {
        let script = r#"
import sys, duckdb
print(duckdb.connect().execute(f"select count(*), count(distinct user_id), sum(transaction_count) from '{sys.argv[1]}/*.parquet'").fetchone())
"#;
        let out = Command::new("python3")
            .args(["-c", script])
            .arg(root.join(format!("offline/user-daily/date={}", DATES[0])))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };
    // One row per user; the two refused records counted nowhere.
    let expected = users(ws.path("").as_path());
    assert!(expected.ends_with(", 1200)"), "{expected}");
    let (rows, distinct) = {
        let inner = expected.trim_matches(|c| c == '(' || c == ')');
        let mut parts = inner.split(", ");
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    assert_eq!(rows, distinct, "one row per user: {expected}");
    // A fresh run of the date (the last one completed) counts its dead letters in the summary.
    let out = run_once(
        &ws,
        &[
            "--set",
            &format!("ds={}", DATES[0]),
            "--max-dead-letters",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    assert!(
        summary.contains("2 dead letters (limit 2)") && !summary.contains("Resumed"),
        "{summary}"
    );
    assert_eq!(users(ws.path("").as_path()), expected);
}

/// A QuerySource in a bounded run makes one pass over its query (the chapter's JDBC read for
/// one day) and the run ends; its sink holds every row once, and running the day again (the
/// run completed) reads it again from the start.
#[test]
fn a_query_source_reads_one_pass_for_the_date_and_the_run_ends() {
    let pg = crate::harness::Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE tx (id serial PRIMARY KEY, user_id text, amount numeric(10,2), \
         updated_at timestamp NOT NULL); \
         INSERT INTO tx (user_id, amount, updated_at) \
         SELECT 'u' || (i % 5), i, timestamp '2024-03-04' + i * interval '1 minute' \
         FROM generate_series(1, 3000) i;",
    );
    let ws = Workspace::new();
    ws.put_config(
        "query.json",
        &json!({"name": "tx-query", "config": {
            "connection.url": jdbc(&pg),
            "connector.class": "headwater.postgres.QuerySource",
            "mode": "incrementing",
            "incrementing.column.name": "id",
            "query": "SELECT id, user_id, amount FROM tx \
                      WHERE updated_at >= '${param:ds}' AND updated_at < date '${param:ds}' + 1",
            "topic.prefix": "tx-day",
            "batch.max.rows": "500",
        }}),
    );
    ws.put_config(
        "sink.json",
        &ws.file_sink("tx-file", "tx-day", "out/tx.jsonl"),
    );
    for (run, expected) in [("first", 1439), ("again", 2878)] {
        let out = run_once(&ws, &["--set", "ds=2024-03-04"]);
        assert!(
            out.status.success(),
            "{run} run: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert_eq!(
            summary_row(&out, "tx-query"),
            ["source", "1439", "1439", "0", "-"]
        );
        let rows = crate::harness::sink_values(&ws.path("out/tx.jsonl"));
        // The FileSink appends: the second complete run of the date adds its rows again.
        assert_eq!(rows.len(), expected, "{run} run");
    }
}

/// `timestamp.from` and `timestamp.until` select what PostgreSQL's own comparison with the
/// bounds as `timestamptz` selects (in UTC, as the source's sessions), whatever the column's
/// type: the source compares them in the column's type (a bound with an offset counts), and
/// reads the cursor from the row's own columns where it can.
#[test]
fn the_time_window_selects_what_postgresql_does_for_each_column_type() {
    let pg = crate::harness::Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE w (id bigint PRIMARY KEY, ts timestamp, tz timestamptz, d date, n int); \
         INSERT INTO w SELECT i, t, t AT TIME ZONE 'UTC', t::date, i \
         FROM (SELECT i, timestamp '2024-03-04 12:00' + i * interval '17 minutes' AS t \
               FROM generate_series(1, 300) i) s;",
    );
    let (from, until) = ("2024-03-05T00:00:00+02:00", "2024-03-06 03:30");
    let ws = Workspace::new();
    // Each column's type, with the incrementing cursor on a `bigint` of the row (`id`) and on
    // an `int` (`n`, selected as a `bigint` after the row), and the timestamp mode on each.
    let cases = [
        ("ts", "incrementing", "id"),
        ("tz", "incrementing", "n"),
        ("d", "incrementing", "id"),
        ("ts", "timestamp", ""),
        ("tz", "timestamp+incrementing", "id"),
        ("d", "timestamp", ""),
    ];
    for (i, (column, mode, incrementing)) in cases.iter().enumerate() {
        let mut config = json!({
            "connector.class": "headwater.postgres.QuerySource",
            "connection.url": jdbc(&pg),
            "table": "w",
            "mode": mode,
            "timestamp.column.name": column,
            "timestamp.from": from,
            "timestamp.until": until,
            "topic.prefix": format!("case{i}-"),
        });
        if !incrementing.is_empty() {
            config["incrementing.column.name"] = json!(incrementing);
        }
        ws.put_config(
            &format!("source-{i}.json"),
            &json!({"name": format!("window-{i}"), "config": config}),
        );
        ws.put_config(
            &format!("sink-{i}.json"),
            &ws.file_sink(
                &format!("file-{i}"),
                &format!("case{i}-w"),
                &format!("out/{i}.jsonl"),
            ),
        );
    }
    let out = run_once(&ws, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for (i, (column, mode, _)) in cases.iter().enumerate() {
        let expected = query(
            &pg,
            &format!(
                "SET TIME ZONE 'UTC'; SELECT id FROM w WHERE {column} >= '{from}'::timestamptz \
                 AND {column} < '{until}'::timestamptz ORDER BY id"
            ),
        );
        let expected: Vec<i64> = expected.lines().filter_map(|l| l.parse().ok()).collect();
        assert!(!expected.is_empty(), "the window selects rows");
        assert_eq!(
            written_ids(&ws, &format!("out/{i}.jsonl")),
            expected,
            "{column} in mode {mode}"
        );
    }
}

/// A partitioned read takes every row once: over a NOT NULL column (each range bounded by its
/// index) and over a nullable one, whose NULLs the first range takes, as Spark's does.
#[test]
fn a_partitioned_read_takes_every_row_once_nulls_included() {
    let pg = crate::harness::Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE keyed (id bigint PRIMARY KEY, v int); \
         INSERT INTO keyed SELECT i, i FROM generate_series(1, 1000) i; \
         CREATE TABLE loose (id bigint PRIMARY KEY, bucket int); CREATE INDEX ON loose (bucket); \
         INSERT INTO loose SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE i END \
         FROM generate_series(1, 1000) i;",
    );
    let ws = Workspace::new();
    for (table, column) in [("keyed", "id"), ("loose", "bucket")] {
        ws.put_config(
            &format!("{table}.json"),
            &json!({"name": format!("{table}-read"), "config": {
                "connector.class": "headwater.postgres.QuerySource",
                "connection.url": jdbc(&pg),
                "table": table,
                "mode": "incrementing",
                "incrementing.column.name": "id",
                "partition.column": column,
                "partition.lower.bound": "1",
                "partition.upper.bound": "1001",
                "partition.count": "4",
                "topic.prefix": "all-",
            }}),
        );
        ws.put_config(
            &format!("{table}-sink.json"),
            &ws.file_sink(
                &format!("{table}-file"),
                &format!("all-{table}"),
                &format!("out/{table}.jsonl"),
            ),
        );
    }
    let out = run_once(&ws, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    for table in ["keyed", "loose"] {
        assert_eq!(
            written_ids(&ws, &format!("out/{table}.jsonl")),
            (1..=1000).collect::<Vec<i64>>(),
            "{table}"
        );
    }
}

/// The `id`s of the rows a FileSink wrote to `file` (in the workspace), sorted.
fn written_ids(ws: &Workspace, file: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = crate::harness::sink_values(&ws.path(file))
        .iter()
        .filter_map(|row| row["id"].as_i64())
        .collect();
    ids.sort_unstable();
    ids
}

/// `get_historical_features` of Feast's SDK over the offline store, for every user at noon of
/// the day after each date, against duckdb's aggregation of that date in the lake.
fn assert_feast_serves_the_days(ws: &Workspace) {
    let root = ws.path("");
    let expected_script = r#"
import sys, json, duckdb
root = sys.argv[1]
rows = duckdb.connect().execute(
    "select user_id, strftime(ts::timestamp, '%Y-%m-%d') as day, sum(amount), count(*) "
    "from read_json_auto(?) group by all order by all",
    [f"{root}/lake/transactions/*/*.jsonl"]).fetchall()
print(json.dumps(rows))
"#;
    let out = Command::new("python3")
        .args(["-c", expected_script])
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let expected: Vec<(String, String, f64, i64)> = serde_json::from_slice(&out.stdout).unwrap();
    // Noon of the next day: the day's window ended at midnight, so it is the newest row.
    let next_noon = |day: &str| {
        let date = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        format!("{}T12:00:00+00:00", date.succ_opt().unwrap())
    };
    let entity_rows: Vec<Value> = expected
        .iter()
        .map(|(user, day, _, _)| json!({"user_id": user, "event_timestamp": next_noon(day)}))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/batch/feast_historical.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(ws.path("feast"))
        .arg(ws.path("offline/user-daily"))
        .arg(Value::from(entity_rows).to_string())
        .output()
        .expect("run feast_historical.py");
    assert!(
        out.status.success(),
        "Feast's SDK failed (is feast installed? run scripts/setup.sh):\n{}",
        text(&out.stderr)
    );
    let served: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served.len(), expected.len(), "{served:?}");
    for (user, day, total, count) in &expected {
        let row = served
            .iter()
            .find(|r| r["user_id"] == *user && r["event_timestamp"] == next_noon(day))
            .unwrap_or_else(|| panic!("no row for {user} after {day}: {served:?}"));
        let got = row["total_amount"].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - total).abs() <= 1e-9 * total.abs().max(1.0),
            "{user} {day}: Feast served {row}, the lake sums {total}"
        );
        assert_eq!(row["transaction_count"], json!(count), "{user} {day}");
    }
}

/// Spark's partitioned JDBC read of one day (`timestamp.from`/`until` from `${param:ds}`, four
/// ranges of the id read concurrently) into a staged Parquet run, killed with `kill -9` midway
/// and run again: every row of the day once in the output, none of another day.
#[test]
fn a_partitioned_read_of_a_day_killed_midway_and_rerun_writes_every_row_once() {
    let pg = crate::harness::Service::start("postgres");
    // Two days of transactions, 120,000 rows each, ids interleaved across the days.
    psql(
        &pg,
        "postgres",
        "CREATE TABLE tx (id bigint PRIMARY KEY, user_id text, amount_cents bigint, \
         updated_at timestamp NOT NULL); \
         INSERT INTO tx SELECT i, 'u' || (i % 97), (i * 7919) % 100000, \
         timestamp '2024-03-04' + (i % 2) * interval '1 day' + (i % 86400) * interval '1 second' \
         FROM generate_series(1, 240000) i;",
    );
    let ws = Workspace::new();
    ws.put_config(
        "query.json",
        &day_query(
            &pg,
            240_000,
            json!({"topic.prefix": "day-", "batch.max.rows": "1000"}),
        ),
    );
    ws.put_config(
        "offline.json",
        &json!({"name": "tx-offline", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "day-tx",
            "path": ws.path("offline").display().to_string(),
            "write.mode": "overwrite-partitions",
            "flush.size": "5000",
            "rotate.interval.ms": "3600000",
        }}),
    );
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_headwater"))
            .current_dir(ws.path(""))
            .args([
                "run",
                "--once",
                "--set",
                "ds=2024-03-05",
                "--connectors-dir",
                "connectors.d",
                "--data-dir",
                "var",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(ws.path("first.log")).unwrap())
            .spawn()
            .expect("start headwater run --once")
    };
    let mut first = start();
    // Killed once a file of the run is committed to its staging directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let staged = || {
        std::fs::read_dir(ws.path("")).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".offline.staging-")
                && walk_parquet(&e.path()) > 0
        })
    };
    while !staged() {
        assert!(std::time::Instant::now() < deadline, "nothing was staged");
        assert!(
            first.try_wait().unwrap().is_none(),
            "the run ended before it could be killed:\n{}",
            std::fs::read_to_string(ws.path("first.log")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let record = std::fs::read_to_string(ws.path("var/bounded-runs/tx-query.json")).unwrap();
    assert!(
        record.contains("\"complete\":false"),
        "killed midway: {record}"
    );
    assert!(
        !ws.path("offline").exists(),
        "nothing is published before the run completes"
    );

    let second = run_once(&ws, &["--set", "ds=2024-03-05"]);
    assert!(
        second.status.success(),
        "{}{}",
        text(&second.stdout),
        text(&second.stderr)
    );
    assert!(text(&second.stdout).contains("Resumed the interrupted run"));
    let want = query(
        &pg,
        "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || sum(amount_cents) FROM tx \
         WHERE updated_at >= '2024-03-05' AND updated_at < '2024-03-06'",
    );
    let script = r#"
import sys, duckdb
print(*duckdb.connect().execute(
    "select count(*), count(distinct id), sum(amount_cents) from read_parquet(?)",
    [sys.argv[1] + "/day-tx/*/*.parquet"]).fetchone())
"#;
    let got = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("offline"))
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(
        text(&got.stdout).trim(),
        want.trim(),
        "rows of the day in the output (count, distinct ids, sum)"
    );
}

/// Parquet files under `dir`, at any depth.
fn walk_parquet(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    walk_parquet(&path)
                } else {
                    usize::from(path.extension().is_some_and(|x| x == "parquet"))
                }
            })
            .sum()
    })
}

/// The chapter's batch job over PostgreSQL: one day of transactions read as Spark's JDBC reader
/// does (4 ranges of the id, `updated_at` within the day), per-user daily `total_amount`,
/// `transaction_count`, `avg_amount` and `last_transaction` into Parquet `date=ds`; two dates,
/// then the first again: one copy of each, equal to PostgreSQL's own `GROUP BY`.
#[test]
fn the_daily_job_over_postgresql_matches_its_group_by() {
    let pg = crate::harness::Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE tx (id bigint PRIMARY KEY, user_id text, amount numeric(10,2), \
         updated_at timestamp NOT NULL); \
         INSERT INTO tx SELECT i, 'u' || (i * 31 % 13), (i * 7919 % 10000) / 100.0, \
         timestamp '2024-03-04' + (i % 3) * interval '1 day' + (i * 17 % 86400) * interval '1 second' \
         FROM generate_series(1::bigint, 30000) i;",
    );
    let ws = Workspace::new();
    ws.put_config(
        "query.json",
        &day_query(
            &pg,
            30_000,
            json!({
                "topic.prefix": "pg-",
                "transforms": "daily",
                "transforms.daily.type": "headwater.window.Aggregate",
                "transforms.daily.group.by": "user_id",
                "transforms.daily.window.size.ms": "86400000",
                "transforms.daily.time.field": "updated_at",
                "transforms.daily.aggregates": "total_amount:sum(amount),transaction_count:count,avg_amount:avg(amount),last_transaction:last(updated_at)",
                "transforms.daily.output.topic": "user-daily",
            }),
        ),
    );
    ws.put_config(
        "offline.json",
        &json!({"name": "offline", "config": {
            "connector.class": "headwater.parquet.ParquetSink",
            "topics": "user-daily",
            "path": "offline",
            "partition.field": "window_start",
            "timestamp.columns": "window_start,window_end,last_transaction",
            "write.mode": "overwrite-partitions",
        }}),
    );
    for date in ["2024-03-04", "2024-03-05", "2024-03-04"] {
        let out = run_once(&ws, &["--set", &format!("ds={date}")]);
        assert!(
            out.status.success(),
            "{date}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    let script = r#"
import sys, duckdb
for row in duckdb.connect().execute(
        "select date, user_id, round(total_amount, 2), transaction_count, round(avg_amount, 6), "
        "strftime(last_transaction, '%Y-%m-%d %H:%M:%S') "
        "from read_parquet(?, hive_partitioning=true) order by all",
        [sys.argv[1] + "/user-daily/*/*.parquet"]).fetchall():
    print(",".join(str(v) for v in row))
"#;
    let got = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("offline"))
        .output()
        .unwrap();
    assert!(got.status.success(), "{}", text(&got.stderr));
    let want = query(
        &pg,
        "SELECT updated_at::date, user_id, round(sum(amount), 2), count(*), \
         round(avg(amount), 6), to_char(max(updated_at), 'YYYY-MM-DD HH24:MI:SS') FROM tx \
         WHERE updated_at < '2024-03-06' GROUP BY 1, 2 ORDER BY 1, 2",
    );
    let normalize = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                l.split(',')
                    .map(|v| match v.parse::<f64>() {
                        Ok(n) if v.contains('.') => format!("{n}"),
                        _ => v.to_owned(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    assert_eq!(normalize(text(&got.stdout).trim()), normalize(&want));
}

/// A CDC connector in a bounded run reads its tables' snapshot (`snapshot.mode=initial_only`)
/// on a temporary slot of its own, and ends: the events are Debezium's `r` reads, and no slot
/// is left to pin WAL between runs; a streaming config (`initial`) is refused for the run.
#[test]
fn a_cdc_snapshot_runs_once_on_a_temporary_slot() {
    use crate::postgres_cdc::cdc_to_file;
    let pg = crate::harness::Service::start("postgres");
    psql(
        &pg,
        "postgres",
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text); \
         INSERT INTO accounts SELECT i, 'owner-' || i FROM generate_series(1, 500) i;",
    );
    let ws = cdc_to_file(
        &pg,
        "once",
        "public.accounts",
        json!({"snapshot.mode": "initial_only"}),
    );
    for (run, expected) in [("first", 500), ("second", 1000)] {
        let out = run_once(&ws, &[]);
        assert!(
            out.status.success(),
            "{run}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        let events = crate::harness::jsonl(&ws.path("out/once.jsonl"));
        assert_eq!(events.len(), expected, "{run} run");
        assert!(events.iter().all(|e| e["value"]["payload"]["op"] == "r"));
        assert_eq!(
            query(&pg, "SELECT count(*) FROM pg_replication_slots").trim(),
            "0",
            "no slot outlives the run"
        );
    }
    ws.put_config(
        "cdc.json",
        &crate::postgres_cdc::cdc_config(&pg, "once-cdc", "app", "public.accounts", json!({})),
    );
    let out = run_once(&ws, &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("snapshot.mode=initial_only"),
        "{}",
        text(&out.stderr)
    );
}

/// A sink reading Kafka in a bounded run reads its topic up to the end offsets it had when the
/// run started, then the run ends; the next run (its offsets are its own) reads it all again,
/// records produced meanwhile included.
#[test]
fn a_kafka_fed_sink_reads_to_the_end_offsets_at_the_start_and_the_run_ends() {
    use crate::kafka::{client, file_sink, kafka_workspace, produce_ids};
    let broker = crate::harness::Service::start("tansu");
    client(&["create", &broker.url, "events", "2"]);
    produce_ids(&broker.url, "events", 0, 1000);
    let ws = kafka_workspace(&broker);
    ws.put_config(
        "sink.json",
        &file_sink(&ws, "events-file", "events", "out/events.jsonl", json!({})),
    );
    let ids = |ws: &Workspace| -> Vec<i64> {
        let mut ids: Vec<i64> = crate::harness::jsonl(&ws.path("out/events.jsonl"))
            .iter()
            .filter_map(|l| l["value"]["id"].as_i64())
            .collect();
        ids.sort_unstable();
        ids
    };
    let out = run_once(&ws, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        ids(&ws),
        (0..1000).collect::<Vec<_>>(),
        "{}",
        text(&out.stderr)
    );
    produce_ids(&broker.url, "events", 1000, 500);
    let out = run_once(&ws, &[]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(summary_row(&out, "events-file")[..2], ["sink", "1500"]);
    assert_eq!(ids(&ws).len(), 2500);
}

/// A QuerySource reading table `tx` (ids 1..=`rows`) for the day `${param:ds}` as Spark's JDBC
/// reader does: `mode=incrementing` on the id, 4 ranges of it, `updated_at` within the day;
/// `extra` adds keys (the topic prefix, transforms).
fn day_query(pg: &crate::harness::Service, rows: u64, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "headwater.postgres.QuerySource",
        "connection.url": jdbc(pg),
        "table": "tx",
        "mode": "incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at",
        "timestamp.from": "${param:ds}",
        "timestamp.until": "${param:ds} 23:59:59.999999",
        "partition.column": "id",
        "partition.lower.bound": "1",
        "partition.upper.bound": (rows + 1).to_string(),
        "partition.count": "4",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    json!({"name": "tx-query", "config": config})
}
