//! State per input partition: a sink reading Kafka with `tasks.max` > 1 keeps one transform
//! chain, with its own state and watermark, per input partition (Kafka Streams' task per
//! partition).
//!
//! Such a sink joins its consumer group like a stateless one, so the hosts running it share the
//! topics' partitions. A partition's state is the unit a host owns: it is stored under names of
//! its own (`window:<alias>@<topic>-<partition>`), checkpointed with the partition's offset,
//! dropped from memory when the group takes the partition away (after the checkpoint the
//! revocation forces) and restored from the store when the partition comes back. Each partition
//! keeps its own watermark, so a partition's results depend on its records alone, not on which
//! partitions share a host: the same on any host, before and after a rebalance.
//!
//! A partition's state follows it from host to host through the connector's changelog
//! (`crate::runtime::changelog`): a host assigned a partition restores its state before it
//! processes a record of it, from the local store when that is current, else from the
//! changelog, and resumes from the input positions that state holds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::api::metrics::ConnectorMetrics;
use crate::api::options::Options;
use crate::api::record::Record;
use crate::api::transform::ChainContext;
use crate::runtime::changelog::Changelog;
use crate::state::{StateError, StateStore};
use crate::transforms::chain::{Chain, ChainOutput};

/// Why a partition's chain could not be made or its state handled.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("building the transform chain of partition {scope}: {issues}")]
    Build { scope: String, issues: String },
    #[error("restoring the state of partition {scope}: {source}")]
    Changelog {
        scope: String,
        #[source]
        source: crate::runtime::changelog::ChangelogError,
    },
    #[error("the state of partition {scope}: {source}")]
    State {
        scope: String,
        #[source]
        source: StateError,
    },
}

/// Builds a connector's chain again for one state partition.
#[derive(Clone)]
pub struct ChainBuilder {
    /// The connector's config, providers resolved.
    config: BTreeMap<String, String>,
    ctx: ChainContext,
    /// Only the steps from the first stateful one on (behind a repartition topic, whose
    /// shuffle ran the others).
    from_first_stateful: bool,
}

impl std::fmt::Debug for ChainBuilder {
    // The config holds resolved secrets: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainBuilder")
            .field("connector", &self.ctx.connector)
            .finish_non_exhaustive()
    }
}

impl ChainBuilder {
    pub fn new(config: BTreeMap<String, String>, ctx: ChainContext) -> Self {
        Self {
            config,
            ctx,
            from_first_stateful: false,
        }
    }

    /// Builds only the steps from the first stateful one on, each partition's chain following
    /// every upstream partition as an input (the repartition topic mixes them).
    pub fn from_first_stateful(mut self) -> Self {
        self.from_first_stateful = true;
        self
    }

    /// The shuffle's chains: the steps before the first stateful one, and the rest (whose
    /// first step keys records; its state is never opened).
    pub fn shuffle(&self) -> Result<(Chain, Chain), PartitionError> {
        let whole = Self {
            from_first_stateful: false,
            ..self.clone()
        };
        Ok(whole.build("shuffle")?.split_at_first_stateful())
    }

    /// The chain of state partition `scope`. The config was validated when the connector was
    /// prepared; what can still fail is loading a WASM module changed since.
    pub fn build(&self, scope: &str) -> Result<Chain, PartitionError> {
        let mut options = Options::new(self.config.clone());
        let ctx = ChainContext {
            state_scope: Some(scope.to_owned()),
            // The local sources' chain follows each of them, as a one-reader sink does; so
            // does a repartition topic's partition, each upstream partition an input.
            inputs: if scope == LOCAL_SCOPE || self.from_first_stateful {
                crate::api::transform::Inputs::Many
            } else {
                crate::api::transform::Inputs::One
            },
            ..self.ctx.clone()
        };
        let mut chain = crate::transforms::build_chain(&mut options, &ctx);
        if self.from_first_stateful {
            chain = chain.split_at_first_stateful().1;
        }
        match options.issues() {
            [] => Ok(chain),
            issues => Err(PartitionError::Build {
                scope: scope.to_owned(),
                issues: issues
                    .iter()
                    .map(|i| format!("{}: {}", i.key, i.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
}

/// The name of the state partition of a Kafka partition (Kafka's own `topic-partition`).
pub fn scope_of_partition(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// The state partition of the records of local sources (and of records without a position):
/// one more partition, beside the Kafka ones, never revoked.
const LOCAL_SCOPE: &str = "local";

/// The state partition a record belongs to: its Kafka partition when the sink's consumer read
/// it, else [`LOCAL_SCOPE`].
fn scope_of(connector: &str, record: &Record) -> Arc<str> {
    if let Some(p) = &record.position
        && *p.source == *connector
        && let Ok(key) = serde_json::from_str::<serde_json::Value>(&p.partition)
        && let (Some(topic), Some(partition)) = (key["topic"].as_str(), key["partition"].as_i64())
    {
        return Arc::from(format!("{topic}-{partition}"));
    }
    Arc::from(LOCAL_SCOPE)
}

/// What the sink's consumer and its runner share about the group's assignment.
#[derive(Debug, Default)]
pub struct Ownership {
    inner: Mutex<OwnershipInner>,
}

#[derive(Debug, Default)]
struct OwnershipInner {
    /// State partitions of the Kafka partitions this member owns.
    owned: BTreeMap<String, (String, i32)>,
    /// Behind a repartition topic: the upstream partitions (`<topic>-<partition>`), each an
    /// input of every partition's windows.
    upstream: Vec<String>,
    /// The topics the consumer reads (their partitions are the state partitions).
    topics: Vec<String>,
    /// State partitions assigned whose state is not restored yet, with the group's committed
    /// offset of their Kafka partition: restored before the partition's next record.
    to_restore: BTreeMap<String, Option<i64>>,
}

impl Ownership {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> MutexGuard<'_, OwnershipInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The group gave this member `partitions`, whose committed offsets are `committed`
    /// (`None`: none committed): their state is restored before their next record.
    pub fn assign(&self, partitions: &[(String, i32, Option<i64>)]) {
        let mut inner = self.lock();
        for (topic, partition, committed) in partitions {
            let scope = scope_of_partition(topic, *partition);
            inner.to_restore.insert(scope.clone(), *committed);
            inner.owned.insert(scope, (topic.clone(), *partition));
        }
    }

    /// The group is taking `partitions` away: their chains are dropped at the next checkpoint
    /// (which the revocation forces before it completes).
    pub fn revoke(&self, partitions: &[(String, i32)]) {
        let mut inner = self.lock();
        for (topic, partition) in partitions {
            inner.owned.remove(&scope_of_partition(topic, *partition));
        }
    }

    /// The partitions assigned since the last call, to restore, with their committed offsets.
    fn take_to_restore(&self) -> BTreeMap<String, Option<i64>> {
        std::mem::take(&mut self.lock().to_restore)
    }

    /// The owned partitions whose state is restored.
    fn owned_restored(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .owned
            .keys()
            .filter(|s| !inner.to_restore.contains_key(*s))
            .cloned()
            .collect()
    }

    pub(crate) fn owns(&self, scope: &str) -> bool {
        self.lock().owned.contains_key(scope)
    }

    /// Notes the topics the consumer reads.
    pub fn set_topics(&self, topics: Vec<String>) {
        self.lock().topics = topics;
    }

    /// The topics the consumer reads.
    pub fn topics(&self) -> Vec<String> {
        self.lock().topics.clone()
    }

    /// Notes the upstream partitions of a repartition topic.
    pub fn set_upstream(&self, upstream: Vec<String>) {
        self.lock().upstream = upstream;
    }

    /// The inputs a partition's windows follow behind a repartition topic, as its records'
    /// positions name them (empty otherwise).
    fn inputs_of(&self, scope: &str) -> std::collections::BTreeSet<String> {
        let inner = self.lock();
        let Some((topic, partition)) = inner.owned.get(scope) else {
            return std::collections::BTreeSet::new();
        };
        inner
            .upstream
            .iter()
            .map(|src| crate::runtime::shuffle::position_partition(topic, *partition, src))
            .collect()
    }
}

/// A partition restored: its state partition, and the input positions its state holds
/// (`None`: those of the local checkpoint).
#[derive(Debug)]
pub struct RestoredPartition {
    pub scope: String,
    pub positions: Option<Vec<(serde_json::Value, u64)>>,
}

/// The chains of a sink keeping state per input partition, made on a partition's first record.
#[derive(Debug)]
pub struct PartitionedChains {
    connector: Arc<str>,
    builder: ChainBuilder,
    store: Arc<StateStore>,
    ownership: Arc<Ownership>,
    changelog: Arc<Changelog>,
    chains: BTreeMap<Arc<str>, Arc<Chain>>,
}

impl PartitionedChains {
    pub fn new(
        connector: &str,
        builder: ChainBuilder,
        store: Arc<StateStore>,
        ownership: Arc<Ownership>,
        changelog: Arc<Changelog>,
    ) -> Self {
        Self {
            connector: Arc::from(connector),
            builder,
            store,
            ownership,
            changelog,
            chains: BTreeMap::new(),
        }
    }

    /// Runs a batch: each partition's records through that partition's chain, in order. Call
    /// [`Self::restore_assigned`] first.
    pub async fn apply(&mut self, records: Vec<Record>) -> Result<ChainOutput, PartitionError> {
        let mut by_scope: BTreeMap<Arc<str>, Vec<Record>> = BTreeMap::new();
        for record in records {
            by_scope
                .entry(scope_of(&self.connector, &record))
                .or_default()
                .push(record);
        }
        let mut out = ChainOutput::default();
        for (scope, records) in by_scope {
            let chain = self.chain(&scope)?;
            merge(&mut out, chain.apply_batch_async(records).await);
        }
        Ok(out)
    }

    /// [`Chain::tick`] of every partition's chain. An owned partition without a chain yet
    /// gets one first: its state is restored even before its next record, so a window end
    /// that was closing when the host stopped finishes closing.
    pub fn tick(&mut self) -> Result<ChainOutput, PartitionError> {
        for scope in self.ownership.owned_restored() {
            if !self.chains.contains_key(scope.as_str()) {
                self.chain(&Arc::from(scope))?;
            }
        }
        let mut out = ChainOutput::default();
        for chain in self.chains.values() {
            merge(&mut out, chain.tick());
        }
        Ok(out)
    }

    pub fn pending(&self) -> bool {
        self.chains.values().any(|c| c.pending())
    }

    /// The chains a checkpoint writes.
    pub fn all(&self) -> Vec<Arc<Chain>> {
        self.chains.values().cloned().collect()
    }

    /// After a checkpoint: the chains of Kafka partitions the group took away leave memory
    /// (their state is in the checkpoint and the changelog), and their changelog partitions
    /// are no longer written.
    pub fn release_revoked(&mut self) {
        let (ownership, changelog) = (Arc::clone(&self.ownership), Arc::clone(&self.changelog));
        self.chains.retain(|scope, _| {
            let keep = **scope == *LOCAL_SCOPE || ownership.owns(scope);
            if !keep {
                changelog.release(scope);
            }
            keep
        });
    }

    /// Restores the state of the partitions assigned since the last call, before any of their
    /// records (see `crate::runtime::changelog`). Returns the input positions each one's state
    /// holds (`None`: the local checkpoint's). Call it with no checkpoint being written.
    pub async fn restore_assigned(
        &mut self,
        metrics: &ConnectorMetrics,
    ) -> Result<Vec<RestoredPartition>, PartitionError> {
        let mut restored = Vec::new();
        let assigned = self.ownership.take_to_restore();
        metrics.restoring(assigned.len() as u64);
        let mut left = assigned.len();
        for (scope, committed) in assigned {
            // A chain still in memory (the partition came back before it was let go) holds
            // nothing its checkpoint lacks; it is built again from the restored state.
            self.chains.remove(scope.as_str());
            let started = std::time::Instant::now();
            let outcome = self
                .changelog
                .restore(&self.store, &scope, committed, metrics)
                .await;
            left -= 1;
            metrics.restored(outcome.as_ref().ok().map(|o| o.applied));
            let outcome = outcome.map_err(|source| {
                // The partitions not reached are not restoring any more either.
                for _ in 0..left {
                    metrics.restored(None);
                }
                PartitionError::Changelog {
                    scope: scope.clone(),
                    source,
                }
            })?;
            tracing::info!(
                connector = %self.connector,
                partition = %scope,
                changes_applied = outcome.applied,
                from_standby = outcome.from_standby,
                epoch = outcome.epoch,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "Partition state restored."
            );
            restored.push(RestoredPartition {
                scope,
                positions: outcome.positions,
            });
        }
        Ok(restored)
    }

    /// Whether partitions wait to be restored.
    pub fn restores_pending(&self) -> bool {
        !self.ownership.lock().to_restore.is_empty()
    }

    fn chain(&mut self, scope: &Arc<str>) -> Result<Arc<Chain>, PartitionError> {
        if let Some(chain) = self.chains.get(scope) {
            return Ok(Arc::clone(chain));
        }
        let chain = self.builder.build(scope)?;
        chain
            .restore_state(&self.store)
            .map_err(|source| PartitionError::State {
                scope: scope.to_string(),
                source,
            })?;
        // Behind a repartition topic every upstream partition holds the watermark back from
        // the start, before its first record or marker reaches this partition.
        let inputs = self.ownership.inputs_of(scope);
        if !inputs.is_empty() {
            chain.assign(&inputs);
        }
        let chain = Arc::new(chain);
        self.chains.insert(Arc::clone(scope), Arc::clone(&chain));
        Ok(chain)
    }
}

fn merge(out: &mut ChainOutput, part: ChainOutput) {
    out.kept.extend(part.kept);
    out.failed.extend(part.failed);
    out.dropped += part.dropped;
    if out.fatal.is_none() {
        out.fatal = part.fatal;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assigned_partition_is_restored_before_it_counts_as_owned() {
        let ownership = Ownership::new();
        ownership.assign(&[("t".into(), 0, Some(90)), ("t".into(), 1, None)]);
        assert!(ownership.owns("t-0") && ownership.owns("t-1"));
        // No chain is made for a partition before its state is restored.
        assert!(ownership.owned_restored().is_empty());
        let to_restore = ownership.take_to_restore();
        assert_eq!(
            to_restore.into_iter().collect::<Vec<_>>(),
            [("t-0".to_owned(), Some(90)), ("t-1".to_owned(), None)]
        );
        assert_eq!(ownership.owned_restored(), ["t-0", "t-1"]);
        ownership.revoke(&[("t".into(), 0)]);
        assert!(!ownership.owns("t-0"));
    }

    #[test]
    fn a_record_belongs_to_its_kafka_partition_or_to_the_local_partition() {
        use crate::api::record::{Payload, Position};
        let at = |source: &str, partition: String| {
            let mut r = Record::new("t", Payload::null());
            r.position = Some(Position {
                source: Arc::from(source),
                partition: Arc::from(partition),
                offset: 1,
            });
            r
        };
        let kafka = crate::runtime::kafka_bus::intake::partition_key("clicks", 3).to_string();
        assert_eq!(&*scope_of("sink", &at("sink", kafka)), "clicks-3");
        assert_eq!(
            &*scope_of("sink", &at("files", r#"{"file":"a.jsonl"}"#.into())),
            LOCAL_SCOPE
        );
        assert_eq!(
            &*scope_of("sink", &Record::new("t", Payload::null())),
            LOCAL_SCOPE
        );
    }

    #[test]
    fn forgetting_a_partition_drops_its_state_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        let offsets = crate::api::offsets::SourceOffsets::default();
        store
            .checkpoint(&offsets, |w| {
                for name in [
                    "window:w@t-1",
                    "window:w@t-1:sessions",
                    "window:w@t-10",
                    "window:w",
                ] {
                    w.apply(name, [(b"k".as_slice(), Some(b"v".as_slice()))])?;
                    w.put_meta(&format!("{name}:progress.v2"), b"p")?;
                }
                Ok(())
            })
            .unwrap();
        store.forget_scope("t-1").unwrap();
        for gone in ["window:w@t-1", "window:w@t-1:sessions"] {
            assert_eq!(store.get(gone, b"k").unwrap(), None, "{gone}");
            assert_eq!(store.meta(&format!("{gone}:progress.v2")).unwrap(), None);
        }
        for kept in ["window:w@t-10", "window:w"] {
            assert!(store.get(kept, b"k").unwrap().is_some(), "{kept}");
            assert!(
                store
                    .meta(&format!("{kept}:progress.v2"))
                    .unwrap()
                    .is_some()
            );
        }
    }
}
