//! `io.debezium.connector.postgresql.PostgresConnector` configuration, with Debezium's key
//! names and defaults.

use std::time::Duration;

use regex::Regex;

use super::kafka_signal::{self, KafkaSignalConfig};
use crate::api::options::{ConfigKey, KeyType, Options};
use crate::connectors::postgres::client::{Connection, connection_string};
use crate::kafka::KafkaSettings;

const HOSTNAME: ConfigKey = ConfigKey::new(
    "database.hostname",
    KeyType::String,
    "Host of the PostgreSQL server to capture.",
)
.required();
const PORT: ConfigKey = ConfigKey::new(
    "database.port",
    KeyType::Int,
    "Port of the PostgreSQL server.",
)
.with_default("5432");
const USER: ConfigKey = ConfigKey::new(
    "database.user",
    KeyType::String,
    "User with the REPLICATION attribute (and SELECT on the captured tables).",
)
.required();
const PASSWORD: ConfigKey = ConfigKey::new(
    "database.password",
    KeyType::Password,
    "Password of `database.user` (use `${env:..}` or `${file:..}`).",
);
const DBNAME: ConfigKey =
    ConfigKey::new("database.dbname", KeyType::String, "Database to capture.").required();
const SSLMODE: ConfigKey = ConfigKey::new(
    "database.sslmode",
    KeyType::String,
    "`disable`, `prefer` (connect without TLS here), `require`, `verify-ca` or `verify-full` \
     (TLS with the server certificate verified).",
)
.with_default("prefer")
.one_of(&[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
]);
const SSLROOTCERT: ConfigKey = ConfigKey::new(
    "database.sslrootcert",
    KeyType::String,
    "CA certificate (PEM) that signed the server's certificate; the system roots otherwise.",
);
const TOPIC_PREFIX: ConfigKey = ConfigKey::new(
    "topic.prefix",
    KeyType::String,
    "Logical server name: topics are `<prefix>.<schema>.<table>` and it is the `source.name` \
     of every event. `database.server.name` (Debezium 1.x) is read when this is absent.",
);
const SERVER_NAME: ConfigKey = ConfigKey::new(
    "database.server.name",
    KeyType::String,
    "Debezium 1.x name of `topic.prefix`.",
);
const PLUGIN_NAME: ConfigKey = ConfigKey::new(
    "plugin.name",
    KeyType::String,
    "Logical decoding plugin. Only `pgoutput` (built into PostgreSQL 10+) is supported.",
)
.with_default("pgoutput");
const SLOT_NAME: ConfigKey = ConfigKey::new(
    "slot.name",
    KeyType::String,
    "Replication slot of this connector (created if missing); one per connector.",
)
.with_default("debezium");
const SLOT_DROP_ON_STOP: ConfigKey = ConfigKey::new(
    "slot.drop.on.stop",
    KeyType::Boolean,
    "Drop the slot when the connector stops cleanly (for tests: a restart then snapshots again).",
)
.with_default("false");
const PUBLICATION_NAME: ConfigKey = ConfigKey::new(
    "publication.name",
    KeyType::String,
    "Publication the slot streams.",
)
.with_default("dbz_publication");
const PUBLICATION_AUTOCREATE: ConfigKey = ConfigKey::new(
    "publication.autocreate.mode",
    KeyType::String,
    "`all_tables` (create the publication FOR ALL TABLES), `filtered` (for the captured tables, \
     kept in step with the filters), `no_tables` (created empty) or `disabled` (must exist).",
)
.with_default("all_tables")
.one_of(&["all_tables", "filtered", "no_tables", "disabled"]);
const PUBLISH_VIA_PARTITION_ROOT: ConfigKey = ConfigKey::new(
    "publish.via.partition.root",
    KeyType::Boolean,
    "Create the publication WITH (publish_via_partition_root = true), so that the changes of \
     a partitioned table's partitions come as the partitioned table's, under its topic. \
     Without it, only the snapshot of a partitioned table listed by its own name is captured.",
)
.with_default("false");
const INCLUDE_UNKNOWN_DATATYPES: ConfigKey = ConfigKey::new(
    "include.unknown.datatypes",
    KeyType::Boolean,
    "Keep columns of types Debezium does not map (box, circle, line, lseg, path, polygon) as \
     the bytes of their text, as Debezium writes it; by default they are left out.",
)
.with_default("false");
const SCHEMA_INCLUDE: ConfigKey = ConfigKey::new(
    "schema.include.list",
    KeyType::List,
    "Regular expressions (whole-name match) of schemas to capture.",
);
const SCHEMA_EXCLUDE: ConfigKey = ConfigKey::new(
    "schema.exclude.list",
    KeyType::List,
    "Regular expressions of schemas not to capture.",
);
const TABLE_INCLUDE: ConfigKey = ConfigKey::new(
    "table.include.list",
    KeyType::List,
    "Regular expressions of `schema.table` names to capture.",
);
const TABLE_EXCLUDE: ConfigKey = ConfigKey::new(
    "table.exclude.list",
    KeyType::List,
    "Regular expressions of `schema.table` names not to capture.",
);
const COLUMN_INCLUDE: ConfigKey = ConfigKey::new(
    "column.include.list",
    KeyType::List,
    "Regular expressions of `schema.table.column` names to keep in events.",
);
const COLUMN_EXCLUDE: ConfigKey = ConfigKey::new(
    "column.exclude.list",
    KeyType::List,
    "Regular expressions of `schema.table.column` names to leave out of events.",
);
const SNAPSHOT_MODE: ConfigKey = ConfigKey::new(
    "snapshot.mode",
    KeyType::String,
    "`initial` (snapshot once, then stream), `always` (snapshot at every start), \
     `initial_only` (snapshot, then stop), `no_data` (stream only; `never` is read as this) or \
     `when_needed` (snapshot when there is no usable offset).",
)
.with_default("initial")
.one_of(&[
    "initial",
    "always",
    "initial_only",
    "no_data",
    "never",
    "when_needed",
]);
const SNAPSHOT_FETCH_SIZE: ConfigKey = ConfigKey::new(
    "snapshot.fetch.size",
    KeyType::Int,
    "Rows read per round trip while snapshotting: memory stays bounded by it.",
)
.with_default("10240");
const SIGNAL_DATA_COLLECTION: ConfigKey = ConfigKey::new(
    "signal.data.collection",
    KeyType::String,
    "The signalling table, `schema.table`, with columns `id varchar(42) PRIMARY KEY, type \
     varchar(32) NOT NULL, data varchar(2048)` (Debezium's). A row inserted into it is a signal \
     (`execute-snapshot`, `stop-snapshot`, `pause-snapshot`, `resume-snapshot`, `log`); \
     incremental snapshots write their watermarks into it. It is added to the publication and \
     its changes are emitted like a captured table's, as Debezium does.",
);
const SIGNAL_CHANNELS: ConfigKey = ConfigKey::new(
    "signal.enabled.channels",
    KeyType::List,
    "Where signals are read: `source` (the signalling table) and `kafka` (`signal.kafka.topic`). \
     Signals sent to `POST /connectors/{name}/signals` (or `headwater connectors signal`) are \
     always read.",
)
.with_default("source");
const INCREMENTAL_CHUNK_SIZE: ConfigKey = ConfigKey::new(
    "incremental.snapshot.chunk.size",
    KeyType::Int,
    "Rows an incremental snapshot reads per chunk (held in memory while its window is open).",
)
.with_default("1024");
const WATERMARKING_STRATEGY: ConfigKey = ConfigKey::new(
    "incremental.snapshot.watermarking.strategy",
    KeyType::String,
    "How an incremental snapshot marks a chunk's window in the signalling table: \
     `insert_insert` (a row to open it, another to close it) or `insert_delete` (a row to open \
     it, deleted to close it, so the table does not grow).",
)
.with_default("insert_insert")
.one_of(&["insert_insert", "insert_delete"]);
const NOTIFICATION_CHANNELS: ConfigKey = ConfigKey::new(
    "notification.enabled.channels",
    KeyType::List,
    "Where snapshot progress is reported, as Debezium reports it: `log` and `sink` (records to \
     `notification.sink.topic.name`).",
);
const NOTIFICATION_TOPIC: ConfigKey = ConfigKey::new(
    "notification.sink.topic.name",
    KeyType::String,
    "Topic of the `sink` notification channel.",
);
const TABLE_POLL: ConfigKey = ConfigKey::new(
    "headwater.table.poll.interval.ms",
    KeyType::Int,
    "With `publication.autocreate.mode=filtered`: how often the catalog is looked at for new \
     tables matching the include lists; one found is added to the publication and snapshotted \
     incrementally.",
)
.with_default("10000");
const READ_ONLY: ConfigKey = ConfigKey::new(
    "read.only",
    KeyType::Boolean,
    "Incremental snapshots that write nothing to the database (a replica, a user without write \
     access): each chunk is read in a snapshot whose WAL position is known, and its window \
     closes once the stream has passed that position (Debezium's read-only snapshots compare \
     transaction ids instead). No heartbeat marker is written either.",
)
.with_default("false");
const HEARTBEAT_INTERVAL: ConfigKey = ConfigKey::new(
    "heartbeat.interval.ms",
    KeyType::Int,
    "Emit a heartbeat to `__debezium-heartbeat.<prefix>` this often (0: never); it also moves \
     the slot forward while the captured tables are quiet.",
)
.with_default("0");
const HEARTBEAT_PREFIX: ConfigKey = ConfigKey::new(
    "topic.heartbeat.prefix",
    KeyType::String,
    "Prefix of the heartbeat topic.",
)
.with_default("__debezium-heartbeat");
const HEARTBEAT_ACTION_QUERY: ConfigKey = ConfigKey::new(
    "heartbeat.action.query",
    KeyType::String,
    "SQL run on the database at every heartbeat (with `heartbeat.interval.ms`), e.g. an \
     INSERT into a small captured table, so that a database whose captured tables are quiet \
     still sends changes through the slot. A failure is retried as a lost connection is.",
);
const TOMBSTONES: ConfigKey = ConfigKey::new(
    "tombstones.on.delete",
    KeyType::Boolean,
    "Follow each delete with a tombstone (same key, null value) for log compaction.",
)
.with_default("true");
const DECIMAL_MODE: ConfigKey = ConfigKey::new(
    "decimal.handling.mode",
    KeyType::String,
    "`precise` (Connect Decimal bytes), `double` or `string`.",
)
.with_default("precise")
.one_of(&["precise", "double", "string"]);
const TIME_MODE: ConfigKey = ConfigKey::new(
    "time.precision.mode",
    KeyType::String,
    "`adaptive` (ms or µs by column precision), `adaptive_time_microseconds` (times always in \
     µs) or `connect` (Kafka Connect's Date, Time and Timestamp, ms).",
)
.with_default("adaptive")
.one_of(&["adaptive", "adaptive_time_microseconds", "connect"]);
const BINARY_MODE: ConfigKey = ConfigKey::new(
    "binary.handling.mode",
    KeyType::String,
    "`bytes`, `base64`, `base64-url-safe` or `hex` for bytea columns.",
)
.with_default("bytes")
.one_of(&["bytes", "base64", "base64-url-safe", "hex"]);
const INTERVAL_MODE: ConfigKey = ConfigKey::new(
    "interval.handling.mode",
    KeyType::String,
    "`numeric` (MicroDuration µs) or `string` (ISO 8601) for interval columns.",
)
.with_default("numeric")
.one_of(&["numeric", "string"]);
const SKIPPED_OPERATIONS: ConfigKey = ConfigKey::new(
    "skipped.operations",
    KeyType::List,
    "Operations not emitted: any of `c`, `u`, `d`, `t`, or `none`.",
)
.with_default("t");
const MESSAGE_KEY_COLUMNS: ConfigKey = ConfigKey::new(
    "message.key.columns",
    KeyType::String,
    "Key columns per table instead of the primary key: `schema.table:c1,c2;other:c3` (table \
     names are regular expressions).",
);
const TRANSACTION_METADATA: ConfigKey = ConfigKey::new(
    "provide.transaction.metadata",
    KeyType::Boolean,
    "Emit BEGIN/END events to `<prefix>.transaction` and a `transaction` block in each event.",
)
.with_default("false");
const TRANSACTION_TOPIC: ConfigKey = ConfigKey::new(
    "topic.transaction",
    KeyType::String,
    "Suffix of the transaction metadata topic.",
)
.with_default("transaction");
const PLACEHOLDER: ConfigKey = ConfigKey::new(
    "unavailable.value.placeholder",
    KeyType::String,
    "Value of an unchanged TOASTed column that PostgreSQL did not send.",
)
.with_default("__debezium_unavailable_value");
const TOPIC_DELIMITER: ConfigKey = ConfigKey::new(
    "topic.delimiter",
    KeyType::String,
    "Separator between the parts of topic names.",
)
.with_default(".");
const MAX_BATCH_SIZE: ConfigKey = ConfigKey::new(
    "max.batch.size",
    KeyType::Int,
    "Most events handed on in one batch; a larger transaction is handed on in batches of this \
     size as it streams, not held whole until its COMMIT.",
)
.with_default("2048");
const MAX_QUEUE_SIZE: ConfigKey = ConfigKey::new(
    "max.queue.size",
    KeyType::Int,
    "Most replication messages buffered ahead of the pipeline; PostgreSQL is slowed down (TCP \
     back-pressure) beyond it.",
)
.with_default("8192");

pub const KEYS: &[ConfigKey] = &[
    HOSTNAME,
    PORT,
    USER,
    PASSWORD,
    DBNAME,
    SSLMODE,
    SSLROOTCERT,
    TOPIC_PREFIX,
    SERVER_NAME,
    PLUGIN_NAME,
    SLOT_NAME,
    SLOT_DROP_ON_STOP,
    PUBLICATION_NAME,
    PUBLICATION_AUTOCREATE,
    PUBLISH_VIA_PARTITION_ROOT,
    INCLUDE_UNKNOWN_DATATYPES,
    SCHEMA_INCLUDE,
    SCHEMA_EXCLUDE,
    TABLE_INCLUDE,
    TABLE_EXCLUDE,
    COLUMN_INCLUDE,
    COLUMN_EXCLUDE,
    SNAPSHOT_MODE,
    SNAPSHOT_FETCH_SIZE,
    SIGNAL_DATA_COLLECTION,
    SIGNAL_CHANNELS,
    kafka_signal::TOPIC,
    kafka_signal::BOOTSTRAP_SERVERS,
    kafka_signal::GROUP_ID,
    kafka_signal::POLL_TIMEOUT,
    INCREMENTAL_CHUNK_SIZE,
    WATERMARKING_STRATEGY,
    NOTIFICATION_CHANNELS,
    NOTIFICATION_TOPIC,
    TABLE_POLL,
    READ_ONLY,
    HEARTBEAT_INTERVAL,
    HEARTBEAT_PREFIX,
    HEARTBEAT_ACTION_QUERY,
    TOMBSTONES,
    DECIMAL_MODE,
    TIME_MODE,
    BINARY_MODE,
    INTERVAL_MODE,
    SKIPPED_OPERATIONS,
    MESSAGE_KEY_COLUMNS,
    TRANSACTION_METADATA,
    TRANSACTION_TOPIC,
    PLACEHOLDER,
    TOPIC_DELIMITER,
    MAX_BATCH_SIZE,
    MAX_QUEUE_SIZE,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalMode {
    Precise,
    Double,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecisionMode {
    Adaptive,
    AdaptiveTimeMicroseconds,
    Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryMode {
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalMode {
    Numeric,
    String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    Initial,
    Always,
    InitialOnly,
    NoData,
    WhenNeeded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationMode {
    AllTables,
    Filtered,
    NoTables,
    Disabled,
}

/// Which tables and columns are captured.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    schema_include: Vec<Regex>,
    schema_exclude: Vec<Regex>,
    table_include: Vec<Regex>,
    table_exclude: Vec<Regex>,
    column_include: Vec<Regex>,
    column_exclude: Vec<Regex>,
    /// The signalling table (`signal.data.collection`), captured whatever the lists say.
    signal: Option<(String, String)>,
}

impl Filters {
    /// Whether `schema.table` is the signalling table.
    pub fn is_signal(&self, schema: &str, table: &str) -> bool {
        self.signal
            .as_ref()
            .is_some_and(|(s, t)| s == schema && t == table)
    }

    /// The signalling table, `(schema, table)`.
    pub fn signal_table(&self) -> Option<(&str, &str)> {
        self.signal.as_ref().map(|(s, t)| (s.as_str(), t.as_str()))
    }

    /// Whether `schema.table` is captured for its data: snapshotted, and a target of
    /// `execute-snapshot` (the signalling table only when the lists name it too).
    pub fn data(&self, schema: &str, table: &str) -> bool {
        self.listed(schema, table)
    }

    /// Whether `schema.table` is captured (streamed): listed, or the signalling table (whose
    /// changes Debezium emits too).
    pub fn table(&self, schema: &str, table: &str) -> bool {
        self.listed(schema, table) || self.is_signal(schema, table)
    }

    /// Whether the include and exclude lists take `schema.table`. System schemas never.
    fn listed(&self, schema: &str, table: &str) -> bool {
        if schema == "pg_catalog" || schema == "information_schema" {
            return false;
        }
        let any = |list: &[Regex], name: &str| list.iter().any(|r| r.is_match(name));
        if !self.schema_include.is_empty() && !any(&self.schema_include, schema) {
            return false;
        }
        if any(&self.schema_exclude, schema) {
            return false;
        }
        let full = format!("{schema}.{table}");
        if !self.table_include.is_empty() && !any(&self.table_include, &full) {
            return false;
        }
        !any(&self.table_exclude, &full)
    }

    /// Where a table comes in the snapshot, `(schema, table)` → rank: Debezium snapshots the
    /// tables in the order of `table.include.list`, each pattern's tables sorted by name, a
    /// table under the first pattern found in its name (Java's `Pattern.find`,
    /// case-insensitive); without the list, by name alone (every rank the same).
    pub fn snapshot_ranking(&self) -> impl Fn(&str, &str) -> usize + use<> {
        let found: Vec<Option<Regex>> = self
            .table_include
            .iter()
            .map(|re| {
                let unanchored = re
                    .as_str()
                    .strip_prefix("^(?:")
                    .and_then(|p| p.strip_suffix(")$"))
                    .unwrap_or(re.as_str());
                regex::RegexBuilder::new(unanchored)
                    .case_insensitive(true)
                    .build()
                    .ok()
            })
            .collect();
        move |schema, table| {
            let full = format!("{schema}.{table}");
            found
                .iter()
                .position(|re| re.as_ref().is_some_and(|re| re.is_match(&full)))
                .unwrap_or(usize::MAX)
        }
    }

    /// Whether `schema.table.column` is kept.
    pub fn column(&self, schema: &str, table: &str, column: &str) -> bool {
        if self.column_include.is_empty() && self.column_exclude.is_empty() {
            return true;
        }
        let full = format!("{schema}.{table}.{column}");
        if !self.column_include.is_empty() {
            return self.column_include.iter().any(|r| r.is_match(&full));
        }
        !self.column_exclude.iter().any(|r| r.is_match(&full))
    }

    /// Whether the publication can be limited to the listed tables (`filtered` mode needs
    /// plain names to list).
    pub fn has_table_filters(&self) -> bool {
        !self.table_include.is_empty()
            || !self.table_exclude.is_empty()
            || !self.schema_include.is_empty()
            || !self.schema_exclude.is_empty()
    }
}

/// Which operations are not emitted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Skipped {
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    pub truncate: bool,
}

/// `message.key.columns`: a table pattern and the columns that key it.
#[derive(Debug, Clone)]
pub struct KeyColumns {
    pub table: Regex,
    pub columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CdcConfig {
    pub connection: Connection,
    /// What the replication connection needs (it does not use libpq's connection string).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub dbname: String,
    pub sslmode: String,
    pub sslrootcert: Option<std::path::PathBuf>,
    pub prefix: String,
    pub slot: String,
    pub slot_drop_on_stop: bool,
    /// A bounded run: the slot is created TEMPORARY (dropped when its session ends, so nothing
    /// pins WAL between runs) under a name of the run's own, never the configured slot.
    pub temporary_slot: bool,
    pub publication: String,
    pub publication_mode: PublicationMode,
    /// `publish.via.partition.root`.
    pub publish_via_root: bool,
    /// `include.unknown.datatypes`.
    pub include_unknown: bool,
    pub filters: Filters,
    pub snapshot_mode: SnapshotMode,
    pub fetch_size: usize,
    pub heartbeat: Option<Duration>,
    pub heartbeat_prefix: String,
    /// `heartbeat.action.query`.
    pub heartbeat_query: Option<String>,
    pub tombstones: bool,
    pub modes: super::types::Modes,
    pub skipped: Skipped,
    pub key_columns: Vec<KeyColumns>,
    pub transaction_metadata: bool,
    pub transaction_topic: String,
    pub placeholder: String,
    pub delimiter: String,
    pub max_batch_size: usize,
    pub max_queue_size: usize,
    /// Signals are read from the signalling table (`signal.enabled.channels` has `source`).
    pub source_signals: bool,
    pub chunk_size: usize,
    /// `headwater.table.poll.interval.ms`.
    pub table_poll: Duration,
    /// `incremental.snapshot.watermarking.strategy=insert_delete`.
    pub watermark_delete: bool,
    /// `read.only`: watermarks and heartbeats write nothing.
    pub read_only: bool,
    /// The `kafka` signal channel, when enabled.
    pub kafka_signals: Option<KafkaSignalConfig>,
    /// `notification.enabled.channels`: `log`, and the `sink` topic.
    pub notify_log: bool,
    pub notify_topic: Option<String>,
}

fn regexes(options: &mut Options, key: &ConfigKey) -> Vec<Regex> {
    let mut out = Vec::new();
    for pattern in options.list(key) {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => out.push(re),
            Err(e) => options.issue(
                key.name,
                format!("invalid regular expression {pattern:?}: {e}"),
            ),
        }
    }
    out
}

impl CdcConfig {
    /// Topics this connector writes for its own use, which nobody may read: heartbeats, the
    /// signalling table's changes and the transaction metadata (on the embedded bus nothing
    /// waits for a sink of them; Kafka would keep them unread).
    pub fn auxiliary_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .filters
            .signal_table()
            .map(|(schema, table)| self.table_topic(schema, table))
            .into_iter()
            .collect();
        if self.heartbeat.is_some() {
            topics.push(self.heartbeat_topic());
        }
        if self.transaction_metadata {
            topics.push(self.transaction_metadata_topic());
        }
        topics
    }

    /// Where a table's changes go: `<topic.prefix>.<schema>.<table>`.
    pub fn table_topic(&self, schema: &str, table: &str) -> String {
        let d = &self.delimiter;
        format!("{}{d}{schema}{d}{table}", self.prefix)
    }

    /// Where heartbeats go: `<topic.heartbeat.prefix>.<topic.prefix>`.
    pub fn heartbeat_topic(&self) -> String {
        format!("{}{}{}", self.heartbeat_prefix, self.delimiter, self.prefix)
    }

    /// Where transaction metadata goes: `<topic.prefix>.<topic.transaction>`.
    pub fn transaction_metadata_topic(&self) -> String {
        format!(
            "{}{}{}",
            self.prefix, self.delimiter, self.transaction_topic
        )
    }

    /// `worker_kafka`: the worker's `[kafka]`, for the `kafka` signal channel.
    pub fn from_options(
        options: &mut Options,
        worker_kafka: Option<&KafkaSettings>,
    ) -> Option<Self> {
        let host = options.string(&HOSTNAME);
        let port = options.parse::<u16>(&PORT, "a port number");
        let user = options.string(&USER);
        let password = options.string(&PASSWORD).unwrap_or_default();
        let dbname = options.string(&DBNAME);
        let sslmode = options.choice(&SSLMODE);
        let sslrootcert = options.path(&SSLROOTCERT);
        let prefix = match options.string(&TOPIC_PREFIX) {
            Some(p) => Some(p),
            None => options.string(&SERVER_NAME),
        };
        if prefix.as_deref().is_none_or(|p| p.trim().is_empty()) {
            options.issue(
                TOPIC_PREFIX.name,
                "missing required key: the logical server name that prefixes every topic",
            );
        }
        let plugin = options.string(&PLUGIN_NAME).unwrap_or_default();
        if plugin.trim() != "pgoutput" {
            options.issue(
                PLUGIN_NAME.name,
                format!(
                    "{plugin:?} is not supported: Headwater decodes pgoutput, PostgreSQL's \
                     built-in plugin; set plugin.name=pgoutput"
                ),
            );
        }
        let slot = options.string(&SLOT_NAME).unwrap_or_default();
        if !slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            || slot.is_empty()
        {
            options.issue(
                SLOT_NAME.name,
                format!(
                    "{slot:?}: replication slot names may contain only lower-case letters, \
                     digits and underscores"
                ),
            );
        }
        let slot_drop_on_stop = options.bool(&SLOT_DROP_ON_STOP).unwrap_or(false);
        let publication = options.string(&PUBLICATION_NAME).unwrap_or_default();
        let publication_mode = match options.choice(&PUBLICATION_AUTOCREATE).as_deref() {
            Some("filtered") => PublicationMode::Filtered,
            Some("no_tables") => PublicationMode::NoTables,
            Some("disabled") => PublicationMode::Disabled,
            _ => PublicationMode::AllTables,
        };
        let publish_via_root = options.bool(&PUBLISH_VIA_PARTITION_ROOT).unwrap_or(false);
        let include_unknown = options.bool(&INCLUDE_UNKNOWN_DATATYPES).unwrap_or(false);
        let filters = Filters {
            schema_include: regexes(options, &SCHEMA_INCLUDE),
            schema_exclude: regexes(options, &SCHEMA_EXCLUDE),
            table_include: regexes(options, &TABLE_INCLUDE),
            table_exclude: regexes(options, &TABLE_EXCLUDE),
            column_include: regexes(options, &COLUMN_INCLUDE),
            column_exclude: regexes(options, &COLUMN_EXCLUDE),
            signal: None,
        };
        let mut filters = filters;
        if let Some(name) = options
            .string(&SIGNAL_DATA_COLLECTION)
            .filter(|n| !n.trim().is_empty())
        {
            match name.trim().split_once('.') {
                Some((schema, table)) if !schema.is_empty() && !table.is_empty() => {
                    filters.signal = Some((schema.to_owned(), table.to_owned()));
                }
                _ => options.issue(
                    SIGNAL_DATA_COLLECTION.name,
                    format!("{name:?}: expected <schema>.<table>, e.g. public.debezium_signal"),
                ),
            }
        }
        let mut source_signals = false;
        let mut kafka_signals = false;
        for channel in options.list(&SIGNAL_CHANNELS) {
            match channel.as_str() {
                "source" => source_signals = true,
                "kafka" => kafka_signals = true,
                "file" | "jmx" => options.issue(
                    SIGNAL_CHANNELS.name,
                    format!(
                        "the {channel:?} channel is not supported; use `source` (the signalling \
                         table), `kafka`, or Headwater's REST channel, POST \
                         /connectors/<name>/signals, which needs no configuration"
                    ),
                ),
                other => options.issue(
                    SIGNAL_CHANNELS.name,
                    format!("unknown channel {other:?}; expected source or kafka"),
                ),
            }
        }
        let chunk_size = options.positive(&INCREMENTAL_CHUNK_SIZE).unwrap_or(1024) as usize;
        let table_poll = Duration::from_millis(options.positive(&TABLE_POLL).unwrap_or(10_000));
        let watermark_delete =
            options.choice(&WATERMARKING_STRATEGY).as_deref() == Some("insert_delete");
        let mut notify_log = false;
        let mut notify_sink = false;
        for channel in options.list(&NOTIFICATION_CHANNELS) {
            match channel.as_str() {
                "log" => notify_log = true,
                "sink" => notify_sink = true,
                other => options.issue(
                    NOTIFICATION_CHANNELS.name,
                    format!("unsupported channel {other:?}; expected log or sink"),
                ),
            }
        }
        let notify_topic = options
            .string(&NOTIFICATION_TOPIC)
            .filter(|t| !t.trim().is_empty());
        if notify_sink && notify_topic.is_none() {
            options.issue(
                NOTIFICATION_TOPIC.name,
                "the `sink` notification channel needs the topic to write to",
            );
        }
        let read_only = options.bool(&READ_ONLY).unwrap_or(false);
        let kafka_signals = match kafka_signals {
            true => KafkaSignalConfig::from_options(
                options,
                prefix.as_deref().unwrap_or_default(),
                worker_kafka,
            ),
            false => None,
        };
        for (a, b) in [
            (&TABLE_INCLUDE, &TABLE_EXCLUDE),
            (&SCHEMA_INCLUDE, &SCHEMA_EXCLUDE),
            (&COLUMN_INCLUDE, &COLUMN_EXCLUDE),
        ] {
            if options.contains(a.name) && options.contains(b.name) {
                options.issue(b.name, format!("cannot be used together with {}", a.name));
            }
        }
        let snapshot_mode = match options.choice(&SNAPSHOT_MODE).as_deref() {
            Some("always") => SnapshotMode::Always,
            Some("initial_only") => SnapshotMode::InitialOnly,
            Some("no_data" | "never") => SnapshotMode::NoData,
            Some("when_needed") => SnapshotMode::WhenNeeded,
            _ => SnapshotMode::Initial,
        };
        let fetch_size = options.positive(&SNAPSHOT_FETCH_SIZE).unwrap_or(10240) as usize;
        let heartbeat = options
            .u64(&HEARTBEAT_INTERVAL)
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis);
        let heartbeat_prefix = options.string(&HEARTBEAT_PREFIX).unwrap_or_default();
        let heartbeat_query = options
            .string(&HEARTBEAT_ACTION_QUERY)
            .filter(|q| !q.trim().is_empty());
        if heartbeat_query.is_some() && heartbeat.is_none() {
            // Debezium accepts it and never runs it; so does Headwater, saying so.
            tracing::warn!(
                "heartbeat.action.query runs at each heartbeat, and heartbeat.interval.ms is 0: \
                 it will not run"
            );
        }
        let tombstones = options.bool(&TOMBSTONES).unwrap_or(true);
        let decimal = match options.choice(&DECIMAL_MODE).as_deref() {
            Some("double") => DecimalMode::Double,
            Some("string") => DecimalMode::String,
            _ => DecimalMode::Precise,
        };
        let time = match options.choice(&TIME_MODE).as_deref() {
            Some("adaptive_time_microseconds") => TimePrecisionMode::AdaptiveTimeMicroseconds,
            Some("connect") => TimePrecisionMode::Connect,
            _ => TimePrecisionMode::Adaptive,
        };
        let binary = match options.choice(&BINARY_MODE).as_deref() {
            Some("base64") => BinaryMode::Base64,
            Some("base64-url-safe") => BinaryMode::Base64UrlSafe,
            Some("hex") => BinaryMode::Hex,
            _ => BinaryMode::Bytes,
        };
        let interval = match options.choice(&INTERVAL_MODE).as_deref() {
            Some("string") => IntervalMode::String,
            _ => IntervalMode::Numeric,
        };
        let mut skipped = Skipped::default();
        for op in options.list(&SKIPPED_OPERATIONS) {
            match op.as_str() {
                "c" => skipped.create = true,
                "u" => skipped.update = true,
                "d" => skipped.delete = true,
                "t" => skipped.truncate = true,
                "none" => {}
                other => options.issue(
                    SKIPPED_OPERATIONS.name,
                    format!("unknown operation {other:?}; expected c, u, d, t or none"),
                ),
            }
        }
        let mut key_columns = Vec::new();
        if let Some(spec) = options.string(&MESSAGE_KEY_COLUMNS) {
            for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let Some((table, columns)) = entry.rsplit_once(':') else {
                    options.issue(
                        MESSAGE_KEY_COLUMNS.name,
                        format!("{entry:?}: expected <schema.table>:<column>,<column>"),
                    );
                    continue;
                };
                match Regex::new(&format!("^(?:{})$", table.trim())) {
                    Ok(re) => key_columns.push(KeyColumns {
                        table: re,
                        columns: columns.split(',').map(|c| c.trim().to_owned()).collect(),
                    }),
                    Err(e) => options.issue(
                        MESSAGE_KEY_COLUMNS.name,
                        format!("invalid table pattern {table:?}: {e}"),
                    ),
                }
            }
        }
        let transaction_metadata = options.bool(&TRANSACTION_METADATA).unwrap_or(false);
        let transaction_topic = options.string(&TRANSACTION_TOPIC).unwrap_or_default();
        let placeholder = options.string(&PLACEHOLDER).unwrap_or_default();
        let delimiter = options.string(&TOPIC_DELIMITER).unwrap_or_default();
        let max_batch_size = options.positive(&MAX_BATCH_SIZE).unwrap_or(2048) as usize;
        let max_queue_size = options.positive(&MAX_QUEUE_SIZE).unwrap_or(8192) as usize;

        let (host, port, user, dbname, prefix, sslmode) =
            (host?, port?, user?, dbname?, prefix?, sslmode?);
        // The catalog and snapshot connection takes the same settings as the replication one.
        let mut url = format!("postgresql://{host}:{port}/{dbname}?sslmode={sslmode}");
        if let Some(cert) = &sslrootcert {
            url.push_str(&format!("&sslrootcert={}", cert.display()));
        }
        let connection = match connection_string(&url, Some(user.clone()), Some(password.clone())) {
            Ok(c) => c,
            Err(e) => {
                options.issue(HOSTNAME.name, e);
                return None;
            }
        };
        Some(Self {
            connection,
            host,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            prefix: prefix.trim().to_owned(),
            slot,
            slot_drop_on_stop,
            temporary_slot: false,
            publication,
            publication_mode,
            publish_via_root,
            include_unknown,
            filters,
            snapshot_mode,
            fetch_size,
            heartbeat,
            heartbeat_prefix,
            heartbeat_query,
            tombstones,
            modes: super::types::Modes {
                decimal,
                time,
                binary,
                interval,
            },
            skipped,
            key_columns,
            transaction_metadata,
            transaction_topic,
            placeholder,
            delimiter,
            max_batch_size,
            max_queue_size,
            source_signals,
            chunk_size,
            table_poll,
            watermark_delete,
            read_only,
            kafka_signals,
            notify_log,
            notify_topic: notify_topic.filter(|_| notify_sink),
        })
    }

    /// `message.key.columns` for a table, if configured.
    pub fn key_columns_for(&self, schema: &str, table: &str) -> Option<&[String]> {
        let full = format!("{schema}.{table}");
        self.key_columns
            .iter()
            .find(|k| k.table.is_match(&full))
            .map(|k| k.columns.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn including(patterns: &[&str]) -> Filters {
        Filters {
            schema_include: Vec::new(),
            schema_exclude: Vec::new(),
            table_include: patterns
                .iter()
                .map(|p| Regex::new(&format!("^(?:{p})$")).unwrap())
                .collect(),
            table_exclude: Vec::new(),
            column_include: Vec::new(),
            column_exclude: Vec::new(),
            signal: None,
        }
    }

    #[test]
    fn tables_are_snapshotted_in_the_order_of_the_include_list() {
        let rank =
            including(&["public.orders", "public\\.i.*", "PUBLIC.ZEBRAS"]).snapshot_ranking();
        assert_eq!(rank("public", "orders"), 0);
        assert_eq!(rank("public", "items"), 1);
        assert_eq!(rank("public", "zebras"), 2, "case-insensitive");
        // Debezium ranks by Java's Pattern.find, so a pattern found inside a name counts.
        assert_eq!(rank("public", "orders_2024"), 0);
        assert_eq!(including(&[]).snapshot_ranking()("public", "x"), usize::MAX);
    }
}
