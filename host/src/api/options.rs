//! Typed, documented access to a flat Kafka Connect config map.
//!
//! Every key a component reads is a [`ConfigKey`] constant carrying its documentation, type and
//! default, so the same text serves validation messages, `headwater validate` and (later) the
//! REST plugin description. Components *pull* their keys out of an [`Options`]; problems are
//! collected rather than returned one at a time, so a user sees every mistake in one pass, and
//! whatever nobody pulled is reported by name.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use super::allowed_paths::AllowedPaths;

/// The type of a config value, as Kafka Connect's `ConfigDef.Type` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Int,
    Long,
    Double,
    Boolean,
    List,
    Class,
    /// A secret: shown as `[hidden]` in validation output and logs.
    Password,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::Boolean => "BOOLEAN",
            Self::List => "LIST",
            Self::Class => "CLASS",
            Self::Password => "PASSWORD",
        }
    }
}

/// One documented configuration key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    pub name: &'static str,
    pub kind: KeyType,
    /// The value used when the key is absent. `None` with `required` means the user must set it.
    pub default: Option<&'static str>,
    pub required: bool,
    /// User documentation: a summary sentence, then details and units.
    pub doc: &'static str,
    /// For enumerated values: the accepted spellings (compared case-insensitively).
    pub allowed: &'static [&'static str],
}

impl ConfigKey {
    /// An optional key with no default.
    pub const fn new(name: &'static str, kind: KeyType, doc: &'static str) -> Self {
        Self {
            name,
            kind,
            default: None,
            required: false,
            doc,
            allowed: &[],
        }
    }

    pub const fn with_default(mut self, default: &'static str) -> Self {
        self.default = Some(default);
        self
    }

    pub const fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub const fn one_of(mut self, allowed: &'static [&'static str]) -> Self {
        self.allowed = allowed;
        self
    }
}

/// A value as error messages show it: quoted, or `[hidden]` for secrets.
fn shown(key: &ConfigKey, raw: &str) -> String {
    if key.kind == KeyType::Password {
        "[hidden]".to_owned()
    } else {
        format!("{raw:?}")
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A view of a config map (or of the keys under a prefix such as `transforms.mask.`) from which
/// components pull typed values.
#[derive(Debug)]
pub struct Options {
    prefix: String,
    map: BTreeMap<String, String>,
    used: BTreeSet<String>,
    issues: Vec<ConfigIssue>,
    /// Where the files this config names may be ([`Options::path`]); `None` for a trusted
    /// config (one in `connectors.d/`).
    confine: Option<Arc<AllowedPaths>>,
}

impl Options {
    pub fn new(map: BTreeMap<String, String>) -> Self {
        Self {
            prefix: String::new(),
            map,
            used: BTreeSet::new(),
            issues: Vec::new(),
            confine: None,
        }
    }

    /// Confines the files this config names to `paths` (a config from a REST caller).
    pub fn confine(&mut self, paths: Arc<AllowedPaths>) {
        self.confine = Some(paths);
    }

    /// The directories files must be in, for a component that opens more files later (the
    /// files a glob matches): `None` when the config is trusted.
    pub fn confinement(&self) -> Option<&Arc<AllowedPaths>> {
        self.confine.as_ref()
    }

    /// A file or directory path a component reads or writes: with a confined config, an
    /// issue (and `None`) when it is outside the allowed directories.
    pub fn path(&mut self, key: &ConfigKey) -> Option<PathBuf> {
        let raw = self.string(key)?;
        let path = PathBuf::from(raw.trim());
        if let Some(paths) = &self.confine
            && !raw.trim().is_empty()
            && let Err(e) = paths.check(&path)
        {
            self.issue(key.name, e);
            return None;
        }
        Some(path)
    }

    /// A glob pattern of files a component reads: with a confined config, an issue (and
    /// `None`) when it could match files outside the allowed directories.
    pub fn path_glob(&mut self, key: &ConfigKey) -> Option<String> {
        let pattern = self.string(key)?;
        if let Some(paths) = &self.confine
            && !pattern.trim().is_empty()
            && let Err(e) = paths.check_glob(pattern.trim())
        {
            self.issue(key.name, e);
            return None;
        }
        Some(pattern)
    }

    /// The keys under `prefix` (e.g. `transforms.mask.`), with the prefix stripped. Issues name
    /// the full key.
    pub fn scoped(&self, prefix: &str) -> Options {
        let map = self
            .map
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|rest| (rest.to_owned(), v.clone()))
            })
            .collect();
        Options {
            prefix: format!("{}{prefix}", self.prefix),
            map,
            used: BTreeSet::new(),
            issues: Vec::new(),
            confine: self.confine.clone(),
        }
    }

    /// Marks every key under `prefix` as used (they belong to a scoped view taken elsewhere).
    pub fn claim_prefix(&mut self, prefix: &str) {
        let keys: Vec<String> = self
            .map
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        self.used.extend(keys);
    }

    /// Takes every key under `prefix` (e.g. a plugin's `config.`), prefix stripped, and marks
    /// them used: for components that pass free-form keys on.
    pub fn take_under(&mut self, prefix: &str) -> Vec<(String, String)> {
        self.claim_prefix(prefix);
        self.map
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_owned(), v.clone())))
            .collect()
    }

    /// Merges a scoped view's issues back, so one report lists them all.
    pub fn absorb(&mut self, scoped: Options) {
        self.issues.extend(scoped.issues);
    }

    fn full_key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Records a problem with `key` (found by the component's own checks).
    pub fn issue(&mut self, key: &str, message: impl std::fmt::Display) {
        let key = self.full_key(key);
        self.issues.push(ConfigIssue {
            key,
            message: message.to_string(),
        });
    }

    pub fn issues(&self) -> &[ConfigIssue] {
        &self.issues
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The raw value of `key` (or its default), marking it used. Records an issue when a
    /// required key is missing or blank.
    pub fn string(&mut self, key: &ConfigKey) -> Option<String> {
        self.used.insert(key.name.to_owned());
        let value = self
            .map
            .get(key.name)
            .cloned()
            .or_else(|| key.default.map(str::to_owned));
        match value {
            Some(v) if key.required && v.trim().is_empty() => {
                self.issue(key.name, "must not be empty");
                None
            }
            Some(v) => {
                if !key.allowed.is_empty()
                    && !key.allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim()))
                {
                    let message = format!(
                        "expected one of {}, got {}",
                        key.allowed.join(", "),
                        shown(key, &v)
                    );
                    self.issue(key.name, message);
                    return None;
                }
                Some(v)
            }
            None if key.required => {
                self.issue(key.name, "missing required key, which has no default value");
                None
            }
            None => None,
        }
    }

    /// An enumerated value, lower-cased; `None` if absent (with no default) or not allowed.
    pub fn choice(&mut self, key: &ConfigKey) -> Option<String> {
        self.string(key).map(|v| v.trim().to_ascii_lowercase())
    }

    /// Parses the value with `FromStr`; `expected` describes the form in the error message.
    pub fn parse<T: FromStr>(&mut self, key: &ConfigKey, expected: &str) -> Option<T> {
        let raw = self.string(key)?;
        match raw.trim().parse::<T>() {
            Ok(v) => Some(v),
            Err(_) => {
                self.issue(
                    key.name,
                    format!("expected {expected}, got {}", shown(key, &raw)),
                );
                None
            }
        }
    }

    pub fn u64(&mut self, key: &ConfigKey) -> Option<u64> {
        self.parse(key, "a non-negative integer")
    }

    pub fn i64(&mut self, key: &ConfigKey) -> Option<i64> {
        self.parse(key, "an integer")
    }

    /// A strictly positive integer.
    pub fn positive(&mut self, key: &ConfigKey) -> Option<u64> {
        let raw = self.string(key)?;
        match raw.trim().parse::<u64>() {
            Ok(v) if v > 0 => Some(v),
            _ => {
                let message = format!("expected a positive integer, got {}", shown(key, &raw));
                self.issue(key.name, message);
                None
            }
        }
    }

    pub fn bool(&mut self, key: &ConfigKey) -> Option<bool> {
        let raw = self.string(key)?;
        match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => {
                let message = format!("expected true or false, got {}", shown(key, &raw));
                self.issue(key.name, message);
                None
            }
        }
    }

    /// A comma-separated list, entries trimmed, empty entries skipped.
    pub fn list(&mut self, key: &ConfigKey) -> Vec<String> {
        self.string(key).map(|v| split_list(&v)).unwrap_or_default()
    }

    /// A Java-style regular expression, compiled for a whole-string match.
    pub fn full_match_regex(&mut self, key: &ConfigKey) -> Option<regex::Regex> {
        let raw = self.string(key)?;
        match regex::Regex::new(&format!("^(?:{raw})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                self.issue(key.name, format!("invalid regular expression {raw:?}: {e}"));
                None
            }
        }
    }

    /// Keys present in the map that nobody pulled.
    pub fn leftovers(&self) -> Vec<String> {
        self.map
            .keys()
            .filter(|k| !self.used.contains(*k))
            .map(|k| self.full_key(k))
            .collect()
    }

    /// Ends pulling: the issues, if any, else the names of keys nobody read.
    pub fn finish(self) -> Result<Vec<String>, Vec<ConfigIssue>> {
        if self.issues.is_empty() {
            Ok(self.leftovers())
        } else {
            Err(self.issues)
        }
    }
}

/// Splits a Kafka Connect list value (`a, b,c`).
pub fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORT: ConfigKey = ConfigKey::new("port", KeyType::Int, "The port.").with_default("80");
    const NAME: ConfigKey = ConfigKey::new("name", KeyType::String, "The name.").required();
    const MODE: ConfigKey =
        ConfigKey::new("mode", KeyType::String, "The mode.").one_of(&["fast", "safe"]);

    fn options(pairs: &[(&str, &str)]) -> Options {
        Options::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn collects_every_issue_with_key_and_expectation() {
        let mut o = options(&[("port", "eighty"), ("mode", "slow"), ("extra", "1")]);
        assert_eq!(o.u64(&PORT), None);
        assert_eq!(o.string(&NAME), None);
        assert_eq!(o.choice(&MODE), None);
        let issues = o.finish().unwrap_err();
        let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                r#"port: expected a non-negative integer, got "eighty""#,
                "name: missing required key, which has no default value",
                r#"mode: expected one of fast, safe, got "slow""#,
            ]
        );
    }

    #[test]
    fn defaults_apply_and_leftovers_are_named() {
        let mut o = options(&[("transforms.a.field", "x"), ("other", "y")]);
        assert_eq!(o.u64(&PORT), Some(80));
        let mut scoped = o.scoped("transforms.a.");
        scoped.issue("field", "bad");
        o.claim_prefix("transforms.a.");
        o.absorb(scoped);
        assert_eq!(o.leftovers(), ["other"]);
        assert_eq!(o.issues()[0].key, "transforms.a.field");
    }
}
