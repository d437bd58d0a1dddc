//! The Entra ID credential of a binary that talks to Key Vault on its own behalf (the CLI's rotation job, the
//! unseal controller's sealing keys). [`Identity::Environment`] reads it from the environment as the SDK's
//! credentials and Azure's workload identity webhook set it: `AZURE_FEDERATED_TOKEN_FILE` (workload identity, with
//! `AZURE_TENANT_ID` and `AZURE_CLIENT_ID`), else `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (a
//! service principal). [`Identity::Managed`] is the managed identity of the machine it runs on (an AKS node's
//! kubelet identity, a self-hosted pipeline agent's VM), asked of IMDS as the CSI provider's `useVMManagedIdentity`
//! does; it is chosen by a flag, never guessed, since asking IMDS off Azure only times out.

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    ManagedIdentityCredential, ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use crate::service_error::ServiceError;

/// Why no credential could be made. The text names variables, never their values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(pub String);

fn env_var(name: &str, purpose: &str) -> Result<String, CredentialError> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        CredentialError(format!(
            "{name} is not set: {purpose} authenticates with AZURE_TENANT_ID, AZURE_CLIENT_ID and \
             AZURE_CLIENT_SECRET (service principal) or AZURE_FEDERATED_TOKEN_FILE (workload identity)"
        ))
    })
}

/// Who a binary is to Entra ID when it calls Key Vault.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Identity {
    /// Workload identity or a service principal, as the environment describes ([`from_env`]).
    #[default]
    Environment,
    /// The machine's managed identity through IMDS: the system-assigned one, or the user-assigned one with this
    /// client id.
    Managed {
        /// Client id of a user-assigned identity; None for the system-assigned one.
        client_id: Option<String>,
    },
}

/// The values the identity flags take (`--key-vault-identity`).
pub const IDENTITY_KINDS: [&str; 2] = ["environment", "managed-identity"];

impl Identity {
    /// From the two flags both binaries take: `--key-vault-identity` (`kind`, one of [`IDENTITY_KINDS`]) and
    /// `--key-vault-managed-identity-client-id` (`client_id`, only meaningful with `managed-identity`).
    pub fn from_flags(kind: &str, client_id: Option<&str>) -> Result<Self, CredentialError> {
        const FLAG: &str = "--key-vault-identity";
        let client_id = client_id.map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned);
        match kind {
            "managed-identity" => Ok(Self::Managed { client_id }),
            "environment" if client_id.is_some() => Err(CredentialError(format!(
                "a managed identity client id was given but {FLAG} is environment: pass {FLAG} managed-identity \
                 to use the user-assigned identity, or drop the client id"
            ))),
            "environment" => Ok(Self::Environment),
            other => Err(CredentialError(format!(
                "{FLAG} {other:?}: expected one of {}",
                IDENTITY_KINDS.join(", ")
            ))),
        }
    }

    /// The credential; `purpose` ("Key Vault rotation") starts the error when an environment variable is missing.
    /// `options` carry the transport and the cloud (authority host).
    pub fn credential(
        &self,
        purpose: &str,
        options: ClientOptions,
    ) -> Result<Arc<dyn TokenCredential>, CredentialError> {
        match self {
            Self::Environment => from_env(purpose, options),
            Self::Managed { client_id } => {
                let c = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.clone().map(UserAssignedId::ClientId),
                    client_options: options,
                }))
                .map_err(|e| {
                    CredentialError(format!(
                        "cannot create the managed identity credential: {}",
                        ServiceError::read(&e)
                    ))
                })?;
                Ok(c)
            }
        }
    }
}

/// The credential the environment describes; `purpose` ("Key Vault rotation") starts the error when a variable is
/// missing. `options` carry the transport and the cloud (authority host).
pub fn from_env(purpose: &str, options: ClientOptions) -> Result<Arc<dyn TokenCredential>, CredentialError> {
    let err = |what: &str, e: azure_core::Error| {
        CredentialError(format!("cannot create the {what} credential: {}", ServiceError::read(&e)))
    };
    if std::env::var_os("AZURE_FEDERATED_TOKEN_FILE").is_some_and(|v| !v.is_empty()) {
        let c = WorkloadIdentityCredential::new(Some(WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options: options },
            ..Default::default()
        }))
        .map_err(|e| err("workload identity", e))?;
        return Ok(c);
    }
    let tenant = env_var("AZURE_TENANT_ID", purpose)?;
    let client_id = env_var("AZURE_CLIENT_ID", purpose)?;
    let secret = env_var("AZURE_CLIENT_SECRET", purpose)?;
    let c = ClientSecretCredential::new(
        &tenant,
        client_id,
        Secret::new(secret),
        Some(ClientSecretCredentialOptions { client_options: options }),
    )
    .map_err(|e| err("service principal", e))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_flags() {
        assert_eq!(Identity::from_flags("environment", None).unwrap(), Identity::Environment);
        assert_eq!(Identity::from_flags("environment", Some("  ")).unwrap(), Identity::Environment);
        assert_eq!(
            Identity::from_flags("managed-identity", None).unwrap(),
            Identity::Managed { client_id: None }
        );
        assert_eq!(
            Identity::from_flags("managed-identity", Some(" 3c5a1f0e ")).unwrap(),
            Identity::Managed { client_id: Some("3c5a1f0e".into()) }
        );
        // A client id with the environment identity would be silently ignored: refused, naming the fix.
        let e = Identity::from_flags("environment", Some("3c5a1f0e")).unwrap_err().to_string();
        assert!(e.contains("--key-vault-identity managed-identity"), "{e}");
        let e = Identity::from_flags("msi", None).unwrap_err().to_string();
        assert!(e.contains("\"msi\"") && e.contains("environment, managed-identity"), "{e}");
    }

    #[test]
    fn every_kind_parses() {
        for kind in IDENTITY_KINDS {
            assert!(Identity::from_flags(kind, None).is_ok(), "{kind}");
        }
    }
}
