//! Replaying dead letters (`headwater dlq replay`, `POST /connectors/{name}/dlq/replay`): once
//! the cause is fixed (a transform, a schema, the sink's target), a sink connector's dead
//! letters are sent through it again: its converters (for records that never got past them),
//! its transform chain and its sink, like new records. Those that fail again become dead
//! letters again.
//!
//! From the dead-letter file, the file is first moved aside (`<name>.jsonl.replaying`) so new
//! dead letters start a new file; it is deleted once every replayed record was flushed. From a
//! Kafka dead-letter topic, the letters of this connector are read up to the end of the topic
//! in consumer group `headwater-dlq-replay-<name>`, whose offsets are committed after the
//! flush: a second replay starts after the first.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use crate::api::convert::Converter;
use crate::api::error::{RecordError, Stage};
use crate::api::offsets::SourceOffsets;
use crate::api::record::{Header, Payload, Record};
use crate::converters::BuiltinConverter;
use crate::kafka::KafkaSettings;
use crate::runtime::ack::OffsetTracker;
use crate::runtime::bus::Delivery;
use tokio::sync::mpsc;

/// Where dead letters are replayed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayFrom {
    /// `<data dir>/dlq/<connector>.jsonl`.
    File,
    /// A Kafka dead-letter topic.
    Topic(String),
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading dead letters from {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {message}")]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("reading dead-letter topic {topic}: {source}")]
    Kafka {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("removing the replayed dead-letter file {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the worker has no Kafka ([kafka] bootstrap_servers)")]
    NoKafka,
    #[error("the connector stopped during the replay")]
    SinkStopped,
    #[error(
        "the replayed dead letters were not all flushed within {0} s; they stay where they were"
    )]
    NotFlushed(u64),
    #[error("committing the replay position: {0}")]
    Commit(#[source] rdkafka::error::KafkaError),
    #[error("a replay worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Headers Kafka Connect adds to dead letters: not part of the original record.
fn is_context_header(key: &str) -> bool {
    key.starts_with("__connect.errors.")
}

/// Rebuilds key or value bytes: read by the connector's converter (`unconverted`: bytes as a
/// converter reads them), or taken as the JSON they are.
fn payload(
    bytes: Option<Bytes>,
    converter: &BuiltinConverter,
    unconverted: bool,
) -> Result<Payload, RecordError> {
    let Some(bytes) = bytes else {
        return Ok(Payload::null());
    };
    if !unconverted {
        return Ok(Payload::json_bytes(bytes));
    }
    converter.read(bytes).map_err(|e| {
        RecordError::new(
            Stage::ValueConverter,
            converter.class(),
            crate::api::error::DATA_EXCEPTION,
            e.to_string(),
        )
    })
}

/// Letters rebuilt as records: those the converters accept, and those they refuse again.
#[derive(Debug, Default)]
struct Letters {
    pub records: Vec<Record>,
    pub failed: Vec<(Record, RecordError)>,
}

impl Letters {
    fn push(
        &mut self,
        mut record: Record,
        key: Option<Bytes>,
        value: Option<Bytes>,
        converters: (&BuiltinConverter, &BuiltinConverter),
        unconverted: (bool, bool),
    ) {
        let key_payload = payload(key.clone(), converters.0, unconverted.0);
        let value_payload = payload(value.clone(), converters.1, unconverted.1);
        match (key_payload, value_payload) {
            (Ok(k), Ok(v)) => {
                record.key = k;
                record.value = v;
                self.records.push(record);
            }
            (Err(e), _) | (_, Err(e)) => {
                record.key = key.map(Payload::json_bytes).unwrap_or_default();
                record.value = value.map(Payload::json_bytes).unwrap_or_default();
                self.failed.push((record, e));
            }
        }
    }
}

fn letter_bytes(value: &Value) -> Option<Bytes> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(Bytes::from(text.clone())),
        Value::Object(m) => m
            .get("base64")
            .and_then(Value::as_str)
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .map(Bytes::from),
        other => Some(Bytes::from(other.to_string())),
    }
}

/// Moves the dead-letter file aside and reads it. `None` when there is nothing to replay.
fn take_file(
    data_dir: &Path,
    connector: &str,
    key: &BuiltinConverter,
    value: &BuiltinConverter,
) -> Result<Option<(PathBuf, Letters)>, ReplayError> {
    let path = crate::runtime::dlq::dead_letter_file(data_dir, connector);
    let aside = path.with_extension("jsonl.replaying");
    // A replay interrupted earlier left its letters aside: take those first.
    if !aside.exists() {
        match std::fs::rename(&path, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ReplayError::File { path, source }),
        }
    }
    let text = std::fs::read_to_string(&aside).map_err(|source| ReplayError::File {
        path: aside.clone(),
        source,
    })?;
    let mut letters = Letters::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |message: String| ReplayError::Line {
            path: aside.clone(),
            line: i + 1,
            message,
        };
        let letter: Value = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
        let topic = letter["topic"]
            .as_str()
            .ok_or_else(|| bad("no \"topic\"".into()))?;
        let mut record = Record::new(topic, Payload::null());
        record.partition = letter["partition"].as_i64().unwrap_or(0) as i32;
        record.offset = letter["offset"].as_i64().unwrap_or(0);
        record.timestamp = letter["timestamp"].as_i64();
        record.headers = letter["headers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|h| {
                let key = h["key"].as_str()?;
                (!is_context_header(key)).then(|| Header {
                    key: key.to_owned(),
                    value: letter_bytes(&h["value"]),
                })
            })
            .collect();
        let stage = letter["error"]["stage"].as_str().unwrap_or("");
        let unconverted =
            stage == Stage::KeyConverter.as_str() || stage == Stage::ValueConverter.as_str();
        letters.push(
            record,
            letter_bytes(&letter["key"]),
            letter_bytes(&letter["value"]),
            (key, value),
            (unconverted, unconverted),
        );
    }
    Ok(Some((aside, letters)))
}

/// A consumer positioned after the letters it read, to commit once they are flushed.
struct TopicReplay {
    consumer: BaseConsumer,
    next: TopicPartitionList,
}

impl TopicReplay {
    /// Commits the position after the replayed letters.
    pub fn commit(&self) -> Result<(), rdkafka::error::KafkaError> {
        if self.next.count() == 0 {
            return Ok(());
        }
        self.consumer.commit(&self.next, CommitMode::Sync)
    }
}

/// Reads the letters of `connector` in `topic`, from the replay group's committed offsets (or
/// the beginning) to the end of each partition. Blocking.
fn read_topic(
    settings: &KafkaSettings,
    topic: &str,
    connector: &str,
    key: &BuiltinConverter,
    value: &BuiltinConverter,
) -> Result<(TopicReplay, Letters), ReplayError> {
    let err = |source| ReplayError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let group = format!("headwater-dlq-replay-{connector}");
    let consumer: BaseConsumer = settings
        .consumer_config(&group, &group)
        .create()
        .map_err(err)?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(err)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut wanted = TopicPartitionList::new();
    for p in &partitions {
        wanted.add_partition(topic, *p);
    }
    let committed = consumer.committed_offsets(wanted, timeout).map_err(err)?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout).map_err(err)?;
        let start = match committed.find_partition(topic, *p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => low,
        };
        if start < high {
            assignment
                .add_partition_offset(topic, *p, Offset::Offset(start))
                .map_err(err)?;
            ends.push((*p, high));
        }
    }
    let mut letters = Letters::default();
    let mut next = TopicPartitionList::new();
    if !ends.is_empty() {
        consumer.assign(&assignment).map_err(err)?;
    }
    let mut remaining = ends.clone();
    while !remaining.is_empty() {
        let message = match consumer.poll(timeout) {
            None => break,
            Some(m) => m.map_err(err)?,
        };
        let (partition, offset) = (message.partition(), message.offset());
        if let Some(end) = remaining
            .iter()
            .position(|(p, high)| *p == partition && offset + 1 >= *high)
        {
            remaining.swap_remove(end);
        }
        let mut headers = Vec::new();
        let mut owner = None;
        let mut unconverted = false;
        for h in message.headers().into_iter().flat_map(|hs| hs.iter()) {
            let text = h.value.map(|v| String::from_utf8_lossy(v).into_owned());
            match h.key {
                "__connect.errors.connector.name" => owner = text,
                "__connect.errors.stage" => {
                    unconverted = text.as_deref().is_some_and(|s| s.ends_with("_CONVERTER"));
                }
                k if is_context_header(k) => {}
                k => headers.push(Header {
                    key: k.to_owned(),
                    value: h.value.map(Bytes::copy_from_slice),
                }),
            }
        }
        let _ = next.add_partition_offset(topic, partition, Offset::Offset(offset + 1));
        // Letters of other connectors sharing the topic stay where they are.
        if owner.as_deref().is_some_and(|o| o != connector) {
            continue;
        }
        let original_topic = message
            .headers()
            .into_iter()
            .flat_map(|hs| hs.iter())
            .find(|h| h.key == "__connect.errors.topic")
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_else(|| topic.to_owned());
        let mut record = Record::new(original_topic, Payload::null());
        record.timestamp = message.timestamp().to_millis();
        record.headers = headers;
        // Dead letters in Kafka hold the bytes as consumed, or as the connector's converter
        // writes them, except Avro, written as JSON (see the reporter).
        let through = |c: &BuiltinConverter| unconverted || !matches!(c, BuiltinConverter::Avro(_));
        letters.push(
            record,
            message.key().map(Bytes::copy_from_slice),
            message.payload().map(Bytes::copy_from_slice),
            (key, value),
            (through(key), through(value)),
        );
    }
    Ok((TopicReplay { consumer, next }, letters))
}

/// The offsets a replay's batches are tracked under (nothing is committed from them).
fn replay_offsets(n: usize) -> Vec<(Value, Value)> {
    vec![(json!({ "replay": true }), json!({ "letters": n }))]
}

/// How a finished replay went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Letters handed to the connector again.
    pub replayed: usize,
    /// Letters its converters refused again (they are dead letters again).
    pub refused: usize,
    /// Where they came from.
    pub from: String,
}

/// Records per batch handed to a sink during a replay.
const REPLAY_BATCH: usize = 500;
/// How long a replay waits for the sink to flush what it was given.
const REPLAY_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// What to finish once a replay was flushed.
enum ReplayDone {
    Nothing,
    File(PathBuf),
    Topic(Box<TopicReplay>),
}

/// Sends sink connector `name`'s dead letters (from its file or a topic) to its running task
/// through `inbox`, waits until the sink flushed them, then removes the file or commits the
/// topic position, so a second replay sends nothing twice.
pub async fn run(
    name: &str,
    from: &ReplayFrom,
    data_dir: &Path,
    kafka: Option<KafkaSettings>,
    inbox: &mpsc::Sender<Delivery>,
    (key, value): (BuiltinConverter, BuiltinConverter),
) -> Result<ReplayReport, ReplayError> {
    let (letters, done): (Letters, ReplayDone) = match from {
        ReplayFrom::File => {
            let data_dir = data_dir.to_path_buf();
            let owned = name.to_owned();
            let (k, v) = (key.clone(), value.clone());
            let taken =
                tokio::task::spawn_blocking(move || take_file(&data_dir, &owned, &k, &v)).await??;
            match taken {
                None => (Letters::default(), ReplayDone::Nothing),
                Some((path, letters)) => (letters, ReplayDone::File(path)),
            }
        }
        ReplayFrom::Topic(topic) => {
            let settings = kafka.ok_or(ReplayError::NoKafka)?;
            let (owned, topic) = (name.to_owned(), topic.clone());
            let (k, v) = (key.clone(), value.clone());
            let (consumer, letters) =
                tokio::task::spawn_blocking(move || read_topic(&settings, &topic, &owned, &k, &v))
                    .await??;
            (letters, ReplayDone::Topic(Box::new(consumer)))
        }
    };
    let report = ReplayReport {
        replayed: letters.records.len(),
        refused: letters.failed.len(),
        from: match from {
            ReplayFrom::File => "file".into(),
            ReplayFrom::Topic(t) => format!("topic {t}"),
        },
    };
    let tracker = OffsetTracker::new(SourceOffsets::default());
    let mut failed = letters.failed;
    let mut records = letters.records.into_iter().peekable();
    let mut sent = 0;
    while records.peek().is_some() || !failed.is_empty() {
        let batch: Vec<Record> = records.by_ref().take(REPLAY_BATCH).collect();
        sent += batch.len();
        let ack = tracker.begin(replay_offsets(sent), 1).pop();
        let Some(ack) = ack else { break };
        let delivery = Delivery {
            records: batch,
            failed: std::mem::take(&mut failed),
            ack,
        };
        inbox
            .send(delivery)
            .await
            .map_err(|_| ReplayError::SinkStopped)?;
    }
    let deadline = tokio::time::Instant::now() + REPLAY_FLUSH_TIMEOUT;
    while tracker.in_flight() > 0 {
        if tokio::time::Instant::now() > deadline {
            return Err(ReplayError::NotFlushed(REPLAY_FLUSH_TIMEOUT.as_secs()));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match done {
        ReplayDone::Nothing => {}
        ReplayDone::File(path) => {
            std::fs::remove_file(&path).map_err(|source| ReplayError::Remove { path, source })?
        }
        ReplayDone::Topic(consumer) => tokio::task::spawn_blocking(move || consumer.commit())
            .await?
            .map_err(ReplayError::Commit)?,
    }
    Ok(report)
}
