//! Error classes shared by every connector, and the per-record error that feeds the DLQ.

use std::fmt;
use std::time::Duration;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A connector or task failure, classed for the retry loop and for status reporting
/// (Arroyo's user/external/internal split, in Kafka Connect's words).
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The configuration is wrong; retrying cannot help.
    #[error("{0}")]
    Config(String),
    /// A dependency failed in a way that may pass (connection loss, timeout).
    #[error("{context}: {source}")]
    Retriable {
        context: String,
        #[source]
        source: BoxError,
    },
    /// Anything else that stops the task.
    #[error("{context}: {source}")]
    Fatal {
        context: String,
        #[source]
        source: BoxError,
    },
    /// This host lost work to another one without noticing (a Kafka partition the group gave
    /// another host during a long pause): the task restarts by itself and rejoins, as Kafka
    /// Streams does after a `TaskMigratedException`, rather than stay FAILED.
    #[error("{context}: {source}")]
    Rejoin {
        context: String,
        #[source]
        source: BoxError,
    },
    /// A record failed and `errors.tolerance=none` forbids skipping it.
    #[error("Tolerance exceeded in error handler: {0}")]
    ToleranceExceeded(Box<RecordError>),
}

impl ConnectorError {
    pub fn retriable(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Retriable {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn fatal(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Fatal {
            context: context.into(),
            source: source.into(),
        }
    }

    pub fn rejoin(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Rejoin {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The task restarts by itself (see [`Self::Rejoin`]).
    pub fn is_rejoin(&self) -> bool {
        matches!(self, Self::Rejoin { .. })
    }

    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Retriable { .. })
    }

    /// The whole cause chain, one cause per line: what Kafka Connect shows as a task's `trace`.
    pub fn trace(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            // Most messages here already end with their cause's text: list only what is new.
            let text = cause.to_string();
            if !out.contains(&text) {
                out.push_str("\nCaused by: ");
                out.push_str(&text);
            }
            source = cause.source();
        }
        out
    }
}

/// The pipeline stage a record failed in; the names are Kafka Connect's
/// (`__connect.errors.stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    TaskPoll,
    TaskPut,
    Transformation,
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    KafkaProduce,
    KafkaConsume,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskPoll => "TASK_POLL",
            Self::TaskPut => "TASK_PUT",
            Self::Transformation => "TRANSFORMATION",
            Self::KeyConverter => "KEY_CONVERTER",
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::HeaderConverter => "HEADER_CONVERTER",
            Self::KafkaProduce => "KAFKA_PRODUCE",
            Self::KafkaConsume => "KAFKA_CONSUME",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Kafka Connect's exception class for bad data; what `__connect.errors.exception.class.name`
/// shows for a record that cannot be converted, transformed or written as it is.
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";

/// Why one record could not go on: where it failed, in which component, and the message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{stage} failed in {component}: {message}")]
pub struct RecordError {
    pub stage: Stage,
    /// The class (or alias) of the component that failed, e.g.
    /// `org.apache.kafka.connect.transforms.Cast$Value`.
    pub component: String,
    /// Short name of the error kind (`__connect.errors.exception.class.name`).
    pub kind: String,
    pub message: String,
}

impl RecordError {
    pub fn new(
        stage: Stage,
        component: impl Into<String>,
        kind: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            stage,
            component: component.into(),
            kind: kind.into(),
            message: message.into(),
        }
    }

    /// Bad data ([`DATA_EXCEPTION`]): the record cannot be handled as it is.
    pub fn data(stage: Stage, component: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(stage, component, DATA_EXCEPTION, message)
    }
}

/// `errors.tolerance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tolerance {
    /// Fail the task on the first bad record (Kafka Connect's default).
    #[default]
    None,
    /// Send bad records to the dead-letter queue and go on.
    All,
}

/// A connector's `errors.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPolicy {
    pub tolerance: Tolerance,
    /// `errors.log.enable`: log each failed record.
    pub log_enable: bool,
    /// `errors.log.include.messages`: include the record's key and value in that log line.
    pub log_include_messages: bool,
    /// `errors.retry.timeout`: how long retriable failures are retried; `None` = forever.
    pub retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`: the cap of the exponential backoff between retries.
    pub retry_delay_max: Duration,
    /// `errors.deadletterqueue.topic.name`: the Kafka topic of dead letters, if any.
    pub dlq_topic: Option<String>,
    /// `errors.deadletterqueue.topic.replication.factor`.
    pub dlq_replication: i32,
    /// `errors.deadletterqueue.context.headers.enable`.
    pub dlq_context_headers: bool,
}

impl Default for ErrorPolicy {
    fn default() -> Self {
        Self {
            tolerance: Tolerance::None,
            log_enable: false,
            log_include_messages: false,
            retry_timeout: Some(Duration::ZERO),
            retry_delay_max: Duration::from_secs(60),
            dlq_topic: None,
            dlq_replication: 3,
            dlq_context_headers: false,
        }
    }
}
