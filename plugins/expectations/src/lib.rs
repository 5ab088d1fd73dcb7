//! Great Expectations-style data-quality checks, configured in the connector:
//!
//! ```text
//! transforms.quality.type=headwater.wasm.Check
//! transforms.quality.module=plugins/target/wasm32-wasip2/release/expectations.wasm
//! transforms.quality.config.expect.amount.not_null=true
//! transforms.quality.config.expect.amount.min=0
//! transforms.quality.config.expect.amount.max=10000
//! transforms.quality.config.expect.amount.strict_min=true
//! transforms.quality.config.expect.currency.in_set=USD,EUR,GBP
//! transforms.quality.config.expect.user_id.regex=^u[0-9]{4}$
//! transforms.quality.config.expect.user_id.length_min=5
//! transforms.quality.config.expect.transaction_id.unique=true
//! transforms.quality.config.expect.amount.mostly=0.99
//! transforms.quality.config.expect.currency.severity=warning
//! ```
//!
//! | key                         | Great Expectations                                   |
//! |-----------------------------|------------------------------------------------------|
//! | `not_null`                  | `expect_column_values_to_not_be_null`                |
//! | `min`, `max`, `strict_*`    | `expect_column_values_to_be_between`                 |
//! | `in_set`                    | `expect_column_values_to_be_in_set`                  |
//! | `regex`                     | `expect_column_values_to_match_regex` (search)       |
//! | `length_min`, `length_max`  | `expect_column_value_lengths_to_be_between`          |
//! | `unique`                    | `expect_column_values_to_be_unique` (within a batch; every repeat is flagged) |
//!
//! As in Great Expectations, only `not_null` looks at null or missing values; the others skip
//! them. `mostly` (per column, default 1) is evaluated per batch: when at least that fraction
//! of the evaluated values pass, the expectation holds and no record is flagged. Statistics
//! are exported per column and expectation: `headwater_plugin_expectation_evaluated_total`,
//! `..._unexpected_total` and the last batch's `..._unexpected_percent`.

use std::collections::{BTreeMap, HashMap};

use headwater_sdk::prelude::*;
use regex::Regex;

const PARAMS: &[Param] = &[Param::optional(
    "expect.*",
    ParamType::String,
    "",
    "`expect.<column>.<rule>`: not_null, min, max, strict_min, strict_max, in_set, regex, \
     length_min, length_max, unique, mostly, severity.",
)];

const RULES: &[&str] = &[
    "not_null",
    "min",
    "max",
    "strict_min",
    "strict_max",
    "in_set",
    "regex",
    "length_min",
    "length_max",
    "unique",
    "mostly",
    "severity",
];

/// One expectation on one column.
#[derive(Debug)]
enum Expectation {
    NotNull,
    Between {
        min: Option<f64>,
        max: Option<f64>,
        strict_min: bool,
        strict_max: bool,
    },
    InSet(Vec<String>),
    Regex(Regex),
    Length {
        min: Option<usize>,
        max: Option<usize>,
    },
    Unique,
}

impl Expectation {
    fn name(&self) -> &'static str {
        match self {
            Self::NotNull => "not_null",
            Self::Between { .. } => "between",
            Self::InSet(_) => "in_set",
            Self::Regex(_) => "regex",
            Self::Length { .. } => "length",
            Self::Unique => "unique",
        }
    }
}

#[derive(Debug)]
struct Column {
    path: String,
    expectations: Vec<Expectation>,
    mostly: f64,
    severity: Severity,
}

fn parse_bool(column: &str, rule: &str, v: &str) -> Result<bool> {
    match v.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::new(format!(
            "expect.{column}.{rule} must be true or false, got {v:?}"
        ))),
    }
}

fn parse_num<T: std::str::FromStr>(column: &str, rule: &str, v: &str) -> Result<T> {
    v.trim().parse().map_err(|_| {
        Error::new(format!(
            "expect.{column}.{rule} must be a number, got {v:?}"
        ))
    })
}

fn columns(config: Config) -> Result<Vec<Column>> {
    let mut grouped: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in config.under("expect.") {
        let Some((column, rule)) = key.rsplit_once('.') else {
            return Err(Error::new(format!(
                "expect.{key}: expected expect.<column>.<rule>"
            )));
        };
        if !RULES.contains(&rule) {
            return Err(Error::new(format!(
                "expect.{key}: unknown rule `{rule}`; known rules: {}",
                RULES.join(", ")
            )));
        }
        grouped
            .entry(column.to_owned())
            .or_default()
            .insert(rule.to_owned(), value.to_owned());
    }
    if grouped.is_empty() {
        return Err(Error::new(
            "no expectations configured: add config.expect.<column>.<rule> keys",
        ));
    }
    grouped
        .into_iter()
        .map(|(path, rules)| {
            let get = |r: &str| rules.get(r).map(String::as_str);
            let mut expectations = Vec::new();
            if get("not_null")
                .map(|v| parse_bool(&path, "not_null", v))
                .transpose()?
                == Some(true)
            {
                expectations.push(Expectation::NotNull);
            }
            let min = get("min").map(|v| parse_num(&path, "min", v)).transpose()?;
            let max = get("max").map(|v| parse_num(&path, "max", v)).transpose()?;
            if min.is_some() || max.is_some() {
                expectations.push(Expectation::Between {
                    min,
                    max,
                    strict_min: get("strict_min")
                        .map(|v| parse_bool(&path, "strict_min", v))
                        .transpose()?
                        .unwrap_or(false),
                    strict_max: get("strict_max")
                        .map(|v| parse_bool(&path, "strict_max", v))
                        .transpose()?
                        .unwrap_or(false),
                });
            }
            if let Some(set) = get("in_set") {
                expectations.push(Expectation::InSet(
                    set.split(',').map(|s| s.trim().to_owned()).collect(),
                ));
            }
            if let Some(pattern) = get("regex") {
                let re = Regex::new(pattern).map_err(|e| {
                    Error::new(format!("expect.{path}.regex is not a valid regex: {e}"))
                })?;
                expectations.push(Expectation::Regex(re));
            }
            let lmin = get("length_min")
                .map(|v| parse_num(&path, "length_min", v))
                .transpose()?;
            let lmax = get("length_max")
                .map(|v| parse_num(&path, "length_max", v))
                .transpose()?;
            if lmin.is_some() || lmax.is_some() {
                expectations.push(Expectation::Length {
                    min: lmin,
                    max: lmax,
                });
            }
            if get("unique")
                .map(|v| parse_bool(&path, "unique", v))
                .transpose()?
                == Some(true)
            {
                expectations.push(Expectation::Unique);
            }
            let mostly: f64 = get("mostly")
                .map(|v| parse_num(&path, "mostly", v))
                .transpose()?
                .unwrap_or(1.0);
            if !(0.0..=1.0).contains(&mostly) {
                return Err(Error::new(format!(
                    "expect.{path}.mostly must be between 0 and 1, got {mostly}"
                )));
            }
            let severity = match get("severity") {
                None => Severity::Error,
                Some(s) => Severity::parse(s).ok_or_else(|| {
                    Error::new(format!(
                        "expect.{path}.severity must be info, warning or error, got {s:?}"
                    ))
                })?,
            };
            if expectations.is_empty() {
                return Err(Error::new(format!("expect.{path}.* sets no expectation")));
            }
            Ok(Column {
                path,
                expectations,
                mostly,
                severity,
            })
        })
        .collect()
}

/// A value's text for set, regex and length rules: strings as they are, others as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Why `value` fails `e`, or `None` when it passes. `counts` holds how often each value of the
/// column occurs in the batch, for `unique`.
fn unexpected(e: &Expectation, value: &Value, counts: &HashMap<String, u32>) -> Option<String> {
    match e {
        Expectation::NotNull => None, // handled by the caller: it is the one rule that sees nulls
        Expectation::Between {
            min,
            max,
            strict_min,
            strict_max,
        } => {
            let Some(n) = as_number(value) else {
                return Some(format!("{value} is not a number"));
            };
            let low = min.is_some_and(|m| if *strict_min { n <= m } else { n < m });
            let high = max.is_some_and(|m| if *strict_max { n >= m } else { n > m });
            (low || high).then(|| {
                let lo = min.map_or("-inf".into(), |m| format!("{m}"));
                let hi = max.map_or("inf".into(), |m| format!("{m}"));
                let (l, r) = (
                    if *strict_min { "(" } else { "[" },
                    if *strict_max { ")" } else { "]" },
                );
                format!("{n} is outside {l}{lo}, {hi}{r}")
            })
        }
        Expectation::InSet(set) => {
            let t = text(value);
            (!set.contains(&t)).then(|| format!("{t:?} is not one of {}", set.join(", ")))
        }
        Expectation::Regex(re) => {
            let t = text(value);
            (!re.is_match(&t)).then(|| format!("{t:?} does not match /{}/", re.as_str()))
        }
        Expectation::Length { min, max } => {
            let len = text(value).chars().count();
            (min.is_some_and(|m| len < m) || max.is_some_and(|m| len > m)).then(|| {
                format!(
                    "length {len} is outside [{}, {}]",
                    min.map_or("0".into(), |m| m.to_string()),
                    max.map_or("inf".into(), |m| m.to_string())
                )
            })
        }
        // As in Great Expectations, every occurrence of a repeated value is unexpected.
        Expectation::Unique => {
            let count = counts.get(&text(value)).copied().unwrap_or(0);
            (count > 1).then(|| format!("{value} appears {count} times in the batch"))
        }
    }
}

#[check(params = PARAMS, init = columns)]
fn expectations(records: &[Record], columns: &Vec<Column>) -> Result<Vec<(u32, Violation)>> {
    let mut violations = Vec::new();
    for column in columns {
        for e in &column.expectations {
            let mut evaluated = 0u64;
            let mut failures: Vec<(u32, String)> = Vec::new();
            let mut counts: HashMap<String, u32> = HashMap::new();
            if matches!(e, Expectation::Unique) {
                for v in records
                    .iter()
                    .filter_map(|r| r.get(&column.path))
                    .filter(|v| !v.is_null())
                {
                    *counts.entry(text(v)).or_default() += 1;
                }
            }
            for rec in records {
                let value = rec.get(&column.path).filter(|v| !v.is_null());
                match (e, value) {
                    (Expectation::NotNull, v) => {
                        evaluated += 1;
                        if v.is_none() {
                            failures.push((
                                rec.index(),
                                format!("`{}` is null or missing", column.path),
                            ));
                        }
                    }
                    (_, None) => {}
                    (e, Some(v)) => {
                        evaluated += 1;
                        if let Some(why) = unexpected(e, v, &counts) {
                            failures.push((rec.index(), format!("`{}`: {why}", column.path)));
                        }
                    }
                }
            }
            let labels = [("column", column.path.as_str()), ("expectation", e.name())];
            let unexpected_count = failures.len() as f64;
            metrics::counter("expectation_evaluated", evaluated as f64, &labels);
            metrics::counter("expectation_unexpected", unexpected_count, &labels);
            if evaluated > 0 {
                let percent = 100.0 * unexpected_count / evaluated as f64;
                metrics::gauge("expectation_unexpected_percent", percent, &labels);
                if 1.0 - percent / 100.0 >= column.mostly {
                    continue; // holds within `mostly`
                }
            }
            let rule = format!("{}.{}", column.path, e.name());
            violations.extend(failures.into_iter().map(|(index, message)| {
                (
                    index,
                    Violation::new(column.severity, rule.clone(), message),
                )
            }));
        }
    }
    violations.sort_by_key(|(i, _)| *i);
    Ok(violations)
}
