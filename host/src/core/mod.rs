//! The pipeline core: records, transforms, the embedded bus, acknowledgements, error handling
//! and the runtime that runs connectors. It knows no connector: connectors implement
//! [`task::Source`] or [`task::Sink`] and reach the runtime through a [`registry::Registry`].

pub mod ack;
pub mod bus;
pub mod dlq;
pub mod error;
pub mod kafka_link;
pub mod kafka_publish;
pub mod launch;
pub mod metrics;
pub mod record;
pub mod registry;
pub mod replay;
pub mod reporter;
pub mod retry;
pub mod runtime;
mod sink_runner;
mod source_runner;
pub mod status;
pub mod task;
pub mod time;
pub mod transform;
