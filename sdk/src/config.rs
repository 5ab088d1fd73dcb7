//! Plugin parameters: declared with [`Param`], received as a [`Config`] in `init`.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// The type of a parameter's value (checked before the plugin sees it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Float,
    Boolean,
    /// Comma-separated values.
    List,
}

impl ParamType {
    fn accepts(self, value: &str) -> bool {
        match self {
            Self::String | Self::List => true,
            Self::Integer => value.trim().parse::<i64>().is_ok(),
            Self::Float => value.trim().parse::<f64>().is_ok_and(f64::is_finite),
            Self::Boolean => matches!(value.trim(), "true" | "false"),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Float => "a finite number",
            Self::Boolean => "true or false",
            Self::List => "a comma-separated list",
        }
    }
}

/// A parameter the plugin accepts, shown by `headwater plugin inspect` and checked by the SDK
/// before `init` runs. Set in a connector as `transforms.<alias>.config.<name>`.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamType,
    pub description: &'static str,
    /// `None` makes the parameter required.
    pub default: Option<&'static str>,
}

impl Param {
    /// A required parameter.
    pub const fn required(name: &'static str, kind: ParamType, description: &'static str) -> Self {
        Self {
            name,
            kind,
            description,
            default: None,
        }
    }

    /// An optional parameter with a default value.
    pub const fn optional(
        name: &'static str,
        kind: ParamType,
        default: &'static str,
        description: &'static str,
    ) -> Self {
        Self {
            name,
            kind,
            description,
            default: Some(default),
        }
    }
}

/// Parameters a plugin can declare by prefix rather than one by one, such as the rules of the
/// expectations plugin (`expect.<column>.not_null`).
pub const ANY_UNDER: &str = ".*";

/// The configuration a plugin received, checked against its declared parameters: every
/// required one is present, every value has its declared type, defaults are filled in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// Checks raw `(key, value)` pairs against `params`. All problems are reported at once,
    /// each naming the key and what was expected. A param whose name ends in `.*` accepts
    /// every key under its prefix.
    pub fn parse(params: &[Param], raw: Vec<(String, String)>) -> Result<Self> {
        let mut problems = Vec::new();
        let mut values = BTreeMap::new();
        let mut seen = Vec::new();
        for (key, value) in raw {
            seen.push(key.clone());
            let declared = params
                .iter()
                .find(|p| match p.name.strip_suffix(ANY_UNDER) {
                    Some(prefix) => key.starts_with(prefix) && key.len() > prefix.len() + 1,
                    None => p.name == key,
                });
            match declared {
                None => {
                    let known: Vec<_> = params.iter().map(|p| p.name).collect();
                    problems.push(format!(
                        "unknown parameter `{key}`; known parameters: {}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                Some(p) if !p.kind.accepts(&value) => problems.push(format!(
                    "parameter `{key}` must be {}, got {value:?}",
                    p.kind.expected()
                )),
                Some(_) => {
                    values.insert(key, value);
                }
            }
        }
        for p in params.iter().filter(|p| !p.name.ends_with(ANY_UNDER)) {
            if seen.iter().any(|k| k == p.name) {
                continue;
            }
            match p.default {
                Some(d) => {
                    values.insert(p.name.to_owned(), d.to_owned());
                }
                None => problems.push(format!(
                    "parameter `{}` is required: {}",
                    p.name, p.description
                )),
            }
        }
        if problems.is_empty() {
            Ok(Self { values })
        } else {
            Err(Error::new(problems.join("; ")))
        }
    }

    /// A configuration from literal pairs, unchecked: for unit tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        }
    }

    /// A parameter's text (its default when not set).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// A string parameter; empty when absent.
    pub fn string(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// A float parameter (checked by [`Config::parse`]).
    pub fn float(&self, name: &str) -> Result<f64> {
        self.typed(name)
    }

    /// An integer parameter.
    pub fn integer(&self, name: &str) -> Result<i64> {
        self.typed(name)
    }

    /// A boolean parameter.
    pub fn boolean(&self, name: &str) -> Result<bool> {
        self.typed(name)
    }

    /// A list parameter: comma-separated, trimmed, empty items skipped.
    pub fn list(&self, name: &str) -> Vec<&str> {
        self.string(name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Every `(key, value)` whose key starts with `prefix`, prefix removed.
    pub fn under<'c>(&'c self, prefix: &'c str) -> impl Iterator<Item = (&'c str, &'c str)> + 'c {
        self.values
            .iter()
            .filter_map(move |(k, v)| Some((k.strip_prefix(prefix)?, v.as_str())))
    }

    fn typed<T: std::str::FromStr>(&self, name: &str) -> Result<T> {
        let text = self
            .get(name)
            .ok_or_else(|| Error::new(format!("parameter `{name}` is not set")))?;
        text.trim()
            .parse()
            .map_err(|_| Error::new(format!("parameter `{name}` has an invalid value {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[Param] = &[
        Param::required("rate", ParamType::Float, "exchange rate"),
        Param::optional("field", ParamType::String, "amount", "field to read"),
        Param::optional("rule.*", ParamType::String, "", "rules"),
    ];

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_fill_in_and_prefixes_match() {
        let cfg = Config::parse(PARAMS, pairs(&[("rate", "1.5"), ("rule.a", "x")])).unwrap();
        assert_eq!(cfg.float("rate"), Ok(1.5));
        assert_eq!(cfg.string("field"), "amount");
        assert_eq!(cfg.under("rule.").collect::<Vec<_>>(), vec![("a", "x")]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Config::parse(PARAMS, pairs(&[("rate", "fast"), ("colour", "red")])).unwrap_err();
        assert_eq!(
            err.message(),
            "parameter `rate` must be a finite number, got \"fast\"; unknown parameter `colour`; \
             known parameters: rate, field, rule.*"
        );
    }
}
