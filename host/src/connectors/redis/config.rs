//! `headwater.redis.RedisSink` configuration.

use std::time::Duration;

use super::feast::FeastType;
use crate::api::options::{ConfigKey, KeyType, Options};

const URI: ConfigKey = ConfigKey::new(
    "redis.uri",
    KeyType::Password,
    "Redis to write to: `redis://[user:password@]host:port[/db]`. It may hold a password, so \
     it is shown as [hidden]; use a `${env:VAR}` or `${file:path:key}` provider for it.",
)
.required();

const TLS_CA_FILE: ConfigKey = ConfigKey::new(
    "redis.tls.ca.file",
    KeyType::String,
    "For `rediss://`: a PEM file of the certificate authorities to trust instead of the \
     system's (e.g. a private CA or a self-signed server certificate).",
);

const LAYOUT: ConfigKey = ConfigKey::new(
    "redis.layout",
    KeyType::String,
    "How a record is stored: `hash` (a hash per entity, one field per value field, nested \
     values as JSON; the default), `string` (the value as one JSON string) or `feast` (Feast's \
     Redis online-store format, read by Feast's SDK and feature servers).",
)
.with_default("hash")
.one_of(&["hash", "string", "feast"]);

const FEAST_PROJECT: ConfigKey = ConfigKey::new(
    "feast.project",
    KeyType::String,
    "Feast layout: the Feast project (part of every key).",
);

const FEAST_VIEW: ConfigKey = ConfigKey::new(
    "feast.feature.view",
    KeyType::String,
    "Feast layout: the feature view the features belong to.",
);

const FEAST_ENTITIES: ConfigKey = ConfigKey::new(
    "feast.entity.columns",
    KeyType::List,
    "Feast layout: the entity join keys, as value fields, each `name:type` with type string, \
     int64 or int32 (`user_id:int64`); the type must match the Feast entity's.",
);

const FEAST_FEATURES: ConfigKey = ConfigKey::new(
    "feast.features",
    KeyType::List,
    "Feast layout: the features to write, as value fields, each `name:type` with type string, \
     int32, int64, double, float, bool, bytes or unix_timestamp.",
);

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
     out-of-order records never overwrite newer data. Hash layout: the time is kept in the \
     hash field `_ts`; Feast layout: it is the feature view's event timestamp (default: the \
     record's timestamp). Not with the string layout.",
);

/// Every key of the RedisSink (besides `topics` / `topics.regex`).
pub const KEYS: &[ConfigKey] = &[
    URI,
    TLS_CA_FILE,
    LAYOUT,
    KEY_PREFIX,
    KEY_FIELDS,
    KEY_SEPARATOR,
    TTL_SECONDS,
    TIMESTAMP_FIELD,
    FEAST_PROJECT,
    FEAST_VIEW,
    FEAST_ENTITIES,
    FEAST_FEATURES,
];

/// How records are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Hash,
    String,
    Feast,
}

/// Where and how the Feast layout writes.
#[derive(Debug, Clone)]
pub struct FeastConfig {
    pub project: String,
    pub view: String,
    pub entities: Vec<(String, FeastType)>,
    pub features: Vec<(String, FeastType)>,
}

/// `name:type` list entries.
fn typed_columns(options: &mut Options, key: &ConfigKey) -> Vec<(String, FeastType)> {
    let mut out = Vec::new();
    for entry in options.list(key) {
        match entry.split_once(':') {
            Some((name, ty)) => match FeastType::parse(ty.trim()) {
                Some(ty) => out.push((name.trim().to_owned(), ty)),
                None => options.issue(
                    key.name,
                    format!(
                        "{entry:?}: unknown type {ty:?}; expected string, int32, int64, double, \
                         float, bool, bytes or unix_timestamp"
                    ),
                ),
            },
            None => options.issue(key.name, format!("{entry:?}: expected name:type")),
        }
    }
    out
}

#[derive(Debug, Clone)]
pub struct RedisSinkConfig {
    pub uri: String,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub layout: Layout,
    pub key_prefix: String,
    pub key_fields: Vec<String>,
    pub key_separator: String,
    pub ttl: Option<Duration>,
    pub timestamp_field: Option<String>,
    pub feast: Option<FeastConfig>,
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
        let tls_ca_file = options
            .path(&TLS_CA_FILE)
            .filter(|f| !f.as_os_str().is_empty());
        if tls_ca_file.is_some() && uri.as_deref().is_some_and(|u| !u.starts_with("rediss://")) {
            options.issue(TLS_CA_FILE.name, "only used with a rediss:// redis.uri");
        }
        let layout = match options.choice(&LAYOUT).as_deref() {
            Some("string") => Layout::String,
            Some("feast") => Layout::Feast,
            _ => Layout::Hash,
        };
        let feast = (layout == Layout::Feast).then(|| {
            let required = |options: &mut Options, key: &ConfigKey| {
                let value = options.string(key).filter(|v| !v.trim().is_empty());
                if value.is_none() {
                    options.issue(key.name, "required with redis.layout=feast");
                }
                value.unwrap_or_default()
            };
            let project = required(options, &FEAST_PROJECT);
            let view = required(options, &FEAST_VIEW);
            let entities = typed_columns(options, &FEAST_ENTITIES);
            let features = typed_columns(options, &FEAST_FEATURES);
            if entities.is_empty() {
                options.issue(FEAST_ENTITIES.name, "required with redis.layout=feast");
            }
            if features.is_empty() {
                options.issue(FEAST_FEATURES.name, "required with redis.layout=feast");
            }
            FeastConfig {
                project,
                view,
                entities,
                features,
            }
        });
        let key_prefix = options.string(&KEY_PREFIX).unwrap_or_default();
        let key_fields = options.list(&KEY_FIELDS);
        let key_separator = options.string(&KEY_SEPARATOR).unwrap_or_default();
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
            tls_ca_file,
            layout,
            key_prefix,
            key_fields,
            key_separator,
            ttl,
            timestamp_field,
            feast,
        })
    }
}
