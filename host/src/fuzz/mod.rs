//! Property tests of every decoder of untrusted bytes (issue 22, part 1): each target feeds a
//! decoder arbitrary input — random bytes, and inputs shaped like the real thing with parts
//! scrambled — and asserts what must hold whatever comes in: no panic, and a clear error
//! instead of a result when the input is not valid.
//!
//! cargo-fuzz needs a nightly toolchain; these are proptest targets on stable Rust. The suite
//! runs [`cases`] cases per target (256); `HEADWATER_FUZZ_CASES=100000 cargo nextest run -p
//! headwater --lib fuzz::` runs a longer campaign. A failure prints the shrunk input; every
//! panic found becomes a fix and a regression case in the target's module.

mod avro;
mod configs;
mod converters;
mod file_lines;
mod pgoutput;
mod schema_registry;
mod smts;
mod wasm_wire;

use proptest::prelude::*;
use serde_json::Value;

/// Cases per target: `HEADWATER_FUZZ_CASES`, or 256 (a few seconds per target in debug).
pub(crate) fn cases() -> ProptestConfig {
    let cases = std::env::var("HEADWATER_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Shrinking a failure should not take longer than finding it.
        max_shrink_iters: 4096,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings mixing the characters that trip parsers: quotes, escapes, braces, separators,
/// control and multi-byte characters.
pub(crate) fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("=".to_owned()),
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\u{0}".to_owned()),
            Just("é".to_owned()),
            Just("🦀".to_owned()),
            Just("${".to_owned()),
            Just(".".to_owned()),
            "[a-z0-9_]{1,8}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Arbitrary JSON values: every type, nested a few levels, with extreme numbers.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        tricky_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(tricky_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Kafka Connect schemas, well formed or not: every type name, optional fields, nested
/// structs, arrays, maps and logical types, mixed with arbitrary JSON where a schema goes.
pub(crate) fn connect_schema() -> impl Strategy<Value = Value> {
    let types = prop::sample::select(vec![
        "int8", "int16", "int32", "int64", "float32", "float64", "boolean", "string", "bytes",
        "struct", "array", "map", "nonsense",
    ]);
    let names = prop::sample::select(vec![
        "",
        "org.apache.kafka.connect.data.Decimal",
        "org.apache.kafka.connect.data.Timestamp",
        "org.apache.kafka.connect.data.Date",
        "org.apache.kafka.connect.data.Time",
        "io.debezium.time.MicroTimestamp",
        "io.debezium.data.Json",
    ]);
    let leaf = (types, names, any::<bool>()).prop_map(|(kind, name, optional)| {
        let mut schema = serde_json::json!({"type": kind, "optional": optional});
        if !name.is_empty() {
            schema["name"] = Value::from(name);
            schema["parameters"] = serde_json::json!({"scale": "2"});
        }
        schema
    });
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((tricky_string(), inner.clone()), 0..4).prop_map(|fields| {
                let fields: Vec<Value> = fields
                    .into_iter()
                    .map(|(name, mut schema)| {
                        // A schema that is not an object (arbitrary JSON) stays as it is.
                        if let Some(object) = schema.as_object_mut() {
                            object.insert("field".to_owned(), Value::from(name));
                        }
                        schema
                    })
                    .collect();
                serde_json::json!({"type": "struct", "fields": fields, "optional": false})
            }),
            inner
                .clone()
                .prop_map(|items| serde_json::json!({"type": "array", "items": items})),
            (inner.clone(), inner.clone()).prop_map(
                |(keys, values)| serde_json::json!({"type": "map", "keys": keys, "values": values})
            ),
            json_value(),
        ]
    })
}
