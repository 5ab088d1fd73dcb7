//! The state of a sink's partitions follows them from host to host through a changelog topic
//! in Kafka (Kafka Streams' model).
//!
//! A sink keeping state per input partition (`tasks.max` > 1, see `crate::runtime::partitioned`)
//! writes, at every checkpoint, the changed entries of each partition's state to a compacted
//! topic — partition `p` of the changelog holds the state of input partition `p` — and ends
//! them with a checkpoint marker naming the input positions that state holds. Only then is the
//! checkpoint written locally (with where the changelog holds it) and the group's offsets
//! committed. So the changelog always holds a checkpoint at least as new as the group's
//! offsets, and the newest marker tells where reading resumes.
//!
//! A host assigned a partition restores its state before it processes any of its records:
//! from the local store alone when the changelog ends with this host's own last marker; on
//! top of the local state from there when the log goes further (another host owned the
//! partition meanwhile); else all of it. Changes after the last marker are an unfinished
//! checkpoint and are dropped. The input positions come from the last marker, so records
//! between the group's offset and them are skipped, and the state and the input go on
//! together: no record counted twice or lost.
//!
//! **Epochs.** Every record carries its writer's epoch, and a host that takes a partition
//! first writes a claim with a higher epoch. Readers ignore records of a lower epoch than the
//! newest claim before them, and drop what an older owner left unfinished: a host that lost
//! the partition without noticing (a long pause) cannot change what the next restore reads.
//!
//! Names: `headwater-<connector>-<topic>-changelog` for each input topic (behind the
//! connector's repartition topic, `headwater-<connector>-changelog`), created compacted with
//! as many partitions as the input topic.

mod record;
mod restore;
mod standby;
mod write;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::kafka::producer::BatchProducer;
use crate::runtime::kafka_bus::link::KafkaLink;

pub use restore::Restored;
pub use standby::Standby;

/// Why a changelog could not be written or read. Names the topic and partition.
///
/// A host that finds another one has written its partition since ([`Self::fenced`]) has lost
/// the partition without noticing (a long pause): its task stops and starts again, rejoining
/// the group, so it neither writes that partition nor commits its offsets.
#[derive(Debug, thiserror::Error)]
#[error("changelog topic {topic} partition {partition}: {message}")]
pub struct ChangelogError {
    pub topic: String,
    pub partition: i32,
    pub message: String,
    /// The changelog cannot give the state the input needs (records deleted, foreign
    /// records): trying again would not help. Otherwise Kafka could not be reached.
    pub lost: bool,
    /// Another host has claimed the partition.
    pub fenced: bool,
}

/// The changelog of one sink connector's state partitions.
pub struct Changelog {
    connector: String,
    link: Arc<KafkaLink>,
    producer: BatchProducer,
    /// The partitions this host has claimed, by state partition (`<topic>-<partition>`).
    claimed: Mutex<HashMap<String, Claim>>,
    /// A client for the logs' end offsets (made on first use).
    probe: Arc<std::sync::OnceLock<ChangelogConsumer>>,
    /// This host keeps warm copies of the partitions it does not own
    /// (`state.standby.enabled`, see [`Standby`]): restores take them.
    standby: bool,
    /// Held while a warm copy is being caught up or taken over, so neither sees the other
    /// half done.
    copying: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// A changelog partition this host writes.
#[derive(Debug, Clone)]
struct Claim {
    topic: String,
    partition: i32,
    epoch: u64,
    /// The positions of the last marker written (a checkpoint that changed nothing in the
    /// partition writes no marker).
    positions: Vec<(serde_json::Value, u64)>,
    /// The offset after this host's last record: the log's end while no other host writes.
    next: i64,
}

/// A consumer reading changelog partitions outside any group.
type ChangelogConsumer = rdkafka::consumer::BaseConsumer<ReadToEnd>;

/// The client context of changelog readers: they ask for partition ends
/// (`enable.partition.eof`), which librdkafka also reports as errors; those are not logged as
/// such.
struct ReadToEnd;

impl rdkafka::ClientContext for ReadToEnd {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if crate::kafka::client::is_partition_eof(&error) {
            tracing::trace!(reason, "Changelog partition read to its end.");
        } else {
            tracing::warn!(error = %error, reason, "Kafka client error while reading a changelog.");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReadToEnd {}

/// Where the local store keeps the changelog offset and epoch of a state partition's last
/// marker; named in the partition's scope, so it goes and comes with the partition's state.
fn local_key(scope: &str) -> String {
    format!("changelog@{scope}")
}

/// What the local store keeps under [`local_key`]: where the changelog holds the state the
/// store holds, and the epoch this host wrote it with.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct Local {
    offset: i64,
    epoch: u64,
}

impl Local {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The changelog topic of a connector's input topic.
pub fn topic_name(connector: &str, input_topic: &str) -> String {
    if input_topic == crate::runtime::shuffle::topic_name(connector) {
        format!("headwater-{connector}-changelog")
    } else {
        format!("headwater-{connector}-{input_topic}-changelog")
    }
}

/// The input topic and partition of a state partition (`clicks-1` → `clicks`, 1).
fn input_of(scope: &str) -> Option<(&str, i32)> {
    let (topic, partition) = scope.rsplit_once('-')?;
    Some((topic, partition.parse().ok()?))
}

impl Changelog {
    pub fn new(
        connector: &str,
        link: Arc<KafkaLink>,
    ) -> Result<Self, crate::api::error::ConnectorError> {
        Ok(Self {
            connector: connector.to_owned(),
            producer: link.producer()?,
            link,
            claimed: Mutex::new(HashMap::new()),
            probe: Arc::new(std::sync::OnceLock::new()),
            standby: false,
            copying: Arc::new(Mutex::new(())),
        })
    }

    /// Restores take the warm copies a [`Standby`] keeps in the state store when they are
    /// newer than the partition's own state there.
    pub fn with_standby(mut self) -> Self {
        self.standby = true;
        self
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claim>> {
        self.claimed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The host no longer owns `scope` (its partition was revoked): nothing more is written
    /// for it until it is claimed again.
    pub fn release(&self, scope: &str) {
        self.claims().remove(scope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changelogs_are_named_after_the_connector_and_its_input() {
        assert_eq!(
            topic_name("audit", "click-events"),
            "headwater-audit-click-events-changelog"
        );
        assert_eq!(
            topic_name("audit", "headwater-audit-repartition"),
            "headwater-audit-changelog"
        );
        assert_eq!(input_of("click-events-3"), Some(("click-events", 3)));
        assert_eq!(input_of("local"), None);
    }
}
