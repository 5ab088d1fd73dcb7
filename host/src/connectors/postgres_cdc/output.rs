//! The records on their way out: batching, serial numbers and the Debezium-shaped offset.
//!
//! Offsets use Debezium's partition `{"server": <prefix>}` and keys (`lsn`, `lsn_proc`,
//! `lsn_commit`, `txId`, `ts_usec`, and `snapshot` / `last_snapshot_record` while
//! snapshotting) plus `headwater_serial`, the number of the last record: a record's position
//! must grow across restarts, and LSNs do not (interleaved transactions commit out of LSN
//! order; one change can make three records).

use serde_json::{Map, Value, json};

use super::event::partition_of;
use crate::api::connector::{SourceBatch, SourceContext};
use crate::api::error::{ConnectorError, RecordError, Stage};
use crate::api::record::Record;

pub const CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// Where a restart resumes, read back from a committed offset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resume {
    /// The snapshot was interrupted (or never finished).
    pub snapshot_incomplete: bool,
    /// Commit LSN of the transaction of the last delivered event.
    pub lsn_commit: u64,
    /// LSN of the last delivered event.
    pub lsn_proc: u64,
    pub serial: u64,
}

impl Resume {
    pub fn from_offset(offset: &Value) -> Self {
        let num = |k: &str| offset.get(k).and_then(Value::as_u64).unwrap_or(0);
        let snapshot = offset.get("snapshot").is_some_and(|s| s != &json!(false));
        let last = offset
            .get("last_snapshot_record")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        // An offset with only `lsn` (written by hand through the REST API, or by a snapshot)
        // means: everything committed before it was delivered.
        let lsn_commit = offset
            .get("lsn_commit")
            .and_then(Value::as_u64)
            .unwrap_or_else(|| num("lsn").saturating_sub(1));
        Self {
            snapshot_incomplete: snapshot && !last,
            lsn_commit,
            lsn_proc: offset
                .get("lsn_proc")
                .and_then(Value::as_u64)
                .unwrap_or(u64::MAX),
            serial: num("headwater_serial"),
        }
    }

    /// Whether an event was delivered before the restart.
    pub fn delivered(&self, commit_lsn: u64, event_lsn: u64) -> bool {
        commit_lsn < self.lsn_commit
            || (commit_lsn == self.lsn_commit && event_lsn <= self.lsn_proc)
    }
}

/// Batches records and keeps the offset they advance to.
#[derive(Debug)]
pub struct Output {
    partition: Value,
    records: Vec<Record>,
    failed: Vec<(Record, RecordError)>,
    offset: Map<String, Value>,
    serial: u64,
    max_batch: usize,
}

impl Output {
    pub fn new(prefix: &str, serial: u64, max_batch: usize) -> Self {
        Self {
            partition: partition_of(prefix),
            records: Vec::with_capacity(max_batch),
            failed: Vec::new(),
            offset: Map::new(),
            serial,
            max_batch,
        }
    }

    pub fn partition(&self) -> &Value {
        &self.partition
    }

    /// Sets offset fields: they describe the position after the records pushed so far.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.offset.insert(key.to_owned(), value.into());
    }

    pub fn remove(&mut self, key: &str) {
        self.offset.remove(key);
    }

    /// Numbers the records of one change and queues them.
    pub fn push(
        &mut self,
        records: impl IntoIterator<Item = Record>,
        events: &super::event::Events,
    ) {
        for mut record in records {
            self.serial += 1;
            record.offset = self.serial as i64;
            record.position = Some(events.position(self.serial));
            self.records.push(record);
        }
        self.offset
            .insert("headwater_serial".into(), self.serial.into());
    }

    /// A change that could not be turned into an event goes to the error policy (DLQ) with
    /// the reason; its place in the stream still counts.
    pub fn fail(&mut self, topic: &str, message: String) {
        let record = Record::new(topic, crate::api::record::Payload::null());
        self.failed.push((
            record,
            RecordError::new(
                Stage::TaskPoll,
                CLASS,
                crate::api::error::DATA_EXCEPTION,
                message,
            ),
        ));
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.failed.is_empty()
    }

    pub fn full(&self) -> bool {
        self.records.len() >= self.max_batch
    }

    /// Whether the batch is full and every change in it is at an LSN before `lsn`: handed on
    /// now, it leaves no change of its last LSN behind. The rows of one multi-row insert (COPY
    /// logs a page of rows as one WAL record) share an LSN, and a restart skips every change
    /// of the transaction at or before the offset's `lsn_proc`.
    pub fn full_before(&self, lsn: u64) -> bool {
        let last_change = self.offset.get("lsn_proc").and_then(Value::as_u64);
        self.full() && last_change.is_none_or(|last| last < lsn)
    }

    /// Hands the batch to the pipeline, with the offset it reaches.
    pub async fn flush(&mut self, ctx: &mut dyn SourceContext) -> Result<(), ConnectorError> {
        if self.is_empty() && self.offset.is_empty() {
            return Ok(());
        }
        let records = std::mem::replace(&mut self.records, Vec::with_capacity(self.max_batch));
        let failed = std::mem::take(&mut self.failed);
        ctx.send(SourceBatch {
            records,
            failed,
            offsets: vec![(self.partition.clone(), Value::Object(self.offset.clone()))],
            bytes: 0,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_skips_exactly_what_was_delivered() {
        let r = Resume::from_offset(
            &json!({"lsn_commit": 200, "lsn_proc": 150, "headwater_serial": 7}),
        );
        assert!(!r.snapshot_incomplete);
        assert!(r.delivered(100, 90), "an earlier transaction");
        assert!(r.delivered(200, 150), "the last delivered event");
        assert!(!r.delivered(200, 160), "later in the same transaction");
        assert!(!r.delivered(300, 10), "a later transaction");
        assert_eq!(r.serial, 7);
        let s = Resume::from_offset(&json!({"snapshot": true, "last_snapshot_record": false}));
        assert!(s.snapshot_incomplete);
        let by_hand = Resume::from_offset(&json!({"lsn": 500}));
        assert!(by_hand.delivered(499, 480), "committed before the LSN");
        assert!(
            !by_hand.delivered(500, 490),
            "committed at the LSN: not yet"
        );
    }
}
