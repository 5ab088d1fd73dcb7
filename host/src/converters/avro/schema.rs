//! Avro schemas as Kafka Connect schemas (Confluent's `AvroData.toConnectSchema`), and the
//! named types a schema's references resolve to.

use crate::api::logical;
use std::collections::HashMap;

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::UnionSchema;
use serde_json::{Map, Value, json};

/// Named types (records, enums, fixed) by full name, for `Ref`s.
pub(super) type Names = HashMap<String, AvroSchema>;

pub(super) fn named_types(schema: &AvroSchema) -> Names {
    fn walk(s: &AvroSchema, ns: &Option<String>, out: &mut Names) {
        match s {
            AvroSchema::Record(r) => {
                let full = r.name.fullname(ns.clone());
                if out.insert(full, s.clone()).is_some() {
                    return;
                }
                let inner = r.name.namespace.clone().or_else(|| ns.clone());
                for f in &r.fields {
                    walk(&f.schema, &inner, out);
                }
            }
            AvroSchema::Enum(e) => {
                out.insert(e.name.fullname(ns.clone()), s.clone());
            }
            AvroSchema::Fixed(f) => {
                out.insert(f.name.fullname(ns.clone()), s.clone());
            }
            AvroSchema::Array(a) => walk(&a.items, ns, out),
            AvroSchema::Map(m) => walk(&m.types, ns, out),
            AvroSchema::Union(u) => u.variants().iter().for_each(|v| walk(v, ns, out)),
            _ => {}
        }
    }
    let mut out = Names::new();
    walk(schema, &None, &mut out);
    out
}

pub(super) fn resolve<'a>(schema: &'a AvroSchema, names: &'a Names) -> &'a AvroSchema {
    match schema {
        AvroSchema::Ref { name } => names
            .get(&name.fullname(None))
            .or_else(|| names.values().find(|s| schema_name(s) == Some(&name.name)))
            .unwrap_or(schema),
        other => other,
    }
}

pub(super) fn schema_name(s: &AvroSchema) -> Option<&String> {
    match s {
        AvroSchema::Record(r) => Some(&r.name.name),
        AvroSchema::Enum(e) => Some(&e.name.name),
        AvroSchema::Fixed(f) => Some(&f.name.name),
        _ => None,
    }
}

/// The non-null branch of a `["null", T]` union.
pub(super) fn nullable(u: &UnionSchema) -> Option<&AvroSchema> {
    let v = u.variants();
    match v {
        [AvroSchema::Null, t] | [t, AvroSchema::Null] => Some(t),
        _ => None,
    }
}

pub(super) fn logical(name: &str, base: &str) -> Value {
    json!({ "type": base, "optional": false, "name": name, "version": 1 })
}

/// The Connect schema (JsonConverter form) of an Avro schema.
pub(super) fn to_connect(s: &AvroSchema, names: &Names, optional: Option<bool>) -> Value {
    to_connect_in(s, names, optional, &mut Vec::new())
}

/// `expanding`: the records being expanded on the way here. A record that contains itself
/// (a linked list, a tree) is a struct without fields the second time: Connect schemas
/// cannot be recursive, and following the reference would never end.
pub(super) fn to_connect_in(
    s: &AvroSchema,
    names: &Names,
    optional: Option<bool>,
    expanding: &mut Vec<String>,
) -> Value {
    let mut optional = optional.unwrap_or(false);
    let resolved = resolve(s, names);
    if let AvroSchema::Record(r) = resolved {
        let name = r.name.fullname(None);
        if expanding.contains(&name) {
            return json!({ "type": "struct", "name": name, "optional": optional });
        }
    }
    let mut out = match resolved {
        AvroSchema::Null => json!({ "type": "string" }),
        AvroSchema::Boolean => json!({ "type": "boolean" }),
        AvroSchema::Int => json!({ "type": "int32" }),
        AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => json!({ "type": "int64" }),
        AvroSchema::Float => json!({ "type": "float" }),
        AvroSchema::Double => json!({ "type": "double" }),
        AvroSchema::Bytes | AvroSchema::Duration => json!({ "type": "bytes" }),
        AvroSchema::Fixed(f) => json!({ "type": "bytes", "name": f.name.fullname(None) }),
        AvroSchema::String | AvroSchema::Uuid | AvroSchema::BigDecimal => {
            json!({ "type": "string" })
        }
        AvroSchema::Enum(e) => json!({ "type": "string", "name": e.name.fullname(None) }),
        AvroSchema::Date => logical(logical::DATE, "int32"),
        AvroSchema::TimeMillis => logical(logical::TIME, "int32"),
        AvroSchema::TimestampMillis => logical(logical::TIMESTAMP, "int64"),
        AvroSchema::Decimal(d) => json!({
            "type": "bytes",
            "name": logical::DECIMAL,
            "version": 1,
            "parameters": {
                "scale": d.scale.to_string(),
                "connect.decimal.precision": d.precision.to_string(),
            },
        }),
        AvroSchema::Array(a) => {
            json!({ "type": "array", "items": to_connect_in(&a.items, names, None, expanding) })
        }
        AvroSchema::Map(m) => json!({
            "type": "map",
            "keys": { "type": "string", "optional": false },
            "values": to_connect_in(&m.types, names, None, expanding),
        }),
        AvroSchema::Union(u) => match nullable(u) {
            Some(t) => return to_connect_in(t, names, Some(true), expanding),
            None => {
                // A null branch makes the whole union optional, as in AvroData.
                optional |= u.variants().iter().any(|v| matches!(v, AvroSchema::Null));
                let fields: Vec<Value> = u
                    .variants()
                    .iter()
                    .filter(|v| !matches!(v, AvroSchema::Null))
                    .map(|v| {
                        let mut f = to_connect_in(v, names, Some(true), expanding);
                        f["field"] = json!(branch_name(v));
                        f
                    })
                    .collect();
                json!({ "type": "struct", "name": "io.confluent.connect.avro.Union", "fields": fields })
            }
        },
        AvroSchema::Record(r) => {
            expanding.push(r.name.fullname(None));
            let fields: Vec<Value> = r
                .fields
                .iter()
                .map(|f| {
                    let mut c = to_connect_in(&f.schema, names, None, expanding);
                    if let Value::Object(m) = &mut c {
                        let mut with_name = Map::new();
                        with_name.insert("field".into(), json!(f.name));
                        with_name.extend(std::mem::take(m));
                        *m = with_name;
                    }
                    c
                })
                .collect();
            expanding.pop();
            json!({ "type": "struct", "name": r.name.fullname(None), "fields": fields })
        }
        AvroSchema::Ref { name } => json!({ "type": "struct", "name": name.fullname(None) }),
    };
    out["optional"] = json!(optional);
    out
}

/// The field name of a union branch in Confluent's Union struct: the name of a named type,
/// else the Avro type (a logical type's underlying one).
pub(super) fn branch_name(s: &AvroSchema) -> String {
    match s {
        AvroSchema::Record(r) => r.name.name.clone(),
        AvroSchema::Enum(e) => e.name.name.clone(),
        AvroSchema::Fixed(f) => f.name.name.clone(),
        AvroSchema::Ref { name } => name.name.clone(),
        AvroSchema::Date | AvroSchema::TimeMillis => "int".into(),
        AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos => "long".into(),
        AvroSchema::Uuid => "string".into(),
        AvroSchema::BigDecimal => "bytes".into(),
        AvroSchema::Decimal(d) => branch_name(&d.inner),
        other => {
            let kind: apache_avro::schema::SchemaKind = other.into();
            format!("{kind:?}").to_lowercase()
        }
    }
}
