//! Connections to PostgreSQL shared by the PostgreSQL connectors: connection strings from JDBC
//! or libpq URLs, TLS, and error text that says what the server said.

use tokio_postgres::{Client, NoTls};

use super::error::{PgError, describe};

/// A connection string for tokio-postgres, and how to secure the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub params: String,
    pub tls: Tls,
}

/// Whether to connect over TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// TLS, the server's certificate verified against `root_cert` (`sslrootcert`), or the
    /// system's roots when `None`.
    Verified {
        root_cert: Option<std::path::PathBuf>,
    },
}

/// A JDBC URL as tokio-postgres wants it, with the user and password added. `sslmode`
/// `require`, `verify-ca` and `verify-full` connect over TLS and verify the server's
/// certificate; `disable`, `allow` and `prefer` connect without TLS.
pub fn connection_string(
    url: &str,
    user: Option<String>,
    password: Option<String>,
) -> Result<Connection, PgError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("jdbc:postgresql://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| {
            PgError::Settings(
                "expected jdbc:postgresql://host:port/db or postgresql://... ".to_owned(),
            )
        })?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (credentials, host) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, authority),
    };
    let (url_user, url_password) = match credentials.map(|c| c.split_once(':').unwrap_or((c, ""))) {
        Some((u, p)) => (Some(u.to_owned()), (!p.is_empty()).then(|| p.to_owned())),
        None => (None, None),
    };
    let (db, params) = path.split_once('?').unwrap_or((path, ""));
    let (host, port) = host.rsplit_once(':').unwrap_or((host, "5432"));
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut out = format!("host={} port={}", quote(host), quote(port));
    if !db.is_empty() {
        out.push_str(&format!(" dbname={}", quote(db)));
    }
    if let Some(u) = user.or(url_user) {
        out.push_str(&format!(" user={}", quote(&u)));
    }
    if let Some(p) = password.or(url_password) {
        out.push_str(&format!(" password={}", quote(&p)));
    }
    let mut tls = false;
    let mut root_cert = None;
    for param in params.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = param.split_once('=').unwrap_or((param, ""));
        match k {
            "user" | "password" | "dbname" => out.push_str(&format!(" {k}={}", quote(v))),
            "sslmode" => {
                tls = match v {
                    "disable" | "allow" | "prefer" => false,
                    "require" | "verify-ca" | "verify-full" => true,
                    other => {
                        return Err(PgError::Settings(format!(
                            "unknown sslmode={other}; expected disable, allow, prefer, require, \
                             verify-ca or verify-full"
                        )));
                    }
                }
            }
            "sslrootcert" => root_cert = Some(std::path::PathBuf::from(v)),
            _ => {}
        }
    }
    if tls {
        out.push_str(" sslmode=require");
    }
    Ok(Connection {
        params: out,
        tls: if tls {
            Tls::Verified { root_cert }
        } else {
            Tls::Off
        },
    })
}

/// Connects and drives the connection in the background; a connection that ends is logged
/// with the connector's name.
pub async fn connect(connection: &Connection, connector: &str) -> Result<Client, PgError> {
    let params = &connection.params;
    let name = connector.to_owned();
    let closed = move |e: tokio_postgres::Error| {
        tracing::warn!(connector = %name, error = %describe(&e), "PostgreSQL connection closed.");
    };
    match &connection.tls {
        Tls::Off => {
            let (client, conn) = tokio_postgres::connect(params, NoTls)
                .await
                .map_err(PgError::postgres("connecting to PostgreSQL"))?;
            tokio::spawn(async move { conn.await.map_err(closed) });
            Ok(client)
        }
        Tls::Verified { root_cert } => {
            let tls = super::tls::connector(root_cert.as_deref())?;
            let (client, conn) = tokio_postgres::connect(params, tls)
                .await
                .map_err(PgError::postgres("connecting to PostgreSQL over TLS"))?;
            tokio::spawn(async move { conn.await.map_err(closed) });
            Ok(client)
        }
    }
}
