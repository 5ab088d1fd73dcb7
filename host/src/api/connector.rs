//! What a connector implements: a [`Source`] or a [`Sink`], and the [`ConnectorPlugin`] that
//! builds one from config. The runtime drives them (`crate::runtime`).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::api::convert::Converter;
use crate::api::error::{ConnectorError, RecordError};
use crate::api::kafka::KafkaSettings;
use crate::api::metrics::ConnectorMetrics;
use crate::api::options::{ConfigKey, Options};
use crate::api::record::Record;

/// Whether a connector produces or consumes records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Source => "source",
            Self::Sink => "sink",
        }
    }
}

/// What a plugin may use while building its task. Building must not do I/O: `headwater
/// validate` builds tasks too.
#[derive(Debug, Clone)]
pub struct BuildContext {
    pub connector: String,
    pub data_dir: PathBuf,
    /// `key.converter` and `value.converter` as configured (sinks that serialize use them).
    pub key_converter: Arc<dyn Converter>,
    pub value_converter: Arc<dyn Converter>,
    /// The worker's Kafka (`[kafka]`), for connectors that talk to Kafka themselves.
    pub kafka: Option<KafkaSettings>,
    /// In a bounded run (`headwater run --once`): a stable id of this connector's run (its
    /// config and the run's parameters), the same when an interrupted run is started again.
    pub bounded_run: Option<String>,
    /// Which of the connector's tasks this is (0-based) and how many run in this process: a
    /// sink that [`ConnectorPlugin::runs_in_parallel`] keeps what it writes apart by it.
    pub task: TaskIndex,
}

/// One task of a connector run as several in one process (`tasks.max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskIndex {
    /// This task's id, 0-based, as the REST API and the dead letters' headers name it.
    pub id: usize,
    /// How many tasks of the connector run in this process.
    pub of: usize,
}

impl TaskIndex {
    /// The one task of a connector that runs one.
    pub const ONLY: Self = Self { id: 0, of: 1 };
}

/// A signal sent to a running source through the REST API (`POST
/// /connectors/{name}/signals`): Debezium's signal, an id, a type and its data (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub id: String,
    pub kind: String,
    pub data: Option<String>,
}

/// How many signals may wait for a source to read them.
pub const SIGNAL_QUEUE: usize = 64;

/// A built, not yet running, task.
pub enum Task {
    Source(Box<dyn Source>),
    Sink(Box<dyn Sink>),
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Source(_) => f.write_str("Task::Source"),
            Self::Sink(_) => f.write_str("Task::Sink"),
        }
    }
}

/// A connector class: its names, its documented keys, and how to build its task.
pub trait ConnectorPlugin: Send + Sync {
    /// Headwater's class name, e.g. `headwater.file.FileSource`.
    fn class(&self) -> &'static str;
    /// Other accepted class names (Kafka Connect's or Debezium's).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    fn connector_type(&self) -> ConnectorType;
    /// Every connector-specific key, documented.
    fn keys(&self) -> &'static [ConfigKey];
    /// Pulls the connector's own keys out of `options` and builds the task. Problems are
    /// recorded in `options`; `None` when the config is invalid.
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task>;

    /// Whether its tasks read signals ([`SourceContext::take_signals`]); the REST API refuses
    /// signals for the others.
    fn accepts_signals(&self) -> bool {
        false
    }

    /// Whether its source tasks end at the end of their input in a bounded run
    /// ([`SourceContext::bounded`]); a bounded run refuses the sources that would not.
    fn ends_in_bounded_runs(&self) -> bool {
        false
    }

    /// Whether several of its sink tasks may run at once in one process, each given a share
    /// of the Kafka partitions by the consumer group (`tasks.max`): they must not write over
    /// one another (a Parquet file's name carries its task; one output file cannot be shared,
    /// so the FileSink runs one task).
    fn runs_in_parallel(&self) -> bool {
        false
    }

    /// Whether its source tasks resume an interrupted bounded run from their offsets; when one
    /// of a run's sources does not, an interrupted run starts again from nothing.
    fn resumes_bounded_runs(&self) -> bool {
        true
    }
}

/// A source task. `run` reads from its system until cancelled and hands records to
/// [`SourceContext::send`]. In a bounded run ([`SourceContext::bounded`]) it returns `Ok` once
/// it has sent all of its input (every matched file to its end, one complete query pass).
#[async_trait]
pub trait Source: Send {
    async fn run(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError>;
}

/// A sink task. The runtime calls `write` with each batch, then `flush` whenever
/// `flush_due` says so, at `flush_deadline`, and before stopping; records are acknowledged to
/// their sources only after a successful flush.
#[async_trait]
pub trait Sink: Send {
    /// Prepares the sink (connects, recovers state). Called before the first write.
    async fn open(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }

    /// Whether this sink already durably holds the record (after a crash between its commit
    /// and the source's offset commit). Such records are acknowledged without being written.
    fn already_written(&self, _record: &Record) -> bool {
        false
    }

    /// Takes a batch; may buffer. Returns the records it could not write, for the DLQ.
    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError>;

    /// Makes everything written so far durable.
    async fn flush(&mut self) -> Result<(), ConnectorError>;

    /// True when buffered data should be flushed now (a size threshold was reached).
    fn flush_due(&self) -> bool {
        true
    }

    /// The latest time buffered data may wait before a flush (a time threshold).
    fn flush_deadline(&self) -> Option<Instant> {
        None
    }

    /// The files this sink has committed since it opened, for a sink that writes files
    /// (reported in metrics and a bounded run's summary).
    fn files_committed(&self) -> Option<u64> {
        None
    }

    /// A bounded run's input ended and everything written was flushed: a sink that stages its
    /// output for the run publishes it now.
    async fn end_input(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// The requested state of a running connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    Started,
    Paused,
}

/// One poll's worth of source output.
#[derive(Debug, Default)]
pub struct SourceBatch {
    pub records: Vec<Record>,
    /// Records that could not be read (a malformed line), for the error policy.
    pub failed: Vec<(Record, RecordError)>,
    /// The source offsets (partition, offset) reached after this batch.
    pub offsets: Vec<(Value, Value)>,
    /// Bytes read, for metrics.
    pub bytes: u64,
}

/// What a source task uses to emit records and read its committed offsets. The runtime
/// implements it (`crate::runtime::source_context`): sources see only this.
#[async_trait]
pub trait SourceContext: Send {
    /// The connector's name.
    fn connector(&self) -> &str;

    /// The offset committed for `partition` before this task started.
    fn committed(&self, partition: &Value) -> Option<&Value>;

    /// The offset of `partition` as of the newest batch every sink has flushed: what a source
    /// may confirm to its upstream (a replication slot) without risking loss.
    fn acknowledged(&self, partition: &Value) -> Option<Value>;

    /// Batches sent whose records are not all flushed yet.
    fn in_flight(&self) -> usize;

    /// Cancelled when the task must stop; select on it while waiting for data.
    fn cancellation(&self) -> &CancellationToken;

    /// A bounded run (`headwater run --once`): return from [`Source::run`] at the end of the
    /// input instead of waiting for more.
    fn bounded(&self) -> bool {
        false
    }

    fn metrics(&self) -> &Arc<ConnectorMetrics>;

    /// Declares topics of this source's records that nobody may read (a CDC source's
    /// signalling table and transaction metadata): on the embedded bus the source does not wait
    /// for a sink of them, as it does for its other topics.
    fn may_go_unread(&mut self, _topics: Vec<String>) {}

    /// Runs the batch through the connector's transforms, reports failures per the error
    /// policy, and publishes the rest. Waits while paused and while sinks are busy.
    async fn send(&mut self, batch: SourceBatch) -> Result<(), ConnectorError>;

    /// A source with nothing to send calls this now and then (between polls): stateful
    /// transforms checkpoint what the last batches changed, so an idle stream does not keep
    /// its newest state only in memory.
    async fn idle(&mut self) -> Result<(), ConnectorError>;

    /// The signals sent to this task through the REST API, for a source that reads them
    /// ([`ConnectorPlugin::accepts_signals`]); `None` after the first call.
    fn take_signals(&mut self) -> Option<tokio::sync::mpsc::Receiver<Signal>> {
        None
    }
}
