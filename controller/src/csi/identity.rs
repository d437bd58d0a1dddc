//! Credentials per caller identity, and the Key Vault clients made with them.
//!
//! One credential (and one set of Key Vault clients per vault) is kept per [`IdentityKey`], so Entra ID tokens are
//! reused until shortly before they expire (the SDK's credentials and bearer policy refresh them), and a token
//! obtained for one identity is never attached to another identity's request.
//!
//! - Workload identity: the key is (authority, tenant, clientID, pod namespace, service account). The service account
//!   token arrives with every mount; the credential's [`ClientAssertion`] always hands Entra ID the newest one.
//! - Service principal: the key includes the client secret itself (kept in memory only, never printed), so a
//!   different secret for the same client id is a different identity.
//! - VM managed identity: node-wide by nature (IMDS answers any process on the node).

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::{ClientMethodOptions, ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientAssertion, ClientAssertionCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId,
};
use azure_security_keyvault_certificates::{CertificateClient, CertificateClientOptions};
use azure_security_keyvault_keys::{KeyClient, KeyClientOptions};
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use zeroize::Zeroizing;

use super::cloud::Endpoints;
use arcseal_keyvault::params::{IdentityRequest, PodInfo};

/// A string compared and hashed normally but never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(Zeroizing<String>);

impl Hash for Redacted {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_str().hash(state);
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who is asking: part of every cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdentityKey {
    /// Workload identity of one service account.
    Workload {
        /// Authority host URL.
        authority: String,
        /// Tenant.
        tenant: String,
        /// clientID.
        client_id: String,
        /// Pod namespace.
        namespace: String,
        /// Service account name.
        service_account: String,
    },
    /// A service principal and its secret.
    ServicePrincipal {
        /// Authority host URL.
        authority: String,
        /// Tenant.
        tenant: String,
        /// Client id.
        client_id: String,
        /// Client secret.
        secret: Redacted,
    },
    /// The node's managed identity.
    VmManagedIdentity {
        /// userAssignedIdentityID.
        user_assigned_id: Option<String>,
    },
}

impl IdentityKey {
    /// The key for a mount.
    pub fn new(identity: &IdentityRequest, tenant: &str, authority: &str, pod: &PodInfo) -> Self {
        match identity {
            IdentityRequest::Workload { client_id, .. } => IdentityKey::Workload {
                authority: authority.to_owned(),
                tenant: tenant.to_owned(),
                client_id: client_id.clone(),
                namespace: pod.namespace.clone(),
                service_account: pod.service_account.clone(),
            },
            IdentityRequest::ServicePrincipal { client_id, client_secret } => IdentityKey::ServicePrincipal {
                authority: authority.to_owned(),
                tenant: tenant.to_owned(),
                client_id: client_id.clone(),
                secret: Redacted(client_secret.clone()),
            },
            IdentityRequest::VmManagedIdentity { user_assigned_id } => {
                IdentityKey::VmManagedIdentity { user_assigned_id: user_assigned_id.clone() }
            }
        }
    }
}

/// The newest service account token of a workload identity.
#[derive(Default)]
pub struct LatestAssertion(RwLock<Zeroizing<String>>);

impl fmt::Debug for LatestAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LatestAssertion(<redacted>)")
    }
}

impl LatestAssertion {
    fn set(&self, token: &str) {
        let mut t = self.0.write().unwrap_or_else(|p| p.into_inner());
        if t.as_str() != token {
            *t = Zeroizing::new(token.to_owned());
        }
    }
}

#[derive(Debug, Clone)]
struct SharedAssertion(Arc<LatestAssertion>);

#[async_trait::async_trait]
impl ClientAssertion for SharedAssertion {
    async fn secret(&self, _: Option<ClientMethodOptions<'_>>) -> azure_core::Result<String> {
        Ok(self.0.0.read().unwrap_or_else(|p| p.into_inner()).as_str().to_owned())
    }
}

/// The three Key Vault clients of one vault, for one identity.
pub struct VaultClients {
    /// Secrets.
    pub secrets: SecretClient,
    /// Keys.
    pub keys: KeyClient,
    /// Certificates.
    pub certificates: CertificateClient,
}

struct IdentityEntry {
    credential: Arc<dyn TokenCredential>,
    assertion: Option<Arc<LatestAssertion>>,
    vaults: Mutex<HashMap<String, Arc<VaultClients>>>,
}

/// Credentials and clients, per identity.
pub struct Identities {
    transport: Transport,
    entries: Mutex<HashMap<IdentityKey, Arc<IdentityEntry>>>,
    max_entries: usize,
}

/// Why no client could be made (bad tenant or client id format, bad URL). `reason` is the SDK's description of the
/// parameter it refused; it never holds a credential.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The SDK refused to build a Key Vault client for this vault URL.
    #[error("cannot create a Key Vault client for {vault_url}: {reason}")]
    Vault {
        /// The vault URL.
        vault_url: String,
        /// What the SDK said.
        reason: String,
    },
    /// The SDK refused to build the credential of this identity mode.
    #[error("cannot create the {mode} credential: {reason}")]
    Credential {
        /// [`IdentityRequest::mode`].
        mode: &'static str,
        /// What the SDK said.
        reason: String,
    },
}

impl Identities {
    /// Credentials whose HTTP requests all go through `transport`.
    pub fn new(transport: Transport) -> Self {
        Self { transport, entries: Mutex::new(HashMap::new()), max_entries: 10_000 }
    }

    fn client_options(&self, endpoints: &Endpoints, retry: RetryOptions) -> ClientOptions {
        ClientOptions {
            transport: Some(self.transport.clone()),
            retry,
            cloud: Some(Arc::new(endpoints.cloud_configuration())),
            ..Default::default()
        }
    }

    /// The Key Vault clients for `vault_url` acting as `identity`.
    pub fn clients(
        &self,
        key: &IdentityKey,
        identity: &IdentityRequest,
        tenant: &str,
        endpoints: &Endpoints,
        vault_url: &str,
    ) -> Result<Arc<VaultClients>, ClientError> {
        let entry = {
            let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(e) = map.get(key) {
                e.clone()
            } else {
                if map.len() >= self.max_entries {
                    map.clear();
                }
                let e = Arc::new(self.new_entry(identity, tenant, endpoints)?);
                map.insert(key.clone(), e.clone());
                e
            }
        };
        if let (Some(a), IdentityRequest::Workload { assertion, .. }) = (&entry.assertion, identity) {
            a.set(assertion);
        }
        let mut vaults = entry.vaults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = vaults.get(vault_url) {
            return Ok(c.clone());
        }
        // Our own retry loop (keyvault.rs) honours Retry-After with a bounded total wait; the SDK's would sleep
        // for whatever the server says.
        let opts = || self.client_options(endpoints, RetryOptions::none());
        let err = |e: azure_core::Error| ClientError::Vault {
            vault_url: vault_url.to_owned(),
            reason: e.to_string(),
        };
        let clients = Arc::new(VaultClients {
            secrets: SecretClient::new(
                vault_url,
                entry.credential.clone(),
                Some(SecretClientOptions { client_options: opts(), ..Default::default() }),
            )
            .map_err(err)?,
            keys: KeyClient::new(
                vault_url,
                entry.credential.clone(),
                Some(KeyClientOptions { client_options: opts(), ..Default::default() }),
            )
            .map_err(err)?,
            certificates: CertificateClient::new(
                vault_url,
                entry.credential.clone(),
                Some(CertificateClientOptions { client_options: opts(), ..Default::default() }),
            )
            .map_err(err)?,
        });
        vaults.insert(vault_url.to_owned(), clients.clone());
        Ok(clients)
    }

    fn new_entry(
        &self,
        identity: &IdentityRequest,
        tenant: &str,
        endpoints: &Endpoints,
    ) -> Result<IdentityEntry, ClientError> {
        let retry = RetryOptions::exponential(azure_core::http::ExponentialRetryOptions {
            max_retries: 3,
            max_total_elapsed: azure_core::time::Duration::seconds(10),
            ..Default::default()
        });
        let client_options = self.client_options(endpoints, retry);
        let err =
            |e: azure_core::Error| ClientError::Credential { mode: identity.mode(), reason: e.to_string() };
        Ok(match identity {
            IdentityRequest::Workload { client_id, assertion } => {
                let latest = Arc::new(LatestAssertion::default());
                latest.set(assertion);
                let credential = ClientAssertionCredential::new(
                    tenant.to_owned(),
                    client_id.clone(),
                    SharedAssertion(latest.clone()),
                    Some(ClientAssertionCredentialOptions { client_options }),
                )
                .map_err(err)?;
                IdentityEntry { credential, assertion: Some(latest), vaults: Mutex::default() }
            }
            IdentityRequest::ServicePrincipal { client_id, client_secret } => {
                let credential = ClientSecretCredential::new(
                    tenant,
                    client_id.clone(),
                    Secret::new(client_secret.as_str().to_owned()),
                    Some(ClientSecretCredentialOptions { client_options }),
                )
                .map_err(err)?;
                IdentityEntry { credential, assertion: None, vaults: Mutex::default() }
            }
            IdentityRequest::VmManagedIdentity { user_assigned_id } => {
                let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: user_assigned_id.clone().map(UserAssignedId::ClientId),
                    client_options,
                }))
                .map_err(err)?;
                IdentityEntry { credential, assertion: None, vaults: Mutex::default() }
            }
        })
    }
}
