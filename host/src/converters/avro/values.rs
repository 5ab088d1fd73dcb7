//! Avro values as Connect's JSON values and back, guided by the Avro schema (Confluent's
//! `AvroData.toConnectData` / `fromConnectData`).

use apache_avro::Schema as AvroSchema;
use apache_avro::schema::{RecordField, RecordSchema, UnionSchema};
use apache_avro::types::Value as Avro;
use base64::Engine;
use serde_json::{Map, Number, Value};

use super::schema::{Names, branch_name, named_types, nullable, resolve};
use super::{AvroError, B64};

pub(super) fn num(n: impl Into<Number>) -> Value {
    Value::Number(n.into())
}

pub(super) fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// An Avro value as Connect's JSON value, guided by its (reader's) schema.
pub(super) fn to_json(value: &Avro, schema: &AvroSchema, names: &Names) -> Value {
    let schema = resolve(schema, names);
    match value {
        Avro::Null => Value::Null,
        Avro::Boolean(b) => Value::Bool(*b),
        Avro::Int(i) | Avro::Date(i) | Avro::TimeMillis(i) => num(*i),
        Avro::Long(i)
        | Avro::TimeMicros(i)
        | Avro::TimestampMillis(i)
        | Avro::TimestampMicros(i)
        | Avro::TimestampNanos(i)
        | Avro::LocalTimestampMillis(i)
        | Avro::LocalTimestampMicros(i)
        | Avro::LocalTimestampNanos(i) => num(*i),
        Avro::Float(f) => float(f64::from(*f)),
        Avro::Double(f) => float(*f),
        Avro::Bytes(b) | Avro::Fixed(_, b) => Value::String(B64.encode(b)),
        Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
        Avro::Uuid(u) => Value::String(u.to_string()),
        Avro::BigDecimal(d) => Value::String(d.to_string()),
        Avro::Decimal(d) => Value::String(B64.encode(<Vec<u8>>::try_from(d).unwrap_or_default())),
        Avro::Duration(d) => {
            let bytes: [u8; 12] = (*d).into();
            Value::String(B64.encode(bytes))
        }
        Avro::Union(index, inner) => {
            let AvroSchema::Union(u) = schema else {
                return to_json(inner, schema, names);
            };
            let branch = u.variants().get(*index as usize).unwrap_or(schema);
            if nullable(u).is_some() || matches!(**inner, Avro::Null) {
                return to_json(inner, branch, names);
            }
            let mut m = Map::new();
            for v in u
                .variants()
                .iter()
                .filter(|v| !matches!(v, AvroSchema::Null))
            {
                let name = branch_name(v);
                let set = std::ptr::eq(v, branch);
                m.insert(
                    name,
                    if set {
                        to_json(inner, branch, names)
                    } else {
                        Value::Null
                    },
                );
            }
            Value::Object(m)
        }
        Avro::Array(items) => {
            let item = match schema {
                AvroSchema::Array(a) => &*a.items,
                other => other,
            };
            Value::Array(items.iter().map(|v| to_json(v, item, names)).collect())
        }
        Avro::Map(entries) => {
            let values = match schema {
                AvroSchema::Map(m) => &*m.types,
                other => other,
            };
            let mut keys: Vec<&String> = entries.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), to_json(&entries[k], values, names)))
                    .collect(),
            )
        }
        Avro::Record(fields) => {
            let lookup = |name: &str| -> Option<&AvroSchema> {
                match schema {
                    AvroSchema::Record(r) => {
                        r.fields.iter().find(|f| f.name == name).map(|f| &f.schema)
                    }
                    _ => None,
                }
            };
            Value::Object(
                fields
                    .iter()
                    .map(|(name, v)| {
                        let s = lookup(name).unwrap_or(&AvroSchema::Null);
                        (name.clone(), to_json(v, s, names))
                    })
                    .collect(),
            )
        }
    }
}

/// Encodes Connect's JSON value with `schema`.
pub(super) fn encode(schema: &AvroSchema, value: &Value) -> Result<Vec<u8>, AvroError> {
    let names = named_types(schema);
    let avro = from_json(value, schema, &names, "")?;
    apache_avro::to_avro_datum(schema, avro).map_err(|e| AvroError::Encode(e.to_string()))
}

pub(super) fn mismatch(path: &str, expected: &str, value: &Value) -> AvroError {
    let at = if path.is_empty() { "the value" } else { path };
    AvroError::Encode(format!("{at}: expected {expected}, got {value}"))
}

pub(super) fn base64_bytes(value: &Value, path: &str) -> Result<Vec<u8>, AvroError> {
    match value {
        Value::String(s) => B64
            .decode(s)
            .map_err(|_| mismatch(path, "base64 bytes", value)),
        _ => Err(mismatch(path, "base64 bytes", value)),
    }
}

/// The unscaled two's-complement bytes of a decimal given as base64 (JsonConverter's BASE64
/// format) or as a number (its NUMERIC format).
pub(super) fn decimal_bytes(value: &Value, scale: usize, path: &str) -> Result<Vec<u8>, AvroError> {
    if let Value::Number(n) = value {
        let text = n.to_string();
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        let mut digits = format!("{int}{frac:0<scale$}");
        digits.truncate(int.len() + scale);
        let unscaled: i128 = digits
            .parse()
            .map_err(|_| mismatch(path, "a decimal", value))?;
        let bytes = unscaled.to_be_bytes();
        // Shortest two's-complement form.
        let mut start = 0;
        while start < 15
            && ((bytes[start] == 0 && bytes[start + 1] < 0x80)
                || (bytes[start] == 0xff && bytes[start + 1] >= 0x80))
        {
            start += 1;
        }
        return Ok(bytes[start..].to_vec());
    }
    base64_bytes(value, path)
}

pub(super) fn from_json(
    value: &Value,
    schema: &AvroSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    let int = |v: &Value| v.as_i64().and_then(|i| i32::try_from(i).ok());
    Ok(match resolve(schema, names) {
        AvroSchema::Null if value.is_null() => Avro::Null,
        AvroSchema::Null => return Err(mismatch(path, "null", value)),
        AvroSchema::Boolean => Avro::Boolean(
            value
                .as_bool()
                .ok_or_else(|| mismatch(path, "a boolean", value))?,
        ),
        AvroSchema::Int => Avro::Int(int(value).ok_or_else(|| mismatch(path, "an int", value))?),
        AvroSchema::Date => {
            Avro::Date(int(value).ok_or_else(|| mismatch(path, "days (int)", value))?)
        }
        AvroSchema::TimeMillis => {
            Avro::TimeMillis(int(value).ok_or_else(|| mismatch(path, "ms of the day", value))?)
        }
        s @ (AvroSchema::Long
        | AvroSchema::TimeMicros
        | AvroSchema::TimestampMillis
        | AvroSchema::TimestampMicros
        | AvroSchema::TimestampNanos
        | AvroSchema::LocalTimestampMillis
        | AvroSchema::LocalTimestampMicros
        | AvroSchema::LocalTimestampNanos) => {
            let i = value
                .as_i64()
                .ok_or_else(|| mismatch(path, "a long", value))?;
            match s {
                AvroSchema::TimeMicros => Avro::TimeMicros(i),
                AvroSchema::TimestampMillis => Avro::TimestampMillis(i),
                AvroSchema::TimestampMicros => Avro::TimestampMicros(i),
                AvroSchema::TimestampNanos => Avro::TimestampNanos(i),
                AvroSchema::LocalTimestampMillis => Avro::LocalTimestampMillis(i),
                AvroSchema::LocalTimestampMicros => Avro::LocalTimestampMicros(i),
                AvroSchema::LocalTimestampNanos => Avro::LocalTimestampNanos(i),
                _ => Avro::Long(i),
            }
        }
        AvroSchema::Float => Avro::Float(
            value
                .as_f64()
                .ok_or_else(|| mismatch(path, "a float", value))? as f32,
        ),
        AvroSchema::Double => Avro::Double(
            value
                .as_f64()
                .ok_or_else(|| mismatch(path, "a double", value))?,
        ),
        AvroSchema::Bytes => Avro::Bytes(base64_bytes(value, path)?),
        AvroSchema::Fixed(f) => Avro::Fixed(f.size, base64_bytes(value, path)?),
        AvroSchema::Duration => {
            let b = base64_bytes(value, path)?;
            let arr: [u8; 12] = b
                .try_into()
                .map_err(|_| mismatch(path, "12 bytes", value))?;
            Avro::Duration(arr.into())
        }
        AvroSchema::String => Avro::String(match value {
            Value::String(s) => s.clone(),
            other => return Err(mismatch(path, "a string", other)),
        }),
        AvroSchema::Uuid => {
            let s = value
                .as_str()
                .ok_or_else(|| mismatch(path, "a UUID string", value))?;
            Avro::Uuid(
                s.parse()
                    .map_err(|_| mismatch(path, "a UUID string", value))?,
            )
        }
        AvroSchema::BigDecimal => {
            let s = value.to_string();
            Avro::BigDecimal(
                s.trim_matches('"')
                    .parse()
                    .map_err(|_| mismatch(path, "a decimal", value))?,
            )
        }
        AvroSchema::Decimal(d) => Avro::Decimal(decimal_bytes(value, d.scale, path)?.into()),
        AvroSchema::Enum(e) => {
            let s = value
                .as_str()
                .ok_or_else(|| mismatch(path, "an enum symbol", value))?;
            let index = e
                .symbols
                .iter()
                .position(|x| x == s)
                .ok_or_else(|| mismatch(path, &format!("one of {:?}", e.symbols), value))?;
            Avro::Enum(index as u32, s.to_owned())
        }
        AvroSchema::Array(a) => {
            let items = value
                .as_array()
                .ok_or_else(|| mismatch(path, "an array", value))?;
            Avro::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| from_json(v, &a.items, names, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            )
        }
        AvroSchema::Map(m) => {
            let obj = value
                .as_object()
                .ok_or_else(|| mismatch(path, "an object", value))?;
            Avro::Map(
                obj.iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            from_json(v, &m.types, names, &format!("{path}.{k}"))?,
                        ))
                    })
                    .collect::<Result<_, AvroError>>()?,
            )
        }
        AvroSchema::Union(u) => union_from_json(value, u, names, path)?,
        AvroSchema::Record(r) => record_from_json(value, r, names, path)?,
        AvroSchema::Ref { name } => {
            return Err(AvroError::Schema(format!(
                "unknown named type {}",
                name.fullname(None)
            )));
        }
    })
}

pub(super) fn union_from_json(
    value: &Value,
    u: &UnionSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    if value.is_null() {
        let index = u
            .variants()
            .iter()
            .position(|v| matches!(v, AvroSchema::Null))
            .ok_or_else(|| mismatch(path, "a non-null value", value))?;
        return Ok(Avro::Union(index as u32, Box::new(Avro::Null)));
    }
    // Confluent's Union struct: one branch set, by name.
    if let Some(obj) = value.as_object()
        && nullable(u).is_none()
    {
        for (i, v) in u.variants().iter().enumerate() {
            if let Some(inner) = obj.get(&branch_name(v)).filter(|x| !x.is_null()) {
                return Ok(Avro::Union(
                    i as u32,
                    Box::new(from_json(inner, v, names, path)?),
                ));
            }
        }
    }
    for (i, v) in u.variants().iter().enumerate() {
        if matches!(v, AvroSchema::Null) {
            continue;
        }
        if let Ok(avro) = from_json(value, v, names, path) {
            return Ok(Avro::Union(i as u32, Box::new(avro)));
        }
    }
    Err(mismatch(path, "a value of one of the union's types", value))
}

pub(super) fn record_from_json(
    value: &Value,
    r: &RecordSchema,
    names: &Names,
    path: &str,
) -> Result<Avro, AvroError> {
    let obj = value
        .as_object()
        .ok_or_else(|| mismatch(path, "an object (record)", value))?;
    let mut fields = Vec::with_capacity(r.fields.len());
    for RecordField {
        name,
        schema,
        default,
        ..
    } in &r.fields
    {
        let field_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        let v = match obj.get(name) {
            Some(v) => from_json(v, schema, names, &field_path)?,
            None => match default {
                // Avro defaults of a union are for its first branch.
                Some(d) => match resolve(schema, names) {
                    AvroSchema::Union(u) => {
                        let first = u.variants().first().unwrap_or(schema);
                        Avro::Union(0, Box::new(from_json(d, first, names, &field_path)?))
                    }
                    _ => from_json(d, schema, names, &field_path)?,
                },
                None => from_json(&Value::Null, schema, names, &field_path)?,
            },
        };
        fields.push((name.clone(), v));
    }
    Ok(Avro::Record(fields))
}
