//! Plugins outside a connector: what `headwater plugin inspect` and `plugin test` use.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bindings::severity_name;
use super::bindings::types::ParamType;
use super::host::Scope;
use super::instance::{CallError, Instance, Limits};
use super::module::{Kind, Module, load};
use super::wire::{decode, encode};
use crate::core::record::Record;

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
pub fn inspect(path: &Path, limits: Limits) -> Result<Description, String> {
    let module = load(path, super::user_cache_dir().as_deref())?;
    let mut instance =
        Instance::instantiate(&module, 0, limits, scope(path)).map_err(|e| e.to_string())?;
    let info = instance.describe().map_err(|e| e.to_string())?;
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
    pub fn new(path: &Path, limits: Limits, config: Vec<(String, String)>) -> Result<Self, String> {
        let module = load(path, super::user_cache_dir().as_deref())?;
        let instance =
            Instance::start(&module, 0, limits, scope(path), &config).map_err(|e| e.to_string())?;
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

    pub fn run(&mut self, record: Record) -> Outcome {
        let started = Instant::now();
        let result = self.call(record);
        let elapsed = started.elapsed();
        match result {
            Ok((outputs, violations, error)) => Outcome {
                outputs,
                violations,
                error,
                elapsed,
            },
            Err(e) => Outcome {
                outputs: Vec::new(),
                violations: Vec::new(),
                error: Some(e.to_string()),
                elapsed,
            },
        }
    }

    #[allow(clippy::type_complexity)]
    fn call(
        &mut self,
        record: Record,
    ) -> Result<(Vec<Record>, Vec<Finding>, Option<String>), CallError> {
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
        let records = vec![record];
        let batch = encode(&records);
        let result = match self.module.kind {
            Kind::Transform => instance.process(&batch).map(Ok),
            Kind::Check => instance.check(&batch).map(Err),
        };
        if !matches!(&result, Err(e) if e.poisons()) {
            self.instance = Some(instance);
        }
        match result? {
            Ok(out) => {
                let decoded = decode(records, &batch, out).map_err(|(_, e)| {
                    CallError::Fatal(format!("it returned an invalid batch: {e}"))
                })?;
                let error = decoded.failed.into_iter().next().map(|(_, _, m)| m);
                Ok((decoded.kept, Vec::new(), error))
            }
            Err(verdicts) => {
                let violations = verdicts
                    .violations
                    .into_iter()
                    .map(|v| Finding {
                        rule: v.rule,
                        severity: severity_name(v.severity),
                        message: v.message,
                    })
                    .collect();
                let error = verdicts.errors.into_iter().next().map(|e| e.message);
                Ok((records, violations, error))
            }
        }
    }
}
