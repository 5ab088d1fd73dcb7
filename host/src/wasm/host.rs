//! What a plugin instance's store holds, and the host side of its imports: an empty WASI
//! (no files, no network, no environment), guest output to `tracing`, log and metrics.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::bindings::{log, metrics, state, types};
use super::metrics::{MetricKind, SeriesKey, plugin_metric_name, record};
use super::output::GuestOutput;
use super::state::{Pending, PluginState};

/// Which connector and step an instance belongs to: named in its logs and metrics.
#[derive(Debug)]
pub struct Scope {
    pub connector: String,
    pub step: String,
    /// What a stateful plugin's state is stored under (`wasm:<alias>`, see
    /// [`crate::api::transform::ChainContext::state_name`]).
    pub state: String,
}

/// Caps a store's linear memory at `max.memory.bytes` and remembers when the cap was hit,
/// so the resulting trap is reported as what it is.
#[derive(Debug)]
pub struct MemoryCap {
    pub max: usize,
    pub hit: Option<usize>,
    /// The largest linear memory granted so far (memories only grow).
    pub grown_to: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit = Some(desired);
            return Err(wasmtime::format_err!(
                "memory cap of {} bytes reached (asked for {desired})",
                self.max
            ));
        }
        self.grown_to = self.grown_to.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables hold function references; a million is far beyond any real plugin.
        Ok(desired <= 1_000_000)
    }
}

/// The data of one plugin instance's store.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub cap: MemoryCap,
    pub scope: Arc<Scope>,
    pub stderr: GuestOutput,
    /// A stateful transform's state (shared by the step's instances), and this call's
    /// changes to it, applied when the call succeeds.
    pub plugin_state: Option<Arc<PluginState>>,
    pub pending: Pending,
    /// A state store failure during the call: the batch fails with it.
    pub state_error: Option<String>,
}

impl HostState {
    pub fn new(scope: Arc<Scope>, max_memory: usize) -> Self {
        let stdout = GuestOutput::new(Arc::clone(&scope), "stdout");
        let stderr = GuestOutput::new(Arc::clone(&scope), "stderr");
        // Nothing inherited: no preopened dirs, no env, no args, no sockets.
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout)
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            cap: MemoryCap {
                max: max_memory,
                hit: None,
                grown_to: 0,
            },
            scope,
            stderr,
            plugin_state: None,
            pending: Pending::new(),
            state_error: None,
        }
    }

    /// The step's state; an instance outside a step (`headwater plugin test`) gets its own,
    /// in memory.
    fn plugin_state(&mut self) -> Option<Arc<PluginState>> {
        if self.plugin_state.is_none() {
            match PluginState::new(&self.scope.state) {
                Ok(s) => self.plugin_state = Some(s),
                Err(e) => self.state_error = Some(e.to_string()),
            }
        }
        self.plugin_state.clone()
    }

    fn state_failed(&mut self, e: crate::state::StateError) {
        tracing::error!(connector = %self.scope.connector, step = %self.scope.step, error = %e, "Plugin state store failed.");
        self.state_error.get_or_insert(e.to_string());
    }
}

impl state::Host for HostState {
    fn get(&mut self, key: Vec<u8>) -> Option<Vec<u8>> {
        let state = self.plugin_state()?;
        match state.get(&self.pending, &key) {
            Ok(v) => v,
            Err(e) => {
                self.state_failed(e);
                None
            }
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.pending.insert(key, Some(value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.pending.insert(key, None);
    }

    fn scan(&mut self, prefix: Vec<u8>, start: Vec<u8>, limit: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        let Some(state) = self.plugin_state() else {
            return Vec::new();
        };
        match state.scan(&self.pending, &prefix, &start, limit as usize) {
            Ok(entries) => entries,
            Err(e) => {
                self.state_failed(e);
                Vec::new()
            }
        }
    }

    fn watermark(&mut self) -> i64 {
        self.plugin_state().map_or(i64::MIN, |s| s.watermark())
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let (connector, step) = (&*self.scope.connector, &*self.scope.step);
        match level {
            log::Level::Trace => tracing::trace!(connector = %connector, step = %step, "{message}"),
            log::Level::Debug => tracing::debug!(connector = %connector, step = %step, "{message}"),
            log::Level::Info => tracing::info!(connector = %connector, step = %step, "{message}"),
            log::Level::Warn => tracing::warn!(connector = %connector, step = %step, "{message}"),
            log::Level::Error => tracing::error!(connector = %connector, step = %step, "{message}"),
        }
    }
}

impl metrics::Host for HostState {
    fn record_batch(&mut self, counters: Vec<metrics::Point>, gauges: Vec<metrics::Point>) {
        let batches = [(counters, MetricKind::Counter), (gauges, MetricKind::Gauge)];
        for (points, kind) in batches {
            for p in points {
                let key = SeriesKey {
                    name: plugin_metric_name(&p.name),
                    connector: self.scope.connector.clone(),
                    step: self.scope.step.clone(),
                    labels: p.labels,
                };
                record(&key, kind, p.value);
            }
        }
    }
}
