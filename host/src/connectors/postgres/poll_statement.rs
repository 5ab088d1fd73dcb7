//! The statement a QuerySource range polls with: the query's rows past the cursor, inside the
//! time window and the range, in cursor order.
//!
//! It is written in two steps, because two of its parts depend on the column types, which are
//! known only once PostgreSQL has described the query:
//!
//! - the cursor values are read from the row's own columns when they are there already as a
//!   `bigint` and a `timestamp` (sending a column twice costs the server about a sixth of its
//!   time on a six-column row); otherwise they are selected after the row's columns;
//! - `timestamp.from` and `timestamp.until` are compared in the column's own type, so the
//!   server converts the bound once instead of every row's value (a `timestamp` against a
//!   `timestamptz` goes through the session's time zone rules per row).

use tokio_postgres::Column;
use tokio_postgres::types::Type;

use super::query_config::{Mode, QuerySourceConfig, Source as Rows, quote_identifier};
use super::row_json::RowJson;

/// The alias of the query's rows in the poll statement: unlike `t`, not a likely column name
/// (`row_to_json(t)` takes a column `t` over the row).
pub const ROW: &str = "hw_row";

/// The select list as error messages show it.
const COLUMNS_ELIDED: &str = "<the query's columns>";

/// A parameter of the poll statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arg {
    /// The last incrementing value (NULL at the start).
    Incrementing,
    /// The last timestamp in µs since the epoch (NULL at the start).
    Timestamp,
    /// `timestamp.delay.interval.ms`.
    Delay,
}

/// A cursor column: its name in the query's rows and the expression selecting it.
#[derive(Debug, Clone)]
struct CursorColumn {
    name: String,
    selected: String,
}

/// The poll statement of a range, but for what depends on the column types.
#[derive(Debug)]
pub struct PollStatement {
    /// `SELECT * FROM (<query>) hw_row`: describes the row's columns.
    pub describe: String,
    /// The parameters the statement takes, in order.
    pub args: Vec<Arg>,
    /// The incrementing column, when the mode has one.
    incrementing: Option<CursorColumn>,
    /// The timestamp column, when the mode or the time window has one.
    timestamp: Option<CursorColumn>,
    /// `FROM (<query>) hw_row`.
    from: String,
    /// The cursor conditions.
    conditions: Vec<String>,
    /// The range's condition as Spark writes it (the first range takes the NULLs), and without
    /// the NULLs for a column that has none: `c < end OR c IS NULL` keeps PostgreSQL from
    /// bounding its index scan, so the first range read the whole table.
    range: Option<(String, String)>,
    /// `timestamp.from` and `timestamp.until` as SQL literals.
    window: (Option<String>, Option<String>),
    /// ` ORDER BY ..` or nothing.
    order: String,
}

/// Where a row's cursor values are, by column index.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CursorAt {
    /// A `bigint`, or none when the mode has no incrementing column.
    pub incrementing: Option<usize>,
    /// A `timestamp`, a `timestamptz` or µs since the epoch as a `bigint`; none without a
    /// timestamp column.
    pub timestamp: Option<usize>,
}

/// The statement a range polls with, as written for the query's columns.
#[derive(Debug)]
pub struct Written {
    pub sql: String,
    /// The statement as an error message shows it: the row's columns elided.
    pub shown: String,
    pub cursor: CursorAt,
}

/// A SQL string literal (standard-conforming: quotes doubled).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `name` of the query's rows, as the poll statement refers to it.
fn column(name: Option<&str>) -> (String, String) {
    let name = name.unwrap_or_default().trim().trim_matches('"').to_owned();
    let selected = format!("{ROW}.\"{}\"", name.replace('"', "\"\""));
    (name, selected)
}

impl PollStatement {
    /// The poll statement of range `range` of `config`.
    pub fn new(config: &QuerySourceConfig, range: u32) -> Self {
        let base = match &config.source {
            Rows::Query(q) => q.clone(),
            Rows::Table(t) => format!("SELECT * FROM {}", quote_identifier(t)),
        };
        let (inc_name, inc) = column(config.incrementing.as_deref());
        let (ts_name, ts) = column(config.timestamp.as_deref());
        // Integer µs arithmetic, no floating point: equality on the last timestamp is exact.
        let since =
            |n: usize| format!("('epoch'::timestamptz + ${n}::bigint * interval '1 microsecond')");
        let before = |n: usize| format!("now() - ${n}::bigint * interval '1 millisecond'");
        let mut conditions = Vec::new();
        let (order, args) = match config.mode {
            Mode::Bulk => (String::new(), vec![]),
            Mode::Incrementing => {
                conditions.push(format!("$1::bigint IS NULL OR {inc} > $1"));
                (format!(" ORDER BY {inc}"), vec![Arg::Incrementing])
            }
            Mode::Timestamp => {
                conditions.push(format!(
                    "{ts} < {} AND ($1::bigint IS NULL OR {ts} > {})",
                    before(2),
                    since(1)
                ));
                (format!(" ORDER BY {ts}"), vec![Arg::Timestamp, Arg::Delay])
            }
            Mode::TimestampIncrementing => {
                conditions.push(format!(
                    "{ts} < {} AND ($1::bigint IS NULL OR {ts} > {} \
                     OR ({ts} = {} AND ($2::bigint IS NULL OR {inc} > $2)))",
                    before(3),
                    since(1),
                    since(1)
                ));
                (
                    format!(" ORDER BY {ts}, {inc}"),
                    vec![Arg::Timestamp, Arg::Incrementing, Arg::Delay],
                )
            }
        };
        let range = config
            .ranges
            .as_ref()
            .filter(|r| r.count > 1)
            .map(|ranges| {
                let column = column(Some(&ranges.column)).1;
                (
                    ranges.condition(&column, range, true),
                    ranges.condition(&column, range, false),
                )
            });
        let incrementing = config.mode.uses_incrementing().then_some(CursorColumn {
            name: inc_name,
            selected: inc,
        });
        let timestamp =
            (config.mode.uses_timestamp() || config.timestamp.is_some()).then_some(CursorColumn {
                name: ts_name,
                selected: ts,
            });
        Self {
            describe: format!("SELECT * FROM ({base}) {ROW}"),
            args,
            incrementing,
            timestamp,
            from: format!("FROM ({base}) {ROW}"),
            conditions,
            range,
            window: (
                config.timestamp_from.as_deref().map(literal),
                config.timestamp_until.as_deref().map(literal),
            ),
            order,
        }
    }

    /// The statement reading rows described as `described` through `row`, and where each
    /// row's cursor values are; `not_null`: the partition column holds no NULL.
    pub fn sql(&self, row: &RowJson, described: &[Column], not_null: bool) -> Written {
        // A column of the row read as it is (not rendered by PostgreSQL): its index.
        let in_row = |name: &str, types: &[Type]| {
            row.reads_columns()
                .then(|| {
                    described
                        .iter()
                        .position(|c| c.name() == name && types.contains(c.type_()))
                })
                .flatten()
        };
        let type_of = |name: &str| {
            described
                .iter()
                .find(|c| c.name() == name)
                .map(|c| c.type_().clone())
        };
        let mut select = vec![row.select_list(ROW)];
        let mut width = row.width();
        let mut append = |expression: String| {
            select.push(expression);
            width += 1;
            width - 1
        };
        let incrementing = self.incrementing.as_ref().map(|c| {
            in_row(&c.name, &[Type::INT8])
                .unwrap_or_else(|| append(format!("({})::bigint", c.selected)))
        });
        let timestamps = [Type::TIMESTAMP, Type::TIMESTAMPTZ];
        let timestamp = self.timestamp.as_ref().map(|c| {
            in_row(&c.name, &timestamps).unwrap_or_else(|| {
                match type_of(&c.name).is_some_and(|t| timestamps.contains(&t)) {
                    true => append(c.selected.clone()),
                    // `extract` returns a `numeric`, which costs the server per row: only for
                    // a column that is not sent as a timestamp.
                    false => append(format!(
                        "(extract(epoch from {}) * 1000000)::bigint",
                        c.selected
                    )),
                }
            })
        });
        let ts_type = self.timestamp.as_ref().and_then(|c| type_of(&c.name));
        Written {
            sql: self.render(&select.join(", "), ts_type.as_ref(), not_null),
            shown: self.render(COLUMNS_ELIDED, ts_type.as_ref(), not_null),
            cursor: CursorAt {
                incrementing,
                timestamp,
            },
        }
    }

    /// The statement with `columns` for the select list, the time window compared in
    /// `ts_type` when it is known.
    fn render(&self, columns: &str, ts_type: Option<&Type>, not_null: bool) -> String {
        let mut conditions = self.conditions.clone();
        if let Some((with_nulls, without)) = &self.range {
            conditions.push(if not_null { without } else { with_nulls }.clone());
        }
        if let Some(ts) = &self.timestamp {
            // The bounds are read as `timestamptz` (an offset in them counts) in the session's
            // time zone, UTC; for a column without a time zone, that instant's UTC time.
            let bound = |lit: &str| match ts_type {
                Some(&Type::TIMESTAMP | &Type::DATE) => {
                    format!("({lit}::timestamptz AT TIME ZONE 'UTC')")
                }
                _ => format!("{lit}::timestamptz"),
            };
            if let Some(from) = &self.window.0 {
                conditions.push(format!("{} >= {}", ts.selected, bound(from)));
            }
            if let Some(until) = &self.window.1 {
                conditions.push(format!("{} < {}", ts.selected, bound(until)));
            }
        }
        let filter = match conditions.is_empty() {
            true => String::new(),
            false => format!(
                " WHERE {}",
                conditions
                    .iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
        };
        format!("SELECT {columns} {}{filter}{}", self.from, self.order)
    }

    /// The statement as an error message shows it before the query's columns are known.
    pub fn shown(&self) -> String {
        self.render(COLUMNS_ELIDED, None, false)
    }
}
