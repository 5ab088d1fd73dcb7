//! A plain JSON row's top-level fields, borrowed from its bytes: the Redis sink's hot path.
//!
//! A row that is only split into hash fields does not need a `serde_json::Value` tree: building
//! one (an ordered map, a hashed key and an allocation per field, then dropping it all) was a
//! quarter of the sink's time on a 10-field row. Here each field is a borrowed name and its raw
//! JSON text; only what Redis stores is allocated. Anything unusual (a Debezium envelope, a
//! JsonConverter envelope, a float or a nested value) is converted exactly as the tree path
//! converts it, so both paths store the same text.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

/// The top-level fields of a JSON object, in order, as borrowed text.
pub struct FlatRow<'a> {
    fields: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'a> FlatRow<'a> {
    /// The fields of `bytes` when they are one JSON object; `None` otherwise (not an object,
    /// not valid JSON), for the caller's general path to handle and report.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice::<FlatRow<'a>>(bytes).ok()
    }

    /// The value of `name`; the last one when the object repeats it, as a parsed map keeps.
    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.fields
            .iter()
            .rev()
            .find(|(field, _)| field == name)
            .map(|(_, value)| *value)
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(field, _)| field == name)
    }

    /// Whether a field name appears twice (JSON allows it; a parsed map keeps the last value).
    pub fn repeats_a_name(&self) -> bool {
        let names = || self.fields.iter().map(|(name, _)| name);
        match self.fields.len() {
            // Pairwise on a feature row's handful of fields: no allocation.
            0..=16 => names()
                .enumerate()
                .any(|(i, name)| names().skip(i + 1).any(|other| other == name)),
            n => names().collect::<std::collections::HashSet<_>>().len() < n,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &'a RawValue)> {
        self.fields.iter().map(|(name, value)| (&**name, *value))
    }
}

/// A field's value as the text Redis stores, the same as `text` of its parsed form: a string
/// unescaped, anything else as JSON; `None` for null.
pub fn stored_text(raw: &RawValue) -> Result<Option<String>, serde_json::Error> {
    let text = raw.get();
    match text.as_bytes() {
        b"null" => Ok(None),
        [b'"', inner @ .., b'"'] if !inner.contains(&b'\\') => {
            Ok(Some(text[1..text.len() - 1].to_owned()))
        }
        [b'"', ..] => serde_json::from_str::<String>(text).map(Some),
        b"true" | b"false" => Ok(Some(text.to_owned())),
        digits if is_plain_integer(digits) => Ok(Some(text.to_owned())),
        // Floats, nested values: re-serialized as the parsed tree would be ("1e3" is "1000.0").
        _ => serde_json::from_str::<Value>(text).map(|v| Some(v.to_string())),
    }
}

/// An integer literal that a parsed tree would print back unchanged: an optional minus, then
/// digits without a leading zero, few enough to fit an `i64` ("-0" prints as "0").
fn is_plain_integer(text: &[u8]) -> bool {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    !digits.is_empty()
        && digits.len() <= 18
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || (digits.len() == 1 && text.len() == 1))
}

impl<'de> Deserialize<'de> for FlatRow<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(RowVisitor)
    }
}

struct RowVisitor;

impl<'de> Visitor<'de> for RowVisitor {
    type Value = FlatRow<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some(name) = map.next_key_seed(Name)? {
            fields.push((name, map.next_value::<&'de RawValue>()?));
        }
        Ok(FlatRow { fields })
    }
}

/// A field name, borrowed unless it has escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Name {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_borrowed_in_order_and_the_last_repeat_wins() {
        let row = FlatRow::parse(br#"{"id": 7, "n\u0061me": "a\"b", "id": 8}"#).unwrap();
        let names: Vec<&str> = row.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["id", "name", "id"]);
        assert_eq!(row.get("id").unwrap().get(), "8");
        assert!(row.repeats_a_name());
        assert!(
            !FlatRow::parse(br#"{"a": 1, "b": 2}"#)
                .unwrap()
                .repeats_a_name()
        );
        let many: String = (0..40).map(|i| format!("\"f{i}\": {i},")).collect();
        let many = format!("{{{many} \"f39\": 0}}");
        assert!(FlatRow::parse(many.as_bytes()).unwrap().repeats_a_name());
        assert!(FlatRow::parse(b"[1]").is_none());
        assert!(FlatRow::parse(b"{\"a\":").is_none());
    }

    #[test]
    fn stored_text_is_what_the_parsed_value_would_store() {
        for text in [
            "null",
            "true",
            "false",
            "0",
            "-0",
            "7",
            "-12",
            "007",
            "12345678901234567890",
            "1.50",
            "1e3",
            "-2.5E-3",
            "\"plain\"",
            "\"tab\\there \\u00e9\"",
            "\"\"",
            "[1, \"a\"]",
            "{\"b\": {\"c\": null}}",
        ] {
            let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
                continue; // "007" is not JSON: the general path reports it
            };
            let expected = match serde_json::from_str::<Value>(text).unwrap() {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            };
            assert_eq!(stored_text(raw).unwrap(), expected, "{text}");
        }
    }
}
