//! Connector states, as Kafka Connect names them, kept for logs and the REST API.

use std::collections::BTreeMap;
use std::sync::RwLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unassigned,
    Running,
    Paused,
    Stopped,
    Failed,
    Restarting,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unassigned => "UNASSIGNED",
            Self::Running => "RUNNING",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
            Self::Failed => "FAILED",
            Self::Restarting => "RESTARTING",
        }
    }
}

/// A connector's state and, when FAILED, the error trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub state: State,
    pub trace: Option<String>,
}

/// Every known connector's status, including connectors whose config is invalid.
#[derive(Debug, Default)]
pub struct StatusBoard {
    entries: RwLock<BTreeMap<String, ConnectorStatus>>,
}

impl StatusBoard {
    pub fn set(&self, name: &str, state: State, trace: Option<String>) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.insert(name.to_owned(), ConnectorStatus { state, trace });
    }

    pub fn remove(&self, name: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries.remove(name);
    }

    pub fn get(&self, name: &str) -> Option<ConnectorStatus> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        entries.get(name).cloned()
    }

    pub fn all(&self) -> BTreeMap<String, ConnectorStatus> {
        self.entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
