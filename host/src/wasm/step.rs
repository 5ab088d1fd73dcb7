//! A WASM plugin as a step of a connector's transform chain: warm instances reused across
//! batches, failures isolated to the records that cause them, violations handled per severity,
//! and the module reloaded when its file changes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::state::PluginState;
use crate::state::StatefulStep;
use crate::state::{StateError, StateStore, Writer};
use std::time::{Duration, Instant};

use super::bindings::severity_name;
use super::bindings::types::{PluginInfo, Severity, Verdicts};
use super::host::Scope;
use super::instance::{CallError, Instance, Limits};
use super::metrics::{MetricKind, SeriesKey, record};
use super::module::{FileStamp, Kind, LoadError, Module, load};
use super::wire::{NO_TIMESTAMP, decode, encode_into};
use crate::api::record::{Header, Record};
use crate::api::transform::{BatchOutput, BatchTransform, TransformError};

/// How often the module file is checked for changes.
const RELOAD_CHECK: Duration = Duration::from_millis(250);
/// Warm instances kept per step (one per concurrent caller is what is used).
const MAX_IDLE: usize = 4;
/// The header a `tag` policy adds: the failed rules, comma-separated.
pub const VIOLATIONS_HEADER: &str = "headwater.quality.violations";

/// What a check's violation of some severity does to its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Add the rule to the `headwater.quality.violations` header and pass the record on.
    Tag,
    /// Drop the record silently (counted as dropped).
    Drop,
    /// Send the record to the dead-letter queue with the violations as its error.
    Dlq,
    /// Stop the task.
    Fail,
}

impl Action {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "tag" => Some(Self::Tag),
            "drop" => Some(Self::Drop),
            "dlq" => Some(Self::Dlq),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }
}

/// `violations.info`, `violations.warning`, `violations.error`.
#[derive(Debug, Clone, Copy)]
pub struct ViolationPolicy {
    pub info: Action,
    pub warning: Action,
    pub error: Action,
}

impl ViolationPolicy {
    fn action(&self, severity: Severity) -> Action {
        match severity {
            Severity::Info => self.info,
            Severity::Warning => self.warning,
            Severity::Error => self.error,
        }
    }
}

/// A step's settings, from its `transforms.<alias>.*` keys.
#[derive(Debug, Clone)]
pub struct StepSettings {
    pub module: PathBuf,
    /// `config.*`, passed to `init`.
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    pub batch_size: usize,
    pub policy: ViolationPolicy,
}

struct Current {
    module: Module,
    generation: u64,
    next_check: Instant,
    /// A changed file that failed to load, not retried until it changes again.
    refused: Option<FileStamp>,
}

/// A `headwater.wasm.Transform` or `headwater.wasm.Check` step.
pub struct WasmStep {
    settings: StepSettings,
    kind: Kind,
    scope: Arc<Scope>,
    cache_dir: Option<PathBuf>,
    current: Mutex<Current>,
    idle: Mutex<Vec<Instance>>,
    /// `headwater_wasm_calls`, counted on every call: its key is built once.
    calls: SeriesKey,
    /// The durable state of a stateful transform (one that imports `state`).
    state: Option<Arc<PluginState>>,
}

fn series(scope: &Scope, name: &str, labels: Vec<(String, String)>) -> SeriesKey {
    SeriesKey {
        name: name.to_owned(),
        connector: scope.connector.clone(),
        step: scope.step.clone(),
        labels,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl WasmStep {
    /// Loads the module, checks it is a `kind` plugin, starts one instance (running `init`
    /// with the config) and asks it to describe itself.
    pub fn new(
        kind: Kind,
        settings: StepSettings,
        scope: Scope,
        cache_dir: Option<PathBuf>,
    ) -> Result<(Self, PluginInfo), CallError> {
        let scope = Arc::new(scope);
        let module = load(&settings.module, cache_dir.as_deref())
            .map_err(|e| CallError::Fatal(e.to_string()))?;
        if module.kind != kind {
            return Err(CallError::Fatal(format!(
                "{} is a {} plugin; use `headwater.wasm.{}` for it",
                settings.module.display(),
                module.kind.as_str(),
                match module.kind {
                    Kind::Transform => "Transform",
                    Kind::Check => "Check",
                }
            )));
        }
        let state = if module.stateful {
            Some(PluginState::new(&scope.state).map_err(|e| CallError::Fatal(e.to_string()))?)
        } else {
            None
        };
        let mut instance = Instance::instantiate(&module, 0, settings.limits, Arc::clone(&scope))?;
        instance.set_plugin_state(state.clone());
        instance.init(&settings.config)?;
        let info = instance.describe()?;
        let step = Self {
            state,
            calls: series(&scope, "headwater_wasm_calls", Vec::new()),
            settings,
            kind,
            scope,
            cache_dir,
            current: Mutex::new(Current {
                module,
                generation: 0,
                next_check: Instant::now() + RELOAD_CHECK,
                refused: None,
            }),
            idle: Mutex::new(vec![instance]),
        };
        Ok((step, info))
    }

    fn count(&self, name: &str, labels: Vec<(String, String)>, value: f64) {
        record(
            &series(&self.scope, name, labels),
            MetricKind::Counter,
            value,
        );
    }

    /// The module to instantiate, reloading it first if its file changed.
    fn module(&self) -> (Module, u64) {
        let mut current = lock(&self.current);
        let now = Instant::now();
        if now >= current.next_check {
            current.next_check = now + RELOAD_CHECK;
            if let Ok(stamp) = FileStamp::of(&self.settings.module)
                && stamp != current.module.stamp
                && current.refused != Some(stamp)
            {
                self.reload(&mut current, stamp);
            }
        }
        (current.module.clone(), current.generation)
    }

    /// Loads the changed file and starts an instance of it; only if both work does it replace
    /// the running version.
    fn reload(&self, current: &mut Current, stamp: FileStamp) {
        let (connector, step) = (&*self.scope.connector, &*self.scope.step);
        let path = self.settings.module.display().to_string();
        let loaded = load(&self.settings.module, self.cache_dir.as_deref()).and_then(|m| {
            if m.kind != self.kind {
                return Err(LoadError::Incompatible(format!(
                    "the new file is a {} plugin",
                    m.kind.as_str()
                )));
            }
            if m.stateful != self.state.is_some() {
                return Err(LoadError::Incompatible(
                    "the new file changes whether the plugin keeps state; restart the \
                     connector to switch"
                        .to_owned(),
                ));
            }
            let generation = current.generation + 1;
            let instance = self.start_instance(&m, generation)?;
            Ok((m, instance))
        });
        match loaded {
            Ok((module, instance)) => {
                tracing::info!(connector, step, module = %path, sha256 = %module.digest, "Reloaded the changed WASM module.");
                current.module = module;
                current.generation += 1;
                current.refused = None;
                *lock(&self.idle) = vec![instance];
                self.count("headwater_wasm_reloads", Vec::new(), 1.0);
            }
            Err(e) => {
                tracing::error!(connector, step, module = %path, error = %e, "The changed WASM module cannot be used; the previous version keeps running.");
                current.refused = Some(stamp);
            }
        }
    }

    fn checkout(&self) -> Result<Instance, CallError> {
        let (module, generation) = self.module();
        let mut idle = lock(&self.idle);
        while let Some(instance) = idle.pop() {
            if instance.generation == generation {
                return Ok(instance);
            }
        }
        drop(idle);
        self.start_instance(&module, generation)
    }

    /// A new instance of `module`, given the step's state, then `init`.
    fn start_instance(&self, module: &Module, generation: u64) -> Result<Instance, CallError> {
        let mut instance = Instance::instantiate(
            module,
            generation,
            self.settings.limits,
            Arc::clone(&self.scope),
        )?;
        instance.set_plugin_state(self.state.clone());
        instance.init(&self.settings.config)?;
        Ok(instance)
    }

    fn checkin(&self, instance: Instance) {
        if instance.worn_out() {
            tracing::debug!(connector = %self.scope.connector, step = %self.scope.step, "Replacing a WASM instance whose memory grew past half its cap.");
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(instance);
        }
    }

    /// One call over `records`; on failure the records come back with the error.
    #[allow(clippy::result_large_err)]
    fn attempt(&self, records: Vec<Record>) -> Result<BatchOutput, (Vec<Record>, CallError)> {
        let mut instance = match self.checkout() {
            Ok(i) => i,
            Err(e) => return Err((records, e)),
        };
        record(&self.calls, MetricKind::Counter, 1.0);
        let mut batch = instance.take_scratch();
        encode_into(&records, &mut batch);
        let result = match self.kind {
            Kind::Transform => instance.process(&batch).map(Ok),
            Kind::Check => instance.check(&batch).map(Err),
        };
        match result {
            Err(e) => {
                if !e.poisons() {
                    self.checkin(instance);
                }
                Err((records, e))
            }
            Ok(Ok(out)) => {
                // From the encoded batch, not the records: a stateless step never reads them.
                let newest = self.state.as_ref().and_then(|_| {
                    batch
                        .timestamps
                        .iter()
                        .copied()
                        .filter(|&t| t != NO_TIMESTAMP)
                        .max()
                });
                let pending = instance.take_pending();
                let decoded = decode(records, &batch, out);
                instance.put_scratch(batch);
                self.checkin(instance);
                let decoded = decoded.map_err(|(records, e)| {
                    (
                        records,
                        CallError::Fatal(format!("it returned an invalid batch: {e}")),
                    )
                })?;
                // Only a call whose output is good changes the state.
                if let Some(state) = &self.state
                    && let Err(e) = state.commit(pending, newest)
                {
                    return Ok(BatchOutput {
                        fatal: Some(format!("its state store failed: {e}")),
                        ..BatchOutput::default()
                    });
                }
                Ok(BatchOutput {
                    kept: decoded.kept,
                    origins: decoded.origins,
                    failed: decoded
                        .failed
                        .into_iter()
                        .map(|(i, r, m)| (i, r, bad_record(m)))
                        .collect(),
                    dropped: decoded.dropped,
                    fatal: None,
                })
            }
            Ok(Err(verdicts)) => {
                instance.put_scratch(batch);
                self.checkin(instance);
                self.apply_verdicts(records, verdicts)
            }
        }
    }

    #[allow(clippy::result_large_err)]
    fn apply_verdicts(
        &self,
        records: Vec<Record>,
        verdicts: Verdicts,
    ) -> Result<BatchOutput, (Vec<Record>, CallError)> {
        let n = records.len();
        let out_of_range = verdicts
            .violations
            .iter()
            .map(|v| v.index)
            .chain(verdicts.errors.iter().map(|e| e.index))
            .find(|&i| i as usize >= n);
        if let Some(i) = out_of_range {
            let e = CallError::Fatal(format!("it named record {i} of a batch of {n}"));
            return Err((records, e));
        }
        let mut per_record: Vec<Vec<_>> = (0..n).map(|_| Vec::new()).collect();
        for v in verdicts.violations {
            let severity = severity_name(v.severity);
            self.count(
                "headwater_wasm_violations",
                vec![
                    ("rule".into(), v.rule.clone()),
                    ("severity".into(), severity.into()),
                ],
                1.0,
            );
            per_record[v.index as usize].push(v);
        }
        let mut errors: Vec<Option<String>> = vec![None; n];
        for e in verdicts.errors {
            errors[e.index as usize] = Some(e.message);
        }
        let mut out = BatchOutput::default();
        for (i, mut rec) in records.into_iter().enumerate() {
            if let Some(message) = errors[i].take() {
                out.failed.push((i, rec, bad_record(message)));
                continue;
            }
            let violations = &per_record[i];
            let Some(action) = violations
                .iter()
                .map(|v| self.settings.policy.action(v.severity))
                .max()
            else {
                out.kept.push(rec);
                out.origins.push(i);
                continue;
            };
            let described = violations
                .iter()
                .map(|v| format!("{} ({}): {}", v.rule, severity_name(v.severity), v.message))
                .collect::<Vec<_>>()
                .join("; ");
            match action {
                Action::Tag => {
                    let rules: Vec<&str> = violations.iter().map(|v| v.rule.as_str()).collect();
                    rec.headers
                        .push(Header::text(VIOLATIONS_HEADER, rules.join(",")));
                    out.kept.push(rec);
                    out.origins.push(i);
                }
                Action::Drop => out.dropped += 1,
                Action::Dlq => out.failed.push((
                    i,
                    rec,
                    TransformError {
                        kind: "headwater.wasm.QualityViolation",
                        message: format!("violated {described}"),
                    },
                )),
                Action::Fail => {
                    out.fatal.get_or_insert(format!(
                        "a record violated {described}, and this severity is set to `fail`"
                    ));
                    out.kept.push(rec);
                    out.origins.push(i);
                }
            }
        }
        Ok(out)
    }

    /// Runs `records` (indices from `base`); when the call fails, runs each record alone so
    /// only the culprits fail.
    fn run(&self, records: Vec<Record>, base: usize, out: &mut BatchOutput) {
        match self.attempt(records) {
            Ok(partial) => {
                if out.kept.is_empty() && base == 0 {
                    out.kept = partial.kept;
                    out.origins = partial.origins;
                } else {
                    out.kept.extend(partial.kept);
                    out.origins
                        .extend(partial.origins.into_iter().map(|i| base + i));
                }
                out.failed
                    .extend(partial.failed.into_iter().map(|(i, r, e)| (base + i, r, e)));
                out.dropped += partial.dropped;
                if out.fatal.is_none() {
                    out.fatal = partial.fatal;
                }
            }
            Err((mut records, e)) => {
                self.count(
                    "headwater_wasm_failures",
                    vec![("kind".into(), e.kind().into())],
                    1.0,
                );
                if records.len() == 1 {
                    let record = records.remove(0);
                    let error = TransformError {
                        kind: e.kind(),
                        message: e.to_string(),
                    };
                    out.failed.push((base, record, error));
                    return;
                }
                tracing::warn!(
                    connector = %self.scope.connector,
                    step = %self.scope.step,
                    records = records.len(),
                    error = %e,
                    "WASM step failed on a batch; retrying record by record to isolate the culprit."
                );
                for (k, record) in records.into_iter().enumerate() {
                    self.run(vec![record], base + k, out);
                }
            }
        }
    }
}

fn bad_record(message: String) -> TransformError {
    TransformError {
        kind: "headwater.wasm.BadRecord",
        message,
    }
}

impl WasmStep {
    /// True when the plugin imports the `state` interface: its state is checkpointed.
    pub fn is_stateful(&self) -> bool {
        self.state.is_some()
    }
}

impl StatefulStep for WasmStep {
    fn restore(&self, store: &Arc<StateStore>) -> Result<(), StateError> {
        match &self.state {
            Some(state) => state.restore(store),
            None => Ok(()),
        }
    }

    fn checkpoint(&self, writer: &mut Writer<'_>) -> Result<(), StateError> {
        match &self.state {
            Some(state) => state.checkpoint(writer),
            None => Ok(()),
        }
    }
}

impl BatchTransform for WasmStep {
    fn apply_batch(&self, records: Vec<Record>) -> BatchOutput {
        let mut out = BatchOutput::default();
        let size = self.settings.batch_size;
        if records.len() <= size {
            self.run(records, 0, &mut out);
            return out;
        }
        // Each record moves once into its chunk (splitting off the tail would move the rest
        // of the batch again for every chunk).
        let mut records = records.into_iter();
        let mut base = 0;
        loop {
            let chunk: Vec<Record> = records.by_ref().take(size).collect();
            if chunk.is_empty() {
                break;
            }
            let len = chunk.len();
            self.run(chunk, base, &mut out);
            base += len;
        }
        // Chunks and record-by-record retries run in input order, and each call's outputs are
        // in input order (see `decode`): the whole output follows input order.
        out
    }
}
