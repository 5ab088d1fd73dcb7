//! `io.debezium.transforms.ExtractNewRecordState` ("unwrap"): replaces a Debezium change event
//! with the row it describes (`after`), so sinks see plain rows instead of envelopes.
//!
//! `delete.tombstone.handling.mode` (Debezium 2.5+, default `tombstone`) decides what deletes
//! and tombstones become: `drop` (both dropped), `tombstone` (the delete is dropped, its
//! tombstone kept), `rewrite` (the delete becomes `before` with `__deleted: "true"`, every other
//! row gets `__deleted: "false"`, tombstones are dropped), `rewrite-with-tombstone` (the same,
//! tombstones kept), `delete-to-tombstone` (the delete becomes a tombstone). `add.fields` and
//! `add.headers` copy envelope fields (`op`, `table`, `lsn`, `source.ts_ms`, ...; a name is
//! looked up at the top of the envelope, then in `source`) into the row as `__<name>` and into
//! headers. Records that are not change events (heartbeats, schema changes) pass unchanged.
//! `route.by.field` sends the row to the topic named by one of its fields (`before` for
//! deletes). `drop.fields.header.name` names a header listing fields (a JSON array or a
//! comma-separated list) to remove from the row, and with `drop.fields.from.key` from the key;
//! with `drop.fields.keep.schema.compatible` (default) only optional fields are removed, so the
//! schema stays compatible. Not implemented: the removed `delete.handling.mode`.

use serde_json::{Map, Value, json};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::Schema;
use crate::api::record::{Data, Header, Record};
use crate::api::transform::{Outcome, Transform, TransformError};

use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "io.debezium.transforms.ExtractNewRecordState",
    has_variants: false,
    keys: &[
        MODE,
        ADD_FIELDS,
        ADD_FIELDS_PREFIX,
        ADD_HEADERS,
        ADD_HEADERS_PREFIX,
        ROUTE_BY_FIELD,
        DROP_FIELDS_HEADER,
        DROP_FIELDS_FROM_KEY,
        DROP_FIELDS_KEEP_COMPATIBLE,
    ],
    build,
};

const ROUTE_BY_FIELD: ConfigKey = ConfigKey::new(
    "route.by.field",
    KeyType::String,
    "A field of the row whose value becomes the record's topic (`before` for deletes).",
);

const DROP_FIELDS_HEADER: ConfigKey = ConfigKey::new(
    "drop.fields.header.name",
    KeyType::String,
    "A header whose value lists fields to remove from the row (a JSON array or a \
     comma-separated list).",
);

const DROP_FIELDS_FROM_KEY: ConfigKey = ConfigKey::new(
    "drop.fields.from.key",
    KeyType::Boolean,
    "Remove the listed fields from the key too.",
)
.with_default("false");

const DROP_FIELDS_KEEP_COMPATIBLE: ConfigKey = ConfigKey::new(
    "drop.fields.keep.schema.compatible",
    KeyType::Boolean,
    "Remove only fields that are optional in the schema, so the schema stays compatible.",
)
.with_default("true");

const MODE: ConfigKey = ConfigKey::new(
    "delete.tombstone.handling.mode",
    KeyType::String,
    "What deletes and tombstones become: drop, tombstone, rewrite, rewrite-with-tombstone or \
     delete-to-tombstone.",
)
.with_default("tombstone")
.one_of(&[
    "drop",
    "tombstone",
    "rewrite",
    "rewrite-with-tombstone",
    "delete-to-tombstone",
]);

const ADD_FIELDS: ConfigKey = ConfigKey::new(
    "add.fields",
    KeyType::List,
    "Envelope fields to add to the row, e.g. `op,table,lsn,source.ts_ms`.",
)
.with_default("");

const ADD_FIELDS_PREFIX: ConfigKey = ConfigKey::new(
    "add.fields.prefix",
    KeyType::String,
    "Prefix of the added fields' names.",
)
.with_default("__");

const ADD_HEADERS: ConfigKey = ConfigKey::new(
    "add.headers",
    KeyType::List,
    "Envelope fields to add as headers, e.g. `op,source.ts_ms`.",
)
.with_default("");

const ADD_HEADERS_PREFIX: ConfigKey = ConfigKey::new(
    "add.headers.prefix",
    KeyType::String,
    "Prefix of the added headers' names.",
)
.with_default("__");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Drop,
    Tombstone,
    Rewrite,
    RewriteWithTombstone,
    DeleteToTombstone,
}

#[derive(Debug)]
struct ExtractNewRecordState {
    mode: Mode,
    fields: Vec<String>,
    fields_prefix: String,
    headers: Vec<String>,
    headers_prefix: String,
    route_by: Option<String>,
    drop: Option<DropFields>,
    /// The row schemas of the envelope schemas seen last: a table's events share one envelope
    /// schema, so its rows share one row schema (rendered once downstream), not a copy each.
    row_schemas: std::sync::Mutex<Vec<RowSchema>>,
}

/// The schema of an envelope's `before` or `after` row.
#[derive(Debug)]
struct RowSchema {
    envelope: Schema,
    part: &'static str,
    row: Option<Schema>,
}

/// How many envelope schemas [`ExtractNewRecordState`] keeps row schemas for.
const ROW_SCHEMAS: usize = 8;

/// `drop.fields.*`.
#[derive(Debug)]
struct DropFields {
    header: String,
    from_key: bool,
    keep_compatible: bool,
}

impl DropFields {
    /// The field names the record's header lists.
    fn names(&self, record: &Record) -> Vec<String> {
        let Some(text) = record
            .header(&self.header)
            .and_then(|h| h.value.as_ref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
        else {
            return Vec::new();
        };
        match serde_json::from_str::<Vec<String>>(&text) {
            Ok(list) => list,
            Err(_) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    /// Removes `names` from a struct's value and schema; required fields stay when the schema
    /// must remain compatible.
    fn apply(&self, names: &[String], value: &mut Map<String, Value>, schema: Option<&mut Value>) {
        let droppable = |field_schema: Option<&Value>| {
            !self.keep_compatible || field_schema.is_none_or(super::schema::is_optional)
        };
        let mut dropped = Vec::new();
        let fields = schema
            .and_then(|s| s.get_mut("fields"))
            .and_then(Value::as_array_mut);
        match fields {
            Some(fields) => fields.retain(|f| {
                let name = f.get("field").and_then(Value::as_str).unwrap_or("");
                let drop = names.iter().any(|n| n == name) && droppable(Some(f));
                if drop {
                    dropped.push(name.to_owned());
                }
                !drop
            }),
            None => dropped.extend(names.iter().cloned()),
        }
        for name in dropped {
            value.remove(&name);
        }
    }
}

fn build(options: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    let mode = match options.choice(&MODE)?.as_str() {
        "drop" => Mode::Drop,
        "rewrite" => Mode::Rewrite,
        "rewrite-with-tombstone" => Mode::RewriteWithTombstone,
        "delete-to-tombstone" => Mode::DeleteToTombstone,
        _ => Mode::Tombstone,
    };
    Some(Box::new(ExtractNewRecordState {
        mode,
        fields: options.list(&ADD_FIELDS),
        fields_prefix: options.string(&ADD_FIELDS_PREFIX).unwrap_or_default(),
        headers: options.list(&ADD_HEADERS),
        headers_prefix: options.string(&ADD_HEADERS_PREFIX).unwrap_or_default(),
        route_by: options.string(&ROUTE_BY_FIELD),
        row_schemas: std::sync::Mutex::default(),
        drop: options
            .string(&DROP_FIELDS_HEADER)
            .map(|header| DropFields {
                header,
                from_key: options.bool(&DROP_FIELDS_FROM_KEY).unwrap_or(false),
                keep_compatible: options.bool(&DROP_FIELDS_KEEP_COMPATIBLE).unwrap_or(true),
            }),
    }))
}

/// An envelope field by name: `source.ts_ms` is a path; a plain name is looked up at the top,
/// then in `source`.
fn envelope_field<'a>(envelope: &'a Value, name: &str) -> &'a Value {
    let path: Vec<&str> = name.split('.').collect();
    let mut current = envelope;
    for part in &path {
        current = current.get(part).unwrap_or(&Value::Null);
    }
    if path.len() == 1 && current.is_null() {
        current = envelope
            .get("source")
            .and_then(|s| s.get(name))
            .unwrap_or(&Value::Null);
    }
    current
}

/// The schema of field `name` inside a struct schema.
fn field_schema<'s>(schema: &'s Value, name: &str) -> Option<&'s Value> {
    schema
        .get("fields")?
        .as_array()?
        .iter()
        .find(|f| f.get("field").and_then(Value::as_str) == Some(name))
}

/// Adds a field (optional string in schema mode, as Debezium declares added fields).
fn add_field(row: &mut Map<String, Value>, schema: Option<&mut Value>, name: String, value: Value) {
    if let Some(fields) = schema
        .and_then(|s| s.get_mut("fields"))
        .and_then(Value::as_array_mut)
    {
        let kind = match &value {
            Value::Number(n) if n.is_i64() => "int64",
            Value::Bool(_) => "boolean",
            _ => "string",
        };
        fields.push(json!({"field": name, "type": kind, "optional": true}));
    }
    row.insert(name, value);
}

/// A row's schema as its own: the envelope's field schema without its `field` name.
fn without_field_name(mut schema: Value) -> Value {
    if let Some(m) = schema.as_object_mut() {
        m.remove("field");
    }
    schema
}

impl ExtractNewRecordState {
    /// The schema of the `part` row of events with `envelope`'s schema, shared by them.
    fn row_schema(&self, envelope: Option<&Schema>, part: &'static str) -> Option<Schema> {
        let envelope = envelope?;
        let mut cache = self
            .row_schemas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = cache
            .iter()
            .find(|c| c.part == part && c.envelope.ptr_eq(envelope))
        {
            return known.row.clone();
        }
        let row = field_schema(envelope, part)
            .cloned()
            .map(|s| Schema::new(without_field_name(s)));
        if cache.len() == ROW_SCHEMAS {
            cache.remove(0);
        }
        cache.push(RowSchema {
            envelope: envelope.clone(),
            part,
            row: row.clone(),
        });
        row
    }
}

impl Transform for ExtractNewRecordState {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        if record.value.is_null() {
            return Ok(match self.mode {
                Mode::Drop | Mode::Rewrite => Outcome::Drop,
                _ => Outcome::Keep,
            });
        }
        let data = record.value.get().map_err(|e| {
            TransformError::data(format!("ExtractNewRecordState: value is not JSON: {e}"))
        })?;
        let Some(op) = data
            .value
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Ok(Outcome::Keep);
        };
        if !data
            .value
            .as_object()
            .is_some_and(|m| m.contains_key("after"))
        {
            return Ok(Outcome::Keep);
        }
        let is_delete = op == "d";
        if is_delete {
            match self.mode {
                Mode::Drop | Mode::Tombstone => return Ok(Outcome::Drop),
                Mode::DeleteToTombstone => {
                    record.value = crate::api::record::Payload::null();
                    return Ok(Outcome::Keep);
                }
                Mode::Rewrite | Mode::RewriteWithTombstone => {}
            }
        }
        let part = if is_delete { "before" } else { "after" };
        if !matches!(data.value.get(part), Some(Value::Object(_))) {
            return Err(TransformError::data(format!(
                "ExtractNewRecordState: a change event with op {op:?} has no {part:?} row"
            )));
        }
        let drop_names = self.drop.as_ref().map(|d| (d, d.names(record)));
        let mut key = None;
        if let Some((drop, names)) = drop_names
            .as_ref()
            .filter(|(d, n)| d.from_key && !n.is_empty())
        {
            let mut data = record
                .key
                .get()
                .map_err(|e| {
                    TransformError::data(format!("ExtractNewRecordState: key is not JSON: {e}"))
                })?
                .clone();
            if let Value::Object(map) = &mut data.value {
                drop.apply(names, map, data.schema.as_mut().map(Schema::to_mut));
                key = Some(data);
            }
        }
        // Nothing fails past this point: the event is taken apart rather than copied.
        let Data {
            schema: envelope_schema,
            value: mut envelope,
        } = record
            .value
            .take()
            .map_err(|e| TransformError::data(e.to_string()))?;
        // Read from the event as it was, before its row leaves it and gains fields.
        let topic = self
            .route_by
            .as_ref()
            .and_then(|field| envelope.get(part)?.get(field)?.as_str().map(str::to_owned));
        let added: Vec<(String, Value)> = self
            .fields
            .iter()
            .map(|name| {
                let field = format!("{}{}", self.fields_prefix, name.replace('.', "_"));
                (field, envelope_field(&envelope, name).clone())
            })
            .collect();
        for name in &self.headers {
            let text = match envelope_field(&envelope, name) {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let key = format!("{}{}", self.headers_prefix, name.replace('.', "_"));
            record.headers.push(Header::text(key, text));
        }
        let mut row = match envelope.get_mut(part).map(Value::take) {
            Some(Value::Object(row)) => row,
            _ => Map::new(), // checked above: the row is an object
        };
        let rewrite = matches!(self.mode, Mode::Rewrite | Mode::RewriteWithTombstone);
        let dropping = drop_names.as_ref().filter(|(_, names)| !names.is_empty());
        let schema = if added.is_empty() && !rewrite && dropping.is_none() {
            self.row_schema(envelope_schema.as_ref(), part)
        } else {
            let mut schema = envelope_schema
                .as_ref()
                .and_then(|s| field_schema(s, part))
                .cloned()
                .map(without_field_name);
            for (field, value) in added {
                add_field(&mut row, schema.as_mut(), field, value);
            }
            if rewrite {
                let deleted = if is_delete { "true" } else { "false" };
                add_field(
                    &mut row,
                    schema.as_mut(),
                    format!("{}deleted", self.fields_prefix),
                    json!(deleted),
                );
            }
            if let Some((drop, names)) = dropping {
                drop.apply(names, &mut row, schema.as_mut());
            }
            schema.map(Schema::new)
        };
        record.value = crate::api::record::Payload::data(Data {
            schema,
            value: Value::Object(row),
        });
        if let Some(key) = key {
            record.key = crate::api::record::Payload::data(key);
        }
        if let Some(topic) = topic {
            record.topic = topic;
        }
        Ok(Outcome::Keep)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::api::record::Payload;

    fn unwrap(config: &[(&str, &str)]) -> Box<dyn Transform> {
        let map: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        build(&mut Options::new(map), Part::Value).expect("a valid config")
    }

    /// A change event as the CDC source hands it on: its bytes beside the table's schema.
    fn event(schema: &Schema, id: i64) -> Record {
        let value = json!({"before": null, "after": {"id": id, "name": "a"},
            "source": {"table": "t", "ts_ms": 7}, "op": "c"});
        let raw = Bytes::from(serde_json::to_vec(&value).unwrap());
        Record::new("t", Payload::json_with_schema(raw, schema.clone()))
    }

    fn envelope_schema() -> Schema {
        let row = json!({"type": "struct", "optional": true, "name": "t.Value", "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "name", "type": "string", "optional": true}]});
        let mut after = row.clone();
        after["field"] = json!("after");
        let mut before = row;
        before["field"] = json!("before");
        Schema::new(
            json!({"type": "struct", "name": "t.Envelope", "fields": [before, after,
            {"field": "op", "type": "string", "optional": false}]}),
        )
    }

    #[test]
    fn the_rows_of_one_tables_events_share_one_row_schema() {
        let schema = envelope_schema();
        let smt = unwrap(&[]);
        let (mut a, mut b) = (event(&schema, 1), event(&schema, 2));
        smt.apply(&mut a).unwrap();
        smt.apply(&mut b).unwrap();
        let (a, b) = (a.value.get().unwrap(), b.value.get().unwrap());
        assert_eq!(a.value, json!({"id": 1, "name": "a"}));
        let (sa, sb) = (a.schema.as_ref().unwrap(), b.schema.as_ref().unwrap());
        assert!(sa.ptr_eq(sb), "one shared schema");
        assert_eq!(sa.get("name"), Some(&json!("t.Value")));
        assert!(sa.get("field").is_none());
    }

    #[test]
    fn added_fields_get_a_schema_of_their_own() {
        let schema = envelope_schema();
        let smt = unwrap(&[("add.fields", "op,table")]);
        let mut a = event(&schema, 1);
        smt.apply(&mut a).unwrap();
        let data = a.value.get().unwrap();
        assert_eq!(
            data.value,
            json!({"id": 1, "name": "a", "__op": "c", "__table": "t"})
        );
        let fields = data.schema.as_ref().unwrap()["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 4);
        // The envelope's own schema is untouched.
        assert_eq!(schema["fields"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn a_failing_event_keeps_its_value() {
        let schema = envelope_schema();
        let value = json!({"before": null, "after": null, "op": "c"});
        let raw = Bytes::from(serde_json::to_vec(&value).unwrap());
        let mut r = Record::new("t", Payload::json_with_schema(raw.clone(), schema));
        assert!(unwrap(&[]).apply(&mut r).is_err());
        assert_eq!(
            r.value.raw(),
            Some(&raw),
            "the dead letter gets the event as it was"
        );
    }
}
