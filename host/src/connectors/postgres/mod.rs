//! PostgreSQL: `headwater.postgres.QuerySource` polls a query or table with Confluent's JDBC
//! source modes (bulk, incrementing, timestamp, timestamp+incrementing). The Debezium-compatible
//! CDC source comes with its issue.
//!
//! Source positions: partition `{"table": <table>}` or `{"query": <query>}`, offset
//! `{"incrementing": <n>, "timestamp": <ms>, "timestamp_nanos": <ns of the second>}` as
//! Confluent's source stores it, so a restart resumes after the last published row.

pub mod client;
pub mod query_config;
mod query_source;
pub mod tls;

use crate::config::options::{ConfigKey, Options};
use crate::core::task::{BuildContext, ConnectorPlugin, ConnectorType, Task};

pub use query_source::QuerySource;

/// `headwater.postgres.QuerySource`.
#[derive(Debug)]
pub struct QuerySourcePlugin;

impl ConnectorPlugin for QuerySourcePlugin {
    fn class(&self) -> &'static str {
        "headwater.postgres.QuerySource"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }
    fn keys(&self) -> &'static [ConfigKey] {
        query_config::KEYS
    }
    fn build(&self, options: &mut Options, ctx: &BuildContext) -> Option<Task> {
        let config = query_config::QuerySourceConfig::from_options(options)?;
        Some(Task::Source(Box::new(QuerySource::new(config, ctx))))
    }
}
