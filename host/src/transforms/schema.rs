//! Reading and building Kafka Connect schemas in JsonConverter's JSON form: `{"type": "struct",
//! "fields": [{"field": "a", "type": "int32", "optional": false}], "optional": false, "name":
//! ...}`. A struct field is the field's schema with a `field` key holding its name.

use serde_json::{Map, Value, json};

use crate::api::record::Data;
use crate::api::transform::TransformError;

use super::util::describe;

/// Logical type names (`org.apache.kafka.connect.data.*`).
pub use crate::api::logical::{DATE, DECIMAL, TIME, TIMESTAMP};

/// The keys `SchemaUtil.copySchemaBasics` carries over to a rebuilt schema.
const BASICS: [&str; 4] = ["name", "version", "doc", "parameters"];

/// The schema's `type` (`""` when absent).
pub fn type_of(schema: &Value) -> &str {
    schema.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The schema's `name`, e.g. a logical type name.
pub fn name_of(schema: &Value) -> Option<&str> {
    schema.get("name").and_then(Value::as_str)
}

/// True for one of Connect's built-in logical types (Date, Time, Timestamp, Decimal).
pub fn is_logical(schema: &Value) -> bool {
    matches!(name_of(schema), Some(TIMESTAMP | DATE | TIME | DECIMAL))
}

pub fn is_optional(schema: &Value) -> bool {
    schema
        .get("optional")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A primitive schema (`{"type": "string", "optional": true}`).
pub fn primitive(ty: &str, optional: bool) -> Value {
    json!({"type": ty, "optional": optional})
}

/// A logical type's schema, as `Timestamp.builder()` and friends build it (version 1).
pub fn logical(ty: &str, name: &str, optional: bool) -> Value {
    json!({"type": ty, "optional": optional, "name": name, "version": 1})
}

/// Sets `optional` on a schema object.
pub fn set_optional(schema: &mut Value, optional: bool) {
    if let Some(map) = schema.as_object_mut() {
        map.insert("optional".to_owned(), Value::Bool(optional));
    }
}

/// A struct schema's fields (empty for other schemas).
pub fn fields(schema: &Value) -> &[Value] {
    schema
        .get("fields")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// A field's name (its `field` key).
pub fn field_name(field: &Value) -> &str {
    field.get("field").and_then(Value::as_str).unwrap_or("")
}

/// The field named `name` of a struct schema.
pub fn find_field<'a>(schema: &'a Value, name: &str) -> Option<&'a Value> {
    fields(schema).iter().find(|f| field_name(f) == name)
}

/// A field's schema on its own (without the `field` key).
pub fn field_schema(field: &Value) -> Value {
    let mut schema = field.clone();
    if let Some(map) = schema.as_object_mut() {
        map.remove("field");
    }
    schema
}

/// `schema` as a struct field called `name`.
pub fn named_field(name: &str, mut schema: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert("field".to_owned(), Value::String(name.to_owned()));
    }
    schema
}

/// A struct schema with `fields`, keeping the name, version, doc, parameters and optionality
/// of `template` (what Kafka Connect's SMTs do when they rebuild a struct schema).
pub fn struct_like(template: &Value, fields: Vec<Value>) -> Value {
    let mut schema = Map::new();
    schema.insert("type".to_owned(), json!("struct"));
    schema.insert("fields".to_owned(), Value::Array(fields));
    schema.insert("optional".to_owned(), json!(is_optional(template)));
    copy_basics(template, &mut schema);
    Value::Object(schema)
}

/// Copies name, version, doc and parameters of `from` into `to`.
pub fn copy_basics(from: &Value, to: &mut Map<String, Value>) {
    for key in BASICS {
        if let Some(v) = from.get(key) {
            to.insert(key.to_owned(), v.clone());
        }
    }
}

/// A new, required, unnamed struct schema with `fields` (`SchemaBuilder.struct()`).
pub fn struct_of(fields: Vec<Value>) -> Value {
    json!({"type": "struct", "fields": fields, "optional": false})
}

/// A struct value with its schema: the schema must be a struct and the value a JSON object.
pub fn require_struct<'a>(
    data: &'a Data,
    label: &str,
) -> Result<(&'a Value, &'a Map<String, Value>), TransformError> {
    let schema = data
        .schema
        .as_ref()
        .expect("require_struct is only called in schema mode");
    let schema = require_struct_schema(schema, label)?;
    match data.value.as_object() {
        Some(map) => Ok((schema, map)),
        None => Err(TransformError::data(format!(
            "{label}: expected a struct value for the struct schema, got {}",
            describe(&data.value)
        ))),
    }
}

/// The schema, if it is a struct schema.
pub fn require_struct_schema<'a>(
    schema: &'a Value,
    label: &str,
) -> Result<&'a Value, TransformError> {
    match type_of(schema) {
        "struct" => Ok(schema),
        other => Err(TransformError::data(format!(
            "{label}: expected a struct schema, got type {other:?}"
        ))),
    }
}

/// The value of struct field `name` (null when absent).
pub fn get<'a>(value: &'a Map<String, Value>, name: &str) -> &'a Value {
    value.get(name).unwrap_or(&Value::Null)
}
