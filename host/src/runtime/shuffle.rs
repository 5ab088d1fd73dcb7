//! The repartition topic (Kafka Streams' `groupBy`): a sink with several readers
//! (`tasks.max` > 1) whose window groups by fields its topics are not keyed by re-keys its
//! input through `headwater-<connector>-repartition` first.
//!
//! Stage 1, this module's [`Shuffle`]: the sink's Kafka consumer (group `connect-<name>`, as a
//! stateless sink's) hands batches to a task that runs the steps before the window, reads each
//! record's group key and event time, and produces the record (serialized with fixed internal
//! converters, JSON with schemas) to the repartition partition of its key (Kafka's murmur2),
//! with headers naming its upstream partition and offset. A batch is acknowledged, and its
//! input offsets committed, once Kafka has every record of it. Every [`MARKER_EVERY`] it also
//! sends each repartition partition a marker per upstream partition with that partition's
//! newest event time, as Flink broadcasts watermarks: a window behind the repartition topic
//! takes the minimum over upstream partitions, so a record is never late because another
//! upstream partition's records happened to reach its partition first.
//!
//! Stage 2 is the sink itself with state per partition (`crate::runtime::partitioned`),
//! reading the repartition topic in group `connect-<name>-state`. Its records' positions are
//! their upstream partition and offset, so the records stage 1 produced again after a crash
//! (at least once) are skipped as a replay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::record::{Header, Record};
use crate::converters::BuiltinConverter;
use crate::kafka::client::connector_error;
use crate::kafka::producer::{BatchProducer, Outgoing, delivered};
use crate::kafka::serialize::{Serialized, serialize};
use crate::runtime::bus::Delivery;
use crate::runtime::kafka_bus::murmur2::partition_for;
use crate::runtime::reporter::ErrorReporter;
use crate::transforms::chain::Chain;

/// Header naming a record's upstream partition (`<topic>-<partition>`).
pub const SRC_HEADER: &str = "hw.src";
/// Header of a record's offset in its upstream partition.
pub const OFFSET_HEADER: &str = "hw.off";
/// Header of a record's upstream topic.
pub const TOPIC_HEADER: &str = "hw.topic";
/// How often the upstream partitions' event times are sent to every repartition partition
/// (Flink's default auto-watermark interval).
pub const MARKER_EVERY: Duration = Duration::from_millis(200);

/// The repartition topic of `connector`.
pub fn topic_name(connector: &str) -> String {
    format!("headwater-{connector}-repartition")
}

/// The consumer group of stage 2 (stage 1 uses the connector's own, `connect-<name>`).
pub fn state_group(connector: &str) -> String {
    format!("connect-{connector}-state")
}

/// The converters of the repartition topic: JSON with schemas, which keeps every Connect type.
pub fn internal_converter() -> BuiltinConverter {
    BuiltinConverter::Json {
        schemas_enable: true,
        decimal_numeric: false,
    }
}

/// A stage-2 record's position partition: the repartition partition it was read from and its
/// upstream partition, so a replay of either is recognised.
pub fn position_partition(topic: &str, partition: i32, src: &str) -> String {
    json!({ "topic": topic, "partition": partition, "src": src }).to_string()
}

/// `<topic>-<partition>` of a record's upstream partition, from its position.
fn upstream_of(record: &Record) -> Option<(String, i64)> {
    let p = record.position.as_ref()?;
    let key: serde_json::Value = serde_json::from_str(&p.partition).ok()?;
    let src = format!("{}-{}", key["topic"].as_str()?, key["partition"].as_i64()?);
    Some((src, i64::try_from(p.offset).ok()? - 1))
}

/// Stage 1: see the module documentation.
pub struct Shuffle {
    pub connector: String,
    /// The steps before the window, and the rest (whose first step keys records).
    pub prefix: Arc<Chain>,
    pub keyer: Chain,
    pub producer: BatchProducer,
    pub topic: String,
    pub partitions: i32,
    pub inbox: mpsc::Receiver<Delivery>,
    pub reporter: Arc<ErrorReporter>,
    pub cancel: CancellationToken,
}

impl Shuffle {
    /// Runs until cancelled or failed (the connector is then FAILED with the reason).
    pub async fn run(mut self) -> Result<(), ConnectorError> {
        let converter = internal_converter();
        // The newest event time of each upstream partition, and the last sent in markers.
        let mut newest: BTreeMap<String, i64> = BTreeMap::new();
        let mut marked: BTreeMap<String, i64> = BTreeMap::new();
        let mut markers = tokio::time::interval(MARKER_EVERY);
        markers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.cancel.cancelled() => return Ok(()),
                delivery = self.inbox.recv() => match delivery {
                    Some(d) => self.shuffle(d, &converter, &mut newest).await?,
                    None => return Ok(()),
                },
                _ = markers.tick() => self.mark(&newest, &mut marked).await?,
            }
        }
    }

    async fn shuffle(
        &mut self,
        delivery: Delivery,
        converter: &BuiltinConverter,
        newest: &mut BTreeMap<String, i64>,
    ) -> Result<(), ConnectorError> {
        let Delivery {
            records,
            failed,
            ack,
        } = delivery;
        self.reporter.report(failed).await?;
        // Off the async workers when a step may block (a WASM plugin).
        let out = self.prefix.apply_batch_async(records).await;
        if let Some(reason) = out.fatal {
            return Err(ConnectorError::fatal("transform chain", reason));
        }
        self.reporter.report(out.failed).await?;
        let mut keyed = Vec::with_capacity(out.kept.len());
        let mut refused = Vec::new();
        for mut record in out.kept {
            let Some((src, offset)) = upstream_of(&record) else {
                continue;
            };
            match self.keyer.shuffle_key(&mut record) {
                Some(Ok((key, t))) => {
                    let entry = newest.entry(src.clone()).or_insert(t);
                    *entry = (*entry).max(t);
                    let topic = std::mem::replace(&mut record.topic, self.topic.clone());
                    record.headers.push(Header::text(SRC_HEADER, src));
                    record
                        .headers
                        .push(Header::text(OFFSET_HEADER, offset.to_string()));
                    record.headers.push(Header::text(TOPIC_HEADER, topic));
                    keyed.push((partition_for(&key, self.partitions), record));
                }
                Some(Err(e)) => refused.push((
                    record,
                    RecordError::new(
                        Stage::Transformation,
                        crate::window::CLASS.to_owned(),
                        e.kind,
                        e.message,
                    ),
                )),
                None => {}
            }
        }
        self.reporter.report(refused).await?;
        let (partitions, records): (Vec<i32>, Vec<Record>) = keyed.into_iter().unzip();
        let (out, refused) = match serialize(records, converter, converter) {
            Serialized::Done { out, refused } => (out, refused),
            // JSON needs no registry: a retry would be a bug.
            Serialized::Retry(_) => {
                return Err(ConnectorError::fatal(
                    "serializing for the repartition topic",
                    "the internal JSON converter asked for a schema registry",
                ));
            }
        };
        self.reporter.report(refused).await?;
        let mut pending = Vec::with_capacity(out.len());
        for (mut o, partition) in out.into_iter().zip(partitions) {
            o.partition = Some(partition);
            pending.push(
                self.producer
                    .queue(&o)
                    .await
                    .map_err(|e| connector_error(format!("producing to {}", self.topic), e))?,
            );
        }
        // Acknowledged (the input offsets then committed) once Kafka has the whole batch.
        for p in pending {
            delivered(p)
                .await
                .map_err(|e| connector_error(format!("producing to {}", self.topic), e))?;
        }
        ack.ack();
        Ok(())
    }

    /// Sends every repartition partition the upstream partitions' event times that moved.
    async fn mark(
        &self,
        newest: &BTreeMap<String, i64>,
        marked: &mut BTreeMap<String, i64>,
    ) -> Result<(), ConnectorError> {
        for (src, t) in newest {
            if marked.get(src) == Some(t) {
                continue;
            }
            for partition in 0..self.partitions {
                let marker = Outgoing {
                    topic: self.topic.clone(),
                    partition: Some(partition),
                    key: None,
                    value: None,
                    headers: vec![
                        Header::text(SRC_HEADER, src.clone()),
                        Header::text(crate::window::MARKER_HEADER, t.to_string()),
                    ],
                    timestamp: None,
                };
                // Not awaited: a marker lost is superseded by the next one.
                drop(
                    self.producer
                        .queue(&marker)
                        .await
                        .map_err(|e| connector_error(format!("producing to {}", self.topic), e))?,
                );
            }
            marked.insert(src.clone(), *t);
        }
        Ok(())
    }
}
