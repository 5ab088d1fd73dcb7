//! `headwater.blackhole.BlackholeSink`: consumes and discards (Vector's `blackhole` sink). For
//! measuring a pipeline without a destination's cost, and for draining topics. Records count
//! in the connector's metrics like any sink's.

use async_trait::async_trait;

use crate::api::connector::{BuildContext, ConnectorPlugin, ConnectorType, Sink, Task};
use crate::api::error::{ConnectorError, RecordError};
use crate::api::options::{ConfigKey, Options};
use crate::api::record::Record;

/// `headwater.blackhole.BlackholeSink`.
#[derive(Debug)]
pub struct BlackholeSinkPlugin;

impl ConnectorPlugin for BlackholeSinkPlugin {
    fn class(&self) -> &'static str {
        "headwater.blackhole.BlackholeSink"
    }
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }
    fn keys(&self) -> &'static [ConfigKey] {
        &[]
    }
    fn build(&self, _options: &mut Options, _ctx: &BuildContext) -> Option<Task> {
        Some(Task::Sink(Box::new(BlackholeSink)))
    }
    fn runs_in_parallel(&self) -> bool {
        true
    }
}

/// Drops every record; a flush has nothing to do.
#[derive(Debug)]
pub struct BlackholeSink;

#[async_trait]
impl Sink for BlackholeSink {
    async fn write(
        &mut self,
        records: Vec<Record>,
    ) -> Result<Vec<(Record, RecordError)>, ConnectorError> {
        drop(records);
        Ok(Vec::new())
    }

    async fn flush(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}
