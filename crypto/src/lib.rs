//! The cryptography of arcseal, and nothing else: the Bitnami sealed-secrets value format, its scopes,
//! RSA keys, the controller's self-signed certificates and when its keys are due for renewal. Pure: no file or network I/O, no async, no
//! Kubernetes types. The binaries depend on this crate and never on the backend (aws-lc-rs) directly.
//!
//! # Wire format (sealed-secrets v0.36, one value per Secret item)
//!
//! ```text
//! value  = base64std( u16be(len(rsa_ct)) || rsa_ct || gcm_ct )
//! rsa_ct = RSA-OAEP(SHA-256, MGF1-SHA-256, label)(session_key)   session_key = 32 fresh random bytes
//! gcm_ct = AES-256-GCM(session_key, nonce = 12 zero bytes, no AAD)(plaintext) || 16-byte tag
//! ```
//!
//! The zero nonce is safe only because every session key is used for exactly one plaintext; [`seal`]
//! draws a new one on every call and never exposes it. The OAEP label binds a value to its [`Scope`]:
//! `<namespace>/<name>` (strict), `<namespace>` (namespace-wide) or empty (cluster-wide); item names are
//! not bound, so items can be renamed.
//!
//! No key id is stored in a value. A reader tries the private keys it holds ([`KeyRing`]), the key that
//! opened a value before first. Every failure to open (too short, wrong RSA padding, wrong GCM tag, no key
//! matched) is the one opaque [`DecryptError`]: nothing tells a caller which step failed.
//!
//! # Example
//!
//! ```
//! use arcseal_crypto::{KeyRing, PrivateKey, Scope};
//!
//! let key = PrivateKey::generate(2048).unwrap();
//! let label = Scope::Strict.encryption_label("team-a", "db-credentials");
//! let value = arcseal_crypto::seal(key.public_key(), &label, b"hunter2").unwrap();
//! assert!(value.starts_with("AQ")); // 2048-bit keys give the length prefix 0x0100
//!
//! let ring = KeyRing::new(vec![key]);
//! let opened = ring.open_value(&label, &value, None).unwrap();
//! assert_eq!(opened.plaintext.as_bytes(), b"hunter2");
//! ```
//!
//! # Secrets in memory
//!
//! Plaintexts ([`Plaintext`]), session keys and serialised private keys are wiped when dropped and have
//! no `Debug` that shows them. Private keys held by the backend live in aws-lc memory, which aws-lc
//! cleanses when it frees it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod cert;
mod error;
mod generate;
pub mod jwk;
mod keys;
mod pem;
pub mod pkcs12;
mod renewal;
mod scope;
pub mod tls;
mod value;
#[cfg(test)]
mod wycheproof_tests;

pub use cert::{Certificate, CertificateParams, DEFAULT_CERT_VALIDITY};
pub use error::{CertError, DecryptError, EncryptError, KeyError, ValueError};
pub use generate::random_string;
pub use keys::{DEFAULT_KEY_BITS, Fingerprint, KeyRing, Opened, PrivateKey, PublicKey, SUPPORTED_KEY_BITS};
pub use renewal::next_key_due;
pub use scope::{
    CLUSTER_WIDE_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, Scope, ScopeAnnotationProblem, ScopeParseError,
    scope_annotation_problems,
};
#[doc(hidden)]
pub use value::hazmat;
pub use value::{
    GCM_TAG_LEN, NONCE, Plaintext, SESSION_KEY_LEN, SealedValue, decode_base64, encode_base64, open, seal,
    seal_bytes,
};
