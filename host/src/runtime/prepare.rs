//! The keys the host reads from every connector config (Kafka Connect's `ConnectorConfig` and
//! `SinkConnectorConfig`), and [`prepare`], which turns a raw config into a runnable task.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::api::confine::Confine;
use crate::api::connector::{BuildContext, ConnectorType, Task, TaskIndex};
use crate::api::error::{ErrorPolicy, Tolerance};
use crate::api::registry::Registry;
use crate::converters::BuiltinConverter;
use crate::kafka::KafkaSettings;
use crate::runtime::bus::{TopicSelector, Unsubscribed};
use crate::runtime::sink_tasks::{SiblingTasks, TaskPlan};
use crate::transforms::chain::Chain;

use crate::api::options::{ConfigIssue, ConfigKey, KeyType, Options};
use crate::config::connector::{ConfigErrors, ConnectorConfig};
use crate::config::providers;

pub const CONNECTOR_CLASS: ConfigKey = ConfigKey::new(
    "connector.class",
    KeyType::String,
    "Class of the connector: a Headwater class (`headwater.file.FileSource`), a Kafka Connect \
     or Debezium class name Headwater implements, or its simple name.",
)
.required();

pub const NAME: ConfigKey = ConfigKey::new(
    "name",
    KeyType::String,
    "Globally unique name of the connector.",
);

pub const TASKS_MAX: ConfigKey = ConfigKey::new(
    "tasks.max",
    KeyType::Int,
    "Maximum number of tasks. A sink reading Kafka whose chain keeps no state runs this many \
     tasks in each host, each a consumer in the sink's group with its own share of the \
     partitions, its own chain and its own writer (Redis, Parquet, Kafka and blackhole sinks; \
     the FileSink, which writes one file, runs one). For a sink with windows or stateful \
     plugins reading Kafka, above 1 means the hosts running it share its partitions: state is \
     kept per input partition and moves with it between hosts through the connector's \
     changelog topic (see State and checkpoints), one task per host; 1 reads every partition \
     on each host. Sources, bounded runs (--once) and sinks without Kafka run one task.",
)
.with_default("1");

pub const STATE_STANDBY_ENABLED: ConfigKey = ConfigKey::new(
    "state.standby.enabled",
    KeyType::Boolean,
    "Warm standby copies (Kafka Streams' standby replicas), for a sink whose state moves between \
     hosts (tasks.max > 1): each host follows the changelog of the partitions it does not own \
     into a store of its own, so a host taking over a partition restores only what was written \
     since the copy's last round (every second), not the whole log. Each host then holds the \
     state of every partition on disk.",
)
.with_default("false");

pub const KEY_CONVERTER: ConfigKey = ConfigKey::new(
    "key.converter",
    KeyType::Class,
    "Converter for record keys; options under `key.converter.*`. Default: JsonConverter with \
     schemas.enable=true (Kafka Connect's worker default).",
);

pub const VALUE_CONVERTER: ConfigKey = ConfigKey::new(
    "value.converter",
    KeyType::Class,
    "Converter for record values; options under `value.converter.*`. Default: JsonConverter \
     with schemas.enable=true (Kafka Connect's worker default).",
);

pub const HEADER_CONVERTER: ConfigKey = ConfigKey::new(
    "header.converter",
    KeyType::Class,
    "Converter for header values. Accepted for compatibility; headers are kept as bytes.",
);

pub const CONFIG_ACTION_RELOAD: ConfigKey = ConfigKey::new(
    "config.action.reload",
    KeyType::String,
    "What to do when a referenced external config changes: restart or none.",
)
.with_default("restart")
.one_of(&["restart", "none"]);

pub const ERRORS_TOLERANCE: ConfigKey = ConfigKey::new(
    "errors.tolerance",
    KeyType::String,
    "Behaviour for records that fail a stage: `none` fails the task at the first one; `all` \
     sends them to the dead-letter queue and continues.",
)
.with_default("none")
.one_of(&["none", "all"]);

pub const ERRORS_LOG_ENABLE: ConfigKey = ConfigKey::new(
    "errors.log.enable",
    KeyType::Boolean,
    "Log each failed record with its error.",
)
.with_default("false");

pub const ERRORS_LOG_INCLUDE_MESSAGES: ConfigKey = ConfigKey::new(
    "errors.log.include.messages",
    KeyType::Boolean,
    "Include the failed record's key and value in the error log.",
)
.with_default("false");

pub const ERRORS_RETRY_TIMEOUT: ConfigKey = ConfigKey::new(
    "errors.retry.timeout",
    KeyType::Long,
    "Milliseconds to keep retrying a failed operation that may succeed later (lost \
     connection, timeout). 0 means no retry, -1 retries forever.",
)
.with_default("0");

pub const ERRORS_RETRY_DELAY_MAX_MS: ConfigKey = ConfigKey::new(
    "errors.retry.delay.max.ms",
    KeyType::Long,
    "Upper bound, in milliseconds, of the exponential backoff between retries.",
)
.with_default("60000");

pub const ERRORS_DLQ_TOPIC: ConfigKey = ConfigKey::new(
    "errors.deadletterqueue.topic.name",
    KeyType::String,
    "Kafka topic for dead letters (needs Kafka in the worker config, `[kafka] \
     bootstrap_servers`; either bus). Without it, dead letters go to \
     `<data dir>/dlq/<connector>.jsonl`.",
)
.with_default("");

pub const ERRORS_DLQ_REPLICATION: ConfigKey = ConfigKey::new(
    "errors.deadletterqueue.topic.replication.factor",
    KeyType::Int,
    "Replication factor of the dead-letter topic when it is created.",
)
.with_default("3");

pub const ERRORS_DLQ_CONTEXT_HEADERS: ConfigKey = ConfigKey::new(
    "errors.deadletterqueue.context.headers.enable",
    KeyType::Boolean,
    "Add `__connect.errors.*` headers to dead letters. The dead-letter file always has them.",
)
.with_default("false");

pub const TOPICS: ConfigKey = ConfigKey::new(
    "topics",
    KeyType::List,
    "Sink connectors: comma-separated topics to consume. Exactly one of `topics` and \
     `topics.regex` must be set.",
);

pub const TOPICS_REGEX: ConfigKey = ConfigKey::new(
    "topics.regex",
    KeyType::String,
    "Sink connectors: a Java regular expression; every topic it matches entirely is consumed.",
);

pub const TOPIC_UNSUBSCRIBED: ConfigKey = ConfigKey::new(
    "topic.unsubscribed",
    KeyType::String,
    "Source connectors on the embedded bus: what becomes of records of a topic no sink \
     subscribes to. `wait` holds them and the source with them (its offsets do not move; a CDC \
     slot keeps its WAL) until a sink subscribes, its status saying which topic lacks one; \
     `discard` drops them, counted as dropped. Internal topics (named `__...`, as Debezium's \
     `__debezium-heartbeat.<prefix>`) and a CDC source's signalling and transaction topics are \
     never waited for. On the Kafka bus the topic keeps them either way.",
)
.with_default("wait")
.one_of(&["wait", "discard"]);

/// The keys every connector accepts, documented.
pub const COMMON_KEYS: &[ConfigKey] = &[
    NAME,
    CONNECTOR_CLASS,
    TASKS_MAX,
    STATE_STANDBY_ENABLED,
    KEY_CONVERTER,
    VALUE_CONVERTER,
    HEADER_CONVERTER,
    CONFIG_ACTION_RELOAD,
    ERRORS_TOLERANCE,
    ERRORS_LOG_ENABLE,
    ERRORS_LOG_INCLUDE_MESSAGES,
    ERRORS_RETRY_TIMEOUT,
    ERRORS_RETRY_DELAY_MAX_MS,
    ERRORS_DLQ_TOPIC,
    ERRORS_DLQ_REPLICATION,
    ERRORS_DLQ_CONTEXT_HEADERS,
];

/// Keys only sink connectors accept.
pub const SINK_KEYS: &[ConfigKey] = &[TOPICS, TOPICS_REGEX];

/// Keys only source connectors accept.
pub const SOURCE_KEYS: &[ConfigKey] = &[TOPIC_UNSUBSCRIBED];

/// How the host runs its connectors: the run's parameters (`${param:name}`) and whether the
/// run is bounded (`headwater run --once`).
#[derive(Debug, Clone, Default)]
pub struct RunMode {
    pub params: crate::config::providers::Params,
    /// Sources stop at the end of their input, and windows fire at the end only.
    pub bounded: bool,
}

impl RunMode {
    /// What a bounded run of `config` is: the config as written and the run's parameters
    /// (its offsets belong to it, see `crate::runtime::bounded`).
    pub fn identity(&self, config: &ConnectorConfig) -> serde_json::Value {
        let params: BTreeMap<&str, &str> = self.params.iter().collect();
        serde_json::json!({"config": config.config, "params": params})
    }

    /// A short stable name of a bounded run of `config` (FNV-1a of its identity and its attempt,
    /// see `crate::runtime::bounded`), for what a connector keeps per run; `None` outside
    /// bounded runs.
    pub fn run_id(&self, config: &ConnectorConfig, data_dir: &Path) -> Option<String> {
        if !self.bounded {
            return None;
        }
        let attempt = super::bounded::attempt(data_dir, &config.name);
        let text = format!("{}#{attempt}", self.identity(config));
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Some(format!("{hash:016x}"))
    }
}

/// A validated connector, ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub config: ConnectorConfig,
    pub class: &'static str,
    pub connector_type: ConnectorType,
    pub task: Task,
    pub chain: Chain,
    /// A sink run as several tasks here (`tasks.max`, see `crate::runtime::sink_tasks`): how
    /// the tasks after `task` are built.
    pub siblings: Option<SiblingTasks>,
    /// Why a connector whose `tasks.max` is above 1 runs one task here.
    pub one_task_because: Option<&'static str>,
    /// A sink keeping its chain's state per input partition (`tasks.max` > 1, reading Kafka):
    /// how each partition's chain is built.
    pub partitioned: Option<crate::runtime::partitioned::ChainBuilder>,
    /// The sink's input is re-keyed through `headwater-<name>-repartition` first (see
    /// `crate::runtime::shuffle`); `partitioned` then builds the chains reading it.
    pub repartition: bool,
    /// `state.standby.enabled`: warm copies of the partitions other hosts own.
    pub standby: bool,
    pub policy: ErrorPolicy,
    /// The sink's subscription; `None` for sources.
    pub topics: Option<TopicSelector>,
    /// A source's `topic.unsubscribed`.
    pub unsubscribed: Unsubscribed,
    /// Keys nobody read (Kafka Connect accepts extra keys; we say which were ignored).
    pub unused_keys: Vec<String>,
    /// `key.converter` and `value.converter`: how the connector's records are written to and
    /// read from Kafka.
    pub key_converter: BuiltinConverter,
    pub value_converter: BuiltinConverter,
    /// `producer.override.*` (sources on the Kafka bus, dead letters) and
    /// `consumer.override.*` (sinks reading Kafka), prefixes stripped.
    pub producer_overrides: BTreeMap<String, String>,
    pub consumer_overrides: BTreeMap<String, String>,
}

impl Prepared {
    /// How many tasks the connector runs in a host, for `validate`; `None` when it runs one
    /// because `tasks.max` says so.
    pub fn tasks_summary(&self) -> Option<String> {
        let group = format!("connect-{}", self.config.name);
        match (&self.siblings, self.one_task_because) {
            (Some(siblings), _) => Some(format!(
                "tasks: {} in each host, each a consumer of group {group} with its own share of \
                 the partitions and its own writer",
                siblings.count()
            )),
            (None, Some(why)) => Some(format!("tasks: 1 in each host ({why})")),
            (None, None) => None,
        }
    }

    /// What the connector's stateful steps (windows, stateful plugins) do with their state,
    /// for `validate`; `None` when its chain keeps none.
    pub fn state_summary(&self) -> Option<String> {
        if !self.chain.is_stateful() {
            return None;
        }
        let store = format!(
            "<data dir>/state/{}.redb",
            crate::offsets::file_stem(&self.config.name)
        );
        Some(match self.connector_type {
            ConnectorType::Source => format!(
                "stateful steps: their state is checkpointed with the source's offsets in {store}"
            ),
            ConnectorType::Sink if self.repartition => format!(
                "stateful steps behind a repartition topic (tasks.max > 1, the window grouping \
                 by fields the topics are not keyed by): group connect-{name} reads the topics, \
                 runs the steps before the window and produces each record to \
                 headwater-{name}-repartition (created with the worker's topic_partitions), \
                 keyed by its group; group connect-{name}-state reads that topic, each of its \
                 partitions with its own windows, their watermark the minimum over the upstream \
                 partitions, checkpointed in {store}",
                name = self.config.name
            ),
            ConnectorType::Sink if self.partitioned.is_some() => format!(
                "stateful steps, state per input partition (tasks.max > 1): the consumer joins \
                 group connect-{name} (cooperative-sticky), so the hosts running this connector \
                 share the partitions; each partition's windows and watermark are its own, \
                 checkpointed with its offset in {store}; windows group by fields the topics \
                 are keyed by (group.by.partitioned), so no repartition topic is created; each \
                 checkpoint is copied to the compacted changelog \
                 headwater-{name}-<topic>-changelog (one per input topic, created with its \
                 partitions), through which each partition's state follows it to whichever \
                 host the group gives it",
                name = self.config.name
            ),
            ConnectorType::Sink => format!(
                "stateful steps, one reader (tasks.max = 1, or no Kafka): the consumer reads \
                 every partition of the sink's Kafka topics (no consumer-group rebalancing, no \
                 repartition topic; every host running this connector computes every window), \
                 and the state is checkpointed with the consumed offsets in {store}; batches \
                 of local sources are acknowledged once a checkpoint holds them"
            ),
        })
    }
}

fn error_policy(options: &mut Options) -> ErrorPolicy {
    let defaults = ErrorPolicy::default();
    let tolerance = match options.choice(&ERRORS_TOLERANCE).as_deref() {
        Some("all") => Tolerance::All,
        _ => Tolerance::None,
    };
    let retry_timeout = match options.i64(&ERRORS_RETRY_TIMEOUT) {
        Some(-1) => None,
        Some(ms) if ms >= 0 => Some(Duration::from_millis(ms.unsigned_abs())),
        Some(ms) => {
            options.issue(
                ERRORS_RETRY_TIMEOUT.name,
                format!("expected -1 (forever) or a non-negative number of ms, got {ms}"),
            );
            defaults.retry_timeout
        }
        None => defaults.retry_timeout,
    };
    let dlq_topic = options
        .string(&ERRORS_DLQ_TOPIC)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    ErrorPolicy {
        dlq_topic,
        dlq_replication: options
            .positive(&ERRORS_DLQ_REPLICATION)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(defaults.dlq_replication),
        dlq_context_headers: options.bool(&ERRORS_DLQ_CONTEXT_HEADERS).unwrap_or(false),
        tolerance,
        log_enable: options.bool(&ERRORS_LOG_ENABLE).unwrap_or(false),
        log_include_messages: options.bool(&ERRORS_LOG_INCLUDE_MESSAGES).unwrap_or(false),
        retry_timeout,
        retry_delay_max: options
            .u64(&ERRORS_RETRY_DELAY_MAX_MS)
            .map(Duration::from_millis)
            .unwrap_or(defaults.retry_delay_max),
    }
}

fn topic_selector(options: &mut Options) -> Option<TopicSelector> {
    let topics = options.list(&TOPICS);
    let has_regex = options.contains(TOPICS_REGEX.name);
    match (topics.is_empty(), has_regex) {
        (false, true) => {
            options.issue(
                TOPICS.name,
                "topics and topics.regex are mutually exclusive options, but both are set.",
            );
            None
        }
        (true, false) => {
            options.issue(TOPICS.name, "Must configure one of topics or topics.regex");
            None
        }
        (false, false) => Some(TopicSelector::List(topics.into_iter().collect())),
        (true, true) => options
            .full_match_regex(&TOPICS_REGEX)
            .map(TopicSelector::Regex),
    }
}

/// librdkafka properties that load code (a shared library, an OpenSSL engine or provider) or run
/// a command: a confined config may not set them.
const CODE_LOADING_CLIENT_KEYS: &[&str] = &[
    "plugin.library.paths",
    "sasl.kerberos.kinit.cmd",
    "ssl.engine.location",
    "ssl_engine_location",
    "ssl.providers",
];

/// The Kafka client properties under `prefix` (`producer.override.` ...), prefix stripped. With
/// a confined config, the files they name must be allowed and the code-loading ones are
/// refused.
fn client_overrides(options: &mut Options, prefix: &str) -> BTreeMap<String, String> {
    let overrides: BTreeMap<String, String> = options.take_under(prefix).into_iter().collect();
    if let Some(paths) = options.confinement().cloned() {
        for (key, value) in &overrides {
            let full = format!("{prefix}{key}");
            if CODE_LOADING_CLIENT_KEYS.contains(&key.as_str()) {
                options.issue(
                    &full,
                    "loads code or runs a command on this host: only a config in connectors.d/ \
                     (the operator's own) may set it, not one created over the REST API",
                );
            } else if (key.ends_with(".location")
                || key.ends_with(".keytab")
                || key.ends_with(".file"))
                && let Err(e) = paths.check(Path::new(value.trim()))
            {
                options.issue(&full, e);
            }
        }
    }
    overrides
}

/// Resolves placeholders, reads the common keys, builds the transform chain and the
/// connector's task. Every problem is reported at once. With `confine` (a config from a REST
/// caller), every file the config names must be in its directories and `${env:...}` may only
/// read its variables.
pub fn prepare(
    registry: &Registry,
    config: &ConnectorConfig,
    data_dir: &Path,
    kafka: Option<&KafkaSettings>,
    run: &RunMode,
    confine: Option<Confine<'_>>,
) -> Result<Prepared, ConfigErrors> {
    let fail = |issues: Vec<ConfigIssue>| ConfigErrors {
        connector: config.name.clone(),
        issues,
    };
    let resolved = providers::resolve(&config.config, &run.params, confine).map_err(fail)?;
    let mut options = Options::new(resolved.clone());
    if let Some(confine) = confine {
        options.confine(Arc::clone(confine.paths));
    }
    options.string(&NAME);
    let class = options.string(&CONNECTOR_CLASS);
    let plugin = class.as_deref().and_then(|c| {
        let found = registry.find(c);
        if found.is_none() {
            let known = registry.class_names().join(", ");
            options.issue(
                CONNECTOR_CLASS.name,
                format!("unknown connector class {c:?}; known classes: {known}"),
            );
        }
        found
    });
    let tasks_max = options.positive(&TASKS_MAX).unwrap_or(1);
    let is_sink = plugin.as_ref().map(|p| p.connector_type()) == Some(ConnectorType::Sink);
    // Several tasks (or hosts) sharing a sink's Kafka partitions: its stateful steps keep
    // state per partition (`crate::runtime::partitioned`). The config is checked for it even
    // without Kafka (a worker without Kafka feeds the sink from local sources, one reader):
    // a window that would need a repartition topic is refused either way.
    let per_partition_config = is_sink && tasks_max > 1;
    let per_partition = per_partition_config && kafka.is_some();
    let standby = options.bool(&STATE_STANDBY_ENABLED).unwrap_or(false);
    if standby && !per_partition_config {
        options.issue(
            STATE_STANDBY_ENABLED.name,
            "warm standby copies are of a sink's state kept per partition: they need tasks.max \
             above 1 (and Kafka in the worker config)"
                .to_owned(),
        );
    }
    options.string(&HEADER_CONVERTER);
    options.choice(&CONFIG_ACTION_RELOAD);
    let key_converter = BuiltinConverter::from_options(&mut options, &KEY_CONVERTER);
    let value_converter = BuiltinConverter::from_options(&mut options, &VALUE_CONVERTER);
    let policy = error_policy(&mut options);
    let producer_overrides = client_overrides(&mut options, "producer.override.");
    let consumer_overrides = client_overrides(&mut options, "consumer.override.");
    client_overrides(&mut options, "admin.override.");
    let chain_ctx = crate::api::transform::ChainContext {
        connector: config.name.clone(),
        data_dir: data_dir.to_path_buf(),
        // A sink's stateful steps follow each of its inputs' watermarks (Kafka partitions,
        // local sources); a source's records are one stream.
        // (A chain per partition sees one input.)
        inputs: if is_sink && !per_partition {
            crate::api::transform::Inputs::Many
        } else {
            crate::api::transform::Inputs::One
        },
        state_scope: None,
        per_partition: per_partition_config,
        kafka: kafka.is_some(),
        bounded: run.bounded,
    };
    let chain = crate::transforms::build_chain(&mut options, &chain_ctx);
    let sibling_chain_ctx = chain_ctx.clone();
    // With several readers, a window grouping by fields the topics are not keyed by has its
    // input re-keyed through a repartition topic first (`crate::runtime::shuffle`).
    let repartition = per_partition && chain.needs_repartition();
    if run.bounded && repartition {
        // Its second stage reads a topic the first fills during the run: no end offsets at the
        // start bound it.
        options.issue(
            "tasks.max",
            "a window regrouping its input through a repartition topic cannot run in a bounded \
             run (--once): set tasks.max=1, or group by the topics' keys",
        );
    }
    let partitioned = (per_partition && chain.is_stateful()).then(|| {
        let mut builder =
            crate::runtime::partitioned::ChainBuilder::new(resolved.clone(), chain_ctx);
        if repartition {
            builder = builder.from_first_stateful();
        }
        builder
    });
    let Some(plugin) = plugin else {
        return Err(fail(options.issues().to_vec()));
    };
    let connector_type = plugin.connector_type();
    if run.bounded && connector_type == ConnectorType::Source && !plugin.ends_in_bounded_runs() {
        options.issue(
            CONNECTOR_CLASS.name,
            format!(
                "{} does not end at the end of its input, so it cannot run in a bounded run \
                 (--once); sources that do: headwater.file.FileSource, \
                 headwater.postgres.QuerySource",
                plugin.class()
            ),
        );
    }
    let (topics, unsubscribed) = match connector_type {
        ConnectorType::Sink => (topic_selector(&mut options), Unsubscribed::Wait),
        ConnectorType::Source => match options.choice(&TOPIC_UNSUBSCRIBED).as_deref() {
            Some("discard") => (None, Unsubscribed::Discard),
            _ => (None, Unsubscribed::Wait),
        },
    };
    let (task_count, one_task_because) = TaskPlan {
        connector: &config.name,
        tasks_max: usize::try_from(tasks_max).unwrap_or(1),
        plugin: &**plugin,
        reads_kafka: kafka.is_some(),
        bounded: run.bounded,
        stateful: chain.is_stateful(),
    }
    .count();
    let ctx = BuildContext {
        connector: config.name.clone(),
        data_dir: data_dir.to_path_buf(),
        key_converter: Arc::new(key_converter.clone()),
        value_converter: Arc::new(value_converter.clone()),
        kafka: kafka.map(|k| k.with_overrides(&producer_overrides, &consumer_overrides)),
        bounded_run: run.run_id(config, data_dir),
        task: TaskIndex {
            id: 0,
            of: task_count,
        },
    };
    let task = plugin.build(&mut options, &ctx);
    let siblings = (task_count > 1).then(|| {
        SiblingTasks::new(
            Arc::clone(plugin),
            // Tasks after the first are built from the same resolved config. (A chain per
            // partition is never run as several tasks: this and the clone above exclude
            // each other.)
            resolved,
            confine.map(|c| Arc::clone(c.paths)),
            sibling_chain_ctx,
            ctx.clone(),
        )
    });
    let unused_keys = options.finish().map_err(fail)?;
    let task = task.ok_or_else(|| {
        fail(vec![ConfigIssue {
            key: CONNECTOR_CLASS.name.to_owned(),
            message: "the connector could not be built from this config".into(),
        }])
    })?;
    Ok(Prepared {
        config: config.clone(),
        class: plugin.class(),
        connector_type,
        task,
        chain,
        siblings,
        one_task_because,
        partitioned,
        repartition,
        standby: standby && per_partition,
        policy,
        topics,
        unsubscribed,
        unused_keys,
        key_converter,
        value_converter,
        producer_overrides,
        consumer_overrides,
    })
}
