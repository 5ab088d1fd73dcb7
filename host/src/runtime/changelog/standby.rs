//! Warm standby copies (`state.standby.enabled`, Kafka Streams' standby replicas): each host
//! follows the changelog partitions of the state partitions it does not own into its state
//! store, under a scope of their own (`standby~<topic>-<partition>`: the tables and metadata
//! of partition `clicks-1` are kept as `...@standby~clicks-1...`). When the group gives it one
//! of them (its owner was lost or left), the restore renames the copy's tables to the
//! partition's own names — nothing is copied — and reads only what the copy had not caught up
//! with.
//!
//! The copy is applied a whole checkpoint at a time, as a restore applies it (changes after
//! the last marker wait for it, older epochs are ignored); its metadata say where in the
//! changelog it stands and which input positions it holds (never the checkpointed offsets,
//! which are the owned partitions'). Once a partition is owned here its copy is gone (it
//! became the partition's state); when the partition leaves again, following starts over.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;
use tokio_util::sync::CancellationToken;

use serde_json::Value;

use super::restore::{Reader, Replay, Until, partition_count, read_local};
use super::{Changelog, ChangelogError, Claim, topic_name};
use crate::api::metrics::{ConnectorMetrics, RestoreProgress};
use crate::runtime::partitioned::Ownership;
use crate::state::{Import, StateError, StateStore};

/// The scope the warm copy of state partition `scope` is kept under.
pub(super) fn copy_scope(scope: &str) -> String {
    // `~` is in no Kafka topic name, so no partition's own scope looks like this.
    format!("standby~{scope}")
}

/// Where a copy keeps the input positions of its last marker.
fn positions_key(copy_scope: &str) -> String {
    format!("changelog-positions@{copy_scope}")
}

/// The input positions the copy kept under `copy_scope` holds.
pub(super) fn copy_positions(
    store: &StateStore,
    copy_scope: &str,
) -> Result<Vec<(Value, u64)>, StateError> {
    Ok(store
        .meta(&positions_key(copy_scope))?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default())
}

/// How often the copies catch up: checkpoints come every second under load.
const ROUND: Duration = Duration::from_secs(1);
/// How often the changelogs' partition counts are asked for again (a topic may be created or
/// grow while the sink runs).
const METADATA_EVERY: Duration = Duration::from_secs(30);

/// Follows the changelog partitions this host does not own into warm copies in its store.
pub struct Standby {
    changelog: Arc<Changelog>,
    store: Arc<StateStore>,
    ownership: Arc<Ownership>,
    metrics: Arc<ConnectorMetrics>,
    /// A reader per followed changelog partition, kept between rounds.
    readers: HashMap<String, Reader>,
    /// The last failure told per partition, so a lasting one is logged once.
    told: HashMap<String, String>,
    /// A client for the changelogs' partition counts (made on first use).
    metadata: Option<BaseConsumer>,
    /// The partitions to follow: when they were asked for, of which topics.
    partitions: Option<(Instant, Vec<String>, BTreeMap<String, Claim>)>,
}

impl Standby {
    /// `store`: the connector's state store (`changelog`'s restores take the copies from it);
    /// `ownership`: what the sink's consumer owns, and the topics it reads.
    pub fn new(
        changelog: Arc<Changelog>,
        store: Arc<StateStore>,
        ownership: Arc<Ownership>,
        metrics: Arc<ConnectorMetrics>,
    ) -> Self {
        Self {
            changelog,
            store,
            ownership,
            metrics,
            readers: HashMap::new(),
            told: HashMap::new(),
            metadata: None,
            partitions: None,
        }
    }

    /// Catches the copies up every [`ROUND`] until `cancel`; a round under way finishes the
    /// partition it is at (await the task before another follows the same copies).
    pub async fn run(mut self, cancel: CancellationToken) {
        loop {
            let stop = cancel.clone();
            let this = tokio::task::spawn_blocking(move || {
                self.round(&stop);
                self
            });
            self = match this.await {
                Ok(this) => this,
                Err(e) => {
                    tracing::error!(error = %e, "The warm standby task failed; no more warm copies.");
                    return;
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(ROUND) => {}
            }
        }
    }

    /// One catch-up of every partition not owned.
    fn round(&mut self, cancel: &CancellationToken) {
        let connector = self.changelog.connector.clone();
        let copying = Arc::clone(&self.changelog.copying);
        for (scope, claim) in self.partitions() {
            if cancel.is_cancelled() {
                return;
            }
            // A restore taking this copy over waits, and the other way round.
            let _copying = copying.lock().unwrap_or_else(|e| e.into_inner());
            if self.ownership.owns(&scope) {
                // Its own state is newer; the reader is made again when it leaves.
                self.readers.remove(&scope);
                continue;
            }
            match self.follow(&scope, &claim) {
                Ok(applied) => {
                    self.told.remove(&scope);
                    self.metrics.standby_updated(applied);
                    if applied > 0 {
                        tracing::debug!(connector = %connector, partition = %scope, applied, "Warm standby copy caught up.");
                    }
                }
                Err(e) => {
                    let text = e.to_string();
                    if self.told.get(&scope) != Some(&text) {
                        tracing::warn!(connector = %connector, partition = %scope, error = %text, "The warm standby copy cannot follow its changelog; a failover restores from the changelog instead.");
                        self.told.insert(scope.clone(), text);
                    }
                    self.readers.remove(&scope);
                }
            }
        }
    }

    /// The state partitions of the topics the sink reads, with their changelog partition;
    /// asked of the cluster every [`METADATA_EVERY`].
    fn partitions(&mut self) -> BTreeMap<String, Claim> {
        let topics = self.ownership.topics();
        if let Some((asked, of, known)) = &self.partitions
            && asked.elapsed() < METADATA_EVERY
            && *of == topics
        {
            return known.clone();
        }
        if self.metadata.is_none() {
            let config = self
                .changelog
                .link
                .settings
                .consumer_config("headwater-changelog", "headwater-standby");
            match config.create() {
                Ok(c) => self.metadata = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot make a client for the changelogs' metadata.");
                    return BTreeMap::new();
                }
            }
        }
        let Some(consumer) = &self.metadata else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        let mut all_found = true;
        for input in &topics {
            let topic = topic_name(&self.changelog.connector, input);
            let partitions = partition_count(consumer, &topic).unwrap_or(0);
            all_found &= partitions > 0;
            for partition in 0..i32::try_from(partitions).unwrap_or(0) {
                let claim = Claim {
                    topic: topic.clone(),
                    partition,
                    epoch: 0,
                    positions: Vec::new(),
                    next: 0,
                };
                out.insert(format!("{input}-{partition}"), claim);
            }
        }
        // A changelog not created yet (its owner has not checkpointed) is asked for again
        // next round.
        self.partitions = all_found.then(|| (Instant::now(), topics, out.clone()));
        out
    }

    /// Reads `scope`'s changelog partition from where the copy stands to its end, and
    /// applies the whole checkpoints read. Returns the changes applied.
    fn follow(&mut self, scope: &str, claim: &Claim) -> Result<u64, ChangelogError> {
        let copy_scope = copy_scope(scope);
        let copy = read_local(&self.store, &copy_scope).map_err(|e| claim.error(e.to_string()))?;
        if !self.readers.contains_key(scope) {
            let progress = Arc::new(RestoreProgress::new(&claim.topic, claim.partition));
            let reader = Reader::new(&self.changelog.link.settings, claim, progress)?;
            self.readers.insert(scope.to_owned(), reader);
        }
        let Some(reader) = self.readers.get(scope) else {
            return Ok(0);
        };
        let low = reader.log_start()?;
        let (from, import, epoch) = match copy {
            Some(c) if low <= c.offset + 1 => (c.offset + 1, Import::OnTop, c.epoch),
            // The copy is too old for the log (records deleted): it starts over, if the log
            // still starts at its beginning.
            _ if low == 0 => (0, Import::Replace, 0),
            _ => {
                return Err(claim.lost(format!(
                    "the log starts at offset {low}: the records before it were deleted"
                )));
            }
        };
        let mut replay =
            Replay::new(copy_scope.clone(), Arc::clone(&self.store), import, epoch).renaming(scope);
        reader.read(from, Until::End, &mut replay)?;
        let Some(settled) = replay.settled else {
            return Ok(0);
        };
        let applied = replay.applied;
        let epoch = replay.epoch();
        if let Some(positions) = &replay.positions {
            let bytes = serde_json::to_vec(positions).unwrap_or_default();
            replay.push_meta(positions_key(&copy_scope), bytes);
        }
        // Where the changelog holds the copy, with its last commit; no checkpointed offset.
        replay
            .finish(settled, epoch, None, &self.changelog.connector)
            .map_err(|e| claim.error(e.to_string()))?;
        Ok(applied)
    }
}
