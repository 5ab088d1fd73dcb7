//! Built-in single message transforms (SMTs) and predicates, with Kafka Connect's class names,
//! property names and semantics. One file per SMT, named after its Kafka Connect class.
//!
//! [`build_chain`] reads a connector's `transforms=` and `predicates=` keys and returns the
//! core's [`Chain`]. Key/Value variants are the `$Key` / `$Value` inner classes, as in Kafka
//! Connect (`org.apache.kafka.connect.transforms.InsertField$Value`).

mod by_logical_table_router;
mod cast;
pub mod chain;
mod extract_field;
mod extract_new_record_state;
mod filter;
mod flatten;
mod hoist_field;
mod insert_field;
mod mask_field;
pub mod predicates;
mod regex_router;
mod replace_field;
pub mod schema;
mod timestamp_converter;
mod timestamp_router;
pub mod util;
mod value_to_key;

use std::collections::HashMap;
use std::sync::Arc;

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::transform::{ChainContext, Predicate, Transform};
use chain::{Chain, Step, StepKind};

const KAFKA: &str = "org.apache.kafka.connect.transforms.";

/// Which half of the record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Key,
    Value,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Value => "value",
        }
    }
}

/// Builds a transform from its scoped options (`transforms.<alias>.*`, prefix stripped).
/// Problems go into the options; `None` when the config was invalid.
pub type BuildTransform = fn(&mut Options, Part) -> Option<Box<dyn Transform>>;

/// A built-in SMT: its Kafka Connect class (without `$Key`/`$Value`), whether it has the two
/// variants, its documented keys and its constructor.
#[derive(Debug, Clone, Copy)]
pub struct TransformPlugin {
    /// Fully qualified class name without the variant suffix.
    pub class: &'static str,
    /// True for SMTs that exist as `$Key` and `$Value`.
    pub has_variants: bool,
    pub keys: &'static [ConfigKey],
    pub build: BuildTransform,
}

/// Every built-in SMT.
pub fn plugins() -> &'static [TransformPlugin] {
    &[
        cast::PLUGIN,
        extract_field::PLUGIN,
        extract_new_record_state::PLUGIN,
        filter::PLUGIN,
        flatten::PLUGIN,
        hoist_field::PLUGIN,
        insert_field::PLUGIN,
        mask_field::PLUGIN,
        regex_router::PLUGIN,
        replace_field::PLUGIN,
        timestamp_converter::PLUGIN,
        timestamp_router::PLUGIN,
        value_to_key::PLUGIN,
        by_logical_table_router::PLUGIN,
    ]
}

/// The class names users may write in `transforms.<alias>.type`.
pub fn class_names() -> Vec<String> {
    let mut names = Vec::new();
    for p in plugins() {
        if p.has_variants {
            names.push(format!("{}$Key", p.class));
            names.push(format!("{}$Value", p.class));
        } else {
            names.push(p.class.to_owned());
        }
    }
    names
}

/// Finds the plugin and part for a configured class name.
fn lookup(class: &str) -> Option<(&'static TransformPlugin, Part)> {
    let (base, part) = match class.rsplit_once('$') {
        Some((base, "Key")) => (base, Some(Part::Key)),
        Some((base, "Value")) => (base, Some(Part::Value)),
        _ => (class, None),
    };
    let plugin = plugins().iter().find(|p| p.class == base)?;
    match (plugin.has_variants, part) {
        (true, Some(part)) => Some((plugin, part)),
        (false, None) => Some((plugin, Part::Value)),
        _ => None,
    }
}

const TRANSFORMS: ConfigKey = ConfigKey::new(
    "transforms",
    KeyType::List,
    "Aliases of the transformations to apply to records, in order. Each alias `a` is configured \
     by `transforms.a.type` and `transforms.a.*`.",
)
.with_default("");

const PREDICATES: ConfigKey = ConfigKey::new(
    "predicates",
    KeyType::List,
    "Aliases of the predicates used by transformations (`transforms.<alias>.predicate`). Each \
     alias `p` is configured by `predicates.p.type` and `predicates.p.*`.",
)
.with_default("");

const TYPE: ConfigKey = ConfigKey::new(
    "type",
    KeyType::Class,
    "Class of the transformation or predicate.",
)
.required();

const PREDICATE: ConfigKey = ConfigKey::new(
    "predicate",
    KeyType::String,
    "Alias of the predicate that decides whether this transformation applies to a record.",
);

const NEGATE: ConfigKey = ConfigKey::new(
    "negate",
    KeyType::Boolean,
    "Apply the transformation when the predicate does *not* match.",
)
.with_default("false");

/// The chain's own keys: `transforms` and `predicates` at the top of a connector config, and
/// `type`, `predicate`, `negate` under each `transforms.<alias>.` (`type` also under each
/// `predicates.<alias>.`).
pub const CHAIN_KEYS: &[ConfigKey] = &[TRANSFORMS, PREDICATES, TYPE, PREDICATE, NEGATE];

/// Reads `transforms=` and `predicates=` from a connector config into a chain. Problems are
/// recorded in `options` under their full key (`transforms.a.type: ...`).
pub fn build_chain(options: &mut Options, ctx: &ChainContext) -> Chain {
    let predicates = build_predicates(options);
    let mut steps = Vec::new();
    for alias in options.list(&TRANSFORMS) {
        let prefix = format!("transforms.{alias}.");
        let mut scoped = options.scoped(&prefix);
        options.claim_prefix(&prefix);
        let Some(class) = scoped.string(&TYPE) else {
            options.absorb(scoped);
            continue;
        };
        let class = class.trim().to_owned();
        let predicate_alias = scoped.string(&PREDICATE);
        let negate = scoped.bool(&NEGATE).unwrap_or(false);
        let predicate = match predicate_alias {
            None => None,
            Some(p) => match predicates.get(p.trim()) {
                Some(pred) => Some((Arc::clone(pred), negate)),
                None => {
                    scoped.issue(
                        PREDICATE.name,
                        format!("no predicate named {p:?} is defined in `predicates`"),
                    );
                    None
                }
            },
        };
        let transform = match lookup(&class) {
            Some((plugin, part)) => (plugin.build)(&mut scoped, part).map(StepKind::Record),
            None if class == crate::window::CLASS => {
                crate::window::build_step(&alias, &mut scoped, ctx)
                    .map(|step| StepKind::Stateful(Box::new(step)))
            }
            None if crate::wasm::is_wasm_class(&class) => {
                crate::wasm::build_step(&class, &alias, &mut scoped, ctx).map(|step| {
                    if step.is_stateful() {
                        StepKind::Stateful(Box::new(step))
                    } else {
                        StepKind::Batch(Box::new(step))
                    }
                })
            }
            None => {
                let mut known = class_names();
                known.extend(crate::wasm::CLASSES.iter().map(|c| (*c).to_owned()));
                known.push(crate::window::CLASS.to_owned());
                let known = known.join(", ");
                scoped.issue(
                    TYPE.name,
                    format!("unknown transformation class {class:?}; known classes: {known}"),
                );
                None
            }
        };
        for leftover in scoped.leftovers() {
            tracing::warn!(key = %leftover, "Unknown transformation property; it is ignored.");
        }
        if let Some(transform) = transform {
            steps.push(Step {
                alias: alias.clone(),
                class,
                transform,
                predicate,
            });
        }
        options.absorb(scoped);
    }
    Chain::new(steps)
}

fn build_predicates(options: &mut Options) -> HashMap<String, Arc<dyn Predicate>> {
    let mut built = HashMap::new();
    for alias in options.list(&PREDICATES) {
        let prefix = format!("predicates.{alias}.");
        let mut scoped = options.scoped(&prefix);
        options.claim_prefix(&prefix);
        if let Some(class) = scoped.string(&TYPE)
            && let Some(predicate) = predicates::build(class.trim(), &mut scoped)
        {
            built.insert(alias.clone(), predicate);
        }
        options.absorb(scoped);
    }
    built
}

#[cfg(test)]
mod tests;
