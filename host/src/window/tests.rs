//! The window operator against a plain reference computation, on generated clicks with
//! out-of-order and late records, through a small cache (so state spills to disk) and across a
//! restart from a checkpoint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::offsets::SourceOffsets;
use crate::api::options::Options;
use crate::api::record::{Payload, Record};
use crate::api::transform::BatchTransform;
use crate::state::{StateStore, StatefulStep, StatefulTransform};

const SIZE: i64 = 300_000;
const DELAY: i64 = 5_000;
const LATENESS: i64 = 60_000;

fn step(extra: &[(&str, &str)]) -> Box<dyn StatefulTransform> {
    Box::new(window_step(extra))
}

fn window_step(extra: &[(&str, &str)]) -> super::WindowStep {
    let mut map: BTreeMap<String, String> = [
        ("group.by", "user_id"),
        ("window.size.ms", "300000"),
        ("time.field", "ts"),
        ("watermark.delay.ms", "5000"),
        ("allowed.lateness.ms", "60000"),
        (
            "aggregates",
            "click_count_5min:count,unique_pages_5min:count_distinct(page)",
        ),
        ("state.cache.max.entries", "50"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut options = Options::new(map);
    let step = super::WindowStep::new(
        "clicks",
        &mut options,
        &crate::api::transform::ChainContext::for_tests(),
    );
    assert!(options.issues().is_empty(), "{:?}", options.issues());
    step.unwrap()
}

/// Clicks of 40 users over ~1 hour, arriving out of order by up to 4 s, with one in 25 arriving
/// 2 minutes late (past the watermark, some past allowed lateness too).
fn clicks() -> Vec<(String, String, i64)> {
    let mut seed = 7u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut out = Vec::new();
    for i in 0..6000i64 {
        let base = 1_700_000_000_000 + i * 600;
        let jitter = (next() % 4000) as i64;
        let late = if next() % 25 == 0 { 120_000 } else { 0 };
        let user = format!("u{}", next() % 40);
        let page = format!("/p/{}", next() % 12);
        out.push((user, page, base - jitter - late));
    }
    out
}

fn record(user: &str, page: &str, ts: i64) -> Record {
    Record::new(
        "clicks",
        Payload::value(json!({"user_id": user, "page": page, "ts": ts})),
    )
}

/// The straightforward computation, with Flink's rule: a window fires (and is purged past its
/// allowed lateness) once the watermark reaches its last millisecond, `end - 1`; each record
/// counts in every window of its time not yet purged when it arrives.
fn reference(events: &[(String, String, i64)]) -> BTreeMap<(String, i64), (u64, usize)> {
    let mut watermark = i64::MIN;
    let mut max_event = i64::MIN;
    let mut windows: HashMap<(String, i64), (u64, BTreeSet<String>)> = HashMap::new();
    for (user, page, t) in events {
        let start = t.div_euclid(SIZE) * SIZE;
        if start + SIZE - 1 + LATENESS > watermark {
            let w = windows.entry((user.clone(), start)).or_default();
            w.0 += 1;
            w.1.insert(page.clone());
        }
        if *t > max_event {
            max_event = *t;
            watermark = watermark.max(t - DELAY);
        }
    }
    windows
        .into_iter()
        .filter(|((_, start), _)| start + SIZE - 1 <= watermark)
        .map(|(k, (n, pages))| (k, (n, pages.len())))
        .collect()
}

/// The last result emitted per (user, window start).
fn collect(outputs: Vec<Record>, into: &mut BTreeMap<(String, i64), (u64, usize)>) {
    for mut r in outputs {
        let v = r.value.get().unwrap().value.clone();
        let key = (
            v["user_id"].as_str().unwrap().to_owned(),
            v["window_start"].as_i64().unwrap(),
        );
        assert_eq!(v["window_end"].as_i64().unwrap(), key.1 + SIZE);
        into.insert(
            key,
            (
                v["click_count_5min"].as_u64().unwrap(),
                v["unique_pages_5min"].as_u64().unwrap() as usize,
            ),
        );
    }
}

fn run(
    step: &dyn BatchTransform,
    events: &[(String, String, i64)],
    got: &mut BTreeMap<(String, i64), (u64, usize)>,
) -> usize {
    let mut dropped = 0;
    for chunk in events.chunks(97) {
        let out = step.apply_batch(chunk.iter().map(|(u, p, t)| record(u, p, *t)).collect());
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        assert!(out.failed.is_empty());
        assert!(out.origins.windows(2).all(|w| w[0] <= w[1]));
        dropped += out.dropped;
        collect(out.kept, got);
    }
    dropped
}

#[test]
fn windows_match_the_reference_with_late_and_out_of_order_records() {
    let events = clicks();
    let expected = reference(&events);
    assert!(expected.len() > 300, "{} windows", expected.len());
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    let step = step(&[]);
    step.restore(&store).unwrap();
    let mut got = BTreeMap::new();
    let dropped = run(step.as_ref(), &events, &mut got);
    assert!(dropped > 0, "some records are past allowed lateness");
    assert_eq!(got, expected);
}

#[test]
fn a_restart_from_a_checkpoint_gives_the_same_results() {
    let events = clicks();
    let expected = reference(&events);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let (first, second) = events.split_at(97 * 31);
    let mut got = BTreeMap::new();
    {
        let store = StateStore::open(&path).unwrap();
        let step = step(&[]);
        step.restore(&store).unwrap();
        run(step.as_ref(), first, &mut got);
        let mut offsets = SourceOffsets::default();
        offsets.insert(json!({"file": "clicks"}), json!({"line": first.len()}));
        let chain_store = Arc::clone(&store);
        chain_store
            .checkpoint(&offsets, |w| step.checkpoint(w))
            .unwrap();
        // Work after the checkpoint that a crash loses: it must leave no trace.
        run(step.as_ref(), &second[..500], &mut BTreeMap::new());
    }
    let store = StateStore::open(&path).unwrap();
    let offsets = store.checkpointed_offsets().unwrap().unwrap();
    assert_eq!(
        offsets.get(&json!({"file": "clicks"})),
        Some(&json!({"line": first.len()}))
    );
    let step = step(&[]);
    step.restore(&store).unwrap();
    run(step.as_ref(), second, &mut got);
    assert_eq!(got, expected);
}

#[test]
fn late_records_go_where_late_records_says() {
    let to_dlq = step(&[("late.records", "dlq"), ("allowed.lateness.ms", "0")]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    to_dlq.restore(&store).unwrap();
    let out = to_dlq.apply_batch(vec![
        record("u1", "/a", 1_000_000),
        record("u1", "/b", 2_000_000),
        record("u1", "/c", 1_000_001),
    ]);
    assert_eq!(out.kept.len(), 1, "the first window closed");
    assert_eq!(out.failed.len(), 1);
    let (index, _, error) = &out.failed[0];
    assert_eq!(*index, 2);
    assert!(error.message.contains("late record"), "{}", error.message);

    let sided = step(&[("late.records", "topic"), ("late.topic", "clicks-late")]);
    let store = StateStore::open(&dir.path().join("t.redb")).unwrap();
    sided.restore(&store).unwrap();
    let out = sided.apply_batch(vec![
        record("u1", "/a", 1_000_000),
        record("u1", "/b", 2_000_000),
        record("u1", "/c", 1_000_001),
    ]);
    let topics: Vec<&str> = out.kept.iter().map(|r| r.topic.as_str()).collect();
    assert_eq!(topics, ["clicks", "clicks-late"]);
}

#[test]
fn hopping_windows_count_a_record_in_each_window_it_falls_in() {
    let hop = step(&[
        ("window.type", "hopping"),
        ("window.advance.ms", "100000"),
        ("aggregates", "n:count,total:sum(v),low:min(v),high:max(v)"),
        ("watermark.delay.ms", "0"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    hop.restore(&store).unwrap();
    let rec = |t: i64, v: i64| {
        Record::new(
            "tx",
            Payload::value(json!({"user_id": "u", "ts": t, "v": v})),
        )
    };
    let out = hop.apply_batch(vec![rec(250_000, 5), rec(260_000, 7), rec(1_000_000, 1)]);
    let mut results: Vec<Value> = out
        .kept
        .into_iter()
        .map(|mut r| r.value.get().unwrap().value.clone())
        .collect();
    results.sort_by_key(|v| v["window_start"].as_i64());
    let starts: Vec<i64> = results
        .iter()
        .map(|v| v["window_start"].as_i64().unwrap())
        .collect();
    assert_eq!(starts, [0, 100_000, 200_000]);
    for v in &results {
        assert_eq!((v["n"].clone(), v["total"].clone()), (json!(2), json!(12)));
        assert_eq!((v["low"].clone(), v["high"].clone()), (json!(5), json!(7)));
    }
}

#[test]
fn a_million_groups_stay_within_the_cache_bound() {
    const GROUPS: usize = 1_000_000;
    const CACHE: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    let cache = CACHE.to_string();
    let step = window_step(&[
        ("state.cache.max.entries", cache.as_str()),
        ("allowed.lateness.ms", "0"),
    ]);
    step.restore(&store).unwrap();
    let mut emitted = 0;
    let mut peak = 0;
    for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|&g| record(&format!("g{g}"), "/p", 1_000_000 + (g / 1000) as i64))
            .collect();
        let out = step.apply_batch(batch);
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        emitted += out.kept.len();
        peak = peak.max(step.resident());
    }
    assert!(peak <= CACHE + 1, "{peak} windows in memory");
    // Every group's window is still open; a record an hour later closes them all, a page
    // per call: the first with the record, the rest at each tick.
    let out = step.apply_batch(vec![record("late-comer", "/p", 1_000_000 + 3_600_000)]);
    emitted += out.kept.len();
    assert!(
        out.kept.len() <= 10_000,
        "{} results in one call",
        out.kept.len()
    );
    while step.pending() {
        let out = step.tick();
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        assert!(
            out.kept.len() <= 10_000,
            "{} results in one call",
            out.kept.len()
        );
        emitted += out.kept.len();
    }
    assert_eq!(emitted, GROUPS);
    assert!(step.resident() <= CACHE + 1);
}

/// The user of each result, checking none is emitted twice.
fn users_once(out: Vec<Record>, into: &mut BTreeSet<String>) {
    for mut r in out {
        let v = r.value.get().unwrap().value.clone();
        let user = v["user_id"].as_str().unwrap().to_owned();
        assert!(into.insert(user.clone()), "{user}'s window emitted twice");
    }
}

#[test]
fn a_close_under_way_resumes_after_a_restart_without_emitting_a_window_twice() {
    const GROUPS: usize = 25_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.redb");
    let config = [
        ("state.cache.max.entries", "5000"),
        ("allowed.lateness.ms", "0"),
    ];
    let mut got = BTreeSet::new();
    {
        let store = StateStore::open(&path).unwrap();
        let step = step(&config);
        step.restore(&store).unwrap();
        for chunk in (0..GROUPS).collect::<Vec<_>>().chunks(1000) {
            let batch = chunk
                .iter()
                .map(|&g| record(&format!("g{g}"), "/p", 1_000_000 + g as i64))
                .collect();
            assert!(step.apply_batch(batch).kept.is_empty());
        }
        let out = step.apply_batch(vec![record("late-comer", "/p", 1_000_000 + 3_600_000)]);
        users_once(out.kept, &mut got);
        assert!(
            step.pending(),
            "a close of {GROUPS} windows takes several calls"
        );
        store
            .checkpoint(&SourceOffsets::default(), |w| step.checkpoint(w))
            .unwrap();
        // A page after the checkpoint that a crash loses: emitted again after the restart.
        assert!(!step.tick().kept.is_empty());
    }
    let store = StateStore::open(&path).unwrap();
    let step = step(&config);
    step.restore(&store).unwrap();
    assert!(step.pending(), "the checkpoint holds the close under way");
    while step.pending() {
        users_once(step.tick().kept, &mut got);
    }
    assert_eq!(got.len(), GROUPS);
    assert!(!got.contains("late-comer"), "its window is still open");
}

#[test]
fn a_bad_value_fails_its_record_and_leaves_no_window_behind() {
    let step = step(&[
        ("group.by", ""),
        ("aggregates", "n:count,total:sum(v)"),
        ("watermark.delay.ms", "0"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    step.restore(&store).unwrap();
    let rec = |t: i64, v: Value| Record::new("tx", Payload::value(json!({"ts": t, "v": v})));
    let out = step.apply_batch(vec![rec(1_000, json!("ten")), rec(2_000_000, json!(1))]);
    assert_eq!(out.failed.len(), 1);
    assert!(
        out.failed[0].2.message.contains("feature \"total\""),
        "{}",
        out.failed[0].2.message
    );
    assert!(
        out.kept.is_empty(),
        "the bad record's window was never opened"
    );
    let out = step.apply_batch(vec![rec(9_000_000, json!(2))]);
    let results: Vec<Value> = out
        .kept
        .into_iter()
        .map(|mut r| r.value.get().unwrap().value.clone())
        .collect();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0]["n"].clone(), results[0]["total"].clone()),
        (json!(1), json!(1))
    );
}

/// (start, last record, count, pages) of an open session in the reference.
type OpenSession = (i64, i64, u64, BTreeSet<String>);

/// Sessions as plainly as possible: per group the open sessions, merged by each record that
/// touches them, closed (and emitted) once the watermark passes their last record plus the gap.
fn session_reference(
    events: &[(String, String, i64)],
    gap: i64,
) -> BTreeMap<(String, i64), (u64, usize)> {
    let (mut watermark, mut max_event) = (i64::MIN, i64::MIN);
    let mut open: HashMap<String, Vec<OpenSession>> = HashMap::new();
    let mut emitted = BTreeMap::new();
    for (user, page, t) in events {
        let sessions = open.entry(user.clone()).or_default();
        let (joined, mut rest): (Vec<_>, Vec<_>) = sessions
            .drain(..)
            .partition(|(start, last, _, _)| *t < last + gap && *start < t + gap);
        if joined.is_empty() && t + gap - 1 <= watermark {
            *sessions = rest;
            continue;
        }
        let mut merged = (*t, *t, 1, BTreeSet::from([page.clone()]));
        for (start, last, n, pages) in joined {
            merged.0 = merged.0.min(start);
            merged.1 = merged.1.max(last);
            merged.2 += n;
            merged.3.extend(pages);
        }
        rest.push(merged);
        *sessions = rest;
        if *t > max_event {
            max_event = *t;
            watermark = watermark.max(t - DELAY);
            for (user, sessions) in open.iter_mut() {
                sessions.retain(|(start, last, n, pages)| {
                    let closed = last + gap - 1 <= watermark;
                    if closed {
                        emitted.insert((user.clone(), *start), (*n, pages.len()));
                    }
                    !closed
                });
            }
        }
    }
    emitted
}

#[test]
fn session_windows_match_the_reference() {
    // Bursty users: each click 0.6 s after the last on average, users active in turns, so
    // sessions open, grow, merge when a late click bridges two, and close.
    let events: Vec<(String, String, i64)> = clicks()
        .into_iter()
        .map(|(u, p, t)| (format!("{u}-{}", (t / 90_000) % 3), p, t))
        .collect();
    let expected = session_reference(&events, 30_000);
    assert!(expected.len() > 200, "{} sessions", expected.len());
    let step = step(&[
        ("window.type", "session"),
        ("window.gap.ms", "30000"),
        ("allowed.lateness.ms", "0"),
        ("state.cache.max.entries", "500"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    step.restore(&store).unwrap();
    let mut got = BTreeMap::new();
    for chunk in events.chunks(97) {
        let out = step.apply_batch(chunk.iter().map(|(u, p, t)| record(u, p, *t)).collect());
        assert!(out.fatal.is_none(), "{:?}", out.fatal);
        for mut r in out.kept {
            let v = r.value.get().unwrap().value.clone();
            got.insert(
                (
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["window_start"].as_i64().unwrap(),
                ),
                (
                    v["click_count_5min"].as_u64().unwrap(),
                    v["unique_pages_5min"].as_u64().unwrap() as usize,
                ),
            );
        }
    }
    assert_eq!(got, expected);
}

#[test]
fn a_late_record_within_lateness_updates_its_closed_session() {
    let step = step(&[
        ("window.type", "session"),
        ("window.gap.ms", "30000"),
        ("watermark.delay.ms", "0"),
        ("allowed.lateness.ms", "200000"),
        ("aggregates", "n:count"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
    step.restore(&store).unwrap();
    let results = |records: Vec<Record>| -> Vec<(String, i64, i64, u64)> {
        let out = step.apply_batch(records);
        out.kept
            .into_iter()
            .map(|mut r| {
                let v = r.value.get().unwrap().value.clone();
                (
                    v["user_id"].as_str().unwrap().to_owned(),
                    v["window_start"].as_i64().unwrap(),
                    v["window_end"].as_i64().unwrap(),
                    v["n"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(
        results(vec![record("u1", "/", 0), record("u2", "/", 100_000)]),
        [("u1".to_owned(), 0, 30_000, 1)]
    );
    // Late, within allowed lateness: the closed session grows and is emitted again.
    assert_eq!(
        results(vec![record("u1", "/", 20_000)]),
        [("u1".to_owned(), 0, 50_000, 2)]
    );
    // Past lateness (watermark 400,000 > 50,000 + 200,000): purged; a record there is late.
    let out = results(vec![record("u3", "/", 400_000)]);
    assert!(out.iter().any(|r| r.0 == "u2"), "{out:?}");
    assert!(results(vec![record("u1", "/", 25_000)]).is_empty());
}

/// A sink's step: one watermark per input, the step's is their minimum, and an idle input
/// stops holding it back after `watermark.idle.timeout.ms`.
fn sink_step(extra: &[(&str, &str)]) -> super::WindowStep {
    let mut map: BTreeMap<String, String> = [
        ("group.by", "user_id"),
        ("window.size.ms", "300000"),
        ("time.field", "ts"),
        ("watermark.delay.ms", "5000"),
        ("aggregates", "n:count"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        map.insert((*k).to_owned(), (*v).to_owned());
    }
    let mut options = Options::new(map);
    let ctx = crate::api::transform::ChainContext {
        inputs: crate::api::transform::Inputs::Many,
        ..crate::api::transform::ChainContext::for_tests()
    };
    let step = super::WindowStep::new("clicks", &mut options, &ctx).unwrap();
    assert!(options.issues().is_empty(), "{:?}", options.issues());
    step
}

/// A record of partition `p` of the sink's own Kafka consumer (connector "test").
fn from_partition(p: i32, user: &str, ts: i64) -> Record {
    let mut r = record(user, "/", ts);
    r.position = Some(crate::api::record::Position {
        source: Arc::from("test"),
        partition: Arc::from(format!(r#"{{"topic":"clicks","partition":{p}}}"#)),
        offset: ts as u64,
    });
    r
}

/// Tells a sink's window step that its consumer owns partitions 0 and 1 of `clicks`.
fn assign_two_partitions(step: &super::WindowStep) {
    let assigned: BTreeSet<String> = (0..2)
        .map(|p| format!(r#"{{"topic":"clicks","partition":{p}}}"#))
        .collect();
    step.assign(&assigned);
}

fn starts(out: &crate::api::transform::BatchOutput) -> Vec<(String, i64, u64)> {
    let mut got: Vec<(String, i64, u64)> = out
        .kept
        .iter()
        .cloned()
        .map(|mut r| {
            let v = r.value.get().unwrap().value.clone();
            (
                v["user_id"].as_str().unwrap().to_owned(),
                v["window_start"].as_i64().unwrap(),
                v["n"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    got
}

#[test]
fn a_fast_partition_does_not_make_a_slow_ones_records_late() {
    let step = sink_step(&[("watermark.idle.timeout.ms", "0")]);
    let dir = tempfile::tempdir().unwrap();
    step.restore(&StateStore::open(&dir.path().join("s.redb")).unwrap())
        .unwrap();
    assign_two_partitions(&step);
    // Partition 0 runs an hour ahead; partition 1 has had nothing yet: nothing fires.
    let out = step.apply_batch(vec![
        from_partition(0, "a", 10_000),
        from_partition(0, "a", 3_600_000),
    ]);
    assert!(out.kept.is_empty(), "{:?}", starts(&out));
    // Partition 1's old records still count: its own watermark is far behind.
    let out = step.apply_batch(vec![from_partition(1, "a", 20_000)]);
    assert!(out.kept.is_empty() && out.dropped == 0);
    // Partition 1 reaches 305,000 - 1 + 5,000: the first window fires with both records.
    let out = step.apply_batch(vec![from_partition(1, "b", 309_999)]);
    assert_eq!(starts(&out), [("a".to_owned(), 0, 2)]);
    // Flink's rule: one millisecond less and the window [300000, 600000) would not fire.
    let out = step.apply_batch(vec![from_partition(1, "b", 604_998)]);
    assert!(out.kept.is_empty(), "{:?}", starts(&out));
    let out = step.apply_batch(vec![from_partition(1, "c", 604_999)]);
    assert_eq!(starts(&out), [("b".to_owned(), 300_000, 1)]);
    assert_eq!(step.watermark(), Some(599_999));
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() {
    let step = sink_step(&[("watermark.idle.timeout.ms", "50")]);
    let dir = tempfile::tempdir().unwrap();
    step.restore(&StateStore::open(&dir.path().join("s.redb")).unwrap())
        .unwrap();
    assign_two_partitions(&step);
    let out = step.apply_batch(vec![
        from_partition(0, "a", 10_000),
        from_partition(0, "a", 3_600_000),
    ]);
    assert!(out.kept.is_empty());
    assert!(step.tick().kept.is_empty(), "partition 1 is not idle yet");
    std::thread::sleep(std::time::Duration::from_millis(120));
    // Partition 0 is quiet too: with every input idle the watermark stays.
    assert!(step.tick().kept.is_empty());
    // Partition 0 has a record again; partition 1 is still idle: its windows fire.
    let out = step.apply_batch(vec![from_partition(0, "z", 3_600_001)]);
    assert_eq!(starts(&out), [("a".to_owned(), 0, 1)]);
}

#[test]
fn a_results_key_holds_its_group_fields_even_when_named_like_an_envelope() {
    let fire = |group_by: &str, value: Value| {
        let step = window_step(&[("group.by", group_by), ("aggregates", "n:count")]);
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        step.restore(&store).unwrap();
        let late = 1_700_000_000_000 + 2 * SIZE;
        let mut first = value.clone();
        first["ts"] = json!(1_700_000_000_000i64);
        let mut second = value;
        second["ts"] = json!(late);
        let out = step.apply_batch(vec![
            Record::new("clicks", Payload::value(first)),
            Record::new("clicks", Payload::value(second)),
        ]);
        assert!(out.fatal.is_none() && out.failed.is_empty(), "{out:?}");
        let mut fired = out.kept;
        assert_eq!(fired.len(), 1, "one window fired");
        let key = fired[0].key.get().unwrap();
        (key.schema.is_some(), key.value.clone())
    };
    assert_eq!(
        fire("user_id", json!({"user_id": "u1"})),
        (false, json!({"user_id": "u1"}))
    );
    // Read as JSON text, {"schema", "payload"} would be taken for a Connect envelope.
    assert_eq!(
        fire("schema,payload", json!({"schema": "s", "payload": 7})),
        (false, json!({"schema": "s", "payload": 7}))
    );
}

#[test]
fn a_watermark_marker_moves_its_inputs_watermark_and_emits_nothing_itself() {
    let step = sink_step(&[("watermark.idle.timeout.ms", "0")]);
    let dir = tempfile::tempdir().unwrap();
    step.restore(&StateStore::open(&dir.path().join("s.redb")).unwrap())
        .unwrap();
    let marker = |p: i32, t: i64| {
        let mut m = from_partition(p, "-", 0);
        m.value = Payload::null();
        m.headers.push(crate::api::record::Header::text(
            super::operator::MARKER_HEADER,
            t.to_string(),
        ));
        m
    };
    // The upstream partitions are the inputs (stage 2 learns them from the input topics).
    assign_two_partitions(&step);
    // Partition 1 has no record here, only a marker: its records went to other partitions of
    // the repartition topic.
    let out = step.apply_batch(vec![
        from_partition(0, "a", 10_000),
        from_partition(0, "a", 309_999),
    ]);
    assert!(out.kept.is_empty(), "partition 1 holds the watermark back");
    let out = step.apply_batch(vec![marker(1, 309_999)]);
    assert_eq!(starts(&out), [("a".to_owned(), 0, 1)]);
    assert!(out.failed.is_empty() && out.dropped == 0, "{out:?}");
    assert_eq!(step.watermark(), Some(304_999));
}
