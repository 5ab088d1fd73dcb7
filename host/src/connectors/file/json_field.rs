//! One pass over a JSON text that both validates it and extracts one top-level field, without
//! building the rest of the tree: the file source's hot path when `timestamp.field` is set.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::api::json_depth;

/// Validates `text` as JSON and returns the value of the top-level `field` when `text` is an
/// object that has it.
pub fn validate_and_extract(text: &[u8], field: Option<&str>) -> serde_json::Result<Option<Value>> {
    check_depth(text)?;
    match field {
        None => serde_json::from_slice::<IgnoredAny>(text).map(|_| None),
        Some(field) => {
            let escaped = Cell::new(false);
            let mut de = serde_json::Deserializer::from_slice(text);
            let found = FieldOf {
                field,
                escaped: &escaped,
            }
            .deserialize(&mut de)?;
            de.end()?;
            if escaped.get() {
                // A key with escapes was compared as its expanded bytes, which cannot tell an
                // escaped control character from a raw one (invalid JSON): check the text
                // whole, as without a field (rare: keys are seldom escaped).
                serde_json::from_slice::<IgnoredAny>(text)?;
            }
            Ok(found)
        }
    }
}

/// A line nested deeper than serde_json parses into a tree would pass the checks here (they
/// skip values) and fail every later stage that reads it: it is refused here, as the source's
/// invalid record.
fn check_depth(text: &[u8]) -> serde_json::Result<()> {
    if json_depth::too_deep(text) {
        return Err(serde::de::Error::custom(format!(
            "nested deeper than {} levels (serde_json's recursion limit): no later stage could \
             read it",
            json_depth::MAX_DEPTH
        )));
    }
    Ok(())
}

struct FieldOf<'f> {
    field: &'f str,
    /// Set when a top-level key had escapes (see [`KeyIs`]).
    escaped: &'f Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for FieldOf<'_> {
    type Value = Option<Value>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_any(self)
    }
}

/// Whether a map key equals the wanted field name, without allocating it.
struct KeyIs<'f> {
    field: &'f str,
    escaped: &'f Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<bool, D::Error> {
        // As bytes (escapes expanded, no UTF-8 check): checking every key of every line as
        // text was a tenth of a date-partitioned file run's source time, and the keys are not
        // checked when no field is extracted either.
        de.deserialize_bytes(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    /// A key without escapes, as it is in the text: a raw control character makes the text
    /// invalid JSON, as serde_json says of any other string.
    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'_ [u8]) -> Result<bool, E> {
        if v.iter().any(|&b| b < 0x20) {
            return Err(E::custom(
                "control character (\\u0000-\\u001F) found while parsing a string",
            ));
        }
        Ok(v == self.field.as_bytes())
    }

    /// A key with its escapes expanded.
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<bool, E> {
        self.escaped.set(true);
        Ok(v == self.field.as_bytes())
    }
}

impl<'de> Visitor<'de> for FieldOf<'_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        let key = || KeyIs {
            field: self.field,
            escaped: self.escaped,
        };
        while let Some(is_field) = map.next_key_seed(key())? {
            if is_field {
                found = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nesting_is_refused_exactly_where_serde_json_refuses_it() {
        for depth in [126, 127, 128, 129, 5000] {
            let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let tree = serde_json::from_slice::<Value>(text.as_bytes()).is_ok();
            let wrapped = format!("{{\"ts\": 1, \"x\": {text}}}");
            let inner = format!("{{\"s\": \"[[[{{\", \"x\": {}}}", &text[..text.len()]);
            for field in [None, Some("ts")] {
                assert_eq!(
                    validate_and_extract(text.as_bytes(), field).is_ok(),
                    tree,
                    "{depth}"
                );
            }
            // One level more inside an object; brackets inside strings do not count.
            let wrapped_tree = serde_json::from_slice::<Value>(wrapped.as_bytes()).is_ok();
            assert_eq!(
                validate_and_extract(wrapped.as_bytes(), None).is_ok(),
                wrapped_tree
            );
            let inner_tree = serde_json::from_slice::<Value>(inner.as_bytes()).is_ok();
            assert_eq!(
                validate_and_extract(inner.as_bytes(), None).is_ok(),
                inner_tree
            );
        }
    }

    #[test]
    fn extracts_the_field_and_validates_the_rest() {
        let text = br#"{"a": {"ts": 1}, "ts": "2024-01-01", "b": [1, {"ts": 2}]}"#;
        assert_eq!(
            validate_and_extract(text, Some("ts")).unwrap(),
            Some(json!("2024-01-01"))
        );
        assert_eq!(
            validate_and_extract(br#"{"t\u0073": 5}"#, Some("ts")).unwrap(),
            Some(json!(5))
        );
        assert_eq!(validate_and_extract(b"[1, 2]", Some("ts")).unwrap(), None);
        assert_eq!(validate_and_extract(br#"{"x": 1}"#, None).unwrap(), None);
        assert!(validate_and_extract(br#"{"ts": 1,}"#, Some("ts")).is_err());
        assert!(validate_and_extract(br#"{"ts": 1} trailing"#, Some("ts")).is_err());
        // A raw control character in a key is invalid JSON, whether or not the key has escapes;
        // an escaped one is valid. Both paths agree.
        for (text, valid) in [
            (&b"{\"a\tb\": 1, \"ts\": 5}"[..], false),
            (&b"{\"a\\u0041\tb\": 1, \"ts\": 5}"[..], false),
            (&b"{\"a\\tb\": 1, \"ts\": 5}"[..], true),
        ] {
            for field in [None, Some("ts")] {
                assert_eq!(
                    validate_and_extract(text, field).is_ok(),
                    valid,
                    "{field:?}"
                );
            }
        }
    }
}
