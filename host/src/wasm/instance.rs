//! One warm plugin instance: its store, its bindings, and calls with a deadline and a memory
//! cap. After a trap the instance is poisoned and must be dropped.

use std::sync::Arc;

use wasmtime::Store;

use super::bindings::checker::Checker;
use super::bindings::transformer::Transformer;
use super::bindings::types::{Batch, OutBatch, PluginError, PluginInfo, Verdicts};
use super::engine::{EPOCH_TICK, engine};
use super::host::{HostState, Scope};
use super::module::{Module, Prepared};

/// Limits of one step's instances.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Per call (one batch).
    pub timeout_ms: u64,
    pub max_memory: usize,
}

/// Why a call did not return normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The guest trapped (a panic, an out-of-bounds access...).
    Trap(String),
    /// The call ran past `timeout.ms`.
    Timeout(u64),
    /// The guest tried to grow its memory past `max.memory.bytes`.
    MemoryCap { max: usize, asked: usize },
    /// The guest returned `plugin-error.fatal`.
    Fatal(String),
    /// The guest refused its configuration.
    Config(String),
}

impl CallError {
    /// The `__connect.errors.exception.class.name` for records this error sends to the DLQ.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trap(_) => "headwater.wasm.Trap",
            Self::Timeout(_) => "headwater.wasm.Timeout",
            Self::MemoryCap { .. } => "headwater.wasm.MemoryLimitExceeded",
            Self::Fatal(_) => "headwater.wasm.PluginError",
            Self::Config(_) => "headwater.wasm.ConfigError",
        }
    }

    /// True when the instance cannot be called again.
    pub fn poisons(&self) -> bool {
        !matches!(self, Self::Fatal(_) | Self::Config(_))
    }
}

impl std::error::Error for CallError {}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Trap(m) => write!(f, "the plugin crashed: {m}"),
            Self::Timeout(ms) => write!(
                f,
                "the plugin ran longer than timeout.ms={ms} and was stopped"
            ),
            Self::MemoryCap { max, asked } => write!(
                f,
                "the plugin tried to grow its memory to {asked} bytes, above max.memory.bytes={max}"
            ),
            Self::Fatal(m) => write!(f, "the plugin failed: {m}"),
            Self::Config(m) => write!(f, "the plugin refused its configuration: {m}"),
        }
    }
}

enum Bindings {
    Transform(Transformer),
    Check(Checker),
}

/// A live instance.
pub struct Instance {
    store: Store<HostState>,
    bindings: Bindings,
    limits: Limits,
    /// Which module version it came from (for hot reload).
    pub generation: u64,
    /// The batch buffers, reused from call to call.
    scratch: Option<Batch>,
}

impl Instance {
    /// Instantiates `module` and calls `init(config)`.
    pub fn start(
        module: &Module,
        generation: u64,
        limits: Limits,
        scope: Arc<Scope>,
        config: &[(String, String)],
    ) -> Result<Self, CallError> {
        let mut instance = Self::instantiate(module, generation, limits, scope)?;
        instance.init(config)?;
        Ok(instance)
    }

    /// Instantiates `module` without calling `init` (enough for `describe`).
    pub fn instantiate(
        module: &Module,
        generation: u64,
        limits: Limits,
        scope: Arc<Scope>,
    ) -> Result<Self, CallError> {
        let engine = engine().map_err(|e| CallError::Fatal(e.to_string()))?;
        let mut store = Store::new(engine, HostState::new(scope, limits.max_memory));
        store.limiter(|s| &mut s.cap);
        store.epoch_deadline_trap();
        set_deadline(&mut store, limits);
        let bindings = match &module.prepared {
            Prepared::Transform(pre) => pre.instantiate(&mut store).map(Bindings::Transform),
            Prepared::Check(pre) => pre.instantiate(&mut store).map(Bindings::Check),
        }
        .map_err(|e| classify(&mut store, limits, e))?;
        Ok(Self {
            store,
            bindings,
            limits,
            generation,
            scratch: None,
        })
    }

    /// Calls `init(config)`.
    pub fn init(&mut self, config: &[(String, String)]) -> Result<(), CallError> {
        let result = self.call(|b, s| match b {
            Bindings::Transform(t) => t.headwater_plugin_lifecycle().call_init(s, config),
            Bindings::Check(c) => c.headwater_plugin_lifecycle().call_init(s, config),
        })?;
        result.map_err(plugin_error)
    }

    /// True once the guest's memory has grown past half its cap. Linear memory never shrinks:
    /// one huge batch would leave an instance close to the cap for good, so such an instance
    /// is replaced by a fresh one rather than reused.
    pub fn worn_out(&self) -> bool {
        let cap = &self.store.data().cap;
        cap.grown_to > cap.max / 2
    }

    /// The reusable batch buffers (empty the first time).
    pub fn take_scratch(&mut self) -> Batch {
        self.scratch.take().unwrap_or(Batch {
            arena: Vec::new(),
            spans: Vec::new(),
            timestamps: Vec::new(),
        })
    }

    pub fn put_scratch(&mut self, batch: Batch) {
        self.scratch = Some(batch);
    }

    pub fn describe(&mut self) -> Result<PluginInfo, CallError> {
        self.call(|b, s| match b {
            Bindings::Transform(t) => t.headwater_plugin_lifecycle().call_describe(s),
            Bindings::Check(c) => c.headwater_plugin_lifecycle().call_describe(s),
        })
    }

    /// Runs a transform over a batch.
    pub fn process(&mut self, batch: &Batch) -> Result<OutBatch, CallError> {
        let host = self.store.data_mut();
        host.pending.clear();
        host.state_error = None;
        let result = self.call(|b, s| match b {
            Bindings::Transform(t) => t.headwater_plugin_transform().call_process(s, batch),
            Bindings::Check(_) => Err(wasmtime::format_err!("a check has no `process`")),
        })?;
        if let Some(e) = self.store.data_mut().state_error.take() {
            return Err(CallError::Fatal(format!("its state store failed: {e}")));
        }
        result.map_err(plugin_error)
    }

    /// Gives the instance its step's state.
    pub fn set_plugin_state(&mut self, state: Option<Arc<super::state::PluginState>>) {
        self.store.data_mut().plugin_state = state;
    }

    /// The state changes of the last call (to apply once it succeeded).
    pub fn take_pending(&mut self) -> super::state::Pending {
        std::mem::take(&mut self.store.data_mut().pending)
    }

    /// Runs a check over a batch.
    pub fn check(&mut self, batch: &Batch) -> Result<Verdicts, CallError> {
        let result = self.call(|b, s| match b {
            Bindings::Check(c) => c.headwater_plugin_quality().call_check(s, batch),
            Bindings::Transform(_) => Err(wasmtime::format_err!("a transform has no `check`")),
        })?;
        result.map_err(plugin_error)
    }

    fn call<T>(
        &mut self,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        set_deadline(&mut self.store, self.limits);
        self.store.data_mut().cap.hit = None;
        // Output of earlier calls was logged already; keep only this call's for errors.
        self.store.data().stderr.take_captured();
        f(&self.bindings, &mut self.store).map_err(|e| classify(&mut self.store, self.limits, e))
    }
}

fn set_deadline(store: &mut Store<HostState>, limits: Limits) {
    let ticks = (limits.timeout_ms * 1000).div_ceil(EPOCH_TICK.as_micros() as u64);
    store.set_epoch_deadline(ticks.max(1));
}

fn plugin_error(e: PluginError) -> CallError {
    match e {
        PluginError::Config(m) => CallError::Config(m),
        PluginError::Fatal(m) => CallError::Fatal(m),
    }
}

/// Names what went wrong in a failed call: a timeout, the memory cap, or a trap with whatever
/// the guest wrote to stderr (a Rust panic prints its message there).
fn classify(store: &mut Store<HostState>, limits: Limits, e: wasmtime::Error) -> CallError {
    if let Some(asked) = store.data().cap.hit {
        return CallError::MemoryCap {
            max: limits.max_memory,
            asked,
        };
    }
    if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return CallError::Timeout(limits.timeout_ms);
    }
    let stderr = store.data().stderr.take_captured();
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
        .collect();
    let trap = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => format!("{e}"),
    };
    if said.is_empty() {
        CallError::Trap(trap)
    } else {
        CallError::Trap(format!("{} ({trap})", said.join(" ")))
    }
}
