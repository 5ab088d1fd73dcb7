//! The worker config: where the host keeps its state and how it talks to the world.
//!
//! A TOML file (`headwater run --config worker.toml`); every field has a default, and command
//! line flags override the file.
//!
//! ```toml
//! data_dir = "var"              # offsets, dead letters, plugin cache
//! connectors_dir = "connectors.d"
//!
//! [rest]
//! listen = "127.0.0.1:8083"
//! token = "s3cret"              # optional bearer token (or HEADWATER_REST_TOKEN)
//! read_token = "v1ew"           # optional: may view, not act (or HEADWATER_REST_READ_TOKEN)
//! tls_cert = "rest.crt"         # optional: serve HTTPS with this PEM chain...
//! tls_key = "rest.key"          # ...and its PEM key
//! client_timeout_secs = 30      # a slower client (handshake, headers, body) is disconnected
//! max_connections = 1024
//!
//! [files]
//! allowed_paths = ["var", "/srv/lake"]  # where REST-created connectors may use files
//!
//! [providers]
//! allowed_env = ["PGPASSWORD", "FEATURES_*"]  # what ${env:...} may read in REST-created ones
//!
//! [bus]
//! kind = "embedded"             # in-process topics; "kafka": topics live in Kafka
//!
//! [kafka]
//! bootstrap_servers = "127.0.0.1:9092"
//! topic_partitions = 4          # for topics Headwater creates
//! topic_replication_factor = 1
//! group_instance_id = "host-1"  # static membership (or HEADWATER_GROUP_INSTANCE_ID)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::allowed_env::AllowedEnv;
use crate::api::allowed_paths::AllowedPaths;
use crate::kafka::KafkaSettings;
use crate::runtime::kafka_bus::link::KafkaLink;

/// Which bus carries topics between sources and sinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// In-process topic router: a local source feeds the local sinks subscribed to its topics.
    /// This is the default.
    #[default]
    Embedded,
    /// Topics are Kafka topics: sources produce to Kafka, sinks consume in group
    /// `connect-<name>`, and hosts with the same configs split the partitions. Needs
    /// `[kafka] bootstrap_servers`.
    Kafka,
}

/// `[rest]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestConfig {
    /// Address of the REST API. Default `127.0.0.1:8083` (Kafka Connect's port, loopback only).
    pub listen: SocketAddr,
    /// Bearer token every request (but `/health`) must carry. The `HEADWATER_REST_TOKEN`
    /// environment variable sets it too. Default: none.
    pub token: Option<String>,
    /// A bearer token that may view (GET) but not act (create, change, pause, restart, ...):
    /// for dashboards and on-call read access. Needs `token`. The `HEADWATER_REST_READ_TOKEN`
    /// environment variable sets it too. Default: none.
    pub read_token: Option<String>,
    /// PEM certificate chain (the server's certificate first) to serve the API over HTTPS, with
    /// `tls_key`. Default: none (plain HTTP, for loopback).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1). Default: none.
    pub tls_key: Option<PathBuf>,
    /// Seconds a client may take to complete a TLS handshake, to send a request's headers, or
    /// its body, and that a kept-alive connection may stay idle; a slower client is
    /// disconnected. Default 30.
    pub client_timeout_secs: u64,
    /// Most connections the API keeps open at once; further clients wait until one closes.
    /// Default 1024.
    pub max_connections: usize,
}

impl Default for RestConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8083)),
            token: None,
            read_token: None,
            tls_cert: None,
            tls_key: None,
            client_timeout_secs: 30,
            max_connections: 1024,
        }
    }
}

/// `[bus]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    pub kind: BusKind,
}

/// `[kafka]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Kafka bootstrap servers, `host:port[,host:port]`. Unset: no Kafka. With the embedded
    /// bus, sinks then also read their topics that Kafka has, and dead letters may go to Kafka.
    pub bootstrap_servers: Option<String>,
    /// Partitions of topics Headwater creates (Kafka bus topics, dead-letter topics).
    /// Default 1.
    pub topic_partitions: i32,
    /// Replication factor of the topics Headwater creates (Kafka bus and KafkaSink topics;
    /// dead-letter topics use `errors.deadletterqueue.topic.replication.factor`). Default 1.
    pub topic_replication_factor: i32,
    /// This host's static membership id in the consumer groups of sinks reading Kafka
    /// (`group.instance.id`, KIP-345), unique among the hosts: a host restarted within the
    /// session timeout gets its partitions back without a rebalance, so a rolling restart
    /// moves no state. The `HEADWATER_GROUP_INSTANCE_ID` environment variable sets it too (a
    /// pod's name in a StatefulSet). Default: none (dynamic membership).
    pub group_instance_id: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: None,
            topic_partitions: 1,
            topic_replication_factor: 1,
            group_instance_id: None,
        }
    }
}

/// `[files]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilesConfig {
    /// Directories where connectors created over the REST API may read and write files (a
    /// FileSource's `path`, a sink's output, a WASM `module`, a `${file:...}` provider's file,
    /// TLS certificates...), compared after resolving `..` and symbolic links. Configs in
    /// `connectors_dir` are the operator's own and are not confined. Default: the data
    /// directory only.
    pub allowed_paths: Option<Vec<PathBuf>>,
}

/// `[providers]`: the config providers' limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvidersConfig {
    /// Environment variables `${env:NAME}` may read in connectors created over the REST API:
    /// exact names, or prefixes ending in `*`. Configs in `connectors_dir` read any. Default:
    /// none.
    pub allowed_env: Vec<String>,
}

/// The whole worker config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Directory for offsets, dead letters and caches. Default `var`.
    pub data_dir: PathBuf,
    /// Directory watched for connector configs. Default `connectors.d`.
    pub connectors_dir: PathBuf,
    pub rest: RestConfig,
    pub bus: BusConfig,
    pub kafka: KafkaConfig,
    pub files: FilesConfig,
    pub providers: ProvidersConfig,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("var"),
            connectors_dir: PathBuf::from("connectors.d"),
            rest: RestConfig::default(),
            bus: BusConfig::default(),
            kafka: KafkaConfig::default(),
            files: FilesConfig::default(),
            providers: ProvidersConfig::default(),
        }
    }
}

/// Why the worker config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WorkerConfigError {
    #[error("bus.kind = \"kafka\" needs [kafka] bootstrap_servers")]
    KafkaBusWithoutServers,
    #[error(
        "[rest] read_token needs [rest] token (or HEADWATER_REST_TOKEN): without it any request \
         may act"
    )]
    ReadTokenAlone,
    #[error("[rest] read_token must differ from [rest] token")]
    SameTokens,
    #[error("reading worker config {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("worker config {path}: {source}")]
    Toml {
        path: PathBuf,
        source: toml::de::Error,
    },
}

/// The REST API's bearer tokens: the one that may act, and the one that may only view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestTokens {
    pub token: Option<String>,
    pub read_token: Option<String>,
}

impl RestConfig {
    /// The tokens, the environment's (`HEADWATER_REST_TOKEN`, `HEADWATER_REST_READ_TOKEN`,
    /// given as `env_token`, `env_read_token`) over the file's; an error when a read-only token
    /// would stand alone (nothing would guard actions) or equal the other.
    pub fn tokens(
        &self,
        env_token: Option<String>,
        env_read_token: Option<String>,
    ) -> Result<RestTokens, WorkerConfigError> {
        let pick = |env: Option<String>, file: &Option<String>| {
            env.or_else(|| file.clone()).filter(|t| !t.is_empty())
        };
        let tokens = RestTokens {
            token: pick(env_token, &self.token),
            read_token: pick(env_read_token, &self.read_token),
        };
        match (&tokens.token, &tokens.read_token) {
            (None, Some(_)) => Err(WorkerConfigError::ReadTokenAlone),
            (Some(a), Some(b)) if a == b => Err(WorkerConfigError::SameTokens),
            _ => Ok(tokens),
        }
    }
}

impl WorkerConfig {
    /// The directories connectors created over REST may use files in: `[files] allowed_paths`,
    /// or the data directory.
    pub fn allowed_paths(&self) -> std::io::Result<AllowedPaths> {
        match &self.files.allowed_paths {
            Some(dirs) => AllowedPaths::new(dirs),
            None => AllowedPaths::new(std::slice::from_ref(&self.data_dir)),
        }
    }

    /// The environment variables connectors created over REST may read: `[providers]
    /// allowed_env`.
    pub fn allowed_env(&self) -> AllowedEnv {
        AllowedEnv::new(self.providers.allowed_env.iter().cloned())
    }

    /// The Kafka connection this config asks for; an error when `bus.kind = "kafka"` has no
    /// bootstrap servers.
    pub fn kafka_link(&self) -> Result<Option<KafkaLink>, WorkerConfigError> {
        let servers = self
            .kafka
            .bootstrap_servers
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let on_kafka_bus = self.bus.kind == BusKind::Kafka;
        match servers {
            None if on_kafka_bus => Err(WorkerConfigError::KafkaBusWithoutServers),
            None => Ok(None),
            Some(servers) => {
                let settings = KafkaSettings {
                    topic_partitions: self.kafka.topic_partitions.max(1),
                    topic_replication: self.kafka.topic_replication_factor.max(1),
                    group_instance_id: self
                        .kafka
                        .group_instance_id
                        .clone()
                        .filter(|id| !id.trim().is_empty()),
                    ..KafkaSettings::new(servers)
                };
                Ok(Some(KafkaLink::new(settings, on_kafka_bus)))
            }
        }
    }

    pub fn load(path: &Path) -> Result<Self, WorkerConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| WorkerConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| WorkerConfigError::Toml {
            path: path.to_path_buf(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_token_needs_a_token_that_differs_and_the_environment_wins() {
        let rest = |token: Option<&str>, read: Option<&str>| RestConfig {
            token: token.map(str::to_owned),
            read_token: read.map(str::to_owned),
            ..RestConfig::default()
        };
        assert!(matches!(
            rest(None, Some("v")).tokens(None, None),
            Err(WorkerConfigError::ReadTokenAlone)
        ));
        assert!(matches!(
            rest(Some("a"), None).tokens(None, Some("a".into())),
            Err(WorkerConfigError::SameTokens)
        ));
        let tokens = rest(Some("file"), Some("v")).tokens(Some("env".into()), None);
        assert_eq!(
            tokens.unwrap(),
            RestTokens {
                token: Some("env".into()),
                read_token: Some("v".into())
            }
        );
        assert_eq!(
            rest(Some(""), None).tokens(None, None).unwrap(),
            RestTokens::default(),
            "an empty token is none"
        );
    }

    #[test]
    fn defaults_and_overrides() {
        let c: WorkerConfig =
            toml::from_str("data_dir = \"/tmp/x\"\n[rest]\nlisten = \"0.0.0.0:9000\"\n").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(c.rest.listen.port(), 9000);
        assert_eq!(c.connectors_dir, PathBuf::from("connectors.d"));
        assert_eq!(c.bus.kind, BusKind::Embedded);
    }

    #[test]
    fn unknown_keys_and_values_are_named() {
        let err = toml::from_str::<WorkerConfig>("data_dri = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `data_dri`"), "{err}");
        let err = toml::from_str::<WorkerConfig>("[bus]\nkind = \"carrier-pigeon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `carrier-pigeon`"), "{err}");
    }

    #[test]
    fn the_kafka_bus_needs_bootstrap_servers() {
        let c: WorkerConfig = toml::from_str("[bus]\nkind = \"kafka\"\n").unwrap();
        assert!(
            c.kafka_link()
                .unwrap_err()
                .to_string()
                .contains("bootstrap_servers")
        );
        let c: WorkerConfig = toml::from_str(
            "[bus]\nkind = \"kafka\"\n[kafka]\nbootstrap_servers = \"h:9092\"\ntopic_partitions = 6\n",
        )
        .unwrap();
        let link = c.kafka_link().unwrap().unwrap();
        assert!(link.bus);
        assert_eq!(link.settings.topic_partitions, 6);
        assert_eq!(link.settings.group_instance_id, None);
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"h:9092\"\ngroup_instance_id = \"host-1\"\n",
        )
        .unwrap();
        let link = c.kafka_link().unwrap().unwrap();
        assert_eq!(link.settings.group_instance_id.as_deref(), Some("host-1"));
        assert!(WorkerConfig::default().kafka_link().unwrap().is_none());
    }
}
