//! Connector configs as users write them: Kafka Connect JSON (`{"name","config":{..}}` or a flat
//! map, the body of `PUT /connectors/{name}/config`) or a Kafka Connect standalone
//! `.properties` file. Values are strings; JSON numbers and booleans are read as their text.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;

use crate::api::options::ConfigIssue;

/// A connector's raw config: its name and its string map, `${..}` placeholders unresolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorConfig {
    pub name: String,
    pub config: BTreeMap<String, String>,
}

/// Why a config document could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: invalid JSON: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    #[error("{origin}: {message}")]
    Shape { origin: String, message: String },
}

/// Every problem found in one connector's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub connector: String,
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Kafka Connect's wording, with the connector named.
        write!(
            f,
            "Connector '{}' configuration is invalid and contains the following {} error(s):",
            self.connector,
            self.issues.len()
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A config value as Kafka Connect keeps it: strings as they are, numbers and booleans as their
/// text; `None` for anything else.
pub fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn string_map(
    object: &serde_json::Map<String, Value>,
    origin: &str,
) -> Result<BTreeMap<String, String>, ConfigFileError> {
    let mut map = BTreeMap::new();
    for (k, v) in object {
        let text = value_text(v).ok_or_else(|| ConfigFileError::Shape {
            origin: origin.to_owned(),
            message: format!(
                "config key {k:?}: expected a string, number or boolean, got {}",
                match v {
                    Value::Null => "null",
                    Value::Array(_) => "an array",
                    _ => "an object",
                }
            ),
        })?;
        map.insert(k.clone(), text);
    }
    Ok(map)
}

/// Parses a JSON config document. `default_name` (a file's stem) names a flat map without a
/// `name` key.
pub fn parse_json(
    text: &str,
    origin: &str,
    default_name: Option<&str>,
) -> Result<ConnectorConfig, ConfigFileError> {
    let shape = |message: String| ConfigFileError::Shape {
        origin: origin.to_owned(),
        message,
    };
    let value: Value = serde_json::from_str(text).map_err(|source| ConfigFileError::Json {
        origin: origin.to_owned(),
        source,
    })?;
    let Value::Object(top) = value else {
        return Err(shape(
            "expected a JSON object: {\"name\": .., \"config\": {..}} or a flat config map".into(),
        ));
    };
    let (name, config) = match top.get("config") {
        Some(Value::Object(inner)) => {
            let name = top
                .get("name")
                .and_then(Value::as_str)
                .map(str::trim)
                .map(str::to_owned)
                .or_else(|| default_name.map(str::to_owned))
                .ok_or_else(|| shape("missing \"name\"".into()))?;
            let config = string_map(inner, origin)?;
            if let Some(inner_name) = config.get("name")
                && inner_name.trim() != name
            {
                return Err(shape(format!(
                    "Connector name configuration ({inner_name}) doesn't match connector name \
                     in the URL ({name})"
                )));
            }
            (name, config)
        }
        Some(_) => {
            return Err(shape(
                "\"config\" must be an object of string values".into(),
            ));
        }
        None => {
            let config = string_map(&top, origin)?;
            let name = config
                .get("name")
                .map(|n| n.trim().to_owned())
                .or_else(|| default_name.map(str::to_owned))
                .ok_or_else(|| shape("missing \"name\"".into()))?;
            (name, config)
        }
    };
    if name.is_empty() {
        return Err(shape("connector name must not be empty".into()));
    }
    Ok(ConnectorConfig { name, config })
}

/// Parses a Java `.properties` file (Kafka Connect standalone's format): `key=value` or
/// `key: value` lines, `#`/`!` comments, trailing-backslash continuations.
pub fn parse_properties(
    text: &str,
    origin: &str,
    default_name: Option<&str>,
) -> Result<ConnectorConfig, ConfigFileError> {
    let mut config = BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with(['#', '!'])) {
            continue;
        }
        if let Some(cont) = trimmed.strip_suffix('\\') {
            pending.push_str(cont);
            continue;
        }
        pending.push_str(trimmed);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']).unwrap_or(entry.len());
        let key = entry[..split].trim().to_owned();
        let value = entry.get(split + 1..).unwrap_or("").trim().to_owned();
        config.insert(key, value);
    }
    let name = config
        .get("name")
        .cloned()
        .or_else(|| default_name.map(str::to_owned))
        .ok_or_else(|| ConfigFileError::Shape {
            origin: origin.to_owned(),
            message: "missing \"name\"".into(),
        })?;
    Ok(ConnectorConfig { name, config })
}

/// Whether a file in `connectors.d/` is a connector config (by extension; editor backups and
/// hidden files are not).
pub fn is_config_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    !name.starts_with('.')
        && !name.ends_with('~')
        && (name.ends_with(".json") || name.ends_with(".properties"))
}

/// Reads a connector config file (`.json` or `.properties`).
pub fn load_file(path: &Path) -> Result<ConnectorConfig, ConfigFileError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Io {
        path: origin.clone(),
        source,
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str());
    if path.extension().is_some_and(|e| e == "properties") {
        parse_properties(&text, &origin, stem)
    } else {
        parse_json(&text, &origin, stem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrapped_and_flat_json_with_non_string_values() {
        let c = parse_json(
            r#"{"name":"a","config":{"connector.class":"X","tasks.max":1,"b":true}}"#,
            "t",
            None,
        )
        .unwrap();
        assert_eq!(c.name, "a");
        assert_eq!(c.config["tasks.max"], "1");
        assert_eq!(c.config["b"], "true");
        let flat = parse_json(r#"{"connector.class":"X"}"#, "t", Some("stem")).unwrap();
        assert_eq!(flat.name, "stem");
    }

    #[test]
    fn rejects_name_mismatch_and_nested_values() {
        let err = parse_json(r#"{"name":"a","config":{"name":"b"}}"#, "f.json", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("(b) doesn't match connector name"), "{err}");
        let err = parse_json(r#"{"name":"a","config":{"k":[1]}}"#, "f.json", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            r#"f.json: config key "k": expected a string, number or boolean, got an array"#
        );
    }

    #[test]
    fn reads_properties() {
        let c = parse_properties(
            "# comment\nname=p\nconnector.class = X\nlist=a,\\\n  b\n",
            "t",
            None,
        )
        .unwrap();
        assert_eq!(c.name, "p");
        assert_eq!(c.config["connector.class"], "X");
        assert_eq!(c.config["list"], "a,b");
    }
}
