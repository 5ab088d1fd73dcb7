//! `GET /worker`: what this host is and runs with (Headwater's own endpoint; the console's
//! worker page). Kafka Connect's `GET /` says only its version; operators also ask which bus,
//! which Kafka, which data directory and for how long it has been up.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};

use super::{Access, AppState};
use crate::runtime::status::State as ConnectorState;

pub(super) async fn describe(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let connectors = state.runtime.connectors().await;
    let count = |wanted: ConnectorState| {
        connectors
            .iter()
            .filter(|c| c.status.state == wanted)
            .count()
    };
    let kafka = state.runtime.kafka().map(|link| {
        json!({
            "bootstrap_servers": link.settings.bootstrap_servers,
            "topic_partitions": link.settings.topic_partitions,
            "topic_replication": link.settings.topic_replication,
        })
    });
    let bus = match state.runtime.kafka() {
        Some(link) if link.bus => "kafka",
        _ => "embedded",
    };
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("HEADWATER_COMMIT").unwrap_or("unknown"),
        "worker_id": state.worker_id,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "data_dir": std::path::absolute(state.runtime.data_dir())
            .unwrap_or_else(|_| state.runtime.data_dir().to_path_buf())
            .display()
            .to_string(),
        "bus": bus,
        "kafka": kafka,
        "connectors": {
            "total": connectors.len(),
            "running": count(ConnectorState::Running),
            "failed": count(ConnectorState::Failed),
            "paused": count(ConnectorState::Paused),
            "stopped": count(ConnectorState::Stopped),
            "rejected_files": state.runtime.rejected_files().await.len(),
        },
        "schema_registry": { "subjects": state.schema_registry.subjects().len() },
        // What the token this request presented may do: the console disables its buttons for a
        // read-only one instead of letting each action fail.
        "access": Access::of(&state, &headers).as_str(),
    }))
}
