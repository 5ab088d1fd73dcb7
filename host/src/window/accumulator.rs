//! Aggregate functions over a window's records, kept as small serializable accumulators.

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::distinct::DistinctValues;

/// An aggregate function of `aggregates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Count,
    CountDistinct,
    ApproxCountDistinct,
    Sum,
    Avg,
    Min,
    Max,
    First,
    Last,
}

impl Function {
    pub const NAMES: &'static str =
        "count, count_distinct, approx_count_distinct, sum, avg, min, max, first, last";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "count" => Self::Count,
            "count_distinct" => Self::CountDistinct,
            "approx_count_distinct" => Self::ApproxCountDistinct,
            "sum" => Self::Sum,
            "avg" => Self::Avg,
            "min" => Self::Min,
            "max" => Self::Max,
            "first" => Self::First,
            "last" => Self::Last,
            _ => return None,
        })
    }

    /// Fails like adding `value` would (a non-number to `sum`), changing nothing.
    pub fn check(self, value: Option<&Value>) -> Result<(), NotANumber> {
        match value {
            Some(v) if self.numeric() && !v.is_null() => number(v).map(drop),
            _ => Ok(()),
        }
    }

    /// Whether the function reads a field (all but `count`).
    pub fn needs_field(self) -> bool {
        self != Self::Count
    }

    fn numeric(self) -> bool {
        matches!(self, Self::Sum | Self::Avg | Self::Min | Self::Max)
    }

    pub fn start(self) -> Accumulator {
        match self {
            Self::Count => Accumulator::Count(0),
            Self::CountDistinct => Accumulator::Distinct(DistinctValues::default()),
            Self::ApproxCountDistinct => Accumulator::Approx(Hll::default()),
            Self::Sum => Accumulator::Sum {
                total: 0.0,
                integral: true,
            },
            Self::Avg => Accumulator::Avg { sum: 0.0, n: 0 },
            Self::Min => Accumulator::Min {
                value: None,
                integral: true,
            },
            Self::Max => Accumulator::Max {
                value: None,
                integral: true,
            },
            Self::First => Accumulator::First(None),
            Self::Last => Accumulator::Last(None),
        }
    }
}

/// The running state of one aggregate in one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Accumulator {
    Count(u64),
    /// Exact distinct values, as their JSON text (see [`DistinctValues`]).
    Distinct(DistinctValues),
    Approx(Hll),
    /// `integral` while every input was an integer: the result stays an integer, so a column
    /// keeps one type (Parquet) whatever the values.
    Sum {
        total: f64,
        integral: bool,
    },
    Avg {
        sum: f64,
        n: u64,
    },
    Min {
        value: Option<f64>,
        integral: bool,
    },
    Max {
        value: Option<f64>,
        integral: bool,
    },
    /// (event time, value as JSON text) of the earliest / latest record.
    First(Option<(i64, String)>),
    Last(Option<(i64, String)>),
}

/// A numeric aggregate's input: a JSON number, or text holding one.
/// A value a numeric aggregate cannot take: it needs a number (or a numeric string).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("expected a number, got {0}")]
pub struct NotANumber(pub Value);

fn number(v: &Value) -> Result<f64, NotANumber> {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| NotANumber(v.clone()))
}

/// A value as the text distinct counts compare: strings as they are, the rest as JSON.
fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

impl Accumulator {
    /// Adds one record's value (`None` for `count`, which counts records). Nulls and missing
    /// values are skipped, as SQL aggregates skip NULL.
    pub fn add(
        &mut self,
        function: Function,
        value: Option<&Value>,
        time: i64,
    ) -> Result<(), NotANumber> {
        if function.needs_field() && value.is_none_or(Value::is_null) {
            return Ok(());
        }
        let x = match value {
            Some(v) if function.numeric() => number(v)?,
            _ => 0.0,
        };
        let whole = value.is_some_and(|v| v.is_i64() || v.is_u64());
        match self {
            Self::Count(n) => *n += 1,
            Self::Distinct(values) => values.insert(&text(value.unwrap_or(&Value::Null))),
            Self::Approx(hll) => hll.add(text(value.unwrap_or(&Value::Null)).as_bytes()),
            Self::Sum { total, integral } => {
                *total += x;
                *integral &= whole;
            }
            Self::Avg { sum, n } => {
                *sum += x;
                *n += 1;
            }
            Self::Min { value, integral } => {
                *value = Some(value.map_or(x, |m| m.min(x)));
                *integral &= whole;
            }
            Self::Max { value, integral } => {
                *value = Some(value.map_or(x, |m| m.max(x)));
                *integral &= whole;
            }
            Self::First(f) => {
                if f.as_ref().is_none_or(|(t, _)| time < *t) {
                    *f = Some((time, value.map(Value::to_string).unwrap_or_default()));
                }
            }
            Self::Last(l) => {
                if l.as_ref().is_none_or(|(t, _)| time >= *t) {
                    *l = Some((time, value.map(Value::to_string).unwrap_or_default()));
                }
            }
        }
        Ok(())
    }

    /// Folds `other` (the same function's accumulator) into this one: sessions that a record
    /// bridges become one.
    pub fn merge(&mut self, other: Accumulator) {
        match (self, other) {
            (Self::Count(a), Self::Count(b)) => *a += b,
            (Self::Distinct(a), Self::Distinct(b)) => a.extend(&b),
            (Self::Approx(a), Self::Approx(b)) => a.merge(b),
            (
                Self::Sum { total, integral },
                Self::Sum {
                    total: t,
                    integral: i,
                },
            ) => {
                *total += t;
                *integral &= i;
            }
            (Self::Avg { sum, n }, Self::Avg { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (
                Self::Min { value, integral },
                Self::Min {
                    value: v,
                    integral: i,
                },
            ) => {
                *value = match (*value, v) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                *integral &= i;
            }
            (
                Self::Max { value, integral },
                Self::Max {
                    value: v,
                    integral: i,
                },
            ) => {
                *value = match (*value, v) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    (a, b) => a.or(b),
                };
                *integral &= i;
            }
            (Self::First(a), Self::First(b))
                if b.as_ref()
                    .is_some_and(|(t, _)| a.as_ref().is_none_or(|(u, _)| t < u)) =>
            {
                *a = b;
            }
            (Self::Last(a), Self::Last(b))
                if b.as_ref()
                    .is_some_and(|(t, _)| a.as_ref().is_none_or(|(u, _)| t >= u)) =>
            {
                *a = b;
            }
            // Accumulators of one feature always share a function; an earlier first (or a
            // later last) already in place stays.
            _ => {}
        }
    }

    /// The aggregate's value for the output record.
    pub fn result(&self) -> Value {
        match self {
            Self::Count(n) => Value::from(*n),
            Self::Distinct(set) => Value::from(set.len()),
            Self::Approx(hll) => Value::from(hll.estimate()),
            Self::Sum { total, integral } => result_number(*total, *integral),
            Self::Avg { sum, n } if *n > 0 => result_number(sum / *n as f64, false),
            Self::Avg { .. } => Value::Null,
            Self::Min { value, integral } | Self::Max { value, integral } => {
                value.map_or(Value::Null, |v| result_number(v, *integral))
            }
            Self::First(v) | Self::Last(v) => v
                .as_ref()
                .and_then(|(_, json)| serde_json::from_str(json).ok())
                .unwrap_or(Value::Null),
        }
    }
}

/// A result as a JSON integer when its inputs were integers, else as a float.
fn result_number(x: f64, integral: bool) -> Value {
    if integral && x.fract() == 0.0 && x.abs() < 9.0e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// Registers of the dense HyperLogLog: 2^11 (standard error about 2.3%).
const PRECISION: u32 = 11;
const REGISTERS: usize = 1 << PRECISION;
/// Below this many distinct hashes, they are kept exactly (a window of a few users costs bytes,
/// not 2 KiB).
const SPARSE_LIMIT: usize = 256;

/// HyperLogLog (Flajolet et al.) with an exact sparse phase; hashes are xxh3, stable across
/// releases and restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Hll {
    Sparse(BTreeSet<u64>),
    Dense(Vec<u8>),
}

impl Default for Hll {
    fn default() -> Self {
        Self::Sparse(BTreeSet::new())
    }
}

impl Hll {
    pub fn add(&mut self, item: &[u8]) {
        self.add_hash(xxhash_rust::xxh3::xxh3_64(item));
    }

    fn add_hash(&mut self, hash: u64) {
        match self {
            Self::Sparse(set) => {
                set.insert(hash);
                if set.len() > SPARSE_LIMIT {
                    let mut registers = vec![0u8; REGISTERS];
                    for h in set.iter() {
                        Self::set(&mut registers, *h);
                    }
                    *self = Self::Dense(registers);
                }
            }
            Self::Dense(registers) => Self::set(registers, hash),
        }
    }

    /// The union of two sketches.
    pub fn merge(&mut self, other: Hll) {
        match other {
            Self::Sparse(hashes) => {
                for h in hashes {
                    self.add_hash(h);
                }
            }
            Self::Dense(theirs) => {
                let mut mine = match std::mem::take(self) {
                    Self::Dense(r) => r,
                    Self::Sparse(set) => {
                        let mut r = vec![0u8; REGISTERS];
                        for h in set {
                            Self::set(&mut r, h);
                        }
                        r
                    }
                };
                for (m, t) in mine.iter_mut().zip(theirs) {
                    *m = (*m).max(t);
                }
                *self = Self::Dense(mine);
            }
        }
    }

    fn set(registers: &mut [u8], hash: u64) {
        let index = (hash >> (64 - PRECISION)) as usize;
        let rest = hash << PRECISION;
        let rank = (rest.leading_zeros() + 1).min(64 - PRECISION + 1) as u8;
        if registers[index] < rank {
            registers[index] = rank;
        }
    }

    pub fn estimate(&self) -> u64 {
        let registers = match self {
            Self::Sparse(set) => return set.len() as u64,
            Self::Dense(r) => r,
        };
        let m = REGISTERS as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = registers.iter().map(|&r| 2f64.powi(-(r as i32))).sum();
        let raw = alpha * m * m / sum;
        let zeros = registers.iter().filter(|&&r| r == 0).count();
        let estimate = if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln() // linear counting for small cardinalities
        } else {
            raw
        };
        estimate.round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aggregates_skip_nulls_and_keep_integers_whole() {
        let mut sum = Function::Sum.start();
        let mut avg = Function::Avg.start();
        let mut last = Function::Last.start();
        for (i, v) in [json!(2), json!(null), json!("3"), json!(5)]
            .iter()
            .enumerate()
        {
            sum.add(Function::Sum, Some(v), i as i64).unwrap();
            avg.add(Function::Avg, Some(v), i as i64).unwrap();
            last.add(Function::Last, Some(v), 10 - i as i64).unwrap();
        }
        assert_eq!(sum.result(), json!(10.0), "\"3\" is not an integer input");
        let mut ints = Function::Sum.start();
        ints.add(Function::Sum, Some(&json!(4)), 0).unwrap();
        assert_eq!(ints.result(), json!(4));
        let mut floats = Function::Max.start();
        floats.add(Function::Max, Some(&json!(2.0)), 0).unwrap();
        assert_eq!(floats.result(), json!(2.0));
        assert!((avg.result().as_f64().unwrap() - 10.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            last.result(),
            json!(2),
            "latest event time wins, not arrival"
        );
        let err = sum.add(Function::Sum, Some(&json!("x")), 0).unwrap_err();
        assert_eq!(err.to_string(), "expected a number, got \"x\"");
    }

    #[test]
    fn hyperloglog_is_exact_when_small_and_close_when_large() {
        let mut hll = Hll::default();
        for i in 0..200 {
            hll.add(format!("user-{}", i % 100).as_bytes());
        }
        assert_eq!(hll.estimate(), 100);
        for i in 0..100_000 {
            hll.add(format!("page-{i}").as_bytes());
        }
        let e = hll.estimate() as f64;
        assert!((e - 100_100.0).abs() / 100_100.0 < 0.05, "estimate {e}");
    }
    #[test]
    fn distinct_values_read_back_from_checkpoints_of_the_set_they_were() {
        let mut acc = Function::CountDistinct.start();
        for page in ["/b", "/a", "/b", "/c"] {
            acc.add(Function::CountDistinct, Some(&json!(page)), 0)
                .unwrap();
        }
        assert_eq!(acc.result(), json!(3));
        // Earlier releases kept a BTreeSet: the same bytes in the store.
        #[derive(Serialize)]
        enum Before {
            _Count(u64),
            Distinct(std::collections::BTreeSet<String>),
        }
        let set = ["/a", "/b", "/c"].map(String::from).into();
        let stored = postcard::to_allocvec(&Before::Distinct(set)).unwrap();
        assert_eq!(postcard::to_allocvec(&acc).unwrap(), stored);
        let read: Accumulator = postcard::from_bytes(&stored).unwrap();
        assert_eq!(read, acc);
        let mut other = Function::CountDistinct.start();
        other
            .add(Function::CountDistinct, Some(&json!("/d")), 0)
            .unwrap();
        other
            .add(Function::CountDistinct, Some(&json!("/a")), 0)
            .unwrap();
        acc.merge(other);
        assert_eq!(acc.result(), json!(4));
    }
}
