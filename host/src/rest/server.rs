//! The REST API's accept loop: TLS when configured, a time limit on every client, a cap on
//! open connections.
//!
//! `axum::serve` would read a request for as long as a client cares to send it and accepts
//! connections without limit, so a few slow clients could hold the API's file descriptors and
//! memory. Here each connection runs in its own task (a TLS handshake in progress never delays
//! the next `accept`), a client has [`Limits::client_timeout`] to complete a TLS handshake, to
//! send a request's headers (or the next request's, on a kept-alive connection) and to send its
//! body, and at most [`Limits::max_connections`] connections are open at once: the next waits in
//! the kernel's backlog until one closes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How the server treats its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest a client may take for a TLS handshake, a request's headers or its body, and how
    /// long a kept-alive connection may stay idle.
    pub client_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` fires, then lets the
/// requests in flight finish.
pub async fn run(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.client_timeout));
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut capped = false;
    loop {
        let permit = match Arc::clone(&open).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !capped {
                    capped = true;
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "The REST API has as many connections open as it allows; new ones wait \
                         until one closes."
                    );
                }
                tokio::select! {
                    permit = Arc::clone(&open).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was accepted:
                    // the listener itself is fine; pause so a full table does not spin.
                    tracing::warn!(%error, "Accepting a REST connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        if open.available_permits() > 0 {
            capped = false;
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _open = permit;
            match tls {
                None => serve_connection(stream, router, limits, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.client_timeout, acceptor.accept(stream)).await
                    {
                        Ok(Ok(stream)) => serve_connection(stream, router, limits, shutdown).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake with a REST client failed.");
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "A REST client did not complete its TLS handshake in time.");
                        }
                    }
                }
            }
        });
    }
    // Every connection task holds a permit: having them all back means every request in flight
    // was answered.
    let _ = open.acquire_many(permits(limits.max_connections)).await;
}

/// `max_connections` as a semaphore count (a config beyond `u32` means "all of them").
fn permits(max_connections: usize) -> u32 {
    u32::try_from(max_connections).unwrap_or(u32::MAX)
}

async fn serve_connection<S>(stream: S, router: Router, limits: Limits, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.client_timeout);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "A REST connection ended with an error.");
            }
            return;
        }
        () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    if let Err(error) = connection.await {
        tracing::debug!(%error, "A REST connection ended with an error while shutting down.");
    }
}

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[rest] tls_cert and tls_key go together: set both, or neither for plain HTTP")]
    Half,
    #[error("[rest] tls_cert {path}: {reason}")]
    Cert { path: String, reason: String },
    #[error("[rest] tls_key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("[rest] tls_cert and tls_key do not make a usable certificate: {0}")]
    Config(rustls::Error),
}

/// The TLS acceptor for a PEM certificate chain (the server's certificate first) and its PEM
/// private key (PKCS#8, PKCS#1 or SEC1).
pub fn acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_error = |reason: String| TlsError::Cert {
        path: cert.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_error(
            "no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        reason: format!("{e} (expected a PEM private key: PKCS#8, PKCS#1 or SEC1)"),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
