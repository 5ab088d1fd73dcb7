//! The JsonConverter (with and without schemas) and the StringConverter reading what a Kafka
//! topic holds: any bytes, any JSON, any `{"schema", "payload"}` envelope are read or refused
//! with an error, and whatever is read can be written back.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::api::convert::Converter;
use crate::api::options::Options;
use crate::converters::BuiltinConverter;
use crate::runtime::prepare::VALUE_CONVERTER;

fn converter(class: &str, schemas: bool) -> BuiltinConverter {
    let mut options = Options::new(BTreeMap::from([
        ("value.converter".to_owned(), class.to_owned()),
        (
            "value.converter.schemas.enable".to_owned(),
            schemas.to_string(),
        ),
    ]));
    BuiltinConverter::from_options(&mut options, &VALUE_CONVERTER)
}

fn converters() -> Vec<BuiltinConverter> {
    vec![
        converter("org.apache.kafka.connect.json.JsonConverter", true),
        converter("org.apache.kafka.connect.json.JsonConverter", false),
        converter("org.apache.kafka.connect.storage.StringConverter", false),
        converter(
            "org.apache.kafka.connect.converters.ByteArrayConverter",
            false,
        ),
    ]
}

/// Reads `bytes` with every converter; what one reads, it writes back without panicking.
fn read_and_write(bytes: Vec<u8>) {
    for converter in converters() {
        if let Ok(mut payload) = converter.read(Bytes::from(bytes.clone())) {
            let _ = converter.serialize("topic", false, &mut payload);
            let _ = converter.rendered(&mut payload);
        }
    }
}

proptest! {
    #![proptest_config(super::cases())]

    #[test]
    fn any_bytes_are_read_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        read_and_write(bytes);
    }

    #[test]
    fn any_json_is_read_or_refused(value in super::json_value()) {
        read_and_write(value.to_string().into_bytes());
    }

    #[test]
    fn any_envelope_is_read_or_refused(schema in super::connect_schema(), payload in super::json_value()) {
        read_and_write(json!({"schema": schema, "payload": payload}).to_string().into_bytes());
    }

    #[test]
    fn envelopes_of_matching_shapes_are_read_or_refused(
        fields in prop::collection::vec((super::tricky_string(), super::connect_schema(), super::json_value()), 0..5),
    ) {
        // A struct schema and a payload object with the same field names: deeper in the
        // converter than a random pairing gets.
        let schema_fields: Vec<Value> = fields
            .iter()
            .map(|(name, schema, _)| {
                let mut schema = schema.clone();
                if let Some(object) = schema.as_object_mut() {
                    object.insert("field".to_owned(), Value::from(name.clone()));
                }
                schema
            })
            .collect();
        let payload: serde_json::Map<String, Value> =
            fields.into_iter().map(|(name, _, value)| (name, value)).collect();
        let envelope = json!({
            "schema": {"type": "struct", "fields": schema_fields, "optional": false},
            "payload": payload,
        });
        read_and_write(envelope.to_string().into_bytes());
    }
}
