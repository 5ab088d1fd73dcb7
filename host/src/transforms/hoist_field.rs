//! `org.apache.kafka.connect.transforms.HoistField$Key` / `$Value`: wraps the data in a struct
//! (or, schemaless, a map) with a single field, `field`. With a schema, the new schema is a
//! required struct whose one field has the original schema. A null value is wrapped too, as
//! Kafka Connect does (`{"field": null}`).

use serde_json::{Map, Value};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema;
use super::util::Operand;
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.HoistField",
    has_variants: true,
    keys: &[FIELD],
    build,
};

const FIELD: ConfigKey = ConfigKey::new(
    "field",
    KeyType::String,
    "Field name for the single field that will be created in the resulting struct or map.",
)
.required();

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let field = options.string(&FIELD)?;
    Some(Box::new(HoistField {
        op: Operand::new(PLUGIN.class, part),
        field,
    }))
}

#[derive(Debug)]
struct HoistField {
    op: Operand,
    field: String,
}

impl Transform for HoistField {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        self.op.update(record, |data| {
            let mut value = Map::new();
            value.insert(self.field.clone(), data.value.clone());
            let schema = data.schema.as_ref().map(|s| {
                schema::struct_of(vec![schema::named_field(&self.field, (**s).clone())]).into()
            });
            Ok(Some(Data {
                schema,
                value: Value::Object(value),
            }))
        })
    }
}
