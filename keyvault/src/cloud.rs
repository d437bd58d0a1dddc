//! Endpoints of a cloud: the Entra ID authority host and the Key Vault DNS suffix.
//!
//! A known `cloudName` has fixed endpoints; `AzureStackCloud` has none of its own (the CSI provider reads them from
//! the node's environment file; the CLI needs `--authority-host` and `--keyvault-dns-suffix`). The operator's
//! overrides, when given, replace the cloud's endpoints for every vault: they configure a private cloud.

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};

use crate::params::CloudName;

/// Resolved endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// `https://login.microsoftonline.com` and the like, without a trailing slash.
    pub authority_host: String,
    /// `vault.azure.net` and the like, without a leading dot.
    pub keyvault_dns_suffix: String,
}

impl Endpoints {
    /// Endpoints from an authority and a suffix, written either way (`https://host/`, `.vault.azure.net`).
    pub fn new(authority_host: &str, keyvault_dns_suffix: &str) -> Self {
        Self {
            authority_host: authority_host.trim_end_matches('/').to_owned(),
            keyvault_dns_suffix: keyvault_dns_suffix.trim_start_matches('.').to_owned(),
        }
    }

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

/// The operator's `--authority-host` and `--keyvault-dns-suffix`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Replaces every cloud's authority host.
    pub authority_host: Option<String>,
    /// Replaces every cloud's Key Vault DNS suffix.
    pub keyvault_dns_suffix: Option<String>,
}

/// Why an override was refused; the text names the flag and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OverrideError {
    /// The authority is not an https URL (a token request must never go out in clear text).
    #[error("--authority-host {0:?} must be an https:// URL")]
    AuthorityNotHttps(String),
    /// The suffix is not a DNS name.
    #[error("--keyvault-dns-suffix {0:?} must be a DNS name such as vault.azure.net")]
    DnsSuffix(String),
}

impl Overrides {
    /// Checks both overrides (at start-up, before any request).
    pub fn validate(&self) -> Result<(), OverrideError> {
        if let Some(a) = &self.authority_host
            && !a.starts_with("https://")
        {
            return Err(OverrideError::AuthorityNotHttps(a.clone()));
        }
        if let Some(s) = &self.keyvault_dns_suffix {
            let s = s.trim_start_matches('.');
            if s.is_empty()
                || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':')
            {
                return Err(OverrideError::DnsSuffix(s.to_owned()));
            }
        }
        Ok(())
    }

    /// The endpoints of `cloud` under these overrides; None when neither the cloud nor the overrides give both
    /// (AzureStackCloud without both overrides: its environment file has to fill the gap, see [`Self::fill`]).
    pub fn resolve(&self, cloud: &CloudName) -> Option<Endpoints> {
        let known = cloud.known_endpoints();
        let authority = self.authority_host.as_deref().or(known.map(|k| k.0))?;
        let suffix = self.keyvault_dns_suffix.as_deref().or(known.map(|k| k.1))?;
        Some(Endpoints::new(authority, suffix))
    }

    /// Endpoints from a cloud's own (authority, suffix), with these overrides applied on top.
    pub fn fill(&self, authority_host: &str, keyvault_dns_suffix: &str) -> Endpoints {
        Endpoints::new(
            self.authority_host.as_deref().unwrap_or(authority_host),
            self.keyvault_dns_suffix.as_deref().unwrap_or(keyvault_dns_suffix),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_clouds_and_overrides() {
        let none = Overrides::default();
        let public = none.resolve(&CloudName::Public).unwrap();
        assert_eq!(public.vault_url("kv1"), "https://kv1.vault.azure.net/");
        assert_eq!(public.authority_host, "https://login.microsoftonline.com");
        let stack = CloudName::Stack { env_file: "/etc/kubernetes/azurestackcloud.json".into() };
        assert_eq!(none.resolve(&stack), None, "a stack cloud has no endpoints of its own");
        let both = Overrides {
            authority_host: Some("https://login.local/".into()),
            keyvault_dns_suffix: Some(".vault.local".into()),
        };
        let e = both.resolve(&stack).unwrap();
        assert_eq!(
            (e.authority_host.as_str(), e.vault_url("a").as_str()),
            ("https://login.local", "https://a.vault.local/")
        );
        // Overrides replace a known cloud's endpoints too.
        assert_eq!(both.resolve(&CloudName::China).unwrap(), e);
        let half =
            Overrides { authority_host: Some("https://login.local".into()), keyvault_dns_suffix: None };
        assert_eq!(half.resolve(&stack), None);
        assert_eq!(half.fill("https://x", "vault.stack").vault_url("a"), "https://a.vault.stack/");
    }

    #[test]
    fn overrides_are_checked() {
        let bad = Overrides { authority_host: Some("http://login.local".into()), keyvault_dns_suffix: None };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "--authority-host \"http://login.local\" must be an https:// URL"
        );
        let bad = Overrides { authority_host: None, keyvault_dns_suffix: Some("vault/../x".into()) };
        assert!(bad.validate().unwrap_err().to_string().contains("--keyvault-dns-suffix"));
        let good = Overrides {
            authority_host: Some("https://login.local".into()),
            keyvault_dns_suffix: Some("vault.local:8443".into()),
        };
        assert_eq!(good.validate(), Ok(()));
    }
}
