//! Kafka clients shared by the runtime's Kafka bus and the Kafka connectors: client settings and
//! error classes, a batching producer, topic creation, and records serialized with a
//! connector's converters.
//!
//! Everything here is librdkafka through the `rdkafka` crate.

pub mod admin;
pub mod client;
pub mod producer;
pub mod serialize;

pub use client::KafkaSettings;
