//! Records serialized for Kafka with a connector's converters: the Kafka bus publisher and the
//! KafkaSink both write what this produces.

use crate::api::convert::{ConvertError, Converter};
use crate::api::error::{RecordError, Stage};
use crate::api::record::Record;
use crate::kafka::producer::Outgoing;

/// A batch serialized for Kafka.
#[derive(Debug)]
pub enum Serialized {
    Done {
        out: Vec<Outgoing>,
        /// Records the converters refused, for the error policy.
        refused: Vec<(Record, RecordError)>,
    },
    /// A refusal that may pass (the schema registry could not be reached): the batch, untouched,
    /// to serialize again later rather than dead-letter.
    Retry(Vec<Record>),
}

/// A record serialized for Kafka, or why it could not be (and whether that may pass).
fn outgoing(
    record: &mut Record,
    key: &dyn Converter,
    value: &dyn Converter,
) -> Result<Outgoing, (RecordError, bool)> {
    let fail = |stage, converter: &dyn Converter, e: ConvertError| {
        let transient = e.is_transient();
        let error = RecordError::data(stage, converter.class(), e.to_string());
        (error, transient)
    };
    let topic = record.topic.clone();
    let key_bytes = key
        .serialize(&topic, true, &mut record.key)
        .map_err(|e| fail(Stage::KeyConverter, key, e))?;
    let value_bytes = value
        .serialize(&topic, false, &mut record.value)
        .map_err(|e| fail(Stage::ValueConverter, value, e))?;
    Ok(Outgoing {
        topic,
        partition: None,
        key: key_bytes,
        value: value_bytes,
        headers: record.headers.clone(),
        timestamp: record.timestamp,
    })
}

/// Serializes a batch; blocking converters (a schema registry) run where blocking is allowed.
pub fn serialize(
    mut records: Vec<Record>,
    key: &dyn Converter,
    value: &dyn Converter,
) -> Serialized {
    let mut run = || {
        let mut out = Vec::with_capacity(records.len());
        let mut failed = Vec::new();
        for (i, record) in records.iter_mut().enumerate() {
            match outgoing(record, key, value) {
                Ok(o) => out.push(o),
                Err((_, true)) => return None,
                Err((e, false)) => failed.push((i, e)),
            }
        }
        Some((out, failed))
    };
    let done = if key.may_block() || value.may_block() {
        tokio::task::block_in_place(run)
    } else {
        run()
    };
    let Some((out, failed)) = done else {
        return Serialized::Retry(records);
    };
    // Highest index first, so the indexes still to take stay valid.
    let mut refused = Vec::with_capacity(failed.len());
    for (i, e) in failed.into_iter().rev() {
        refused.push((records.swap_remove(i), e));
    }
    Serialized::Done { out, refused }
}
