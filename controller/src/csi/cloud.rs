//! Which Entra ID authority and Key Vault DNS suffix a mount uses.
//!
//! `cloudName` picks a known cloud; `AzureStackCloud` reads `activeDirectoryEndpoint` and `keyVaultDNSSuffix` from the
//! Azure environment JSON file named by `cloudEnvFileName` (the same file format Azure's provider reads). The provider's
//! own `--authority-host` and `--keyvault-dns-suffix` settings, when given, override both for every mount: they are the
//! operator's configuration for a private cloud.
//!
//! `cloudEnvFileName` is written by whoever may create a SecretProviderClass, and the provider runs as root on the
//! node, so it is read only as Azure's provider effectively reads it (go-autorest opens `AZURE_ENVIRONMENT_FILEPATH`
//! only for `AzureStackCloud`) and more narrowly: only with `cloudName: AzureStackCloud`, only when the operator
//! named a directory with `--cloud-env-dir`, only a regular file of at most 64 KiB whose real path (symlinks
//! resolved) is inside that directory, opened without following a final symlink. Errors name the parameter and
//! the fix; they never quote the file's content (JSON errors give a line and column only).

use arcseal_keyvault::cloud::Overrides;
pub use arcseal_keyvault::cloud::{Endpoints, OverrideError};
use arcseal_keyvault::params::CloudName;
use serde::Deserialize;

/// Provider-wide overrides (`--authority-host`, `--keyvault-dns-suffix`).
#[derive(Debug, Clone, Default)]
pub struct CloudOverrides {
    /// Replaces every cloud's authority host.
    pub authority_host: Option<String>,
    /// Replaces every cloud's Key Vault DNS suffix.
    pub keyvault_dns_suffix: Option<String>,
    /// `--cloud-env-dir`: the only directory `cloudEnvFileName` may name a file in. None: AzureStackCloud needs
    /// both overrides above, and no SecretProviderClass can make the provider read a node file.
    pub env_dir: Option<std::path::PathBuf>,
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

impl CloudOverrides {
    fn endpoints(&self) -> Overrides {
        Overrides {
            authority_host: self.authority_host.clone(),
            keyvault_dns_suffix: self.keyvault_dns_suffix.clone(),
        }
    }
}

/// Resolves the endpoints of a mount.
pub async fn resolve(cloud: &CloudName, overrides: &CloudOverrides) -> Result<Endpoints, CloudError> {
    let endpoints = overrides.endpoints();
    match (endpoints.resolve(cloud), cloud) {
        (Some(e), _) => Ok(e),
        (None, CloudName::Stack { env_file }) => {
            let (authority, suffix) = read_env_file(env_file, overrides.env_dir.as_deref()).await?;
            Ok(endpoints.fill(&authority, &suffix))
        }
        (None, _) => {
            Err(CloudError { path: String::new(), reason: "this cloud has no known endpoints".into() })
        }
    }
}

async fn read_env_file(path: &str, dir: Option<&std::path::Path>) -> Result<(String, String), CloudError> {
    let path = path.to_owned();
    let dir = dir.map(std::path::Path::to_path_buf);
    // Blocking file system calls (canonicalize, open, read of at most 64 KiB) off the async workers.
    tokio::task::spawn_blocking(move || read_env_file_blocking(&path, dir.as_deref())).await.unwrap_or_else(
        |_| Err(CloudError { path: String::new(), reason: "reading the file was interrupted".into() }),
    )
}

fn read_env_file_blocking(path: &str, dir: Option<&std::path::Path>) -> Result<(String, String), CloudError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |reason: String| CloudError { path: path.to_owned(), reason };
    let Some(dir) = dir else {
        return Err(err(
            "the provider reads no cloud environment file unless its operator allows a directory: start it with --cloud-env-dir (or set --authority-host and --keyvault-dns-suffix)".into(),
        ));
    };
    let outside = || {
        err(format!(
            "must be a regular file inside {} (the provider's --cloud-env-dir), without symlinks leading out of it",
            dir.display()
        ))
    };
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| err(format!("--cloud-env-dir {} cannot be resolved: {}", dir.display(), e.kind())))?;
    // canonicalize resolves every symlink; the result must still be below the allowed directory.
    let real = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => err("no such file on the node".into()),
        kind => err(format!("cannot be read: {kind}")),
    })?;
    if !real.starts_with(&dir) || real == dir {
        return Err(outside());
    }
    // O_NOFOLLOW: a symlink swapped in after canonicalize is not followed.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32 | rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(&real)
        .map_err(|e| err(format!("cannot be opened: {}", e.kind())))?;
    let meta = file.metadata().map_err(|e| err(format!("cannot be read: {}", e.kind())))?;
    if !meta.is_file() {
        return Err(outside());
    }
    if meta.len() > MAX_ENV_FILE {
        return Err(err(format!(
            "is larger than {MAX_ENV_FILE} bytes: an Azure environment file is a few hundred"
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot be read: {}", e.kind())))?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(err(format!("is larger than {MAX_ENV_FILE} bytes")));
    }
    // Only the position of a JSON error: serde_json's messages can quote the file's values.
    let env: AzureEnvironmentFile = serde_json::from_slice(&bytes).map_err(|e| {
        err(format!(
            "is not an Azure environment JSON file (error at line {} column {}): fix the file on the node",
            e.line(),
            e.column()
        ))
    })?;
    let authority = env.active_directory_endpoint.trim().trim_end_matches('/').to_owned();
    let suffix = env.key_vault_dns_suffix.trim().trim_start_matches('.').to_owned();
    if !authority.starts_with("https://") {
        return Err(err("its activeDirectoryEndpoint must be an https:// URL".into()));
    }
    if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return Err(err(
            "its keyVaultDNSSuffix must be a DNS name such as vault.local.azurestack.external".into()
        ));
    }
    Ok((authority, suffix))
}

/// Checks the provider's own settings at start-up.
pub fn validate_overrides(o: &CloudOverrides) -> Result<(), OverrideError> {
    o.endpoints().validate()
}
