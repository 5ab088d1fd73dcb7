//! The embedded schema registry's requests: any schema text, of any declared type, under any
//! subject, is registered, looked up and checked for compatibility, or refused with an error.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::schema_registry::SchemaRegistry;

/// Avro-shaped schemas with arbitrary parts, and arbitrary JSON.
fn schema_text() -> impl Strategy<Value = String> {
    let named = (
        super::tricky_string(),
        prop::collection::vec((super::tricky_string(), super::json_value()), 0..4),
    )
        .prop_map(|(name, fields)| {
            let fields: Vec<Value> = fields
                .into_iter()
                .map(|(name, kind)| json!({"name": name, "type": kind}))
                .collect();
            json!({"type": "record", "name": name, "fields": fields}).to_string()
        });
    prop_oneof![
        named,
        super::json_value().prop_map(|v| v.to_string()),
        super::tricky_string(),
        Just(r#"{"type": "enum", "name": "E", "symbols": ["A", "A"]}"#.to_owned()),
        Just(r#"{"type": "fixed", "name": "F", "size": -1}"#.to_owned()),
        Just(r#"["null", "null"]"#.to_owned()),
    ]
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn any_schema_is_registered_or_refused(
        subject in super::tricky_string(),
        schemas in prop::collection::vec(schema_text(), 1..4),
        schema_type in prop::sample::select(vec!["AVRO", "JSON", "PROTOBUF", "avro", ""]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let registry = SchemaRegistry::open(dir.path()).unwrap();
        for schema in &schemas {
            let _ = registry.is_compatible(&subject, "latest", schema, schema_type);
            if let Ok(registered) = registry.register(&subject, schema, schema_type) {
                let looked_up = registry.lookup(&subject, schema, schema_type);
                prop_assert_eq!(looked_up.map(|r| r.id).ok(), Some(registered.id));
            }
        }
        // What was registered survives a reopen.
        let reopened = SchemaRegistry::open(dir.path()).unwrap();
        prop_assert_eq!(reopened.subjects(), registry.subjects());
    }
}

/// The target's find: apache-avro panicked on a record with an empty name (an `unwrap` in its
/// name parsing), so a client registering such a schema crashed the request. Now a 422.
#[test]
fn a_schema_with_an_invalid_name_is_refused_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let registry = SchemaRegistry::open(dir.path()).unwrap();
    let error = registry
        .register("s", r#"{"type":"record","name":"","fields":[]}"#, "AVRO")
        .unwrap_err();
    assert_eq!(error.code, 42201);
    assert!(error.message.contains("Avro's rules"), "{}", error.message);
}
