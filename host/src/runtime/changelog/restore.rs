//! Restoring a state partition from its changelog when this host is assigned the partition,
//! and claiming it (see the module documentation of `super`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{Value, json};

use super::record::{self, Decoded, EPOCH_HEADER, Marker};
use super::{
    Changelog, ChangelogConsumer, ChangelogError, Claim, Local, ReadToEnd, input_of, local_key,
    standby, topic_name,
};
use crate::api::metrics::{ConnectorMetrics, RestoreProgress};
use crate::api::offsets::SourceOffsets;
use crate::kafka::producer::delivered_at;
use crate::state::{Import, ScopeChange, StateError, StateStore, rename_scope};

/// How long a read may go without a record before the changelog counts as unreadable.
const READ_STALL: Duration = Duration::from_secs(30);
/// How long a metadata or watermark request may take.
const REQUEST_WAIT: Duration = Duration::from_secs(10);
/// Records read between two looks at the log's end, for the restore's progress (a look is a
/// request to the broker: a quarter of a second of reading at the measured rate).
const PROGRESS_EVERY: u64 = 50_000;
/// Changes applied to the local store per commit while restoring, so a restore of millions of
/// entries holds a bounded part of them in memory. Replaying the log from the last marker the
/// store holds gives the same state over any prefix of it already applied, so a restore cut
/// short resumes safely.
const CHUNK: usize = 50_000;

/// What a restore gives the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The input positions the state holds (those of the partition's inputs), or `None` when
    /// the local checkpoint's are current.
    pub positions: Option<Vec<(Value, u64)>>,
    /// Changes applied from the changelog (0: the local state was current).
    pub applied: u64,
    /// Entries taken from this host's warm standby copy (see `super::standby`).
    pub from_standby: u64,
    /// The epoch this host now writes the partition with.
    pub epoch: u64,
}

impl Changelog {
    /// Brings the state of `scope` (a Kafka partition assigned to this host) up to the newest
    /// checkpoint its changelog holds, then claims the partition. `committed`: the group's
    /// offset of the input partition. Fails, naming the changelog, when the state there cannot
    /// be what the group's offset needs — never with an empty state taken as the truth. Its
    /// progress shows in `metrics` (and so in the connector's status) while it reads.
    pub async fn restore(
        &self,
        store: &Arc<StateStore>,
        scope: &str,
        committed: Option<i64>,
        metrics: &ConnectorMetrics,
    ) -> Result<Restored, ChangelogError> {
        let Some((input, partition)) = input_of(scope) else {
            return Err(ChangelogError {
                topic: format!("headwater-{}-*-changelog", self.connector),
                partition: -1,
                message: format!("{scope} is not a Kafka partition"),
                lost: true,
                fenced: false,
            });
        };
        let mut claim = Claim {
            topic: topic_name(&self.connector, input),
            partition,
            epoch: 0,
            positions: Vec::new(),
            next: 0,
        };
        self.ensure_topic(&claim, input).await?;
        let progress = Arc::new(RestoreProgress::new(&claim.topic, partition));
        let _shown = Shown::new(metrics, scope, Arc::clone(&progress));
        let mut local = read_local(store, scope).map_err(|e| claim.error(e.to_string()))?;
        // A warm copy newer than the local state becomes the local state: the read below then
        // starts where the copy ends.
        let (from_standby, standby_positions) = match self.standby {
            true => match self.take_standby(store, scope, local).await {
                Ok(Some(copy)) => {
                    local = Some(copy.local);
                    (copy.entries, Some(copy.positions))
                }
                Ok(None) => (0, None),
                Err(e) => return Err(claim.error(e.to_string())),
            },
            false => (0, None),
        };
        let settings = self.link.settings.clone();
        let (reader, mut replay, end) = {
            let (store, scope, for_read) = (Arc::clone(store), scope.to_owned(), claim.clone());
            tokio::task::spawn_blocking(move || -> Result<_, ChangelogError> {
                let claim = for_read;
                let reader = Reader::new(&settings, &claim, progress)?;
                let low = reader.log_start()?;
                let (from, import, epoch) = match local {
                    Some(l) if low <= l.offset + 1 => (l.offset + 1, Import::OnTop, l.epoch),
                    None if low == 0 => (0, Import::Replace, 0),
                    _ => {
                        let needed = local.map_or(0, |l| l.offset + 1);
                        return Err(claim.lost(format!(
                            "the log starts at offset {low}, but the state needs it from offset \
                             {needed}: the records before it were deleted (a changelog must be \
                             compacted, cleanup.policy=compact, never deleted by retention)"
                        )));
                    }
                };
                let mut replay = Replay::new(scope, store, import, epoch);
                let end = reader.read(from, Until::End, &mut replay)?;
                Ok((reader, replay, end))
            })
            .await
            .map_err(|e| claim.error(format!("the restore task failed: {e}")))??
        };
        let positions = match replay.positions.clone() {
            Some(positions) => Some(positions),
            None if replay.import == Import::Replace && local.is_none() => {
                let positions = self.without_marker(store, scope, committed, &claim)?;
                if positions.is_some() {
                    // State kept here from before the changelog existed: kept, and written out.
                    replay.import = Import::OnTop;
                    let mut seed = store
                        .export_scope(scope)
                        .map_err(|e| claim.error(e.to_string()))?;
                    // Where the changelog holds this host's state is this host's to say.
                    seed.retain(|c| !matches!(c, ScopeChange::Meta { name, .. } if *name == local_key(scope)));
                    replay.seed = Some(seed);
                }
                positions
            }
            None => None,
        };
        let positions = positions.or(standby_positions);
        if let (Some(positions), Some(committed)) = (&positions, committed) {
            check_committed(positions, input, partition, committed, &claim)?;
        }
        // Claim the partition: a higher epoch than any before, so what an earlier owner writes
        // from now on is ignored.
        claim.epoch = replay.epoch.max(local.map_or(0, |l| l.epoch)) + 1;
        let value = Marker {
            epoch: claim.epoch,
            positions: None,
        }
        .encode();
        let pending = self
            .queue(&claim, record::marker_key(), Some(value))
            .await?;
        let mut last = delivered_at(pending)
            .await
            .map_err(|e| claim.error(format!("writing the claim: {e}")))?;
        // Records written between the read and the claim (by an owner that has not noticed it
        // lost the partition) precede the claim: readers apply them, so this host does too.
        let (mut replay, reader) = tokio::task::spawn_blocking(move || {
            let read = reader.read(end, Until::Offset(last), &mut replay);
            read.map(|_| (replay, reader))
        })
        .await
        .map_err(|e| claim.error(format!("the restore task failed: {e}")))??;
        drop(reader);
        let positions = replay.positions.clone().or(positions);
        if let Some(seed) = replay.seed.take() {
            let group = self
                .queue_group(&claim, &seed, positions.clone().unwrap_or_default())
                .await?;
            last = group.delivered(&claim).await?;
        }
        replay
            .finish(last, claim.epoch, positions.as_deref(), &self.connector)
            .map_err(|e| claim.error(e.to_string()))?;
        claim.next = last + 1;
        claim.positions = match &positions {
            Some(p) => p.clone(),
            None => local_positions(store, &self.connector, scope)
                .map_err(|e| claim.error(e.to_string()))?,
        };
        let restored = Restored {
            positions,
            applied: replay.applied,
            from_standby,
            epoch: claim.epoch,
        };
        self.claims().insert(scope.to_owned(), claim);
        Ok(restored)
    }

    /// Makes the warm copy of `scope` (see `super::standby`) its state when it is newer than
    /// what `store` holds (`local`): its tables are renamed, nothing is copied.
    async fn take_standby(
        &self,
        store: &Arc<StateStore>,
        scope: &str,
        local: Option<Local>,
    ) -> Result<Option<WarmCopy>, StateError> {
        let (store, scope, copying) = (
            Arc::clone(store),
            scope.to_owned(),
            Arc::clone(&self.copying),
        );
        let taken = tokio::task::spawn_blocking(move || {
            let _copying = copying.lock().unwrap_or_else(|e| e.into_inner());
            let copy_scope = standby::copy_scope(&scope);
            let Some(copy) = read_local(&store, &copy_scope)? else {
                return Ok(None);
            };
            if local.is_some_and(|l| l.offset >= copy.offset) {
                return Ok(None);
            }
            let positions = standby::copy_positions(&store, &copy_scope)?;
            let entries = store.promote_scope(&copy_scope, &scope)?;
            Ok(Some(WarmCopy {
                entries,
                local: copy,
                positions,
            }))
        })
        .await;
        taken.map_err(|e| StateError {
            path: std::path::PathBuf::new(),
            message: format!("taking the warm copy failed: {e}"),
        })?
    }

    /// No marker in the changelog and no changelog position here: either state this host kept
    /// before the connector had a changelog (written out after the claim), a new partition, or
    /// lost state.
    fn without_marker(
        &self,
        store: &StateStore,
        scope: &str,
        committed: Option<i64>,
        claim: &Claim,
    ) -> Result<Option<Vec<(Value, u64)>>, ChangelogError> {
        let positions = local_positions(store, &self.connector, scope)
            .map_err(|e| claim.error(e.to_string()))?;
        if !positions.is_empty() {
            return Ok(Some(positions));
        }
        match committed {
            Some(offset) => Err(claim.lost(format!(
                "it holds no state of {scope}, but the group has read that partition up to \
                 offset {offset}: the state is lost (was the changelog topic deleted?). Reset \
                 the connector's offsets (DELETE /connectors/{}/offsets) to start over",
                self.connector
            ))),
            None => Ok(None),
        }
    }

    /// Creates the changelog topic (compacted, as many partitions as the input topic) unless
    /// it exists, and checks it has the partition.
    async fn ensure_topic(&self, claim: &Claim, input: &str) -> Result<(), ChangelogError> {
        let mut had = self.partitions(claim, &claim.topic).await?;
        if had == 0 {
            let count = i32::try_from(self.partitions(claim, input).await?)
                .unwrap_or(i32::MAX)
                .max(claim.partition + 1);
            self.link
                .topics
                .ensure_compacted(&claim.topic, count)
                .await
                .map_err(|e| claim.error(e.to_string()))?;
            had = self.partitions(claim, &claim.topic).await?;
            if had == 0 {
                return Err(claim.error(format!(
                    "the topic does not exist and could not be created (see the warning \
                     before): create it with cleanup.policy=compact and {count} partitions, one \
                     per partition of {input}"
                )));
            }
        }
        if had <= usize::try_from(claim.partition).unwrap_or(0) {
            return Err(claim.lost(format!(
                "the topic has {had} partitions; the state of {input} partition {} needs one \
                 per input partition (add partitions to it as you did to {input})",
                claim.partition
            )));
        }
        Ok(())
    }

    /// How many partitions `topic` has (0: it does not exist).
    async fn partitions(&self, claim: &Claim, topic: &str) -> Result<usize, ChangelogError> {
        let (settings, name) = (self.link.settings.clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || -> Result<usize, KafkaError> {
            let consumer: BaseConsumer = settings
                .consumer_config("headwater-changelog", "headwater-changelog")
                .create()?;
            partition_count(&consumer, &name)
        })
        .await
        .map_err(|e| claim.error(e.to_string()))?
        .map_err(|e| claim.error(format!("reading the metadata of {topic}: {e}")))
    }
}

/// How many partitions `topic` has (0: it does not exist), asked of the cluster.
pub(super) fn partition_count(consumer: &BaseConsumer, topic: &str) -> Result<usize, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_WAIT)?;
    Ok(metadata
        .topics()
        .first()
        .filter(|t| t.error().is_none())
        .map_or(0, |t| t.partitions().len()))
}

/// `change` of scope `from`, under scope `to`.
fn rename_change(change: ScopeChange, from: &str, to: &str) -> ScopeChange {
    match change {
        ScopeChange::Entry { table, key, value } => ScopeChange::Entry {
            table: rename_scope(&table, from, to),
            key,
            value,
        },
        ScopeChange::Meta { name, value } => ScopeChange::Meta {
            name: rename_scope(&name, from, to),
            value,
        },
    }
}

/// A warm copy taken into the local store.
struct WarmCopy {
    /// Its entries (and metadata).
    entries: u64,
    /// Where the changelog holds it.
    local: Local,
    /// The input positions of its last marker.
    positions: Vec<(Value, u64)>,
}

/// Where `store` says the changelog holds its state of `scope`.
pub(super) fn read_local(store: &StateStore, scope: &str) -> Result<Option<Local>, StateError> {
    Ok(store
        .meta(&local_key(scope))?
        .and_then(|b| serde_json::from_slice::<Local>(&b).ok()))
}

/// The positions the local checkpoint holds of `scope`'s inputs.
pub(super) fn local_positions(
    store: &StateStore,
    connector: &str,
    scope: &str,
) -> Result<Vec<(Value, u64)>, StateError> {
    let offsets = store.checkpointed_offsets()?.unwrap_or_default();
    Ok(offsets
        .iter()
        .filter(|(key, _)| {
            key["source"] == connector
                && scope_of_partition(&key["partition"]) == Some(scope.to_owned())
        })
        .filter_map(|(key, offset)| Some((key["partition"].clone(), offset["offset"].as_u64()?)))
        .collect())
}

fn scope_of_partition(partition: &Value) -> Option<String> {
    Some(format!(
        "{}-{}",
        partition["topic"].as_str()?,
        partition["partition"].as_i64()?
    ))
}

/// The group's offset is never past the checkpoint the changelog holds: the group commits
/// only what a checkpoint holds, and the changelog has it before.
fn check_committed(
    positions: &[(Value, u64)],
    input: &str,
    partition: i32,
    committed: i64,
    claim: &Claim,
) -> Result<(), ChangelogError> {
    let held = positions
        .iter()
        .find(|(p, _)| p["topic"] == input && p["partition"] == partition && p.get("src").is_none())
        .map(|(_, offset)| i64::try_from(*offset).unwrap_or(i64::MAX).saturating_add(1));
    match held {
        Some(next) if committed > next => Err(claim.lost(format!(
            "its newest checkpoint holds {input} partition {partition} up to offset {next}, but \
             the group has read up to {committed}: the changelog lost records (was it deleted, \
             or not compacted?)"
        ))),
        _ => Ok(()),
    }
}

/// Applying a changelog's records in order: changes wait for the marker that ends their
/// checkpoint; records of an epoch older than the newest claim are ignored.
pub(super) struct Replay {
    scope: String,
    store: Arc<StateStore>,
    import: Import,
    /// The newest epoch seen.
    epoch: u64,
    pending: Vec<ScopeChange>,
    ready: Vec<ScopeChange>,
    pub(super) positions: Option<Vec<(Value, u64)>>,
    pub(super) applied: u64,
    /// State of the scope from before the changelog, to write out (see `without_marker`).
    seed: Option<Vec<ScopeChange>>,
    /// The offset of the last marker (checkpoint or claim) read: what is applied ends there.
    pub(super) settled: Option<i64>,
    /// The scope the records are written under, when not their own (a warm copy's).
    alias: Option<String>,
}

impl Replay {
    pub(super) fn new(scope: String, store: Arc<StateStore>, import: Import, epoch: u64) -> Self {
        Self {
            scope,
            store,
            import,
            epoch,
            pending: Vec::new(),
            ready: Vec::new(),
            positions: None,
            applied: 0,
            seed: None,
            settled: None,
            alias: None,
        }
    }

    /// Writes the records of `of` (a state partition) under this replay's scope instead.
    pub(super) fn renaming(mut self, of: &str) -> Self {
        self.alias = Some(of.to_owned());
        self
    }

    fn record(&mut self, offset: i64, epoch: u64, decoded: Decoded) -> Result<(), StateError> {
        if epoch < self.epoch {
            return Ok(());
        }
        if epoch > self.epoch {
            // A new owner: what the one before left unfinished is void.
            self.pending.clear();
            self.epoch = epoch;
        }
        match decoded {
            Decoded::Change(change) => {
                let change = match &self.alias {
                    Some(of) => rename_change(change, of, &self.scope),
                    None => change,
                };
                self.pending.push(change);
            }
            Decoded::Marker(Marker {
                positions: Some(positions),
                ..
            }) => {
                self.applied += self.pending.len() as u64;
                self.ready.append(&mut self.pending);
                self.positions = Some(positions);
                self.settled = Some(offset);
                if self.ready.len() >= CHUNK {
                    self.apply(None)?;
                }
            }
            Decoded::Marker(Marker {
                positions: None, ..
            }) => {
                self.pending.clear();
                self.settled = Some(offset);
            }
        }
        Ok(())
    }

    /// Writes the changes ready, and `positions` (of `connector`'s inputs) when given.
    fn apply(&mut self, positions: Option<(&[(Value, u64)], &str)>) -> Result<(), StateError> {
        if self.ready.is_empty() && positions.is_none() {
            return Ok(());
        }
        let changes = std::mem::take(&mut self.ready);
        let scope = self.scope.clone();
        self.store
            .import_scope(&self.scope, self.import, changes, |offsets| {
                if let Some((positions, connector)) = positions {
                    replace_positions(offsets, connector, &scope, positions);
                }
            })?;
        self.import = Import::OnTop;
        Ok(())
    }

    /// The newest epoch read.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Adds a metadata entry to the next commit.
    pub(super) fn push_meta(&mut self, name: String, value: Vec<u8>) {
        self.ready.push(ScopeChange::Meta { name, value });
    }

    /// The last commit: what is ready, the changelog position `last` and `epoch`, and the
    /// input positions (`None`: the local ones stay).
    pub(super) fn finish(
        &mut self,
        last: i64,
        epoch: u64,
        positions: Option<&[(Value, u64)]>,
        connector: &str,
    ) -> Result<(), StateError> {
        self.ready.push(ScopeChange::Meta {
            name: local_key(&self.scope),
            value: json!({"offset": last, "epoch": epoch})
                .to_string()
                .into_bytes(),
        });
        self.apply(positions.map(|p| (p, connector)))
    }
}

/// Sets the positions of `scope`'s inputs in a checkpoint's offsets to `positions`.
pub(super) fn replace_positions(
    offsets: &mut SourceOffsets,
    connector: &str,
    scope: &str,
    positions: &[(Value, u64)],
) {
    let old: Vec<Value> = offsets
        .iter()
        .filter(|(key, _)| {
            key["source"] == connector
                && scope_of_partition(&key["partition"]).as_deref() == Some(scope)
        })
        .map(|(key, _)| key.clone())
        .collect();
    for key in old {
        offsets.remove(&key);
    }
    for (partition, offset) in positions {
        offsets.insert(
            json!({"source": connector, "partition": partition}),
            json!({"offset": offset}),
        );
    }
}

/// A restore in the connector's status while it lives.
struct Shown<'a> {
    metrics: &'a ConnectorMetrics,
    scope: &'a str,
}

impl<'a> Shown<'a> {
    fn new(metrics: &'a ConnectorMetrics, scope: &'a str, progress: Arc<RestoreProgress>) -> Self {
        metrics.restore_started(scope, progress);
        Self { metrics, scope }
    }
}

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        self.metrics.restore_done(self.scope);
    }
}

/// A consumer of one changelog partition, outside any group.
pub(super) struct Reader {
    consumer: ChangelogConsumer,
    claim: Claim,
    progress: Arc<RestoreProgress>,
}

impl Reader {
    pub(super) fn new(
        settings: &crate::kafka::KafkaSettings,
        claim: &Claim,
        progress: Arc<RestoreProgress>,
    ) -> Result<Self, ChangelogError> {
        let mut config = settings.consumer_config("headwater-changelog", "headwater-changelog");
        // A read from past the end is an error, never a silent jump to another offset.
        config
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "error");
        let consumer: ChangelogConsumer = config
            .create_with_context(ReadToEnd)
            .map_err(|e| claim.error(format!("creating a consumer: {e}")))?;
        Ok(Self {
            consumer,
            claim: claim.clone(),
            progress,
        })
    }

    /// The log's first offset.
    pub(super) fn log_start(&self) -> Result<i64, ChangelogError> {
        // Only the start: tansu 0.6 answers the end offset (ListOffsets, latest) with its
        // newest batch's first offset, so the end is found by reading (the fetch answers'
        // high watermark, which is right).
        self.consumer
            .fetch_watermarks(&self.claim.topic, self.claim.partition, REQUEST_WAIT)
            .map(|(low, _)| low)
            .map_err(|e| self.claim.error(format!("reading its offsets: {e}")))
    }

    /// Shows the log's end in the restore's progress. Only an estimate of time left: tansu 0.6
    /// answers its newest batch's first offset (see `log_start`), and the log may grow.
    fn show_log_end(&self) {
        if let Ok((_, end)) =
            self.consumer
                .fetch_watermarks(&self.claim.topic, self.claim.partition, REQUEST_WAIT)
        {
            self.progress.log_end(end);
        }
    }

    /// Feeds the records from `from` on to `replay`, up to `until`; returns the offset after
    /// the last record read.
    pub(super) fn read(
        &self,
        from: i64,
        until: Until,
        replay: &mut Replay,
    ) -> Result<i64, ChangelogError> {
        if let Until::Offset(to) = until
            && from >= to
        {
            return Ok(from);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(
            &self.claim.topic,
            self.claim.partition,
            Offset::Offset(from),
        )
        .map_err(|e| self.claim.error(e.to_string()))?;
        self.consumer
            .assign(&list)
            .map_err(|e| self.claim.error(format!("assigning it: {e}")))?;
        let mut next = from;
        let mut last_progress = Instant::now();
        self.progress.reading_from(from);
        if until == Until::End {
            self.show_log_end();
        }
        let mut read = 0u64;
        loop {
            if let Until::Offset(to) = until
                && next >= to
            {
                return Ok(next);
            }
            if last_progress.elapsed() > READ_STALL {
                return Err(self.claim.error(format!(
                    "unreadable: nothing from offset {next} on within {} s",
                    READ_STALL.as_secs()
                )));
            }
            let Some(result) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let message = match result {
                Ok(message) => message,
                Err(KafkaError::PartitionEOF(_)) => {
                    if until == Until::End {
                        return Ok(next);
                    }
                    continue;
                }
                Err(e) if is_out_of_range(&e) => {
                    return Err(self.claim.lost(format!(
                        "it has no offset {next}, where this host's state goes on: the log \
                         is shorter than this host's last record (was the topic deleted and \
                         created again?); reset the connector's offsets to start over"
                    )));
                }
                Err(e) => {
                    tracing::warn!(topic = %self.claim.topic, partition = self.claim.partition, error = %e, "Reading the changelog failed; retrying.");
                    continue;
                }
            };
            last_progress = Instant::now();
            next = message.offset() + 1;
            self.progress.read_one(next);
            read += 1;
            if read.is_multiple_of(PROGRESS_EVERY) {
                self.show_log_end();
            }
            let epoch = message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == EPOCH_HEADER))
                .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<u64>().ok())
                .ok_or_else(|| {
                    self.claim.lost(format!(
                        "the record at offset {} has no {EPOCH_HEADER} header: the topic holds \
                         records Headwater did not write",
                        message.offset()
                    ))
                })?;
            let decoded = record::decode(message.key().unwrap_or_default(), message.payload())
                .map_err(|e| {
                    self.claim
                        .lost(format!("the record at offset {}: {e}", message.offset()))
                })?;
            replay
                .record(message.offset(), epoch, decoded)
                .map_err(|e| self.claim.error(e.to_string()))?;
        }
    }
}

/// The offset read from is past the log's end (the reader never resets it: see `Reader::new`).
fn is_out_of_range(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode;
    matches!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset)
    )
}

/// How far [`Reader::read`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Until {
    /// The log's end as the read finds it.
    End,
    /// The record before this offset.
    Offset(i64),
}
