//! The library's error: what went wrong, with which input (file, document, object, item), and
//! what to do about it. No variant carries a plaintext.

use std::fmt;

use arcseal_crypto::{CertError, DecryptError, KeyError};

/// Where in the input a problem is: `file, document 2 (Secret team-a/db), item "password"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Location {
    /// File name, `<stdin>`, or a URL.
    pub source: String,
    /// 1-based document number within the source.
    pub document: Option<usize>,
    /// `Kind namespace/name` of the object.
    pub object: Option<String>,
    /// Item (key of `data`, `stringData` or `encryptedData`).
    pub item: Option<String>,
}

impl Location {
    /// A whole source.
    pub fn source(source: impl Into<String>) -> Self {
        Location { source: source.into(), ..Location::default() }
    }

    /// The same place, narrowed to a document.
    pub fn document(&self, index: usize) -> Self {
        Location { document: Some(index), ..self.clone() }
    }

    /// The same place, narrowed to an object.
    pub fn object(&self, kind: &str, namespace: Option<&str>, name: Option<&str>) -> Self {
        let name = name.unwrap_or("<no name>");
        let object = match namespace {
            Some(ns) if !ns.is_empty() => format!("{kind} {ns}/{name}"),
            _ => format!("{kind} {name}"),
        };
        Location { object: Some(object), ..self.clone() }
    }

    /// The same place, narrowed to an item.
    pub fn item(&self, item: &str) -> Self {
        Location { item: Some(item.to_owned()), ..self.clone() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)?;
        if let Some(d) = self.document {
            write!(f, ", document {d}")?;
        }
        if let Some(o) = &self.object {
            write!(f, " ({o})")?;
        }
        if let Some(i) = &self.item {
            write!(f, ", item {i:?}")?;
        }
        Ok(())
    }
}

/// Everything that can go wrong in an arcseal operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not what it should be; `message` says what and how to fix it.
    #[error("{at}: {message}")]
    Input {
        /// Where.
        at: Box<Location>,
        /// What is wrong and what to do.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// No key opened a value.
    #[error("{at}: {source}")]
    Decrypt {
        /// Which value.
        at: Box<Location>,
        /// The opaque cause.
        source: DecryptError,
    },
    /// A key could not be read or made.
    #[error("{at}: {source}")]
    Key {
        /// Which key input.
        at: Box<Location>,
        /// Why.
        source: KeyError,
    },
    /// A certificate could not be read or made.
    #[error("{at}: {source}")]
    Cert {
        /// Which certificate input.
        at: Box<Location>,
        /// Why.
        source: CertError,
    },
    /// The sealing certificate has expired.
    #[error(
        "{at}: the certificate expired on {not_after}; fetch the controller's current certificate \
         (GET /v1/cert.pem, or `kubeseal --fetch-cert`) and seal with that"
    )]
    ExpiredCertificate {
        /// Which certificate.
        at: Box<Location>,
        /// Its NotAfter, RFC 3339.
        not_after: String,
    },
    /// Sealing failed in the crypto backend.
    #[error("{at}: sealing failed: {source}")]
    Encrypt {
        /// Which value.
        at: Box<Location>,
        /// Why.
        source: arcseal_crypto::EncryptError,
    },
    /// Key Vault refused or failed a write; `message` is what the service said (never the value).
    #[error(
        "{at}: writing a new version of secret {object:?} to Key Vault {vault} failed: {message}; no repository \
         file was changed{}",
        if already_written.is_empty() { String::new() } else {
            format!(" (new versions already written, unpinned pods will mount them: {})", already_written.join(", "))
        }
    )]
    KeyVault {
        /// The SecretProviderClass and object.
        at: Box<Location>,
        /// `objectName`.
        object: String,
        /// Vault URL.
        vault: String,
        /// Status, code and message from the service.
        message: String,
        /// `object in vault` of the writes that succeeded before this one.
        already_written: Vec<String>,
    },
    /// Command-line usage that cannot work.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An input error at `at`.
    pub fn input(at: &Location, message: impl Into<String>) -> Self {
        Error::Input { at: Box::new(at.clone()), message: message.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl fmt::Display, source: std::io::Error) -> Self {
        Error::Io { path: path.to_string(), source }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_names_file_document_object_and_item() {
        let at = Location::source("s.yaml")
            .document(2)
            .object("Secret", Some("team-a"), Some("db"))
            .item("password");
        assert_eq!(at.to_string(), "s.yaml, document 2 (Secret team-a/db), item \"password\"");
        let err = Error::input(&at, "not valid base64");
        assert_eq!(
            err.to_string(),
            "s.yaml, document 2 (Secret team-a/db), item \"password\": not valid base64"
        );
        assert_eq!(Location::source("x").object("Secret", None, None).to_string(), "x (Secret <no name>)");
    }

    #[test]
    fn key_vault_errors_name_object_vault_and_earlier_writes() {
        let at = Location::source("spc.yaml:3").object("SecretProviderClass", Some("team-a"), Some("app"));
        let err = |already_written: Vec<String>| Error::KeyVault {
            at: Box::new(at.item("b")),
            object: "b".into(),
            vault: "https://kv1.vault.azure.net/".into(),
            message: "HTTP 403 Forbidden: denied".into(),
            already_written,
        };
        assert_eq!(
            err(vec![]).to_string(),
            "spc.yaml:3 (SecretProviderClass team-a/app), item \"b\": writing a new version of secret \"b\" to Key \
             Vault https://kv1.vault.azure.net/ failed: HTTP 403 Forbidden: denied; no repository file was changed"
        );
        assert!(err(vec!["a in https://kv1.vault.azure.net/".into()]).to_string().ends_with(
            "(new versions already written, unpinned pods will mount them: a in https://kv1.vault.azure.net/)"
        ));
    }
}
