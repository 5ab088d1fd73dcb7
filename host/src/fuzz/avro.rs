//! Avro records (the AvroConverter reading what a topic holds): any bytes under any of a set of
//! schemas covering every Avro type decode to a value or an error, within bounded memory.

use proptest::prelude::*;

use crate::converters::avro::AvroConverter;

/// Schemas using every Avro type: primitives, records, enums, arrays, maps, unions, fixed,
/// logical types, and a recursive record.
const SCHEMAS: &[&str] = &[
    r#""string""#,
    r#""long""#,
    r#"{"type": "record", "name": "R", "fields": [
        {"name": "b", "type": "boolean"}, {"name": "i", "type": "int"},
        {"name": "l", "type": "long"}, {"name": "f", "type": "float"},
        {"name": "d", "type": "double"}, {"name": "s", "type": "string"},
        {"name": "y", "type": "bytes"}, {"name": "n", "type": ["null", "string"]}]}"#,
    r#"{"type": "array", "items": {"type": "map", "values": "long"}}"#,
    r#"{"type": "record", "name": "L", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "x", "type": {"type": "fixed", "name": "F", "size": 4}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}}]}"#,
    r#"{"type": "record", "name": "Node", "fields": [
        {"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}]}"#,
];

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn any_bytes_decode_under_any_schema_or_fail_cleanly(
        schema in prop::sample::select(SCHEMAS),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let converter = AvroConverter::new(None, Some(schema), false, None)
            .expect("the schemas above are valid");
        let _ = converter.deserialize(&bytes);
    }
}

/// The target's first find: a map block claiming billions of entries in a few bytes made
/// apache-avro reserve 43 GB and abort the process. Now a decode error.
#[test]
fn a_map_claiming_billions_of_entries_is_an_error_not_an_abort() {
    let converter = AvroConverter::new(
        None,
        Some(r#"{"type": "map", "values": "long"}"#),
        false,
        None,
    )
    .unwrap();
    let error = converter
        .deserialize(&[0x82, 0xa4, 0xe7, 0x9f, 0x14, 0x02, b'k', 0x00])
        .unwrap_err()
        .to_string();
    assert!(error.contains("a block of"), "{error}");
}

proptest! {
    #![proptest_config(super::cases())]

    /// Writing Avro: any Connect schema (as a JsonConverter envelope carries it, from a record)
    /// becomes an Avro schema or an error.
    #[test]
    fn any_connect_schema_becomes_an_avro_schema_or_an_error(schema in super::connect_schema()) {
        let _ = crate::converters::avro::from_connect(&schema);
    }
}
