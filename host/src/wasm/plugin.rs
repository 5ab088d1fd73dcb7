//! Plugins outside a connector: what `headwater plugin inspect` and `plugin test` use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::severity_name;
use super::bindings::types::ParamType;
use super::host::Scope;
use super::instance::{CallError, Instance, Limits};
use super::module::{Kind, LoadError, Module, load};
use super::wire::{decode, encode};
use crate::api::record::Record;

/// One declared parameter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ParamDescription {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub description: String,
    pub required: bool,
    pub default: Option<String>,
}

/// What a plugin says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub description: String,
    pub kind: &'static str,
    pub class: &'static str,
    pub sha256: String,
    pub params: Vec<ParamDescription>,
}

fn scope(module: &Path) -> Arc<Scope> {
    Arc::new(Scope {
        connector: "plugin-cli".into(),
        step: module.display().to_string(),
        state: format!("wasm:{}", module.display()),
    })
}

fn param_type(t: ParamType) -> &'static str {
    match t {
        ParamType::String => "string",
        ParamType::Integer => "integer",
        ParamType::Float => "float",
        ParamType::Boolean => "boolean",
        ParamType::List => "list",
    }
}

/// Loads a module and asks it to describe itself (without `init`).
pub fn inspect(path: &Path, limits: Limits) -> Result<Description, LoadError> {
    let module = load(path, super::user_cache_dir().as_deref())?;
    let mut instance = Instance::instantiate(&module, 0, limits, scope(path))?;
    let info = instance.describe()?;
    Ok(Description {
        name: info.name,
        version: info.version,
        description: info.description,
        kind: module.kind.as_str(),
        class: match module.kind {
            Kind::Transform => super::TRANSFORM_CLASS,
            Kind::Check => super::CHECK_CLASS,
        },
        sha256: module.digest.clone(),
        params: info
            .params
            .into_iter()
            .map(|p| ParamDescription {
                name: p.name,
                kind: param_type(p.type_),
                description: p.description,
                required: p.required,
                default: p.default,
            })
            .collect(),
    })
}

/// A violation a check reported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub rule: String,
    pub severity: &'static str,
    pub message: String,
}

/// What a plugin did with one record.
#[derive(Debug)]
pub struct Outcome {
    pub outputs: Vec<Record>,
    pub violations: Vec<Finding>,
    pub error: Option<String>,
    pub elapsed: Duration,
}

/// Runs records one at a time through a plugin, as a connector would, reporting each.
pub struct Tester {
    module: Module,
    limits: Limits,
    config: Vec<(String, String)>,
    instance: Option<Instance>,
}

impl std::fmt::Debug for Tester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tester")
            .field("module", &self.module)
            .finish()
    }
}

impl Tester {
    /// Loads the module and runs `init(config)`.
    pub fn new(
        path: &Path,
        limits: Limits,
        config: Vec<(String, String)>,
    ) -> Result<Self, LoadError> {
        let module = load(path, super::user_cache_dir().as_deref())?;
        let instance = Instance::start(&module, 0, limits, scope(path), &config)?;
        Ok(Self {
            module,
            limits,
            config,
            instance: Some(instance),
        })
    }

    pub fn kind(&self) -> Kind {
        self.module.kind
    }

    /// Runs one record alone.
    pub fn run(&mut self, record: Record) -> Outcome {
        self.run_batch(vec![record]).remove(0)
    }

    /// Runs records as one batch (as a connector would, so batch rules such as uniqueness
    /// apply across them); each outcome's time is the batch's time divided by its size.
    pub fn run_batch(&mut self, records: Vec<Record>) -> Vec<Outcome> {
        let n = records.len();
        if n == 0 {
            return Vec::new();
        }
        let started = Instant::now();
        let result = self.call(records);
        let elapsed = started.elapsed() / n as u32;
        match result {
            Ok(per_record) => per_record
                .into_iter()
                .map(|(outputs, violations, error)| Outcome {
                    outputs,
                    violations,
                    error,
                    elapsed,
                })
                .collect(),
            Err(e) => (0..n)
                .map(|_| Outcome {
                    outputs: Vec::new(),
                    violations: Vec::new(),
                    error: Some(e.to_string()),
                    elapsed,
                })
                .collect(),
        }
    }

    /// Calls the plugin once; the result per input record.
    #[allow(clippy::type_complexity)]
    fn call(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Vec<Record>, Vec<Finding>, Option<String>)>, CallError> {
        let n = records.len();
        let mut instance = match self.instance.take() {
            Some(i) => i,
            None => Instance::start(
                &self.module,
                0,
                self.limits,
                scope(&self.module.path),
                &self.config,
            )?,
        };
        let batch = encode(&records);
        let result = match self.module.kind {
            Kind::Transform => instance.process(&batch).map(Ok),
            Kind::Check => instance.check(&batch).map(Err),
        };
        if !matches!(&result, Err(e) if e.poisons()) {
            self.instance = Some(instance);
        }
        let mut per_record: Vec<(Vec<Record>, Vec<Finding>, Option<String>)> =
            (0..n).map(|_| (Vec::new(), Vec::new(), None)).collect();
        match result? {
            Ok(out) => {
                let decoded = decode(records, &batch, out).map_err(|(_, e)| {
                    CallError::Fatal(format!("it returned an invalid batch: {e}"))
                })?;
                for (i, record) in decoded.origins.into_iter().zip(decoded.kept) {
                    per_record[i].0.push(record);
                }
                for (i, _, message) in decoded.failed {
                    per_record[i].2 = Some(message);
                }
            }
            Err(verdicts) => {
                for v in verdicts.violations {
                    if let Some(slot) = per_record.get_mut(v.index as usize) {
                        slot.1.push(Finding {
                            rule: v.rule,
                            severity: severity_name(v.severity),
                            message: v.message,
                        });
                    }
                }
                for e in verdicts.errors {
                    if let Some(slot) = per_record.get_mut(e.index as usize) {
                        slot.2 = Some(e.message);
                    }
                }
                // A check passes its records on unchanged.
                for (slot, record) in per_record.iter_mut().zip(records) {
                    if slot.2.is_none() {
                        slot.0.push(record);
                    }
                }
            }
        }
        Ok(per_record)
    }
}
