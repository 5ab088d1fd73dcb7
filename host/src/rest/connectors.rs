//! `/connectors/...`: Kafka Connect's connector endpoints.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, JsonBody};
use super::secrets;
use crate::api::metrics::RestoreSnapshot;
use crate::config::connector::{ConnectorConfig, value_text};
use crate::runtime::host::{Applied, ConnectorView, Origin, RejectedFile, RuntimeError};
use crate::runtime::replay::ReplayFrom;
use crate::runtime::status::ConnectorStatus;
use crate::runtime::store::Target;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks-config", get(tasks_config))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/dlq", get(dead_letters))
        .route("/connectors/{name}/dlq/replay", post(replay_dead_letters))
        .route("/connectors/{name}/signals", post(send_signal))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/stop", put(stop))
        .route("/connectors/{name}/topics", get(topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route(
            "/connectors/{name}/offsets",
            get(get_offsets).patch(alter_offsets).delete(reset_offsets),
        )
}

/// `ConnectorInfo`, secrets hidden.
fn info_json(state: &AppState, view: &ConnectorView) -> Value {
    let tasks: Vec<Value> = (0..view.tasks)
        .map(|id| json!({ "connector": view.name, "task": id }))
        .collect();
    let mut info = json!({
        "name": view.name,
        "config": shown_config(state, view),
        "tasks": tasks,
        "type": view.connector_type.as_str(),
    });
    // Headwater's own field: who owns the config, so a client (the console) knows whether it
    // can be changed over REST or only by editing its file.
    info["origin"] = match &view.origin {
        Origin::Rest => json!({"kind": "rest"}),
        Origin::File(path) => json!({"kind": "file", "file": path.display().to_string()}),
    };
    info
}

/// A connector's config as answered: secrets hidden (see `super::secrets`).
fn shown_config(state: &AppState, view: &ConnectorView) -> BTreeMap<String, String> {
    secrets::shown(state.runtime.registry(), &view.config)
}

fn state_json(status: &ConnectorStatus, worker_id: &str) -> Value {
    let mut state = Map::new();
    state.insert("state".into(), json!(status.state.as_str()));
    state.insert("worker_id".into(), json!(worker_id));
    if let Some(trace) = status.trace.as_deref().filter(|t| !t.is_empty()) {
        state.insert("trace".into(), json!(trace));
    }
    Value::Object(state)
}

/// A task's `TaskState`. A connector's tasks share its state: they start, fail and restart
/// together (a task that fails stops the others).
fn task_json(status: &ConnectorStatus, worker_id: &str, id: usize) -> Value {
    let mut task = state_json(status, worker_id);
    task["id"] = json!(id);
    task
}

/// `ConnectorStateInfo`.
fn status_json(view: &ConnectorView, worker_id: &str) -> Value {
    let tasks: Vec<Value> = (0..view.tasks)
        .map(|id| task_json(&view.status, worker_id, id))
        .collect();
    json!({
        "name": view.name,
        "connector": state_json(&view.status, worker_id),
        "tasks": tasks,
        "type": view.connector_type.as_str(),
    })
}

/// Adds to each task's status its Kafka consumer lag per partition and, to task 0's, the
/// connector's counters, the restores of state partitions under way on this host, how long a
/// sink's oldest unflushed record has waited, how fresh its newest durable event is and how far
/// a source is behind, where known (Headwater's own fields: Kafka Connect clients ignore them).
fn with_progress(status: &mut Value, state: &AppState, name: &str) {
    for task in status["tasks"].as_array_mut().into_iter().flatten() {
        task_progress(task, state, name);
    }
}

/// [`with_progress`] for one task's status.
fn task_progress(task: &mut Value, state: &AppState, name: &str) {
    let id = task["id"].as_u64().unwrap_or(0);
    let Some(task) = task.as_object_mut() else {
        return;
    };
    let Some(metrics) = state.runtime.metrics(name) else {
        return;
    };
    let lag: Vec<Value> = metrics
        .consumer_lag
        .iter()
        .filter(|l| l.task as u64 == id)
        .map(|l| json!({"topic": l.topic, "partition": l.partition, "lag": l.lag}))
        .collect();
    if !lag.is_empty() {
        task.insert("consumer_lag".into(), json!(lag));
    }
    if id != 0 {
        return;
    }
    // Totals since the host started: a client derives rates from two readings.
    task.insert(
        "counters".into(),
        json!({
            "records_in": metrics.records_in,
            "records_out": metrics.records_out,
            "errors": metrics.errors,
            "dead_letters": metrics.dead_letters,
            "dropped": metrics.dropped,
        }),
    );
    if let Some(newest) = metrics.newest_event_ms {
        let now_ms = crate::api::metrics::now_ms();
        task.insert(
            "freshness_seconds".into(),
            json!((now_ms - newest).max(0) as f64 / 1000.0),
        );
    }
    if !metrics.restores_under_way.is_empty() {
        let restoring: Vec<Value> = metrics
            .restores_under_way
            .iter()
            .map(restore_json)
            .collect();
        task.insert("restoring".into(), json!(restoring));
    }
    let latency = &metrics.end_to_end_latency;
    if latency.count > 0 {
        // Bucket bounds: the value is at most this (null above the last bucket, 10 s).
        let bound = |q| latency.quantile_bound(q).filter(|b| b.is_finite());
        task.insert(
            "end_to_end_latency".into(),
            json!({"count": latency.count,
                   "mean_seconds": latency.sum_seconds / latency.count as f64,
                   "p50_seconds_at_most": bound(0.5),
                   "p99_seconds_at_most": bound(0.99)}),
        );
    }
    if let Some(oldest) = metrics.oldest_unflushed {
        task.insert(
            "oldest_unflushed_seconds".into(),
            json!(oldest.as_secs_f64()),
        );
    }
    let mut lag = serde_json::Map::new();
    if let Some(bytes) = metrics.source_lag_bytes {
        lag.insert("bytes".into(), json!(bytes));
    }
    if let Some(behind) = metrics.source_lag {
        lag.insert("seconds".into(), json!(behind.as_secs_f64()));
    }
    if !lag.is_empty() {
        task.insert("source_lag".into(), Value::Object(lag));
    }
    if let Some(topics) = metrics.unread_topics.filter(|t| !t.is_empty()) {
        task.insert(
            "waiting_for_sink".into(),
            json!({
                "topics": topics,
                "message": crate::runtime::bus::waiting_message(&topics),
            }),
        );
    }
}

fn restore_json(restore: &RestoreSnapshot) -> Value {
    json!({
        "changelog": restore.topic,
        "partition": restore.partition,
        "records_read": restore.records_read,
        "offset": restore.next_offset,
        "end_offset": restore.end_offset,
        "records_remaining": restore.remaining(),
        "seconds_remaining": restore.seconds_remaining().map(|s| (s * 10.0).round() / 10.0),
        "elapsed_seconds": (restore.elapsed.as_secs_f64() * 10.0).round() / 10.0,
    })
}

fn created(name: &str, body: Value) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/connectors/{name}")) {
        headers.insert(header::LOCATION, location);
    }
    (StatusCode::CREATED, headers, Json(body)).into_response()
}

/// `GET /connectors[?expand=status&expand=info]`.
async fn list(State(state): State<AppState>, RawQuery(query): RawQuery) -> Json<Value> {
    let expand: Vec<String> = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("expand="))
        .map(str::to_owned)
        .collect();
    let views = state.runtime.connectors().await;
    let rejected = state.runtime.rejected_files().await;
    let wants_status = expand.iter().any(|e| e == "status");
    let wants_info = expand.iter().any(|e| e == "info");
    if !wants_status && !wants_info {
        let mut names: Vec<&String> = views.iter().map(|v| &v.name).collect();
        names.extend(rejected.iter().map(|r| &r.name));
        names.sort();
        return Json(json!(names));
    }
    let mut out = Map::new();
    for view in &views {
        let mut entry = Map::new();
        if wants_status {
            let mut status = status_json(view, &state.worker_id);
            with_progress(&mut status, &state, &view.name);
            with_conflict(&mut status, &state, &view.name).await;
            entry.insert("status".into(), status);
        }
        if wants_info {
            entry.insert("info".into(), info_json(&state, view));
        }
        out.insert(view.name.clone(), Value::Object(entry));
    }
    for file in &rejected {
        let mut entry = Map::new();
        if wants_status {
            entry.insert(
                "status".into(),
                rejected_status_json(file, &state.worker_id),
            );
        }
        if wants_info {
            entry.insert("info".into(), rejected_info_json(&state, file));
        }
        out.insert(file.name.clone(), Value::Object(entry));
    }
    Json(Value::Object(out))
}

/// Adds to a connector's status the file in `connectors.d` that gives the same name and was
/// refused for it (the connector was created over REST): `"conflict": {"file", "reason"}`
/// (Headwater's own field).
async fn with_conflict(status: &mut Value, state: &AppState, name: &str) {
    if let Some(file) = state.runtime.conflicting_file(name).await
        && let Some(status) = status.as_object_mut()
    {
        status.insert(
            "conflict".into(),
            json!({"file": file.file.display().to_string(), "reason": file.reason}),
        );
    }
}

/// A config file that runs nothing (see `RejectedFile`): FAILED, with the file and why as
/// the trace, and no task.
fn rejected_status_json(file: &RejectedFile, worker_id: &str) -> Value {
    json!({
        "name": file.name,
        "connector": {
            "state": "FAILED",
            "worker_id": worker_id,
            "trace": format!("{}: {}", file.file.display(), file.reason),
        },
        "tasks": [],
        "type": file.connector_type.map_or("unknown", |t| t.as_str()),
        "origin": {"kind": "file", "file": file.file.display().to_string()},
    })
}

fn rejected_info_json(state: &AppState, file: &RejectedFile) -> Value {
    json!({
        "name": file.name,
        "config": secrets::shown(state.runtime.registry(), &file.config),
        "tasks": [],
        "type": file.connector_type.map_or("unknown", |t| t.as_str()),
        "origin": {"kind": "file", "file": file.file.display().to_string()},
    })
}

/// What a connector name stands for.
enum Named {
    Connector(ConnectorView),
    /// A file in the watched directory that gives the name and runs nothing.
    Rejected(RejectedFile),
}

async fn connector_or_rejected(state: &AppState, name: &str) -> Result<Named, ApiError> {
    match state.runtime.connector(name).await {
        Ok(view) => Ok(Named::Connector(view)),
        Err(RuntimeError::NotFound(missing)) => match state.runtime.rejected_file(name).await {
            Some(file) => Ok(Named::Rejected(file)),
            None => Err(RuntimeError::NotFound(missing).into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// String values of a JSON config object (numbers and booleans as their text).
fn config_map(value: &Map<String, Value>) -> Result<BTreeMap<String, String>, ApiError> {
    value
        .iter()
        .map(|(k, v)| {
            let text = value_text(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "config key {k:?}: expected a string value, got {v}"
                ))
            })?;
            Ok((k.clone(), text))
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct CreateRequest {
    name: Option<String>,
    config: Option<Map<String, Value>>,
    initial_state: Option<String>,
}

/// `POST /connectors`.
async fn create(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    let name = request
        .name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Connector name must be set"))?;
    let mut config = config_map(&request.config.unwrap_or_default())?;
    check_name(&name, &config)?;
    secrets::keep_stored(&mut config, None)?;
    // Kafka Connect reads it in any case (`InitialState.forValue`).
    let initial_state = request.initial_state.map(|s| s.to_ascii_uppercase());
    let initial = match initial_state.as_deref() {
        None | Some("RUNNING") => Target::Started,
        Some("PAUSED") => Target::Paused,
        Some("STOPPED") => Target::Stopped,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "Invalid initial_state {other:?}: expected RUNNING, PAUSED or STOPPED"
            )));
        }
    };
    state
        .runtime
        .create(
            ConnectorConfig {
                name: name.clone(),
                config,
            },
            initial,
        )
        .await?;
    let view = state.runtime.connector(&name).await?;
    Ok(created(&name, info_json(&state, &view)))
}

fn check_name(name: &str, config: &BTreeMap<String, String>) -> Result<(), ApiError> {
    match config.get("name") {
        Some(inner) if inner.trim() != name => Err(ApiError::bad_request(format!(
            "Connector name configuration ({inner}) doesn't match connector name in the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

async fn info(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match connector_or_rejected(&state, &name).await? {
        Named::Connector(view) => info_json(&state, &view),
        Named::Rejected(file) => rejected_info_json(&state, &file),
    }))
}

async fn get_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(match connector_or_rejected(&state, &name).await? {
        Named::Connector(view) => json!(shown_config(&state, &view)),
        Named::Rejected(file) => json!(secrets::shown(state.runtime.registry(), &file.config)),
    }))
}

/// `PUT /connectors/{name}/config`: creates (201) or updates (200).
async fn put_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let mut config = config_map(&body)?;
    check_name(&name, &config)?;
    let stored = state.runtime.connector(&name).await.ok().map(|v| v.config);
    secrets::keep_stored(&mut config, stored.as_ref())?;
    let applied = state
        .runtime
        .apply(
            ConnectorConfig {
                name: name.clone(),
                config,
            },
            Origin::Rest,
        )
        .await?;
    let view = state.runtime.connector(&name).await?;
    Ok(if applied == Applied::Created {
        created(&name, info_json(&state, &view))
    } else {
        Json(info_json(&state, &view)).into_response()
    })
}

/// `PATCH /connectors/{name}/config`: merges; `null` removes a key.
async fn patch_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let stored = state.runtime.connector(&name).await?.config;
    let mut config = stored.clone();
    for (key, value) in &body {
        if value.is_null() {
            config.remove(key);
        } else {
            let single = Map::from_iter([(key.clone(), value.clone())]);
            config.extend(config_map(&single)?);
        }
    }
    secrets::keep_stored(&mut config, Some(&stored))?;
    check_name(&name, &config)?;
    state
        .runtime
        .apply(
            ConnectorConfig {
                name: name.clone(),
                config,
            },
            Origin::Rest,
        )
        .await?;
    Ok(Json(info_json(
        &state,
        &state.runtime.connector(&name).await?,
    )))
}

async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.runtime.remove(&name, Some(&Origin::Rest)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn status(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = match connector_or_rejected(&state, &name).await? {
        Named::Connector(view) => view,
        Named::Rejected(file) => return Ok(Json(rejected_status_json(&file, &state.worker_id))),
    };
    let mut body = status_json(&view, &state.worker_id);
    with_progress(&mut body, &state, &name);
    with_conflict(&mut body, &state, &name).await;
    Ok(Json(body))
}

async fn tasks(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.runtime.connector(&name).await?;
    let config = shown_config(&state, &view);
    let tasks: Vec<Value> = (0..view.tasks)
        .map(|id| json!({ "id": { "connector": view.name, "task": id }, "config": config }))
        .collect();
    Ok(Json(json!(tasks)))
}

async fn tasks_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let view = state.runtime.connector(&name).await?;
    let mut out = Map::new();
    let config = shown_config(&state, &view);
    for id in 0..view.tasks {
        out.insert(format!("{}-{id}", view.name), json!(config));
    }
    Ok(Json(Value::Object(out)))
}

/// The connector and the task's id, if `task` names one of its tasks.
async fn with_task(
    state: &AppState,
    name: &str,
    task: &str,
) -> Result<(ConnectorView, usize), ApiError> {
    let view = state.runtime.connector(name).await?;
    match task.parse::<usize>() {
        Ok(id) if id < view.tasks => Ok((view, id)),
        _ => Err(ApiError::not_found(format!("Unknown task: {name}-{task}"))),
    }
}

async fn task_status(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (view, id) = with_task(&state, &name, &task).await?;
    let mut body = task_json(&view.status, &state.worker_id, id);
    task_progress(&mut body, &state, &name);
    Ok(Json(body))
}

async fn restart_task(
    State(state): State<AppState>,
    Path((name, task)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    with_task(&state, &name, &task).await?;
    // A connector's tasks run together: restarting one restarts them all.
    state.runtime.restart(&name, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartFlags {
    #[serde(default, deserialize_with = "super::lenient::java_boolean")]
    include_tasks: bool,
    #[serde(default, deserialize_with = "super::lenient::java_boolean")]
    only_failed: bool,
}

/// `POST /connectors/{name}/restart`: 204 without flags; with flags, 202 and the status with
/// the instances being restarted shown RESTARTING (KIP-745).
async fn restart(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(flags): Query<RestartFlags>,
) -> Result<Response, ApiError> {
    let before = state.runtime.connector(&name).await?;
    let restarted = state.runtime.restart(&name, flags.only_failed).await?;
    if !flags.include_tasks && !flags.only_failed {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let mut body = status_json(&before, &state.worker_id);
    if restarted {
        body["connector"]["state"] = json!("RESTARTING");
        if flags.include_tasks {
            for task in body["tasks"].as_array_mut().into_iter().flatten() {
                task["state"] = json!("RESTARTING");
            }
        }
    }
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /connectors/{name}/signals`, body `{"type": .., "data": {..}, "id": ..}` (Debezium's
/// signal; `id` is generated when absent, `data` an object or its JSON text): 202 with the id
/// once the running task has it queued. The task logs a signal it cannot act on.
async fn send_signal(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {e}")))?;
    let kind = request
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "the signal needs a \"type\": execute-snapshot, stop-snapshot, pause-snapshot, \
                 resume-snapshot or log",
            )
        })?;
    let data = match request.get("data") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(data @ Value::Object(_)) => Some(data.to_string()),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"data\" must be a JSON object (or its text), not {other}"
            )));
        }
    };
    let id = match request.get("id") {
        None | Some(Value::Null) => uuid::Uuid::new_v4().to_string(),
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "\"id\" must be a non-empty string, not {other}"
            )));
        }
    };
    let signal = crate::api::connector::Signal {
        id: id.clone(),
        kind: kind.to_owned(),
        data,
    };
    state.runtime.signal(&name, signal).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "id": id }))))
}

/// `POST /connectors/{name}/dlq/replay`, body `{}` (the dead-letter file) or
/// `{"topic": ".."}` (a Kafka dead-letter topic). Answers once the letters were flushed.
/// `GET /connectors/{name}/dlq?limit=N`: the connector's last dead letters (default 20, at
/// most 1,000), oldest first, from its dead-letter file: where each came from, the stage and
/// class that failed, and why (Headwater's own endpoint).
async fn dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    connector_or_rejected(&state, &name).await?;
    let limit = match query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
    {
        None => 20,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("limit must be a number from 1 to 1000, got {n:?}"))
            })?,
    };
    let data_dir = state.runtime.data_dir();
    let letters = crate::runtime::dlq::last_dead_letters(data_dir, &name, limit).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the dead letters of {name}: {e}"),
        )
    })?;
    let shown: Vec<Value> = letters
        .iter()
        .map(|l| {
            json!({
                "topic": l["topic"], "partition": l["partition"], "offset": l["offset"],
                "timestamp": l["timestamp"],
                "stage": l["error"]["stage"], "class": l["error"]["class"],
                "exception": l["error"]["exception"], "message": l["error"]["message"],
                "key": l["key"], "value": l["value"],
            })
        })
        .collect();
    let file = crate::runtime::dlq::dead_letter_file(data_dir, &name);
    Ok(Json(
        json!({"file": file.display().to_string(), "dead_letters": shown}),
    ))
}

async fn replay_dead_letters(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {e}")))?
    };
    let from = match request.get("topic").and_then(Value::as_str) {
        Some(topic) => ReplayFrom::Topic(topic.to_owned()),
        None => ReplayFrom::File,
    };
    let report = state.runtime.replay(&name, from).await?;
    Ok(Json(json!(report)))
}

async fn set(state: &AppState, name: &str, target: Target) -> Result<(), ApiError> {
    state.runtime.set_target(name, target).await?;
    Ok(())
}

async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    set(&state, &name, Target::Paused).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    set(&state, &name, Target::Started).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn stop(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    set(&state, &name, Target::Stopped).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn topics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let topics = state.runtime.topics(&name).await?;
    let mut body = Map::new();
    body.insert(name, json!({ "topics": topics }));
    Ok(Json(Value::Object(body)))
}

async fn reset_topics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.runtime.reset_topics(&name).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn get_offsets(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let offsets = match connector_or_rejected(&state, &name).await? {
        Named::Connector(_) => state.runtime.offsets(&name).await?,
        Named::Rejected(_) => state.runtime.stored_offsets(&name)?,
    };
    let list: Vec<Value> = offsets
        .iter()
        .map(|(p, o)| json!({ "partition": p, "offset": o }))
        .collect();
    Ok(Json(json!({ "offsets": list })))
}

#[derive(Debug, Deserialize)]
struct OffsetsRequest {
    offsets: Option<Vec<OffsetEntry>>,
}

#[derive(Debug, Deserialize)]
struct OffsetEntry {
    partition: Option<Value>,
    offset: Option<Value>,
}

/// `PATCH /connectors/{name}/offsets` (STOPPED connectors only).
async fn alter_offsets(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(request): JsonBody<OffsetsRequest>,
) -> Result<Json<Value>, ApiError> {
    let entries = request.offsets.filter(|o| !o.is_empty()).ok_or_else(|| {
        ApiError::bad_request("The offsets to alter must be specified and non-empty")
    })?;
    let mut changes = Vec::with_capacity(entries.len());
    for entry in entries {
        let partition = entry.partition.filter(Value::is_object).ok_or_else(|| {
            ApiError::bad_request("Every offset entry needs a \"partition\" object")
        })?;
        changes.push((partition, entry.offset.filter(|o| !o.is_null())));
    }
    state.runtime.alter_offsets(&name, changes).await?;
    Ok(Json(
        json!({ "message": "The offsets for this connector have been altered successfully" }),
    ))
}

/// `DELETE /connectors/{name}/offsets` (STOPPED connectors only).
async fn reset_offsets(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.runtime.reset_offsets(&name).await?;
    Ok(Json(
        json!({ "message": "The offsets for this connector have been reset successfully" }),
    ))
}
