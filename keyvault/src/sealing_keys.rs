//! Sealing key pairs kept in Azure Key Vault, shared by `arcseal-controller unseal --key-vault-url` (load at start,
//! create on renewal) and the CLI (`arcseal unseal/rotate --key-vault-url`, `arcseal keys import`).
//!
//! Storage form: one **Key Vault secret** per key pair, named `<prefix>-<first 32 hex digits of the key's
//! fingerprint>`, whose value is the PEM bundle sealed-secrets keeps in its key Secret: the PKCS#1 `RSA PRIVATE KEY`
//! block (`tls.key`) followed by the self-signed `CERTIFICATE` (`tls.crt`); content type
//! [`CONTENT_TYPE`] (`application/x-pem-file`, what Key Vault itself uses for PEM certificates) and tags
//! [`TAG_KIND`]`=`[`TAG_KIND_VALUE`] and [`TAG_FINGERPRINT`]`=<sha256 of the public key>`. Why secrets and not
//! certificates with exportable keys: a secret keeps the exact bytes the cluster uses (a certificate import re-wraps
//! the key as PKCS#8 and Key Vault re-issues on renewal by its own policy, not ours); reading needs only the `get` and
//! `list` secret permissions an operator already grants the CSI provider; and the same object can be mounted by the
//! CSI driver for break-glass recovery. Naming by fingerprint makes a second import of the same key a no-op, and two
//! clusters with different prefixes never see each other's keys.
//!
//! A version that is disabled (or a secret whose latest version is) is reported in [`Listing::disabled`], never
//! loaded. Only the latest version of each secret is read: a key never changes, so a secret has one version in normal
//! use.
//!
//! Retries: the SDK's retry policy must be off for the client handed in ([`VaultKeys::new`] takes options the
//! caller built with `RetryOptions::none()`); a 429 or 5xx is retried here after `Retry-After` (or a doubling
//! backoff) while the total wait stays under [`RetryPolicy::max_total_wait`].
//!
//! Key material only ever travels in [`Zeroizing`] strings; no error text here is derived from a secret's value.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arcseal_crypto::{Certificate, PrivateKey};
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, HttpClient, RequestContent, RetryOptions, StatusCode, Transport};
use azure_security_keyvault_secrets::models::{SecretClientListSecretPropertiesOptions, SetSecretParameters};
use azure_security_keyvault_secrets::{ResourceExt as _, SecretClient, SecretClientOptions};
use futures::TryStreamExt as _;
use zeroize::Zeroizing;

use crate::credential::Identity;
use crate::service_error::{ServiceError, sanitize};

/// Content type of a key pair secret.
pub const CONTENT_TYPE: &str = "application/x-pem-file";
/// Tag marking a secret as an arcseal sealing key pair.
pub const TAG_KIND: &str = "arcseal-sealing-key";
/// Value of [`TAG_KIND`] for the current storage form.
pub const TAG_KIND_VALUE: &str = "v1";
/// Tag holding the key's fingerprint (lowercase hex SHA-256 of the public key's SubjectPublicKeyInfo).
pub const TAG_FINGERPRINT: &str = "arcseal-fingerprint";
/// The default name prefix.
pub const DEFAULT_PREFIX: &str = "sealed-secrets-key";
/// Longest prefix: Key Vault names are at most 127 characters, and the suffix is `-` plus 32 hex digits.
pub const MAX_PREFIX_LEN: usize = 127 - 33;

/// Checks a name prefix: 1 to [`MAX_PREFIX_LEN`] of `0-9 a-z A-Z -`, as Key Vault secret names allow.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty()
        || prefix.len() > MAX_PREFIX_LEN
        || !prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(format!(
            "key name prefix {prefix:?}: use 1-{MAX_PREFIX_LEN} characters of 0-9, a-z, A-Z and - \
             (Key Vault secret names; the key's fingerprint is appended)"
        ));
    }
    Ok(())
}

/// The secret name of the key with fingerprint `fingerprint_hex` (64 lowercase hex digits) under `prefix`.
pub fn secret_name(prefix: &str, fingerprint_hex: &str) -> String {
    let short: String = fingerprint_hex.chars().take(32).collect();
    format!("{prefix}-{short}")
}

/// Whether `name` is a key pair secret name under `prefix` (and not under a longer prefix sharing its start:
/// `prod` does not claim `prod-eu-<hex>`).
pub fn is_key_name(prefix: &str, name: &str) -> bool {
    name.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// SDK client options for sealing keys: `http` as transport, Entra ID at `authority_host`
/// (`https://login.microsoftonline.com` in the public cloud), and the SDK's retry off (see the module doc).
pub fn client_options(http: Arc<dyn HttpClient>, authority_host: &str) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(http)),
        cloud: Some(Arc::new(crate::cloud::Endpoints::new(authority_host, "").cloud_configuration())),
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

/// [`VaultKeys`] of `vault_url` under `prefix`, authenticated as `identity` ([`crate::credential`]).
pub fn connect(
    vault_url: &str,
    prefix: &str,
    authority_host: &str,
    identity: &Identity,
    http: Arc<dyn HttpClient>,
    retry: RetryPolicy,
) -> Result<VaultKeys, String> {
    let options = client_options(http, authority_host);
    let credential = identity
        .credential(
            "Key Vault sealing keys",
            ClientOptions { retry: RetryOptions::default(), ..options.clone() },
        )
        .map_err(|e| e.to_string())?;
    VaultKeys::new(vault_url, prefix, credential, options, retry).map_err(|e| e.to_string())
}

pub use crate::retry::RetryPolicy;

/// What went wrong, as an operator must act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultErrorKind {
    /// No answer (connection refused, DNS, TLS, timeout) or 5xx, still after the bounded wait.
    Unreachable,
    /// 429, still after the bounded wait.
    Throttled,
    /// 403: the identity lacks a permission ([`VaultError::permission`] says which).
    Forbidden,
    /// Entra ID refused a token.
    Authentication,
    /// 404 on the vault, or another 4xx.
    Rejected,
    /// A key pair secret that is not what [`CONTENT_TYPE`] promises.
    Content,
}

impl VaultErrorKind {
    /// Stable code for metrics labels, event reasons and the start of messages.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unreachable => "KeyVaultUnreachable",
            Self::Throttled => "KeyVaultThrottled",
            Self::Forbidden => "KeyVaultForbidden",
            Self::Authentication => "KeyVaultAuthenticationFailed",
            Self::Rejected => "KeyVaultRequestRejected",
            Self::Content => "KeyVaultKeyInvalid",
        }
    }
}

/// A failed Key Vault operation on sealing keys. Never carries text derived from a key.
#[derive(Debug, Clone)]
pub struct VaultError {
    /// Classification.
    pub kind: VaultErrorKind,
    /// The vault URL.
    pub vault: String,
    /// The operation, as Key Vault's permission model names it: `secrets list`, `secrets get`, `secrets set`.
    pub permission: &'static str,
    /// The secret concerned, if one.
    pub secret: Option<String>,
    /// What the service said (status, code, message), shortened and control-free.
    pub message: String,
}

impl fmt::Display for VaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: Key Vault {} ({}", self.kind.code(), self.vault, self.permission)?;
        if let Some(s) = &self.secret {
            write!(f, " {s}")?;
        }
        write!(f, "): {}", self.message)?;
        match self.kind {
            VaultErrorKind::Forbidden => write!(
                f,
                " (grant this identity the {} permission on the vault, e.g. the Key Vault Secrets Officer role, \
                 and check the vault's firewall)",
                self.permission
            ),
            VaultErrorKind::Throttled => f.write_str(" (Key Vault is throttling; retried later)"),
            VaultErrorKind::Unreachable => f.write_str(" (check the vault URL, DNS and network policy)"),
            VaultErrorKind::Authentication => {
                f.write_str(" (check the workload identity or service principal settings)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for VaultError {}

/// One key pair as stored.
pub struct StoredKey {
    /// Secret name.
    pub name: String,
    /// Version id of the value read.
    pub version: String,
    /// The PEM bundle: private key then certificate.
    pub pem: Zeroizing<String>,
}

impl StoredKey {
    /// The key pair: the private key, its certificate, checked to belong together and to this secret's name
    /// (under `prefix`). The error names what is wrong, never the key.
    pub fn pair(&self, prefix: &str) -> Result<(PrivateKey, Certificate), String> {
        let key = PrivateKey::from_pem(self.pem.as_bytes()).map_err(|e| format!("private key: {e}"))?;
        let cert = Certificate::from_pem(self.pem.as_bytes()).map_err(|e| format!("certificate: {e}"))?;
        if cert.fingerprint() != key.fingerprint() {
            return Err("the certificate is not the private key's".into());
        }
        if secret_name(prefix, &key.fingerprint().to_string()) != self.name {
            return Err("the name does not match the key's fingerprint".into());
        }
        Ok((key, cert))
    }
}

/// The value stored for a key pair: the PKCS#1 private key, then the certificate.
pub fn bundle(key: &PrivateKey, cert: &Certificate) -> Result<Zeroizing<String>, String> {
    let key_pem = key.to_pkcs1_pem().map_err(|e| format!("encoding the key: {e}"))?;
    let cert_pem = cert.to_pem();
    let mut out = Zeroizing::new(String::with_capacity(key_pem.len() + cert_pem.len()));
    out.push_str(&key_pem);
    out.push_str(&cert_pem);
    Ok(out)
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey").field("name", &self.name).field("version", &self.version).finish()
    }
}

/// Everything under a prefix.
#[derive(Debug, Default)]
pub struct Listing {
    /// Enabled key pairs, by secret name order.
    pub keys: Vec<StoredKey>,
    /// Names of key pair secrets whose latest version is disabled.
    pub disabled: Vec<String>,
}

/// The key pairs of one vault under one prefix.
pub struct VaultKeys {
    client: SecretClient,
    vault: String,
    prefix: String,
    retry: RetryPolicy,
}

impl fmt::Debug for VaultKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeys").field("vault", &self.vault).field("prefix", &self.prefix).finish()
    }
}

impl VaultKeys {
    /// A client for `vault_url` (e.g. `https://kv1.vault.azure.net/`) under `prefix`; `options` from
    /// [`client_options`] (the SDK's retry off, see the module doc).
    pub fn new(
        vault_url: &str,
        prefix: &str,
        credential: Arc<dyn TokenCredential>,
        options: ClientOptions,
        retry: RetryPolicy,
    ) -> Result<Self, VaultError> {
        let options = SecretClientOptions { client_options: options, ..Default::default() };
        validate_prefix(prefix).map_err(|message| VaultError {
            kind: VaultErrorKind::Rejected,
            vault: vault_url.to_owned(),
            permission: "configuration",
            secret: None,
            message,
        })?;
        let client = SecretClient::new(vault_url, credential, Some(options)).map_err(|e| VaultError {
            kind: VaultErrorKind::Rejected,
            vault: vault_url.to_owned(),
            permission: "configuration",
            secret: None,
            message: ServiceError::read(&e).to_string(),
        })?;
        Ok(Self { client, vault: vault_url.to_owned(), prefix: prefix.to_owned(), retry })
    }

    /// The vault URL.
    pub fn vault(&self) -> &str {
        &self.vault
    }

    /// The name prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Lists every key pair secret under the prefix and reads the enabled ones.
    pub async fn load(&self) -> Result<Listing, VaultError> {
        let names = self
            .retrying("secrets list", None, || async {
                let opts =
                    SecretClientListSecretPropertiesOptions { maxresults: Some(25), ..Default::default() };
                let items: Vec<_> = self.client.list_secret_properties(Some(opts))?.try_collect().await?;
                Ok(items)
            })
            .await?;
        let mut listing = Listing::default();
        let mut wanted = Vec::new();
        for p in names {
            let Ok(id) = p.resource_id() else { continue };
            let name = id.name;
            if !is_key_name(&self.prefix, &name) {
                continue;
            }
            let tagged = p.tags.as_ref().and_then(|t| t.get(TAG_KIND)).is_some_and(|v| v == TAG_KIND_VALUE);
            if !tagged {
                continue;
            }
            if p.attributes.and_then(|a| a.enabled) == Some(false) {
                listing.disabled.push(name);
            } else {
                wanted.push(name);
            }
        }
        wanted.sort();
        listing.disabled.sort();
        for name in wanted {
            match self.get(&name).await {
                Ok(key) => listing.keys.push(key),
                // Disabled between the listing and the read.
                Err(e) if e.kind == VaultErrorKind::Rejected && e.message.contains("Disabled") => {
                    listing.disabled.push(name)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(listing)
    }

    /// Reads the latest version of one key pair secret.
    pub async fn get(&self, name: &str) -> Result<StoredKey, VaultError> {
        let secret = self
            .retrying("secrets get", Some(name), || async {
                self.client.get_secret(name, None).await?.into_model()
            })
            .await?;
        let version = secret.resource_id().ok().and_then(|id| id.version).unwrap_or_default();
        let pem = Zeroizing::new(secret.value.unwrap_or_default());
        if secret.content_type.as_deref() != Some(CONTENT_TYPE) || !pem.contains("-----BEGIN ") {
            return Err(self.error(
                VaultErrorKind::Content,
                "secrets get",
                Some(name),
                format!("not a PEM key pair (content type must be {CONTENT_TYPE})"),
            ));
        }
        Ok(StoredKey { name: name.to_owned(), version, pem })
    }

    /// Stores a key pair as a new secret version; returns the secret name.
    pub async fn put_pair(&self, key: &PrivateKey, cert: &Certificate) -> Result<String, VaultError> {
        let fingerprint = key.fingerprint().to_string();
        let pem = bundle(key, cert)
            .map_err(|message| self.error(VaultErrorKind::Content, "secrets set", None, message))?;
        self.put(&fingerprint, &pem).await
    }

    /// Stores a PEM bundle for the key with `fingerprint_hex` as a new secret version; returns the secret name.
    async fn put(&self, fingerprint_hex: &str, pem: &Zeroizing<String>) -> Result<String, VaultError> {
        let name = secret_name(&self.prefix, fingerprint_hex);
        let tags = HashMap::from([
            (TAG_KIND.to_owned(), TAG_KIND_VALUE.to_owned()),
            (TAG_FINGERPRINT.to_owned(), fingerprint_hex.to_owned()),
        ]);
        self.retrying("secrets set", Some(&name), || async {
            let parameters = SetSecretParameters {
                value: Some(pem.as_str().to_owned()),
                content_type: Some(CONTENT_TYPE.to_owned()),
                tags: Some(tags.clone()),
                ..Default::default()
            };
            let body: RequestContent<SetSecretParameters> = parameters.try_into()?;
            self.client.set_secret(&name, body, None).await?.into_model()
        })
        .await?;
        Ok(name)
    }

    fn error(
        &self,
        kind: VaultErrorKind,
        permission: &'static str,
        secret: Option<&str>,
        message: String,
    ) -> VaultError {
        VaultError { kind, vault: self.vault.clone(), permission, secret: secret.map(str::to_owned), message }
    }

    async fn retrying<T, F, Fut>(
        &self,
        permission: &'static str,
        secret: Option<&str>,
        mut op: F,
    ) -> Result<T, VaultError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = azure_core::Result<T>>,
    {
        let start = Instant::now();
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let (kind, retry_after, message) = classify(&e);
            let retryable = matches!(kind, VaultErrorKind::Unreachable | VaultErrorKind::Throttled);
            let delay = retry_after.unwrap_or(backoff);
            let waited = start.elapsed();
            if !retryable || attempt >= self.retry.max_attempts || waited + delay > self.retry.max_total_wait
            {
                let message = if retryable {
                    format!("{message} (gave up after {attempt} attempts and {:.1} s)", waited.as_secs_f64())
                } else {
                    message
                };
                return Err(self.error(kind, permission, secret, message));
            }
            let sleep =
                azure_core::time::Duration::try_from(delay).unwrap_or(azure_core::time::Duration::ZERO);
            azure_core::sleep(sleep).await;
            backoff = (backoff * 2).min(Duration::from_secs(8));
        }
    }
}

/// Classifies an SDK error: kind, the service's `Retry-After`, and a message free of request data.
fn classify(e: &azure_core::Error) -> (VaultErrorKind, Option<Duration>, String) {
    match e.kind() {
        ErrorKind::HttpResponse { status, .. } => {
            let said = ServiceError::read(e);
            let kind = match *status {
                StatusCode::TooManyRequests => VaultErrorKind::Throttled,
                StatusCode::Forbidden if !said.code.as_deref().is_some_and(|c| c.contains("Disabled")) => {
                    VaultErrorKind::Forbidden
                }
                StatusCode::Unauthorized => VaultErrorKind::Authentication,
                StatusCode::RequestTimeout => VaultErrorKind::Unreachable,
                s if u16::from(s) >= 500 => VaultErrorKind::Unreachable,
                _ => VaultErrorKind::Rejected,
            };
            (kind, said.retry_after, said.to_string())
        }
        ErrorKind::Credential => (
            VaultErrorKind::Authentication,
            None,
            format!("could not get an Entra ID token: {}", sanitize(&e.to_string())),
        ),
        ErrorKind::Io | ErrorKind::Connection => (
            VaultErrorKind::Unreachable,
            None,
            format!("cannot reach the vault: {}", sanitize(&e.to_string())),
        ),
        _ => {
            let text = sanitize(&e.to_string());
            let kind = if text.contains("Credential") || text.contains("token") {
                VaultErrorKind::Authentication
            } else {
                VaultErrorKind::Rejected
            };
            (kind, None, text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefix_plus_fingerprint_and_prefixes_do_not_overlap() {
        let fp = "0123456789abcdef".repeat(4);
        let name = secret_name("prod", &fp);
        assert_eq!(name, "prod-0123456789abcdef0123456789abcdef");
        assert!(is_key_name("prod", &name));
        assert!(!is_key_name("prod", &secret_name("prod-eu", &fp)), "a longer prefix is another cluster's");
        assert!(!is_key_name("prod", "prod-db-password"));
        assert!(validate_prefix("sealed-secrets-key").is_ok());
        for bad in ["", "a_b", "a.b", &"x".repeat(MAX_PREFIX_LEN + 1)] {
            assert!(validate_prefix(bad).unwrap_err().contains("prefix"), "{bad:?}");
        }
        assert!(secret_name(&"x".repeat(MAX_PREFIX_LEN), &fp).len() <= 127);
    }

    #[test]
    fn forbidden_names_the_vault_and_the_permission() {
        let e = VaultError {
            kind: VaultErrorKind::Forbidden,
            vault: "https://kv1.vault.azure.net/".into(),
            permission: "secrets list",
            secret: None,
            message: "403 Forbidden/AccessDenied: no".into(),
        };
        let text = e.to_string();
        assert!(text.starts_with("KeyVaultForbidden: Key Vault https://kv1.vault.azure.net/"), "{text}");
        assert!(text.contains("grant this identity the secrets list permission"), "{text}");
    }
}
