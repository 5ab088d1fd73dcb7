//! PostgreSQL: `headwater.postgres.QuerySource` polls a query or table with Confluent's JDBC
//! source modes (bulk, incrementing, timestamp, timestamp+incrementing). The connection helpers
//! here (URLs, TLS, errors) serve the Debezium-compatible CDC source (`postgres_cdc`) too.
//!
//! Source positions: partition `{"table": <table>}` or `{"query": <query>}`, offset
//! `{"incrementing": <n>, "timestamp": <ms>, "timestamp_nanos": <ns of the second>}` as
//! Confluent's source stores it, so a restart resumes after the last published row.

pub mod client;
pub mod error;
mod poll_statement;
pub mod query_config;
mod query_source;
mod row_json;
pub mod tls;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Task};
use crate::api::options::{ConfigKey, Options};

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
    fn ends_in_bounded_runs(&self) -> bool {
        true
    }
}
