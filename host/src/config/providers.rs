//! Config providers: `${env:VAR}` and `${file:path:key}` placeholders, resolved when a task
//! starts (never written back, so the REST API and logs show the placeholder, not the secret).
//!
//! The syntax is Kafka Connect's `${provider:[path:]key}`. `file` reads `key` from a Java
//! properties file at `path` (Kafka's `FileConfigProvider`); `env` reads an environment variable
//! (`EnvVarConfigProvider`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;

use crate::api::options::ConfigIssue;
use crate::config::connector::{ConfigFileError, parse_properties};

// The same pattern as Kafka's ConfigTransformer.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\$\{([^}]*?):(?:([^}]*?):)?([^}]*?)\}").expect("placeholder regex is valid")
});

/// Why a placeholder could not be resolved.
#[derive(Debug, thiserror::Error)]
enum ProviderError {
    #[error("environment variable {0} is not set")]
    EnvUnset(String),
    #[error("the file provider needs ${{file:<path>:<key>}}")]
    FileWithoutPath,
    #[error("reading properties file {path}: {source}")]
    ReadFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    // The parser's error names the file already.
    #[error("{source}")]
    ParseFile {
        path: String,
        #[source]
        source: ConfigFileError,
    },
    #[error("key {key:?} not found in {path}")]
    MissingKey { key: String, path: String },
    #[error("unknown config provider {0:?}; available: env, file")]
    UnknownProvider(String),
}

fn resolve_one(provider: &str, path: Option<&str>, key: &str) -> Result<String, ProviderError> {
    match provider {
        "env" => std::env::var(key).map_err(|_| ProviderError::EnvUnset(key.to_owned())),
        "file" => {
            let path = path.ok_or(ProviderError::FileWithoutPath)?;
            let text = std::fs::read_to_string(path).map_err(|source| ProviderError::ReadFile {
                path: path.to_owned(),
                source,
            })?;
            let props =
                parse_properties(&format!("name=_\n{text}"), path, None).map_err(|source| {
                    ProviderError::ParseFile {
                        path: path.to_owned(),
                        source,
                    }
                })?;
            props
                .config
                .get(key)
                .cloned()
                .ok_or_else(|| ProviderError::MissingKey {
                    key: key.to_owned(),
                    path: path.to_owned(),
                })
        }
        other => Err(ProviderError::UnknownProvider(other.to_owned())),
    }
}

/// Returns the config with every placeholder replaced, or one issue per value that could not be
/// resolved (naming the key and the reason).
pub fn resolve(
    config: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, Vec<ConfigIssue>> {
    let mut issues = Vec::new();
    let mut out = BTreeMap::new();
    for (key, value) in config {
        if !value.contains("${") {
            out.insert(key.clone(), value.clone());
            continue;
        }
        let mut resolved = String::with_capacity(value.len());
        let mut last = 0;
        for caps in PLACEHOLDER.captures_iter(value) {
            let whole = caps.get(0).expect("group 0 always matches");
            resolved.push_str(&value[last..whole.start()]);
            let provider = &caps[1];
            let path = caps.get(2).map(|m| m.as_str());
            match resolve_one(provider, path, &caps[3]) {
                Ok(v) => resolved.push_str(&v),
                Err(message) => issues.push(ConfigIssue {
                    key: key.clone(),
                    message: format!("cannot resolve {}: {message}", whole.as_str()),
                }),
            }
            last = whole.end();
        }
        resolved.push_str(&value[last..]);
        out.insert(key.clone(), resolved);
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_env_and_file_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets.properties");
        std::fs::write(&secrets, "db.password=s3cret\n").unwrap();
        // PATH is set in every test environment.
        let path = std::env::var("PATH").unwrap();
        let config = BTreeMap::from([
            ("a".to_string(), "${env:PATH}".to_string()),
            (
                "b".to_string(),
                format!("pw=${{file:{}:db.password}}!", secrets.display()),
            ),
        ]);
        let out = resolve(&config).unwrap();
        assert_eq!(out["a"], path);
        assert_eq!(out["b"], "pw=s3cret!");
    }

    #[test]
    fn unresolvable_placeholders_name_key_and_reason() {
        let config = BTreeMap::from([(
            "database.password".to_string(),
            "${env:HEADWATER_SURELY_UNSET_VAR}".to_string(),
        )]);
        let issues = resolve(&config).unwrap_err();
        assert_eq!(issues[0].key, "database.password");
        assert!(
            issues[0]
                .message
                .contains("environment variable HEADWATER_SURELY_UNSET_VAR is not set")
        );
    }
}
