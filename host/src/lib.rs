//! Headwater: a Kafka Connect-style connector host for feature-store ingestion.
//!
//! - [`core`]: records, the transform chain, the embedded bus, acknowledgements, error
//!   handling and the runtime. It names no connector.
//! - [`config`]: connector configs (Kafka Connect JSON), providers, validation, the worker
//!   config and the `connectors.d/` watcher.
//! - [`connectors`]: one module per connector; [`connectors::registry`] lists them.
//! - [`transforms`]: Kafka Connect's SMTs and predicates.
//! - [`converters`]: key and value converters.
//! - [`kafka`]: Kafka clients shared by the runtime and the Kafka connectors.
//! - [`offsets`]: durable source offsets.
//! - [`schema_registry`]: the embedded Confluent Schema Registry.
//! - [`client`]: `headwater connectors ...`, a command-line client of the REST API.

// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cli;
pub mod client;
pub mod config;
pub mod connectors;
pub mod converters;
pub mod core;
pub mod kafka;
pub mod offsets;
pub mod rest;
pub mod schema_registry;
pub mod state;
pub mod transforms;
pub mod wasm;
pub mod window;

use std::path::Path;

use crate::core::runtime::Runtime;

/// Every connector class this build knows.
pub fn registry() -> core::registry::Registry {
    connectors::registry()
}

/// A runtime with every connector this build knows.
pub fn runtime(data_dir: &Path) -> Runtime {
    Runtime::new(data_dir, registry())
}
