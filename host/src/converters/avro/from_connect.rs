//! Connect schemas as Avro schemas (Confluent's `AvroData.fromConnectSchema`).

use crate::api::logical;
use apache_avro::Schema as AvroSchema;
use apache_avro::schema::Name;
use serde_json::{Value, json};

use super::AvroError;

/// The Avro schema for a Connect schema, as Confluent's `AvroData.fromConnectSchema` builds
/// it: structs become records (`ConnectDefault` when unnamed), optional fields unions with
/// null defaulting to null, Connect's logical types Avro's.
pub fn from_connect(schema: &Value) -> Result<AvroSchema, AvroError> {
    let mut names = Defined::default();
    let json = connect_to_avro_json(schema, &mut names, true)?;
    crate::schema_registry::parse_avro_json(&json)
        .map_err(|e| AvroError::Schema(format!("{e} (from Connect schema {schema})")))
}

/// Records already defined while translating one schema: Avro names a type once and refers to
/// it by name after (Debezium's `before` and `after` share their `Value` struct).
#[derive(Default)]
pub(super) struct Defined {
    unnamed: usize,
    names: std::collections::HashSet<String>,
}

pub(super) fn connect_to_avro_json(
    schema: &Value,
    defined: &mut Defined,
    top: bool,
) -> Result<Value, AvroError> {
    let base = match schema.get("name").and_then(Value::as_str) {
        Some(logical::DECIMAL) => {
            let params = &schema["parameters"];
            let scale: u64 = params["scale"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let precision: u64 = params["connect.decimal.precision"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or(64);
            json!({ "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale })
        }
        Some(logical::DATE) => {
            json!({ "type": "int", "logicalType": "date" })
        }
        Some(logical::TIME) => {
            json!({ "type": "int", "logicalType": "time-millis" })
        }
        Some(logical::TIMESTAMP) => {
            json!({ "type": "long", "logicalType": "timestamp-millis" })
        }
        _ => match schema["type"].as_str().unwrap_or("") {
            "int8" | "int16" | "int32" => json!("int"),
            "int64" => json!("long"),
            "float" | "float32" => json!("float"),
            "double" | "float64" => json!("double"),
            "boolean" => json!("boolean"),
            "string" => json!("string"),
            "bytes" => json!("bytes"),
            "array" => {
                json!({ "type": "array", "items": connect_to_avro_json(&schema["items"], defined, false)? })
            }
            "map" => {
                json!({ "type": "map", "values": connect_to_avro_json(&schema["values"], defined, false)? })
            }
            "struct" if schema["name"] == "io.confluent.connect.avro.Union" => {
                // Back to the Avro union it came from: its optional fields are the branches.
                let mut branches = Vec::new();
                if schema["optional"].as_bool() == Some(true) {
                    branches.push(json!("null"));
                }
                for f in schema["fields"].as_array().into_iter().flatten() {
                    let mut branch = f.clone();
                    branch["optional"] = json!(false);
                    branches.push(connect_to_avro_json(&branch, defined, false)?);
                }
                return Ok(Value::Array(branches));
            }
            "struct" => {
                let name = match schema.get("name").and_then(Value::as_str) {
                    Some(n) => n.to_owned(),
                    None => {
                        defined.unnamed += 1;
                        match defined.unnamed {
                            1 => "io.confluent.connect.avro.ConnectDefault".to_owned(),
                            n => format!("io.confluent.connect.avro.ConnectDefault{n}"),
                        }
                    }
                };
                if !defined.names.insert(name.clone()) {
                    // Defined already: refer to it by name.
                    return Ok(if schema["optional"].as_bool() == Some(true) && !top {
                        json!(["null", name])
                    } else {
                        json!(name)
                    });
                }
                let Name { name, namespace } =
                    Name::new(&name).map_err(|e| AvroError::Schema(e.to_string()))?;
                let mut fields = Vec::new();
                for f in schema["fields"].as_array().into_iter().flatten() {
                    let field = f["field"].as_str().ok_or_else(|| {
                        AvroError::Schema(format!("struct field without a name: {f}"))
                    })?;
                    let mut avro_field =
                        json!({ "name": field, "type": connect_to_avro_json(f, defined, false)? });
                    if f["optional"].as_bool() == Some(true) {
                        avro_field["default"] = Value::Null;
                    }
                    fields.push(avro_field);
                }
                let mut record = json!({ "type": "record", "name": name, "fields": fields });
                if let Some(ns) = namespace {
                    record["namespace"] = json!(ns);
                }
                record
            }
            other => {
                return Err(AvroError::Schema(format!(
                    "no Avro type for Connect type {other:?}"
                )));
            }
        },
    };
    // Optional values are unions with null; a top-level optional value is written as such too.
    if schema["optional"].as_bool() == Some(true) && !(top && schema["type"] == "struct") {
        return Ok(json!(["null", base]));
    }
    Ok(base)
}
