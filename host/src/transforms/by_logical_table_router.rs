//! `io.debezium.transforms.ByLogicalTableRouter`: routes the change events of several physical
//! tables (shards, partitions) to one logical topic.
//!
//! A record whose topic matches `topic.regex` entirely moves to `topic.replacement`. So that
//! keys stay unique across the merged tables, `key.enforce.uniqueness` (default on) adds a
//! string field `key.field.name` (default `__dbz__physicalTableIdentifier`) to the key, holding
//! the original topic, or what `key.field.regex` / `key.field.replacement` make of it. In schema
//! mode the key schema is renamed `<new topic>.Key`, and a Debezium envelope's schema
//! `<new topic>.Envelope` with its `before`/`after` row schema `<new topic>.Value`
//! (`schema.name.adjustment.mode=avro` replaces characters Avro names cannot hold with `_`).
//! Tombstones keep their null value. Differences from Debezium, on purpose: a schemaless key
//! (a JSON object) gets the field too, where Debezium requires a struct; a value that is not an
//! envelope (a heartbeat, an already unwrapped row) keeps its schema instead of failing.

use regex::Regex;
use serde_json::Value;

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::regex_router::rust_template;
use super::schema::{self, fields, find_field, named_field, primitive, struct_like};
use super::util::{describe, parsed};
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "io.debezium.transforms.ByLogicalTableRouter",
    has_variants: false,
    keys: &[
        TOPIC_REGEX,
        TOPIC_REPLACEMENT,
        KEY_ENFORCE_UNIQUENESS,
        KEY_FIELD_NAME,
        KEY_FIELD_REGEX,
        KEY_FIELD_REPLACEMENT,
        SCHEMA_NAME_ADJUSTMENT_MODE,
        CACHE_SIZE,
    ],
    build,
};

const LABEL: &str = "ByLogicalTableRouter";

const TOPIC_REGEX: ConfigKey = ConfigKey::new(
    "topic.regex",
    KeyType::String,
    "Regular expression matched against the whole topic of each record; records whose topic \
     does not match pass unchanged.",
)
.required();

const TOPIC_REPLACEMENT: ConfigKey = ConfigKey::new(
    "topic.replacement",
    KeyType::String,
    "The new topic; `$1`, `$2`, ... refer to the groups of `topic.regex`.",
)
.required();

const KEY_ENFORCE_UNIQUENESS: ConfigKey = ConfigKey::new(
    "key.enforce.uniqueness",
    KeyType::Boolean,
    "Add a field naming the original table to the key, so keys of different tables cannot \
     collide in the merged topic.",
)
.with_default("true");

const KEY_FIELD_NAME: ConfigKey = ConfigKey::new(
    "key.field.name",
    KeyType::String,
    "Name of the key field that identifies the original table.",
)
.with_default("__dbz__physicalTableIdentifier");

const KEY_FIELD_REGEX: ConfigKey = ConfigKey::new(
    "key.field.regex",
    KeyType::String,
    "Regular expression matched against the original topic to compute the key field's value \
     (with `key.field.replacement`); without it the value is the original topic.",
);

const KEY_FIELD_REPLACEMENT: ConfigKey = ConfigKey::new(
    "key.field.replacement",
    KeyType::String,
    "The key field's value; `$1`, ... refer to the groups of `key.field.regex`.",
);

const SCHEMA_NAME_ADJUSTMENT_MODE: ConfigKey = ConfigKey::new(
    "schema.name.adjustment.mode",
    KeyType::String,
    "`none`, or `avro` to replace characters that Avro names cannot hold with `_`.",
)
.with_default("none")
.one_of(&["none", "avro"]);

const CACHE_SIZE: ConfigKey = ConfigKey::new(
    "logical.table.cache.size",
    KeyType::Int,
    "Accepted for compatibility (Debezium's cache of computed names; Headwater needs none).",
)
.with_default("16");

/// A full-match regex with its replacement template.
#[derive(Debug)]
struct Rewrite {
    regex: Regex,
    template: String,
}

impl Rewrite {
    fn build(options: &mut Options, regex: &ConfigKey, replacement: &ConfigKey) -> Option<Self> {
        let compiled = options.full_match_regex(regex);
        let text = options.string(replacement)?;
        let compiled = compiled?;
        match rust_template(&text, compiled.captures_len()) {
            Ok(template) => Some(Self {
                regex: compiled,
                template,
            }),
            Err(e) => {
                options.issue(
                    replacement.name,
                    format!("invalid replacement {text:?}: {e}"),
                );
                None
            }
        }
    }

    /// The rewritten text, when `text` matches entirely.
    fn apply(&self, text: &str) -> Option<String> {
        let captures = self.regex.captures(text)?;
        let mut out = String::new();
        captures.expand(&self.template, &mut out);
        Some(out)
    }
}

fn build(options: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    let topic = Rewrite::build(options, &TOPIC_REGEX, &TOPIC_REPLACEMENT);
    let enforce = options.bool(&KEY_ENFORCE_UNIQUENESS).unwrap_or(true);
    let key_field = options
        .string(&KEY_FIELD_NAME)
        .unwrap_or_else(|| "__dbz__physicalTableIdentifier".to_owned());
    let key_value = match (
        options.contains(KEY_FIELD_REGEX.name),
        options.contains(KEY_FIELD_REPLACEMENT.name),
    ) {
        (true, true) => Some(Rewrite::build(
            options,
            &KEY_FIELD_REGEX,
            &KEY_FIELD_REPLACEMENT,
        )?),
        (false, false) => None,
        _ => {
            options.issue(
                KEY_FIELD_REGEX.name,
                "key.field.regex and key.field.replacement must be set together",
            );
            return None;
        }
    };
    let avro = options.choice(&SCHEMA_NAME_ADJUSTMENT_MODE).as_deref() == Some("avro");
    options.positive(&CACHE_SIZE);
    Some(Box::new(ByLogicalTableRouter {
        topic: topic?,
        enforce,
        key_field,
        key_value,
        avro,
    }))
}

#[derive(Debug)]
struct ByLogicalTableRouter {
    topic: Rewrite,
    enforce: bool,
    key_field: String,
    key_value: Option<Rewrite>,
    avro: bool,
}

/// A schema name made valid for Avro: letters, digits and `_` in each dot-separated part, not
/// starting with a digit (Debezium's `SchemaNameAdjuster.avroAdjuster`).
fn avro_name(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(|(i, c)| match c {
            'a'..='z' | 'A'..='Z' | '_' | '.' => c,
            '0'..='9' if i > 0 => c,
            _ => '_',
        })
        .collect()
}

fn renamed(mut schema: Value, name: String) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert("name".to_owned(), Value::String(name));
    }
    schema
}

impl ByLogicalTableRouter {
    fn name(&self, topic: &str, suffix: &str) -> String {
        let name = format!("{topic}.{suffix}");
        if self.avro { avro_name(&name) } else { name }
    }

    /// The key with the physical-table field added.
    fn key(&self, data: &Data, old_topic: &str, new_topic: &str) -> Result<Data, TransformError> {
        let identifier = self
            .key_value
            .as_ref()
            .and_then(|r| r.apply(old_topic))
            .unwrap_or_else(|| old_topic.to_owned());
        let Some(object) = data.value.as_object() else {
            return Err(TransformError::data(format!(
                "{LABEL}: only struct keys can carry `{}`, got {}",
                self.key_field,
                describe(&data.value)
            )));
        };
        let mut value = object.clone();
        value.insert(self.key_field.clone(), Value::String(identifier));
        let schema = match &data.schema {
            None => None,
            Some(old) => {
                let old = schema::require_struct_schema(old, LABEL)?;
                let mut key_fields: Vec<Value> = fields(old).to_vec();
                key_fields.push(named_field(&self.key_field, primitive("string", false)));
                Some(renamed(
                    struct_like(old, key_fields),
                    self.name(new_topic, "Key"),
                ))
            }
        };
        Ok(Data {
            schema: schema.map(Into::into),
            value: Value::Object(value),
        })
    }

    /// A Debezium envelope's schema under the new names; `None` when the value is not one.
    fn envelope_schema(&self, schema: &Value, new_topic: &str) -> Option<Value> {
        let row = schema::field_schema(find_field(schema, "before")?);
        let row = renamed(row, self.name(new_topic, "Value"));
        let envelope_fields = fields(schema)
            .iter()
            .map(|f| match schema::field_name(f) {
                name @ ("before" | "after") => named_field(name, row.clone()),
                _ => f.clone(),
            })
            .collect();
        Some(renamed(
            struct_like(schema, envelope_fields),
            self.name(new_topic, "Envelope"),
        ))
    }
}

impl Transform for ByLogicalTableRouter {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        let Some(new_topic) = self.topic.apply(&record.topic) else {
            return Ok(Outcome::Keep);
        };
        if new_topic.is_empty() {
            // Debezium logs and keeps the record as it is.
            return Ok(Outcome::Keep);
        }
        // Everything is computed before anything changes: a failure leaves the record as it was.
        let key = if self.enforce && !record.key.is_null() {
            let data = parsed(&mut record.key, Part::Key, LABEL)?;
            Some(self.key(data, &record.topic, &new_topic)?)
        } else {
            None
        };
        let value_schema = if record.value.is_null() {
            None
        } else {
            let data = parsed(&mut record.value, Part::Value, LABEL)?;
            data.schema
                .as_ref()
                .and_then(|s| self.envelope_schema(s, &new_topic))
        };
        if let Some(key) = key {
            record.key = crate::api::record::Payload::data(key);
        }
        if let Some(schema) = value_schema {
            let data = record
                .value
                .get_mut()
                .map_err(|e| TransformError::data(format!("{LABEL}: {e}")))?;
            data.schema = Some(schema.into());
        }
        record.topic = new_topic;
        Ok(Outcome::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::avro_name;

    #[test]
    fn avro_names_keep_dots_and_replace_the_rest() {
        assert_eq!(
            avro_name("my-server.public.users-all.Key"),
            "my_server.public.users_all.Key"
        );
        assert_eq!(avro_name("1abc"), "_abc");
    }
}
