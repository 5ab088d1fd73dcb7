//! `headwater.redis.RedisSink`: the online feature store. Each batch becomes one Redis pipeline
//! (or, with the event-time guard, one Lua script call), acknowledged after Redis replied.
//!
//! Layouts: `hash` (one hash per entity, a field per value field) and `string` (the value as
//! JSON). Debezium change events are applied as the table they mirror: `c`/`u`/`r` upsert
//! `after`, `d` and tombstones delete, so Redis holds the table's current rows. Writes are
//! idempotent, so replays after a crash leave the same state.

mod config;
mod encode;
mod feast;
mod flat_row;
mod sink;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, Options};

pub use sink::RedisSink;

/// Errors of the Redis sink.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("connecting to Redis at {addr}: {source}")]
    Connect {
        addr: String,
        source: redis::RedisError,
    },
    #[error("writing {records} record(s) to Redis at {addr}: {source}")]
    Write {
        addr: String,
        records: usize,
        source: redis::RedisError,
    },
}

/// `headwater.redis.RedisSink`.
#[derive(Debug)]
pub struct RedisSinkPlugin;

impl ConnectorPlugin for RedisSinkPlugin {
    fn class(&self) -> &'static str {
        "headwater.redis.RedisSink"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn keys(&self) -> &'static [ConfigKey] {
        config::KEYS
    }
    fn build(&self, options: &mut Options, _ctx: &BuildContext) -> Option<Task> {
        let config = config::RedisSinkConfig::from_options(options)?;
        Some(Task::Sink(Box::new(RedisSink::new(config))))
    }
    fn runs_in_parallel(&self) -> bool {
        true
    }
}
