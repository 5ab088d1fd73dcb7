//! Config providers: `${env:VAR}`, `${file:path:key}` and `${param:name}` placeholders,
//! resolved when a task starts (never written back, so the REST API and logs show the
//! placeholder, not the secret).
//!
//! The syntax is Kafka Connect's `${provider:[path:]key}`. `file` reads `key` from a Java
//! properties file at `path` (Kafka's `FileConfigProvider`); `env` reads an environment variable
//! (`EnvVarConfigProvider`); `param` reads a run parameter given on the command line
//! (`headwater run --set name=value`), so one set of configs serves every date a scheduler
//! runs them for.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;

use crate::api::allowed_env::EnvNotAllowed;
use crate::api::allowed_paths::PathNotAllowed;
use crate::api::confine::Confine;
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
    #[error("parameter {0} is not set: pass --set {0}=<value> to headwater run or validate")]
    ParamUnset(String),
    #[error("unknown config provider {0:?}; available: env, file, param")]
    UnknownProvider(String),
    #[error(transparent)]
    NotAllowed(#[from] PathNotAllowed),
    #[error(transparent)]
    EnvNotAllowed(#[from] EnvNotAllowed),
}

/// Run parameters (`--set name=value`), read by `${param:name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>);

/// Why a `--set` argument was refused.
#[derive(Debug, thiserror::Error)]
#[error("--set {0:?}: expected name=value")]
pub struct ParamSyntaxError(String);

impl Params {
    /// From `name=value` arguments; a later one of the same name wins.
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, ParamSyntaxError> {
        let mut params = BTreeMap::new();
        for arg in args {
            match arg.split_once('=') {
                Some((name, value)) if !name.trim().is_empty() => {
                    params.insert(name.trim().to_owned(), value.to_owned());
                }
                _ => return Err(ParamSyntaxError(arg.to_owned())),
            }
        }
        Ok(Self(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn resolve_one(
    provider: &str,
    path: Option<&str>,
    key: &str,
    params: &Params,
    confine: Option<Confine<'_>>,
) -> Result<String, ProviderError> {
    match provider {
        "param" => params
            .get(key)
            .map(str::to_owned)
            .ok_or_else(|| ProviderError::ParamUnset(key.to_owned())),
        "env" => {
            if let Some(confine) = confine {
                confine.env.check(key)?;
            }
            std::env::var(key).map_err(|_| ProviderError::EnvUnset(key.to_owned()))
        }
        "file" => {
            let path = path.ok_or(ProviderError::FileWithoutPath)?;
            if let Some(confine) = confine {
                confine.paths.check(Path::new(path))?;
            }
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
/// resolved (naming the key and the reason). With `confine` (a config from a REST caller), the
/// files `${file:...}` reads must be in its directories and `${env:...}` may only read its
/// variables.
pub fn resolve(
    config: &BTreeMap<String, String>,
    params: &Params,
    confine: Option<Confine<'_>>,
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
            match resolve_one(provider, path, &caps[3], params, confine) {
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
    use std::sync::Arc;

    use super::*;
    use crate::api::allowed_env::AllowedEnv;
    use crate::api::allowed_paths::AllowedPaths;

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
        let out = resolve(&config, &Params::default(), None).unwrap();
        assert_eq!(out["a"], path);
        assert_eq!(out["b"], "pw=s3cret!");
    }

    #[test]
    fn unresolvable_placeholders_name_key_and_reason() {
        let config = BTreeMap::from([(
            "database.password".to_string(),
            "${env:HEADWATER_SURELY_UNSET_VAR}".to_string(),
        )]);
        let issues = resolve(&config, &Params::default(), None).unwrap_err();
        assert_eq!(issues[0].key, "database.password");
        assert!(
            issues[0]
                .message
                .contains("environment variable HEADWATER_SURELY_UNSET_VAR is not set")
        );
    }

    #[test]
    fn params_come_from_set_arguments() {
        let params = Params::parse(["ds=2024-01-02", "region=eu", "ds=2024-01-03"]).unwrap();
        let config = BTreeMap::from([(
            "path".to_string(),
            "lake/date=${param:ds}/${param:region}/*.jsonl".to_string(),
        )]);
        assert_eq!(
            resolve(&config, &params, None).unwrap()["path"],
            "lake/date=2024-01-03/eu/*.jsonl"
        );
        let issues = resolve(&config, &Params::parse(["ds=x"]).unwrap(), None).unwrap_err();
        assert_eq!(issues[0].key, "path");
        assert!(
            issues[0].message.contains("${param:region}")
                && issues[0].message.contains("--set region=<value>"),
            "{}",
            issues[0].message
        );
        assert!(Params::parse(["novalue"]).is_err());
        assert!(Params::parse(["=x"]).is_err());
    }

    #[test]
    fn a_confined_config_reads_provider_files_only_where_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Arc::new(AllowedPaths::new(&[dir.path().join("data")]).unwrap());
        let env = AllowedEnv::default();
        let confine = Some(Confine {
            paths: &paths,
            env: &env,
        });
        let inside = dir.path().join("data/secrets.properties");
        let outside = dir.path().join("elsewhere.properties");
        std::fs::write(&inside, "pw=in\n").unwrap();
        std::fs::write(&outside, "pw=out\n").unwrap();
        let config = |path: &std::path::Path| {
            BTreeMap::from([(
                "database.password".to_string(),
                format!("${{file:{}:pw}}", path.display()),
            )])
        };
        let out = resolve(&config(&inside), &Params::default(), confine).unwrap();
        assert_eq!(out["database.password"], "in");
        let issues = resolve(&config(&outside), &Params::default(), confine).unwrap_err();
        assert_eq!(issues[0].key, "database.password");
        assert!(
            issues[0].message.contains("[files] allowed_paths"),
            "{}",
            issues[0].message
        );
        // Trusted configs (connectors.d/) are not confined.
        assert!(resolve(&config(&outside), &Params::default(), None).is_ok());
    }

    #[test]
    fn a_confined_config_reads_only_the_allowed_environment_variables() {
        let paths = Arc::new(AllowedPaths::none());
        let env = AllowedEnv::new(["HEADWATER_TEST_*"]);
        let confine = Some(Confine {
            paths: &paths,
            env: &env,
        });
        let config =
            |name: &str| BTreeMap::from([("topic".to_string(), format!("${{env:{name}}}"))]);
        // An allowed name is looked up (this one is not set).
        let issues =
            resolve(&config("HEADWATER_TEST_UNSET"), &Params::default(), confine).unwrap_err();
        assert!(
            issues[0].message.contains("is not set"),
            "{}",
            issues[0].message
        );
        // PATH is set, but not allowed: refused before it is read.
        let issues = resolve(&config("PATH"), &Params::default(), confine).unwrap_err();
        assert_eq!(issues[0].key, "topic");
        assert!(
            issues[0].message.contains("cannot resolve ${env:PATH}")
                && issues[0].message.contains("[providers] allowed_env"),
            "{}",
            issues[0].message
        );
        assert!(resolve(&config("PATH"), &Params::default(), None).is_ok());
    }
}
