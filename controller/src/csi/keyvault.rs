//! Key Vault reads through the official SDK, with our own bounded retry and errors a pod owner can act on.
//!
//! The SDK's retry policy is off for Key Vault clients: it would sleep for any `Retry-After` the service sends. Here a
//! 429 or 5xx (or a connection error) is retried after `Retry-After` (or an exponential backoff when absent) only
//! while the total wait stays under [`RetryPolicy::max_total_wait`]; then the mount fails with `KeyVaultThrottled` /
//! `KeyVaultUnavailable`, and the driver's own retry (with its backoff) takes over.

use std::fmt;
use std::time::{Duration, Instant};

use azure_core::error::ErrorKind;
use azure_core::http::StatusCode;
use azure_security_keyvault_certificates::models::CertificateClientGetCertificateOptions;
use azure_security_keyvault_keys::models::KeyClientGetKeyOptions;
use azure_security_keyvault_secrets::models::{
    SecretClientGetSecretOptions, SecretClientListSecretPropertiesVersionsOptions,
};
use futures::TryStreamExt;
use zeroize::Zeroizing;

use arcseal_keyvault::service_error::{ServiceError, sanitize};

use super::identity::VaultClients;
use super::metrics::Metrics;
use arcseal_keyvault::params::ObjectType;

pub use arcseal_keyvault::retry::RetryPolicy;

/// What Key Vault (or Entra ID) answered, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchErrorKind {
    /// 404.
    NotFound,
    /// 403 other than disabled.
    Forbidden,
    /// 403 SecretDisabled / KeyDisabled / CertificateDisabled, or a disabled object.
    Disabled,
    /// 429 still after the bounded wait.
    Throttled,
    /// 5xx or connection errors still after the bounded wait.
    Unavailable,
    /// The token request to Entra ID failed.
    Authentication,
    /// 401 with a token, or another 4xx.
    Rejected,
    /// The object is not what the objectType/objectFormat asks for.
    Content,
}

impl FetchErrorKind {
    /// Stable code: a metrics label and the first word of the message the pod owner reads.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotFound => "KeyVaultObjectNotFound",
            Self::Forbidden => "KeyVaultForbidden",
            Self::Disabled => "KeyVaultObjectDisabled",
            Self::Throttled => "KeyVaultThrottled",
            Self::Unavailable => "KeyVaultUnavailable",
            Self::Authentication => "AuthenticationFailed",
            Self::Rejected => "KeyVaultRequestRejected",
            Self::Content => "KeyVaultObjectContentInvalid",
        }
    }
}

/// A failed fetch, without any secret value: what happened and what Key Vault said.
#[derive(Debug, Clone)]
pub struct FetchError {
    /// Classification.
    pub kind: FetchErrorKind,
    /// HTTP status, when there was a response.
    pub status: Option<u16>,
    /// Key Vault's error code and inner code (`Forbidden/ForbiddenByRbac`).
    pub service_code: Option<String>,
    /// Key Vault's or Entra ID's message, shortened.
    pub message: String,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.service_code) {
            (Some(s), Some(c)) => write!(f, "Key Vault answered {s} {c}: {}", self.message),
            (Some(s), None) => write!(f, "Key Vault answered {s}: {}", self.message),
            _ => f.write_str(&self.message),
        }?;
        match self.kind {
            FetchErrorKind::NotFound => f.write_str(" (check objectName, objectVersion and keyvaultName)"),
            FetchErrorKind::Forbidden => f.write_str(
                " (grant this identity get permission on the object, and check the vault's firewall)",
            ),
            FetchErrorKind::Disabled => f.write_str(" (enable the object or pin an enabled objectVersion)"),
            FetchErrorKind::Throttled => {
                f.write_str(" (Key Vault is throttling; the driver will retry the mount)")
            }
            _ => Ok(()),
        }
    }
}

impl FetchError {
    fn content(message: impl Into<String>) -> Self {
        Self { kind: FetchErrorKind::Content, status: None, service_code: None, message: message.into() }
    }
}

/// A secret as read.
pub struct SecretValue {
    /// The value.
    pub value: Zeroizing<String>,
    /// contentType.
    pub content_type: Option<String>,
    /// Set on the secret backing a certificate.
    pub kid: Option<String>,
    /// Version id.
    pub version: String,
}

/// A key's public parameters as read (JWK).
pub struct KeyValue {
    /// kty: RSA, RSA-HSM, EC, EC-HSM, oct...
    pub kty: String,
    /// crv for EC.
    pub crv: Option<String>,
    /// RSA modulus.
    pub n: Option<Vec<u8>>,
    /// RSA exponent.
    pub e: Option<Vec<u8>>,
    /// EC x.
    pub x: Option<Vec<u8>>,
    /// EC y.
    pub y: Option<Vec<u8>>,
    /// Version id.
    pub version: String,
}

/// A certificate as read.
pub struct CertValue {
    /// DER of the leaf.
    pub cer: Vec<u8>,
    /// Version id.
    pub version: String,
}

/// A fetched object.
pub enum Fetched {
    /// secret.
    Secret(SecretValue),
    /// key.
    Key(KeyValue),
    /// cert.
    Cert(CertValue),
}

impl Fetched {
    /// The version id.
    pub fn version(&self) -> &str {
        match self {
            Fetched::Secret(s) => &s.version,
            Fetched::Key(k) => &k.version,
            Fetched::Cert(c) => &c.version,
        }
    }
}

/// One listed version: (created, version id, enabled). The three object kinds list versions with
/// attribute types of their own but the same three facts.
type VersionRow = (i64, String, bool);

fn version_row(created: Option<time::OffsetDateTime>, id: Option<&str>, enabled: Option<bool>) -> VersionRow {
    (created.map(|t| t.unix_timestamp()).unwrap_or_default(), version_of(id), enabled.unwrap_or(true))
}

/// Last path segment of a Key Vault id URL: the version.
pub fn version_of(id: Option<&str>) -> String {
    id.unwrap_or_default().trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned()
}

/// Classifies an SDK error. Also returns how long the service asked us to wait.
fn classify(e: &azure_core::Error) -> (FetchError, Option<Duration>, bool) {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let said = ServiceError::read(e);
            let disabled = said.code.as_deref().is_some_and(|c| c.contains("Disabled"));
            let (kind, retryable) = match *status {
                StatusCode::NotFound => (FetchErrorKind::NotFound, false),
                StatusCode::Forbidden if disabled => (FetchErrorKind::Disabled, false),
                StatusCode::Forbidden => (FetchErrorKind::Forbidden, false),
                StatusCode::TooManyRequests => (FetchErrorKind::Throttled, true),
                s if u16::from(s) >= 500 => (FetchErrorKind::Unavailable, true),
                StatusCode::RequestTimeout => (FetchErrorKind::Unavailable, true),
                _ if disabled => (FetchErrorKind::Disabled, false),
                _ => (FetchErrorKind::Rejected, false),
            };
            (
                FetchError { kind, status: said.status, service_code: said.code, message: said.message },
                said.retry_after,
                retryable,
            )
        }
        ErrorKind::Credential => (
            FetchError {
                kind: FetchErrorKind::Authentication,
                status: None,
                service_code: None,
                message: format!("could not get an Entra ID token: {}", sanitize(&e.to_string())),
            },
            None,
            false,
        ),
        ErrorKind::Io | ErrorKind::Connection => (
            FetchError {
                kind: FetchErrorKind::Unavailable,
                status: None,
                service_code: None,
                message: format!("cannot reach Key Vault: {}", sanitize(&e.to_string())),
            },
            None,
            true,
        ),
        _ => {
            // Token acquisition failures surface wrapped by the bearer policy.
            let text = e.to_string();
            let kind = if text.contains("Credential") || text.contains("token") {
                FetchErrorKind::Authentication
            } else {
                FetchErrorKind::Rejected
            };
            (FetchError { kind, status: None, service_code: None, message: sanitize(&text) }, None, false)
        }
    }
}

/// Runs `op` with the bounded retry, counting every attempt in the metrics.
async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    metrics: &Metrics,
    operation: &'static str,
    mut op: F,
) -> Result<T, FetchError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = azure_core::Result<T>>,
{
    let start = Instant::now();
    let mut backoff = policy.initial_backoff;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Ok(v) => {
                metrics.keyvault_request(operation, "ok");
                return Ok(v);
            }
            Err(e) => {
                let (mut err, retry_after, retryable) = classify(&e);
                metrics.keyvault_request(operation, err.kind.code());
                let delay = retry_after.unwrap_or(backoff);
                let waited = start.elapsed();
                if !retryable || attempt >= policy.max_attempts || waited + delay > policy.max_total_wait {
                    if retryable {
                        err.message = format!(
                            "{} (gave up after {attempt} attempts and {:.1} s; the next wait would have been {} s)",
                            err.message,
                            waited.as_secs_f64(),
                            delay.as_secs()
                        );
                    }
                    return Err(err);
                }
                tracing::debug!(
                    operation,
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "retrying Key Vault"
                );
                tokio::time::sleep(delay).await;
                backoff = (backoff * 2).min(Duration::from_secs(8));
            }
        }
    }
}

/// Reads one object version (None = latest).
pub async fn fetch(
    clients: &VaultClients,
    object_type: ObjectType,
    name: &str,
    version: Option<&str>,
    policy: RetryPolicy,
    metrics: &Metrics,
) -> Result<Fetched, FetchError> {
    match object_type {
        ObjectType::Secret => {
            let s = with_retry(policy, metrics, "get_secret", || async {
                let opts = SecretClientGetSecretOptions {
                    secret_version: version.map(str::to_owned),
                    ..Default::default()
                };
                clients.secrets.get_secret(name, Some(opts)).await?.into_model()
            })
            .await?;
            if s.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
                return Err(FetchError {
                    kind: FetchErrorKind::Disabled,
                    status: None,
                    service_code: None,
                    message: "the secret is disabled".into(),
                });
            }
            let version = version_of(s.id.as_deref());
            let value = Zeroizing::new(s.value.unwrap_or_default());
            Ok(Fetched::Secret(SecretValue { value, content_type: s.content_type, kid: s.kid, version }))
        }
        ObjectType::Key => {
            let k = with_retry(policy, metrics, "get_key", || async {
                let opts =
                    KeyClientGetKeyOptions { key_version: version.map(str::to_owned), ..Default::default() };
                clients.keys.get_key(name, Some(opts)).await?.into_model()
            })
            .await?;
            let jwk =
                k.key.ok_or_else(|| FetchError::content("Key Vault returned a key without key material"))?;
            Ok(Fetched::Key(KeyValue {
                kty: jwk.kty.as_ref().map(|t| t.to_string()).unwrap_or_default(),
                crv: jwk.crv.as_ref().map(|c| c.to_string()),
                n: jwk.n,
                e: jwk.e,
                x: jwk.x,
                y: jwk.y,
                version: version_of(jwk.kid.as_deref()),
            }))
        }
        ObjectType::Cert => {
            let c = with_retry(policy, metrics, "get_certificate", || async {
                let opts = CertificateClientGetCertificateOptions {
                    certificate_version: version.map(str::to_owned),
                    ..Default::default()
                };
                clients.certificates.get_certificate(name, Some(opts)).await?.into_model()
            })
            .await?;
            let cer = c.cer.ok_or_else(|| {
                FetchError::content("Key Vault returned a certificate without its DER (cer)")
            })?;
            Ok(Fetched::Cert(CertValue { cer, version: version_of(c.id.as_deref()) }))
        }
    }
}

/// The enabled versions of an object, newest first (by creation time).
pub async fn list_versions(
    clients: &VaultClients,
    object_type: ObjectType,
    name: &str,
    policy: RetryPolicy,
    metrics: &Metrics,
) -> Result<Vec<String>, FetchError> {
    let items: Vec<VersionRow> = match object_type {
        ObjectType::Secret => {
            with_retry(policy, metrics, "list_versions", || async {
                let opts = SecretClientListSecretPropertiesVersionsOptions {
                    maxresults: Some(25),
                    ..Default::default()
                };
                let pager = clients.secrets.list_secret_properties_versions(name, Some(opts))?;
                let items: Vec<_> = pager.try_collect().await?;
                Ok(items
                    .into_iter()
                    .map(|p| {
                        let a = p.attributes.unwrap_or_default();
                        version_row(a.created, p.id.as_deref(), a.enabled)
                    })
                    .collect())
            })
            .await?
        }
        ObjectType::Key => {
            with_retry(policy, metrics, "list_versions", || async {
                let pager = clients.keys.list_key_properties_versions(name, None)?;
                let items: Vec<_> = pager.try_collect().await?;
                Ok(items
                    .into_iter()
                    .map(|p| {
                        let a = p.attributes.unwrap_or_default();
                        version_row(a.created, p.kid.as_deref(), a.enabled)
                    })
                    .collect())
            })
            .await?
        }
        ObjectType::Cert => {
            with_retry(policy, metrics, "list_versions", || async {
                let pager = clients.certificates.list_certificate_properties_versions(name, None)?;
                let items: Vec<_> = pager.try_collect().await?;
                Ok(items
                    .into_iter()
                    .map(|p| {
                        let a = p.attributes.unwrap_or_default();
                        version_row(a.created, p.id.as_deref(), a.enabled)
                    })
                    .collect())
            })
            .await?
        }
    };
    let mut items: Vec<_> = items.into_iter().filter(|(_, v, enabled)| *enabled && !v.is_empty()).collect();
    // Newest first; ties broken by id so the order is stable.
    items.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    Ok(items.into_iter().map(|(_, v, _)| v).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_last_segment() {
        assert_eq!(version_of(Some("https://kv.vault.azure.net/secrets/a/0123abcd")), "0123abcd");
        assert_eq!(version_of(None), "");
    }
}
