//! The API through `oneshot` (no socket), against a real runtime running real connectors.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppState, router};
use crate::api::allowed_paths::AllowedPaths;
use crate::config::connector::ConnectorConfig;
use crate::runtime::host::{Origin, Runtime};

fn dir_var(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("var")
}

struct Api {
    app: Router,
    runtime: Arc<Runtime>,
    dir: tempfile::TempDir,
}

impl Api {
    fn new() -> Self {
        Self::with_token(None)
    }

    fn with_token(token: Option<&str>) -> Self {
        Self::with_tokens(token, None)
    }

    fn with_tokens(token: Option<&str>, read_token: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, token, read_token)
    }

    fn in_dir(dir: tempfile::TempDir, token: Option<&str>, read_token: Option<&str>) -> Self {
        // The tests' files are all in their temporary directory.
        let allowed = AllowedPaths::new(&[dir.path().to_path_buf()]).unwrap();
        let runtime = crate::runtime(&dir_var(&dir)).with_allowed_paths(allowed);
        Self::with_runtime(dir, token, read_token, runtime)
    }

    /// With the default `[files] allowed_paths`: the data directory (`var`) only.
    fn confined() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = crate::runtime(&dir_var(&dir));
        Self::with_runtime(dir, None, None, runtime)
    }

    fn with_runtime(
        dir: tempfile::TempDir,
        token: Option<&str>,
        read_token: Option<&str>,
        runtime: Runtime,
    ) -> Self {
        let runtime = Arc::new(runtime);
        let app = router(AppState {
            runtime: Arc::clone(&runtime),
            worker_id: "127.0.0.1:8083".into(),
            token: token.map(Arc::from),
            read_token: read_token.map(Arc::from),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            schema_registry: Arc::new(
                crate::schema_registry::SchemaRegistry::open(&dir.path().join("var")).unwrap(),
            ),
            started: std::time::Instant::now(),
        });
        Self { app, runtime, dir }
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Value) {
        self.raw(method, uri, body.map(|b| b.to_string()), None)
            .await
    }

    async fn raw(
        &self,
        method: Method,
        uri: &str,
        body: Option<String>,
        token: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(body.map_or_else(Body::empty, Body::from))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, headers, value)
    }

    fn source_config(&self) -> Value {
        json!({
            "connector.class": "headwater.file.FileSource",
            "path": self.path("in.jsonl"),
            "topic": "events",
            "poll.interval.ms": "20",
        })
    }

    fn sink_config(&self) -> Value {
        json!({
            "connector.class": "headwater.file.FileSink",
            "topics": "events",
            "file": self.path("out.jsonl"),
        })
    }

    async fn wait_for_output(&self, lines: usize) {
        for _ in 0..500 {
            let n = std::fs::read_to_string(self.path("out.jsonl"))
                .unwrap_or_default()
                .lines()
                .count();
            if n >= lines {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never saw {lines} output lines");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_health_and_unknown_paths() {
    let api = Api::new();
    let (status, _, body) = api.call(Method::GET, "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (status, _, body) = api.call(Method::GET, "/health", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("healthy"))
    );
    let (status, _, body) = api.call(Method::GET, "/nope", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error_code"], 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_read_update_and_delete_connectors() {
    let api = Api::new();
    std::fs::write(api.path("in.jsonl"), "{\"n\":1}\n").unwrap();
    let (status, headers, body) = api
        .call(
            Method::POST,
            "/connectors",
            Some(json!({"name": " sink ", "config": api.sink_config()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(headers[header::LOCATION], "/connectors/sink");
    assert_eq!(body["name"], "sink");
    assert_eq!(body["type"], "sink");
    assert_eq!(body["tasks"], json!([{"connector": "sink", "task": 0}]));

    let (status, _, body) = api
        .call(
            Method::POST,
            "/connectors",
            Some(json!({"name": "sink", "config": api.sink_config()})),
        )
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::CONFLICT, Some("Connector sink already exists"))
    );

    let mut mismatched = api.source_config();
    mismatched["name"] = json!("other");
    let (status, _, body) = api
        .call(
            Method::POST,
            "/connectors",
            Some(json!({"name": "source", "config": mismatched})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "Connector name configuration (other) doesn't match connector name in the URL (source)"
    );

    let (status, _, body) = api
        .call(
            Method::POST,
            "/connectors",
            Some(json!({"name": "bad", "config": {"connector.class": "FileSource"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Connector configuration is invalid and contains the following 2 error(s):"
        ),
        "{message}"
    );
    assert!(message.contains("topic: missing required key"), "{message}");

    let (status, _, body) = api
        .raw(
            Method::POST,
            "/connectors",
            Some("{\"name\": ".into()),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_code"], 400);

    // PUT creates (201) then updates (200).
    let (status, headers, _) = api
        .call(
            Method::PUT,
            "/connectors/source/config",
            Some(api.source_config()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers[header::LOCATION], "/connectors/source");
    api.wait_for_output(1).await;
    let mut updated = api.source_config();
    updated["poll.interval.ms"] = json!(30);
    let (status, _, body) = api
        .call(Method::PUT, "/connectors/source/config", Some(updated))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["config"]["poll.interval.ms"], "30");

    // PATCH merges; null removes.
    let (status, _, body) = api
        .call(
            Method::PATCH,
            "/connectors/source/config",
            Some(json!({"poll.interval.ms": null, "batch.max.records": "10"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["config"].get("poll.interval.ms").is_none());
    assert_eq!(body["config"]["batch.max.records"], "10");
    let (status, _, _) = api
        .call(Method::PATCH, "/connectors/ghost/config", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, _, list) = api.call(Method::GET, "/connectors", None).await;
    assert_eq!(list, json!(["sink", "source"]));
    let (_, _, expanded) = api
        .call(Method::GET, "/connectors?expand=status&expand=info", None)
        .await;
    assert_eq!(
        expanded["source"]["status"]["connector"]["state"],
        "RUNNING"
    );
    assert_eq!(expanded["sink"]["info"]["type"], "sink");
    let (_, _, config) = api.call(Method::GET, "/connectors/sink/config", None).await;
    assert_eq!(config["topics"], "events");
    let (_, _, tasks) = api.call(Method::GET, "/connectors/sink/tasks", None).await;
    assert_eq!(tasks[0]["id"], json!({"connector": "sink", "task": 0}));
    let (_, _, task) = api
        .call(Method::GET, "/connectors/sink/tasks/0/status", None)
        .await;
    // Kafka Connect's fields (and Headwater's own for a sink, which clients ignore).
    assert_eq!(
        (&task["id"], &task["state"], &task["worker_id"]),
        (&json!(0), &json!("RUNNING"), &json!("127.0.0.1:8083"))
    );
    assert!(task["oldest_unflushed_seconds"].is_number(), "{task}");
    let (status, _, body) = api
        .call(Method::GET, "/connectors/sink/tasks/3/status", None)
        .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Unknown task: sink-3"))
    );
    let (_, _, tasks_config) = api
        .call(Method::GET, "/connectors/sink/tasks-config", None)
        .await;
    assert_eq!(tasks_config["sink-0"]["topics"], "events");
    let (status, _, _) = api
        .call(Method::POST, "/connectors/sink/tasks/0/restart", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = api
        .call(Method::POST, "/connectors/sink/tasks/1/restart", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, info) = api.call(Method::GET, "/connectors/sink", None).await;
    assert_eq!(info["config"]["topics"], "events");
    let (_, _, topics) = api
        .call(Method::GET, "/connectors/source/topics", None)
        .await;
    assert_eq!(topics, json!({"source": {"topics": ["events"]}}));
    let (status, _, _) = api
        .call(Method::PUT, "/connectors/source/topics/reset", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, topics) = api
        .call(Method::GET, "/connectors/source/topics", None)
        .await;
    assert_eq!(topics, json!({"source": {"topics": []}}));

    let (status, _, _) = api.call(Method::DELETE, "/connectors/source", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = api.call(Method::GET, "/connectors/source", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("Connector source not found"))
    );
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_restart_and_offsets_follow_kafka_connect() {
    let api = Api::new();
    std::fs::write(api.path("in.jsonl"), "{\"n\":1}\n").unwrap();
    api.call(
        Method::PUT,
        "/connectors/sink/config",
        Some(api.sink_config()),
    )
    .await;
    api.call(
        Method::PUT,
        "/connectors/source/config",
        Some(api.source_config()),
    )
    .await;
    api.wait_for_output(1).await;

    let (status, _, _) = api
        .call(Method::PUT, "/connectors/source/pause", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, _, s) = api
        .call(Method::GET, "/connectors/source/status", None)
        .await;
    assert_eq!(
        (
            s["connector"]["state"].as_str(),
            s["tasks"][0]["state"].as_str()
        ),
        (Some("PAUSED"), Some("PAUSED"))
    );
    let (status, _, _) = api
        .call(Method::PUT, "/connectors/source/resume", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    let (status, _, _) = api
        .call(Method::POST, "/connectors/source/restart", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, s) = api
        .call(
            Method::POST,
            "/connectors/source/restart?includeTasks=true",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(s["connector"]["state"], "RESTARTING");
    assert_eq!(s["tasks"][0]["state"], "RESTARTING");
    let (status, _, s) = api
        .call(
            Method::POST,
            // As a Python client sends booleans: Kafka Connect reads them with Boolean.valueOf.
            "/connectors/source/restart?includeTasks=True&onlyFailed=TRUE",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        s["connector"]["state"], "RUNNING",
        "not failed: not restarted"
    );

    // Offsets can only change while STOPPED.
    let change = json!({"offsets": [{"partition": {"path": api.path("in.jsonl")}, "offset": {"position": 0}}]});
    let (status, _, body) = api
        .call(
            Method::PATCH,
            "/connectors/source/offsets",
            Some(change.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Connectors must be in the STOPPED state")
    );
    let (status, _, _) = api.call(Method::PUT, "/connectors/source/stop", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, s) = api
        .call(Method::GET, "/connectors/source/status", None)
        .await;
    assert_eq!(
        (s["connector"]["state"].as_str(), s["tasks"].clone()),
        (Some("STOPPED"), json!([]))
    );
    let (_, _, info) = api.call(Method::GET, "/connectors/source", None).await;
    assert_eq!(info["tasks"], json!([]));
    let (_, _, offsets) = api
        .call(Method::GET, "/connectors/source/offsets", None)
        .await;
    assert_eq!(offsets["offsets"][0]["offset"], json!({"position": 8}));
    let (status, _, body) = api
        .call(Method::PATCH, "/connectors/source/offsets", Some(change))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["message"],
        "The offsets for this connector have been altered successfully"
    );
    let (status, _, _) = api
        .call(
            Method::PATCH,
            "/connectors/source/offsets",
            Some(json!({"offsets": []})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Rewound to 0: resuming replays the line.
    let (status, _, _) = api
        .call(Method::PUT, "/connectors/source/resume", None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    api.wait_for_output(2).await;
    api.call(Method::PUT, "/connectors/source/stop", None).await;
    let (status, _, body) = api
        .call(Method::DELETE, "/connectors/source/offsets", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["message"],
        "The offsets for this connector have been reset successfully"
    );
    let (_, _, offsets) = api
        .call(Method::GET, "/connectors/source/offsets", None)
        .await;
    assert_eq!(offsets, json!({"offsets": []}));
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugins_describe_and_validate_configs() {
    let api = Api::new();
    let (_, _, plugins) = api.call(Method::GET, "/connector-plugins", None).await;
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert!(classes.contains(&"headwater.file.FileSource"));
    assert!(
        plugins
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "source" || p["type"] == "sink")
    );
    let (_, _, all) = api
        .call(Method::GET, "/connector-plugins?connectorsOnly=False", None)
        .await;
    let types: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    for t in ["transformation", "predicate", "converter"] {
        assert!(types.contains(&t), "{t} missing");
    }

    let (status, _, keys) = api
        .call(
            Method::GET,
            "/connector-plugins/headwater.file.FileSource/config",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let topic = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "topic")
        .unwrap();
    assert_eq!(topic["required"], true);
    assert_eq!(topic["type"], "STRING");
    assert!(topic["documentation"].as_str().unwrap().len() > 10);
    let (status, _, keys) = api
        .call(
            Method::GET,
            "/connector-plugins/org.apache.kafka.connect.transforms.Cast$Value/config",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys[0]["name"], "spec");

    let (status, _, result) = api
        .call(Method::PUT, "/connector-plugins/FileSource/config/validate",
              Some(json!({"connector.class": "headwater.file.FileSource", "path": api.path("x"), "poll.interval.ms": "soon"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(result["error_count"], 2);
    let errors_of = |name: &str| {
        result["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == name)
            .map(|c| c["value"]["errors"].clone())
            .unwrap()
    };
    assert_eq!(
        errors_of("topic"),
        json!(["missing required key, which has no default value"])
    );
    assert_eq!(
        errors_of("poll.interval.ms"),
        json!(["expected a positive integer, got \"soon\""])
    );
    assert_eq!(errors_of("path"), json!([]));
    let (status, _, _) = api
        .call(
            Method::PUT,
            "/connector-plugins/ParquetSink/config/validate",
            Some(json!({"connector.class": "headwater.file.FileSource"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_defined_connectors_refuse_rest_edits() {
    let api = Api::new();
    let config = ConnectorConfig {
        name: "from-file".into(),
        config: serde_json::from_value(api.sink_config()).unwrap(),
    };
    api.runtime
        .apply(config, Origin::File("connectors.d/from-file.json".into()))
        .await
        .unwrap();
    let (status, _, body) = api
        .call(
            Method::PUT,
            "/connectors/from-file/config",
            Some(api.sink_config()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is defined by the file connectors.d/from-file.json")
    );
    let (status, _, _) = api
        .call(Method::DELETE, "/connectors/from-file", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = api
        .call(Method::PUT, "/connectors/from-file/pause", None)
        .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "lifecycle operations are allowed"
    );
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_connectors_and_target_states_survive_a_restart() {
    let api = Api::new();
    api.call(
        Method::PUT,
        "/connectors/sink/config",
        Some(api.sink_config()),
    )
    .await;
    api.call(Method::PUT, "/connectors/sink/pause", None).await;
    api.runtime.shutdown().await;
    let Api { dir, .. } = api;
    let again = Api::in_dir(dir, None, None);
    again.runtime.restore().await.unwrap();
    let (status, _, s) = again
        .call(Method::GET, "/connectors/sink/status", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["connector"]["state"], "PAUSED");
    again.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_leave_one_consistent_config() {
    let api = Arc::new(Api::new());
    let mut handles = Vec::new();
    for i in 0..8 {
        let api = Arc::clone(&api);
        handles.push(tokio::spawn(async move {
            let mut config = api.sink_config();
            config["file"] = json!(api.path(&format!("out-{i}.jsonl")));
            api.call(Method::PUT, "/connectors/sink/config", Some(config))
                .await
                .0
        }));
    }
    let mut created = 0;
    for h in handles {
        let status = h.await.unwrap();
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status}"
        );
        created += usize::from(status == StatusCode::CREATED);
    }
    assert_eq!(created, 1, "exactly one PUT created the connector");
    let (_, _, config) = api.call(Method::GET, "/connectors/sink/config", None).await;
    let (_, _, s) = api.call(Method::GET, "/connectors/sink/status", None).await;
    assert_eq!(s["connector"]["state"], "RUNNING");
    assert!(config["file"].as_str().unwrap().contains("out-"));
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_everything_but_health() {
    let api = Api::with_token(Some("s3cret"));
    let (status, headers, body) = api.raw(Method::GET, "/connectors", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    assert_eq!(body["error_code"], 401);
    let (status, _, _) = api
        .raw(Method::GET, "/connectors", None, Some("wrong"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = api
        .raw(Method::GET, "/connectors", None, Some("s3cret"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api.raw(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_token_views_but_cannot_act() {
    let api = Api::with_tokens(Some("s3cret"), Some("v1ew"));
    let config = api.sink_config().to_string();
    let (status, _, _) = api
        .raw(
            Method::PUT,
            "/connectors/sink/config",
            Some(config.clone()),
            Some("s3cret"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    for path in [
        "/connectors?expand=status",
        "/connectors/sink/config",
        "/metrics",
    ] {
        let (status, _, _) = api.raw(Method::GET, path, None, Some("v1ew")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    for (method, path) in [
        (Method::PUT, "/connectors/sink/pause"),
        (Method::POST, "/connectors/sink/restart"),
        (Method::DELETE, "/connectors/sink"),
    ] {
        let (status, _, body) = api.raw(method.clone(), path, None, Some("v1ew")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(
            body["message"]
                .as_str()
                .is_some_and(|m| m.contains("may view but not act")),
            "{body}"
        );
    }
    let (status, _, _) = api
        .raw(
            Method::PUT,
            "/connectors/sink/config",
            Some(config),
            Some("v1ew"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, s) = api
        .raw(Method::GET, "/connectors/sink/status", None, Some("v1ew"))
        .await;
    assert_eq!(s["connector"]["state"], "RUNNING", "nothing was acted on");
    let (status, _, _) = api
        .raw(Method::GET, "/connectors", None, Some("wrong"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_counters_moving() {
    let api = Api::new();
    std::fs::write(api.path("in.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    api.call(
        Method::PUT,
        "/connectors/sink/config",
        Some(api.sink_config()),
    )
    .await;
    api.call(
        Method::PUT,
        "/connectors/source/config",
        Some(api.source_config()),
    )
    .await;
    api.wait_for_output(2).await;
    // The output is visible as soon as the sink flushed; the freshness gauge is set just
    // after: scrape until it is there (or give up and let the asserts below say what is not).
    let mut scrape = api.call(Method::GET, "/metrics", None).await;
    for _ in 0..100 {
        let text = scrape.2.as_str().unwrap_or_default();
        if text.contains("headwater_connector_freshness_seconds{connector=\"sink\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        scrape = api.call(Method::GET, "/metrics", None).await;
    }
    let (status, headers, body) = scrape;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = body.as_str().unwrap();
    assert!(
        text.contains("headwater_connector_records_out_total{connector=\"sink\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("headwater_connector_records_in_total{connector=\"source\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("headwater_connector_running{connector=\"source\",state=\"RUNNING\"} 1"),
        "{text}"
    );
    for expected in [
        "headwater_connector_flush_latency_seconds_count{connector=\"sink\"}",
        "headwater_connector_batch_latency_seconds_bucket{le=\"+Inf\",connector=\"source\"}",
        "headwater_connector_freshness_seconds{connector=\"sink\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in {text}");
    }
    std::fs::write(api.path("in.jsonl"), "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n").unwrap();
    api.wait_for_output(3).await;
    let (_, _, body) = api.call(Method::GET, "/metrics", None).await;
    assert!(
        body.as_str()
            .unwrap()
            .contains("headwater_connector_records_out_total{connector=\"sink\"} 3")
    );
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_starting_until_loaded_and_big_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Arc::new(crate::runtime(dir.path()));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = router(AppState {
        runtime,
        worker_id: "w".into(),
        token: None,
        read_token: None,
        ready: Arc::clone(&ready),
        schema_registry: Arc::new(
            crate::schema_registry::SchemaRegistry::open(dir.path()).unwrap(),
        ),
        started: std::time::Instant::now(),
    });
    let get = |app: Router| async move {
        let request = Request::get("/health").body(Body::empty()).unwrap();
        app.oneshot(request).await.unwrap().status()
    };
    assert_eq!(get(app.clone()).await, StatusCode::SERVICE_UNAVAILABLE);
    ready.store(true, std::sync::atomic::Ordering::Release);
    assert_eq!(get(app.clone()).await, StatusCode::OK);

    let huge = format!(
        "{{\"name\": \"x\", \"config\": {{\"k\": \"{}\"}}}}",
        "a".repeat(super::MAX_BODY_BYTES)
    );
    let request = Request::post("/connectors")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(huge))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error_code"], 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_under_way_shows_in_the_status_and_metrics() {
    use crate::api::metrics::RestoreProgress;
    let api = Api::new();
    api.call(
        Method::PUT,
        "/connectors/sink/config",
        Some(api.sink_config()),
    )
    .await;
    // What the changelog reader reports as it restores a partition: 1,000 of 4,000 read.
    let progress = Arc::new(RestoreProgress::new("headwater-sink-clicks-changelog", 2));
    progress.reading_from(0);
    progress.log_end(4_000);
    for offset in 1..=1_000 {
        progress.read_one(offset);
    }
    let metrics = api.runtime.metrics_for("sink");
    metrics.restore_started("clicks-2", Arc::clone(&progress));
    let (_, _, status) = api.call(Method::GET, "/connectors/sink/status", None).await;
    let restoring = &status["tasks"][0]["restoring"][0];
    assert_eq!(restoring["changelog"], "headwater-sink-clicks-changelog");
    assert_eq!(restoring["partition"], 2);
    assert_eq!(restoring["records_read"], 1_000);
    assert_eq!(restoring["offset"], 1_000);
    assert_eq!(restoring["end_offset"], 4_000);
    assert_eq!(restoring["records_remaining"], 3_000);
    assert!(
        restoring["seconds_remaining"].as_f64().is_some(),
        "{status}"
    );
    let (_, _, task) = api
        .call(Method::GET, "/connectors/sink/tasks/0/status", None)
        .await;
    assert_eq!(task["restoring"][0]["records_remaining"], 3_000);
    let (_, _, text) = api.call(Method::GET, "/metrics", None).await;
    assert!(
        text.as_str().unwrap().contains(
            "headwater_connector_state_restore_records_remaining{connector=\"sink\"} 3000"
        ),
        "{text}"
    );
    metrics.restore_done("clicks-2");
    let (_, _, status) = api.call(Method::GET, "/connectors/sink/status", None).await;
    assert!(status["tasks"][0].get("restoring").is_none(), "{status}");
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_state_is_read_in_any_case_as_kafka_connect_reads_it() {
    let api = Api::new();
    let body = json!({"name": "later", "config": api.sink_config(), "initial_state": "paused"});
    let (status, _, _) = api.call(Method::POST, "/connectors", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, _, s) = api
        .call(Method::GET, "/connectors/later/status", None)
        .await;
    assert_eq!(s["connector"]["state"], "PAUSED");
    let body = json!({"name": "never", "config": api.sink_config(), "initial_state": "sleeping"});
    let (status, _, error) = api.call(Method::POST, "/connectors", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["message"].as_str().unwrap().contains("SLEEPING"),
        "{error}"
    );
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_answered_hidden_and_kept_when_sent_back_hidden() {
    let api = Api::new();
    let mut config = api.sink_config();
    config["consumer.override.sasl.jaas.config"] = json!("planted-secret-jaas");
    api.call(Method::PUT, "/connectors/sink/config", Some(config))
        .await;
    for path in [
        "/connectors/sink",
        "/connectors/sink/config",
        "/connectors/sink/tasks",
        "/connectors/sink/tasks-config",
        "/connectors?expand=info",
    ] {
        let (status, _, body) = api.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let text = body.to_string();
        assert!(!text.contains("planted-secret-jaas"), "{path}: {text}");
        assert!(text.contains("[hidden]"), "{path}: {text}");
    }
    // Read, change a key, write back: the secret stays what it was.
    let (_, _, mut shown) = api.call(Method::GET, "/connectors/sink/config", None).await;
    shown["topics"] = json!("other");
    let (status, _, _) = api
        .call(Method::PUT, "/connectors/sink/config", Some(shown))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .call(
            Method::PATCH,
            "/connectors/sink/config",
            Some(json!({"consumer.override.sasl.jaas.config": "[hidden]"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stored = api.runtime.connector("sink").await.unwrap().config;
    assert_eq!(
        stored["consumer.override.sasl.jaas.config"],
        "planted-secret-jaas"
    );
    assert_eq!(stored["topics"], "other");
    api.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_says_what_the_presented_token_may_do() {
    let api = Api::with_tokens(Some("s3cret"), Some("v1ew"));
    let (status, _, _) = api.raw(Method::GET, "/worker", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    for (token, access) in [("s3cret", "full"), ("v1ew", "read")] {
        let (status, _, worker) = api.raw(Method::GET, "/worker", None, Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(worker["access"], access);
        assert_eq!(worker["bus"], "embedded");
        assert_eq!(worker["kafka"], Value::Null);
        assert_eq!(worker["connectors"]["total"], 0);
        assert_eq!(worker["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            worker["data_dir"]
                .as_str()
                .is_some_and(|d| std::path::Path::new(d).is_absolute()),
            "{worker}"
        );
    }
    let (_, _, worker) = Api::new().call(Method::GET, "/worker", None).await;
    assert_eq!(worker["access"], "open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_without_a_token_under_a_strict_policy() {
    let api = Api::with_token(Some("s3cret"));
    let (status, headers, _) = api.raw(Method::GET, "/ui", None, None).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers[header::LOCATION], "/ui/");
    let (status, headers, page) = api.raw(Method::GET, "/ui/", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        policy.contains("script-src 'self'")
            && policy.contains("frame-ancestors 'none'")
            && !policy.contains("unsafe-inline"),
        "{policy}"
    );
    assert!(page.as_str().unwrap().contains("/ui/app.js"));
    let (status, headers, _) = api.raw(Method::GET, "/ui/app.js", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let (status, _, body) = api.raw(Method::GET, "/ui/secrets.txt", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // The data the console shows still needs the token.
    let (status, _, _) = api.raw(Method::GET, "/connectors", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_carry_counters_and_infos_their_origin() {
    let api = Api::new();
    std::fs::write(api.path("in.jsonl"), "{\"n\":1}\n{\"n\":2}\n").unwrap();
    let (status, _, _) = api
        .call(
            Method::POST,
            "/connectors",
            Some(json!({"name": "sink", "config": api.sink_config()})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let file = api.path("source.json");
    api.runtime
        .apply(
            ConnectorConfig {
                name: "source".into(),
                config: serde_json::from_value(api.source_config()).unwrap(),
            },
            Origin::File(file.clone().into()),
        )
        .await
        .unwrap();
    api.wait_for_output(2).await;
    let (_, _, info) = api.call(Method::GET, "/connectors/sink", None).await;
    assert_eq!(info["origin"], json!({"kind": "rest"}));
    let (_, _, info) = api.call(Method::GET, "/connectors/source", None).await;
    assert_eq!(info["origin"], json!({"kind": "file", "file": file}));
    let (_, _, all) = api
        .call(Method::GET, "/connectors?expand=status&expand=info", None)
        .await;
    let task = &all["sink"]["status"]["tasks"][0];
    assert_eq!(task["counters"]["records_out"], 2, "{task}");
    assert_eq!(task["counters"]["dead_letters"], 0);
    assert_eq!(all["source"]["info"]["origin"]["kind"], "file");
    assert_eq!(
        all["source"]["status"]["tasks"][0]["counters"]["records_out"],
        2
    );
    api.runtime.shutdown().await;
}

/// `[files] allowed_paths`: every file a connector created over REST names — read, written,
/// loaded or read by a config provider — must be in the allowed directories once `..` and
/// links are resolved, and `${env:...}` reads no variable outside `[providers] allowed_env`; a
/// connector defined in `connectors.d/` is the operator's and is not confined.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_connectors_created_over_rest_stay_in_the_allowed_paths() {
    let api = Api::confined();
    let var = api.path("var");
    let outside = api.path("outside.jsonl");
    std::fs::write(&outside, "{\"secret\":1}\n").unwrap();
    std::fs::write(api.path("var/in.jsonl"), "{\"id\":1}\n").unwrap();
    std::os::unix::fs::symlink(&outside, api.path("var/link.jsonl")).unwrap();
    std::fs::write(api.path("secrets.properties"), "pw=s3cret\n").unwrap();
    let file_source = |path: &str| json!({"connector.class": "headwater.file.FileSource", "path": path, "topic": "t"});
    let file_sink = |file: &str| json!({"connector.class": "headwater.file.FileSink", "topics": "t", "file": file});
    let refused = [
        ("path", file_source("/etc/passwd")),
        ("path", file_source(&format!("{var}/../outside.jsonl"))),
        ("path", file_source(&format!("{var}/link.jsonl"))),
        ("path", file_source("/etc/*")),
        ("path", file_source(&format!("{var}/*/../../*.jsonl"))),
        ("file", file_sink(&api.path("out.jsonl"))),
        (
            "path",
            json!({"connector.class": "headwater.parquet.ParquetSink", "topics": "t",
                   "path": api.path("lake")}),
        ),
        (
            "transforms.f.module",
            json!({"connector.class": "headwater.file.FileSink", "topics": "t",
                   "file": format!("{var}/out.jsonl"), "transforms": "f",
                   "transforms.f.type": "headwater.wasm.Transform",
                   "transforms.f.module": api.path("feature.wasm")}),
        ),
        (
            "redis.uri",
            json!({"connector.class": "headwater.redis.RedisSink", "topics": "t",
                   "redis.uri": format!("${{file:{}:pw}}", api.path("secrets.properties"))}),
        ),
        (
            "redis.tls.ca.file",
            json!({"connector.class": "headwater.redis.RedisSink", "topics": "t",
                   "redis.uri": "rediss://127.0.0.1:6390", "redis.tls.ca.file": "/etc/ssl/ca.pem"}),
        ),
        (
            "database.sslrootcert",
            json!({"connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                   "database.hostname": "127.0.0.1", "database.user": "u",
                   "database.dbname": "d", "topic.prefix": "p",
                   "database.sslmode": "verify-full", "database.sslrootcert": "/etc/ssl/ca.pem"}),
        ),
        (
            "connection.url",
            json!({"connector.class": "headwater.postgres.QuerySource",
                   "connection.url": "jdbc:postgresql://h/db?sslmode=verify-full&sslrootcert=/etc/ssl/ca.pem",
                   "mode": "bulk", "query": "SELECT 1", "topic.prefix": "q"}),
        ),
        (
            "consumer.override.ssl.ca.location",
            json!({"connector.class": "headwater.file.FileSink", "topics": "t",
                   "file": format!("{var}/out.jsonl"),
                   "consumer.override.ssl.ca.location": "/etc/ssl/ca.pem"}),
        ),
        (
            "producer.override.plugin.library.paths",
            json!({"connector.class": "headwater.file.FileSource", "topic": "t",
                   "path": format!("{var}/in.jsonl"),
                   "producer.override.plugin.library.paths": format!("{var}/evil.so")}),
        ),
        // Not a file, but the host's too: an environment variable outside `[providers]
        // allowed_env` (none by default) would come back as the topic's name.
        (
            "topic",
            json!({"connector.class": "headwater.file.FileSource",
                   "path": format!("{var}/in.jsonl"), "topic": "${env:PATH}"}),
        ),
    ];
    for (n, (key, config)) in refused.into_iter().enumerate() {
        let name = format!("c{n}");
        let (status, _, body) = api
            .call(
                Method::PUT,
                &format!("/connectors/{name}/config"),
                Some(config.clone()),
            )
            .await;
        let message = body["message"].as_str().unwrap_or_default();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{config}: {body}");
        assert!(
            message.contains(&format!("{key}: ")),
            "{config}: the error names the key {key}: {message}"
        );
        assert!(
            message.contains("[files] allowed_paths") || message.contains("connectors.d/"),
            "{config}: the error says what to do: {message}"
        );
        // The validate endpoint says the same.
        let class = config["connector.class"].as_str().unwrap();
        let (status, _, body) = api
            .call(
                Method::PUT,
                &format!("/connector-plugins/{class}/config/validate"),
                Some(config),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body["error_count"].as_u64().unwrap() >= 1, "{body}");
    }
    let (_, _, listed) = api.call(Method::GET, "/connectors", None).await;
    assert_eq!(listed, json!([]), "nothing refused was created");

    // Inside the data directory, everything works: a glob's match that links outside is
    // skipped as the source reads.
    let (status, _, body) = api
        .call(
            Method::PUT,
            "/connectors/sink/config",
            Some(file_sink(&format!("{var}/out.jsonl"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = api
        .call(
            Method::PUT,
            "/connectors/source/config",
            Some(file_source(&format!("{var}/*.jsonl"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut out = String::new();
    for _ in 0..500 {
        out = std::fs::read_to_string(api.path("var/out.jsonl")).unwrap_or_default();
        if !out.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(out.lines().count(), 1, "the linked file is not read: {out}");
    assert!(out.contains(r#""payload":{"id":1}"#), "{out}");

    // The operator's own config (connectors.d/) is not confined.
    let trusted = ConnectorConfig {
        name: "trusted".into(),
        config: serde_json::from_value(file_sink(&api.path("trusted.jsonl"))).unwrap(),
    };
    api.runtime
        .apply(
            trusted,
            Origin::File(api.path("connectors.d/trusted.json").into()),
        )
        .await
        .unwrap();
    api.runtime.shutdown().await;
}

/// Request bodies from a hostile or broken client (issue 22's fuzzing): any JSON, or any text,
/// sent to the endpoints that read a body — connector creation and configs, validation, offsets,
/// the schema registry — is answered 2xx or 4xx with an error body, never 5xx or a panic.
#[test]
fn any_request_body_is_answered_without_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::TestRunner;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = tokio.block_on(async { Api::new() });
    let endpoints = [
        (Method::POST, "/connectors"),
        (Method::PUT, "/connectors/fuzz/config"),
        (Method::PATCH, "/connectors/fuzz/config"),
        (
            Method::PUT,
            "/connector-plugins/headwater.file.FileSource/config/validate",
        ),
        (Method::PATCH, "/connectors/fuzz/offsets"),
        (Method::POST, "/connectors/fuzz/signals"),
        (Method::POST, "/subjects/fuzz-value/versions"),
        (Method::POST, "/subjects/fuzz-value"),
        (Method::PUT, "/config/fuzz-value"),
        (
            Method::POST,
            "/compatibility/subjects/fuzz-value/versions/latest",
        ),
    ];
    let body = prop_oneof![
        crate::fuzz::json_value().prop_map(|v| v.to_string()),
        crate::fuzz::tricky_string(),
        (crate::fuzz::json_value(), crate::fuzz::json_value())
            .prop_map(|(name, config)| json!({"name": name, "config": config}).to_string()),
        crate::fuzz::json_value().prop_map(|schema| {
            json!({"schema": schema.to_string(), "schemaType": "AVRO"}).to_string()
        }),
    ];
    let mut runner = TestRunner::new(crate::fuzz::cases());
    runner
        .run(
            &(prop::sample::select(endpoints.to_vec()), body),
            |((method, path), body)| {
                let (status, _, answer) =
                    tokio.block_on(api.raw(method.clone(), path, Some(body.clone()), None));
                prop_assert!(
                    !status.is_server_error(),
                    "{method} {path} {body}: {status} {answer}"
                );
                if status.is_client_error() {
                    prop_assert!(answer.get("message").is_some(), "{method} {path}: {answer}");
                }
                Ok(())
            },
        )
        .unwrap();
    tokio.block_on(api.runtime.shutdown());
}
