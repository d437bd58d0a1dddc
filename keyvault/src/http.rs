//! The HTTPS client both binaries hand to the Azure SDK: reqwest on rustls (aws-lc-rs) with the platform's roots,
//! plus a private CA bundle when the operator gives one. No redirects (a redirect could carry a bearer token to
//! another host), a connect and a read timeout so that no call hangs. Plain http stays possible only for the
//! instance metadata endpoint of VM managed identity, whose URL is the SDK's, never a user's.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use azure_core::http::HttpClient;

/// Largest CA bundle read: the Mozilla store is about 200 KiB.
pub const MAX_CA_BUNDLE_BYTES: u64 = 4 << 20;

/// Why the client could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpClientError {
    /// The CA bundle is not PEM certificates.
    #[error("not a PEM certificate bundle")]
    NotPem,
    /// The CA bundle holds no certificate.
    #[error("no certificate in the file")]
    NoCertificate,
    /// reqwest refused the configuration.
    #[error("building the HTTPS client: {0}")]
    Build(String),
}

/// Builds the client. `ca_bundle` is the PEM text of extra trusted roots; `resolve` pins host names to
/// addresses (private endpoints without DNS, and tests).
pub fn http_client(
    ca_bundle: Option<&[u8]>,
    resolve: &[(String, SocketAddr)],
) -> Result<Arc<dyn HttpClient>, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(pem) = ca_bundle {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| HttpClientError::NotPem)?;
        if certs.is_empty() {
            return Err(HttpClientError::NoCertificate);
        }
        builder = builder.tls_certs_merge(certs);
    }
    for (host, addr) in resolve {
        builder = builder.resolve(host, *addr);
    }
    let client = builder.build().map_err(|e| HttpClientError::Build(e.to_string()))?;
    Ok(Arc::new(client))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_are_checked() {
        assert!(http_client(None, &[]).is_ok());
        assert_eq!(http_client(Some(b"no pem here"), &[]).err(), Some(HttpClientError::NoCertificate));
        let garbage = b"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert_eq!(http_client(Some(garbage), &[]).err(), Some(HttpClientError::NotPem));
    }
}
