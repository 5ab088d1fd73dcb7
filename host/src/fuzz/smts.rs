//! Every SMT configuration of the SMT test cases (`testdata/smt/*.json`), fed arbitrary keys
//! and values: schemaless JSON, `{"schema", "payload"}` envelopes with arbitrary schemas,
//! unparsed text. Each record is kept, dropped or failed with a reason; none panics.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::api::options::Options;
use crate::api::record::{Data, Header, Payload, Record};
use crate::api::transform::ChainContext;
use crate::transforms::build_chain;

/// The `config` of every case in `testdata/smt/*.json`, read once.
static CASE_CONFIGS: std::sync::LazyLock<Vec<BTreeMap<String, String>>> =
    std::sync::LazyLock::new(case_configs);

fn case_configs() -> Vec<BTreeMap<String, String>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/smt");
    let mut configs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    for file in files {
        let cases: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        for case in cases.as_array().into_iter().flatten() {
            let config = case["config"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                    )
                })
                .collect();
            configs.push(config);
        }
    }
    configs
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        super::json_value().prop_map(|v| Payload::data(Data::from_json(v))),
        (super::connect_schema(), super::json_value()).prop_map(|(schema, payload)| Payload::data(
            Data::from_json(json!({"schema": schema, "payload": payload}))
        )),
        (super::connect_schema(), super::json_value()).prop_map(|(schema, payload)| {
            Payload::json_bytes(Bytes::from(
                json!({"schema": schema, "payload": payload}).to_string(),
            ))
        }),
        super::tricky_string().prop_map(|s| Payload::json_bytes(Bytes::from(s))),
        Just(Payload::null()),
    ]
}

fn record() -> impl Strategy<Value = Record> {
    (
        super::tricky_string(),
        payload(),
        payload(),
        prop::option::of(any::<i64>()),
        prop::collection::vec((super::tricky_string(), super::tricky_string()), 0..3),
    )
        .prop_map(|(topic, key, value, timestamp, headers)| {
            let mut record = Record::new(topic, value);
            record.key = key;
            record.timestamp = timestamp;
            for (k, v) in headers {
                record.headers.push(Header::text(&k, &v));
            }
            record
        })
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn every_smt_config_takes_any_record(
        case in any::<prop::sample::Index>(),
        records in prop::collection::vec(record(), 1..4),
    ) {
        let config = case.get(&CASE_CONFIGS).clone();
        let mut options = Options::new(config);
        let chain = build_chain(&mut options, &ChainContext::for_tests());
        let n = records.len();
        let out = chain.apply_batch(records);
        // Record-at-a-time steps: each record is kept, failed or dropped, once.
        prop_assert_eq!(out.kept.len() + out.failed.len() + out.dropped, n);
    }
}
