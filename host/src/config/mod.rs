//! Connector and worker configuration: parsing, `${..}` providers, validation and the
//! `connectors.d/` watcher.

pub mod common;
pub mod connector;
pub mod options;
pub mod providers;
pub mod store;
pub mod watcher;
pub mod worker;
