//! Avro mapping tests: round trips, logical types, evolution, recursion.

use base64::Engine;
use serde_json::{Value, json};

use super::values::decimal_bytes;
use super::*;

const CLICK: &str = r#"{"type":"record","name":"Click","namespace":"shop","fields":[
    {"name":"user_id","type":"long"},
    {"name":"page","type":"string"},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
    {"name":"day","type":{"type":"int","logicalType":"date"}},
    {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
    {"name":"id","type":{"type":"string","logicalType":"uuid"}},
    {"name":"t_us","type":{"type":"long","logicalType":"time-micros"}},
    {"name":"ref","type":["null","string"],"default":null},
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["VIEW","BUY"]}}
]}"#;

fn click() -> Value {
    json!({"user_id": 7, "page": "/a", "ts": 1700000000000i64, "day": 19675,
           "price": B64.encode([0x04, 0xd2]), "id": "5b7e1a52-7a87-4d3c-9a53-2f2b0c3f0f9e",
           "t_us": 3_600_000_000i64, "ref": null, "kind": "BUY"})
}

#[test]
fn schema_json_round_trips_logical_types() {
    let c = AvroConverter::new(None, Some(CLICK), true, None).unwrap();
    let bytes = c
        .serialize("clicks-value", &Data::schemaless(click()))
        .unwrap();
    let data = c.deserialize(&bytes).unwrap();
    assert_eq!(data.value, click());
    let schema = data.schema.unwrap();
    assert_eq!(schema["name"], "shop.Click");
    assert_eq!(
        schema["fields"][2]["name"],
        "org.apache.kafka.connect.data.Timestamp"
    );
    assert_eq!(
        schema["fields"][3]["name"],
        "org.apache.kafka.connect.data.Date"
    );
    assert_eq!(schema["fields"][4]["parameters"]["scale"], "2");
    assert_eq!(schema["fields"][7]["optional"], true);
}

#[test]
fn decimals_given_as_numbers_are_scaled() {
    assert_eq!(
        decimal_bytes(&json!(12.34), 2, "").unwrap(),
        vec![0x04, 0xd2]
    );
    assert_eq!(decimal_bytes(&json!(-1), 2, "").unwrap(), vec![0x9c]);
    assert_eq!(decimal_bytes(&json!(-2), 2, "").unwrap(), vec![0xff, 0x38]);
    assert_eq!(decimal_bytes(&json!(1.5), 0, "").unwrap(), vec![0x01]);
}

#[test]
fn mismatched_values_name_the_field() {
    let c = AvroConverter::new(None, Some(CLICK), true, None).unwrap();
    let mut bad = click();
    bad["user_id"] = json!("seven");
    let err = c.serialize("s", &Data::schemaless(bad)).unwrap_err();
    assert!(
        err.to_string().contains("user_id: expected a long"),
        "{err}"
    );
}

#[test]
fn connect_structs_become_records_with_optional_unions() {
    let connect = json!({"type": "struct", "name": "shop.User", "optional": false, "fields": [
        {"field": "id", "type": "int64", "optional": false},
        {"field": "email", "type": "string", "optional": true},
        {"field": "born", "type": "int32", "optional": true, "name": "org.apache.kafka.connect.data.Date", "version": 1}
    ]});
    let avro = from_connect(&connect).unwrap();
    let back = known(avro.clone());
    assert_eq!(back.connect["fields"][1]["optional"], true);
    assert_eq!(
        back.connect["fields"][2]["name"],
        "org.apache.kafka.connect.data.Date"
    );
    let bytes = encode(&avro, &json!({"id": 1, "email": null, "born": 3})).unwrap();
    let value = apache_avro::from_avro_datum(&avro, &mut bytes.as_slice(), None).unwrap();
    assert_eq!(
        to_json(&value, &avro, &named_types(&avro)),
        json!({"id": 1, "email": null, "born": 3})
    );
}

#[test]
fn recursive_schemas_and_shared_structs_translate() {
    let list = r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}"#;
    let k = known(AvroSchema::parse_str(list).unwrap());
    assert_eq!(k.connect["fields"][1]["name"], "Node");
    assert_eq!(k.connect["fields"][1]["optional"], true);
    let c = AvroConverter::new(None, Some(list), true, None).unwrap();
    let value = json!({"v": 1, "next": {"v": 2, "next": null}});
    let bytes = c.serialize("s", &Data::schemaless(value.clone())).unwrap();
    assert_eq!(c.deserialize(&bytes).unwrap().value, value);
    // Debezium's envelope: `before` and `after` share one struct.
    let row = json!({"type": "struct", "name": "db.t.Value", "optional": true,
        "fields": [{"field": "id", "type": "int32", "optional": false}]});
    let envelope = json!({"type": "struct", "name": "db.t.Envelope", "optional": false,
        "fields": [
            {"field": "before", "type": "struct", "name": "db.t.Value", "optional": true, "fields": row["fields"]},
            {"field": "after", "type": "struct", "name": "db.t.Value", "optional": true, "fields": row["fields"]},
            {"field": "op", "type": "string", "optional": false}]});
    let avro = from_connect(&envelope).unwrap();
    let text = serde_json::to_string(&avro).unwrap();
    assert_eq!(
        text.matches("\"fields\"").count(),
        2,
        "Value defined once: {text}"
    );
    let bytes = encode(
        &avro,
        &json!({"before": null, "after": {"id": 3}, "op": "c"}),
    )
    .unwrap();
    assert!(!bytes.is_empty());
}

#[test]
fn unions_of_several_types_with_null_are_optional_structs() {
    let s = r#"{"type":"record","name":"R","fields":[{"name":"u","type":["null","long",{"type":"int","logicalType":"date"}]}]}"#;
    let k = known(AvroSchema::parse_str(s).unwrap());
    let u = &k.connect["fields"][0];
    assert_eq!(u["name"], "io.confluent.connect.avro.Union");
    assert_eq!(u["optional"], true);
    assert_eq!(
        u["fields"][1]["field"], "int",
        "a logical type's branch has its base name"
    );
    let back = from_connect(&k.connect).unwrap();
    let bytes = encode(&back, &json!({"u": {"long": 5, "int": null}})).unwrap();
    assert_eq!(
        bytes,
        vec![2, 10],
        "union branch 1 (zigzag 2), then the long 5 (zigzag 10)"
    );
}

#[test]
fn readers_resolve_older_writers() {
    let v1 = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
    let v2 = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"tier","type":"string","default":"free"}]}"#;
    let writer = AvroSchema::parse_str(v1).unwrap();
    let bytes = encode(&writer, &json!({"id": 4})).unwrap();
    let reader = AvroSchema::parse_str(v2).unwrap();
    let value =
        apache_avro::from_avro_datum(&writer, &mut bytes.as_slice(), Some(&reader)).unwrap();
    assert_eq!(
        to_json(&value, &reader, &named_types(&reader)),
        json!({"id": 4, "tier": "free"})
    );
}
