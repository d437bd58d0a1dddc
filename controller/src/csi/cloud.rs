//! Which Entra ID authority and Key Vault DNS suffix a mount uses.
//!
//! `cloudName` picks a known cloud; `AzureStackCloud` reads `activeDirectoryEndpoint` and `keyVaultDNSSuffix` from the
//! Azure environment JSON file named by `cloudEnvFileName` (the same file format Azure's provider reads). The provider's
//! own `--authority-host` and `--keyvault-dns-suffix` settings, when given, override both for every mount: they are the
//! operator's configuration for a private cloud.

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use serde::Deserialize;

use super::params::CloudName;

/// Resolved endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://login.microsoftonline.com` and the like, without a trailing slash.
    pub authority_host: String,
    /// `vault.azure.net` and the like.
    pub keyvault_dns_suffix: String,
}

impl Endpoints {
    /// The SDK's cloud configuration with this authority.
    pub fn cloud_configuration(&self) -> CloudConfiguration {
        let mut custom = CustomConfiguration::default();
        custom.authority_host = self.authority_host.clone();
        custom.into()
    }

    /// `https://<vault>.<suffix>/`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.{}/", self.keyvault_dns_suffix)
    }
}

/// Provider-wide overrides (`--authority-host`, `--keyvault-dns-suffix`).
#[derive(Debug, Clone, Default)]
pub struct CloudOverrides {
    /// Replaces every cloud's authority host.
    pub authority_host: Option<String>,
    /// Replaces every cloud's Key Vault DNS suffix.
    pub keyvault_dns_suffix: Option<String>,
}

/// Why the cloud could not be resolved.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cloudEnvFileName {path}: {reason}")]
pub struct CloudError {
    path: String,
    reason: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AzureEnvironmentFile {
    #[serde(default)]
    active_directory_endpoint: String,
    #[serde(default, rename = "keyVaultDNSSuffix")]
    key_vault_dns_suffix: String,
}

/// Largest environment file read.
const MAX_ENV_FILE: u64 = 64 * 1024;

/// Resolves the endpoints of a mount.
pub async fn resolve(cloud: &CloudName, overrides: &CloudOverrides) -> Result<Endpoints, CloudError> {
    let (authority, suffix) = match cloud {
        CloudName::Public => ("https://login.microsoftonline.com".to_owned(), "vault.azure.net".to_owned()),
        CloudName::UsGovernment => {
            ("https://login.microsoftonline.us".to_owned(), "vault.usgovcloudapi.net".to_owned())
        }
        CloudName::China => ("https://login.chinacloudapi.cn".to_owned(), "vault.azure.cn".to_owned()),
        CloudName::Stack { env_file } => {
            if let (Some(a), Some(s)) = (&overrides.authority_host, &overrides.keyvault_dns_suffix) {
                (a.clone(), s.clone())
            } else {
                read_env_file(env_file).await?
            }
        }
    };
    let authority_host = overrides.authority_host.clone().unwrap_or(authority);
    let keyvault_dns_suffix = overrides.keyvault_dns_suffix.clone().unwrap_or(suffix);
    Ok(Endpoints {
        authority_host: authority_host.trim_end_matches('/').to_owned(),
        keyvault_dns_suffix: keyvault_dns_suffix.trim_start_matches('.').to_owned(),
    })
}

async fn read_env_file(path: &str) -> Result<(String, String), CloudError> {
    let err = |reason: String| CloudError { path: path.to_owned(), reason };
    let meta = tokio::fs::metadata(path).await.map_err(|e| err(format!("cannot read: {e}")))?;
    if !meta.is_file() || meta.len() > MAX_ENV_FILE {
        return Err(err(format!("must be a regular file of at most {MAX_ENV_FILE} bytes")));
    }
    let bytes = tokio::fs::read(path).await.map_err(|e| err(format!("cannot read: {e}")))?;
    // serde_json errors carry positions only, never the file's content.
    let env: AzureEnvironmentFile = serde_json::from_slice(&bytes)
        .map_err(|e| err(format!("not an Azure environment JSON file ({e})")))?;
    let authority = env.active_directory_endpoint.trim().trim_end_matches('/').to_owned();
    let suffix = env.key_vault_dns_suffix.trim().trim_start_matches('.').to_owned();
    if !authority.starts_with("https://") {
        return Err(err("activeDirectoryEndpoint must be an https:// URL".into()));
    }
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err(err(
            "keyVaultDNSSuffix must be a DNS name such as vault.local.azurestack.external".into()
        ));
    }
    Ok((authority, suffix))
}

/// Checks the provider's own settings at start-up.
pub fn validate_overrides(o: &CloudOverrides) -> Result<(), String> {
    if let Some(a) = &o.authority_host
        && !a.starts_with("https://")
    {
        return Err(format!("--authority-host {a:?} must be an https:// URL"));
    }
    if let Some(s) = &o.keyvault_dns_suffix {
        let s = s.trim_start_matches('.');
        if s.is_empty()
            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
        {
            return Err(format!("--keyvault-dns-suffix {s:?} must be a DNS name such as vault.azure.net"));
        }
    }
    Ok(())
}
