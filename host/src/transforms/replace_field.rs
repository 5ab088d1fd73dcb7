//! `org.apache.kafka.connect.transforms.ReplaceField$Key` / `$Value`: drops, keeps and renames
//! top-level fields of a struct or map. With a schema, the struct schema is rebuilt the same way.
//! A null value passes through unchanged.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema;
use super::util::Operand;
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.ReplaceField",
    has_variants: true,
    keys: &[EXCLUDE, INCLUDE, RENAMES, BLACKLIST, WHITELIST],
    build,
};

const EXCLUDE: ConfigKey = ConfigKey::new(
    "exclude",
    KeyType::List,
    "Fields to exclude. This takes precedence over the fields to include.",
)
.with_default("");

const INCLUDE: ConfigKey = ConfigKey::new(
    "include",
    KeyType::List,
    "Fields to include. If specified, only these fields will be used.",
)
.with_default("");

const RENAMES: ConfigKey = ConfigKey::new(
    "renames",
    KeyType::List,
    "Field rename mappings, as a list of colon-delimited pairs, e.g. `foo:bar,abc:xyz`.",
)
.with_default("");

const BLACKLIST: ConfigKey = ConfigKey::new(
    "blacklist",
    KeyType::List,
    "Deprecated alias of `exclude` (removed in Kafka 4.0); ignored when `exclude` is set.",
)
.with_default("");

const WHITELIST: ConfigKey = ConfigKey::new(
    "whitelist",
    KeyType::List,
    "Deprecated alias of `include` (removed in Kafka 4.0); ignored when `include` is set.",
)
.with_default("");

/// The list under `key`, or under its legacy alias when `key` itself is not set.
fn list_with_alias(options: &mut Options, key: &ConfigKey, alias: &ConfigKey) -> Vec<String> {
    let current = options.list(key);
    let legacy = options.list(alias);
    if options.contains(key.name) {
        current
    } else {
        legacy
    }
}

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let exclude = list_with_alias(options, &EXCLUDE, &BLACKLIST);
    let include = list_with_alias(options, &INCLUDE, &WHITELIST);
    let mut renames = HashMap::new();
    let mut valid = true;
    for mapping in options.list(&RENAMES) {
        match mapping.split_once(':') {
            Some((from, to))
                if !from.trim().is_empty() && !to.trim().is_empty() && !to.contains(':') =>
            {
                renames.insert(from.trim().to_owned(), to.trim().to_owned());
            }
            _ => {
                options.issue(
                    RENAMES.name,
                    format!("invalid rename mapping {mapping:?}: expected old:new"),
                );
                valid = false;
            }
        }
    }
    valid.then(|| {
        Box::new(ReplaceField {
            op: Operand::new(PLUGIN.class, part),
            exclude,
            include,
            renames,
        }) as Box<dyn Transform>
    })
}

#[derive(Debug)]
struct ReplaceField {
    op: Operand,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: HashMap<String, String>,
}

impl ReplaceField {
    /// Whether a field survives: not excluded, and included when there is an include list.
    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|f| f == name)
            && (self.include.is_empty() || self.include.iter().any(|f| f == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map_or(name, String::as_str)
    }

    fn schemaless(&self, value: &Map<String, Value>) -> Data {
        let updated = value
            .iter()
            .filter(|(name, _)| self.keeps(name))
            .map(|(name, v)| (self.renamed(name).to_owned(), v.clone()))
            .collect();
        Data::schemaless(Value::Object(updated))
    }

    fn with_schema(&self, data: &Data) -> Result<Data, TransformError> {
        let (struct_schema, value) = schema::require_struct(data, &self.op.label)?;
        let mut fields = Vec::new();
        let mut updated = Map::new();
        for field in schema::fields(struct_schema) {
            let name = schema::field_name(field);
            if !self.keeps(name) {
                continue;
            }
            let new_name = self.renamed(name);
            fields.push(schema::named_field(new_name, field.clone()));
            updated.insert(new_name.to_owned(), schema::get(value, name).clone());
        }
        Ok(Data {
            schema: Some(schema::struct_like(struct_schema, fields).into()),
            value: Value::Object(updated),
        })
    }
}

impl Transform for ReplaceField {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        self.op.update_fields(
            record,
            |data| self.with_schema(data),
            |value| Ok(self.schemaless(value)),
        )
    }
}
