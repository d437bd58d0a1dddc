//! RSA keys as sealed-secrets stores them (PKCS#1 PEM, PKCS#8 accepted on read), their SPKI SHA-256
//! fingerprints (arcseal's key id), and a key ring that opens values with whichever key fits.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use der::asn1::{AnyRef, OctetStringRef};
use der::{Decode, Encode};
use pkcs8::PrivateKeyInfoRef;
use zeroize::Zeroizing;

use crate::error::{DecryptError, KeyError};
use crate::pem;
use crate::value::{self, Plaintext, SealedValue};

/// Key size sealed-secrets generates by default.
pub const DEFAULT_KEY_BITS: usize = 4096;
/// Key sizes that can be generated (any size from 2048 to 8192 bits can be read).
pub const SUPPORTED_KEY_BITS: [usize; 4] = [2048, 3072, 4096, 8192];

/// SHA-256 of a public key's DER SubjectPublicKeyInfo: arcseal's key id. Shown as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of DER SubjectPublicKeyInfo bytes.
    pub fn of_spki(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Fingerprint(out)
    }

    /// Parses 64 hex digits, with or without a `sha256:` prefix.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// An RSA public key ready to seal values.
#[derive(Clone)]
pub struct PublicKey {
    oaep: Arc<OaepPublicEncryptingKey>,
    spki_der: Arc<[u8]>,
    fingerprint: Fingerprint,
}

impl PublicKey {
    /// Reads DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, KeyError> {
        let key = PublicEncryptingKey::from_der(spki_der).map_err(|e| rejected(&e))?;
        Self::from_backend(key)
    }

    /// Reads a `PUBLIC KEY` PEM block.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, KeyError> {
        let blocks = pem::blocks(pem_text).map_err(KeyError::NoPem)?;
        let block = blocks
            .iter()
            .find(|b| b.label == "PUBLIC KEY")
            .ok_or_else(|| KeyError::NoPem("no PUBLIC KEY block".into()))?;
        Self::from_spki_der(&block.der)
    }

    fn from_backend(key: PublicEncryptingKey) -> Result<Self, KeyError> {
        let spki: PublicKeyX509Der<'static> =
            key.as_der().map_err(|_| KeyError::Malformed("public key cannot be encoded".into()))?;
        let spki_der: Arc<[u8]> = spki.as_ref().into();
        let oaep =
            OaepPublicEncryptingKey::new(key).map_err(|_| KeyError::Rejected("not usable for OAEP"))?;
        Ok(PublicKey { fingerprint: Fingerprint::of_spki(&spki_der), oaep: Arc::new(oaep), spki_der })
    }

    /// The key id: SHA-256 of the DER SubjectPublicKeyInfo.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Modulus length in bytes, which is also the length of every RSA ciphertext this key makes.
    pub fn modulus_len(&self) -> usize {
        self.oaep.key_size_bytes()
    }

    /// Modulus length in bits.
    pub fn bits(&self) -> usize {
        self.oaep.key_size_bits()
    }

    /// `PUBLIC KEY` PEM.
    pub fn to_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki_der).map(|s| s.to_string()).unwrap_or_default()
    }

    pub(crate) fn oaep(&self) -> &OaepPublicEncryptingKey {
        &self.oaep
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey(rsa-{}, {})", self.bits(), self.fingerprint)
    }
}

/// An RSA private key. No `Debug` beyond its public fingerprint; serialised forms are wiped on drop.
#[derive(Clone)]
pub struct PrivateKey {
    key: PrivateDecryptingKey,
    public: PublicKey,
}

impl PrivateKey {
    /// Generates a new RSA key of `bits` (one of [`SUPPORTED_KEY_BITS`]).
    pub fn generate(bits: usize) -> Result<Self, KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            other => return Err(KeyError::UnsupportedSize(other)),
        };
        let key = PrivateDecryptingKey::generate(size).map_err(|_| KeyError::Generation)?;
        Self::from_backend(key)
    }

    /// Reads the first private key in PEM text: `RSA PRIVATE KEY` (PKCS#1, what sealed-secrets writes)
    /// or `PRIVATE KEY` (PKCS#8). Other blocks (a certificate next to the key) are skipped.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, KeyError> {
        let blocks = pem::blocks(pem_text).map_err(KeyError::NoPem)?;
        for block in &blocks {
            match block.label.as_str() {
                "RSA PRIVATE KEY" | "PRIVATE KEY" if block.encrypted => return Err(KeyError::Encrypted),
                "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
                "RSA PRIVATE KEY" => return Self::from_pkcs1_der(&block.der),
                "PRIVATE KEY" => return Self::from_pkcs8_der(&block.der),
                _ => {}
            }
        }
        let seen: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
        Err(KeyError::NoPem(if seen.is_empty() {
            "the input holds no PEM block".into()
        } else {
            format!("found only {}", seen.join(", "))
        }))
    }

    /// Reads a PKCS#1 `RSAPrivateKey` by wrapping it in PKCS#8 (pure DER work).
    pub fn from_pkcs1_der(pkcs1_der: &[u8]) -> Result<Self, KeyError> {
        pkcs1::RsaPrivateKeyRef::from_der(pkcs1_der)
            .map_err(|e| KeyError::Malformed(format!("PKCS#1: {e}")))?;
        let info = PrivateKeyInfoRef {
            algorithm: pkcs8::spki::AlgorithmIdentifier {
                oid: pkcs1::ALGORITHM_OID,
                parameters: Some(AnyRef::NULL),
            },
            private_key: OctetStringRef::new(pkcs1_der).map_err(|e| KeyError::Malformed(e.to_string()))?,
            public_key: None,
        };
        let pkcs8_der = Zeroizing::new(info.to_der().map_err(|e| KeyError::Malformed(e.to_string()))?);
        Self::from_pkcs8_der(&pkcs8_der)
    }

    /// Reads a PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub fn from_pkcs8_der(pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let info = PrivateKeyInfoRef::from_der(pkcs8_der)
            .map_err(|e| KeyError::Malformed(format!("PKCS#8: {e}")))?;
        if info.algorithm.oid != pkcs1::ALGORITHM_OID {
            return Err(KeyError::NotRsa);
        }
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(|e| rejected(&e))?;
        Self::from_backend(key)
    }

    fn from_backend(key: PrivateDecryptingKey) -> Result<Self, KeyError> {
        let public = PublicKey::from_backend(key.public_key())?;
        Ok(PrivateKey { key, public })
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key id of the matching public key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public.fingerprint()
    }

    /// PKCS#8 DER, wiped on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let der: Pkcs8V1Der<'static> =
            self.key.as_der().map_err(|_| KeyError::Malformed("private key cannot be encoded".into()))?;
        Ok(Zeroizing::new(der.as_ref().to_vec()))
    }

    /// PKCS#1 DER (`RSAPrivateKey`), wiped on drop.
    pub fn to_pkcs1_der(&self) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let pkcs8_der = self.to_pkcs8_der()?;
        let info = PrivateKeyInfoRef::from_der(&pkcs8_der).map_err(|e| KeyError::Malformed(e.to_string()))?;
        Ok(Zeroizing::new(info.private_key.as_bytes().to_vec()))
    }

    /// `RSA PRIVATE KEY` PEM (PKCS#1), the form sealed-secrets stores in `tls.key`.
    pub fn to_pkcs1_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        pem::encode("RSA PRIVATE KEY", &self.to_pkcs1_der()?).map_err(KeyError::Malformed)
    }

    /// `PRIVATE KEY` PEM (PKCS#8).
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<String>, KeyError> {
        pem::encode("PRIVATE KEY", &self.to_pkcs8_der()?).map_err(KeyError::Malformed)
    }

    pub(crate) fn oaep(&self) -> Result<OaepPrivateDecryptingKey, DecryptError> {
        // A clone is a reference-count increment on the backend key, not a copy of the secret.
        OaepPrivateDecryptingKey::new(self.key.clone()).map_err(|_| DecryptError)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public.fingerprint)
    }
}

fn rejected(e: &aws_lc_rs::error::KeyRejected) -> KeyError {
    KeyError::Rejected(e.description_())
}

/// A value opened by a [`KeyRing`], with the key that opened it.
pub struct Opened {
    /// The decrypted bytes.
    pub plaintext: Plaintext,
    /// Which key opened it: remember it as the hint for the next time.
    pub key: Fingerprint,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened").field("plaintext", &self.plaintext).field("key", &self.key).finish()
    }
}

/// The private keys a reader holds. No key id is stored in a value, so a value is tried against the
/// hinted key first (the one that opened it last time), then against every other key of the right size.
#[derive(Clone, Default)]
pub struct KeyRing {
    keys: Vec<PrivateKey>,
}

impl KeyRing {
    /// A ring of `keys`; duplicates (same fingerprint) are kept once.
    pub fn new(keys: Vec<PrivateKey>) -> Self {
        let mut ring = KeyRing::default();
        keys.into_iter().for_each(|k| ring.insert(k));
        ring
    }

    /// Adds a key unless one with the same fingerprint is already there.
    pub fn insert(&mut self, key: PrivateKey) {
        if !self.keys.iter().any(|k| k.fingerprint() == key.fingerprint()) {
            self.keys.push(key);
        }
    }

    /// Removes the key with this fingerprint; returns whether one was there.
    pub fn remove(&mut self, fingerprint: &Fingerprint) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.fingerprint() != *fingerprint);
        before != self.keys.len()
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> &[PrivateKey] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the ring holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key with this fingerprint.
    pub fn get(&self, fingerprint: &Fingerprint) -> Option<&PrivateKey> {
        self.keys.iter().find(|k| k.fingerprint() == *fingerprint)
    }

    /// Opens a raw value: the hinted key first, then the others whose modulus fits the value.
    pub fn open(
        &self,
        label: &[u8],
        value: &[u8],
        hint: Option<&Fingerprint>,
    ) -> Result<Opened, DecryptError> {
        let rsa_len = SealedValue::parse(value).map_err(|_| DecryptError)?.rsa_ciphertext.len();
        let hinted = hint.and_then(|h| self.get(h));
        let others = self.keys.iter().filter(|k| Some(k.fingerprint()) != hint.copied());
        for key in hinted.into_iter().chain(others) {
            if key.public_key().modulus_len() != rsa_len {
                continue;
            }
            if let Ok(plaintext) = value::open(key, label, value) {
                return Ok(Opened { plaintext, key: key.fingerprint() });
            }
        }
        Err(DecryptError)
    }

    /// Opens a base64 value as found in `spec.encryptedData`.
    pub fn open_value(
        &self,
        label: &[u8],
        value: &str,
        hint: Option<&Fingerprint>,
    ) -> Result<Opened, DecryptError> {
        let raw = value::decode_base64(value).map_err(|_| DecryptError)?;
        self.open(label, &raw, hint)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| k.fingerprint())).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_hex_round_trips() {
        let fp = Fingerprint::of_spki(b"anything");
        let text = fp.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(Fingerprint::parse(&text), Some(fp));
        assert_eq!(Fingerprint::parse(&format!("sha256:{text}")), Some(fp));
        assert_eq!(Fingerprint::parse("abc"), None);
        assert_eq!(Fingerprint::parse(&"zz".repeat(32)), None);
    }

    #[test]
    fn unsupported_generation_size_is_refused() {
        assert_eq!(PrivateKey::generate(1024).unwrap_err(), KeyError::UnsupportedSize(1024));
    }

    #[test]
    fn pkcs1_and_pkcs8_pem_round_trip_to_the_same_key() {
        let key = PrivateKey::generate(2048).unwrap();
        let pkcs1 = key.to_pkcs1_pem().unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let pkcs8 = key.to_pkcs8_pem().unwrap();
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(PrivateKey::from_pem(pkcs1.as_bytes()).unwrap().fingerprint(), key.fingerprint());
        assert_eq!(PrivateKey::from_pem(pkcs8.as_bytes()).unwrap().fingerprint(), key.fingerprint());
        let public = PublicKey::from_pem(key.public_key().to_pem().as_bytes()).unwrap();
        assert_eq!(public.fingerprint(), key.fingerprint());
        assert!(!format!("{key:?}").contains("MII"));
    }

    #[test]
    fn private_key_pem_errors_are_specific() {
        assert!(matches!(PrivateKey::from_pem(b"nothing"), Err(KeyError::NoPem(_))));
        let enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(PrivateKey::from_pem(enc.as_bytes()).unwrap_err(), KeyError::Encrypted);
        let junk = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(PrivateKey::from_pem(junk.as_bytes()), Err(KeyError::Malformed(_))));
    }

    #[test]
    fn ring_prefers_the_hint_and_reports_the_opening_key() {
        let a = PrivateKey::generate(2048).unwrap();
        let b = PrivateKey::generate(2048).unwrap();
        let value = value::seal_bytes(b.public_key(), b"ns/n", b"v").unwrap();
        let ring = KeyRing::new(vec![a.clone(), b.clone(), a.clone()]);
        assert_eq!(ring.len(), 2);
        let opened = ring.open(b"ns/n", &value, Some(&a.fingerprint())).unwrap();
        assert_eq!(opened.key, b.fingerprint());
        assert_eq!(opened.plaintext.as_bytes(), b"v");
        assert_eq!(ring.open(b"ns/other", &value, None).unwrap_err(), DecryptError);
        let only_a = KeyRing::new(vec![a]);
        assert_eq!(only_a.open(b"ns/n", &value, None).unwrap_err(), DecryptError);
    }
}
