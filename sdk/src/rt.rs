//! What the `#[transform]` and `#[check]` glue calls: the batch loops, state and host hooks.
//! Not part of the public API.

use std::any::Any;
use std::cell::RefCell;
use std::sync::OnceLock;

use crate::check::Violation;
use crate::config::{Config, Param};
use crate::emitter::Emitter;
use crate::error::Result;
use crate::log::Level;
use crate::metrics;
pub use crate::metrics::Series;
use crate::record::{self, Record};

/// Name, version and parameters of a plugin (from its crate and attribute).
#[derive(Debug, Clone, Copy)]
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    pub description: &'static str,
    pub params: &'static [Param],
}

/// A transform as the glue sees it.
pub trait TransformPlugin {
    type State: 'static;
    const INFO: Info;
    fn init(config: Config) -> Result<Self::State>;
    fn transform(state: &Self::State, record: &Record<'_>, out: &mut Emitter) -> Result<()>;
}

/// A check as the glue sees it: per batch (per-record checks are looped by [`each_record`]).
pub trait CheckPlugin {
    type State: 'static;
    const INFO: Info;
    fn init(config: Config) -> Result<Self::State>;
    fn check(state: &Self::State, records: &[Record<'_>]) -> Result<CheckOut>;
}

/// Runs a per-record check over a batch: a record's `Err` is that record's error.
pub fn each_record(
    records: &[Record<'_>],
    mut check: impl FnMut(&Record<'_>) -> Result<Vec<Violation>>,
) -> Result<CheckOut> {
    let mut out = CheckOut::default();
    for rec in records {
        match check(rec) {
            Ok(found) => out
                .violations
                .extend(found.into_iter().map(|v| (rec.index(), v))),
            Err(e) => out.errors.push((rec.index(), e.to_string())),
        }
    }
    Ok(out)
}

/// One metric sample: series and value.
pub type Sample = (Series, f64);

/// The host's imports, registered by the glue (their types live in the plugin's bindings).
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub log: fn(Level, &str),
    /// Counters, then gauges.
    pub metrics: fn(&[Sample], &[Sample]),
    /// The `state` interface, for `#[transform(stateful = true)]`.
    pub state: Option<StateHost>,
}

/// Entries a state scan returns: key and value bytes.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The native stand-in for the host's state: entries and watermark.
type LocalState = (std::collections::BTreeMap<Vec<u8>, Vec<u8>>, i64);

/// The host's `state` functions.
#[derive(Debug, Clone, Copy)]
pub struct StateHost {
    pub get: fn(&[u8]) -> Option<Vec<u8>>,
    pub put: fn(&[u8], &[u8]),
    pub delete: fn(&[u8]),
    pub scan: fn(&[u8], &[u8], u32) -> Entries,
    pub watermark: fn() -> i64,
}

/// Where [`crate::state`] goes: the host, or (in a plugin's native unit tests) a map.
pub(crate) enum StateAccess {
    Host(StateHost),
    Local,
}

thread_local! {
    /// The native stand-in for the host's state (plugin unit tests), and its watermark.
    static LOCAL_STATE: RefCell<LocalState> =
        const { RefCell::new((std::collections::BTreeMap::new(), i64::MIN)) };
}

pub(crate) fn state() -> StateAccess {
    match HOST.get().and_then(|h| h.state) {
        Some(hooks) => StateAccess::Host(hooks),
        None => StateAccess::Local,
    }
}

/// Sets the watermark [`crate::state::watermark`] reports in native unit tests.
pub fn set_test_watermark(watermark: i64) {
    LOCAL_STATE.with_borrow_mut(|s| s.1 = watermark);
}

impl StateAccess {
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Host(h) => (h.get)(key),
            Self::Local => LOCAL_STATE.with_borrow(|s| s.0.get(key).cloned()),
        }
    }

    pub(crate) fn put(&self, key: &[u8], value: &[u8]) {
        match self {
            Self::Host(h) => (h.put)(key, value),
            Self::Local => LOCAL_STATE.with_borrow_mut(|s| {
                s.0.insert(key.to_vec(), value.to_vec());
            }),
        }
    }

    pub(crate) fn delete(&self, key: &[u8]) {
        match self {
            Self::Host(h) => (h.delete)(key),
            Self::Local => LOCAL_STATE.with_borrow_mut(|s| {
                s.0.remove(key);
            }),
        }
    }

    pub(crate) fn scan(&self, prefix: &[u8], start: &[u8], limit: u32) -> Entries {
        match self {
            Self::Host(h) => (h.scan)(prefix, start, limit),
            Self::Local => LOCAL_STATE.with_borrow(|s| {
                let from = if start > prefix { start } else { prefix };
                s.0.range(from.to_vec()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .take(limit as usize)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
        }
    }

    pub(crate) fn watermark(&self) -> i64 {
        match self {
            Self::Host(h) => (h.watermark)(),
            Self::Local => LOCAL_STATE.with_borrow(|s| s.1),
        }
    }
}

static HOST: OnceLock<Host> = OnceLock::new();

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

pub fn set_host(host: Host) {
    let _ = HOST.set(host);
}

pub(crate) fn log(level: Level, message: &str) {
    match HOST.get() {
        Some(host) => (host.log)(level, message),
        // Outside a host (unit tests of plugin functions): stderr.
        None => eprintln!("[{level:?}] {message}"),
    }
}

fn flush_metrics() {
    let pending = metrics::take();
    if pending.counters.is_empty() && pending.gauges.is_empty() {
        return;
    }
    if let Some(host) = HOST.get() {
        let counters: Vec<_> = pending.counters.into_iter().collect();
        let gauges: Vec<_> = pending.gauges.into_iter().collect();
        (host.metrics)(&counters, &gauges);
    }
}

/// Checks the config against the declared params and stores the plugin's state.
pub fn init<S: 'static>(
    params: &[Param],
    raw: Vec<(String, String)>,
    build: impl FnOnce(Config) -> Result<S>,
) -> std::result::Result<(), String> {
    let config = Config::parse(params, raw).map_err(|e| e.to_string())?;
    let state = build(config).map_err(|e| e.to_string())?;
    STATE.with_borrow_mut(|s| *s = Some(Box::new(state)));
    flush_metrics();
    Ok(())
}

fn with_state<S: 'static, T>(f: impl FnOnce(&S) -> T) -> std::result::Result<T, String> {
    STATE.with_borrow(|state| {
        let state = state
            .as_ref()
            .and_then(|s| s.downcast_ref::<S>())
            .ok_or_else(|| "the host called the plugin before `init`".to_owned())?;
        Ok(f(state))
    })
}

/// A transform's result: the emitter's columns and the records that failed.
#[derive(Debug)]
pub struct TransformOut {
    pub emitted: Emitter,
    pub errors: Vec<(u32, String)>,
}

pub fn process<P: TransformPlugin>(
    arena: &[u8],
    spans: &[u32],
    timestamps: &[i64],
) -> std::result::Result<TransformOut, String> {
    let out = with_state::<P::State, _>(|state| {
        let mut emitted = Emitter::new();
        let mut errors = Vec::new();
        for rec in record::records(arena, spans, timestamps) {
            let mark = emitted.len();
            let arena_mark = emitted.arena.len();
            if let Err(e) = P::transform(state, &rec, &mut emitted) {
                // What the failed record emitted before its error is taken back.
                emitted.sources.truncate(mark);
                emitted.timestamps.truncate(mark);
                emitted.spans.truncate(mark * crate::wire::SPAN_WIDTH);
                emitted.arena.truncate(arena_mark);
                errors.push((rec.index(), e.to_string()));
            }
        }
        TransformOut { emitted, errors }
    });
    flush_metrics();
    out
}

/// A check's result: violations per input index, and the records that failed.
#[derive(Debug, Default)]
pub struct CheckOut {
    pub violations: Vec<(u32, Violation)>,
    pub errors: Vec<(u32, String)>,
}

pub fn check<P: CheckPlugin>(
    arena: &[u8],
    spans: &[u32],
    timestamps: &[i64],
) -> std::result::Result<CheckOut, String> {
    let out = with_state::<P::State, _>(|state| {
        let records: Vec<Record<'_>> = record::records(arena, spans, timestamps).collect();
        P::check(state, &records).map_err(|e| e.to_string())
    });
    flush_metrics();
    out?
}
