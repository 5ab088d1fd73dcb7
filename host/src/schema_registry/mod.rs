//! The embedded schema registry: Confluent Schema Registry's model (subjects holding versions
//! of Avro schemas, global schema ids, compatibility levels per subject), kept durably in
//! `<data dir>/schema-registry.json`, so Avro works without another service. The REST API
//! (`rest/schema_registry.rs`) serves it with Confluent's paths and error codes.
//!
//! Every change is written (synced, atomically renamed) before it is answered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use apache_avro::Schema as AvroSchema;
use apache_avro::error::CompatibilityError;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};

use crate::offsets::write_atomically;

/// Compatibility levels, Confluent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    /// New schemas can read data written with the latest one (Confluent's default).
    #[default]
    Backward,
    BackwardTransitive,
    /// The latest schema can read data written with new ones.
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(text.trim().to_uppercase())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    /// Why `new` may not follow `old`, if it may not.
    fn check(self, old: &AvroSchema, new: &AvroSchema) -> Result<(), CompatibilityError> {
        let backward = || SchemaCompatibility::can_read(old, new);
        let forward = || SchemaCompatibility::can_read(new, old);
        match self {
            Self::None => Ok(()),
            Self::Backward | Self::BackwardTransitive => backward(),
            Self::Forward | Self::ForwardTransitive => forward(),
            Self::Full | Self::FullTransitive => backward().and_then(|()| forward()),
        }
    }
}

/// A failed registry operation, with Confluent's error code (the HTTP status is its first
/// three digits).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RegistryError {
    pub code: u32,
    pub message: String,
}

impl RegistryError {
    fn new(code: u32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(40401, format!("Subject '{subject}' not found."))
    }

    pub fn version_not_found(version: &str) -> Self {
        Self::new(40402, format!("Version {version} not found."))
    }

    pub fn schema_not_found() -> Self {
        Self::new(40403, "Schema not found")
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        let mut code = self.code;
        while code >= 1000 {
            code /= 10;
        }
        u16::try_from(code).unwrap_or(500)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchema {
    schema: String,
    #[serde(default = "avro")]
    schema_type: String,
}

fn avro() -> String {
    "AVRO".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredVersion {
    version: u32,
    id: u32,
    #[serde(default)]
    deleted: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    next_id: u32,
    schemas: BTreeMap<u32, StoredSchema>,
    subjects: BTreeMap<String, Vec<StoredVersion>>,
    compatibility: Compatibility,
    subject_compatibility: BTreeMap<String, Compatibility>,
}

/// Whether two schema texts are the same schema: equal as JSON (whitespace and key order do
/// not matter; defaults, docs and logical types do, unlike Avro's Parsing Canonical Form).
fn same_schema(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
}

/// The registry.
#[derive(Debug)]
pub struct SchemaRegistry {
    path: PathBuf,
    state: Mutex<State>,
}

impl SchemaRegistry {
    /// Opens (or starts) the registry kept under `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("schema-registry.json");
        let state = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is not a schema registry file: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State {
                next_id: 1,
                ..State::default()
            },
            Err(e) => return Err(e),
        };
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, state: &State) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| {
            RegistryError::new(50001, format!("Error in the backend data store: {e}"))
        })?;
        write_atomically(&self.path, &bytes).map_err(|e| {
            RegistryError::new(
                50001,
                format!(
                    "Error in the backend data store {}: {e}",
                    self.path.display()
                ),
            )
        })
    }

    /// Subjects with at least one live version.
    pub fn subjects(&self) -> Vec<String> {
        self.lock()
            .subjects
            .iter()
            .filter(|(_, v)| v.iter().any(|v| !v.deleted))
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn live(state: &State, subject: &str) -> Result<Vec<StoredVersion>, RegistryError> {
        let versions: Vec<StoredVersion> = state
            .subjects
            .get(subject)
            .map(|v| v.iter().filter(|v| !v.deleted).cloned().collect())
            .unwrap_or_default();
        if versions.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    pub fn versions(&self, subject: &str) -> Result<Vec<u32>, RegistryError> {
        Ok(Self::live(&self.lock(), subject)?
            .iter()
            .map(|v| v.version)
            .collect())
    }

    /// A version (`latest`, `-1` or a number) of a subject.
    pub fn version(&self, subject: &str, version: &str) -> Result<Registered, RegistryError> {
        let state = self.lock();
        let live = Self::live(&state, subject)?;
        let found = match version {
            "latest" | "-1" => live.last(),
            v => {
                let n: u32 = v.parse().map_err(|_| {
                    RegistryError::new(
                        42202,
                        format!("The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
                    )
                })?;
                live.iter().find(|x| x.version == n)
            }
        }
        .ok_or_else(|| RegistryError::version_not_found(version))?;
        let schema = state
            .schemas
            .get(&found.id)
            .map(|s| s.schema.clone())
            .ok_or_else(RegistryError::schema_not_found)?;
        Ok(Registered {
            subject: subject.to_owned(),
            version: found.version,
            id: found.id,
            schema,
        })
    }

    pub fn schema(&self, id: u32) -> Result<(String, String), RegistryError> {
        self.lock()
            .schemas
            .get(&id)
            .map(|s| (s.schema.clone(), s.schema_type.clone()))
            .ok_or_else(|| RegistryError::new(40403, format!("Schema {id} not found")))
    }

    /// `(subject, version)` pairs that use schema `id`.
    pub fn usages(&self, id: u32) -> Vec<(String, u32)> {
        let state = self.lock();
        state
            .subjects
            .iter()
            .flat_map(|(s, vs)| {
                vs.iter()
                    .filter(|v| v.id == id && !v.deleted)
                    .map(move |v| (s.clone(), v.version))
            })
            .collect()
    }

    pub fn compatibility(&self, subject: Option<&str>) -> Option<Compatibility> {
        let state = self.lock();
        match subject {
            None => Some(state.compatibility),
            Some(s) => state.subject_compatibility.get(s).copied(),
        }
    }

    pub fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: Option<Compatibility>,
    ) -> Result<(), RegistryError> {
        let mut state = self.lock();
        match (subject, level) {
            (None, Some(level)) => state.compatibility = level,
            (None, None) => state.compatibility = Compatibility::default(),
            (Some(s), Some(level)) => {
                state.subject_compatibility.insert(s.to_owned(), level);
            }
            (Some(s), None) => {
                state.subject_compatibility.remove(s);
            }
        }
        self.persist(&state)
    }

    fn parse(schema: &str, schema_type: &str) -> Result<AvroSchema, RegistryError> {
        if schema_type != "AVRO" {
            return Err(RegistryError::new(
                42201,
                format!("Invalid schema type {schema_type}: this registry holds AVRO schemas"),
            ));
        }
        parse_avro(schema)
            .map_err(|e| RegistryError::new(42201, format!("Invalid schema {schema}: {e}")))
    }

    /// Checks `schema` against the subject's versions under its compatibility level (the
    /// latest one, or all for the transitive levels). `Ok(Err(reason))` when incompatible.
    fn incompatibility(
        state: &State,
        subject: &str,
        new: &AvroSchema,
        against: Option<u32>,
    ) -> Result<Option<String>, RegistryError> {
        let level = state
            .subject_compatibility
            .get(subject)
            .copied()
            .unwrap_or(state.compatibility);
        let live: Vec<&StoredVersion> = state
            .subjects
            .get(subject)
            .map(|v| v.iter().filter(|v| !v.deleted).collect())
            .unwrap_or_default();
        let olds: Vec<&StoredVersion> = match against {
            Some(version) => live.into_iter().filter(|v| v.version == version).collect(),
            None if level.transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        for old in olds {
            let Some(text) = state.schemas.get(&old.id) else {
                continue;
            };
            let old_schema = parse_avro(&text.schema).map_err(|e| {
                RegistryError::new(50001, format!("stored schema {} is invalid: {e}", old.id))
            })?;
            if let Err(reason) = level.check(&old_schema, new) {
                return Ok(Some(format!(
                    "{{oldSchemaVersion: {}, oldSchema: '{}', compatibility: '{}'}}: {reason}",
                    old.version,
                    text.schema,
                    level.as_str()
                )));
            }
        }
        Ok(None)
    }

    /// Registers `schema` under `subject`; an identical schema already there keeps its version.
    /// Returns the schema's id and the version.
    pub fn register(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
    ) -> Result<Registered, RegistryError> {
        let parsed = Self::parse(schema, schema_type)?;
        let mut state = self.lock();
        let existing_id = state
            .schemas
            .iter()
            .find_map(|(id, s)| same_schema(&s.schema, schema).then_some(*id));
        if let Some(id) = existing_id
            && let Some(v) = state
                .subjects
                .get(subject)
                .and_then(|vs| vs.iter().find(|v| v.id == id && !v.deleted))
        {
            return Ok(Registered {
                subject: subject.to_owned(),
                version: v.version,
                id,
                schema: schema.to_owned(),
            });
        }
        if let Some(reason) = Self::incompatibility(&state, subject, &parsed, None)? {
            return Err(RegistryError::new(
                409,
                format!(
                    "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{reason}]"
                ),
            ));
        }
        let id = match existing_id {
            Some(id) => id,
            None => {
                let id = state.next_id.max(1);
                state.next_id = id + 1;
                state.schemas.insert(
                    id,
                    StoredSchema {
                        schema: schema.to_owned(),
                        schema_type: schema_type.to_owned(),
                    },
                );
                id
            }
        };
        let versions = state.subjects.entry(subject.to_owned()).or_default();
        let version = versions.last().map_or(1, |v| v.version + 1);
        versions.push(StoredVersion {
            version,
            id,
            deleted: false,
        });
        self.persist(&state)?;
        Ok(Registered {
            subject: subject.to_owned(),
            version,
            id,
            schema: schema.to_owned(),
        })
    }

    /// The registered version of `schema` under `subject`, if any.
    pub fn lookup(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
    ) -> Result<Registered, RegistryError> {
        Self::parse(schema, schema_type)?;
        let state = self.lock();
        let live = Self::live(&state, subject)?;
        live.iter()
            .find_map(|v| {
                let stored = state.schemas.get(&v.id)?;
                same_schema(&stored.schema, schema).then(|| Registered {
                    subject: subject.to_owned(),
                    version: v.version,
                    id: v.id,
                    schema: stored.schema.clone(),
                })
            })
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Whether `schema` may be registered under `subject` (against `version`, or per the level).
    pub fn is_compatible(
        &self,
        subject: &str,
        version: &str,
        schema: &str,
        schema_type: &str,
    ) -> Result<(bool, Option<String>), RegistryError> {
        let parsed = Self::parse(schema, schema_type)?;
        let against = match version {
            "latest" | "-1" => None,
            v => Some(self.version(subject, v)?.version),
        };
        let state = self.lock();
        let reason = Self::incompatibility(&state, subject, &parsed, against)?;
        Ok((reason.is_none(), reason))
    }

    /// Deletes a subject (soft: versions are hidden; `permanent`: after a soft delete, removed).
    /// Returns the deleted versions.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let mut state = self.lock();
        let Some(versions) = state.subjects.get_mut(subject) else {
            return Err(RegistryError::subject_not_found(subject));
        };
        let deleted: Vec<u32>;
        if permanent {
            if versions.iter().any(|v| !v.deleted) {
                return Err(RegistryError::new(
                    40405,
                    format!(
                        "Subject '{subject}' was not deleted first before being permanently deleted"
                    ),
                ));
            }
            deleted = versions.iter().map(|v| v.version).collect();
            state.subjects.remove(subject);
            state.subject_compatibility.remove(subject);
        } else {
            deleted = versions
                .iter()
                .filter(|v| !v.deleted)
                .map(|v| v.version)
                .collect();
            if deleted.is_empty() {
                return Err(RegistryError::new(
                    40404,
                    format!("Subject '{subject}' was soft deleted."),
                ));
            }
            versions.iter_mut().for_each(|v| v.deleted = true);
        }
        self.persist(&state)?;
        Ok(deleted)
    }

    /// Soft-deletes one version.
    pub fn delete_version(&self, subject: &str, version: &str) -> Result<u32, RegistryError> {
        let found = self.version(subject, version)?.version;
        let mut state = self.lock();
        if let Some(v) = state
            .subjects
            .get_mut(subject)
            .and_then(|vs| vs.iter_mut().find(|v| v.version == found))
        {
            v.deleted = true;
        }
        self.persist(&state)?;
        Ok(found)
    }
}

/// Parses an Avro schema's text. apache-avro 0.20 panics on some invalid names (an `unwrap` in
/// its `Name::parse`, found by the schema registry's fuzz target): the panic is contained here
/// and reported as the schema's error, so a schema a client sends, or one written in a
/// connector's config, can never take a task or the host down.
pub fn parse_avro(text: &str) -> Result<AvroSchema, InvalidAvroSchema> {
    contained(|| AvroSchema::parse_str(text))
}

/// [`parse_avro`] for a schema already in JSON form.
pub fn parse_avro_json(json: &serde_json::Value) -> Result<AvroSchema, InvalidAvroSchema> {
    contained(|| AvroSchema::parse(json))
}

fn contained(
    parse: impl FnOnce() -> apache_avro::AvroResult<AvroSchema> + std::panic::UnwindSafe,
) -> Result<AvroSchema, InvalidAvroSchema> {
    std::panic::catch_unwind(parse)
        .map_err(|_| InvalidAvroSchema::Name)?
        .map_err(InvalidAvroSchema::Parse)
}

/// Why an Avro schema cannot be parsed.
#[derive(Debug, thiserror::Error)]
pub enum InvalidAvroSchema {
    #[error(transparent)]
    Parse(apache_avro::Error),
    /// apache-avro panicked on a name (see [`parse_avro`]).
    #[error(
        "a name does not follow Avro's rules: [A-Za-z_][A-Za-z0-9_]*, in dot-separated namespaces"
    )]
    Name,
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"}]}"#;
    const V2_DEFAULT: &str = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"tier","type":"string","default":"free"}]}"#;
    const V2_REQUIRED: &str = r#"{"type":"record","name":"U","fields":[{"name":"id","type":"long"},{"name":"tier","type":"string"}]}"#;

    #[test]
    fn versions_ids_and_durability() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        let a = r.register("u-value", V1, "AVRO").unwrap();
        assert_eq!((a.id, a.version), (1, 1));
        // The same schema again: same id and version; under another subject: same id.
        assert_eq!(r.register("u-value", V1, "AVRO").unwrap().version, 1);
        let spaced = V1.replace(',', ", ");
        assert_eq!(r.register("u-value", &spaced, "AVRO").unwrap().version, 1);
        let other = r.register("x-value", V1, "AVRO").unwrap();
        assert_eq!((other.id, other.version), (1, 1));
        let b = r.register("u-value", V2_DEFAULT, "AVRO").unwrap();
        assert_eq!((b.id, b.version), (2, 2));
        drop(r);
        let r = SchemaRegistry::open(dir.path()).unwrap();
        assert_eq!(r.versions("u-value").unwrap(), vec![1, 2]);
        assert_eq!(r.version("u-value", "latest").unwrap().id, 2);
        assert_eq!(r.lookup("u-value", V1, "AVRO").unwrap().version, 1);
        assert_eq!(r.schema(2).unwrap().0, V2_DEFAULT);
    }

    #[test]
    fn compatibility_levels_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        r.register("s", V1, "AVRO").unwrap();
        // BACKWARD (default): a new required field cannot read old data.
        let err = r.register("s", V2_REQUIRED, "AVRO").unwrap_err();
        assert_eq!((err.code, err.status()), (409, 409));
        assert!(r.register("s", V2_DEFAULT, "AVRO").is_ok());
        // FORWARD: old readers must read new data; dropping a field without default in the
        // reader (old) is fine, but FULL needs both directions.
        r.set_compatibility(Some("t"), Some(Compatibility::Forward))
            .unwrap();
        r.register("t", V2_REQUIRED, "AVRO").unwrap();
        assert!(
            r.register("t", V1, "AVRO").is_err(),
            "V2_REQUIRED cannot read V1 data"
        );
        r.set_compatibility(Some("t"), Some(Compatibility::None))
            .unwrap();
        assert!(r.register("t", V1, "AVRO").is_ok());
        r.set_compatibility(Some("f"), Some(Compatibility::Full))
            .unwrap();
        r.register("f", V1, "AVRO").unwrap();
        assert!(r.register("f", V2_REQUIRED, "AVRO").is_err());
        assert!(r.register("f", V2_DEFAULT, "AVRO").is_ok());
        let err = r.register("f", "{not json", "AVRO").unwrap_err();
        assert_eq!(err.code, 42201);
    }

    #[test]
    fn deletes_are_soft_then_permanent() {
        let dir = tempfile::tempdir().unwrap();
        let r = SchemaRegistry::open(dir.path()).unwrap();
        r.register("s", V1, "AVRO").unwrap();
        assert!(r.delete_subject("s", true).is_err(), "soft delete first");
        assert_eq!(r.delete_subject("s", false).unwrap(), vec![1]);
        assert_eq!(r.versions("s").unwrap_err().code, 40401);
        assert_eq!(r.schema(1).unwrap().0, V1, "ids stay readable");
        assert_eq!(r.delete_subject("s", true).unwrap(), vec![1]);
    }
}
