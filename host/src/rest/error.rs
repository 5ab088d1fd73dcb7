//! The one REST error type: Kafka Connect's `{"error_code": <status>, "message": ".."}` body.
//! User errors are answered precisely and logged at debug; internal ones are logged and
//! answered generically.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::runtime::host::RuntimeError;
use crate::runtime::replay::ReplayError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), error = %self.message, "REST request failed.");
        } else {
            tracing::debug!(status = self.status.as_u16(), error = %self.message, "REST request refused.");
        }
        let message = if self.status.is_server_error() {
            "Internal error; see the host's log".to_owned()
        } else {
            self.message
        };
        let body = json!({ "error_code": self.status.as_u16(), "message": message });
        (self.status, Json(body)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound(name) => Self::not_found(format!("Connector {name} not found")),
            RuntimeError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            RuntimeError::Invalid(errors) => Self::bad_request(format!(
                "Connector configuration is invalid and contains the following {} error(s):\n{}\n\
                 You can also find the above list of errors at the endpoint \
                 `/connector-plugins/{{connectorType}}/config/validate`",
                errors.issues.len(),
                errors
                    .issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )),
            RuntimeError::BadRequest(m) => Self::bad_request(m),
            RuntimeError::Replay { source, .. } if matches!(*source, ReplayError::NoKafka) => {
                Self::bad_request(source.to_string())
            }
            RuntimeError::Replay { connector, source }
                if matches!(*source, ReplayError::SinkStopped) =>
            {
                Self::new(
                    StatusCode::CONFLICT,
                    format!("connector {connector} stopped during the replay"),
                )
            }
            e @ (RuntimeError::Store(_)
            | RuntimeError::Offsets(_)
            | RuntimeError::StateFile { .. }
            | RuntimeError::Replay { .. }) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, rejection.body_text())
    }
}

/// `axum::Json`, with rejections answered in Kafka Connect's error shape.
#[derive(Debug, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct JsonBody<T>(pub T);
