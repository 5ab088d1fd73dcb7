//! The Kafka bus (`[bus] kind = "kafka"`, and sinks reading Kafka topics on the embedded bus):
//! the worker's link to the cluster, the publisher that produces a source's records, and the
//! intake that feeds a sink from its consumer group. Offsets are committed only after the
//! records they cover are safe (acknowledged by Kafka, or flushed by the sink).
mod aligned;
pub mod intake;
mod lag;
pub mod link;
pub mod murmur2;
pub mod publish;
