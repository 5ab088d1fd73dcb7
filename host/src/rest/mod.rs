//! The Kafka Connect–compatible REST API (axum), plus `/metrics` and `/health`.
//!
//! Endpoints, bodies, status codes and error messages follow Kafka Connect's REST API (its
//! `ConnectorsResource` and friends; the book's REST page lists them). Every error body is
//! `{"error_code": <status>, "message": ".."}`. The API listens on loopback by default; with a
//! token configured (`[rest] token` or `HEADWATER_REST_TOKEN`), every request but `/health`
//! needs `Authorization: Bearer <token>`; a read-only token (`[rest] read_token`) may view
//! (GET, HEAD) but not act. Tokens travel in a header, never a cookie, so another site a
//! browser visits cannot act with them. Request bodies are capped at [`MAX_BODY_BYTES`].

mod connectors;
mod console;
mod error;
mod lenient;
mod metrics;
mod plugins;
mod schema_registry;
mod secrets;
mod server;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::runtime::host::Runtime;
use crate::runtime::worker::RestConfig;

pub use error::ApiError;

/// Largest accepted request body (a connector config is a few kilobytes).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub runtime: Arc<Runtime>,
    /// This host's identity in statuses (`worker_id`): its REST address.
    pub worker_id: String,
    /// Bearer token every request must carry, if set.
    pub token: Option<Arc<str>>,
    /// A token that may view but not act (with `token` set).
    pub read_token: Option<Arc<str>>,
    /// Set once connectors were restored and `connectors.d/` was loaded: `/health` answers 503
    /// before.
    pub ready: Arc<AtomicBool>,
    /// The embedded Confluent Schema Registry.
    pub schema_registry: Arc<crate::schema_registry::SchemaRegistry>,
    /// When this host started (its uptime in `GET /worker`).
    pub started: std::time::Instant,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("worker_id", &self.worker_id)
            .field("token", &self.token.as_ref().map(|_| "[hidden]"))
            .field("read_token", &self.read_token.as_ref().map(|_| "[hidden]"))
            .finish()
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(root))
        .merge(connectors::routes())
        .merge(plugins::routes())
        .merge(schema_registry::routes())
        .route("/worker", get(worker::describe))
        .route("/metrics", get(metrics::scrape))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .route("/health", get(health))
        // The console's page and scripts hold no data (they read it through the API above, with
        // the token the user types), so they are served without one.
        .merge(console::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .fallback(not_found)
        .with_state(state)
}

async fn root() -> impl IntoResponse {
    axum::Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": option_env!("HEADWATER_COMMIT").unwrap_or("unknown"),
        "kafka_cluster_id": "headwater-embedded",
    }))
}

/// Liveness and readiness (Kafka Connect 4.0's `/health`): 503 `starting` until connectors
/// were restored and `connectors.d/` loaded, then 200 `healthy`.
async fn health(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        axum::Json(json!({
            "status": "healthy",
            "message": "Worker has completed startup and is ready to handle requests.",
        }))
        .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "starting", "message": "Worker is still starting up." })),
        )
            .into_response()
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("HTTP 404 Not Found: {}", request.uri().path()))
}

/// What the bearer token a request presents lets it do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No token is configured: anyone who reaches the address may act.
    Open,
    /// The `[rest] token`.
    Full,
    /// The `[rest] read_token`: GET and HEAD only.
    Read,
    /// No token, or a wrong one.
    Denied,
}

impl Access {
    fn of(state: &AppState, headers: &header::HeaderMap) -> Self {
        let Some(token) = &state.token else {
            return Self::Open;
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let presents =
            |t: &str| presented.is_some_and(|p| constant_time_eq(p.as_bytes(), t.as_bytes()));
        if presents(token) {
            Self::Full
        } else if state.read_token.as_deref().is_some_and(presents) {
            Self::Read
        } else {
            Self::Denied
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Full => "full",
            Self::Read => "read",
            Self::Denied => "denied",
        }
    }
}

async fn authenticate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match Access::of(&state, request.headers()) {
        Access::Open | Access::Full => next.run(request).await,
        Access::Read => {
            let method = request.method();
            if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
                return next.run(request).await;
            }
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "The read-only token may view but not act: {method} {} needs the [rest] token",
                    request.uri().path()
                ),
            )
            .into_response()
        }
        Access::Denied => {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "Missing or invalid bearer token: send 'Authorization: Bearer <token>'",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why the REST server could not start.
#[derive(Debug, thiserror::Error)]
#[error("binding the REST API to {addr}: {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

/// Binds the API's address (port 0 picks a free port: see the listener's `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| BindError { addr, source })
}

/// How the API is served: over TLS or not, and its limits on clients.
pub struct ServeOptions {
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: server::Limits,
}

pub use server::TlsError;

impl ServeOptions {
    /// The options `[rest]` asks for; an error names the TLS file that cannot be used.
    pub fn from_config(config: &RestConfig) -> Result<Self, TlsError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(server::acceptor(cert, key)?),
            _ => return Err(TlsError::Half),
        };
        Ok(Self {
            tls,
            limits: server::Limits {
                client_timeout: Duration::from_secs(config.client_timeout_secs.max(1)),
                max_connections: config.max_connections.max(1),
            },
        })
    }

    /// The scheme clients use: `https` with TLS.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

/// Serves the API on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    match listener.local_addr() {
        Ok(addr) => tracing::info!(addr = %addr, scheme = options.scheme(), "REST API listening."),
        Err(error) => tracing::info!(%error, scheme = options.scheme(), "REST API listening."),
    }
    server::run(
        listener,
        router(state),
        options.tls,
        options.limits,
        shutdown,
    )
    .await;
}

#[cfg(test)]
mod tests;
