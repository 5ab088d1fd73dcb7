//! `org.apache.kafka.connect.transforms.Flatten$Key` / `$Value`: flattens nested structs (or
//! maps, schemaless) into one level, joining field names with `delimiter` (`a.b.c`). Arrays are
//! kept as they are. With a schema, a field becomes optional when any struct above it is; map
//! fields are not supported. A null value passes through unchanged.

use serde_json::{Map, Value};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema;
use super::util::Operand;
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.Flatten",
    has_variants: true,
    keys: &[DELIMITER],
    build,
};

const DELIMITER: ConfigKey = ConfigKey::new(
    "delimiter",
    KeyType::String,
    "Delimiter to insert between field names from the input record when generating field names \
     for the output record.",
)
.with_default(".");

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let delimiter = options.string(&DELIMITER)?;
    Some(Box::new(Flatten {
        op: Operand::new(PLUGIN.class, part),
        delimiter,
    }))
}

#[derive(Debug)]
struct Flatten {
    op: Operand,
    delimiter: String,
}

impl Flatten {
    fn name(&self, prefix: &str, field: &str) -> String {
        if prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{prefix}{}{field}", self.delimiter)
        }
    }

    fn schemaless(&self, value: &Map<String, Value>, prefix: &str, out: &mut Map<String, Value>) {
        for (field, v) in value {
            let name = self.name(prefix, field);
            match v {
                Value::Object(nested) => self.schemaless(nested, &name, out),
                other => {
                    out.insert(name, other.clone());
                }
            }
        }
    }

    /// Flattens the fields of `struct_schema` / `value` (null for a null nested struct) into
    /// `out`. `optional` is true when a struct above is optional; `default` is the parent's
    /// default struct value, used for fields that have no default of their own.
    fn with_schema(
        &self,
        struct_schema: &Value,
        value: &Value,
        prefix: &str,
        (optional, default): (bool, Option<&Value>),
        out: &mut Flat,
    ) -> Result<(), TransformError> {
        for field in schema::fields(struct_schema) {
            let field_name = schema::field_name(field);
            let name = self.name(prefix, field_name);
            let optional = optional || schema::is_optional(field);
            let field_value = value.get(field_name).unwrap_or(&Value::Null);
            let field_default = field
                .get("default")
                .or_else(|| default.and_then(|d| d.get(field_name)))
                .filter(|d| !d.is_null());
            match schema::type_of(field) {
                "struct" => {
                    let inherited = (optional, field_default);
                    self.with_schema(field, field_value, &name, inherited, out)?;
                }
                "map" => {
                    return Err(self.op.error(format!(
                        "flattening a map field with a schema is not supported (field {name:?})"
                    )));
                }
                _ => {
                    let mut flat = schema::field_schema(field);
                    let Some(map) = flat.as_object_mut() else {
                        return Err(self.op.error(format!(
                            "malformed schema: the fields of {:?} must be JSON objects, found \
                             {field}",
                            if prefix.is_empty() {
                                "the record"
                            } else {
                                prefix
                            }
                        )));
                    };
                    if let Some(d) = field_default {
                        map.insert("default".to_owned(), d.clone());
                    }
                    schema::set_optional(&mut flat, optional);
                    out.fields.push(schema::named_field(&name, flat));
                    out.values.insert(name, field_value.clone());
                }
            }
        }
        Ok(())
    }
}

/// The flattened struct being built: its field schemas and its values.
#[derive(Default)]
struct Flat {
    fields: Vec<Value>,
    values: Map<String, Value>,
}

impl Transform for Flatten {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        self.op.update_fields(
            record,
            |data| {
                let (struct_schema, _) = schema::require_struct(data, &self.op.label)?;
                let mut out = Flat::default();
                let inherited = (
                    schema::is_optional(struct_schema),
                    struct_schema.get("default"),
                );
                self.with_schema(struct_schema, &data.value, "", inherited, &mut out)?;
                Ok(Data {
                    schema: Some(schema::struct_like(struct_schema, out.fields).into()),
                    value: Value::Object(out.values),
                })
            },
            |value| {
                let mut out = Map::new();
                self.schemaless(value, "", &mut out);
                Ok(Data::schemaless(Value::Object(out)))
            },
        )
    }
}
