//! What can go wrong talking to PostgreSQL, classified by SQLSTATE rather than by message text.

use tokio_postgres::error::SqlState;

/// A PostgreSQL failure with what the connector was doing.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server refused a statement or the connection failed.
    #[error("{context}: {}", describe(source))]
    Postgres {
        context: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The replication protocol failed (creating a slot, streaming).
    #[error("{context}: {source}")]
    Replication {
        context: String,
        #[source]
        source: pgwire_replication::PgWireError,
    },
    /// TLS could not be set up: the `sslrootcert` file cannot be read or holds no usable
    /// certificate.
    #[error("{context}: {source}")]
    Tls {
        context: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The connection settings are wrong (a URL, an `sslmode`, a certificate file).
    #[error("{0}")]
    Settings(String),
    /// The database is not in the state the connector needs (a missing table, a slot of
    /// another plugin); the message says what to change.
    #[error("{0}")]
    State(String),
}

impl PgError {
    /// A `map_err` adapter: a failed statement or connection, while doing `context`.
    pub fn postgres(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let context = context.into();
        move |source| Self::Postgres { context, source }
    }

    /// The server's SQLSTATE, when the server answered with an error.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            Self::Postgres { source, .. } => source.code(),
            Self::Replication { .. } | Self::Tls { .. } | Self::Settings(_) | Self::State(_) => {
                None
            }
        }
    }

    /// True when the server says only the user can fix it, so retrying is pointless: a refused
    /// login (SQLSTATE class 28: unknown role, wrong password) or a missing database (3D000).
    /// Everything else is retried, certificate trouble included: a mounted secret may appear
    /// late. (Wrong settings in the config itself are refused before the task starts.)
    pub fn needs_user(&self) -> bool {
        self.code().is_some_and(|code| {
            code.code().starts_with("28") || *code == SqlState::INVALID_CATALOG_NAME
        })
    }
}

/// A PostgreSQL error with what the server said: tokio-postgres' own text is only "db error".
pub fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}
