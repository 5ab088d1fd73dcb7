//! The book chapter's streaming job on a real Kafka-protocol broker (tansu): click events in a
//! multi-partition topic, 5-minute tumbling windows per user with a 5-second watermark, in sink
//! connectors that read the topic — into Redis (`user:<id>` hashes) and into a file that keeps
//! every window — checked against a plain computation, through `kill -9`s; and the watermark
//! across partitions (a fast partition never makes a slow one's records late; an idle one stops
//! holding windows back after its timeout).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redis::Commands;
use serde_json::{Value, json};

use crate::harness::{Service, Workspace, jsonl};
use crate::redis_sink::connect;

const SIZE: i64 = 300_000;
const DELAY: i64 = 5_000;
/// 2025-06-01T08:00:00Z, as flink-bench's clicks start.
const T0: i64 = 1_748_764_800_000;

/// Click `i`: ~150 ms apart, up to 3 s out of order (less than the watermark delay, so no
/// click is late whatever the interleaving of partitions), 23 users, 9 pages.
fn click(i: i64) -> (String, String, i64) {
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = (h >> 40) as i64 % 3_000;
    (
        format!("user{}", (h >> 8) % 23),
        format!("/page/{}", (h >> 20) % 9),
        T0 + i * 150 - jitter,
    )
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Produces clicks `ids` with rdkafka, click `i` to partition `i % partitions`, keyed by its
/// page (not by the user the windows group by).
fn produce(bootstrap: &str, topic: &str, partitions: i32, ids: impl IntoIterator<Item = i64>) {
    produce_routed(bootstrap, topic, ids, |i| {
        let (_, page, _) = click(i);
        ((i % i64::from(partitions)) as i32, page)
    });
}

/// The partition of a user's clicks in a topic keyed by user (`user7` → 7 mod `partitions`).
fn user_partition(user: &str, partitions: i32) -> i32 {
    let n: i32 = user
        .trim_start_matches("user")
        .parse()
        .expect("a user number");
    n % partitions
}

/// Produces clicks `ids` to a topic keyed by user: all of a user's clicks in one partition.
pub(crate) fn produce_by_user(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    ids: std::ops::Range<i64>,
) {
    produce_routed(bootstrap, topic, ids, |i| {
        let (user, _, _) = click(i);
        (user_partition(&user, partitions), user)
    });
}

/// Produces clicks `ids`, each to the (partition, key) `route` gives.
fn produce_routed(
    bootstrap: &str,
    topic: &str,
    ids: impl IntoIterator<Item = i64>,
    route: impl Fn(i64) -> (i32, String),
) {
    let records = ids.into_iter().map(|i| {
        let (user, page, t) = click(i);
        let value =
            json!({"user_id": user, "page_id": page, "action": "view", "event_time": iso(t)})
                .to_string();
        let (partition, key) = route(i);
        (partition, key, value, None)
    });
    crate::kafka::produce_one_per_batch(bootstrap, topic, records);
}

fn produce_raw(bootstrap: &str, topic: &str, partition: i32, value: &str) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("create a test producer");
    producer
        .send(
            BaseRecord::<str, str>::to(topic)
                .partition(partition)
                .payload(value),
        )
        .expect("queue a test record");
    producer
        .flush(crate::kafka::DELIVERY_PATIENCE)
        .expect("test record delivered");
}

fn create_topic(broker: &Service, topic: &str, partitions: i32) {
    crate::kafka::client(&["create", &broker.url, topic, &partitions.to_string()]);
}

pub(crate) type Windows = BTreeMap<(String, i64), (u64, u64)>;

/// Every window of clicks `range` that has fired once each partition's newest click is in:
/// the watermark is the minimum over partitions of their newest event time minus the delay,
/// and a window fires when it reaches the window's last millisecond.
fn reference(range: std::ops::Range<i64>, partitions: i64) -> Windows {
    fired(
        range,
        partitions as usize,
        |i, _| (i % partitions) as usize,
        true,
    )
}

/// Every window of clicks `range` (a topic keyed by user) that has fired when each partition's
/// windows follow that partition's own watermark (state per partition).
pub(crate) fn reference_per_partition(range: std::ops::Range<i64>, partitions: i32) -> Windows {
    fired(
        range,
        partitions as usize,
        |_, user| user_partition(user, partitions) as usize,
        false,
    )
}

/// The windows of clicks `range`, click `i` of `user` in partition `partition_of(i, user)`,
/// that the watermark has fired: the minimum over partitions (`shared`), else that of the
/// window's own partition.
fn fired(
    range: std::ops::Range<i64>,
    partitions: usize,
    partition_of: impl Fn(i64, &str) -> usize,
    shared: bool,
) -> Windows {
    let mut newest = vec![i64::MIN; partitions];
    // (clicks, pages, partition of the newest click)
    let mut windows: BTreeMap<(String, i64), (u64, BTreeSet<String>, usize)> = BTreeMap::new();
    for i in range {
        let (user, page, t) = click(i);
        let p = partition_of(i, &user);
        newest[p] = newest[p].max(t);
        let w = windows
            .entry((user, t.div_euclid(SIZE) * SIZE))
            .or_default();
        w.0 += 1;
        w.1.insert(page);
        w.2 = p;
    }
    let min = newest.iter().min().copied().unwrap_or(i64::MIN);
    windows
        .into_iter()
        .filter(|((_, start), (_, _, p))| {
            let watermark = if shared { min } else { newest[*p] }.saturating_sub(DELAY);
            start + SIZE - 1 <= watermark
        })
        .map(|(k, (n, pages, _))| (k, (n, pages.len() as u64)))
        .collect()
}

pub(crate) fn window_config(extra: Value) -> Value {
    let mut config = json!({
        "topics": "click-events",
        "transforms": "window",
        "transforms.window.type": "headwater.window.Aggregate",
        "transforms.window.group.by": "user_id",
        "transforms.window.window.size.ms": SIZE.to_string(),
        "transforms.window.time.field": "event_time",
        "transforms.window.watermark.delay.ms": DELAY.to_string(),
        "transforms.window.aggregates": "click_count_5min:count,unique_pages_5min:count_distinct(page_id)",
        "transforms.window.late.records": "dlq",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        "errors.tolerance": "all",
    });
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    config
}

/// The last result per (user, window start) in the file sink's output.
pub(crate) fn file_windows(ws: &Workspace) -> Windows {
    let mut out = Windows::new();
    // The sink's value converter (schemaless JSON) also writes its lines.
    for line in jsonl(&ws.path("out/windows.jsonl")) {
        let v = &line["value"];
        let key = (
            v["user_id"].as_str().unwrap_or_default().to_owned(),
            v["window_start"].as_i64().unwrap_or_default(),
        );
        assert_eq!(v["window_end"].as_i64(), Some(key.1 + SIZE), "{v}");
        out.insert(
            key,
            (
                v["click_count_5min"].as_u64().unwrap_or_default(),
                v["unique_pages_5min"].as_u64().unwrap_or_default(),
            ),
        );
    }
    out
}

fn kafka_workspace(broker: &Service) -> Workspace {
    kafka_workspace_at(&broker.url)
}

/// A workspace whose worker reaches Kafka at `bootstrap`.
pub(crate) fn kafka_workspace_at(bootstrap: &str) -> Workspace {
    let ws = Workspace::new();
    ws.put_worker_config(&format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n"));
    ws
}

/// The chapter's job: a 4-partition topic keyed by page, windowed per user into Redis and into
/// a file, through three `kill -9`s at arbitrary points, equals an uninterrupted computation.
#[test]
fn a_four_partition_topic_windowed_per_user_survives_three_kill_9s() {
    const PARTITIONS: i32 = 4;
    const PHASE: i64 = 6_000;
    let broker = Service::start("tansu");
    let redis = Service::start("redis");
    create_topic(&broker, "click-events", PARTITIONS);
    let ws = kafka_workspace(&broker);
    ws.put_config(
        "online.json",
        &json!({"name": "clicks-online", "config": window_config(json!({
            "connector.class": "headwater.redis.RedisSink",
            "redis.uri": redis.url,
            "key.prefix": "user:",
            "key.fields": "user_id",
            "timestamp.field": "window_end",
        }))}),
    );
    let mut audit = ws.file_sink("clicks-audit", "click-events", "out/windows.jsonl");
    for (k, v) in window_config(json!({})).as_object().unwrap() {
        audit["config"][k] = v.clone();
    }
    ws.put_config("audit.json", &audit);

    let mut host = ws.start();
    for phase in 0..4 {
        produce(
            &broker.url,
            "click-events",
            PARTITIONS,
            phase * PHASE..(phase + 1) * PHASE,
        );
        // A poison record: no usable event time. It is a dead letter with the reason.
        if phase == 1 {
            produce_raw(
                &broker.url,
                "click-events",
                2,
                r#"{"user_id":"x","page_id":"/"}"#,
            );
        }
        let fired = reference(0..(phase + 1) * PHASE, i64::from(PARTITIONS)).len();
        host.wait_for("some windows of this phase", || {
            (file_windows(&ws).len() * 2 > fired).then_some(())
        });
        if phase < 3 {
            host.kill9();
            host = ws.start();
        }
    }
    let expected = reference(0..4 * PHASE, i64::from(PARTITIONS));
    assert!(expected.len() > 200, "{} windows", expected.len());
    let got = host.wait_for("every window in the file", || {
        let got = file_windows(&ws);
        (got.len() >= expected.len()).then_some(got)
    });
    let wrong = differing(&expected, &got);
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "windows differ from the reference: {wrong:?}\n{}",
        host.log()
    );

    // Redis: each user's hash holds its newest window.
    let mut conn = connect(&redis);
    let mut newest: BTreeMap<&str, (i64, (u64, u64))> = BTreeMap::new();
    for ((user, start), counts) in &expected {
        newest.insert(user, (*start, *counts));
    }
    host.wait_for("every user's newest window in Redis", || {
        newest
            .iter()
            .all(|(user, (start, (count, pages)))| {
                let hash: BTreeMap<String, String> =
                    conn.hgetall(format!("user:{user}")).unwrap_or_default();
                hash.get("window_end") == Some(&(start + SIZE).to_string())
                    && hash.get("click_count_5min") == Some(&count.to_string())
                    && hash.get("unique_pages_5min") == Some(&pages.to_string())
            })
            .then_some(())
    });
    // At least once: a replay after a crash may dead-letter it again.
    let dead = jsonl(&ws.path("var/dlq/clicks-audit.jsonl"));
    assert!(!dead.is_empty());
    for letter in &dead {
        let text = letter.to_string();
        assert!(
            text.contains("event_time") && text.contains("expected epoch milliseconds"),
            "{text}"
        );
    }
    // Aligned intake asks librdkafka for partition ends: they are not logged as client errors.
    let log = host.log();
    assert!(!log.contains("PartitionEOF"), "{log}");
    assert!(host.stop().success());
}

/// A file sink windowing a topic keyed by user with state per partition (`tasks.max` 2).
fn partitioned_workspace(broker: &Service) -> Workspace {
    partitioned_workspace_at(&broker.url)
}

/// [`partitioned_workspace`] on the broker at `bootstrap`.
pub(crate) fn partitioned_workspace_at(bootstrap: &str) -> Workspace {
    partitioned_workspace_with(bootstrap, json!({}))
}

/// [`partitioned_workspace_at`] with `extra` keys in the sink's config.
pub(crate) fn partitioned_workspace_with(bootstrap: &str, extra: serde_json::Value) -> Workspace {
    let ws = kafka_workspace_at(bootstrap);
    let mut sink = ws.file_sink("clicks-audit", "click-events", "out/windows.jsonl");
    let mut keys = json!({
        "tasks.max": "2",
        "transforms.window.group.by.partitioned": "true",
    });
    if let (Some(keys), Some(extra)) = (keys.as_object_mut(), extra.as_object()) {
        keys.extend(extra.clone());
    }
    let config = window_config(keys);
    for (k, v) in config.as_object().unwrap() {
        sink["config"][k] = v.clone();
    }
    ws.put_config("audit.json", &sink);
    ws
}

/// Two hosts together emit every window of `expected` once: each some, no user's windows from
/// both, the union equal to the reference.
fn assert_two_hosts_emit(
    expected: &Windows,
    (a, ws_a): (&crate::harness::Host, &Workspace),
    (b, ws_b): (&crate::harness::Host, &Workspace),
) {
    let (from_a, from_b) = a.wait_for("every window from the two hosts", || {
        let (from_a, from_b) = (file_windows(ws_a), file_windows(ws_b));
        (from_a.len() + from_b.len() >= expected.len()).then_some((from_a, from_b))
    });
    assert!(
        !from_a.is_empty() && !from_b.is_empty(),
        "each host windows some partitions: {} and {} windows",
        from_a.len(),
        from_b.len()
    );
    let users_a: BTreeSet<&String> = from_a.keys().map(|(u, _)| u).collect();
    assert!(
        from_b.keys().all(|(u, _)| !users_a.contains(u)),
        "a user's windows come from one host"
    );
    let mut got = from_a.clone();
    got.extend(from_b);
    let wrong = differing(expected, &got);
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "windows differ from the reference: {wrong:?}\nhost a:\n{}\nhost b:\n{}",
        a.log(),
        b.log()
    );
}

/// A window that differs: its key, the expected counts, and what was got.
pub(crate) type Difference = ((String, i64), (u64, u64), Option<(u64, u64)>);

/// The windows that differ from `expected`, rather than two maps.
pub(crate) fn differing(expected: &Windows, got: &Windows) -> Vec<Difference> {
    expected
        .iter()
        .filter(|(k, v)| got.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), *v, got.get(k).copied()))
        .take(20)
        .collect()
}

/// Four phases of `phase` clicks, each produced once the host owns partitions, with a
/// `kill -9` after the first three: every window in the file equals `reference`. Returns the
/// running host.
fn windows_survive_three_kill_9s(
    ws: &Workspace,
    phase: i64,
    produce: impl Fn(std::ops::Range<i64>),
    reference: impl Fn(std::ops::Range<i64>) -> Windows,
) -> crate::harness::Host {
    let mut host = ws.start();
    for n in 0..4 {
        crate::kafka::wait_for_partitions(&host);
        produce(n * phase..(n + 1) * phase);
        let fired = reference(0..(n + 1) * phase).len();
        host.wait_for("some windows of this phase", || {
            (file_windows(ws).len() * 2 > fired).then_some(())
        });
        if n < 3 {
            host.kill9();
            // The killed member leaves the group once its session (10 s) expires. tansu
            // 0.6 was seen not to rebalance when a member that joined meanwhile should then
            // get the dead one's partitions (Kafka does), so the host comes back after that.
            std::thread::sleep(crate::kafka::SESSION_EXPIRY);
            host = ws.start();
        }
    }
    let expected = reference(0..4 * phase);
    assert!(expected.len() > 150, "{} windows", expected.len());
    let got = host.wait_for("every window in the file", || {
        let got = file_windows(ws);
        (got.len() >= expected.len()).then_some(got)
    });
    let wrong = differing(&expected, &got);
    assert!(
        wrong.is_empty() && got.len() == expected.len(),
        "windows differ from the reference: {wrong:?}\n{}",
        host.log()
    );
    host
}

/// State per partition (`tasks.max` 2, a topic keyed by user): each partition's windows
/// follow its own watermark, and three `kill -9`s change nothing.
#[test]
fn state_per_partition_survives_three_kill_9s() {
    const PARTITIONS: i32 = 4;
    let broker = Service::start("tansu");
    create_topic(&broker, "click-events", PARTITIONS);
    let ws = partitioned_workspace(&broker);
    let host = windows_survive_three_kill_9s(
        &ws,
        5_000,
        |ids| produce_by_user(&broker.url, "click-events", PARTITIONS, ids),
        |ids| reference_per_partition(ids, PARTITIONS),
    );
    assert!(host.stop().success());
}

/// A file sink windowing a topic keyed by page per user with `tasks.max` 2: behind the
/// connector's repartition topic (4 partitions, the worker's `topic_partitions`).
fn repartition_workspace(broker: &Service) -> Workspace {
    let ws = Workspace::new();
    ws.put_worker_config(&format!(
        "[kafka]\nbootstrap_servers = \"{}\"\ntopic_partitions = 4\n",
        broker.url
    ));
    let mut sink = ws.file_sink("clicks-audit", "click-events", "out/windows.jsonl");
    for (k, v) in window_config(json!({"tasks.max": "2"}))
        .as_object()
        .unwrap()
    {
        sink["config"][k] = v.clone();
    }
    ws.put_config("audit.json", &sink);
    ws
}

/// A 4-partition topic keyed by page, windowed per user with `tasks.max` 2: the clicks are
/// re-keyed through the connector's repartition topic, and through three `kill -9`s every
/// window equals one reader's (the watermark the minimum over the upstream partitions).
#[test]
fn a_repartition_topic_regroups_by_user_through_three_kill_9s() {
    const PARTITIONS: i32 = 4;
    let broker = Service::start("tansu");
    create_topic(&broker, "click-events", PARTITIONS);
    let ws = repartition_workspace(&broker);
    let host = windows_survive_three_kill_9s(
        &ws,
        4_000,
        |ids| produce(&broker.url, "click-events", PARTITIONS, ids),
        |ids| reference(ids, i64::from(PARTITIONS)),
    );
    // The windows read the repartition topic, in their own group.
    let log = host.log();
    assert!(
        log.contains("group=connect-clicks-audit-state")
            && log.contains("headwater-clicks-audit-repartition"),
        "{log}"
    );
    assert!(host.stop().success());
}

/// Two hosts run the same sink behind its repartition topic: both shuffle, both window, and
/// together they emit every window once, each equal to one reader's.
#[test]
fn two_hosts_behind_a_repartition_topic_together_emit_every_window_once() {
    two_hosts_emit_every_window_once(
        repartition_workspace,
        "group=connect-clicks-audit-state",
        |broker| produce(&broker.url, "click-events", 4, 0..6_000),
        reference(0..6_000, 4),
    );
}

/// Two hosts run the same sink with state per partition: the group splits the partitions, each
/// host windows its own, and together they emit every window exactly once.
#[test]
fn two_hosts_share_the_partitions_and_together_emit_every_window_once() {
    two_hosts_emit_every_window_once(
        partitioned_workspace,
        "group=connect-clicks-audit ",
        |broker| produce_by_user(&broker.url, "click-events", 4, 0..8_000),
        reference_per_partition(0..8_000, 4),
    );
}

/// Two hosts on a 4-partition topic, each owning windows (consumer `group`) before `produce`
/// runs, so no window state has to move between them: together they emit `expected`.
fn two_hosts_emit_every_window_once(
    workspace: fn(&Service) -> Workspace,
    group: &str,
    produce: impl Fn(&Service),
    expected: Windows,
) {
    let broker = Service::start("tansu");
    create_topic(&broker, "click-events", 4);
    let (ws_a, ws_b) = (workspace(&broker), workspace(&broker));
    let a = ws_a.start();
    crate::kafka::wait_for_partitions_of(&a, group);
    let b = ws_b.start();
    crate::kafka::wait_for_partitions_of(&b, group);
    produce(&broker);
    assert_two_hosts_emit(&expected, (&a, &ws_a), (&b, &ws_b));
    assert!(a.stop().success());
    assert!(b.stop().success());
}

fn partition_workspace(broker: &Service, idle_ms: i64) -> Workspace {
    let ws = kafka_workspace(broker);
    let mut sink = ws.file_sink("clicks-audit", "click-events", "out/windows.jsonl");
    let config = window_config(json!({
        "transforms.window.watermark.idle.timeout.ms": idle_ms.to_string(),
    }));
    for (k, v) in config.as_object().unwrap() {
        sink["config"][k] = v.clone();
    }
    ws.put_config("audit.json", &sink);
    ws
}

/// Partition 0 is an hour ahead before partition 1 has anything: partition 1's clicks still
/// count, since the watermark is the minimum over partitions (no idleness here).
#[test]
fn a_slow_partitions_records_are_not_late_because_another_ran_ahead() {
    let broker = Service::start("tansu");
    create_topic(&broker, "click-events", 2);
    let ws = partition_workspace(&broker, 0);
    let host = ws.start();
    // Even clicks go to partition 0, odd ones to 1: produce the even ones first.
    let evens: Vec<i64> = (0..6_000).filter(|i| i % 2 == 0).collect();
    let odds: Vec<i64> = (0..6_000).filter(|i| i % 2 == 1).collect();
    produce(&broker.url, "click-events", 2, evens.iter().copied());
    host.wait_for_log("Reading every partition");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        file_windows(&ws).is_empty(),
        "partition 1 has had nothing: no window may fire"
    );
    produce(&broker.url, "click-events", 2, odds);
    let expected = reference(0..6_000, 2);
    let got = host.wait_for("every window", || {
        let got = file_windows(&ws);
        (got.len() >= expected.len()).then_some(got)
    });
    assert_eq!(got, expected);
    assert!(
        !ws.path("var/dlq/clicks-audit.jsonl").exists(),
        "no late record"
    );
    assert!(host.stop().success());
}

/// Only partition 0 has clicks: after partition 1's idle timeout its windows fire anyway.
#[test]
fn an_idle_partition_does_not_stall_windows_past_its_timeout() {
    let broker = Service::start("tansu");
    create_topic(&broker, "click-events", 2);
    let ws = partition_workspace(&broker, 1_500);
    let host = ws.start();
    let evens: Vec<i64> = (0..4_000).filter(|i| i % 2 == 0).collect();
    produce(&broker.url, "click-events", 2, evens.iter().copied());
    let got = host.wait_for("windows fired without partition 1", || {
        let got = file_windows(&ws);
        (!got.is_empty()).then_some(got)
    });
    // What fired is exact: partition 0's clicks of those windows, all of them.
    let mut expected: BTreeMap<(String, i64), (u64, BTreeSet<String>)> = BTreeMap::new();
    for i in &evens {
        let (user, page, t) = click(*i);
        let w = expected
            .entry((user, t.div_euclid(SIZE) * SIZE))
            .or_default();
        w.0 += 1;
        w.1.insert(page);
    }
    for (key, counts) in &got {
        let (n, pages) = &expected[key];
        assert_eq!(*counts, (*n, pages.len() as u64), "{key:?}");
    }
    assert!(host.stop().success());
}

/// The broker goes down mid-stream (librdkafka's mock cluster, which keeps its topics): the
/// windowing sink rides it out with `errors.retry.*`, and every window is exact once it is back.
#[test]
fn a_broker_outage_mid_stream_loses_and_doubles_nothing() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("start a mock Kafka cluster");
    mock.create_topic("click-events", 2, 1)
        .expect("create topic");
    let bootstrap = mock.bootstrap_servers();
    let ws = Workspace::new();
    ws.put_worker_config(&format!("[kafka]\nbootstrap_servers = \"{bootstrap}\"\n"));
    let mut sink = ws.file_sink("clicks-audit", "click-events", "out/windows.jsonl");
    let config = window_config(json!({
        "errors.retry.timeout": "-1",
        "errors.retry.delay.max.ms": "1000",
    }));
    for (k, v) in config.as_object().unwrap() {
        sink["config"][k] = v.clone();
    }
    ws.put_config("audit.json", &sink);
    let host = ws.start();
    produce(&bootstrap, "click-events", 2, 0..4_000);
    host.wait_for("windows before the outage", || {
        (!file_windows(&ws).is_empty()).then_some(())
    });
    mock.broker_down(1).expect("take the broker down");
    std::thread::sleep(Duration::from_secs(3));
    mock.broker_up(1).expect("bring the broker back");
    produce(&bootstrap, "click-events", 2, 4_000..8_000);
    let expected = reference(0..8_000, 2);
    let got = host.wait_for("every window", || {
        let got = file_windows(&ws);
        (got.len() >= expected.len()).then_some(got)
    });
    assert_eq!(got, expected);
    assert!(host.stop().success());
}
