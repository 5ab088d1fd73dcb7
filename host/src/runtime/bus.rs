//! The embedded bus: an in-process topic router from local sources to the local sinks
//! subscribed to each topic.
//!
//! Each sink has a bounded inbox, so a slow sink makes [`Bus::publish`] wait and thereby slows
//! every source feeding it: memory stays bounded by inbox capacity × batch size. There is no
//! broker to keep the records of a topic nobody subscribes to, so a source holds them
//! (`topic.unsubscribed=wait`, see [`Bus::unread_topics`]) until a sink subscribes, unless its
//! config says to discard them; sinks are started before sources so nothing waits for a sink
//! that is merely starting.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use regex::Regex;
use tokio::sync::{mpsc, watch};

use crate::api::record::Record;
use crate::runtime::ack::{AckToken, OffsetTracker};

/// Batches a sink's inbox holds before publishers wait.
pub const INBOX_CAPACITY: usize = 4;

/// What a source does with records of a topic no sink subscribes to
/// (`topic.unsubscribed`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unsubscribed {
    /// Hold them, offsets unmoved, until a sink subscribes.
    #[default]
    Wait,
    /// Drop them (counted as dropped), as the user asked.
    Discard,
}

/// What a source waiting on `topics` tells the user (status and log).
pub fn waiting_message(topics: &[String]) -> String {
    format!(
        "no sink subscribes to topic(s) {}: the source holds their records and its offsets do \
         not move until one does; create a sink for them (topics or topics.regex), or set \
         topic.unsubscribed=discard on the source to drop them",
        quoted(topics)
    )
}

/// Why a source of a bounded run, whose connectors all started together, fails on `topics`.
pub fn unread_in_bounded_run(topics: &[String]) -> String {
    format!(
        "no sink of this run subscribes to topic(s) {}, so their records would be lost: add a \
         sink reading them to the run's connectors, or set topic.unsubscribed=discard on the \
         source to drop them",
        quoted(topics)
    )
}

fn quoted(topics: &[String]) -> String {
    topics
        .iter()
        .map(|t| format!("{t:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether `topic` is internal by Kafka's convention (a name starting with `__`), as Debezium's
/// heartbeats (`__debezium-heartbeat.<prefix>`): records that move a source's offsets on and
/// are usually read by nobody. A source never waits for a reader of one; unread, they are
/// dropped without a warning, as a broker would keep them unread.
pub fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
}

/// A sink's topic subscription: `topics` or `topics.regex`.
#[derive(Debug, Clone)]
pub enum TopicSelector {
    List(HashSet<String>),
    /// Matched against the whole topic name, as Kafka does.
    Regex(Regex),
}

impl TopicSelector {
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::List(topics) => topics.contains(topic),
            Self::Regex(re) => re.is_match(topic),
        }
    }
}

/// Part of one source batch handed to one sink.
#[derive(Debug)]
pub struct Delivery {
    pub records: Vec<Record>,
    /// Records that could not be read (a Kafka message its converter refused), for the error
    /// policy of the receiving sink.
    pub failed: Vec<(Record, crate::api::error::RecordError)>,
    pub ack: AckToken,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    connector: String,
    selector: TopicSelector,
    inbox: mpsc::Sender<Delivery>,
}

#[derive(Debug, Default)]
struct BusState {
    next_id: u64,
    subscribers: Vec<Arc<Subscriber>>,
    /// Topic → subscribers, filled on first use, cleared when subscriptions change.
    routes: HashMap<String, Vec<Arc<Subscriber>>>,
    /// Topics already warned about having their records discarded.
    warned: HashSet<String>,
}

/// The router. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Bus {
    state: RwLock<BusState>,
    /// Counts subscription changes, for sources waiting for a reader.
    changes: watch::Sender<u64>,
}

impl Default for Bus {
    fn default() -> Self {
        Self {
            state: RwLock::default(),
            changes: watch::Sender::new(0),
        }
    }
}

/// A sink's subscription; dropping it does not unsubscribe (call [`Bus::unsubscribe`]).
#[derive(Debug)]
pub struct Subscription {
    pub id: u64,
    pub inbox: mpsc::Receiver<Delivery>,
}

impl Bus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BusState> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BusState> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn subscribe(&self, connector: &str, selector: TopicSelector) -> Subscription {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let id = self.subscribe_with(connector, selector, tx);
        Subscription { id, inbox: rx }
    }

    /// Subscribes with an inbox the caller made (one a Kafka consumer feeds too); returns the
    /// subscription id.
    pub fn subscribe_with(
        &self,
        connector: &str,
        selector: TopicSelector,
        tx: mpsc::Sender<Delivery>,
    ) -> u64 {
        let mut state = self.write();
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push(Arc::new(Subscriber {
            id,
            connector: connector.to_owned(),
            selector,
            inbox: tx,
        }));
        state.routes.clear();
        state.warned.clear();
        drop(state);
        self.changes.send_modify(|n| *n += 1);
        id
    }

    pub fn unsubscribe(&self, id: u64) {
        let mut state = self.write();
        state.subscribers.retain(|s| s.id != id);
        state.routes.clear();
        drop(state);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Changes whenever a sink subscribes or unsubscribes.
    pub fn subscription_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The topics of `records` no sink subscribes to, in order of appearance; internal topics
    /// (see [`is_internal`]) aside.
    pub fn unread_topics(&self, records: &[Record]) -> Vec<String> {
        let mut unread: Vec<String> = Vec::new();
        let mut last: Option<&str> = None;
        for record in records {
            let topic = record.topic.as_str();
            if last == Some(topic) {
                continue;
            }
            last = Some(topic);
            if !is_internal(topic)
                && !unread.iter().any(|t| t == topic)
                && self.route(topic).is_empty()
            {
                unread.push(topic.to_owned());
            }
        }
        unread
    }

    fn route(&self, topic: &str) -> Vec<Arc<Subscriber>> {
        if let Some(route) = self.read().routes.get(topic) {
            return route.clone();
        }
        let mut state = self.write();
        let route: Vec<Arc<Subscriber>> = state
            .subscribers
            .iter()
            .filter(|s| s.selector.matches(topic))
            .cloned()
            .collect();
        state.routes.insert(topic.to_owned(), route.clone());
        route
    }

    /// Logs, once per topic while no sink subscribes to it, that its records are dropped.
    fn warn_discarding(&self, topic: &str) {
        if is_internal(topic) || self.read().warned.contains(topic) {
            return;
        }
        if self.write().warned.insert(topic.to_owned()) {
            tracing::warn!(
                topic,
                "No sink subscribes to this topic; its records are dropped."
            );
        }
    }

    /// Splits a batch by subscriber. The common case, every record going to the same
    /// subscribers, moves the batch as it is (cloning it only for additional subscribers).
    fn split(&self, records: Vec<Record>) -> Split {
        // Distinct routes of this batch, and which one each record takes.
        let mut routes: Vec<Vec<Arc<Subscriber>>> = Vec::new();
        let mut route_of = Vec::with_capacity(records.len());
        let mut last: Option<(&str, usize)> = None;
        for record in &records {
            let index = match last {
                Some((topic, index)) if topic == record.topic => index,
                _ => {
                    let route = self.route(&record.topic);
                    if route.is_empty() {
                        self.warn_discarding(&record.topic);
                    }
                    match routes.iter().position(|r| same_route(r, &route)) {
                        Some(index) => index,
                        None => {
                            routes.push(route);
                            routes.len() - 1
                        }
                    }
                }
            };
            last = Some((record.topic.as_str(), index));
            route_of.push(index);
        }
        if routes.len() <= 1 {
            let Some((last, rest)) = routes.first().and_then(|r| r.split_last()) else {
                return Split {
                    deliveries: Vec::new(),
                    discarded: records.len(),
                };
            };
            let mut deliveries: Vec<(Arc<Subscriber>, Vec<Record>)> = rest
                .iter()
                .map(|sub| (Arc::clone(sub), records.clone()))
                .collect();
            deliveries.push((Arc::clone(last), records));
            return Split {
                deliveries,
                discarded: 0,
            };
        }
        let capacity = records.len();
        let mut deliveries = Vec::new();
        let mut discarded = 0;
        for (record, index) in records.into_iter().zip(route_of) {
            let Some((last, rest)) = routes[index].split_last() else {
                discarded += 1;
                continue;
            };
            for sub in rest {
                push_for(&mut deliveries, sub, record.clone(), capacity);
            }
            push_for(&mut deliveries, last, record, capacity);
        }
        Split {
            deliveries,
            discarded,
        }
    }

    /// Routes a source batch to its subscribers and registers it with the source's tracker,
    /// which commits `offsets` once every receiving sink acked. Waits while an inbox is full.
    /// Returns the number of records that found no subscriber: they are dropped, so a source
    /// that may not drop them first waits until [`Bus::unread_topics`] is empty.
    pub async fn publish(
        &self,
        records: Vec<Record>,
        offsets: Vec<(serde_json::Value, serde_json::Value)>,
        tracker: &Arc<OffsetTracker>,
    ) -> usize {
        let per_sink = self.split(records);
        let discarded = per_sink.discarded;
        let per_sink = per_sink.deliveries;
        let tokens = tracker.begin(offsets, per_sink.len());
        for ((sub, records), ack) in per_sink.into_iter().zip(tokens) {
            if sub
                .inbox
                .send(Delivery {
                    records,
                    failed: Vec::new(),
                    ack,
                })
                .await
                .is_err()
            {
                // The sink stopped between routing and sending: its token is dropped unacked,
                // which holds the source position back until a restart replays the batch.
                tracing::warn!(
                    sink = %sub.connector,
                    "Sink stopped while records were being delivered; they will be replayed after a restart."
                );
            }
        }
        discarded
    }
}

/// A batch split by subscriber.
struct Split {
    deliveries: Vec<(Arc<Subscriber>, Vec<Record>)>,
    discarded: usize,
}

fn push_for(
    per_sink: &mut Vec<(Arc<Subscriber>, Vec<Record>)>,
    sub: &Arc<Subscriber>,
    r: Record,
    capacity: usize,
) {
    match per_sink.iter_mut().find(|(s, _)| s.id == sub.id) {
        Some((_, records)) => records.push(r),
        None => {
            let mut records = Vec::with_capacity(capacity);
            records.push(r);
            per_sink.push((Arc::clone(sub), records));
        }
    }
}

fn same_route(a: &[Arc<Subscriber>], b: &[Arc<Subscriber>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.id == y.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::offsets::SourceOffsets;
    use crate::api::record::Payload;
    use serde_json::json;

    #[tokio::test]
    async fn routes_by_topic_and_commits_after_every_sink_acks() {
        let bus = Bus::new();
        let mut a = bus.subscribe("a", TopicSelector::List(["t1".to_string()].into()));
        let mut b = bus.subscribe("b", TopicSelector::Regex(Regex::new("^t.*$").unwrap()));
        let tracker = OffsetTracker::new(SourceOffsets::default());
        let records = vec![
            Record::new("t1", Payload::value(json!(1))),
            Record::new("t2", Payload::value(json!(2))),
            Record::new("x", Payload::value(json!(3))),
        ];
        let discarded = bus
            .publish(records, vec![(json!({"p": 1}), json!({"o": 3}))], &tracker)
            .await;
        assert_eq!(discarded, 1);
        let da = a.inbox.recv().await.unwrap();
        let db = b.inbox.recv().await.unwrap();
        assert_eq!(da.records.len(), 1);
        assert_eq!(db.records.len(), 2);
        da.ack.ack();
        assert!(tracker.take_dirty().is_none());
        db.ack.ack();
        assert!(tracker.take_dirty().is_some());
    }
}
