//! `--key-vault-url` in the CLI: the cluster's sealing key pairs read from (and, by `arcseal keys import`, written
//! to) Azure Key Vault, in the form the controller keeps them ([`arcseal_keyvault::sealing_keys`]), so the rotation
//! job and break-glass recovery need no copy of the keys on disk. Identity from the environment or the machine's
//! managed identity (`--key-vault-identity`), as for `rotate --rotate-values` ([`arcseal_keyvault::credential`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use arcseal_crypto::{Certificate, PrivateKey};
use arcseal_keyvault::credential::Identity;
use arcseal_keyvault::sealing_keys::{self, RetryPolicy, VaultKeys};

use crate::error::{Error, Result};

/// Where the key pairs are.
#[derive(Debug, Clone)]
pub struct VaultAccess {
    /// `--key-vault-url`.
    pub url: String,
    /// `--key-vault-key-prefix`.
    pub prefix: String,
    /// `--key-vault-identity`.
    pub identity: Identity,
    /// `--authority-host`.
    pub authority_host: String,
    /// `--ca-bundle`.
    pub ca_bundle: Option<PathBuf>,
    /// `--resolve`: host names pinned to addresses.
    pub resolve: Vec<(String, SocketAddr)>,
}

/// What `keys import` did with one key pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Vault secret name.
    pub name: String,
    /// The key's fingerprint.
    pub fingerprint: String,
    /// False: the vault had it already (nothing written).
    pub written: bool,
}

fn client(access: &VaultAccess) -> Result<VaultKeys> {
    if !access.url.starts_with("https://") {
        return Err(Error::Usage(format!(
            "--key-vault-url {:?}: expected https://<vault>.vault.azure.net/",
            access.url
        )));
    }
    let http = crate::keyvault::http_client(access.ca_bundle.as_deref(), &access.resolve)?;
    sealing_keys::connect(
        &access.url,
        &access.prefix,
        &access.authority_host,
        &access.identity,
        http,
        RetryPolicy::default(),
    )
    .map_err(|e| Error::Usage(format!("--key-vault-url {}: {e}", access.url)))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Usage(format!("starting the async runtime for Key Vault: {e}")))
}

/// Every enabled key pair under the prefix. A secret under the prefix that is not a readable key pair is an error
/// naming it (a recovery must not silently miss a key).
pub fn load(access: &VaultAccess) -> Result<Vec<(PrivateKey, Certificate)>> {
    let keys = client(access)?;
    let listing = runtime()?.block_on(keys.load()).map_err(|e| Error::Usage(e.to_string()))?;
    if !listing.disabled.is_empty() {
        eprintln!(
            "note: {} disabled key pair(s) in {} not used: {}",
            listing.disabled.len(),
            access.url,
            listing.disabled.join(", ")
        );
    }
    listing
        .keys
        .iter()
        .map(|stored| {
            stored.pair(&access.prefix).map_err(|e| {
                Error::Usage(format!(
                    "Key Vault {} secret {}: not a sealing key pair: {e}",
                    access.url, stored.name
                ))
            })
        })
        .collect()
}

/// Stores key pairs in the vault; a pair already there (by name, which is the fingerprint) is not written again.
pub fn import(access: &VaultAccess, pairs: &[(PrivateKey, Certificate)]) -> Result<Vec<Imported>> {
    let keys = client(access)?;
    runtime()?.block_on(async {
        let present = keys.load().await.map_err(|e| Error::Usage(e.to_string()))?;
        let have: std::collections::HashSet<String> =
            present.keys.iter().map(|k| k.name.clone()).chain(present.disabled.iter().cloned()).collect();
        let mut out = Vec::new();
        for (key, cert) in pairs {
            let fingerprint = key.fingerprint().to_string();
            let name = sealing_keys::secret_name(&access.prefix, &fingerprint);
            if have.contains(&name) {
                out.push(Imported { name, fingerprint, written: false });
                continue;
            }
            let name = keys.put_pair(key, cert).await.map_err(|e| {
                let done: Vec<&str> = out.iter().filter(|i| i.written).map(|i| i.name.as_str()).collect();
                Error::Usage(format!(
                    "{e} (already imported: {})",
                    if done.is_empty() { "none".into() } else { done.join(", ") }
                ))
            })?;
            out.push(Imported { name, fingerprint, written: true });
        }
        Ok(out)
    })
}
