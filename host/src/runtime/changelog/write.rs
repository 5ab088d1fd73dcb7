//! Writing a checkpoint's changes to the changelog, before the checkpoint is written locally.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;

use serde_json::Value;

use super::record::{self, EPOCH_HEADER, Marker};
use super::{Changelog, ChangelogError, Claim, Local, local_key};
use crate::api::record::Header;
use crate::kafka::producer::{Outgoing, Pending, delivered_at};
use crate::state::{
    Changes, ScopeChange, Snapshot, SnapshotView, StateStore, prefix_end, scope_of_name,
};

/// How long the end offset request of the fencing check may take.
const PROBE_WAIT: Duration = Duration::from_secs(10);

impl Changelog {
    /// Produces the changes `snapshot` (and the entries spilled since the last checkpoint)
    /// makes to each claimed state partition, each partition's ended by a marker with its
    /// input `positions`, and waits until Kafka has them all. Then records in the snapshot
    /// where the changelog holds it, so the local checkpoint says it.
    pub async fn write(
        &self,
        store: &StateStore,
        snapshot: &mut Snapshot,
        positions: &[(Value, u64)],
    ) -> Result<(), ChangelogError> {
        let claims = self.claims().clone();
        let spilled = store
            .spilled()
            .map_err(|e| self.any_error(&claims, e.to_string()))?;
        let plan = Plan::of(&spilled, snapshot, &claims);
        let positions = positions_by_scope(positions);
        let due: Vec<&String> = claims
            .iter()
            .filter(|(scope, claim)| {
                plan.changed.contains(scope.as_str())
                    || positions.get(*scope).map(Vec::as_slice).unwrap_or_default()
                        != claim.positions.as_slice()
            })
            .map(|(scope, _)| scope)
            .collect();
        self.check_not_fenced(due.iter().map(|scope| &claims[*scope]))
            .await?;
        // The changes go out as they are read (never all copied at once): the spilled entries
        // the checkpoint folds in, then the snapshot's writes, in the order the local commit
        // applies them.
        let mut sending = Sending::new(self, &claims, &plan);
        for (table, changes) in &spilled {
            for (key, value) in changes {
                sending.entry(table, key, value.as_deref()).await?;
            }
        }
        for write in snapshot.view() {
            match write {
                SnapshotView::Changes { table, changes } => {
                    for (key, value) in changes {
                        sending.entry(table, key, value.as_deref()).await?;
                    }
                }
                SnapshotView::RemovePrefixes { table, prefixes } => {
                    sending.remove_prefixes(store, table, prefixes).await?;
                }
                SnapshotView::Meta { name, value } => sending.meta(name, value).await?,
            }
        }
        let mut markers = Vec::with_capacity(due.len());
        for scope in due {
            let claim = &claims[scope];
            let positions = positions.get(scope).cloned().unwrap_or_default();
            let marker = Marker {
                epoch: claim.epoch,
                positions: Some(positions.clone()),
            };
            let pending = self
                .queue(claim, record::marker_key(), Some(marker.encode()))
                .await?;
            markers.push((scope, pending, positions));
        }
        sending.delivered().await?;
        for (scope, pending, positions) in markers {
            let claim = &claims[scope];
            let offset = delivered_at(pending)
                .await
                .map_err(|e| claim.error(e.to_string()))?;
            let here = Local {
                offset,
                epoch: claim.epoch,
            };
            snapshot.put_meta(&local_key(scope), &here.encode());
            if let Some(c) = self.claims().get_mut(scope) {
                c.positions = positions;
                c.next = offset + 1;
            }
        }
        Ok(())
    }

    /// Queues `changes` of `claim`'s partition and the checkpoint marker that ends them, with
    /// the input `positions` their state holds.
    pub(super) async fn queue_group(
        &self,
        claim: &Claim,
        changes: &[ScopeChange],
        positions: Vec<(Value, u64)>,
    ) -> Result<QueuedGroup, ChangelogError> {
        let mut pending = Vec::with_capacity(changes.len());
        for change in changes {
            let (key, value) = record::encode(change);
            pending.push(self.queue(claim, key, value).await?);
        }
        let marker = Marker {
            epoch: claim.epoch,
            positions: Some(positions),
        };
        let marker = self
            .queue(claim, record::marker_key(), Some(marker.encode()))
            .await?;
        Ok(QueuedGroup {
            changes: pending,
            marker,
        })
    }

    /// Fails when another host has written one of `claims`' partitions since this host's last
    /// record: it claimed the partition (see [`ChangelogError::fenced`]).
    async fn check_not_fenced(
        &self,
        claims: impl Iterator<Item = &Claim>,
    ) -> Result<(), ChangelogError> {
        let claims: Vec<Claim> = claims.cloned().collect();
        if claims.is_empty() {
            return Ok(());
        }
        let (probe, settings) = (Arc::clone(&self.probe), self.link.settings.clone());
        tokio::task::spawn_blocking(move || {
            let consumer = match probe.get() {
                Some(c) => c,
                None => {
                    let mut config =
                        settings.consumer_config("headwater-changelog", "headwater-changelog");
                    config
                        .set("enable.partition.eof", "true")
                        .set("fetch.wait.max.ms", "10");
                    let made = config
                        .create_with_context(super::ReadToEnd)
                        .map_err(|e| claims[0].error(format!("creating a consumer: {e}")))?;
                    probe.get_or_init(|| made)
                }
            };
            find_foreign_writes(consumer, &claims)
        })
        .await
        .map_err(|e| ChangelogError {
            topic: String::new(),
            partition: -1,
            message: format!("the fencing check failed: {e}"),
            lost: false,
            fenced: false,
        })?
    }

    /// Queues one record for `claim`'s changelog partition.
    pub(super) async fn queue(
        &self,
        claim: &Claim,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    ) -> Result<Pending, ChangelogError> {
        let outgoing = Outgoing {
            topic: claim.topic.clone(),
            partition: Some(claim.partition),
            key: Some(key.into()),
            value: value.map(Into::into),
            headers: vec![Header::text(EPOCH_HEADER, claim.epoch.to_string())],
            timestamp: None,
        };
        self.producer
            .queue(&outgoing)
            .await
            .map_err(|e| claim.error(format!("producing: {e}")))
    }

    /// An error of the store's, told against one of the changelog's partitions.
    fn any_error(&self, claims: &HashMap<String, Claim>, message: String) -> ChangelogError {
        match claims.values().next() {
            Some(claim) => claim.error(message),
            None => ChangelogError {
                topic: format!("headwater-{}-*-changelog", self.connector),
                partition: -1,
                message,
                lost: false,
                fenced: false,
            },
        }
    }
}

/// A checkpoint's changes of one partition and its marker, queued for Kafka.
pub(super) struct QueuedGroup {
    changes: Vec<Pending>,
    marker: Pending,
}

impl QueuedGroup {
    /// Waits until Kafka has every record; the marker's offset.
    pub(super) async fn delivered(self, claim: &Claim) -> Result<i64, ChangelogError> {
        for p in self.changes {
            delivered_at(p)
                .await
                .map_err(|e| claim.error(e.to_string()))?;
        }
        delivered_at(self.marker)
            .await
            .map_err(|e| claim.error(e.to_string()))
    }
}

impl Claim {
    /// An error reaching the changelog: trying again may help.
    pub(super) fn error(&self, message: impl Into<String>) -> ChangelogError {
        ChangelogError {
            topic: self.topic.clone(),
            partition: self.partition,
            message: message.into(),
            lost: false,
            fenced: false,
        }
    }

    /// The changelog cannot give the state needed: trying again would not help.
    pub(super) fn lost(&self, message: impl Into<String>) -> ChangelogError {
        ChangelogError {
            lost: true,
            ..self.error(message)
        }
    }
}

/// Changelog records queued and not yet known delivered, at most: a checkpoint of millions of
/// changes holds this many in librdkafka's queue and as delivery reports, not all of them.
const IN_FLIGHT: usize = 20_000;

/// What a checkpoint changes, found before anything is sent: the state partitions it changes
/// (their changelogs get a marker), and the tables it removes prefixes of (whose keys set in
/// this checkpoint are remembered, so that a removal after them removes them too).
struct Plan<'s> {
    changed: HashSet<&'s str>,
    pruned: HashSet<&'s str>,
}

impl<'s> Plan<'s> {
    fn of(
        spilled: &'s [(String, Changes)],
        snapshot: &'s Snapshot,
        claims: &HashMap<String, Claim>,
    ) -> Self {
        let mut plan = Self {
            changed: HashSet::new(),
            pruned: HashSet::new(),
        };
        for (table, changes) in spilled {
            if let Some(scope) = claimed(claims, table).filter(|_| !changes.is_empty()) {
                plan.changed.insert(scope);
            }
        }
        for write in snapshot.view() {
            let (name, pruned) = match write {
                SnapshotView::Changes { changes, .. } if changes.is_empty() => continue,
                SnapshotView::Changes { table, .. } => (table, false),
                SnapshotView::RemovePrefixes { table, .. } => (table, true),
                SnapshotView::Meta { name, .. } => (name, false),
            };
            if let Some(scope) = claimed(claims, name) {
                plan.changed.insert(scope);
                if pruned {
                    plan.pruned.insert(name);
                }
            }
        }
        plan
    }
}

/// A checkpoint's changes on their way to the changelog: each one is encoded and queued as it
/// is read, and at most [`IN_FLIGHT`] wait for their delivery report.
struct Sending<'a> {
    changelog: &'a Changelog,
    claims: &'a HashMap<String, Claim>,
    plan: &'a Plan<'a>,
    in_flight: VecDeque<(&'a Claim, Pending)>,
    /// Keys this checkpoint set in the tables it removes prefixes of.
    set: HashMap<String, BTreeSet<Vec<u8>>>,
}

impl<'a> Sending<'a> {
    fn new(
        changelog: &'a Changelog,
        claims: &'a HashMap<String, Claim>,
        plan: &'a Plan<'a>,
    ) -> Self {
        Self {
            changelog,
            claims,
            plan,
            in_flight: VecDeque::new(),
            set: HashMap::new(),
        }
    }

    /// An entry of `table` set to `value`, or deleted.
    async fn entry(
        &mut self,
        table: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), ChangelogError> {
        let Some(scope) = claimed(self.claims, table) else {
            return Ok(());
        };
        if self.plan.pruned.contains(table) {
            let keys = self.set.entry(table.to_owned()).or_default();
            match value {
                Some(_) => keys.insert(key.to_vec()),
                None => keys.remove(key),
            };
        }
        let claim = &self.claims[scope];
        let record = (record::entry_key(table, key), value.map(<[u8]>::to_vec));
        self.send(claim, record).await
    }

    /// Every entry of `table` under one of `prefixes` is deleted: a tombstone per key the
    /// store or this checkpoint holds there, so that compaction lets them go.
    async fn remove_prefixes(
        &mut self,
        store: &StateStore,
        table: &str,
        prefixes: &[Vec<u8>],
    ) -> Result<(), ChangelogError> {
        let Some(scope) = claimed(self.claims, table) else {
            return Ok(());
        };
        let claim = &self.claims[scope];
        for prefix in prefixes {
            let end = prefix_end(prefix);
            let stored = store
                .range(table, prefix, end.as_deref())
                .map_err(|e| claim.error(e.to_string()))?;
            let mut keys: BTreeSet<Vec<u8>> = stored
                .into_iter()
                .filter_map(|(k, v)| v.map(|_| k))
                .collect();
            if let Some(set_here) = self.set.get_mut(table) {
                let under: Vec<Vec<u8>> = set_here
                    .iter()
                    .filter(|k| k.starts_with(prefix))
                    .cloned()
                    .collect();
                for key in under {
                    set_here.remove(&key);
                    keys.insert(key);
                }
            }
            for key in keys {
                self.send(claim, (record::entry_key(table, &key), None))
                    .await?;
            }
        }
        Ok(())
    }

    /// A step's metadata.
    async fn meta(&mut self, name: &str, value: &[u8]) -> Result<(), ChangelogError> {
        let Some(scope) = claimed(self.claims, name) else {
            return Ok(());
        };
        let claim = &self.claims[scope];
        let record = record::encode(&ScopeChange::Meta {
            name: name.to_owned(),
            value: value.to_vec(),
        });
        self.send(claim, record).await
    }

    async fn send(
        &mut self,
        claim: &'a Claim,
        (key, value): (Vec<u8>, Option<Vec<u8>>),
    ) -> Result<(), ChangelogError> {
        if self.in_flight.len() >= IN_FLIGHT
            && let Some((claim, oldest)) = self.in_flight.pop_front()
        {
            delivered_at(oldest)
                .await
                .map_err(|e| claim.error(e.to_string()))?;
        }
        let pending = self.changelog.queue(claim, key, value).await?;
        self.in_flight.push_back((claim, pending));
        Ok(())
    }

    /// Waits until Kafka has every change sent.
    async fn delivered(self) -> Result<(), ChangelogError> {
        for (claim, pending) in self.in_flight {
            delivered_at(pending)
                .await
                .map_err(|e| claim.error(e.to_string()))?;
        }
        Ok(())
    }
}

/// The claimed state partition a table or metadata name belongs to.
fn claimed<'n>(claims: &HashMap<String, Claim>, name: &'n str) -> Option<&'n str> {
    scope_of_name(name).filter(|s| claims.contains_key(*s))
}

/// The input positions of each state partition: those of its Kafka partition (a repartition
/// topic's partition has one per upstream partition).
fn positions_by_scope(positions: &[(Value, u64)]) -> BTreeMap<String, Vec<(Value, u64)>> {
    let mut out: BTreeMap<String, Vec<(Value, u64)>> = BTreeMap::new();
    for (partition, offset) in positions {
        if let (Some(topic), Some(number)) =
            (partition["topic"].as_str(), partition["partition"].as_i64())
        {
            out.entry(format!("{topic}-{number}"))
                .or_default()
                .push((partition.clone(), *offset));
        }
    }
    for list in out.values_mut() {
        list.sort_by_key(|(partition, _)| partition.to_string());
    }
    out
}

/// Reads each claimed partition from the offset after this host's last record: a record
/// there was written by another host, which claimed the partition. (Reading, not asking for
/// the end offset: tansu 0.6 answers that with its newest batch's first offset.)
fn find_foreign_writes(
    consumer: &super::ChangelogConsumer,
    claims: &[Claim],
) -> Result<(), ChangelogError> {
    use rdkafka::message::Message;
    let mut list = rdkafka::TopicPartitionList::new();
    for claim in claims {
        list.add_partition_offset(
            &claim.topic,
            claim.partition,
            rdkafka::Offset::Offset(claim.next),
        )
        .map_err(|e| claim.error(e.to_string()))?;
    }
    consumer
        .assign(&list)
        .map_err(|e| claims[0].error(format!("assigning the changelog: {e}")))?;
    let mut open: Vec<&Claim> = claims.iter().collect();
    let deadline = std::time::Instant::now() + PROBE_WAIT;
    while !open.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(open[0].error(format!(
                "no answer reading from offset {} within {} s",
                open[0].next,
                PROBE_WAIT.as_secs()
            )));
        }
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        match result {
            Err(rdkafka::error::KafkaError::PartitionEOF(partition)) => {
                // The partition of the error is not named with its topic: changelogs of two
                // topics share numbers only when a connector reads several topics, and each is
                // then resolved by its own end.
                if let Some(i) = open.iter().position(|c| c.partition == partition) {
                    open.remove(i);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Reading the changelog for the fencing check failed; retrying.");
            }
            Ok(message) => {
                let Some(claim) = open
                    .iter()
                    .find(|c| c.topic == message.topic() && c.partition == message.partition())
                else {
                    continue;
                };
                return Err(ChangelogError {
                    fenced: true,
                    ..claim.error(format!(
                        "another host has written it since this host's last record (offset {} \
                         holds a record, this host wrote up to {}): the partition was assigned \
                         elsewhere while this host was not looking",
                        message.offset(),
                        claim.next - 1
                    ))
                });
            }
        }
    }
    Ok(())
}
