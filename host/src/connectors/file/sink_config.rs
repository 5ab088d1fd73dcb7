//! `headwater.file.FileSink` configuration.

use std::path::PathBuf;

use crate::api::options::{ConfigKey, KeyType, Options};

const FILE: ConfigKey = ConfigKey::new(
    "file",
    KeyType::String,
    "Path of the output file (as Kafka Connect's FileStreamSink). Records are appended, one \
     JSON line each; missing directories are created.",
)
.required();

/// Every key of the FileSink (besides `topics` / `topics.regex`).
pub const KEYS: &[ConfigKey] = &[FILE];

#[derive(Debug, Clone)]
pub struct FileSinkConfig {
    pub file: PathBuf,
}

impl FileSinkConfig {
    pub fn from_options(options: &mut Options) -> Option<Self> {
        Some(Self {
            file: options.path(&FILE)?,
        })
    }
}
