//! A client of the Confluent Schema Registry REST API (or Headwater's embedded one): schemas by
//! id, and registering a subject's schema. Blocking (ureq); callers cache what it returns.

use std::time::Duration;

use serde_json::{Value, json};

const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the registry could not answer.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error (e.g. 40403 schema not found, 409 incompatible).
    #[error("schema registry {url}: HTTP {status} (error code {code}): {message}")]
    Rejected {
        url: String,
        status: u16,
        /// Confluent's `error_code` (e.g. 40403).
        code: u64,
        message: String,
    },
    /// The registry could not be reached or sent something unreadable.
    #[error("schema registry {url}: {message}")]
    Unreachable { url: String, message: String },
}

impl RegistryError {
    /// Whether a retry may succeed (the registry is down, not refusing).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
            || matches!(self, Self::Rejected { status, .. } if *status >= 500)
    }
}

/// A registry at one or more base URLs (`schema.registry.url` is a comma-separated list; each
/// is tried in turn).
#[derive(Debug, Clone)]
pub struct RegistryClient {
    urls: Vec<String>,
    agent: ureq::Agent,
    /// `bearer.auth.token`: sent as `Authorization: Bearer ..` (Headwater's own registry asks
    /// for the REST token when one is set).
    token: Option<String>,
}

impl RegistryClient {
    pub fn new(urls: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self {
            urls: urls
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty())
                .collect(),
            agent,
            token,
        }
    }

    /// The schema text registered under `id`.
    pub fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let body = self.call(|agent, base| {
            self.authorize(agent.get(format!("{base}/schemas/ids/{id}")))
                .call()
        })?;
        match body.get("schema").and_then(Value::as_str) {
            Some(schema) => Ok(schema.to_owned()),
            None => Err(RegistryError::Unreachable {
                url: self.urls.join(","),
                message: format!("no \"schema\" in the answer for id {id}"),
            }),
        }
    }

    /// Registers `schema` under `subject` (or finds it registered) and returns its id.
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.post_schema(
            &format!("/subjects/{}/versions", encode_path(subject)),
            schema,
        )
    }

    /// The id of `schema` if `subject` has it (`auto.register.schemas=false`).
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.post_schema(&format!("/subjects/{}", encode_path(subject)), schema)
    }

    fn post_schema(&self, path: &str, schema: &str) -> Result<u32, RegistryError> {
        let request = json!({ "schema": schema });
        let body = self.call(|agent, base| {
            self.authorize(agent.post(format!("{base}{path}")))
                .header("Content-Type", CONTENT_TYPE)
                .send_json(&request)
        })?;
        body.get("id")
            .and_then(Value::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| RegistryError::Unreachable {
                url: self.urls.join(","),
                message: "no \"id\" in the answer".into(),
            })
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn call(
        &self,
        send: impl Fn(&ureq::Agent, &str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, RegistryError> {
        let mut last = None;
        for base in &self.urls {
            match send(&self.agent, base) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let body: Value = response
                        .body_mut()
                        .read_json()
                        .unwrap_or_else(|e| json!({ "message": e.to_string() }));
                    if status >= 400 {
                        let message = body
                            .get("message")
                            .and_then(Value::as_str)
                            .map_or_else(|| body.to_string(), str::to_owned);
                        return Err(RegistryError::Rejected {
                            url: base.clone(),
                            status,
                            code: body
                                .get("error_code")
                                .and_then(Value::as_u64)
                                .unwrap_or(u64::from(status)),
                            message,
                        });
                    }
                    return Ok(body);
                }
                Err(e) => {
                    last = Some(RegistryError::Unreachable {
                        url: base.clone(),
                        message: e.to_string(),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::Unreachable {
            url: String::new(),
            message: "schema.registry.url is empty".into(),
        }))
    }
}

/// Subjects may hold characters a URL path cannot (`/` in a topic name is not one Kafka allows,
/// but `%` and spaces are worth escaping anyway).
fn encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
