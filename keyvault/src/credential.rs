//! The Entra ID credential of a binary that talks to Key Vault on its own behalf (the CLI's rotation job, the
//! unseal controller's sealing keys), read from the environment as the SDK's credentials and Azure's workload
//! identity webhook set it: `AZURE_FEDERATED_TOKEN_FILE` (workload identity, with `AZURE_TENANT_ID` and
//! `AZURE_CLIENT_ID`), else `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` (a service principal).

use std::sync::Arc;

use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, ClientSecretCredential, ClientSecretCredentialOptions,
    WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
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
