//! Source offsets in Kafka Connect's shape: a source *partition* map (a file, a
//! topic-partition, a replication slot's server) to an *offset* map. Sources read and report
//! them; `crate::offsets` stores them durably.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A connector's committed offsets, keyed by the canonical JSON of the partition map.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceOffsets {
    entries: BTreeMap<String, (Value, Value)>,
}

/// Canonical text of a partition map: object keys sorted at every level, so equal maps give
/// equal text whatever order they were built in.
pub fn partition_key(partition: &Value) -> String {
    fn canonical(v: &Value) -> Value {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), canonical(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
            other => other.clone(),
        }
    }
    canonical(partition).to_string()
}

impl SourceOffsets {
    pub fn get(&self, partition: &Value) -> Option<&Value> {
        self.entries.get(&partition_key(partition)).map(|(_, o)| o)
    }

    pub fn insert(&mut self, partition: Value, offset: Value) {
        self.entries
            .insert(partition_key(&partition), (partition, offset));
    }

    pub fn remove(&mut self, partition: &Value) {
        self.entries.remove(&partition_key(partition));
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Value, &Value)> {
        self.entries.values().map(|(p, o)| (p, o))
    }

    pub fn to_json(&self) -> Value {
        let offsets: Vec<Value> = self
            .iter()
            .map(|(p, o)| json!({ "partition": p, "offset": o }))
            .collect();
        json!({ "offsets": offsets })
    }

    pub fn from_json(value: &Value) -> Option<Self> {
        let mut out = Self::default();
        for entry in value.get("offsets")?.as_array()? {
            out.insert(
                entry.get("partition")?.clone(),
                entry.get("offset")?.clone(),
            );
        }
        Some(out)
    }
}
