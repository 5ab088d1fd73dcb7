//! Signals, Debezium's: a row `(id, type, data)` inserted into the signalling table
//! (`signal.data.collection`), or sent to `POST /connectors/{name}/signals`, asks the connector
//! to act while it streams. A signal that cannot be understood is logged with the reason and
//! changes nothing: it never stops the connector.

use serde_json::Value;

/// `type` of the watermark rows an incremental snapshot writes into the signalling table.
pub const WINDOW_OPEN: &str = "snapshot-window-open";
pub const WINDOW_CLOSE: &str = "snapshot-window-close";

/// What a signal asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `execute-snapshot`: snapshot these tables incrementally.
    ExecuteSnapshot(SnapshotRequest),
    /// `stop-snapshot`: drop these tables (all when empty) from the running snapshot.
    StopSnapshot {
        collections: Vec<String>,
    },
    PauseSnapshot,
    ResumeSnapshot,
    /// `log`: write the message to the connector's log.
    Log {
        message: String,
    },
    /// The watermarks of a chunk's window (written by the connector itself).
    WindowOpen,
    WindowClose,
}

/// The data of an `execute-snapshot` signal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRequest {
    /// Regular expressions (whole-name match) of `schema.table` names.
    pub collections: Vec<String>,
    /// `additional-conditions`: `(data-collection pattern, filter)`, a SQL condition on the
    /// rows to read.
    pub conditions: Vec<(String, String)>,
    /// `surrogate-key`: the column chunks are ordered by instead of the primary key.
    pub surrogate_key: Option<String>,
}

/// Why a signal cannot be acted on.
#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("its data is not valid JSON ({source}): {text:?}")]
    NotJson {
        text: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("its data must be a JSON object, not {0}")]
    NotObject(Value),
    #[error(
        "blocking snapshots are not supported: send \"type\": \"incremental\" (the tables are \
         read while changes stream)"
    )]
    Blocking,
    #[error("unknown snapshot type {0:?}; expected \"incremental\"")]
    SnapshotType(String),
    #[error("\"data-collections\" must name at least one table")]
    NoCollections,
    #[error(
        "each of \"additional-conditions\" needs \"data-collection\" and \"filter\" strings, \
         not {0}"
    )]
    Condition(Value),
    #[error("\"additional-conditions\" must be an array, not {0}")]
    Conditions(Value),
    #[error("a log signal needs a \"message\" string")]
    NoMessage,
    #[error("{key:?} must be an array of strings, not {value}")]
    NotStrings { key: String, value: Value },
    #[error(
        "unknown signal type {0:?}; expected execute-snapshot, stop-snapshot, pause-snapshot, \
         resume-snapshot or log"
    )]
    Type(String),
}

/// Reads a signal's `type` and `data` (a JSON object, or null / empty).
pub fn parse(kind: &str, data: Option<&str>) -> Result<Action, SignalError> {
    let data = match data.map(str::trim).filter(|d| !d.is_empty()) {
        Some(text) => {
            serde_json::from_str::<Value>(text).map_err(|source| SignalError::NotJson {
                text: text.to_owned(),
                source,
            })?
        }
        None => Value::Null,
    };
    if !(data.is_null() || data.is_object()) {
        return Err(SignalError::NotObject(data));
    }
    let snapshot_type = || match data.get("type").and_then(Value::as_str) {
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("incremental") => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("blocking") => Err(SignalError::Blocking),
        Some(t) => Err(SignalError::SnapshotType(t.to_owned())),
    };
    match kind {
        "execute-snapshot" => {
            snapshot_type()?;
            let collections = strings(&data, "data-collections")?;
            if collections.is_empty() {
                return Err(SignalError::NoCollections);
            }
            let conditions = match data.get("additional-conditions") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|item| {
                        let field =
                            |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                        match (field("data-collection"), field("filter")) {
                            (Some(c), Some(f)) => Ok((c, f)),
                            _ => Err(SignalError::Condition(item.clone())),
                        }
                    })
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(SignalError::Conditions(other.clone())),
            };
            let surrogate_key = data
                .get("surrogate-key")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_owned);
            Ok(Action::ExecuteSnapshot(SnapshotRequest {
                collections,
                conditions,
                surrogate_key,
            }))
        }
        "stop-snapshot" => {
            snapshot_type()?;
            Ok(Action::StopSnapshot {
                collections: strings(&data, "data-collections")?,
            })
        }
        "pause-snapshot" => Ok(Action::PauseSnapshot),
        "resume-snapshot" => Ok(Action::ResumeSnapshot),
        "log" => Ok(Action::Log {
            message: data
                .get("message")
                .and_then(Value::as_str)
                .ok_or(SignalError::NoMessage)?
                .to_owned(),
        }),
        WINDOW_OPEN => Ok(Action::WindowOpen),
        WINDOW_CLOSE => Ok(Action::WindowClose),
        other => Err(SignalError::Type(other.to_owned())),
    }
}

/// A list of strings under `key` (absent: empty).
fn strings(data: &Value, key: &str) -> Result<Vec<String>, SignalError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| SignalError::NotStrings {
                        key: key.to_owned(),
                        value: v.clone(),
                    })
            })
            .collect(),
        Some(other) => Err(SignalError::NotStrings {
            key: key.to_owned(),
            value: other.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_snapshot_reads_debeziums_fields() {
        let action = parse(
            "execute-snapshot",
            Some(
                r#"{"data-collections": ["public.items", "public\\.o.*"], "type": "INCREMENTAL",
                    "additional-conditions": [{"data-collection": "public.items", "filter": "qty > 5"}],
                    "surrogate-key": "code"}"#,
            ),
        )
        .unwrap();
        assert_eq!(
            action,
            Action::ExecuteSnapshot(SnapshotRequest {
                collections: vec!["public.items".into(), "public\\.o.*".into()],
                conditions: vec![("public.items".into(), "qty > 5".into())],
                surrogate_key: Some("code".into()),
            })
        );
    }

    #[test]
    fn bad_signals_say_why() {
        let err = |kind: &str, data: Option<&str>| parse(kind, data).unwrap_err().to_string();
        assert!(err("execute-snapshot", Some("{not json")).contains("not valid JSON"));
        assert!(err("execute-snapshot", Some("{}")).contains("at least one table"));
        assert!(
            err(
                "execute-snapshot",
                Some(r#"{"data-collections": ["a.b"], "type": "blocking"}"#)
            )
            .contains("blocking snapshots are not supported")
        );
        assert!(err("reboot", None).contains("unknown signal type \"reboot\""));
        assert!(err("log", Some("{}")).contains("\"message\""));
        assert!(err("stop-snapshot", Some("[1]")).contains("JSON object"));
    }

    #[test]
    fn control_signals_need_no_data() {
        assert_eq!(
            parse("pause-snapshot", None).unwrap(),
            Action::PauseSnapshot
        );
        assert_eq!(
            parse("resume-snapshot", Some(r#"{"type": "incremental"}"#)).unwrap(),
            Action::ResumeSnapshot
        );
        assert_eq!(
            parse("stop-snapshot", Some("")).unwrap(),
            Action::StopSnapshot {
                collections: Vec::new()
            }
        );
    }
}
