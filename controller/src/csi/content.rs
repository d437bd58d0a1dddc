//! What gets written for each object type and format, as Azure's provider writes it.
//!
//! - secret: the value, decoded per `objectEncoding`. A certificate's secret (`kid` set) with contentType
//!   `application/x-pem-file` is written as stored; `application/x-pkcs12` is decoded (empty password) and written as
//!   PEM: the private key as PKCS#8 `PRIVATE KEY`, then the certificates leaf -> root. With `objectFormat: pfx` the
//!   PKCS#12 is written as stored (base64 text), or as binary with `objectEncoding: base64`.
//! - key: the public key as `PUBLIC KEY` (SPKI) PEM.
//! - cert: the leaf as `CERTIFICATE` PEM.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::keyvault::{FetchError, FetchErrorKind, Fetched};
use super::params::{KeyVaultObject, ObjectEncoding, ObjectFormat};

const PKCS12: &str = "application/x-pkcs12";
const PEM_FILE: &str = "application/x-pem-file";

fn content_error(message: String) -> FetchError {
    FetchError { kind: FetchErrorKind::Content, status: None, service_code: None, message }
}

fn pem(label: &'static str, der: &[u8]) -> Result<String, FetchError> {
    pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der)
        .map_err(|e| content_error(format!("cannot PEM-encode {label}: {e}")))
}

/// The bytes to write for `object`.
pub fn render(object: &KeyVaultObject, fetched: &Fetched) -> Result<Zeroizing<Vec<u8>>, FetchError> {
    match fetched {
        Fetched::Secret(s) => {
            let content_type = s.content_type.as_deref().unwrap_or_default();
            let cert_backed = s.kid.is_some();
            if object.format == ObjectFormat::Pfx {
                if content_type != PKCS12 {
                    return Err(content_error(format!(
                        "objectFormat pfx needs a secret with contentType {PKCS12} (a certificate's secret); this one has {:?}",
                        content_type
                    )));
                }
                return match object.encoding {
                    ObjectEncoding::Base64 => decode_base64(&s.value).map(Zeroizing::new),
                    _ => Ok(Zeroizing::new(s.value.as_bytes().to_vec())),
                };
            }
            if cert_backed && content_type == PKCS12 {
                let der = Zeroizing::new(decode_base64(&s.value)?);
                let contents = arcseal_crypto::pkcs12::decode_without_password(&der)
                    .map_err(|e| content_error(format!("cannot read the certificate's PKCS#12: {e}")))?;
                let mut out = Zeroizing::new(String::new());
                if let Some(key) = &contents.private_key_pkcs8 {
                    out.push_str(&Zeroizing::new(pem("PRIVATE KEY", key)?));
                }
                for cert in &contents.certificates {
                    out.push_str(&pem("CERTIFICATE", cert)?);
                }
                return Ok(Zeroizing::new(out.as_bytes().to_vec()));
            }
            if cert_backed && content_type == PEM_FILE {
                return Ok(Zeroizing::new(s.value.as_bytes().to_vec()));
            }
            match object.encoding {
                ObjectEncoding::Utf8 => Ok(Zeroizing::new(s.value.as_bytes().to_vec())),
                ObjectEncoding::Base64 => decode_base64(&s.value).map(Zeroizing::new),
                ObjectEncoding::Hex => decode_hex(&s.value).map(Zeroizing::new),
            }
        }
        Fetched::Key(k) => {
            let spki = match k.kty.as_str() {
                "RSA" | "RSA-HSM" => arcseal_crypto::jwk::rsa_public_key_spki(
                    k.n.as_deref().unwrap_or_default(),
                    k.e.as_deref().unwrap_or_default(),
                ),
                "EC" | "EC-HSM" => arcseal_crypto::jwk::ec_public_key_spki(
                    k.crv.as_deref().unwrap_or_default(),
                    k.x.as_deref().unwrap_or_default(),
                    k.y.as_deref().unwrap_or_default(),
                ),
                other => {
                    return Err(content_error(format!(
                        "key type {other:?} has no public key to write: only RSA, RSA-HSM, EC and EC-HSM keys can be mounted"
                    )));
                }
            }
            .map_err(|e| content_error(format!("invalid key material from Key Vault: {e}")))?;
            Ok(Zeroizing::new(pem("PUBLIC KEY", &spki)?.into_bytes()))
        }
        Fetched::Cert(c) => Ok(Zeroizing::new(pem("CERTIFICATE", &c.cer)?.into_bytes())),
    }
}

fn decode_base64(s: &str) -> Result<Vec<u8>, FetchError> {
    let compact: Zeroizing<String> = Zeroizing::new(s.chars().filter(|c| !c.is_ascii_whitespace()).collect());
    STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| content_error("objectEncoding base64: the value is not valid base64".into()))
}

fn decode_hex(s: &str) -> Result<Vec<u8>, FetchError> {
    let s = s.trim();
    let bad = || content_error("objectEncoding hex: the value is not valid hex".into());
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nibble(p[0])? << 4 | nibble(p[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64() {
        assert_eq!(decode_hex("48656c6C6f").unwrap(), b"Hello");
        assert!(decode_hex("4").is_err());
        assert!(decode_hex("zz").is_err());
        assert_eq!(decode_base64("SGVs\nbG8=").unwrap(), b"Hello");
        assert!(decode_base64("***").is_err());
    }
}
