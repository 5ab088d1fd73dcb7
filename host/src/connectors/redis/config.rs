//! `headwater.redis.RedisSink` configuration.

use std::time::Duration;

use crate::config::options::{ConfigKey, KeyType, Options};

const URI: ConfigKey = ConfigKey::new(
    "redis.uri",
    KeyType::Password,
    "Redis to write to: `redis://[user:password@]host:port[/db]`. It may hold a password, so \
     it is shown as [hidden]; use a `${env:VAR}` or `${file:path:key}` provider for it.",
)
.required();

const LAYOUT: ConfigKey = ConfigKey::new(
    "redis.layout",
    KeyType::String,
    "How a record is stored: `hash` (a hash per entity, one field per value field, nested \
     values as JSON; the default) or `string` (the value as one JSON string).",
)
.with_default("hash")
.one_of(&["hash", "string"]);

const KEY_PREFIX: ConfigKey = ConfigKey::new(
    "key.prefix",
    KeyType::String,
    "Text before the entity key in every Redis key, e.g. `user:`. `${topic}` is replaced by \
     the record's topic.",
)
.with_default("");

const KEY_FIELDS: ConfigKey = ConfigKey::new(
    "key.fields",
    KeyType::List,
    "Value fields whose values, joined by `key.separator`, form the entity key. Default: the \
     record key (its single field's value, or all its fields' values joined).",
);

const KEY_SEPARATOR: ConfigKey = ConfigKey::new(
    "key.separator",
    KeyType::String,
    "Separator between the parts of a composite entity key.",
)
.with_default(":");

const TTL_SECONDS: ConfigKey = ConfigKey::new(
    "ttl.seconds",
    KeyType::Long,
    "Expiry set on every written key, in seconds, in the same pipeline as the write. 0: keys \
     do not expire.",
)
.with_default("0");

const TIMESTAMP_FIELD: ConfigKey = ConfigKey::new(
    "timestamp.field",
    KeyType::String,
    "Event-time guard: value field (epoch milliseconds or ISO-8601) holding the record's event \
     time. A record older than what Redis holds for its key changes nothing, so late and \
     out-of-order records never overwrite newer data. Hash layout only; the time is kept in \
     the hash field `_ts`.",
);

/// Every key of the RedisSink (besides `topics` / `topics.regex`).
pub const KEYS: &[ConfigKey] = &[
    URI,
    LAYOUT,
    KEY_PREFIX,
    KEY_FIELDS,
    KEY_SEPARATOR,
    TTL_SECONDS,
    TIMESTAMP_FIELD,
];

/// How records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Hash,
    String,
}

#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    pub uri: String,
    pub layout: Layout,
    pub key_prefix: String,
    pub key_fields: Vec<String>,
    pub key_separator: String,
    pub ttl: Option<Duration>,
    pub timestamp_field: Option<String>,
}

impl RedisSinkConfig {
    pub fn from_options(options: &mut Options) -> Option<Self> {
        let uri = options.string(&URI);
        if let Some(uri) = &uri
            && let Err(e) = redis::Client::open(uri.as_str())
        {
            // The error text never includes the URI (it may hold a password).
            options.issue(URI.name, format!("not a valid Redis URI ({:?})", e.kind()));
        }
        let layout = match options.choice(&LAYOUT).as_deref() {
            Some("string") => Layout::String,
            _ => Layout::Hash,
        };
        let key_prefix = options.string(&KEY_PREFIX).unwrap_or_default();
        let key_fields = options.list(&KEY_FIELDS);
        let key_separator = options.string(&KEY_SEPARATOR).unwrap_or_else(|| ":".into());
        let ttl = options
            .u64(&TTL_SECONDS)
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        let timestamp_field = options.string(&TIMESTAMP_FIELD).filter(|f| !f.is_empty());
        if timestamp_field.is_some() && layout == Layout::String {
            options.issue(
                TIMESTAMP_FIELD.name,
                "the event-time guard needs redis.layout=hash (it keeps the time in the hash)",
            );
        }
        Some(Self {
            uri: uri?,
            layout,
            key_prefix,
            key_fields,
            key_separator,
            ttl,
            timestamp_field,
        })
    }
}
