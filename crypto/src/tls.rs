//! Serving certificates for the admission webhook's TLS listener, when the controller manages them itself (no
//! cert-manager): a fresh certificate authority signs one serving certificate and is thrown away, so its private key
//! is never stored anywhere. The API server trusts the authority's certificate (`caBundle`); renewing makes a new
//! authority and a new serving certificate, and the caller keeps the previous authority in the bundle until every
//! replica serves the new certificate.
//!
//! Keys are ECDSA P-256 (fast to make and to handshake with; the API server's TLS client accepts them).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use zeroize::Zeroizing;

use crate::error::CertError;

/// A serving certificate and the authority that signed it, in PEM.
pub struct ServingMaterial {
    /// The authority's certificate: what the API server must trust (`caBundle`, `ca.crt`).
    pub ca_pem: String,
    /// The serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// The serving certificate's private key, PKCS#8 (`tls.key`).
    pub key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for ServingMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingMaterial").field("key_pem", &"<withheld>").finish_non_exhaustive()
    }
}

/// Who the serving certificate is for and how long it lives.
#[derive(Debug, Clone)]
pub struct ServingParams {
    /// DNS names (`<service>.<namespace>.svc` and the like); the first is also the subject CN.
    pub dns_names: Vec<String>,
    /// IP addresses (a webhook reached by `clientConfig.url` on an address).
    pub ips: Vec<IpAddr>,
    /// NotBefore of both certificates ("now" as the caller sees it, less a little clock skew).
    pub not_before: SystemTime,
    /// NotAfter - NotBefore of the serving certificate; the authority lives one day longer.
    pub validity: Duration,
}

fn random_serial() -> Result<SerialNumber, CertError> {
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).map_err(|_| CertError::Create("random serial".into()))?;
    serial[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&serial))
}

/// Makes a new authority and a serving certificate it signed for `params`' names.
pub fn serving_certificate(params: &ServingParams) -> Result<ServingMaterial, CertError> {
    let create = |e: rcgen::Error| CertError::Create(e.to_string());
    if params.dns_names.is_empty() && params.ips.is_empty() {
        return Err(CertError::Create(
            "a serving certificate needs at least one DNS name or IP address".into(),
        ));
    }
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).map_err(create)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "arcseal admission webhook CA");
    ca.serial_number = Some(random_serial()?);
    ca.not_before = params.not_before.into();
    ca.not_after = (params.not_before + params.validity + Duration::from_secs(86_400)).into();
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).map_err(create)?;
    let issuer = Issuer::new(ca, ca_key);

    let key = KeyPair::generate_for(alg).map_err(create)?;
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = DistinguishedName::new();
    let cn = params.dns_names.first().cloned().unwrap_or_else(|| params.ips[0].to_string());
    leaf.distinguished_name.push(DnType::CommonName, cn);
    leaf.serial_number = Some(random_serial()?);
    leaf.not_before = params.not_before.into();
    leaf.not_after = (params.not_before + params.validity).into();
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for name in &params.dns_names {
        leaf.subject_alt_names.push(SanType::DnsName(
            name.clone().try_into().map_err(|_| CertError::Create(format!("{name:?} is not a DNS name")))?,
        ));
    }
    leaf.subject_alt_names.extend(params.ips.iter().map(|ip| SanType::IpAddress(*ip)));
    let cert = leaf.signed_by(&key, &issuer).map_err(create)?;
    Ok(ServingMaterial {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

/// NotBefore and NotAfter of a DER X.509 certificate of any key type; `None` if it is not one.
pub fn validity(der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let v = cert.tbs_certificate().validity();
    Some((v.not_before.to_system_time(), v.not_after.to_system_time()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    fn params() -> ServingParams {
        ServingParams {
            dns_names: vec!["arcseal-admission.kube-system.svc".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            not_before: SystemTime::now(),
            validity: Duration::from_secs(3600),
        }
    }

    fn der_of(pem_text: &str) -> Vec<u8> {
        crate::pem::blocks(pem_text.as_bytes()).unwrap().remove(0).der.to_vec()
    }

    #[test]
    fn the_serving_certificate_is_signed_by_the_authority_and_names_the_service() {
        let m = serving_certificate(&params()).unwrap();
        let ca = x509_cert::Certificate::from_der(&der_of(&m.ca_pem)).unwrap();
        let leaf = x509_cert::Certificate::from_der(&der_of(&m.cert_pem)).unwrap();
        assert_eq!(leaf.tbs_certificate().issuer(), ca.tbs_certificate().subject());
        assert_ne!(leaf.tbs_certificate().subject(), ca.tbs_certificate().subject());
        // The names are in the serving certificate (SAN), the authority names none of them.
        let leaf_der = der_of(&m.cert_pem);
        let has = |der: &[u8], needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(has(&leaf_der, b"arcseal-admission.kube-system.svc"));
        assert!(has(&leaf_der, &[0x87, 4, 127, 0, 0, 1]), "iPAddress SAN 127.0.0.1");
        assert!(!has(&der_of(&m.ca_pem), b"arcseal-admission.kube-system.svc"));
        // Each call makes a new authority: renewal never reuses a key.
        let again = serving_certificate(&params()).unwrap();
        assert_ne!(again.ca_pem, m.ca_pem);
        assert_ne!(*again.key_pem, *m.key_pem);
        assert!(m.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{m:?}").contains("PRIVATE"));
        let (from, to) = validity(&leaf_der).unwrap();
        assert_eq!(to.duration_since(from).unwrap(), Duration::from_secs(3600));
        assert!(validity(b"junk").is_none());
    }

    #[test]
    fn no_name_is_refused() {
        let mut p = params();
        p.dns_names.clear();
        p.ips.clear();
        assert!(serving_certificate(&p).is_err());
    }
}
