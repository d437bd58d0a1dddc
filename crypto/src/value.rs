//! The hybrid value format: `u16be(len(rsa_ct)) || rsa_ct || aes_gcm_ct_with_tag`, base64 outside.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::error::{DecryptError, EncryptError, ValueError};
use crate::keys::{PrivateKey, PublicKey};

/// Length of the per-value AES-256 session key.
pub const SESSION_KEY_LEN: usize = 32;
/// Length of the AES-GCM authentication tag appended to the ciphertext.
pub const GCM_TAG_LEN: usize = 16;
/// The fixed all-zero GCM nonce. Safe only because each session key seals exactly one plaintext.
pub const NONCE: [u8; 12] = [0u8; 12];

/// A decrypted value. Wiped on drop; its `Debug` shows the length only.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// Wraps bytes that must be wiped when dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Plaintext(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the value is empty (sealed-secrets allows empty items).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Hands the bytes over, still wiped on drop.
    pub fn into_zeroizing(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext(<{} bytes redacted>)", self.0.len())
    }
}

/// A value split into its parts without decrypting anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedValue<'a> {
    /// The RSA-OAEP ciphertext of the session key (as long as the key's modulus).
    pub rsa_ciphertext: &'a [u8],
    /// The AES-256-GCM ciphertext with its tag.
    pub aes_ciphertext: &'a [u8],
}

impl<'a> SealedValue<'a> {
    /// Splits raw (base64-decoded) bytes at the length prefix.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ValueError> {
        let [hi, lo, rest @ ..] = bytes else {
            return Err(ValueError::TooShort { len: bytes.len() });
        };
        let declared = usize::from(u16::from_be_bytes([*hi, *lo]));
        if rest.len() < declared {
            return Err(ValueError::Truncated { declared, available: rest.len() });
        }
        let (rsa_ciphertext, aes_ciphertext) = rest.split_at(declared);
        if aes_ciphertext.len() < GCM_TAG_LEN {
            return Err(ValueError::MissingTag { len: aes_ciphertext.len() });
        }
        Ok(SealedValue { rsa_ciphertext, aes_ciphertext })
    }

    /// Length of the plaintext this value holds.
    pub fn plaintext_len(&self) -> usize {
        self.aes_ciphertext.len() - GCM_TAG_LEN
    }

    /// Size in bits of the RSA key it was sealed with (its modulus length).
    pub fn key_bits(&self) -> usize {
        self.rsa_ciphertext.len() * 8
    }
}

/// Standard base64 with padding, no line breaks: how sealed-secrets writes values.
pub fn encode_base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard base64, tolerating `\r`, `\n` and spaces inside (YAML folding, pasted values).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, ValueError> {
    if text.bytes().any(|b| b.is_ascii_whitespace()) {
        let compact: Zeroizing<String> =
            Zeroizing::new(text.chars().filter(|c| !c.is_ascii_whitespace()).collect());
        STANDARD.decode(compact.as_bytes()).map_err(|_| ValueError::Base64)
    } else {
        STANDARD.decode(text).map_err(|_| ValueError::Base64)
    }
}

/// Seals `plaintext` for `key` under `label` and returns the base64 value, as it goes into
/// `spec.encryptedData`.
pub fn seal(key: &PublicKey, label: &[u8], plaintext: &[u8]) -> Result<String, EncryptError> {
    seal_bytes(key, label, plaintext).map(|raw| encode_base64(&raw))
}

/// Seals `plaintext` for `key` under `label` and returns the raw (not base64) value.
pub fn seal_bytes(key: &PublicKey, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
    let mut session_key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    aws_lc_rs::rand::fill(&mut session_key[..]).map_err(|_| EncryptError::Backend)?;

    let rsa_len = key.modulus_len();
    let prefix = u16::try_from(rsa_len).map_err(|_| EncryptError::Backend)?;
    let mut out = Vec::with_capacity(2 + rsa_len + plaintext.len() + GCM_TAG_LEN);
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(&rsa_oaep_encrypt(key, label, &session_key[..])?);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    // Sealed in place: from here on `out` holds ciphertext only.
    let tag = aes_256_gcm_seal_in_place(&session_key, &mut out[body_start..])?;
    out.extend_from_slice(&tag);
    Ok(out)
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256) encryption of `message` (the session key) under `label`.
pub(crate) fn rsa_oaep_encrypt(
    key: &PublicKey,
    label: &[u8],
    message: &[u8],
) -> Result<Vec<u8>, EncryptError> {
    let mut out = vec![0u8; key.modulus_len()];
    let written = key
        .oaep()
        .encrypt(&OAEP_SHA256_MGF1SHA256, message, &mut out, Some(label))
        .map_err(|_| EncryptError::Backend)?
        .len();
    if written != out.len() {
        return Err(EncryptError::Backend);
    }
    Ok(out)
}

/// AES-256-GCM with the format's zero nonce and no AAD: encrypts `body` in place, returns the tag.
pub(crate) fn aes_256_gcm_seal_in_place(
    key: &[u8; SESSION_KEY_LEN],
    body: &mut [u8],
) -> Result<[u8; GCM_TAG_LEN], EncryptError> {
    let aead = aead_key(key).map_err(|_| EncryptError::Backend)?;
    let tag = aead
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(NONCE), Aad::empty(), body)
        .map_err(|_| EncryptError::Backend)?;
    tag.as_ref().try_into().map_err(|_| EncryptError::Backend)
}

/// Opens a raw (base64-decoded) value with one private key. Every failure is the same [`DecryptError`].
pub fn open(key: &PrivateKey, label: &[u8], value: &[u8]) -> Result<Plaintext, DecryptError> {
    let parts = SealedValue::parse(value).map_err(|_| DecryptError)?;
    if parts.rsa_ciphertext.len() != key.public_key().modulus_len() {
        return Err(DecryptError);
    }
    let session_key = rsa_oaep_decrypt(key, label, parts.rsa_ciphertext)?;
    let session_key: &[u8; SESSION_KEY_LEN] = session_key.as_slice().try_into().map_err(|_| DecryptError)?;
    aes_256_gcm_open(session_key, &NONCE, &[], parts.aes_ciphertext).map(Plaintext)
}

/// RSA-OAEP (SHA-256, MGF1-SHA-256) decryption of `ciphertext` under `label`.
pub(crate) fn rsa_oaep_decrypt(
    key: &PrivateKey,
    label: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let oaep = key.oaep()?;
    let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
    let len = oaep
        .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, Some(label))
        .map_err(|_| DecryptError)?
        .len();
    out.truncate(len);
    Ok(out)
}

/// AES-256-GCM decryption of `ciphertext || tag`.
pub(crate) fn aes_256_gcm_open(
    key: &[u8; SESSION_KEY_LEN],
    nonce: &[u8; 12],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
    let aead = aead_key(key).map_err(|_| DecryptError)?;
    let mut body = Zeroizing::new(ciphertext.to_vec());
    let len = aead
        .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), &mut body)
        .map_err(|_| DecryptError)?
        .len();
    body.truncate(len);
    Ok(body)
}

fn aead_key(session_key: &[u8; SESSION_KEY_LEN]) -> Result<LessSafeKey, aws_lc_rs::error::Unspecified> {
    // LessSafeKey because the nonce is fixed by the format; uniqueness comes from the one-use session key.
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, session_key)?))
}

/// The two primitives exactly as the format uses them, for benchmarks that compare a whole operation
/// with its raw cryptographic cost. Not a general-purpose API: the zero nonce is safe only with a fresh
/// key per message, which [`seal`] guarantees and these functions do not.
#[doc(hidden)]
pub mod hazmat {
    use super::*;

    /// One RSA-OAEP-SHA256 encryption of a 32-byte session key.
    pub fn rsa_oaep_encrypt_session_key(key: &PublicKey, label: &[u8]) -> Result<Vec<u8>, EncryptError> {
        rsa_oaep_encrypt(key, label, &[7u8; SESSION_KEY_LEN])
    }

    /// One RSA-OAEP-SHA256 decryption.
    pub fn rsa_oaep_decrypt_session_key(
        key: &PrivateKey,
        label: &[u8],
        ct: &[u8],
    ) -> Result<usize, DecryptError> {
        rsa_oaep_decrypt(key, label, ct).map(|k| k.len())
    }

    /// One AES-256-GCM encryption of `body` in place under a fixed benchmark key.
    pub fn aes_256_gcm_seal(body: &mut [u8]) -> Result<[u8; GCM_TAG_LEN], EncryptError> {
        aes_256_gcm_seal_in_place(&[9u8; SESSION_KEY_LEN], body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_splits_at_the_prefix() {
        let mut raw = vec![0x00, 0x03, 1, 2, 3];
        raw.extend_from_slice(&[9u8; GCM_TAG_LEN + 4]);
        let parts = SealedValue::parse(&raw).unwrap();
        assert_eq!(parts.rsa_ciphertext, &[1, 2, 3]);
        assert_eq!(parts.plaintext_len(), 4);
    }

    #[test]
    fn parse_refuses_short_values() {
        assert_eq!(SealedValue::parse(&[]), Err(ValueError::TooShort { len: 0 }));
        assert_eq!(SealedValue::parse(&[2]), Err(ValueError::TooShort { len: 1 }));
        assert_eq!(
            SealedValue::parse(&[0x02, 0x00, 1]),
            Err(ValueError::Truncated { declared: 512, available: 1 })
        );
        assert_eq!(SealedValue::parse(&[0, 1, 7, 1, 2]), Err(ValueError::MissingTag { len: 2 }));
    }

    #[test]
    fn base64_tolerates_line_breaks_but_not_garbage() {
        assert_eq!(decode_base64("aGVs\r\nbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8"), Err(ValueError::Base64));
        assert_eq!(decode_base64("aGV$bG8="), Err(ValueError::Base64));
    }

    #[test]
    fn plaintext_debug_is_redacted() {
        let p = Plaintext::new(b"hunter2".to_vec());
        let shown = format!("{p:?}");
        assert!(!shown.contains("hunter2") && shown.contains('7'));
    }
}
