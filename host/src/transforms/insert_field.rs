//! `org.apache.kafka.connect.transforms.InsertField$Key` / `$Value`: adds fields holding the
//! record's topic, partition, offset and timestamp, and a static string, to a struct or map.
//!
//! A field name may end in `!` (the field is required in the schema) or `?` (optional, the
//! default). With a schema, the fields are appended to the struct schema; the timestamp field is
//! an `org.apache.kafka.connect.data.Timestamp`. Schemaless, the timestamp is epoch milliseconds.
//! A null value (tombstone) passes through unchanged.

use serde_json::{Map, Value, json};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::{Data, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::schema::{self, TIMESTAMP};
use super::util::Operand;
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.InsertField",
    has_variants: true,
    keys: &[
        TOPIC_FIELD,
        PARTITION_FIELD,
        OFFSET_FIELD,
        TIMESTAMP_FIELD,
        STATIC_FIELD,
        STATIC_VALUE,
    ],
    build,
};

const TOPIC_FIELD: ConfigKey = ConfigKey::new(
    "topic.field",
    KeyType::String,
    "Field name for the Kafka topic. Suffix with `!` to make this a required field, or `?` to \
     keep it optional (the default).",
);

const PARTITION_FIELD: ConfigKey = ConfigKey::new(
    "partition.field",
    KeyType::String,
    "Field name for the Kafka partition. Suffix with `!` to make this a required field, or `?` \
     to keep it optional (the default).",
);

const OFFSET_FIELD: ConfigKey = ConfigKey::new(
    "offset.field",
    KeyType::String,
    "Field name for the Kafka offset (the record's offset in its topic partition). Suffix with \
     `!` to make this a required field, or `?` to keep it optional (the default).",
);

const TIMESTAMP_FIELD: ConfigKey = ConfigKey::new(
    "timestamp.field",
    KeyType::String,
    "Field name for the record timestamp (epoch milliseconds; a Connect `Timestamp` with a \
     schema). Suffix with `!` to make this a required field, or `?` to keep it optional (the \
     default).",
);

const STATIC_FIELD: ConfigKey = ConfigKey::new(
    "static.field",
    KeyType::String,
    "Field name for the static data field (`static.value`). Suffix with `!` to make this a \
     required field, or `?` to keep it optional (the default).",
);

const STATIC_VALUE: ConfigKey = ConfigKey::new(
    "static.value",
    KeyType::String,
    "Static field value, inserted when `static.field` is set.",
);

/// A configured field name with its optionality suffix removed.
#[derive(Debug)]
struct Spec {
    name: String,
    optional: bool,
}

impl Spec {
    fn pull(options: &mut Options, key: &ConfigKey) -> Option<Self> {
        let raw = options.string(key)?;
        let raw = raw.trim();
        let (name, optional) = match raw.strip_suffix('!') {
            Some(name) => (name, false),
            None => (raw.strip_suffix('?').unwrap_or(raw), true),
        };
        if name.is_empty() {
            options.issue(key.name, "expected a field name, got an empty one");
            return None;
        }
        Some(Self {
            name: name.to_owned(),
            optional,
        })
    }
}

fn build(options: &mut Options, part: Part) -> Option<Box<dyn Transform>> {
    let insert = InsertField {
        op: Operand::new(PLUGIN.class, part),
        topic: Spec::pull(options, &TOPIC_FIELD),
        partition: Spec::pull(options, &PARTITION_FIELD),
        offset: Spec::pull(options, &OFFSET_FIELD),
        timestamp: Spec::pull(options, &TIMESTAMP_FIELD),
        static_field: Spec::pull(options, &STATIC_FIELD),
        static_value: options.string(&STATIC_VALUE),
    };
    Some(Box::new(insert))
}

/// The fields to insert: name and optionality, schema, value.
type Insertions<'a> = Vec<(&'a Spec, Value, Value)>;

#[derive(Debug)]
struct InsertField {
    op: Operand,
    topic: Option<Spec>,
    partition: Option<Spec>,
    offset: Option<Spec>,
    timestamp: Option<Spec>,
    static_field: Option<Spec>,
    static_value: Option<String>,
}

impl InsertField {
    /// Each configured field with its schema and its value for `record` (null when the record
    /// has no timestamp or no static value is set).
    fn insertions(&self, record: &Record) -> Insertions<'_> {
        let static_value = self
            .static_value
            .as_deref()
            .map_or(Value::Null, |v| json!(v));
        let candidates = [
            (&self.topic, "string", None, json!(record.topic)),
            (&self.partition, "int32", None, json!(record.partition)),
            (&self.offset, "int64", None, json!(record.offset)),
            (
                &self.timestamp,
                "int64",
                Some(TIMESTAMP),
                json!(record.timestamp),
            ),
            (&self.static_field, "string", None, static_value),
        ];
        candidates
            .into_iter()
            .filter_map(|(spec, ty, logical, value)| {
                let spec = spec.as_ref()?;
                let schema = match logical {
                    Some(name) => schema::logical(ty, name, spec.optional),
                    None => schema::primitive(ty, spec.optional),
                };
                Some((spec, schema, value))
            })
            .collect()
    }

    fn with_schema(&self, data: &Data, insertions: &Insertions) -> Result<Data, TransformError> {
        let (struct_schema, value) = schema::require_struct(data, &self.op.label)?;
        let mut fields = schema::fields(struct_schema).to_vec();
        let mut updated = value.clone();
        for (spec, field_schema, field_value) in insertions {
            if schema::find_field(struct_schema, &spec.name).is_some() {
                return Err(self.op.error(format!(
                    "cannot insert field {:?}: the schema already has a field with that name",
                    spec.name
                )));
            }
            fields.push(schema::named_field(&spec.name, field_schema.clone()));
            updated.insert(spec.name.clone(), field_value.clone());
        }
        Ok(Data {
            schema: Some(schema::struct_like(struct_schema, fields).into()),
            value: Value::Object(updated),
        })
    }
}

/// Schemaless insertion: null values (no timestamp, no static value) are left out.
fn schemaless(value: &Map<String, Value>, insertions: &Insertions) -> Data {
    let mut updated = value.clone();
    for (spec, _, field_value) in insertions {
        if !field_value.is_null() {
            updated.insert(spec.name.clone(), field_value.clone());
        }
    }
    Data::schemaless(Value::Object(updated))
}

impl Transform for InsertField {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        let insertions = self.insertions(record);
        self.op.update_fields(
            record,
            |data| self.with_schema(data, &insertions),
            |value| Ok(schemaless(value, &insertions)),
        )
    }
}
