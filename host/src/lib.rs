//! Headwater: a Kafka Connect-style connector host for feature-store ingestion.
//!
//! The modules form layers; each uses only the layers below it (the test in `code_rules.rs`
//! fails on an arrow pointing up). From the bottom:
//!
//! 1. [`api`]: the plugin API — records, schemas, errors, config keys, offsets, and the
//!    connector, transform and converter traits. It depends on nothing else of ours.
//! 2. Storage and config: [`offsets`] (durable source offsets), [`state`] (the per-connector
//!    state store), [`config`] (connector configs as users write them, `${..}` providers),
//!    [`schema_registry`] (the embedded Confluent Schema Registry).
//! 3. Clients: [`converters`] (JSON, String, ByteArray, Avro) and [`kafka`] (librdkafka).
//! 4. Steps: [`wasm`] (plugin transforms and checks), [`window`] (windowed aggregates).
//! 5. [`transforms`]: Kafka Connect's and Debezium's SMTs, predicates, and the chain.
//! 6. [`connectors`]: one module per connector; [`connectors::registry`] lists them.
//! 7. [`runtime`]: configs into running tasks, the embedded and Kafka bus, acknowledgements,
//!    checkpoints, the dead-letter queue, the connector store and the `connectors.d/` watcher.
//! 8. Surfaces: [`rest`] (the Kafka Connect REST API), [`cli`], [`client`] (`headwater
//!    connectors ...`, a client of the REST API).

// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod cli;
pub mod client;
#[cfg(test)]
mod code_rules;
pub mod config;
pub mod connectors;
pub mod converters;
#[cfg(test)]
mod fuzz;
pub mod kafka;
pub mod offsets;
pub mod rest;
pub mod runtime;
pub mod schema_registry;
pub mod state;
pub mod transforms;
pub mod wasm;
pub mod window;

use std::path::Path;

use crate::runtime::host::Runtime;

/// Every connector class this build knows.
pub fn registry() -> api::registry::Registry {
    connectors::registry()
}

/// A runtime with every connector this build knows.
pub fn runtime(data_dir: &Path) -> Runtime {
    Runtime::new(data_dir, registry())
}
