//! Feast's Redis online-store format, so Feast's own SDK and feature servers read what we
//! write (feast-dev/feast `infra/online_stores/redis.py`, `infra/key_encoding_utils.py`,
//! `protos/feast/types/Value.proto`):
//!
//! - one hash per entity key; key = the entity key serialized (version 3) + the project name;
//! - a feature's field = murmur3_32(`<feature view>:<feature>`) as 4 little-endian bytes, its
//!   value a serialized `feast.types.Value`;
//! - field `_ts:<feature view>` = a serialized `google.protobuf.Timestamp` of the event time.

use serde_json::Value;

/// A Feast value type (the subset with a JSON form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeastType {
    Bytes,
    String,
    Int32,
    Int64,
    Double,
    Float,
    Bool,
    UnixTimestamp,
}

impl FeastType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "bytes" => Self::Bytes,
            "string" => Self::String,
            "int32" => Self::Int32,
            "int64" => Self::Int64,
            "double" | "float64" => Self::Double,
            "float" | "float32" => Self::Float,
            "bool" => Self::Bool,
            "unix_timestamp" => Self::UnixTimestamp,
            _ => return None,
        })
    }

    /// `feast.types.ValueType.Enum`.
    fn number(self) -> u32 {
        match self {
            Self::Bytes => 1,
            Self::String => 2,
            Self::Int32 => 3,
            Self::Int64 => 4,
            Self::Double => 5,
            Self::Float => 6,
            Self::Bool => 7,
            Self::UnixTimestamp => 8,
        }
    }
}

/// MurmurHash3 x86 32-bit, seed 0 (what Python's `mmh3.hash(s, signed=False)` computes).
pub fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let mut k: u32 = 0;
    for (i, b) in tail.iter().enumerate() {
        k |= u32::from(*b) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The hash field of a feature.
pub fn feature_field(view: &str, feature: &str) -> Vec<u8> {
    murmur3_32(format!("{view}:{feature}").as_bytes())
        .to_le_bytes()
        .to_vec()
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, u64::from(field << 3 | u32::from(wire)));
}

/// A JSON value as a serialized `feast.types.Value` of type `ty`; `Err` names the mismatch.
/// A value that does not fit its declared Feast type; the message names the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FeastValueError(pub String);

pub fn encode_value(value: &Value, ty: FeastType) -> Result<Vec<u8>, FeastValueError> {
    let mut out = Vec::with_capacity(16);
    if value.is_null() {
        // null_val = 19 (enum Null.NULL = 0): written, as a set oneof always is.
        tag(&mut out, 19, 0);
        varint(&mut out, 0);
        return Ok(out);
    }
    let mismatch = || FeastValueError(format!("expected a {ty:?} value, got {value}"));
    match ty {
        FeastType::String | FeastType::Bytes => {
            let s = value.as_str().ok_or_else(mismatch)?;
            tag(&mut out, if ty == FeastType::String { 2 } else { 1 }, 2);
            varint(&mut out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        FeastType::Int32 => {
            let v = value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(mismatch)?;
            tag(&mut out, 3, 0);
            // Negative int32 values are sign-extended to 64 bits, as protobuf does.
            varint(&mut out, i64::from(v) as u64);
        }
        FeastType::Int64 | FeastType::UnixTimestamp => {
            let v = value.as_i64().ok_or_else(mismatch)?;
            tag(&mut out, if ty == FeastType::Int64 { 4 } else { 8 }, 0);
            varint(&mut out, v as u64);
        }
        FeastType::Double => {
            let v = value.as_f64().ok_or_else(mismatch)?;
            tag(&mut out, 5, 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        FeastType::Float => {
            let v = value.as_f64().ok_or_else(mismatch)? as f32;
            tag(&mut out, 6, 5);
            out.extend_from_slice(&v.to_le_bytes());
        }
        FeastType::Bool => {
            let v = value.as_bool().ok_or_else(mismatch)?;
            tag(&mut out, 7, 0);
            varint(&mut out, u64::from(v));
        }
    }
    Ok(out)
}

/// A serialized `google.protobuf.Timestamp` (seconds = 1, nanos = 2; zero fields omitted).
pub fn encode_timestamp(millis: i64) -> Vec<u8> {
    let seconds = millis.div_euclid(1000);
    let nanos = millis.rem_euclid(1000) * 1_000_000;
    let mut out = Vec::with_capacity(12);
    if seconds != 0 {
        tag(&mut out, 1, 0);
        varint(&mut out, seconds as u64);
    }
    if nanos != 0 {
        tag(&mut out, 2, 0);
        varint(&mut out, nanos as u64);
    }
    out
}

/// The `seconds` of a serialized `google.protobuf.Timestamp`.
pub fn timestamp_seconds(bytes: &[u8]) -> Option<i64> {
    let mut i = 0;
    let read_varint = |i: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *bytes.get(*i)?;
            *i += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mut seconds = 0;
    while i < bytes.len() {
        let key = read_varint(&mut i)?;
        let value = read_varint(&mut i)?;
        if key == 1 << 3 {
            seconds = value as i64;
        }
    }
    Some(seconds)
}

/// The Redis key of an entity: its join keys serialized as entity-key version 3, then the
/// project. `keys` are `(join key, value, type)`.
pub fn entity_key(
    keys: &[(&str, &Value, FeastType)],
    project: &str,
) -> Result<Vec<u8>, FeastValueError> {
    let mut sorted: Vec<&(&str, &Value, FeastType)> = keys.iter().collect();
    sorted.sort_by_key(|(name, _, _)| *name);
    let mut out = Vec::new();
    out.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for (name, _, _) in &sorted {
        out.extend_from_slice(&FeastType::String.number().to_le_bytes());
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
    }
    for (name, value, ty) in &sorted {
        let bytes: Vec<u8> = match ty {
            FeastType::String => value
                .as_str()
                .ok_or_else(|| {
                    FeastValueError(format!(
                        "entity column {name}: expected a string, got {value}"
                    ))
                })?
                .as_bytes()
                .to_vec(),
            FeastType::Int64 => value
                .as_i64()
                .ok_or_else(|| {
                    FeastValueError(format!(
                        "entity column {name}: expected an integer, got {value}"
                    ))
                })?
                .to_le_bytes()
                .to_vec(),
            FeastType::Int32 => value
                .as_i64()
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| {
                    FeastValueError(format!(
                        "entity column {name}: expected an int32, got {value}"
                    ))
                })?
                .to_le_bytes()
                .to_vec(),
            other => {
                return Err(FeastValueError(format!(
                    "entity column {name}: type {other:?} cannot be a join key"
                )));
            }
        };
        out.extend_from_slice(&ty.number().to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(project.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn murmur3_matches_the_reference_vectors() {
        // Python: mmh3.hash(s, signed=False)
        assert_eq!(murmur3_32(b""), 0);
        assert_eq!(murmur3_32(b"hello"), 613_153_351);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog"),
            776_992_547
        );
    }

    #[test]
    fn values_serialize_like_protobuf() {
        assert_eq!(
            encode_value(&json!("ab"), FeastType::String).unwrap(),
            b"\x12\x02ab"
        );
        assert_eq!(
            encode_value(&json!(0), FeastType::Int64).unwrap(),
            b"\x20\x00"
        );
        assert_eq!(
            encode_value(&json!(300), FeastType::Int64).unwrap(),
            b"\x20\xac\x02"
        );
        assert_eq!(
            encode_value(&json!(-1), FeastType::Int32).unwrap().len(),
            11
        );
        assert_eq!(
            encode_value(&json!(true), FeastType::Bool).unwrap(),
            b"\x38\x01"
        );
        assert_eq!(
            encode_value(&json!(1.5), FeastType::Double).unwrap()[0],
            0x29
        );
        assert_eq!(
            encode_value(&Value::Null, FeastType::Double).unwrap(),
            b"\x98\x01\x00"
        );
        assert!(encode_value(&json!("x"), FeastType::Int64).is_err());
        assert_eq!(
            timestamp_seconds(&encode_timestamp(1_700_000_000_250)),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn entity_keys_use_serialization_version_3() {
        let key = entity_key(&[("user_id", &json!(5), FeastType::Int64)], "demo").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(&1u32.to_le_bytes());
        want.extend_from_slice(&2u32.to_le_bytes());
        want.extend_from_slice(&7u32.to_le_bytes());
        want.extend_from_slice(b"user_id");
        want.extend_from_slice(&4u32.to_le_bytes());
        want.extend_from_slice(&8u32.to_le_bytes());
        want.extend_from_slice(&5i64.to_le_bytes());
        want.extend_from_slice(b"demo");
        assert_eq!(key, want);
    }
}
