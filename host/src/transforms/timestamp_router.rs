//! `org.apache.kafka.connect.transforms.TimestampRouter`: sets the topic from the original topic
//! and the record timestamp, e.g. `orders-20240131` for time-partitioned sink tables or indices.

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::Record;
use crate::api::transform::{Outcome, Transform, TransformError};

use super::util::DateFormat;
use super::{Part, TransformPlugin};

pub const PLUGIN: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.TimestampRouter",
    has_variants: false,
    keys: &[TOPIC_FORMAT, TIMESTAMP_FORMAT],
    build,
};

const TOPIC_FORMAT: ConfigKey = ConfigKey::new(
    "topic.format",
    KeyType::String,
    "Format string for the new topic: `${topic}` is replaced by the original topic and \
     `${timestamp}` by the record timestamp formatted with `timestamp.format`.",
)
.with_default("${topic}-${timestamp}");

const TIMESTAMP_FORMAT: ConfigKey = ConfigKey::new(
    "timestamp.format",
    KeyType::String,
    "Format of the timestamp in the topic, a Java `SimpleDateFormat` pattern applied in UTC.",
)
.with_default("yyyyMMdd");

fn build(options: &mut Options, _: Part) -> Option<Box<dyn Transform>> {
    let topic_format = options.string(&TOPIC_FORMAT)?;
    let pattern = options.string(&TIMESTAMP_FORMAT)?;
    match DateFormat::new(&pattern) {
        Ok(format) => Some(Box::new(TimestampRouter {
            topic_format,
            format,
        })),
        Err(e) => {
            options.issue(TIMESTAMP_FORMAT.name, e);
            None
        }
    }
}

#[derive(Debug)]
struct TimestampRouter {
    topic_format: String,
    format: DateFormat,
}

impl Transform for TimestampRouter {
    fn apply(&self, record: &mut Record) -> Result<Outcome, TransformError> {
        let Some(timestamp) = record.timestamp else {
            return Err(TransformError::data(format!(
                "TimestampRouter: timestamp missing on record (topic {:?}, partition {}, offset \
                 {})",
                record.topic, record.partition, record.offset
            )));
        };
        let formatted = self
            .format
            .format(timestamp)
            .map_err(|e| TransformError::data(format!("TimestampRouter: {e}")))?;
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &formatted);
        Ok(Outcome::Keep)
    }
}
