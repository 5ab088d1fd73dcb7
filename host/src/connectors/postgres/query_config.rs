//! `headwater.postgres.QuerySource` configuration, with Confluent's JDBC source key names.

use std::time::Duration;

use super::client::{Connection, connection_string};
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
        let prefix = options.string(&TOPIC_PREFIX);
        let poll = options.positive(&POLL_INTERVAL).unwrap_or(5000);
        let batch = options.positive(&BATCH_MAX_ROWS).unwrap_or(100);
        let delay = options.u64(&TIMESTAMP_DELAY).unwrap_or(0);
        let connection = match url.map(|u| connection_string(&u, user, password)) {
            Some(Ok(c)) => Some(c),
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
        })
    }
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
}
