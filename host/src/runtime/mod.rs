//! The runtime: turns connector configs into running tasks and keeps them running.
//!
//! It owns the embedded bus and the Kafka bus (`kafka_bus`), acknowledgements and offset
//! commits, checkpoints, the error reporter and dead-letter queue, the connector store and the
//! `connectors.d/` watcher. It knows no connector by name: connectors reach it through a
//! [`crate::api::registry::Registry`].
pub mod ack;
pub mod bounded;
pub mod bus;
pub mod changelog;
pub mod dlq;
pub mod host;
pub mod kafka_bus;
pub mod launch;
pub mod partitioned;
pub mod prepare;
pub mod replay;
pub mod reporter;
pub mod shuffle;
mod sink_runner;
pub mod sink_state;
pub mod sink_tasks;
pub mod source_context;
mod source_runner;
pub mod status;
pub mod store;
#[cfg(test)]
mod tests;
pub mod watcher;
pub mod worker;
