//! `headwater.postgres.QuerySource` configuration, with Confluent's JDBC source key names.

use std::time::Duration;

use super::client::{Connection, Tls, connection_string};
use crate::api::options::{ConfigKey, KeyType, Options};

const CONNECTION_URL: ConfigKey = ConfigKey::new(
    "connection.url",
    KeyType::Password,
    "The database: `jdbc:postgresql://host:port/db` (as for Confluent's JDBC source) or \
     `postgresql://user:password@host:port/db`.",
)
.required();

const CONNECTION_USER: ConfigKey = ConfigKey::new(
    "connection.user",
    KeyType::String,
    "Database user (unless the URL names one).",
);

const CONNECTION_PASSWORD: ConfigKey = ConfigKey::new(
    "connection.password",
    KeyType::Password,
    "Database password (use `${env:..}` or `${file:..}`).",
);

const MODE: ConfigKey = ConfigKey::new(
    "mode",
    KeyType::String,
    "How new rows are found: `bulk` (the whole result every poll), `incrementing` (a strictly \
     increasing column), `timestamp` (a modification time column), `timestamp+incrementing` \
     (both: no row lost when several share a timestamp).",
)
.required()
.one_of(&[
    "bulk",
    "incrementing",
    "timestamp",
    "timestamp+incrementing",
]);

const QUERY: ConfigKey = ConfigKey::new(
    "query",
    KeyType::String,
    "A SELECT whose rows are the records (the cursor condition is added around it). Exactly \
     one of `query` and `table`.",
);

const TABLE: ConfigKey = ConfigKey::new(
    "table",
    KeyType::String,
    "A table (`name` or `schema.name`) whose rows are the records.",
);

const INCREMENTING_COLUMN: ConfigKey = ConfigKey::new(
    "incrementing.column.name",
    KeyType::String,
    "The strictly increasing integer column (incrementing modes).",
);

const TIMESTAMP_COLUMN: ConfigKey = ConfigKey::new(
    "timestamp.column.name",
    KeyType::String,
    "The modification time column, `timestamp` or `timestamptz` (timestamp modes); it becomes \
     the record timestamp.",
);

const TOPIC_PREFIX: ConfigKey = ConfigKey::new(
    "topic.prefix",
    KeyType::String,
    "Topic of the records: the prefix plus the table name with `table`, the prefix itself with \
     `query`.",
)
.required();

const POLL_INTERVAL: ConfigKey = ConfigKey::new(
    "poll.interval.ms",
    KeyType::Long,
    "Pause between polls once a poll returned everything new.",
)
.with_default("5000");

const BATCH_MAX_ROWS: ConfigKey = ConfigKey::new(
    "batch.max.rows",
    KeyType::Int,
    "Rows per batch: results are streamed and published in batches of this size, so memory \
     stays bounded whatever a poll returns.",
)
.with_default("100");

const TIMESTAMP_DELAY: ConfigKey = ConfigKey::new(
    "timestamp.delay.interval.ms",
    KeyType::Long,
    "Timestamp modes: only rows older than this (by the database clock) are read, giving \
     transactions with earlier timestamps time to commit.",
)
.with_default("0");

const TIMESTAMP_FROM: ConfigKey = ConfigKey::new(
    "timestamp.from",
    KeyType::String,
    "Only rows whose `timestamp.column.name` is at or after this time (ISO-8601, e.g. \
     `2024-03-04` or `2024-03-04T06:00:00Z`; UTC unless it says otherwise): with \
     `timestamp.until`, a bounded window such as one day of a batch run \
     (`${param:ds}`), Spark's `updated_at >= start AND updated_at < end`.",
);

const TIMESTAMP_UNTIL: ConfigKey = ConfigKey::new(
    "timestamp.until",
    KeyType::String,
    "Only rows whose `timestamp.column.name` is before this time (exclusive; ISO-8601).",
);

const PARTITION_COLUMN: ConfigKey = ConfigKey::new(
    "partition.column",
    KeyType::String,
    "An integer column splitting the read into `partition.count` ranges read concurrently, \
     each on its own connection with its own offset (Spark's JDBC `partitionColumn`). With \
     `mode=incrementing` on the same column, each range resumes where it stopped after a crash.",
);

const PARTITION_LOWER_BOUND: ConfigKey = ConfigKey::new(
    "partition.lower.bound",
    KeyType::Long,
    "With `partition.column`: the low end of the range split (Spark's `lowerBound`); smaller \
     values and NULLs go to the first range. Required with `partition.count` > 1.",
);

const PARTITION_UPPER_BOUND: ConfigKey = ConfigKey::new(
    "partition.upper.bound",
    KeyType::Long,
    "With `partition.column`: the high end of the range split (Spark's `upperBound`); larger \
     values go to the last range. Required with `partition.count` > 1.",
);

const PARTITION_COUNT: ConfigKey = ConfigKey::new(
    "partition.count",
    KeyType::Int,
    "How many ranges of `partition.column` are read concurrently (Spark's `numPartitions`): \
     the span between the bounds is cut into this many equal strides.",
)
.with_default("1");

pub const KEYS: &[ConfigKey] = &[
    CONNECTION_URL,
    CONNECTION_USER,
    CONNECTION_PASSWORD,
    MODE,
    QUERY,
    TABLE,
    INCREMENTING_COLUMN,
    TIMESTAMP_COLUMN,
    TOPIC_PREFIX,
    POLL_INTERVAL,
    BATCH_MAX_ROWS,
    TIMESTAMP_DELAY,
    TIMESTAMP_FROM,
    TIMESTAMP_UNTIL,
    PARTITION_COLUMN,
    PARTITION_LOWER_BOUND,
    PARTITION_UPPER_BOUND,
    PARTITION_COUNT,
];

/// How new rows are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bulk,
    Incrementing,
    Timestamp,
    TimestampIncrementing,
}

impl Mode {
    pub fn uses_incrementing(self) -> bool {
        matches!(self, Self::Incrementing | Self::TimestampIncrementing)
    }

    pub fn uses_timestamp(self) -> bool {
        matches!(self, Self::Timestamp | Self::TimestampIncrementing)
    }
}

/// What rows are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Query(String),
    Table(String),
}

#[derive(Debug, Clone)]
pub struct QuerySourceConfig {
    pub connection: Connection,
    pub mode: Mode,
    pub source: Source,
    pub incrementing: Option<String>,
    pub timestamp: Option<String>,
    pub topic: String,
    pub poll_interval: Duration,
    pub batch_max_rows: usize,
    pub timestamp_delay_ms: u64,
    /// `timestamp.from` / `timestamp.until`: the time window read.
    pub timestamp_from: Option<String>,
    pub timestamp_until: Option<String>,
    /// `partition.column` split into ranges read concurrently.
    pub ranges: Option<Ranges>,
}

/// Spark's JDBC partitioning: `column` cut into `count` strides between the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    pub column: String,
    pub lower: i64,
    pub upper: i64,
    pub count: u32,
}

impl Ranges {
    /// Range `i`'s condition on the column (`t."id"`), as Spark's JDBCRelation writes them:
    /// the first also takes values below the bounds and NULLs (unless the column has none:
    /// `nulls` false), the last values above.
    pub fn condition(&self, column: &str, i: u32, nulls: bool) -> String {
        let stride = (self.upper / i64::from(self.count)) - (self.lower / i64::from(self.count));
        let start = self.lower + i64::from(i) * stride;
        let end = start + stride;
        match (i, self.count) {
            (_, 1) => "true".to_owned(),
            (0, _) if nulls => format!("{column} < {end} OR {column} IS NULL"),
            (0, _) => format!("{column} < {end}"),
            (i, n) if i == n - 1 => format!("{column} >= {start}"),
            _ => format!("{column} >= {start} AND {column} < {end}"),
        }
    }
}

/// Quotes a `name` or `schema.name` identifier.
pub fn quote_identifier(name: &str) -> String {
    name.split('.')
        .map(|part| {
            let part = part.trim().trim_matches('"');
            format!("\"{}\"", part.replace('"', "\"\""))
        })
        .collect::<Vec<_>>()
        .join(".")
}

impl QuerySourceConfig {
    pub fn from_options(options: &mut Options) -> Option<Self> {
        let url = options.string(&CONNECTION_URL);
        let user = options.string(&CONNECTION_USER);
        let password = options.string(&CONNECTION_PASSWORD);
        let mode = match options.choice(&MODE).as_deref() {
            Some("bulk") => Some(Mode::Bulk),
            Some("incrementing") => Some(Mode::Incrementing),
            Some("timestamp") => Some(Mode::Timestamp),
            Some("timestamp+incrementing") => Some(Mode::TimestampIncrementing),
            _ => None,
        };
        let query = options.string(&QUERY);
        let table = options.string(&TABLE);
        let source = match (query, table) {
            (Some(q), None) => Some(Source::Query(q.trim().trim_end_matches(';').to_owned())),
            (None, Some(t)) => Some(Source::Table(t.trim().to_owned())),
            _ => {
                options.issue(QUERY.name, "set exactly one of `query` and `table`");
                None
            }
        };
        let incrementing = options.string(&INCREMENTING_COLUMN);
        let timestamp = options.string(&TIMESTAMP_COLUMN);
        if let Some(mode) = mode {
            if mode.uses_incrementing() && incrementing.is_none() {
                options.issue(INCREMENTING_COLUMN.name, "required by this mode");
            }
            if mode.uses_timestamp() && timestamp.is_none() {
                options.issue(TIMESTAMP_COLUMN.name, "required by this mode");
            }
        }
        let timestamp_from = options.string(&TIMESTAMP_FROM);
        let timestamp_until = options.string(&TIMESTAMP_UNTIL);
        if (timestamp_from.is_some() || timestamp_until.is_some()) && timestamp.is_none() {
            options.issue(
                TIMESTAMP_COLUMN.name,
                "timestamp.from and timestamp.until bound this column: set it",
            );
        }
        let ranges = ranges(options);
        let prefix = options.string(&TOPIC_PREFIX);
        let poll = options.positive(&POLL_INTERVAL).unwrap_or(5000);
        let batch = options.positive(&BATCH_MAX_ROWS).unwrap_or(100);
        let delay = options.u64(&TIMESTAMP_DELAY).unwrap_or(0);
        let connection = match url.map(|u| connection_string(&u, user, password)) {
            Some(Ok(c)) => {
                // The URL's sslrootcert is a file the connector reads, confined as any other.
                if let (
                    Tls::Verified {
                        root_cert: Some(cert),
                    },
                    Some(paths),
                ) = (&c.tls, options.confinement())
                    && let Err(e) = paths.check(cert)
                {
                    options.issue(CONNECTION_URL.name, format!("sslrootcert {e}"));
                }
                Some(c)
            }
            Some(Err(e)) => {
                options.issue(CONNECTION_URL.name, e);
                None
            }
            None => None,
        };
        let source = source?;
        let topic = match &source {
            Source::Table(t) => format!(
                "{}{}",
                prefix.as_deref()?,
                t.rsplit('.').next().unwrap_or(t)
            ),
            Source::Query(_) => prefix?,
        };
        Some(Self {
            connection: connection?,
            mode: mode?,
            source,
            incrementing,
            timestamp,
            topic,
            poll_interval: Duration::from_millis(poll),
            batch_max_rows: batch as usize,
            timestamp_delay_ms: delay,
            timestamp_from,
            timestamp_until,
            ranges,
        })
    }
}

/// `partition.column` and its bounds; `None` without it (one range).
fn ranges(options: &mut Options) -> Option<Ranges> {
    let column = options.string(&PARTITION_COLUMN);
    let lower = options.i64(&PARTITION_LOWER_BOUND);
    let upper = options.i64(&PARTITION_UPPER_BOUND);
    let count = options.positive(&PARTITION_COUNT).unwrap_or(1);
    let Some(column) = column else {
        if count > 1 {
            options.issue(PARTITION_COUNT.name, "needs partition.column to split by");
        }
        return None;
    };
    let (Some(lower), Some(upper)) = (lower, upper) else {
        options.issue(
            PARTITION_COLUMN.name,
            "needs partition.lower.bound and partition.upper.bound",
        );
        return None;
    };
    if lower >= upper {
        options.issue(
            PARTITION_UPPER_BOUND.name,
            format!("must be above partition.lower.bound ({lower}), got {upper}"),
        );
        return None;
    }
    let Ok(count) = u32::try_from(count) else {
        options.issue(PARTITION_COUNT.name, "too large");
        return None;
    };
    // As Spark does: no more ranges than values between the bounds.
    let count = u32::try_from(upper.abs_diff(lower)).map_or(count, |span| count.min(span));
    Some(Ranges {
        column,
        lower,
        upper,
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors::postgres::client::Tls;

    #[test]
    fn jdbc_urls_become_connection_strings() {
        let c = connection_string(
            "jdbc:postgresql://db.local:5433/shop?user=app",
            None,
            Some("s'cret".into()),
        )
        .unwrap();
        assert_eq!(
            c.params,
            "host='db.local' port='5433' dbname='shop' password='s\\'cret' user='app'"
        );
        assert_eq!(c.tls, Tls::Off);
        let c = connection_string("postgresql://u:p@127.0.0.1/x", None, None).unwrap();
        assert_eq!(
            c.params,
            "host='127.0.0.1' port='5432' dbname='x' user='u' password='p'"
        );
        assert!(connection_string("jdbc:mysql://h/db", None, None).is_err());
        let c = connection_string(
            "jdbc:postgresql://h/db?sslmode=verify-full&sslrootcert=/ca.pem",
            None,
            None,
        )
        .unwrap();
        assert!(c.params.ends_with(" sslmode=require"), "{}", c.params);
        assert_eq!(
            c.tls,
            Tls::Verified {
                root_cert: Some("/ca.pem".into())
            }
        );
        assert!(
            connection_string("jdbc:postgresql://h/db?sslmode=maybe", None, None)
                .unwrap_err()
                .to_string()
                .contains("unknown sslmode=maybe")
        );
    }

    #[test]
    fn identifiers_are_quoted_per_part() {
        assert_eq!(quote_identifier("public.Orders"), "\"public\".\"Orders\"");
        assert_eq!(quote_identifier("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn ranges_split_as_spark_does() {
        let ranges = Ranges {
            column: "id".into(),
            lower: 0,
            upper: 100,
            count: 4,
        };
        let all: Vec<String> = (0..4).map(|i| ranges.condition("c", i, true)).collect();
        assert_eq!(
            all,
            [
                "c < 25 OR c IS NULL",
                "c >= 25 AND c < 50",
                "c >= 50 AND c < 75",
                "c >= 75"
            ]
        );
        assert_eq!(ranges.condition("c", 0, false), "c < 25");
    }

    #[test]
    fn partitioned_reads_need_bounds_above_each_other() {
        let parse = |extra: &[(&str, &str)]| {
            let mut map: std::collections::BTreeMap<String, String> = [
                ("connection.url", "jdbc:postgresql://h/db"),
                ("mode", "incrementing"),
                ("incrementing.column.name", "id"),
                ("table", "tx"),
                ("topic.prefix", "pg-"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            map.extend(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            );
            let mut options = Options::new(map);
            let config = QuerySourceConfig::from_options(&mut options);
            (config, options.issues().to_vec())
        };
        let (config, issues) = parse(&[
            ("partition.column", "id"),
            ("partition.lower.bound", "1"),
            ("partition.upper.bound", "3"),
            ("partition.count", "8"),
        ]);
        assert!(issues.is_empty(), "{issues:?}");
        // No more ranges than values between the bounds.
        assert_eq!(config.unwrap().ranges.unwrap().count, 2);
        let (_, issues) = parse(&[
            ("partition.column", "id"),
            ("partition.lower.bound", "5"),
            ("partition.upper.bound", "5"),
        ]);
        assert_eq!(issues[0].key, "partition.upper.bound");
        let (_, issues) = parse(&[("partition.count", "4")]);
        assert_eq!(issues[0].key, "partition.count");
        let (_, issues) = parse(&[("timestamp.from", "2024-03-04")]);
        assert_eq!(issues[0].key, "timestamp.column.name");
    }
}
