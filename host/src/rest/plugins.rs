//! `/connector-plugins`: the classes this host runs, their documented keys, and config
//! validation with per-key errors.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, JsonBody};
use crate::api::connector::ConnectorType;
use crate::api::options::ConfigKey;
use crate::config::connector::{ConnectorConfig, value_text};
use crate::runtime::host::Origin;
use crate::runtime::prepare::{COMMON_KEYS, SINK_KEYS, SOURCE_KEYS};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/connector-plugins", get(list))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route("/connector-plugins/{plugin}/config/validate", put(validate))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    #[serde(default = "yes", deserialize_with = "super::lenient::java_boolean")]
    connectors_only: bool,
}

/// `connectorsOnly`'s default, as Kafka Connect's.
fn yes() -> bool {
    true
}

fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// `GET /connector-plugins[?connectorsOnly=false]`.
async fn list(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Json<Value> {
    let mut plugins: Vec<Value> = Vec::new();
    for plugin in state.runtime.registry().plugins() {
        for class in std::iter::once(plugin.class()).chain(plugin.aliases().iter().copied()) {
            plugins.push(json!({
                "class": class,
                "type": plugin.connector_type().as_str(),
                "version": version(),
            }));
        }
    }
    if !query.connectors_only {
        let transforms = crate::transforms::class_names()
            .into_iter()
            .chain(crate::wasm::CLASSES.iter().map(|c| (*c).to_owned()));
        for class in transforms {
            plugins.push(json!({ "class": class, "type": "transformation", "version": version() }));
        }
        for class in crate::transforms::predicates::CLASSES {
            plugins.push(json!({ "class": class, "type": "predicate", "version": version() }));
        }
        for class in crate::converters::CLASSES {
            plugins.push(json!({ "class": class, "type": "converter", "version": version() }));
        }
    }
    Json(json!(plugins))
}

/// Kafka Connect's `ConfigKeyInfo` of a documented key.
fn key_info(key: &ConfigKey, group: &str, order: usize) -> Value {
    json!({
        "name": key.name,
        "type": key.kind.as_str(),
        "required": key.required,
        "default_value": key.default,
        "importance": if key.required { "HIGH" } else { "MEDIUM" },
        "documentation": key.doc,
        "group": group,
        "order_in_group": order,
        "width": "NONE",
        "display_name": key.name,
        "dependents": [],
    })
}

/// The documented keys of a connector class (common keys first) or of an SMT.
fn keys_of(state: &AppState, plugin: &str) -> Option<Vec<(&'static ConfigKey, &'static str)>> {
    if let Some(p) = state.runtime.registry().find(plugin) {
        let mut keys: Vec<(&'static ConfigKey, &'static str)> =
            COMMON_KEYS.iter().map(|k| (k, "Common")).collect();
        match p.connector_type() {
            ConnectorType::Sink => keys.extend(SINK_KEYS.iter().map(|k| (k, "Common"))),
            ConnectorType::Source => keys.extend(SOURCE_KEYS.iter().map(|k| (k, "Common"))),
        }
        keys.extend(p.keys().iter().map(|k| (k, "Connector")));
        return Some(keys);
    }
    if crate::wasm::is_wasm_class(plugin) {
        return Some(
            crate::wasm::keys(plugin)
                .iter()
                .map(|k| (k, "Transforms"))
                .collect(),
        );
    }
    let base = plugin
        .strip_suffix("$Key")
        .or_else(|| plugin.strip_suffix("$Value"))
        .unwrap_or(plugin);
    crate::transforms::plugins()
        .iter()
        .find(|t| t.class == base)
        .map(|t| t.keys.iter().map(|k| (k, "Transforms")).collect())
}

/// `GET /connector-plugins/{plugin}/config`.
async fn plugin_config(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let keys = keys_of(&state, &plugin)
        .ok_or_else(|| ApiError::not_found(format!("Unknown plugin {plugin}.")))?;
    let infos: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(i, (key, group))| key_info(key, group, i + 1))
        .collect();
    Ok(Json(json!(infos)))
}

/// `PUT /connector-plugins/{type}/config/validate`: 200 with per-key errors, even when
/// invalid. Password values are shown as `[hidden]`.
async fn validate(
    State(state): State<AppState>,
    Path(plugin): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let mut config: std::collections::BTreeMap<String, String> = body
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), value_text(v)?)))
        .collect();
    // A read-modify-write client (the console) validates what it will PUT back: a `[hidden]`
    // there stands for the stored secret of the connector it names.
    if let Some(name) = config.get("name").cloned()
        && let Ok(existing) = state.runtime.connector(&name).await
    {
        super::secrets::restore_hidden(&mut config, &existing.config);
    }
    let class = config
        .get("connector.class")
        .ok_or_else(|| ApiError::bad_request("Connector config must contain 'connector.class'"))?;
    let registry = state.runtime.registry();
    let found = registry.find(class);
    let simple = |c: &str| {
        let s = c.rsplit('.').next().unwrap_or(c).to_owned();
        s.strip_suffix("Connector").map(str::to_owned).unwrap_or(s)
    };
    if let Some(p) = found
        && simple(p.class()) != simple(&plugin)
        && !p.aliases().iter().any(|a| simple(a) == simple(&plugin))
    {
        return Err(ApiError::bad_request(format!(
            "Included connector type {plugin} does not match request type {}",
            p.class()
        )));
    }
    let name = config
        .get("name")
        .cloned()
        .unwrap_or_else(|| "validate".to_owned());
    let connector = ConnectorConfig {
        name: name.clone(),
        config: config.clone(),
    };
    let issues = match state.runtime.validate(&connector, &Origin::Rest) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.issues,
    };
    let keys = keys_of(&state, class).unwrap_or_default();
    // Values are answered with secrets hidden, as everywhere.
    let shown = super::secrets::shown(registry, &config);
    let mut configs: Vec<Value> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, (key, group)) in keys.iter().enumerate() {
        seen.insert(key.name.to_owned());
        let errors: Vec<&str> = issues
            .iter()
            .filter(|issue| issue.key == key.name)
            .map(|issue| issue.message.as_str())
            .collect();
        let value = shown.get(key.name).cloned();
        configs.push(json!({
            "definition": key_info(key, group, i + 1),
            "value": {
                "name": key.name,
                "value": value.or_else(|| key.default.map(str::to_owned)),
                "recommended_values": key.allowed,
                "errors": errors,
                "visible": true,
            },
        }));
    }
    // Problems with keys that have no definition here (transforms.*, converters, ...).
    for issue in issues.iter().filter(|i| !seen.contains(&i.key)) {
        configs.push(json!({
            "value": {
                "name": issue.key,
                "value": shown.get(&issue.key),
                "recommended_values": [],
                "errors": [issue.message],
                "visible": true,
            },
        }));
    }
    let groups: Vec<&str> = {
        let mut g: Vec<&str> = keys.iter().map(|(_, g)| *g).collect();
        g.dedup();
        g
    };
    Ok(Json(json!({
        "name": found.map_or(class.as_str(), |p| p.class()),
        "error_count": issues.len(),
        "groups": groups,
        "configs": configs,
    })))
}
