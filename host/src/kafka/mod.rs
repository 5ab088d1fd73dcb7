//! Kafka plumbing shared by the runtime and the Kafka connectors: client settings, a batching
//! producer, and the consumer that feeds a sink from Kafka topics (its consumer group, offsets
//! committed only after the sink flushed).
//!
//! Everything here is librdkafka through the `rdkafka` crate.

pub mod admin;
pub mod client;
pub mod intake;
pub mod producer;

pub use client::KafkaSettings;
