//! Data-driven SMT cases, one file per SMT in `testdata/smt/*.json`.
//!
//! Each file is a JSON array of cases:
//!
//! ```json
//! {"name": "...",
//!  "config": {"transforms": "t", "transforms.t.type": "...", "transforms.t.field": "..."},
//!  "input": {"topic", "partition", "offset", "timestamp", "key", "value", "headers",
//!            "key_raw", "value_raw"},
//!  "expected": {"topic", "partition", "offset", "timestamp", "key", "value"}}
//! ```
//!
//! `key` and `value` are plain JSON or `{"schema", "payload"}` envelopes; `*_raw` are JSON
//! text handed to the chain unparsed; `headers` is an object of string values. Instead of
//! fields, `expected` may hold `"dropped": true`, `"error_contains": "..."` (with a single
//! step, the record must then come out unchanged) or `"config_issues": ["..."]` (each a
//! substring of one issue, as many as there are issues). The chain is built with [`build_chain`], so config parsing and
//! predicates are covered too.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde_json::Value;

use super::util::{DateFormat, MILLIS_PER_DAY, field_path, java_double, java_float};
use super::{build_chain, class_names, plugins};
use crate::api::options::Options;
use crate::api::record::{Data, Header, Payload, Record};
use crate::api::transform::ChainContext;
use crate::api::transform::Outcome;

fn case_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/smt")
}

/// Every file, so a new one cannot be left out of the per-SMT tests below.
const FILES: [&str; 15] = [
    "by_logical_table_router",
    "cast",
    "chain",
    "extract_field",
    "extract_new_record_state",
    "filter",
    "flatten",
    "hoist_field",
    "insert_field",
    "mask_field",
    "regex_router",
    "replace_field",
    "timestamp_converter",
    "timestamp_router",
    "value_to_key",
];

fn config(case: &Value) -> BTreeMap<String, String> {
    case["config"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            (k.clone(), v)
        })
        .collect()
}

fn payload(input: &Value, part: &str) -> Payload {
    if let Some(raw) = input[format!("{part}_raw")].as_str() {
        return Payload::json_bytes(Bytes::from(raw.to_owned()));
    }
    Payload::data(Data::from_json(input[part].clone()))
}

fn input_record(input: &Value) -> Record {
    let mut record = Record::new(
        input["topic"].as_str().unwrap_or("test"),
        payload(input, "value"),
    );
    record.key = payload(input, "key");
    record.partition = input["partition"].as_i64().map_or(0, |p| p as i32);
    record.offset = input["offset"].as_i64().unwrap_or(0);
    record.timestamp = input["timestamp"].as_i64();
    for (k, v) in input["headers"].as_object().into_iter().flatten() {
        record
            .headers
            .push(Header::text(k, v.as_str().unwrap_or_default()));
    }
    record
}

/// Compares the fields `expected` names; returns what differs.
fn compare(expected: &Value, record: &mut Record) -> Vec<String> {
    let mut diffs = Vec::new();
    let scalars = [
        ("topic", Value::from(record.topic.clone())),
        ("partition", Value::from(record.partition)),
        ("offset", Value::from(record.offset)),
        (
            "timestamp",
            record.timestamp.map_or(Value::Null, Value::from),
        ),
    ];
    for (name, actual) in scalars {
        if let Some(want) = expected.get(name)
            && *want != actual
        {
            diffs.push(format!("{name}: expected {want}, got {actual}"));
        }
    }
    if let Some(want) = expected.get("headers") {
        let got: Vec<Value> = record
            .headers
            .iter()
            .map(|h| {
                let value = h
                    .value
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(v).into_owned());
                serde_json::json!({ "key": h.key, "value": value })
            })
            .collect();
        if *want != Value::Array(got.clone()) {
            diffs.push(format!(
                "headers: expected {want}, got {}",
                Value::Array(got)
            ));
        }
    }
    for (name, payload) in [("key", &mut record.key), ("value", &mut record.value)] {
        let Some(want) = expected.get(name) else {
            continue;
        };
        let want = Data::from_json(want.clone());
        let got = match payload.get() {
            Ok(data) => data.clone(),
            Err(e) => {
                diffs.push(format!("{name}: not valid JSON: {e}"));
                continue;
            }
        };
        if want.schema != got.schema {
            diffs.push(format!(
                "{name} schema: expected {}, got {}",
                want.schema
                    .map(crate::api::record::Schema::into_value)
                    .unwrap_or_default(),
                got.schema
                    .map(crate::api::record::Schema::into_value)
                    .unwrap_or_default()
            ));
        }
        if want.value != got.value {
            diffs.push(format!(
                "{name}: expected {}, got {}",
                want.value, got.value
            ));
        }
    }
    diffs
}

/// What a record holds, payloads compared by content (parsing for a read is no change).
fn snapshot(record: &Record) -> String {
    let content = |payload: &Payload| {
        let mut payload = payload.clone();
        match payload.get() {
            Ok(data) => format!("{data:?}"),
            Err(_) => format!("{:?}", payload.raw()),
        }
    };
    format!(
        "{} {} {} {:?} {:?} {} {}",
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.headers,
        content(&record.key),
        content(&record.value)
    )
}

/// Runs one case; with one step, a failure must leave the record as it was (with more, the
/// earlier steps have changed it).
fn run_case(case: &Value) -> Result<(), String> {
    let mut options = Options::new(config(case));
    let chain = build_chain(&mut options, &ChainContext::for_tests());
    let expected = &case["expected"];
    let issues: Vec<String> = options.issues().iter().map(ToString::to_string).collect();
    if let Some(wanted) = expected["config_issues"].as_array() {
        let missing: Vec<&Value> = wanted
            .iter()
            .filter(|w| {
                !issues
                    .iter()
                    .any(|i| i.contains(w.as_str().unwrap_or("\u{0}")))
            })
            .collect();
        if !missing.is_empty() || wanted.len() != issues.len() {
            return Err(format!("expected issues {wanted:?}, got {issues:?}"));
        }
        return Ok(());
    }
    if !issues.is_empty() {
        return Err(format!("unexpected config issues: {issues:?}"));
    }
    let input = input_record(&case["input"]);
    let before = snapshot(&input);
    let single_step = config(case)["transforms"].split(',').count() == 1;
    let mut out = chain.apply_batch(vec![input.clone()]);
    let (outcome, mut record) = match (out.failed.pop(), out.kept.pop()) {
        (Some((record, e)), _) => (Err(e), record),
        (None, Some(record)) => (Ok(Outcome::Keep), record),
        (None, None) => (Ok(Outcome::Drop), input),
    };
    let error_contains = expected["error_contains"].as_str();
    let dropped = expected["dropped"].as_bool() == Some(true);
    match (outcome, error_contains) {
        (Err(e), Some(text)) if e.message.contains(text) => {
            if single_step && snapshot(&record) != before {
                return Err(format!("a failing step changed the record: {record:?}"));
            }
            Ok(())
        }
        (Err(e), _) => Err(format!("unexpected error: {e}")),
        (Ok(outcome), Some(text)) => {
            Err(format!("expected an error with {text:?}, got {outcome:?}"))
        }
        (Ok(Outcome::Drop), None) if dropped => Ok(()),
        (Ok(outcome), None) if dropped || outcome == Outcome::Drop => {
            Err(format!("expected dropped: {dropped}, got {outcome:?}"))
        }
        (Ok(_), None) => {
            let diffs = compare(expected, &mut record);
            if diffs.is_empty() {
                Ok(())
            } else {
                Err(diffs.join("\n    "))
            }
        }
    }
}

/// Runs every case of `testdata/smt/<file>.json`; returns how many there were.
fn run_file(file: &str) -> usize {
    let path = case_dir().join(format!("{file}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let cases: Vec<Value> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case["name"].as_str().unwrap_or("<unnamed>");
            run_case(case)
                .err()
                .map(|e| format!("{file}: {name}:\n    {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    cases.len()
}

macro_rules! case_files {
    ($($file:ident),* $(,)?) => {
        $(
            #[test]
            fn $file() {
                assert!(run_file(stringify!($file)) > 0, "no cases in {}.json", stringify!($file));
            }
        )*
    };
}

case_files!(
    by_logical_table_router,
    cast,
    chain,
    extract_field,
    extract_new_record_state,
    filter,
    flatten,
    hoist_field,
    insert_field,
    mask_field,
    regex_router,
    replace_field,
    timestamp_converter,
    timestamp_router,
    value_to_key,
);

#[test]
fn every_case_file_has_a_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(case_dir())
        .expect("testdata/smt exists")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
        .collect();
    on_disk.sort();
    assert_eq!(on_disk, FILES);
}

#[test]
fn every_plugin_key_is_documented() {
    for plugin in plugins() {
        for key in plugin.keys {
            assert!(
                !key.doc.trim().is_empty(),
                "{}: key {} has no documentation",
                plugin.class,
                key.name
            );
        }
    }
}

#[test]
fn class_names_cover_both_variants() {
    let names = class_names();
    assert!(names.contains(&"org.apache.kafka.connect.transforms.Cast$Key".to_owned()));
    assert!(names.contains(&"org.apache.kafka.connect.transforms.RegexRouter".to_owned()));
    assert!(!names.contains(&"org.apache.kafka.connect.transforms.ValueToKey$Value".to_owned()));
    // 8 Key/Value SMTs, 4 single-class Kafka Connect SMTs, Debezium's ExtractNewRecordState
    // and ByLogicalTableRouter.
    assert_eq!(names.len(), 8 * 2 + 4 + 2);
}

#[test]
fn untouched_payloads_keep_their_raw_bytes() {
    let mut options = Options::new(config(&serde_json::json!({"config": {
        "transforms": "route",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "(.*)",
        "transforms.route.replacement": "copy-$1",
    }})));
    let chain = build_chain(&mut options, &ChainContext::for_tests());
    let record = Record::new("a", Payload::json_bytes(Bytes::from_static(b"{\"x\": 1}")));
    let record = chain.apply_batch(vec![record]).kept.remove(0);
    assert_eq!(record.topic, "copy-a");
    assert!(record.value.raw().is_some() && record.value.parsed().is_none());
}

#[test]
fn field_paths_follow_kip_821() {
    let cases: [(&str, bool, &[&str]); 6] = [
        ("a.b", false, &["a.b"]),
        ("a.b", true, &["a", "b"]),
        ("a.`b.c`.d", true, &["a", "b.c", "d"]),
        ("`a\\`.b`", true, &["a`.b"]),
        ("`a`b`", true, &["a`b"]),
        ("a.", true, &["a", ""]),
    ];
    for (text, v2, steps) in cases {
        let path = field_path(text, v2).expect("a valid path");
        assert_eq!(path, steps, "{text}");
    }
    assert!(field_path("`a.b", true).is_err());
}

#[test]
fn date_formats_format_and_parse() {
    let cases = [
        (
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
            1_700_000_000_123,
            "2023-11-14T22:13:20.123Z",
        ),
        ("yyyyMMdd", 19_675 * MILLIS_PER_DAY, "20231114"),
        ("HH:mm", 3_720_000, "01:02"),
        ("yyyy''MM 'o''clock' Z", 0, "1970'01 o'clock +0000"),
        (
            "EEE, dd MMM yy hh:mm a",
            1_699_999_980_000,
            "Tue, 14 Nov 23 10:13 PM",
        ),
        (
            "yyyy-MM-dd HH:mm:ss.SSSSSS",
            -1,
            "1969-12-31 23:59:59.999000",
        ),
    ];
    for (pattern, millis, text) in cases {
        let format = DateFormat::new(pattern).expect("a supported pattern");
        assert_eq!(format.format(millis).as_deref(), Ok(text), "{pattern}");
        assert_eq!(format.parse(text), Ok(millis), "{pattern}");
    }
    let iso = DateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSSXXX").expect("a supported pattern");
    assert_eq!(
        iso.parse("2023-11-15T00:13:20.123+02:00"),
        Ok(1_700_000_000_123)
    );
    assert!(
        iso.parse("2023-13-14T22:13:20.123Z").is_err(),
        "no lenient month roll-over"
    );
    assert!(DateFormat::new("yyyy-qq").is_err());
    assert!(DateFormat::new("'open").is_err());
    assert!(DateFormat::new("ss.SS").is_err());
}

#[test]
fn numbers_print_like_java() {
    let cases = [
        (1.0, "1.0"),
        (-2.5, "-2.5"),
        (1e10, "1.0E10"),
        (1.25e-5, "1.25E-5"),
        (1_234_567.0, "1234567.0"),
        (f64::NEG_INFINITY, "-Infinity"),
    ];
    for (value, text) in cases {
        assert_eq!(java_double(value), text);
    }
    assert_eq!(java_float(1.1), "1.1");
}
