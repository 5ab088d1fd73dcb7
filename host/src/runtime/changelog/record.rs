//! The changelog's records. Every record names its writer's epoch in a header; keys say what
//! they change, so compaction keeps the newest value of each:
//!
//! | key | value |
//! |---|---|
//! | `0x00` (the checkpoint marker) | JSON [`Marker`]: the epoch and the input positions the state up to here holds |
//! | `0x01` · table name length (u16, big-endian) · table name · entry key | the entry's bytes; a tombstone (null) deletes it |
//! | `0x02` · name length (u16) · name | a step's metadata value |
//!
//! Table and metadata names are the store's own (`window:w@clicks-1:sessions`): the same on
//! every host, since the state partition is named after the input partition.

use serde::{Deserialize, Serialize};

use crate::state::ScopeChange;

/// The header holding the epoch of the host that wrote a record (decimal text).
pub const EPOCH_HEADER: &str = "headwater.epoch";

const MARKER: u8 = 0;
const ENTRY: u8 = 1;
const META: u8 = 2;

/// A marker: a checkpoint's end, or a host's claim of the partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub epoch: u64,
    /// A checkpoint's: the changes since the marker before are one whole checkpoint, and the
    /// state up to here holds the input up to these positions — the newest position absorbed
    /// from each input of the partition, as its records name it (partition, offset).
    /// `None`: a claim, which only raises the epoch (see `super::restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub positions: Option<Vec<(serde_json::Value, u64)>>,
}

/// A record's key and value, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Marker(Marker),
    Change(ScopeChange),
}

pub fn marker_key() -> Vec<u8> {
    vec![MARKER]
}

impl Marker {
    /// The marker's record value.
    pub fn encode(&self) -> Vec<u8> {
        // A struct of numbers and JSON values always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The key and value of a change.
pub fn encode(change: &ScopeChange) -> (Vec<u8>, Option<Vec<u8>>) {
    match change {
        ScopeChange::Entry { table, key, value } => (entry_key(table, key), value.clone()),
        ScopeChange::Meta { name, value } => (named_key(META, name, &[]), Some(value.clone())),
    }
}

/// The record key of the entry `key` of `table`.
pub fn entry_key(table: &str, key: &[u8]) -> Vec<u8> {
    named_key(ENTRY, table, key)
}

fn named_key(kind: u8, name: &str, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + name.len() + rest.len());
    out.push(kind);
    // Names are an alias and a topic partition: far below 64 KiB.
    let len = u16::try_from(name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&name.as_bytes()[..usize::from(len)]);
    out.extend_from_slice(rest);
    out
}

/// What is wrong with a record that is not a changelog record.
#[derive(Debug, thiserror::Error)]
pub enum BadRecord {
    #[error("a record without a key")]
    NoKey,
    #[error("a checkpoint marker without a value")]
    MarkerWithoutValue,
    #[error("an undecodable checkpoint marker: {0}")]
    Marker(#[source] serde_json::Error),
    #[error("a key too short for its name")]
    ShortKey,
    #[error("a name that is not UTF-8")]
    NameNotUtf8(#[source] std::str::Utf8Error),
    #[error("a metadata record without a value")]
    MetaWithoutValue,
    #[error("an unknown record kind {0}")]
    UnknownKind(u8),
}

/// Decodes a record.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Decoded, BadRecord> {
    let (&kind, rest) = key.split_first().ok_or(BadRecord::NoKey)?;
    if kind == MARKER {
        let value = value.ok_or(BadRecord::MarkerWithoutValue)?;
        let marker = serde_json::from_slice(value).map_err(BadRecord::Marker)?;
        return Ok(Decoded::Marker(marker));
    }
    let (len, rest) = rest.split_first_chunk::<2>().ok_or(BadRecord::ShortKey)?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return Err(BadRecord::ShortKey);
    }
    let (name, entry_key) = rest.split_at(len);
    let name = std::str::from_utf8(name)
        .map_err(BadRecord::NameNotUtf8)?
        .to_owned();
    match kind {
        ENTRY => Ok(Decoded::Change(ScopeChange::Entry {
            table: name,
            key: entry_key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        })),
        META => Ok(Decoded::Change(ScopeChange::Meta {
            name,
            value: value.ok_or(BadRecord::MetaWithoutValue)?.to_vec(),
        })),
        other => Err(BadRecord::UnknownKind(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_markers_read_back_as_written() {
        let changes = [
            ScopeChange::Entry {
                table: "window:w@clicks-1".into(),
                key: vec![0, 1, 2, b'u'],
                value: Some(b"state".to_vec()),
            },
            ScopeChange::Entry {
                table: "window:w@clicks-1".into(),
                key: b"gone".to_vec(),
                value: None,
            },
            ScopeChange::Meta {
                name: "window:w@clicks-1:progress.v2".into(),
                value: vec![9, 9],
            },
        ];
        for change in changes {
            let (key, value) = encode(&change);
            assert_eq!(
                decode(&key, value.as_deref()).unwrap(),
                Decoded::Change(change)
            );
        }
        let marker = Marker {
            epoch: 3,
            positions: Some(vec![(
                serde_json::json!({"topic": "clicks", "partition": 1}),
                41,
            )]),
        };
        let value = serde_json::to_vec(&marker).unwrap();
        assert_eq!(
            decode(&marker_key(), Some(&value)).unwrap(),
            Decoded::Marker(marker)
        );
    }

    #[test]
    fn a_foreign_record_is_refused_with_the_reason() {
        let error = |key: &[u8], value: Option<&[u8]>| decode(key, value).unwrap_err().to_string();
        assert!(error(b"", Some(b"x")).contains("without a key"));
        assert!(error(&[1, 0, 9, b'a'], None).contains("too short"));
        assert!(error(&[7, 0, 0], None).contains("unknown record kind 7"));
        assert!(error(&[0], Some(b"{")).contains("undecodable"));
    }
}
