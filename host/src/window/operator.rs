//! The windowing itself: assigning records to windows, the watermark, closing and purging
//! windows, late records, early emission. State lives in a [`StateTable`] keyed by window end
//! (ordered, so closing is a range scan) and group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::accumulator::Accumulator;
use super::config::{AggregateConfig, LatePolicy};
use crate::core::record::{Payload, Record};
use crate::core::time::timestamp_millis;
use crate::core::transform::{BatchOutput, TransformError};
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
    /// The newest event time seen.
    max_event: Option<i64>,
    /// Windows that end at or before it are closed.
    watermark: Option<i64>,
    /// Ends of the windows kept, with how many groups have one (few: windows are aligned), so
    /// the watermark only scans the store when a window is due.
    ends: BTreeMap<i64, u64>,
}

/// The event times windows accept (about ±270 years around 1970): window arithmetic cannot
/// overflow within them.
const MAX_TIME: i64 = 1 << 53;

/// Windows read at a time when closing.
const CLOSE_PAGE: usize = 10_000;

/// Window ends as bytes that sort like the numbers.
fn end_key(end: i64, group: &str) -> Vec<u8> {
    let mut key = ((end as u64) ^ (1 << 63)).to_be_bytes().to_vec();
    key.extend_from_slice(group.as_bytes());
    key
}

fn end_prefix(end: i64) -> [u8; 8] {
    ((end as u64) ^ (1 << 63)).to_be_bytes()
}

pub struct Operator {
    config: Arc<AggregateConfig>,
    /// The step's tables are named after it: `window:<alias>`.
    name: String,
    store: Option<Arc<StateStore>>,
    windows: StateTable<WindowState>,
    progress: Progress,
    last_early: Instant,
    /// Topic of the newest input: early results go there when `output.topic` is not set.
    last_topic: String,
}

impl Operator {
    pub fn new(config: Arc<AggregateConfig>, alias: &str) -> Self {
        let name = format!("window:{alias}");
        Self {
            windows: StateTable::new(name.clone(), config.cache_entries),
            name,
            config,
            store: None,
            progress: Progress::default(),
            last_early: Instant::now(),
            last_topic: String::new(),
        }
    }

    fn progress_key(&self) -> String {
        format!("{}:progress", self.name)
    }

    pub fn restore(&mut self, store: &Arc<StateStore>) -> Result<(), StateError> {
        self.progress = match store.meta(&self.progress_key())? {
            Some(bytes) => postcard::from_bytes(&bytes).map_err(|e| StateError {
                path: Default::default(),
                message: format!("{}: undecodable progress: {e}", self.name),
            })?,
            None => Progress::default(),
        };
        self.windows = StateTable::new(self.name.clone(), self.config.cache_entries);
        self.store = Some(Arc::clone(store));
        Ok(())
    }

    pub fn checkpoint(&mut self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        self.windows.write_changes(writer)?;
        let bytes = postcard::to_allocvec(&self.progress).map_err(|e| StateError {
            path: Default::default(),
            message: format!("{}: cannot encode progress: {e}", self.name),
        })?;
        writer.put_meta(&self.progress_key(), &bytes)
    }

    /// Windows kept decoded in memory.
    pub fn resident(&self) -> usize {
        self.windows.resident()
    }

    pub fn watermark(&self) -> Option<i64> {
        self.progress.watermark
    }

    fn store(&self) -> Result<Arc<StateStore>, String> {
        self.store
            .clone()
            .ok_or_else(|| "the window state store is not open (a bug)".to_owned())
    }

    /// Processes a batch: every input is absorbed into its windows (or handled as late); the
    /// outputs are the windows that closed (or were updated late, or emitted early).
    pub fn process(&mut self, records: Vec<Record>) -> BatchOutput {
        let mut out = BatchOutput::default();
        let store = match self.store() {
            Ok(s) => s,
            Err(e) => {
                out.fatal = Some(e);
                return out;
            }
        };
        let last = records.len().saturating_sub(1);
        for (i, mut record) in records.into_iter().enumerate() {
            if self.last_topic != record.topic {
                self.last_topic.clone_from(&record.topic);
            }
            match self.absorb(&store, &mut record, i, &mut out) {
                Ok(()) => {}
                Err(Failure::Record(e)) => out.failed.push((i, record, e)),
                Err(Failure::State(e)) => {
                    out.fatal = Some(e.to_string());
                    return out;
                }
            }
            if let Err(e) = self.windows.bound_memory(&store) {
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
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), Failure> {
        let t = self.event_time(record).map_err(Failure::Record)?;
        if !(-MAX_TIME..=MAX_TIME).contains(&t) {
            return Err(Failure::Record(TransformError::data(format!(
                "window: event time {t} is outside the years 1700..2240 (epoch milliseconds \
                 expected)"
            ))));
        }
        let value = record
            .value
            .get()
            .map_err(|e| {
                Failure::Record(TransformError::data(format!(
                    "window: the value is not JSON: {e}"
                )))
            })?
            .value
            .clone();
        let group: Vec<&Value> = self
            .config
            .group_by
            .iter()
            .map(|f| value.get(f.as_str()).unwrap_or(&Value::Null))
            .collect();
        let group = serde_json::to_string(&group).unwrap_or_default();
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
        let lateness = self.config.allowed_lateness;
        let watermark = self.progress.watermark.unwrap_or(i64::MIN);
        let mut absorbed = false;
        for start in self.window_starts(t) {
            let end = start + self.config.size;
            if end.saturating_add(lateness) <= watermark {
                continue; // closed and purged
            }
            absorbed = true;
            let key = end_key(end, &group);
            let features = &self.config.features;
            let mut created = false;
            let window = self
                .windows
                .upsert(store, &key, || {
                    created = true;
                    WindowState {
                        start,
                        group: group.clone(),
                        accumulators: features.iter().map(|f| f.function.start()).collect(),
                        changed: false,
                    }
                })
                .map_err(Failure::State)?;
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
            if created {
                *self.progress.ends.entry(end).or_default() += 1;
            }
            if end <= watermark {
                // A late record within allowed.lateness: the window's result, updated.
                let window = window.clone();
                self.emit(&window, end, record, index, out);
            }
        }
        if !absorbed {
            return self.late(record, t, watermark, index, out);
        }
        if self.progress.max_event.is_none_or(|m| t > m) {
            self.progress.max_event = Some(t);
            let next = t.saturating_sub(self.config.watermark_delay);
            if next > watermark {
                self.advance(store, next, record, index, out)
                    .map_err(Failure::State)?;
            }
        }
        Ok(())
    }

    fn late(
        &mut self,
        record: &Record,
        t: i64,
        watermark: i64,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), Failure> {
        match &self.config.late {
            LatePolicy::Drop => {
                out.dropped += 1;
                Ok(())
            }
            LatePolicy::DeadLetter => Err(Failure::Record(TransformError::data(format!(
                "window: late record: event time {t} is before the watermark {watermark} minus \
                 allowed.lateness.ms ({}); its windows are closed",
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

    /// Moves the watermark to `to`: emits the windows that end by it, purges those past
    /// allowed lateness.
    fn advance(
        &mut self,
        store: &StateStore,
        to: i64,
        trigger: &Record,
        index: usize,
        out: &mut BatchOutput,
    ) -> Result<(), StateError> {
        let from = self.progress.watermark.unwrap_or(i64::MIN);
        self.progress.watermark = Some(to);
        let lateness = self.config.allowed_lateness;
        // Ends to emit (passed just now) or purge (past allowed lateness); those emitted and
        // still kept for late records are left alone.
        let due: Vec<i64> = self
            .progress
            .ends
            .range(..=to)
            .map(|(end, _)| *end)
            .filter(|end| *end > from || end.saturating_add(lateness) <= to)
            .collect();
        for end in due {
            let prefix = end_prefix(end);
            let emit = end > from;
            let purge = end.saturating_add(lateness) <= to;
            // Page by page: a window end shared by a million groups is never all in memory.
            let mut next = Some(prefix.to_vec());
            while let Some(at) = next.take() {
                let (windows, rest) = self
                    .windows
                    .page_with_prefix(store, &prefix, &at, CLOSE_PAGE)?;
                for (key, window) in windows {
                    if emit {
                        self.emit(&window, end, trigger, index, out);
                    }
                    if purge {
                        self.windows.remove(&key);
                    }
                }
                next = rest;
                self.windows.bound_memory(store)?;
            }
            if purge {
                self.progress.ends.remove(&end);
            }
        }
        Ok(())
    }

    /// Open windows changed since they were last emitted (those in memory).
    fn emit_early(&mut self, origin: usize, out: &mut BatchOutput) {
        let watermark = self.progress.watermark.unwrap_or(i64::MIN);
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
            if end > watermark {
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
        let mut key = Map::new();
        let mut value = Map::new();
        for (field, v) in self.config.group_by.iter().zip(group) {
            key.insert(field.clone(), v.clone());
            value.insert(field.clone(), v);
        }
        value.insert(self.config.start_field.clone(), window.start.into());
        value.insert(self.config.end_field.clone(), end.into());
        for (feature, acc) in self.config.features.iter().zip(&window.accumulators) {
            value.insert(feature.name.clone(), acc.result());
        }
        let topic = self
            .config
            .output_topic
            .clone()
            .unwrap_or_else(|| trigger.topic.clone());
        let mut record = Record::new(topic, Payload::value(Value::Object(value)));
        record.key = Payload::value(Value::Object(key));
        // The window's last instant (Flink's `maxTimestamp`): time-partitioned sinks file the
        // result under the window's own day.
        record.timestamp = Some(end - 1);
        record.partition = trigger.partition;
        record.offset = trigger.offset;
        out.kept.push(record);
        out.origins.push(index);
    }
}

enum Failure {
    /// This record cannot be windowed (bad time, bad value): it is a record error.
    Record(TransformError),
    /// The state store failed: the task stops and restarts from its checkpoint.
    State(StateError),
}
