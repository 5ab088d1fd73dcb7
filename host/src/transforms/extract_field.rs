//! `org.apache.kafka.connect.transforms.ExtractField$Key` / `$Value`: replaces the struct or map
//! with one of its fields (with `field.syntax.version=V2`, a dotted path into nested structs).
//! With a schema, the result takes the field's schema; an unknown field is an error. Schemaless,
//! a missing field gives null. A null value stays null.

use serde_json::Value;

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema;
use super::util::{Operand, describe, field_path, require_object};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.ExtractField",
    has_variants: true,
    keys: &[FIELD, FIELD_SYNTAX_VERSION],
    build,
};

const FIELD: ConfigKey =
    ConfigKey::new("field", KeyType::String, "Field name to extract.").required();

/// Kafka Connect's `FieldSyntaxVersion` key (KIP-821).
pub const FIELD_SYNTAX_VERSION: ConfigKey = ConfigKey::new(
    "field.syntax.version",
    KeyType::String,
    "Defines the version of the syntax to access fields. If set to `V1`, then the field paths \
     are limited to access the elements at the root level of the struct or map. If set to `V2`, \
     the syntax will support accessing nested elements. To access nested elements, dotted \
     notation is used. If dots are already included in the field name, then backtick pairs can \
     be used to wrap field names containing dots. E.g. to access the subfield `baz` from a field \
     named \"foo.bar\" in a struct/map the following format can be used to access its elements: \
     \"`foo.bar`.baz\".",
)
.with_default("V1")
.one_of(&["V1", "V2"]);

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let field = options.string(&FIELD);
    let v2 = options.choice(&FIELD_SYNTAX_VERSION)? == "v2";
    let field = field?;
    match field_path(&field, v2) {
        Ok(path) => Some(Box::new(ExtractField {
            op: Operand::new(PLUGIN.class, part),
            field,
            path,
        })),
        Err(e) => {
            options.issue(FIELD.name, e);
            None
        }
    }
}

#[derive(Debug)]
struct ExtractField {
    op: Operand,
    /// The configured path text, for messages.
    field: String,
    path: Vec<String>,
}

impl ExtractField {
    /// The value at the path; null when a step is missing or null. A step through a value that
    /// is not an object is an error.
    fn value_at<'a>(&self, mut value: &'a Value) -> Result<&'a Value, TransformError> {
        for (i, step) in self.path.iter().enumerate() {
            if value.is_null() {
                break;
            }
            let map = if i == 0 {
                require_object(value, &self.op.label)?
            } else {
                value.as_object().ok_or_else(|| {
                    self.op.error(format!(
                        "cannot access {step:?} inside {} (field path {:?})",
                        describe(value),
                        self.field
                    ))
                })?
            };
            value = map.get(step).unwrap_or(&Value::Null);
        }
        Ok(value)
    }

    /// The schema of the field at the path.
    fn schema_at(&self, mut schema: &Value) -> Result<Value, TransformError> {
        for step in &self.path {
            schema = schema::find_field(schema, step)
                .ok_or_else(|| self.op.error(format!("unknown field {:?}", self.field)))?;
        }
        Ok(schema::field_schema(schema))
    }
}

impl Transform for ExtractField {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        self.op.update(record, |data| {
            let schema = match &data.schema {
                Some(s) => Some(
                    self.schema_at(schema::require_struct_schema(s, &self.op.label)?)?
                        .into(),
                ),
                None if data.value.is_null() => return Ok(None),
                None => None,
            };
            let value = self.value_at(&data.value)?.clone();
            Ok(Some(Data { schema, value }))
        })
    }
}
