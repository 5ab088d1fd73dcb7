//! `org.apache.kafka.connect.transforms.ValueToKey`: replaces the record key with a struct (or,
//! schemaless, a map) of fields copied from the value. With a value schema, the key gets a new
//! struct schema with those fields' schemas. A field the value lacks is an error.

use serde_json::{Map, Value};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Payload, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema;
use super::util::{parsed, require_object};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.ValueToKey",
    has_variants: false,
    keys: &[FIELDS],
    build,
};

const FIELDS: ConfigKey = ConfigKey::new(
    "fields",
    KeyType::List,
    "Field names on the record value to extract as the record key.",
)
.required();

const LABEL: &str = "ValueToKey";

fn build(options: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    let fields = options.list(&FIELDS);
    (!fields.is_empty()).then(|| Box::new(ValueToKey { fields }) as Box<dyn Transform>)
}

#[derive(Debug)]
struct ValueToKey {
    fields: Vec<String>,
}

impl ValueToKey {
    fn missing(&self, field: &str) -> TransformError {
        TransformError::data(format!(
            "{LABEL}: the value has no field {field:?} (configured in `fields`)"
        ))
    }

    fn key_of(&self, data: &Data) -> Result<Data, TransformError> {
        let mut key = Map::new();
        let Some(value_schema) = &data.schema else {
            let value = require_object(&data.value, LABEL)?;
            for field in &self.fields {
                let v = value.get(field).ok_or_else(|| self.missing(field))?;
                key.insert(field.clone(), v.clone());
            }
            return Ok(Data::schemaless(Value::Object(key)));
        };
        let (_, value) = schema::require_struct(data, LABEL)?;
        let mut fields = Vec::new();
        for field in &self.fields {
            let field_schema =
                schema::find_field(value_schema, field).ok_or_else(|| self.missing(field))?;
            fields.push(field_schema.clone());
            key.insert(field.clone(), schema::get(value, field).clone());
        }
        Ok(Data {
            schema: Some(schema::struct_of(fields).into()),
            value: Value::Object(key),
        })
    }
}

impl Transform for ValueToKey {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        let key = self.key_of(parsed(&mut record.value, Part::Value, LABEL)?)?;
        // The old key is replaced whole, so it is never parsed.
        record.key = Payload::data(key);
        Ok(Outcome::Keep)
    }
}
