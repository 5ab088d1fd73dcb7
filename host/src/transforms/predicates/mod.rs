//! Kafka Connect's predicates (`org.apache.kafka.connect.transforms.predicates.*`).

use std::sync::Arc;

use regex::Regex;

use crate::api::options::{ConfigKey, KeyType, Options};
use crate::api::record::Record;
use crate::api::transform::Predicate;

const PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";

/// Class names of the built-in predicates.
pub const CLASSES: [&str; 3] = [
    "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
    "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
    "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
];

pub const PATTERN: ConfigKey = ConfigKey::new(
    "pattern",
    KeyType::String,
    "A Java regular expression matched against the whole topic name.",
)
.required();

pub const NAME: ConfigKey =
    ConfigKey::new("name", KeyType::String, "The header name to look for.").required();

/// Each built-in predicate's class and documented keys.
pub const KEYS: [(&str, &[ConfigKey]); 3] = [
    (CLASSES[0], &[PATTERN]),
    (CLASSES[1], &[NAME]),
    (CLASSES[2], &[]),
];

/// Builds the predicate of class `class`, recording problems in `options`.
pub fn build(class: &str, options: &mut Options) -> Option<Arc<dyn Predicate>> {
    match class.strip_prefix(PACKAGE).unwrap_or("") {
        "TopicNameMatches" => {
            let pattern = options.full_match_regex(&PATTERN)?;
            Some(Arc::new(TopicNameMatches { pattern }))
        }
        "HasHeaderKey" => {
            let name = options.string(&NAME)?;
            Some(Arc::new(HasHeaderKey { name }))
        }
        "RecordIsTombstone" => Some(Arc::new(RecordIsTombstone)),
        _ => {
            options.issue(
                "type",
                format!(
                    "unknown predicate class {class:?}; known classes: {}",
                    CLASSES.join(", ")
                ),
            );
            None
        }
    }
}

/// True when the record's topic matches `pattern` entirely.
#[derive(Debug)]
pub struct TopicNameMatches {
    pattern: Regex,
}

impl Predicate for TopicNameMatches {
    fn test(&self, record: &Record) -> bool {
        self.pattern.is_match(&record.topic)
    }
}

/// True when the record has at least one header named `name`.
#[derive(Debug)]
pub struct HasHeaderKey {
    name: String,
}

impl Predicate for HasHeaderKey {
    fn test(&self, record: &Record) -> bool {
        record.headers.iter().any(|h| h.key == self.name)
    }
}

/// True for tombstones: records whose value is null.
#[derive(Debug)]
pub struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &Record) -> bool {
        record.value.is_null()
    }
}
