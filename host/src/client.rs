//! `headwater connectors ...`: a command-line client of a running host's REST API.
//!
//! [`Client`] makes one blocking HTTP call per command (ureq, plain HTTP: the API listens on
//! loopback by default) and hands back the API's JSON body as it came. The `render_*` functions
//! turn those bodies into what a person reads: left-aligned tables and `key = value` lines.
//! `cli.rs` picks one or the other (`--json`). An answer other than 2xx becomes
//! [`ClientError::Api`] carrying the API's own `message`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::config::connector::load_file;

/// Default address of the REST API: Kafka Connect's port, Headwater's default `rest.listen`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8083";

/// How long one request may take: Kafka Connect's REST request timeout
/// (`ConnectResource.DEFAULT_REST_REQUEST_TIMEOUT_MS`, 90 s). A restart waits for the task to
/// stop and its sinks to flush.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);

/// How long to wait for the TCP connection: on loopback it is immediate, or refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the URL.
    #[error(
        "cannot connect to Headwater's REST API at {url} ({reason}): is `headwater run` running \
         there? If it listens elsewhere, pass its address with --url"
    )]
    Unreachable { url: String, reason: String },
    /// The API answered with an error: its `message`, and the body as it came.
    #[error("{message}")]
    Api {
        status: u16,
        message: String,
        body: Option<Value>,
    },
    /// The request failed for another reason (a bad --url, a broken connection, a timeout).
    #[error("{method} {url}: {source}")]
    Request {
        method: &'static str,
        url: String,
        source: ureq::Error,
    },
    /// A 2xx answer whose body is not JSON.
    #[error("{method} {url}: the answer is not JSON: {reason}")]
    BadResponse {
        method: &'static str,
        url: String,
        reason: String,
    },
    /// The connector file given to `create` could not be read.
    #[error("{0}")]
    File(#[from] crate::config::connector::ConfigFileError),
    /// The CA certificate file given with `--cacert` cannot be used.
    #[error("--cacert {path}: {reason}")]
    CaFile { path: String, reason: String },
}

impl ClientError {
    /// The API's error body, if the API answered with one.
    pub fn api_body(&self) -> Option<&Value> {
        match self {
            Self::Api { body, .. } => body.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
}

/// The HTTP agent: `roots` are the CA certificates trusted for `https://` (rustls with ring).
fn agent(roots: Vec<ureq::tls::Certificate<'static>>) -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
        .build();
    ureq::Agent::config_builder()
        // 4xx and 5xx are answers: their body carries the message to show.
        .http_status_as_error(false)
        // The API is on loopback (or a host the user names): never through an HTTP proxy.
        .proxy(None)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .user_agent(concat!("headwater/", env!("CARGO_PKG_VERSION")))
        .tls_config(tls)
        .build()
        .new_agent()
}

/// A client of one host's REST API.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "[hidden]"))
            .finish()
    }
}

impl Client {
    /// A client of the API at `url` (`http://host:port`; `host:port` means plain HTTP), sending
    /// `token` as a bearer token if given and not empty.
    /// An `https://` URL is verified against the system's CA certificates (see
    /// [`Client::with_ca`] for a private CA).
    pub fn new(url: &str, token: Option<&str>) -> Self {
        let base = if url.contains("://") {
            url.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", url.trim_end_matches('/'))
        };
        let roots = if base.starts_with("https://") {
            rustls_native_certs::load_native_certs()
                .certs
                .into_iter()
                .map(|der| ureq::tls::Certificate::from_der(&der).to_owned())
                .collect()
        } else {
            Vec::new()
        };
        Self {
            agent: agent(roots),
            base,
            token: token.filter(|t| !t.is_empty()).map(str::to_owned),
        }
    }

    /// Trusts the CA certificates in the PEM file `ca` (instead of the system's) for an
    /// `https://` URL: a host whose certificate a private CA signed (`curl --cacert`).
    pub fn with_ca(mut self, ca: &Path) -> Result<Self, ClientError> {
        let bad = |reason: String| ClientError::CaFile {
            path: ca.display().to_string(),
            reason,
        };
        let pem = std::fs::read(ca).map_err(|e| bad(e.to_string()))?;
        let roots = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(e) => Some(Err(bad(e.to_string()))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if roots.is_empty() {
            return Err(bad(
                "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".to_owned(),
            ));
        }
        self.agent = agent(roots);
        Ok(self)
    }

    /// `GET /connectors?expand=status&expand=info`.
    pub fn list(&self) -> Result<Value, ClientError> {
        self.call_for_body(Method::Get, "/connectors?expand=status&expand=info", None)
    }

    /// `GET /connectors/{name}/status`.
    pub fn status(&self, name: &str) -> Result<Value, ClientError> {
        self.call_for_body(Method::Get, &connector_path(name, "/status"), None)
    }

    /// `POST /connectors` with `{"name","config"}`; the created connector's info.
    pub fn create(&self, request: &Value) -> Result<Value, ClientError> {
        self.call_for_body(Method::Post, "/connectors", Some(request))
    }

    /// `GET /connectors/{name}/config`.
    pub fn config(&self, name: &str) -> Result<Value, ClientError> {
        self.call_for_body(Method::Get, &connector_path(name, "/config"), None)
    }

    /// `PUT /connectors/{name}/pause` (202, no body).
    pub fn pause(&self, name: &str) -> Result<Option<Value>, ClientError> {
        self.call(Method::Put, &connector_path(name, "/pause"), None)
    }

    /// `PUT /connectors/{name}/resume` (202, no body).
    pub fn resume(&self, name: &str) -> Result<Option<Value>, ClientError> {
        self.call(Method::Put, &connector_path(name, "/resume"), None)
    }

    /// `PUT /connectors/{name}/stop` (204).
    pub fn stop(&self, name: &str) -> Result<Option<Value>, ClientError> {
        self.call(Method::Put, &connector_path(name, "/stop"), None)
    }

    /// `DELETE /connectors/{name}` (204).
    pub fn delete(&self, name: &str) -> Result<Option<Value>, ClientError> {
        self.call(Method::Delete, &connector_path(name, ""), None)
    }

    /// `POST /connectors/{name}/restart[?includeTasks=true&onlyFailed=true]`: no body (204)
    /// without flags, the status with the restarting instances (202) with them.
    pub fn restart(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<Option<Value>, ClientError> {
        let mut path = connector_path(name, "/restart");
        let flags: Vec<&str> = [
            (include_tasks, "includeTasks=true"),
            (only_failed, "onlyFailed=true"),
        ]
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect();
        if !flags.is_empty() {
            path.push('?');
            path.push_str(&flags.join("&"));
        }
        self.call(Method::Post, &path, None)
    }

    /// `GET /connectors/{name}/offsets`.
    pub fn offsets(&self, name: &str) -> Result<Value, ClientError> {
        self.call_for_body(Method::Get, &connector_path(name, "/offsets"), None)
    }

    /// `GET /connectors/{name}/dlq?limit=N`: the last dead letters.
    pub fn dead_letters(&self, name: &str, limit: usize) -> Result<Value, ClientError> {
        self.call_for_body(
            Method::Get,
            &connector_path(name, &format!("/dlq?limit={limit}")),
            None,
        )
    }

    /// `POST /connectors/{name}/dlq/replay`: replays the dead-letter file, or `topic`.
    pub fn replay(&self, name: &str, topic: Option<&str>) -> Result<Value, ClientError> {
        let body = match topic {
            Some(t) => serde_json::json!({ "topic": t }),
            None => serde_json::json!({}),
        };
        self.call_for_body(
            Method::Post,
            &connector_path(name, "/dlq/replay"),
            Some(&body),
        )
    }

    /// `POST /connectors/{name}/signals` with `{"type", "data", "id"}`; the signal's id.
    pub fn signal(
        &self,
        name: &str,
        kind: &str,
        data: Option<&str>,
        id: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut body = serde_json::json!({ "type": kind });
        if let Some(data) = data {
            body["data"] = Value::String(data.to_owned());
        }
        if let Some(id) = id {
            body["id"] = Value::String(id.to_owned());
        }
        self.call_for_body(Method::Post, &connector_path(name, "/signals"), Some(&body))
    }

    /// A call whose success must carry a body.
    fn call_for_body(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        self.call(method, path, body)?
            .ok_or_else(|| ClientError::BadResponse {
                method: method.as_str(),
                url,
                reason: "the body is empty".to_owned(),
            })
    }

    /// One request; `Ok(None)` for a 2xx answer without a body.
    fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let sent = match (method, body) {
            (Method::Get, _) => self.authorize(self.agent.get(&url)).call(),
            (Method::Delete, _) => self.authorize(self.agent.delete(&url)).call(),
            (Method::Put, None) => self.authorize(self.agent.put(&url)).send_empty(),
            (Method::Put, Some(body)) => self.authorize(self.agent.put(&url)).send_json(body),
            (Method::Post, None) => self.authorize(self.agent.post(&url)).send_empty(),
            (Method::Post, Some(body)) => self.authorize(self.agent.post(&url)).send_json(body),
        };
        let mut response = sent.map_err(|e| self.request_error(method, &url, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.request_error(method, &url, e))?;
        let parsed = if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str::<Value>(&text))
        };
        if (200..300).contains(&status) {
            return parsed.transpose().map_err(|e| ClientError::BadResponse {
                method: method.as_str(),
                url,
                reason: e.to_string(),
            });
        }
        let body = parsed.and_then(Result::ok);
        let message = body
            .as_ref()
            .and_then(|b| b.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let excerpt: String = text.trim().chars().take(200).collect();
                format!("{} {url} answered HTTP {status} {excerpt}", method.as_str())
                    .trim_end()
                    .to_owned()
            });
        Err(ClientError::Api {
            status,
            message,
            body,
        })
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    fn request_error(&self, method: Method, url: &str, error: ureq::Error) -> ClientError {
        use ureq::Timeout;
        let reason = match &error {
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                Some("connection refused".to_owned())
            }
            ureq::Error::ConnectionFailed => Some("connection failed".to_owned()),
            ureq::Error::HostNotFound => Some("host not found".to_owned()),
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
                Some("timed out connecting".to_owned())
            }
            _ => None,
        };
        match reason {
            Some(reason) => ClientError::Unreachable {
                url: self.base.clone(),
                reason,
            },
            None => ClientError::Request {
                method: method.as_str(),
                url: url.to_owned(),
                source: error,
            },
        }
    }
}

/// `/connectors/{name}{suffix}`, the name percent-encoded.
fn connector_path(name: &str, suffix: &str) -> String {
    format!("/connectors/{}{suffix}", encode_segment(name))
}

/// Percent-encodes every byte of a path segment but RFC 3986's unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The body of `POST /connectors` for a connector config file: Kafka Connect JSON
/// (`{"name","config"}`, or a flat map named by its `name` key or the file name) or a
/// `.properties` file, read as `headwater validate` and `connectors.d/` read them.
pub fn create_request(path: &Path) -> Result<Value, ClientError> {
    let config = load_file(path)?;
    Ok(json!({ "name": config.name, "config": config.config }))
}

/// Left-aligned columns two spaces apart, as wide as their widest cell; no trailing spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(line, "{cell:<width$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A JSON value as text: strings bare, anything else as compact JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `0: RUNNING, 1: FAILED` from a status's `tasks`, `-` if none.
fn task_states(status: &Value) -> String {
    let tasks: Vec<String> = status["tasks"]
        .as_array()
        .map(|tasks| {
            tasks
                .iter()
                .map(|t| format!("{}: {}", text(&t["id"]), text(&t["state"])))
                .collect()
        })
        .unwrap_or_default();
    if tasks.is_empty() {
        "-".to_owned()
    } else {
        tasks.join(", ")
    }
}

/// `list`: NAME, TYPE, STATE, TASKS, sorted by name.
pub fn render_list(body: &Value) -> String {
    let Some(connectors) = body.as_object() else {
        return format!("{body}\n");
    };
    if connectors.is_empty() {
        return "No connectors.\n".to_owned();
    }
    let mut rows: Vec<Vec<String>> = connectors
        .iter()
        .map(|(name, entry)| {
            let status = &entry["status"];
            let kind = entry["info"]
                .get("type")
                .or_else(|| status.get("type"))
                .map_or_else(|| "-".to_owned(), text);
            vec![
                name.clone(),
                kind,
                text(&status["connector"]["state"]),
                task_states(status),
            ]
        })
        .collect();
    rows.sort();
    table(&["NAME", "TYPE", "STATE", "TASKS"], &rows)
}

/// `status`: the connector's and each task's state and worker, then the trace of every FAILED
/// one (instances failing with the same trace share it).
pub fn render_status(body: &Value) -> String {
    let mut out = format!(
        "Connector {} ({})\n\n",
        text(&body["name"]),
        text(&body["type"])
    );
    let mut instances = vec![("connector".to_owned(), &body["connector"])];
    if let Some(tasks) = body["tasks"].as_array() {
        instances.extend(
            tasks
                .iter()
                .map(|t| (format!("task {}", text(&t["id"])), t)),
        );
    }
    let rows: Vec<Vec<String>> = instances
        .iter()
        .map(|(label, s)| vec![label.clone(), text(&s["state"]), text(&s["worker_id"])])
        .collect();
    out.push_str(&table(&["INSTANCE", "STATE", "WORKER"], &rows));
    let restoring: Vec<Vec<String>> = instances
        .iter()
        .flat_map(|(label, s)| {
            let restores = s["restoring"].as_array().cloned().unwrap_or_default();
            restores.into_iter().map(move |r| {
                let left = match r["seconds_remaining"].as_f64() {
                    Some(secs) => format!("~{secs:.0} s"),
                    None => "-".to_owned(),
                };
                vec![
                    label.clone(),
                    format!("{} [{}]", text(&r["changelog"]), text(&r["partition"])),
                    text(&r["records_read"]),
                    text(&r["records_remaining"]),
                    left,
                ]
            })
        })
        .collect();
    if !restoring.is_empty() {
        out.push_str(
            "
Restoring state:
",
        );
        out.push_str(&table(
            &["INSTANCE", "CHANGELOG", "READ", "LEFT", "TIME LEFT"],
            &restoring,
        ));
    }
    let lag: Vec<Vec<String>> = instances
        .iter()
        .flat_map(|(label, s)| {
            lag_rows(s)
                .into_iter()
                .map(|(what, value)| vec![label.clone(), what, value])
        })
        .collect();
    if !lag.is_empty() {
        out.push_str("\nLag and latency:\n");
        out.push_str(&table(&["INSTANCE", "WHAT", "VALUE"], &lag));
    }
    if let Some(conflict) = body.get("conflict") {
        let _ = writeln!(
            out,
            "\nConflict: the file {} is ignored: {}",
            text(&conflict["file"]),
            text(&conflict["reason"])
        );
    }
    let mut traces: Vec<(Vec<&str>, &str)> = Vec::new();
    for (label, s) in &instances {
        let Some(trace) = s["trace"].as_str().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        if s["state"] != "FAILED" {
            continue;
        }
        match traces.iter_mut().find(|(_, t)| *t == trace) {
            Some((labels, _)) => labels.push(label),
            None => traces.push((vec![label], trace)),
        }
    }
    for (labels, trace) in traces {
        let _ = writeln!(out, "\nTrace ({}):", labels.join(", "));
        for line in trace.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// A task's lag and latency figures (Headwater's fields of its status), as `(what, value)`.
fn lag_rows(task: &Value) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    let lag = &task["source_lag"];
    let mut behind = Vec::new();
    if let Some(bytes) = lag["bytes"].as_u64() {
        behind.push(format!("{bytes} bytes"));
    }
    if let Some(secs) = lag["seconds"].as_f64() {
        behind.push(format!("{secs:.1} s"));
    }
    if !behind.is_empty() {
        rows.push(("behind its source".to_owned(), behind.join(", ")));
    }
    for partition in task["consumer_lag"].as_array().into_iter().flatten() {
        rows.push((
            format!(
                "consumer lag {} [{}]",
                text(&partition["topic"]),
                text(&partition["partition"])
            ),
            text(&partition["lag"]),
        ));
    }
    if let Some(secs) = task["oldest_unflushed_seconds"].as_f64() {
        rows.push(("oldest unflushed record".to_owned(), format!("{secs:.1} s")));
    }
    let latency = &task["end_to_end_latency"];
    if let Some(count) = latency["count"].as_u64() {
        let bound = |key: &str| {
            latency[key]
                .as_f64()
                .map_or_else(|| "> 10 s".to_owned(), |b| format!("<= {b} s"))
        };
        rows.push((
            "end-to-end latency".to_owned(),
            format!(
                "p50 {}, p99 {} ({count} records)",
                bound("p50_seconds_at_most"),
                bound("p99_seconds_at_most")
            ),
        ));
    }
    rows
}

/// `dlq list`: one row per dead letter, oldest first: where it came from, the stage and class
/// that failed, and why.
pub fn render_dead_letters(body: &Value) -> String {
    let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        return format!("No dead letters in {}.\n", text(&body["file"]));
    }
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                format!(
                    "{} [{}] @{}",
                    text(&l["topic"]),
                    text(&l["partition"]),
                    text(&l["offset"])
                ),
                text(&l["stage"]),
                text(&l["class"]),
                text(&l["message"]).replace('\n', " "),
            ]
        })
        .collect();
    table(&["FROM", "STAGE", "CLASS", "MESSAGE"], &rows)
}

/// `config`: sorted `key = value` lines.
pub fn render_config(body: &Value) -> String {
    let Some(config) = body.as_object() else {
        return format!("{body}\n");
    };
    let sorted: BTreeMap<&String, String> = config.iter().map(|(k, v)| (k, text(v))).collect();
    let mut out = String::new();
    for (key, value) in sorted {
        let _ = writeln!(out, "{key} = {value}");
    }
    out
}

/// `create`: the created connector's name, type and tasks, then its config.
pub fn render_created(body: &Value) -> String {
    let tasks = body["tasks"].as_array().map_or(0, Vec::len);
    format!(
        "Created connector {} ({}, {tasks} task{}).\n{}",
        text(&body["name"]),
        text(&body["type"]),
        if tasks == 1 { "" } else { "s" },
        render_config(&body["config"])
    )
}

/// `offsets`: PARTITION and OFFSET as compact JSON.
pub fn render_offsets(name: &str, body: &Value) -> String {
    let rows: Vec<Vec<String>> = body["offsets"]
        .as_array()
        .map(|offsets| {
            offsets
                .iter()
                .map(|o| vec![o["partition"].to_string(), o["offset"].to_string()])
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        return format!("Connector {name} has no offsets.\n");
    }
    table(&["PARTITION", "OFFSET"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_left_without_trailing_spaces() {
        let rows = vec![
            vec!["a-long-name".to_owned(), "x".to_owned()],
            vec!["b".to_owned(), String::new()],
        ];
        assert_eq!(
            table(&["NAME", "STATE"], &rows),
            "NAME         STATE\na-long-name  x\nb\n"
        );
    }

    #[test]
    fn list_is_sorted_with_task_states() {
        let body = json!({
            "z": {"status": {"connector": {"state": "STOPPED"}, "tasks": [], "type": "source"},
                  "info": {"type": "source"}},
            "a": {"status": {"connector": {"state": "RUNNING"},
                             "tasks": [{"id": 0, "state": "RUNNING"}], "type": "sink"},
                  "info": {"type": "sink"}},
        });
        assert_eq!(
            render_list(&body),
            "NAME  TYPE    STATE    TASKS\n\
             a     sink    RUNNING  0: RUNNING\n\
             z     source  STOPPED  -\n"
        );
        assert_eq!(render_list(&json!({})), "No connectors.\n");
    }

    /// The status of sink `c` whose connector and one task are `instance`, the task with
    /// `task_fields` besides.
    fn status_of(instance: Value, task_fields: Value) -> Value {
        let mut task = instance.clone();
        task["id"] = json!(0);
        if let (Some(task), Some(fields)) = (task.as_object_mut(), task_fields.as_object()) {
            task.extend(fields.clone());
        }
        json!({"name": "c", "type": "sink", "connector": instance, "tasks": [task]})
    }

    #[test]
    fn status_shows_a_shared_trace_once() {
        let failed = json!({"state": "FAILED", "worker_id": "w:1", "trace": "boom\nat x"});
        let body = status_of(failed, json!({}));
        assert_eq!(
            render_status(&body),
            "Connector c (sink)\n\n\
             INSTANCE   STATE   WORKER\n\
             connector  FAILED  w:1\n\
             task 0     FAILED  w:1\n\
             \nTrace (connector, task 0):\n  boom\n  at x\n"
        );
    }

    #[test]
    fn status_lists_the_restores_under_way() {
        let running = json!({"state": "RUNNING", "worker_id": "w:1"});
        let restoring = json!([{"changelog": "headwater-c-t-changelog", "partition": 2,
            "records_read": 1000, "records_remaining": 3000, "seconds_remaining": 6.04}]);
        let body = status_of(running, json!({ "restoring": restoring }));
        assert_eq!(
            render_status(&body),
            "Connector c (sink)\n\n\
             INSTANCE   STATE    WORKER\n\
             connector  RUNNING  w:1\n\
             task 0     RUNNING  w:1\n\
             \nRestoring state:\n\
             INSTANCE  CHANGELOG                    READ  LEFT  TIME LEFT\n\
             task 0    headwater-c-t-changelog [2]  1000  3000  ~6 s\n"
        );
    }

    #[test]
    fn status_shows_lag_latency_and_a_conflicting_file() {
        let running = json!({"state": "RUNNING", "worker_id": "w:1"});
        let mut body = status_of(
            running,
            json!({"source_lag": {"bytes": 2048, "seconds": 0.25},
                   "consumer_lag": [{"topic": "clicks", "partition": 1, "lag": 12}],
                   "oldest_unflushed_seconds": 0.5,
                   "end_to_end_latency": {"count": 40, "mean_seconds": 0.01,
                       "p50_seconds_at_most": 0.005, "p99_seconds_at_most": null}}),
        );
        body["conflict"] = json!({"file": "connectors.d/c.json", "reason": "taken"});
        assert_eq!(
            render_status(&body),
            "Connector c (sink)\n\n\
             INSTANCE   STATE    WORKER\n\
             connector  RUNNING  w:1\n\
             task 0     RUNNING  w:1\n\
             \nLag and latency:\n\
             INSTANCE  WHAT                     VALUE\n\
             task 0    behind its source        2048 bytes, 0.2 s\n\
             task 0    consumer lag clicks [1]  12\n\
             task 0    oldest unflushed record  0.5 s\n\
             task 0    end-to-end latency       p50 <= 0.005 s, p99 > 10 s (40 records)\n\
             \nConflict: the file connectors.d/c.json is ignored: taken\n"
        );
    }

    #[test]
    fn config_lines_are_sorted_and_offsets_compact() {
        assert_eq!(
            render_config(&json!({"b": "2", "a": "1", "n": 3})),
            "a = 1\nb = 2\nn = 3\n"
        );
        let offsets =
            json!({"offsets": [{"partition": {"path": "/x"}, "offset": {"position": 9}}]});
        assert_eq!(
            render_offsets("c", &offsets),
            "PARTITION      OFFSET\n{\"path\":\"/x\"}  {\"position\":9}\n"
        );
        assert_eq!(
            render_offsets("c", &json!({"offsets": []})),
            "Connector c has no offsets.\n"
        );
    }

    #[test]
    fn names_are_percent_encoded_in_paths() {
        assert_eq!(
            connector_path("a b/c", "/status"),
            "/connectors/a%20b%2Fc/status"
        );
        assert_eq!(
            connector_path("sink-1.v2_x~", ""),
            "/connectors/sink-1.v2_x~"
        );
    }

    #[test]
    fn a_url_without_scheme_is_plain_http() {
        assert_eq!(
            Client::new("127.0.0.1:8083/", None).base,
            "http://127.0.0.1:8083"
        );
        assert_eq!(Client::new(DEFAULT_URL, None).base, DEFAULT_URL);
    }

    #[test]
    fn refused_connections_name_the_url() {
        // A port that was just free: nothing listens there any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = Client::new(&format!("http://127.0.0.1:{port}/"), None);
        let err = client.list().unwrap_err().to_string();
        assert!(
            err.contains(&format!("at http://127.0.0.1:{port} (connection refused)"))
                && err.contains("`headwater run`"),
            "{err}"
        );
    }
}
