//! The Confluent Schema Registry REST API over the embedded registry: what Confluent's
//! serializers (Java, Python `confluent-kafka`) and the AvroConverter call.
//!
//! Bodies are read as JSON whatever their content type (clients send
//! `application/vnd.schemaregistry.v1+json`); answers carry that content type, and errors
//! Confluent's `{"error_code": 40401, "message": ..}` form.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::schema_registry::{Compatibility, Registered, RegistryError, SchemaRegistry};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(schema_usages))
        .route("/schemas/ids/{id}/subjects", get(schema_subjects))
        .route("/schemas/types", get(schema_types))
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_compatibility),
        )
        .route("/mode", get(mode))
}

/// A registry answer: JSON with the registry's content type.
struct Reply(StatusCode, Value);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut response = (self.0, axum::Json(self.1)).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}

impl From<RegistryError> for Reply {
    fn from(e: RegistryError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(error = %e.message, "Schema registry failed.");
        }
        Reply(
            status,
            json!({ "error_code": e.code, "message": e.message }),
        )
    }
}

type Answer = Result<Reply, Reply>;

fn ok(value: Value) -> Answer {
    Ok(Reply(StatusCode::OK, value))
}

fn registry(state: &AppState) -> &Arc<SchemaRegistry> {
    &state.schema_registry
}

/// `{"schema": "..", "schemaType": "AVRO", "references": []}`.
fn schema_request(body: &[u8]) -> Result<(String, String), Reply> {
    let invalid = |m: String| {
        Reply::from(RegistryError {
            code: 42201,
            message: m,
        })
    };
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid request body: {e}")))?;
    let schema = value
        .get("schema")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("the request needs a \"schema\" string".into()))?;
    if value
        .get("references")
        .and_then(Value::as_array)
        .is_some_and(|r| !r.is_empty())
    {
        return Err(invalid(
            "schema references are not supported by Headwater's registry".into(),
        ));
    }
    let schema_type = value
        .get("schemaType")
        .and_then(Value::as_str)
        .unwrap_or("AVRO")
        .to_uppercase();
    Ok((schema.to_owned(), schema_type))
}

fn registered_json(r: &Registered) -> Value {
    json!({ "subject": r.subject, "version": r.version, "id": r.id, "schema": r.schema })
}

async fn list_subjects(State(state): State<AppState>) -> Answer {
    ok(json!(registry(&state).subjects()))
}

async fn list_versions(State(state): State<AppState>, Path(subject): Path<String>) -> Answer {
    ok(json!(registry(&state).versions(&subject)?))
}

async fn register(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let (schema, schema_type) = schema_request(&body)?;
    let r = registry(&state).register(&subject, &schema, &schema_type)?;
    tracing::info!(subject = %subject, id = r.id, version = r.version, "Schema registered.");
    ok(registered_json(&r))
}

async fn lookup(State(state): State<AppState>, Path(subject): Path<String>, body: Bytes) -> Answer {
    let (schema, schema_type) = schema_request(&body)?;
    ok(registered_json(&registry(&state).lookup(
        &subject,
        &schema,
        &schema_type,
    )?))
}

async fn get_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    ok(registered_json(
        &registry(&state).version(&subject, &version)?,
    ))
}

async fn get_version_schema(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    let r = registry(&state).version(&subject, &version)?;
    ok(serde_json::from_str(&r.schema).unwrap_or(Value::String(r.schema)))
}

#[derive(Debug, Deserialize)]
struct DeleteQuery {
    #[serde(default)]
    permanent: bool,
}

async fn delete_subject(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> Answer {
    ok(json!(
        registry(&state).delete_subject(&subject, q.permanent)?
    ))
}

async fn delete_version(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
) -> Answer {
    ok(json!(registry(&state).delete_version(&subject, &version)?))
}

fn schema_id(id: &str) -> Result<u32, Reply> {
    id.parse().map_err(|_| {
        Reply::from(RegistryError {
            code: 40403,
            message: format!("Schema {id} not found"),
        })
    })
}

async fn schema_by_id(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let (schema, schema_type) = registry(&state).schema(schema_id(&id)?)?;
    let mut body = json!({ "schema": schema });
    if schema_type != "AVRO" {
        body["schemaType"] = json!(schema_type);
    }
    ok(body)
}

async fn raw_schema_by_id(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let (schema, _) = registry(&state).schema(schema_id(&id)?)?;
    ok(serde_json::from_str(&schema).unwrap_or(Value::String(schema)))
}

async fn schema_usages(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let usages = registry(&state).usages(schema_id(&id)?);
    ok(json!(
        usages
            .into_iter()
            .map(|(subject, version)| json!({ "subject": subject, "version": version }))
            .collect::<Vec<_>>()
    ))
}

async fn schema_subjects(State(state): State<AppState>, Path(id): Path<String>) -> Answer {
    let mut subjects: Vec<String> = registry(&state)
        .usages(schema_id(&id)?)
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn schema_types() -> Answer {
    ok(json!(["AVRO"]))
}

async fn mode() -> Answer {
    ok(json!({ "mode": "READWRITE" }))
}

fn level_request(body: &[u8]) -> Result<Compatibility, Reply> {
    let invalid = || {
        Reply::from(RegistryError {
            code: 42203,
            message:
                "Invalid compatibility level. Valid values are NONE, BACKWARD, FORWARD, FULL, \
                      BACKWARD_TRANSITIVE, FORWARD_TRANSITIVE, and FULL_TRANSITIVE"
                    .into(),
        })
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    value
        .get("compatibility")
        .and_then(Value::as_str)
        .and_then(Compatibility::parse)
        .ok_or_else(invalid)
}

async fn get_global_config(State(state): State<AppState>) -> Answer {
    let level = registry(&state).compatibility(None).unwrap_or_default();
    ok(json!({ "compatibilityLevel": level.as_str() }))
}

async fn put_global_config(State(state): State<AppState>, body: Bytes) -> Answer {
    let level = level_request(&body)?;
    registry(&state).set_compatibility(None, Some(level))?;
    ok(json!({ "compatibility": level.as_str() }))
}

#[derive(Debug, Deserialize)]
struct ConfigQuery {
    #[serde(default, rename = "defaultToGlobal")]
    default_to_global: bool,
}

async fn get_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    Query(q): Query<ConfigQuery>,
) -> Answer {
    let registry = registry(&state);
    match registry.compatibility(Some(&subject)) {
        Some(level) => ok(json!({ "compatibilityLevel": level.as_str() })),
        None if q.default_to_global => {
            let level = registry.compatibility(None).unwrap_or_default();
            ok(json!({ "compatibilityLevel": level.as_str() }))
        }
        None => Err(RegistryError {
            code: 40408,
            message: format!(
                "Subject '{subject}' does not have subject-level compatibility configured"
            ),
        }
        .into()),
    }
}

async fn put_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
    body: Bytes,
) -> Answer {
    let level = level_request(&body)?;
    registry(&state).set_compatibility(Some(&subject), Some(level))?;
    ok(json!({ "compatibility": level.as_str() }))
}

async fn delete_subject_config(
    State(state): State<AppState>,
    Path(subject): Path<String>,
) -> Answer {
    let registry = registry(&state);
    let previous = registry.compatibility(Some(&subject));
    registry.set_compatibility(Some(&subject), None)?;
    let level = previous
        .or(registry.compatibility(None))
        .unwrap_or_default();
    ok(json!({ "compatibilityLevel": level.as_str() }))
}

async fn check_compatibility(
    State(state): State<AppState>,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let (schema, schema_type) = schema_request(&body)?;
    let registry = registry(&state);
    // A subject without versions is compatible with anything.
    if registry.versions(&subject).is_err() {
        return ok(json!({ "is_compatible": true }));
    }
    let (compatible, reason) = registry.is_compatible(&subject, &version, &schema, &schema_type)?;
    let mut body = json!({ "is_compatible": compatible });
    if let Some(reason) = reason {
        body["messages"] = json!([reason]);
    }
    ok(body)
}
