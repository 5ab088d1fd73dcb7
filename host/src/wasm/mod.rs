//! WebAssembly plugins in the transform chain: `headwater.wasm.Transform` (feature
//! transforms) and `headwater.wasm.Check` (data-quality checks).
//!
//! A plugin is a component built for `wasm32-wasip2` against `wit/headwater-plugin.wit`
//! (usually with `headwater-sdk`). The host compiles it once (cached on disk under
//! `<data dir>/wasm-cache`, keyed by the module's SHA-256 and the engine), keeps warm instances
//! per step, and calls it once per batch with the records in one byte arena. Plugins get no
//! filesystem, no network and no environment; `timeout.ms` (epoch interruption) and
//! `max.memory.bytes` bound each call. A trap, timeout or memory-cap hit poisons the instance:
//! it is dropped, and the batch is retried record by record so that only the records that
//! cause the failure go to the error policy (the DLQ with `errors.tolerance=all`).

pub(crate) mod bindings;
mod engine;
mod host;
mod instance;
pub mod metrics;
mod module;
mod output;
pub mod plugin;
mod state;
mod step;
pub(crate) mod wire;

use std::path::Path;

pub use engine::MEMORY_CEILING;
pub use instance::{CallError, Limits};
pub use module::{Kind, WIT_VERSION};
pub use step::{Action, StepSettings, VIOLATIONS_HEADER, ViolationPolicy, WasmStep};

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::transform::ChainContext;

pub const TRANSFORM_CLASS: &str = "headwater.wasm.Transform";
pub const CHECK_CLASS: &str = "headwater.wasm.Check";
pub const CLASSES: &[&str] = &[TRANSFORM_CLASS, CHECK_CLASS];

pub fn is_wasm_class(class: &str) -> bool {
    CLASSES.contains(&class)
}

const MODULE: ConfigKey = ConfigKey::new(
    "module",
    KeyType::String,
    "Path of the plugin's WebAssembly component (`.wasm`, built for wasm32-wasip2). A changed \
     file is reloaded without restarting the connector.",
)
.required();

const CONFIG: ConfigKey = ConfigKey::new(
    "config.<name>",
    KeyType::String,
    "Parameters passed to the plugin's `init` (prefix removed); `headwater plugin inspect` \
     lists what a plugin accepts.",
);

const TIMEOUT_MS: ConfigKey = ConfigKey::new(
    "timeout.ms",
    KeyType::Long,
    "Longest time one call (one batch) may run before the plugin is stopped.",
)
.with_default("1000");

const MAX_MEMORY: ConfigKey = ConfigKey::new(
    "max.memory.bytes",
    KeyType::Long,
    "Most linear memory one plugin instance may use (at most 1073741824).",
)
.with_default("67108864");

const BATCH_SIZE: ConfigKey = ConfigKey::new(
    "batch.size",
    KeyType::Int,
    "Most records per call into the plugin (larger batches are split). The default matches \
     the sources' default batch, so a batch crosses into the guest in one call.",
)
.with_default("4096");

const ACTIONS: &[&str] = &["tag", "dlq", "drop", "fail"];

const VIOLATIONS_ERROR: ConfigKey = ConfigKey::new(
    "violations.error",
    KeyType::String,
    "What an `error` violation of a check does to its record: `tag` (header \
     `headwater.quality.violations` lists the failed rules), `dlq`, `drop` or `fail` (stop the \
     task).",
)
.with_default("dlq")
.one_of(ACTIONS);

const VIOLATIONS_WARNING: ConfigKey = ConfigKey::new(
    "violations.warning",
    KeyType::String,
    "What a `warning` violation does: `tag`, `dlq`, `drop` or `fail`.",
)
.with_default("tag")
.one_of(ACTIONS);

const VIOLATIONS_INFO: ConfigKey = ConfigKey::new(
    "violations.info",
    KeyType::String,
    "What an `info` violation does: `tag`, `dlq`, `drop` or `fail`.",
)
.with_default("tag")
.one_of(ACTIONS);

/// The keys of a `headwater.wasm.Transform` step (`transforms.<alias>.*`), for docs and the
/// REST API.
pub const TRANSFORM_KEYS: &[ConfigKey] = &[MODULE, CONFIG, TIMEOUT_MS, MAX_MEMORY, BATCH_SIZE];

/// The keys of a `headwater.wasm.Check` step: a transform's, plus what each violation severity
/// does to its record.
pub const CHECK_KEYS: &[ConfigKey] = &[
    MODULE,
    CONFIG,
    TIMEOUT_MS,
    MAX_MEMORY,
    BATCH_SIZE,
    VIOLATIONS_ERROR,
    VIOLATIONS_WARNING,
    VIOLATIONS_INFO,
];

/// The documented keys of a WASM class.
pub fn keys(class: &str) -> &'static [ConfigKey] {
    if class == CHECK_CLASS {
        CHECK_KEYS
    } else {
        TRANSFORM_KEYS
    }
}

fn action(options: &mut Options, key: &ConfigKey, default: Action) -> Action {
    options
        .choice(key)
        .and_then(|a| Action::parse(&a))
        .unwrap_or(default)
}

/// Reads a step's settings; problems go into `options`.
fn settings(kind: Kind, options: &mut Options) -> Option<StepSettings> {
    let module = options.path(&MODULE)?.display().to_string();
    let timeout_ms = options.positive(&TIMEOUT_MS).unwrap_or(1000);
    let max_memory = options.positive(&MAX_MEMORY).unwrap_or(64 << 20);
    if max_memory > MEMORY_CEILING {
        options.issue(
            MAX_MEMORY.name,
            format!("must be at most {MEMORY_CEILING}, got {max_memory}"),
        );
        return None;
    }
    let batch_size = options.positive(&BATCH_SIZE).unwrap_or(4096);
    let policy = match kind {
        Kind::Check => ViolationPolicy {
            error: action(options, &VIOLATIONS_ERROR, Action::Dlq),
            warning: action(options, &VIOLATIONS_WARNING, Action::Tag),
            info: action(options, &VIOLATIONS_INFO, Action::Tag),
        },
        Kind::Transform => ViolationPolicy {
            error: Action::Dlq,
            warning: Action::Tag,
            info: Action::Tag,
        },
    };
    Some(StepSettings {
        module: module.trim().into(),
        config: options.take_under("config."),
        limits: Limits {
            timeout_ms,
            max_memory: max_memory as usize,
        },
        batch_size: batch_size as usize,
        policy,
    })
}

/// Builds a WASM step from its scoped options (`transforms.<alias>.*`, prefix stripped).
/// Loading the module and running its `init` happen here, so a bad module or a refused
/// config is reported with the rest of the connector's config problems.
pub fn build_step(
    class: &str,
    alias: &str,
    options: &mut Options,
    ctx: &ChainContext,
) -> Option<WasmStep> {
    let kind = if class == CHECK_CLASS {
        Kind::Check
    } else {
        Kind::Transform
    };
    let settings = settings(kind, options)?;
    let scope = host::Scope {
        connector: ctx.connector.clone(),
        step: alias.to_owned(),
        state: ctx.state_name(&format!("wasm:{alias}")),
    };
    let cache = ctx.data_dir.join("wasm-cache");
    match WasmStep::new(kind, settings, scope, Some(cache)) {
        Ok((step, info)) => {
            tracing::debug!(connector = %ctx.connector, step = alias, plugin = %info.name, version = %info.version, "WASM step ready.");
            Some(step)
        }
        Err(CallError::Config(message)) => {
            options.issue(
                "config",
                format!("the plugin refused its configuration: {message}"),
            );
            None
        }
        Err(e) => {
            options.issue(MODULE.name, e.to_string());
            None
        }
    }
}

/// Where `headwater plugin` commands cache compiled modules when there is no data dir.
pub fn user_cache_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/headwater/wasm"))
}
