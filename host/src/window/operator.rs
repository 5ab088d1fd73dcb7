//! The windowing itself: assigning records to windows, the watermark, closing and purging
//! windows, late records, early emission. State lives in a [`StateTable`] keyed by window end
//! (ordered, so closing is a range scan) and group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::accumulator::Accumulator;
use super::config::{AggregateConfig, LatePolicy};
use crate::api::record::{Payload, Position, Record};
use crate::api::time::timestamp_millis;
use crate::api::transform::{BatchOutput, Inputs, TransformError};
use crate::state::{StateError, StateStore, StateTable, Writer};

/// One group's window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowState {
    pub start: i64,
    /// The group's values, as JSON text (`["u1"]`).
    pub group: String,
    pub accumulators: Vec<Accumulator>,
    /// Changed since it was last emitted early.
    pub changed: bool,
}

/// What the step keeps in memory besides its windows, saved at every checkpoint.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Progress {
    /// The newest event time of each input ("" in a source connector: one input;
    /// [`NO_RECORD`] for a Kafka partition assigned that has had none yet).
    inputs: BTreeMap<String, i64>,
    /// Flink's watermark: the minimum over the active inputs of their newest event time minus
    /// `watermark.delay.ms`. Windows whose last millisecond (`end - 1`) is at or before it
    /// have fired.
    watermark: Option<i64>,
    /// Ends of the windows kept, with how many groups have one (few: windows are aligned), so
    /// the watermark only scans the store when a window is due.
    ends: BTreeMap<i64, u64>,
}

/// The progress a checkpoint of an earlier version holds (one input).
#[derive(Deserialize)]
struct ProgressV1 {
    max_event: Option<i64>,
    watermark: Option<i64>,
    ends: BTreeMap<i64, u64>,
}

impl From<ProgressV1> for Progress {
    fn from(v1: ProgressV1) -> Self {
        Self {
            inputs: v1
                .max_event
                .map(|t| (String::new(), t))
                .into_iter()
                .collect(),
            // That version closed a window when the watermark reached its end: one
            // millisecond later than now, so nothing it kept is fired twice.
            watermark: v1.watermark.map(|w| w.saturating_sub(1)),
            ends: v1.ends,
        }
    }
}

/// The newest event time of an input that has had no record yet (a Kafka partition assigned,
/// still empty): it holds the watermark back.
const NO_RECORD: i64 = i64::MIN;

/// The event times windows accept (±2^53 ms, about ±285,000 years): window arithmetic
/// cannot overflow within them.
const MAX_TIME: i64 = 1 << 53;

/// Windows read at a time when closing, and results a window end emits per batch (or tick):
/// the rest of a window end shared by many groups follows in the next calls (see [`Closing`]).
const CLOSE_PAGE: usize = 10_000;

/// A window end the watermark passed, being closed a page at a time: its windows from `next`
/// on are still to be emitted (`emit`) and/or dropped (`purge`, allowed lateness over). Paging
/// the close across calls keeps the results of one window end shared by 100,000 groups from
/// sitting in memory at once (they were most of the peak heap of a Kafka-fed window). Saved at
/// checkpoints, so a restart finishes the close where it stopped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Closing {
    end: i64,
    emit: bool,
    purge: bool,
    next: Vec<u8>,
}

/// Window ends as bytes that sort like the numbers.
fn end_key(end: i64, group: &str) -> Vec<u8> {
    let mut key = ((end as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(group.as_bytes());
    key
}

/// Bytes of a window key that hold its end.
const END_PREFIX_LEN: usize = 8;

fn end_prefix(end: i64) -> [u8; END_PREFIX_LEN] {
    ((end as u64) ^ (1 << 63)).to_be_bytes()
}

pub struct Operator {
    config: Arc<AggregateConfig>,
    /// The step's tables are named after it: `window:<alias>`.
    name: String,
    store: Option<Arc<StateStore>>,
    windows: StateTable<WindowState>,
    /// Session windows: each group's open sessions, and their timers keyed by time and group
    /// (value `EMIT` or `PURGE`), so closing is a range scan over due timers.
    sessions: StateTable<Vec<Session>>,
    timers: StateTable<u8>,
    /// A lower bound of the earliest session timer (`None`: unknown), so a watermark move
    /// with nothing due costs no scan.
    earliest_timer: Option<i64>,
    progress: Progress,
    /// Window ends being closed, oldest first.
    closing: Vec<Closing>,
    /// Results closes may still emit in the current call.
    close_budget: usize,
    /// What the watermark follows (see [`Inputs`]).
    inputs: Inputs,
    /// The connector: records whose position names it come from its own Kafka consumer.
    connector: Arc<str>,
    /// When each input last had a record (or was assigned): an input quiet for
    /// `watermark.idle.timeout.ms` stops holding the watermark back. Inputs not listed (a
    /// Kafka partition given up) do not count.
    seen: HashMap<String, Instant>,
    /// The Kafka partitions the connector's consumer owns now.
    assigned: BTreeSet<String>,
    /// The time of the batch being processed (one clock read per batch).
    batch_now: Instant,
    /// The input of records without a position.
    no_input: Arc<str>,
    last_early: Instant,
    /// Topic of the newest input: early results go there when `output.topic` is not set.
    last_topic: String,
    /// A bounded run: the watermark stays put until [`Operator::finish`] (see
    /// [`crate::api::transform::ChainContext::bounded`]).
    bounded: bool,
    /// [`Operator::finish`] was called: the final watermark passed every window.
    finished: bool,
    /// The results the final watermark emitted so far. Each carries a position counting them
    /// (see [`Operator::finish`]).
    final_results: std::cell::Cell<u64>,
    /// The source partition of those positions: `{"window":"<state name>"}`.
    final_partition: Arc<str>,
}

impl Operator {
    /// `name`: what the state is stored under (`window:<alias>`, see
    /// [`crate::api::transform::ChainContext::state_name`]).
    pub fn new(
        config: Arc<AggregateConfig>,
        name: String,
        inputs: Inputs,
        connector: &str,
        bounded: bool,
    ) -> Self {
        Self {
            bounded,
            finished: false,
            final_results: std::cell::Cell::new(0),
            final_partition: Arc::from(json!({ "window": name }).to_string()),
            windows: StateTable::new(name.clone(), config.cache_entries),
            sessions: StateTable::new(format!("{name}:sessions"), config.cache_entries),
            timers: StateTable::new(format!("{name}:timers"), config.cache_entries),
            earliest_timer: None,
            name,
            config,
            store: None,
            progress: Progress::default(),
            closing: Vec::new(),
            close_budget: CLOSE_PAGE,
            inputs,
            connector: Arc::from(connector),
            seen: HashMap::new(),
            assigned: BTreeSet::new(),
            batch_now: Instant::now(),
            no_input: Arc::from(""),
            last_early: Instant::now(),
            last_topic: String::new(),
        }
    }

    /// Where the progress is saved (`:progress` held the earlier version's).
    fn progress_key(&self) -> String {
        format!("{}:progress.v2", self.name)
    }

    /// Where the closes under way are saved (absent: none).
    fn closing_key(&self) -> String {
        format!("{}:closing", self.name)
    }

    pub fn restore(&mut self, store: &Arc<StateStore>) -> Result<(), StateError> {
        let undecodable = |e: postcard::Error| StateError {
            path: store.path().to_owned(),
            message: format!("{}: undecodable progress: {e}", self.name),
        };
        self.progress = match store.meta(&self.progress_key())? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(undecodable)?,
            None => match store.meta(&format!("{}:progress", self.name))? {
                Some(bytes) => postcard::from_bytes::<ProgressV1>(&bytes)
                    .map_err(undecodable)?
                    .into(),
                None => Progress::default(),
            },
        };
        self.closing = match store.meta(&self.closing_key())? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(undecodable)?,
            None => Vec::new(),
        };
        // Every input of the checkpoint counts again from now (as Flink restores its splits).
        let now = Instant::now();
        self.seen = self
            .progress
            .inputs
            .keys()
            .chain(&self.assigned)
            .map(|input| (input.clone(), now))
            .collect();
        // Windows are stored under the ends the progress lists; a window of any other end is
        // new, or in the cache until evicted.
        let stored_ends = self
            .progress
            .ends
            .keys()
            .map(|end| end_prefix(*end).to_vec());
        self.windows = StateTable::new(self.name.clone(), self.config.cache_entries)
            .cached_unless_stored(END_PREFIX_LEN, stored_ends);
        self.sessions =
            StateTable::new(format!("{}:sessions", self.name), self.config.cache_entries);
        self.timers = StateTable::new(format!("{}:timers", self.name), self.config.cache_entries);
        self.earliest_timer = None;
        self.store = Some(Arc::clone(store));
        Ok(())
    }

    pub fn checkpoint(&mut self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        self.windows.write_changes(writer)?;
        self.sessions.write_changes(writer)?;
        self.timers.write_changes(writer)?;
        let encode = |what: postcard::Result<Vec<u8>>| {
            what.map_err(|e| StateError {
                path: writer.path().to_owned(),
                message: format!("{}: cannot encode progress: {e}", self.name),
            })
        };
        let progress = encode(postcard::to_allocvec(&self.progress))?;
        let closing = encode(postcard::to_allocvec(&self.closing))?;
        writer.put_meta(&self.progress_key(), &progress)?;
        writer.put_meta(&self.closing_key(), &closing)
    }

    /// A window end is still being closed: its remaining results come with the next calls
    /// ([`Self::tick`] when no batch comes).
    pub fn closing(&self) -> bool {
        !self.closing.is_empty()
    }

    /// Windows kept decoded in memory.
    pub fn resident(&self) -> usize {
        self.windows.resident() + self.sessions.resident()
    }

    pub fn watermark(&self) -> Option<i64> {
        self.progress.watermark
    }

    fn store(&self) -> Option<Arc<StateStore>> {
        self.store.clone()
    }

    /// Processes a batch: every input is absorbed into its windows (or handled as late); the
    /// outputs are the windows that closed (or were updated late, or emitted early).
    pub fn process(&mut self, records: Vec<Record>) -> BatchOutput {
        let mut out = BatchOutput::default();
        let Some(store) = self.store() else {
            out.fatal = Some("the window state store is not open (a bug)".to_owned());
            return out;
        };
        let last = records.len().saturating_sub(1);
        self.batch_now = Instant::now();
        self.close_budget = CLOSE_PAGE;
        if !self.closing.is_empty() {
            let trigger = Record::new(self.last_topic.clone(), Payload::null());
            if let Err(e) = self.continue_closing(&store, &trigger, 0, &mut out) {
                out.fatal = Some(e.to_string());
                return out;
            }
        }
        let mut last_input: Option<Arc<str>> = None;
        for (i, mut record) in records.into_iter().enumerate() {
            if self.last_topic != record.topic {
                self.last_topic.clone_from(&record.topic);
            }
            let input = self.input_of(&record);
            if last_input.as_ref() != Some(&input) {
                self.touch(&input);
                last_input = Some(Arc::clone(&input));
            }
            // A repartition topic's watermark marker: its input reached this event time.
            if let Some(t) = marker_time(&record) {
                if let Err(e) = self.observe(&store, &input, t, &record, i, &mut out) {
                    out.fatal = Some(e.to_string());
                    return out;
                }
                continue;
            }
            match self.absorb(&store, &mut record, &input, i, &mut out) {
                Ok(()) => {}
                Err(Failure::Record(e)) => out.failed.push((i, record, e)),
                Err(Failure::State(e)) => {
                    out.fatal = Some(e.to_string());
                    return out;
                }
            }
            if let Err(e) = self
                .windows
                .bound_memory(&store)
                .and_then(|()| self.sessions.bound_memory(&store))
                .and_then(|()| self.timers.bound_memory(&store))
            {
                out.fatal = Some(e.to_string());
                return out;
            }
        }
        if self.config.emit_early_ms > 0
            && self.last_early.elapsed().as_millis() as u64 >= self.config.emit_early_ms
        {
            self.last_early = Instant::now();
            self.emit_early(last, &mut out);
        }
        out
    }

    /// Processing time moved on without records: inputs quiet for `watermark.idle.timeout.ms`
    /// stop holding the watermark back, which may fire windows.
    /// Also continues a window end's close (see [`Closing`]).
    pub fn tick(&mut self) -> BatchOutput {
        let mut out = BatchOutput::default();
        let Some(store) = self.store() else {
            return out;
        };
        self.batch_now = Instant::now();
        self.close_budget = CLOSE_PAGE;
        let trigger = Record::new(self.last_topic.clone(), Payload::null());
        let mut step = || {
            self.continue_closing(&store, &trigger, 0, &mut out)?;
            if self.inputs == Inputs::One {
                return Ok(());
            }
            self.move_watermark(&store, &trigger, 0, &mut out)
        };
        if let Err(e) = step() {
            out.fatal = Some(e.to_string());
        }
        out
    }

    /// The end of a bounded input: the final watermark passes every window, which fires (the
    /// first page of results now, the rest through [`Operator::tick`] while
    /// [`Operator::closing`]). `None` once already called.
    ///
    /// The results come in the store's key order, the same every time from the same state, and
    /// each carries a position counting them: a run interrupted after some were written and
    /// started again from the same checkpoint emits them again with the same positions, and a
    /// sink that knows what it holds (a staged Parquet run) skips those.
    pub fn finish(&mut self) -> Option<BatchOutput> {
        if self.finished {
            return None;
        }
        self.finished = true;
        let mut out = BatchOutput::default();
        let Some(store) = self.store() else {
            out.fatal = Some("the window state store is not open (a bug)".to_owned());
            return Some(out);
        };
        self.batch_now = Instant::now();
        self.close_budget = CLOSE_PAGE;
        let trigger = Record::new(self.last_topic.clone(), Payload::null());
        let from = self.frontier();
        // Flink's final watermark, Long.MAX_VALUE: the frontier (watermark + 1) passes every
        // window end.
        self.progress.watermark = Some(i64::MAX - 1);
        if let Err(e) = self.advance(&store, from, i64::MAX, &trigger, 0, &mut out) {
            out.fatal = Some(e.to_string());
        }
        Some(out)
    }

    /// The Kafka partitions the connector's consumer owns now (ids as in records'
    /// positions): they count for the watermark from now, even before their first record;
    /// those given up no longer do.
    pub fn assign(&mut self, partitions: BTreeSet<String>) {
        let now = Instant::now();
        for gone in self.assigned.difference(&partitions) {
            self.seen.remove(gone);
        }
        for new in partitions.difference(&self.assigned) {
            self.seen.entry(new.clone()).or_insert(now);
            // Saved with the checkpoint, so that after a restart the partition holds the
            // watermark back from the start, before the consumer reports it again.
            self.progress.inputs.entry(new.clone()).or_insert(NO_RECORD);
        }
        self.assigned = partitions;
    }

    /// The input a record belongs to (see [`Inputs`]).
    fn input_of(&self, record: &Record) -> Arc<str> {
        match (self.inputs, &record.position) {
            (Inputs::One, _) | (_, None) => Arc::clone(&self.no_input),
            // A record of this connector's own Kafka consumer: its input is the partition.
            (Inputs::Many, Some(p)) if p.source == self.connector => Arc::clone(&p.partition),
            (Inputs::Many, Some(p)) => Arc::clone(&p.source),
        }
    }

    /// Notes that `input` had a record now.
    fn touch(&mut self, input: &str) {
        if self.inputs == Inputs::One {
            return;
        }
        match self.seen.get_mut(input) {
            Some(at) => *at = self.batch_now,
            None => {
                self.seen.insert(input.to_owned(), self.batch_now);
            }
        }
    }

    /// Windows ending at or before this have fired: the watermark plus one millisecond, since
    /// Flink fires a window when the watermark reaches its last millisecond.
    fn frontier(&self) -> i64 {
        self.progress
            .watermark
            .map_or(i64::MIN, |w| w.saturating_add(1))
    }

    /// The watermark the inputs allow now: the minimum over the active inputs of their newest
    /// event time minus the delay. `None` while an active input has had no record yet, or
    /// when every input is idle, and in a bounded run (only its end moves the watermark).
    fn allowed_watermark(&self) -> Option<i64> {
        if self.bounded {
            return None;
        }
        let delay = self.config.watermark_delay;
        if self.inputs == Inputs::One {
            return self
                .progress
                .inputs
                .get("")
                .map(|t| t.saturating_sub(delay));
        }
        let idle = (self.config.idle_timeout_ms > 0)
            .then(|| Duration::from_millis(self.config.idle_timeout_ms));
        let mut min: Option<i64> = None;
        for (input, last) in &self.seen {
            if idle.is_some_and(|idle| self.batch_now.saturating_duration_since(*last) >= idle) {
                continue;
            }
            let newest = *self.progress.inputs.get(input)?;
            if newest == NO_RECORD {
                return None;
            }
            let w = newest.saturating_sub(delay);
            min = Some(min.map_or(w, |m| m.min(w)));
        }
        min
    }

    /// Moves the watermark as far as the inputs allow, firing what it passes.
    fn move_watermark(
        &mut self,
        store: &StateStore,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        let Some(next) = self.allowed_watermark() else {
            return Ok(());
        };
        if self.progress.watermark.is_some_and(|w| next <= w) {
            return Ok(());
        }
        let from = self.frontier();
        self.progress.watermark = Some(next);
        let to = self.frontier();
        self.advance(store, from, to, trigger, index, out)
    }

    pub fn config(&self) -> &AggregateConfig {
        &self.config
    }

    /// A value's group: its `group.by` fields as a JSON array (missing ones null).
    fn group_key(&self, value: &Value) -> String {
        let group: Vec<&Value> = self
            .config
            .group_by
            .iter()
            .map(|f| value.get(f.as_str()).unwrap_or(&Value::Null))
            .collect();
        serde_json::to_string(&group).unwrap_or_default()
    }

    /// The group key (as the windows key their state) and event time of a record, for the
    /// repartition topic's shuffle.
    pub fn shuffle_key(&self, record: &mut Record) -> Result<(Vec<u8>, i64), TransformError> {
        let t = self.event_time(record)?;
        let value = &record
            .value
            .get()
            .map_err(|e| TransformError::data(format!("window: the value is not JSON: {e}")))?
            .value;
        Ok((self.group_key(value).into_bytes(), t))
    }

    /// The record's event time, unless the window runs on processing time or the record
    /// has none it can read.
    pub fn record_event_time(&self, record: &mut Record) -> Option<i64> {
        if self.config.processing_time {
            return None;
        }
        self.event_time(record).ok()
    }

    fn event_time(&self, record: &mut Record) -> Result<i64, TransformError> {
        if self.config.processing_time {
            return Ok(chrono::Utc::now().timestamp_millis());
        }
        let Some(field) = &self.config.time_field else {
            return record.timestamp.ok_or_else(|| {
                TransformError::data(
                    "window: the record has no timestamp; set time.field to a value field \
                     holding the event time",
                )
            });
        };
        let value = record
            .value
            .get()
            .map_err(|e| TransformError::data(format!("window: the value is not JSON: {e}")))?;
        let found = value.value.get(field.as_str());
        found.and_then(timestamp_millis).ok_or_else(|| {
            TransformError::data(format!(
                "window: time.field {field:?}: expected epoch milliseconds or an ISO-8601 \
                 date-time, got {}",
                found.map_or("nothing".to_owned(), Value::to_string)
            ))
        })
    }

    /// Starts of the windows holding time `t`.
    fn window_starts(&self, t: i64) -> impl Iterator<Item = i64> + use<> {
        let (size, advance) = (self.config.size, self.config.advance);
        let last = t.div_euclid(advance) * advance;
        (0..size / advance).map(move |k| last - k * advance)
    }

    fn absorb(
        &mut self,
        store: &StateStore,
        record: &mut Record,
        input: &str,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), Failure> {
        let t = self.event_time(record).map_err(Failure::Record)?;
        if !(-MAX_TIME..=MAX_TIME).contains(&t) {
            return Err(Failure::Record(TransformError::data(format!(
                "window: event time {t} is out of range: expected epoch milliseconds within \
                 ±2^53 (about ±285,000 years)"
            ))));
        }
        record.value.get().map_err(|e| {
            Failure::Record(TransformError::data(format!(
                "window: the value is not JSON: {e}"
            )))
        })?;
        // Read in place: a deep copy of each value cost an allocation per field and string.
        let record: &Record = record;
        let value = record.value.parsed().map_or(&Value::Null, |d| &d.value);
        let group = self.group_key(value);
        // Every input is checked before any window changes: a bad value fails the record
        // without leaving a window half updated.
        for feature in &self.config.features {
            let input = feature.field.as_deref().and_then(|f| value.get(f));
            feature.function.check(input).map_err(|e| {
                Failure::Record(TransformError::data(format!(
                    "window: feature {:?}: field {:?}: {e}",
                    feature.name,
                    feature.field.as_deref().unwrap_or("")
                )))
            })?;
        }
        if let Some(gap) = self.config.session_gap {
            return self.absorb_session(store, record, (input, index), out, (t, gap), value, group);
        }
        let lateness = self.config.allowed_lateness;
        let frontier = self.frontier();
        let mut absorbed = false;
        for start in self.window_starts(t) {
            let end = start + self.config.size;
            if end.saturating_add(lateness) <= frontier {
                continue; // closed and purged
            }
            absorbed = true;
            let key = end_key(end, &group);
            // A late record within allowed.lateness updates its window's result, emitted now
            // unless the close under way still has it to emit.
            let update = end <= frontier && !self.close_will_emit(end, &key);
            let features = &self.config.features;
            let mut created = false;
            let init = || {
                created = true;
                WindowState {
                    start,
                    group: group.clone(),
                    accumulators: features.iter().map(|f| f.function.start()).collect(),
                    changed: false,
                }
            };
            let add = |window: &mut WindowState| {
                for (feature, acc) in features.iter().zip(window.accumulators.iter_mut()) {
                    let input = feature.field.as_deref().map(|f| value.get(f));
                    acc.add(feature.function, input.flatten(), t).map_err(|e| {
                        Failure::Record(TransformError::data(format!(
                            "window: feature {:?}: field {:?}: {e}",
                            feature.name,
                            feature.field.as_deref().unwrap_or("")
                        )))
                    })?;
                }
                window.changed = true;
                Ok::<_, Failure>(update.then(|| window.clone()))
            };
            let updated = self
                .windows
                .update(store, &key, init, add)
                .map_err(Failure::State)??;
            if created {
                *self.progress.ends.entry(end).or_default() += 1;
            }
            if let Some(window) = updated {
                self.emit(&window, end, record, index, out);
            }
        }
        if !absorbed {
            return self.late(record, t, index, out);
        }
        self.observe(store, input, t, record, index, out)
            .map_err(Failure::State)
    }

    /// Notes event time `t` of `input`; a new newest time may move the watermark, which fires
    /// what it passes, `record` being the one that fired them.
    fn observe(
        &mut self,
        store: &StateStore,
        input: &str,
        t: i64,
        record: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        match self.progress.inputs.get_mut(input) {
            Some(newest) if t <= *newest => return Ok(()),
            Some(newest) => *newest = t,
            None => {
                self.progress.inputs.insert(input.to_owned(), t);
            }
        }
        self.move_watermark(store, record, index, out)
    }

    fn late(
        &mut self,
        record: &Record,
        t: i64,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), Failure> {
        match &self.config.late {
            LatePolicy::Drop => {
                out.dropped += 1;
                Ok(())
            }
            LatePolicy::DeadLetter => Err(Failure::Record(TransformError::data(format!(
                "window: late record: event time {t}: its windows fired when the watermark \
                 (now {}) reached their last millisecond, and allowed.lateness.ms ({}) is over",
                self.progress.watermark.unwrap_or(i64::MIN),
                self.config.allowed_lateness
            )))),
            LatePolicy::Topic(topic) => {
                let mut late = record.clone();
                late.topic = topic.clone();
                out.kept.push(late);
                out.origins.push(index);
                Ok(())
            }
        }
    }

    /// Moves the frontier from `from` to `to`: emits the windows that end by it, purges those
    /// past allowed lateness.
    fn advance(
        &mut self,
        store: &StateStore,
        from: i64,
        to: i64,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        if self.config.session_gap.is_some() {
            return self.fire_session_timers(store, to, trigger, index, out);
        }
        let lateness = self.config.allowed_lateness;
        // Ends to emit (passed just now) or purge (past allowed lateness); those emitted and
        // still kept for late records are left alone.
        let due = self
            .progress
            .ends
            .range(..=to)
            .map(|(end, _)| *end)
            .filter(|end| *end > from || end.saturating_add(lateness) <= to);
        for end in due {
            let emit = end > from;
            // An end stays due for purging until its purge is done: queued once. A purge of
            // an end whose emission is still under way is queued after it (never merged into
            // it: the windows that emission already passed would be left behind).
            let purge = end.saturating_add(lateness) <= to
                && !self.closing.iter().any(|c| c.end == end && c.purge);
            if !emit && !purge {
                continue;
            }
            self.closing.push(Closing {
                end,
                emit,
                purge,
                next: end_prefix(end).to_vec(),
            });
        }
        self.continue_closing(store, trigger, index, out)
    }

    /// Closes window ends in order, page by page, until this call's budget of results is spent.
    fn continue_closing(
        &mut self,
        store: &StateStore,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        while self.close_budget > 0 && !self.closing.is_empty() {
            let mut closing = self.closing.remove(0);
            let prefix = end_prefix(closing.end);
            let (windows, rest) =
                self.windows
                    .page_with_prefix(store, &prefix, &closing.next, self.close_budget)?;
            self.close_budget = self.close_budget.saturating_sub(windows.len().max(1));
            if closing.emit {
                for (_, window) in &windows {
                    self.emit(window, closing.end, trigger, index, out);
                }
            }
            self.windows.bound_memory(store)?;
            match rest {
                Some(next) => {
                    closing.next = next;
                    self.closing.insert(0, closing);
                }
                // The last page: the end's windows are deleted at once (one range deletion at
                // the next checkpoint, not one per group). The pages before stay until then;
                // the close's position skips them, and records for a purged end are late.
                None if closing.purge => {
                    self.windows.remove_prefix(&prefix);
                    // Unless another close of this end is queued (a purge after an emission
                    // only starts once that emission is done).
                    if !self.closing.iter().any(|c| c.end == closing.end) {
                        self.progress.ends.remove(&closing.end);
                    }
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Whether a close under way will still emit the window at `key` of `end` (so a late
    /// record's update need not be emitted now).
    fn close_will_emit(&self, end: i64, key: &[u8]) -> bool {
        self.closing
            .iter()
            .any(|c| c.end == end && c.emit && key >= c.next.as_slice())
    }

    /// Open windows changed since they were last emitted (those in memory).
    fn emit_early(&mut self, origin: usize, out: &mut BatchOutput) {
        let frontier = self.frontier();
        let mut due = Vec::new();
        self.windows.for_each_cached(|window| {
            if !window.changed {
                return false;
            }
            window.changed = false;
            due.push(window.clone());
            true
        });
        let trigger = Record::new(self.last_topic.clone(), Payload::null());
        for window in due {
            let end = window.start + self.config.size;
            if end > frontier {
                self.emit(&window, end, &trigger, origin, out);
            }
        }
    }

    fn emit(
        &self,
        window: &WindowState,
        end: i64,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) {
        let group: Vec<Value> = serde_json::from_str(&window.group).unwrap_or_default();
        let group_fields = || {
            self.config
                .group_by
                .iter()
                .map(String::as_str)
                .zip(group.iter().cloned())
        };
        let key = if reads_as_envelope(&self.config.group_by) {
            let fields = group_fields().map(|(name, value)| (name.to_owned(), value));
            Payload::value(Value::Object(fields.collect()))
        } else {
            Payload::json_bytes(json_object(group_fields()))
        };
        let bounds = [
            (self.config.start_field.as_str(), Value::from(window.start)),
            (self.config.end_field.as_str(), Value::from(end)),
        ];
        let features = self
            .config
            .features
            .iter()
            .zip(&window.accumulators)
            .map(|(feature, acc)| (feature.name.as_str(), acc.result()));
        let value = json_object(group_fields().chain(bounds).chain(features));
        let topic = self
            .config
            .output_topic
            .clone()
            .unwrap_or_else(|| trigger.topic.clone());
        let mut record = Record::new(topic, Payload::json_bytes(value));
        record.key = key;
        // The window's last instant (Flink's `maxTimestamp`): time-partitioned sinks file the
        // result under the window's own day.
        record.timestamp = Some(end - 1);
        record.partition = trigger.partition;
        record.offset = trigger.offset;
        if self.finished {
            let n = self.final_results.get() + 1;
            self.final_results.set(n);
            record.position = Some(Position {
                source: Arc::clone(&self.connector),
                partition: Arc::clone(&self.final_partition),
                offset: n,
            });
        }
        out.kept.push(record);
        out.origins.push(index);
    }
}

/// A window result as JSON text. A window end closes for every group at once, so results are
/// made as compact bytes: a parsed map per result was the largest part of the peak memory with
/// 100,000 groups. The value always has the window bounds and at least one feature, so it is
/// never read back as a `{"schema", "payload"}` envelope (`Data::from_json`); a key can be,
/// see [`reads_as_envelope`].
/// Header of a watermark marker: the newest event time (epoch ms, decimal text) its input
/// (an upstream partition of a repartition topic) has reached.
pub const MARKER_HEADER: &str = "hw.mark";

/// The event time a watermark marker carries; `None` for a data record.
fn marker_time(record: &Record) -> Option<i64> {
    let header = record.headers.iter().find(|h| h.key == MARKER_HEADER)?;
    std::str::from_utf8(header.value.as_deref()?)
        .ok()?
        .parse()
        .ok()
}

fn json_object<'a>(entries: impl Iterator<Item = (&'a str, Value)>) -> bytes::Bytes {
    use serde::Serializer as _;
    let mut text = Vec::with_capacity(128);
    // Serializing JSON values into memory cannot fail.
    let written = serde_json::Serializer::new(&mut text).collect_map(entries);
    debug_assert!(written.is_ok(), "{written:?}");
    // Exactly sized: a key of ~20 bytes would otherwise keep the whole 128-byte buffer.
    bytes::Bytes::from(text.into_boxed_slice())
}

/// Whether a key made of these group fields would read back as a Connect envelope: grouped by
/// exactly `schema` and `payload`. Such a key is kept parsed, never as JSON text.
fn reads_as_envelope(group_by: &[String]) -> bool {
    group_by.len() == 2 && group_by.iter().all(|f| f == "schema" || f == "payload")
}

/// One session of a group: from its first record to its last; it closes `gap` after the last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub start: i64,
    pub last: i64,
    pub accumulators: Vec<Accumulator>,
}

/// The time of a timer key (`end_key`).
fn timer_time(key: &[u8]) -> Option<i64> {
    let bytes = <[u8; 8]>::try_from(key.get(..8)?).ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// Timer kinds: emit the session (it just closed), or drop it (allowed lateness is over).
const EMIT: u8 = 0;
const PURGE: u8 = 1;

impl Operator {
    /// Adds a record to its group's sessions: it opens one, extends one, or bridges several
    /// into one (their aggregates merged).
    #[allow(clippy::too_many_arguments)]
    fn absorb_session(
        &mut self,
        store: &StateStore,
        record: &Record,
        (input, index): (&str, usize),
        out: &mut BatchOutput,
        (t, gap): (i64, i64),
        value: &Value,
        group: String,
    ) -> Result<(), Failure> {
        let lateness = self.config.allowed_lateness;
        let frontier = self.frontier();
        let key = group.as_bytes().to_vec();
        let kept: Vec<Session> = self
            .sessions
            .get(store, &key)
            .map_err(Failure::State)?
            .cloned()
            .unwrap_or_default();
        // A session covers [start, last + gap); the record's own is [t, t + gap).
        let (joined, mut others): (Vec<Session>, Vec<Session>) = kept
            .into_iter()
            .partition(|s| t < s.last + gap && s.start < t + gap);
        if joined.is_empty() && t + gap + lateness <= frontier {
            return self.late(record, t, index, out);
        }
        let mut merged = Session {
            start: t,
            last: t,
            accumulators: self
                .config
                .features
                .iter()
                .map(|f| f.function.start())
                .collect(),
        };
        for (feature, acc) in self
            .config
            .features
            .iter()
            .zip(merged.accumulators.iter_mut())
        {
            let input = feature.field.as_deref().and_then(|f| value.get(f));
            acc.add(feature.function, input, t)
                .map_err(|e| Failure::Record(TransformError::data(e.to_string())))?;
        }
        for old in joined {
            self.timers
                .remove(&self.session_timer(&old, gap, frontier, &group));
            merged.start = merged.start.min(old.start);
            merged.last = merged.last.max(old.last);
            for (acc, theirs) in merged.accumulators.iter_mut().zip(old.accumulators) {
                acc.merge(theirs);
            }
        }
        let close = merged.last + gap;
        if close <= frontier {
            // Joined a closed session still kept for late records: its result, updated.
            self.emit_session(&merged, gap, &group, record, index, out);
        }
        let timer = self.session_timer(&merged, gap, frontier, &group);
        self.note_timer(&timer);
        *self
            .timers
            .upsert(store, &timer, || EMIT)
            .map_err(Failure::State)? = if close <= frontier { PURGE } else { EMIT };
        others.push(merged);
        *self
            .sessions
            .upsert(store, &key, Vec::new)
            .map_err(Failure::State)? = others;
        self.observe(store, input, t, record, index, out)
            .map_err(Failure::State)
    }

    /// The timer a session has: to emit at its close, or (already closed and emitted) to
    /// drop it once allowed lateness is over.
    fn session_timer(&self, session: &Session, gap: i64, frontier: i64, group: &str) -> Vec<u8> {
        let close = session.last + gap;
        let at = if close <= frontier {
            close + self.config.allowed_lateness
        } else {
            close
        };
        end_key(at, group)
    }

    /// Fires the timers the watermark `to` passed: closed sessions are emitted, expired ones
    /// dropped.
    fn fire_session_timers(
        &mut self,
        store: &StateStore,
        to: i64,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        let Some(gap) = self.config.session_gap else {
            return Ok(());
        };
        if self.earliest(store)?.is_none_or(|at| at > to) {
            return Ok(());
        }
        // Unknown again after this round (purge timers are added as sessions close).
        self.earliest_timer = None;
        let lateness = self.config.allowed_lateness;
        let until = end_prefix(to.saturating_add(1));
        let mut next = Some(end_prefix(i64::MIN).to_vec());
        while let Some(at_key) = next.take() {
            let (due, rest) = self.timers.page(store, &at_key, Some(&until), CLOSE_PAGE)?;
            for (timer, kind) in due {
                self.timers.remove(&timer);
                let Some(at) = timer_time(&timer) else {
                    continue;
                };
                let group = String::from_utf8_lossy(&timer[8..]).into_owned();
                let key = group.as_bytes().to_vec();
                let mut sessions = self.sessions.get(store, &key)?.cloned().unwrap_or_default();
                let close_of = |s: &Session| s.last + gap;
                let position = match kind {
                    EMIT => sessions.iter().position(|s| close_of(s) == at),
                    _ => sessions.iter().position(|s| close_of(s) + lateness == at),
                };
                let Some(i) = position else { continue };
                if kind == EMIT {
                    self.emit_session(&sessions[i], gap, &group, trigger, index, out);
                }
                if kind == EMIT && at + lateness > to {
                    let purge = end_key(at + lateness, &group);
                    *self.timers.upsert(store, &purge, || PURGE)? = PURGE;
                    continue;
                }
                sessions.remove(i);
                if sessions.is_empty() {
                    self.sessions.remove(&key);
                } else {
                    *self.sessions.upsert(store, &key, Vec::new)? = sessions;
                }
            }
            next = rest;
            self.timers.bound_memory(store)?;
            self.sessions.bound_memory(store)?;
        }
        Ok(())
    }

    /// Lowers the known earliest timer to a timer just set.
    fn note_timer(&mut self, timer: &[u8]) {
        if let (Some(known), Some(at)) = (self.earliest_timer, timer_time(timer)) {
            self.earliest_timer = Some(known.min(at));
        }
    }

    /// The earliest timer's time (looked up when unknown); `None` without timers.
    fn earliest(&mut self, store: &StateStore) -> Result<Option<i64>, StateError> {
        if self.earliest_timer.is_some() {
            return Ok(self.earliest_timer);
        }
        let mut next = Some(end_prefix(i64::MIN).to_vec());
        while let Some(at) = next.take() {
            let (found, rest) = self.timers.page(store, &at, None, 64)?;
            if let Some((key, _)) = found.first() {
                self.earliest_timer = timer_time(key);
                return Ok(self.earliest_timer);
            }
            next = rest;
        }
        Ok(None)
    }

    fn emit_session(
        &self,
        session: &Session,
        gap: i64,
        group: &str,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) {
        let window = WindowState {
            start: session.start,
            group: group.to_owned(),
            accumulators: session.accumulators.clone(),
            changed: false,
        };
        self.emit(&window, session.last + gap, trigger, index, out);
    }
}

enum Failure {
    /// This record cannot be windowed (bad time, bad value): it is a record error.
    Record(TransformError),
    /// The state store failed: the task stops and restarts from its checkpoint.
    State(StateError),
}
