//! One error enum per operation. None of them carries plaintext or key material.

use thiserror::Error;

/// Opening a sealed value failed. Deliberately opaque: a too-short value, a wrong RSA padding, a wrong
/// GCM tag and "no key matched" all look the same, so that no caller (and no log, event or metric
/// built from this error) can tell which step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "no private key could decrypt the value (sealed with another key, for another name, namespace or scope, or corrupted)"
)]
pub struct DecryptError;

/// Sealing a value failed. With a valid public key this only happens when the system random number
/// generator fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncryptError {
    /// The backend refused the operation (for example the random number generator failed).
    #[error("the cryptographic backend failed to seal the value")]
    Backend,
}

/// A value is not structurally a sealed-secrets ciphertext. Found without any key, so it reveals nothing
/// about keys; used by `validate`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not standard base64 with padding.
    #[error("not valid standard base64 (the value must be base64 with padding, as kubeseal writes it)")]
    Base64,
    /// Shorter than the two-byte length prefix.
    #[error("data too short: {len} bytes, a sealed value has at least a 2-byte length prefix")]
    TooShort {
        /// Decoded length in bytes.
        len: usize,
    },
    /// The length prefix points past the end of the value.
    #[error("data too short: the RSA part is declared as {declared} bytes but only {available} follow")]
    Truncated {
        /// RSA ciphertext length from the prefix.
        declared: usize,
        /// Bytes present after the prefix.
        available: usize,
    },
    /// The AES-GCM part cannot even hold its 16-byte tag.
    #[error("the AES-GCM part is {len} bytes, shorter than its 16-byte tag")]
    MissingTag {
        /// Length of the AES-GCM part.
        len: usize,
    },
}

/// A private or public key could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No PEM block of a supported kind was found.
    #[error("no RSA key PEM block found (expected RSA PRIVATE KEY, PRIVATE KEY or PUBLIC KEY): {0}")]
    NoPem(String),
    /// A legacy encrypted PEM (Proc-Type: 4,ENCRYPTED) or PKCS#8 EncryptedPrivateKeyInfo.
    #[error("the private key is password-protected; decrypt it first (e.g. openssl rsa -in KEY -out PLAIN)")]
    Encrypted,
    /// The DER inside the PEM is not the structure its label promises.
    #[error("malformed key encoding: {0}")]
    Malformed(String),
    /// The key is not an RSA key.
    #[error("not an RSA key (sealed-secrets uses RSA only)")]
    NotRsa,
    /// The backend rejected the key (size out of 2048..=8192 bits, bad parameters).
    #[error("RSA key rejected: {0} (sealed-secrets keys are RSA with 2048 to 8192 bits)")]
    Rejected(&'static str),
    /// A key size that cannot be generated.
    #[error("cannot generate a {0}-bit RSA key: use one of 2048, 3072, 4096 or 8192")]
    UnsupportedSize(usize),
    /// Key generation failed in the backend.
    #[error("RSA key generation failed")]
    Generation,
}

/// A certificate could not be read or made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CertError {
    /// No `CERTIFICATE` PEM block (or DER) was found.
    #[error("no CERTIFICATE PEM block found: {0}")]
    NoCertificate(String),
    /// The certificate's DER is malformed.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// The certificate's key is not a usable RSA key.
    #[error("certificate public key: {0}")]
    Key(#[from] KeyError),
    /// Making or signing a certificate failed.
    #[error("cannot create the certificate: {0}")]
    Create(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decrypt_error_names_no_step() {
        let text = DecryptError.to_string().to_lowercase();
        for hint in ["padding", "oaep", "tag", "gcm", "aes", "rsa"] {
            assert!(!text.contains(hint), "DecryptError leaks {hint}: {text}");
        }
    }

    #[test]
    fn value_errors_say_what_is_wrong() {
        assert!(ValueError::TooShort { len: 1 }.to_string().contains("too short"));
        let t = ValueError::Truncated { declared: 512, available: 3 }.to_string();
        assert!(t.contains("512") && t.contains('3'));
        assert!(KeyError::UnsupportedSize(1000).to_string().contains("4096"));
    }
}
