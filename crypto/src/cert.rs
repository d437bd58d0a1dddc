//! Certificates: the self-signed X.509 certificate the sealed-secrets controller publishes for its key,
//! and reading such a certificate (first `CERTIFICATE` block of a PEM file, as kubeseal does).
//!
//! The controller's certificate: random 128-bit serial, NotBefore = now, NotAfter = now + key TTL
//! (default 87600h), subject = issuer = CN from `--my-cn` (default empty), KeyUsage EncipherOnly
//! (critical), BasicConstraints CA:TRUE (critical), sha256WithRSAEncryption.

use std::fmt;
use std::time::{Duration, SystemTime};

use der::{Decode, Encode};
use rcgen::{BasicConstraints, DistinguishedName, DnType, IsCa, KeyPair, KeyUsagePurpose, SerialNumber};

use crate::error::CertError;
use crate::keys::{Fingerprint, PrivateKey, PublicKey};
use crate::pem;

/// sealed-secrets' default key TTL: 87600h (10 years).
pub const DEFAULT_CERT_VALIDITY: Duration = Duration::from_secs(87_600 * 3600);

/// What to put in a new controller certificate.
#[derive(Debug, Clone)]
pub struct CertificateParams {
    /// Subject and issuer common name; empty (sealed-secrets' default) gives an empty subject.
    pub common_name: String,
    /// NotBefore: "now" as the caller sees it.
    pub not_before: SystemTime,
    /// NotAfter - NotBefore.
    pub validity: Duration,
}

/// A parsed X.509 certificate with an RSA public key.
#[derive(Clone)]
pub struct Certificate {
    der: Vec<u8>,
    subject: String,
    serial: String,
    not_before: SystemTime,
    not_after: SystemTime,
    public_key: PublicKey,
}

impl Certificate {
    /// Creates the controller's self-signed certificate for `key`.
    pub fn self_signed(key: &PrivateKey, params: &CertificateParams) -> Result<Certificate, CertError> {
        let create = |e: rcgen::Error| CertError::Create(e.to_string());
        let pkcs8_pem = key.to_pkcs8_pem()?;
        let signer =
            KeyPair::from_pkcs8_pem_and_sign_algo(&pkcs8_pem, &rcgen::PKCS_RSA_SHA256).map_err(create)?;

        let mut serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut serial).map_err(|_| CertError::Create("random serial".into()))?;
        serial[0] &= 0x7f; // DER INTEGER: keep it positive

        let mut cert = rcgen::CertificateParams::default();
        cert.distinguished_name = DistinguishedName::new();
        if !params.common_name.is_empty() {
            cert.distinguished_name.push(DnType::CommonName, params.common_name.as_str());
        }
        cert.serial_number = Some(SerialNumber::from_slice(&serial));
        cert.not_before = params.not_before.into();
        cert.not_after = (params.not_before + params.validity).into();
        cert.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        cert.key_usages = vec![KeyUsagePurpose::EncipherOnly];
        let made = cert.self_signed(&signer).map_err(create)?;
        Certificate::from_der(made.der())
    }

    /// Reads the first `CERTIFICATE` block of PEM text (later blocks, such as a chain, are ignored).
    pub fn from_pem(pem_text: &[u8]) -> Result<Certificate, CertError> {
        let blocks = pem::blocks(pem_text).map_err(CertError::NoCertificate)?;
        let block = blocks.iter().find(|b| b.label == "CERTIFICATE").ok_or_else(|| {
            CertError::NoCertificate(if blocks.is_empty() {
                "the input holds no PEM block".into()
            } else {
                format!(
                    "found only {}",
                    blocks.iter().map(|b| b.label.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
        })?;
        Certificate::from_der(&block.der)
    }

    /// Reads DER.
    pub fn from_der(der: &[u8]) -> Result<Certificate, CertError> {
        let malformed = |e: der::Error| CertError::Malformed(e.to_string());
        let cert = x509_cert::Certificate::from_der(der).map_err(malformed)?;
        let tbs = cert.tbs_certificate();
        let spki = tbs.subject_public_key_info().to_der().map_err(malformed)?;
        Ok(Certificate {
            der: der.to_vec(),
            subject: tbs.subject().to_string(),
            serial: tbs.serial_number().to_string(),
            not_before: tbs.validity().not_before.to_system_time(),
            not_after: tbs.validity().not_after.to_system_time(),
            public_key: PublicKey::from_spki_der(&spki)?,
        })
    }

    /// The certificate's public key, used to seal.
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// Key id of the certificate's public key.
    pub fn fingerprint(&self) -> Fingerprint {
        self.public_key.fingerprint()
    }

    /// Subject as an RFC 4514 string (empty for sealed-secrets' default certificates).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Serial number, colon-separated hex.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// NotBefore.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// NotAfter.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether `now` is past NotAfter (kubeseal refuses to seal with such a certificate).
    pub fn is_expired_at(&self, now: SystemTime) -> bool {
        now > self.not_after
    }

    /// DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// One `CERTIFICATE` PEM block, as served on `/v1/cert.pem`.
    pub fn to_pem(&self) -> String {
        pem::encode("CERTIFICATE", &self.der).map(|s| s.to_string()).unwrap_or_default()
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("subject", &self.subject)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_cert::ext::pkix::{BasicConstraints as X509Bc, KeyUsage, KeyUsages};

    #[test]
    fn self_signed_matches_the_controllers_certificate() {
        let key = PrivateKey::generate(2048).unwrap();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let params = CertificateParams {
            common_name: String::new(),
            not_before: now,
            validity: DEFAULT_CERT_VALIDITY,
        };
        let cert = Certificate::self_signed(&key, &params).unwrap();
        assert_eq!(cert.fingerprint(), key.fingerprint());
        assert_eq!(cert.subject(), "");
        assert_eq!(cert.not_before(), now);
        assert_eq!(cert.not_after(), now + DEFAULT_CERT_VALIDITY);
        assert!(!cert.is_expired_at(now + DEFAULT_CERT_VALIDITY));
        assert!(cert.is_expired_at(now + DEFAULT_CERT_VALIDITY + Duration::from_secs(1)));

        let parsed = x509_cert::Certificate::from_der(cert.der()).unwrap();
        let tbs = parsed.tbs_certificate();
        let (critical, usage) = tbs.get_extension::<KeyUsage>().unwrap().unwrap();
        assert!(critical);
        assert!(usage.0.contains(KeyUsages::EncipherOnly));
        let (critical, bc) = tbs.get_extension::<X509Bc>().unwrap().unwrap();
        assert!(critical && bc.ca);
        assert_eq!(tbs.issuer(), tbs.subject());
        assert_eq!(tbs.serial_number().as_bytes().len(), 16);

        let again = Certificate::from_pem(cert.to_pem().as_bytes()).unwrap();
        assert_eq!(again.der(), cert.der());
        let other = Certificate::self_signed(&key, &params).unwrap();
        assert_ne!(other.serial(), cert.serial(), "serials are random");
    }

    #[test]
    fn common_name_is_used_for_subject_and_issuer() {
        let key = PrivateKey::generate(2048).unwrap();
        let params = CertificateParams {
            common_name: "sealed-secrets".into(),
            not_before: SystemTime::now(),
            validity: Duration::from_secs(3600),
        };
        assert_eq!(Certificate::self_signed(&key, &params).unwrap().subject(), "CN=sealed-secrets");
    }

    #[test]
    fn pem_without_certificate_is_refused() {
        let err = Certificate::from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
            .unwrap_err();
        assert!(err.to_string().contains("found only PUBLIC KEY"), "{err}");
    }
}
