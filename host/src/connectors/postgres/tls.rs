//! TLS for PostgreSQL connections (rustls with ring, as for Redis): certificates are verified
//! against `sslrootcert` when given, else the system's roots.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::PgError;

/// A TLS connector trusting the CA certificates in `root_cert` (PEM), or the system's roots.
pub fn connector(root_cert: Option<&Path>) -> Result<MakeRustlsConnect, PgError> {
    let mut roots = rustls::RootCertStore::empty();
    match root_cert {
        Some(path) => {
            let bad_file = |source: Box<dyn std::error::Error + Send + Sync>| PgError::Tls {
                context: format!("sslrootcert {}", path.display()),
                source,
            };
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad_file(e.into()))?;
            for cert in certs {
                let cert = cert.map_err(|e| bad_file(e.into()))?;
                roots.add(cert).map_err(|e| bad_file(e.into()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(PgError::Settings(
            "no CA certificate to verify the server with: set sslrootcert".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls {
            context: "TLS setup".to_owned(),
            source: e.into(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
