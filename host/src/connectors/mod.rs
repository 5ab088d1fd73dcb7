//! Connectors, one directory each. This module's [`registry`] is the one list of connector
//! classes (Arroyo's `connectors()`); only `lib.rs` hands it to the runtime.

pub mod file;
pub mod parquet;

use std::sync::Arc;

use crate::core::registry::Registry;

/// Every connector class this build knows.
pub fn registry() -> Registry {
    Registry::new(vec![
        Arc::new(file::FileSourcePlugin),
        Arc::new(file::FileSinkPlugin),
        Arc::new(parquet::ParquetSinkPlugin),
    ])
}
