//! What gets written for each object type and format, as Azure's provider writes it.
//!
//! - secret: the value, decoded per `objectEncoding`. A certificate's secret (`kid` set) with contentType
//!   `application/x-pem-file` is written as stored; `application/x-pkcs12` is decoded (empty password) and written as
//!   PEM: the private key as PKCS#8 `PRIVATE KEY`, then the certificates leaf -> root. With `objectFormat: pfx` the
//!   PKCS#12 is written as stored (base64 text), or as binary with `objectEncoding: base64`. On a plain secret (no
//!   `kid`) `objectFormat` changes nothing: the value is written decoded per `objectEncoding`, as Azure does.
//! - With `--write-cert-and-key-in-separate-files`, a certificate's secret also gives `<file>.crt` (its
//!   `CERTIFICATE` blocks) and `<file>.key` (every other block), re-encoded as PEM ([`split_cert_and_key`]).
//! - key: the public key as `PUBLIC KEY` (SPKI) PEM.
//! - cert: the leaf as `CERTIFICATE` PEM.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::keyvault::{FetchError, FetchErrorKind, Fetched};
use arcseal_keyvault::params::{KeyVaultObject, ObjectEncoding, ObjectFormat};

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
            if object.format == ObjectFormat::Pfx && cert_backed && content_type == PKCS12 {
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
                    // Azure re-marshals the key (Go's MarshalPKCS8PrivateKey): the PFX's key attributes
                    // (Windows' key usage, CSP name) are not written.
                    let stripped = pkcs8_without_attributes(key);
                    let key: &[u8] = stripped.as_deref().map_or(&key[..], |k| &k[..]);
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

/// One DER TLV: (tag, content, the whole TLV, what follows).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

/// Reads one DER TLV; None when the lengths do not fit `input`.
fn der_tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)), rest)
    };
    if rest.len() < len {
        return None;
    }
    let header = input.len() - rest.len();
    let (content, after) = rest.split_at(len);
    Some((tag, content, &input[..header + len], after))
}

// Both casts are bounded: `len < 0x80`, and a usize has at most 8 length bytes.
#[allow(clippy::cast_possible_truncation)]
fn der_length(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

/// A PKCS#8 PrivateKeyInfo (RFC 5958) without its optional `attributes [0]` and `publicKey [1]`, version 0, as Go
/// re-marshals it; None when there is nothing to drop or the input is not that shape (it is then written as is).
pub fn pkcs8_without_attributes(der: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (0x30, inner, _, []) = der_tlv(der)? else { return None };
    let (0x02, _, _, rest) = der_tlv(inner)? else { return None };
    let (0x30, _, algorithm, rest) = der_tlv(rest)? else { return None };
    let (0x04, _, key, mut rest) = der_tlv(rest)? else { return None };
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let (tag, _, _, after) = der_tlv(rest)?;
        if tag != 0xa0 && tag != 0xa1 {
            return None;
        }
        rest = after;
    }
    let mut content = Zeroizing::new(vec![0x02, 0x01, 0x00]);
    content.extend_from_slice(algorithm);
    content.extend_from_slice(key);
    let mut out = Zeroizing::new(vec![0x30]);
    der_length(content.len(), &mut out);
    out.extend_from_slice(&content);
    Some(out)
}

/// Splits PEM text into (certificates, everything else), each block re-encoded as PEM with LF line endings, as
/// Azure's `splitCertAndKey` does; text outside blocks and blocks that do not decode are dropped. Either part may
/// be empty (a PFX written with `objectFormat: pfx` has no PEM block at all).
pub fn split_cert_and_key(pem_text: &[u8]) -> (Zeroizing<Vec<u8>>, Zeroizing<Vec<u8>>) {
    const BEGIN: &str = "-----BEGIN ";
    let mut certs = Zeroizing::new(Vec::new());
    let mut keys = Zeroizing::new(Vec::new());
    let text = String::from_utf8_lossy(pem_text);
    let mut rest: &str = &text;
    while let Some(start) = rest.find(BEGIN) {
        let block = &rest[start..];
        let Some(label_len) = block[BEGIN.len()..].find("-----") else { break };
        let label = &block[BEGIN.len()..BEGIN.len() + label_len];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else { break };
        let whole = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        let Ok((label, der)) = pem_rfc7468::decode_vec(whole.as_bytes()) else { continue };
        let der = Zeroizing::new(der);
        let Ok(encoded) = pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, &der) else {
            continue;
        };
        let encoded = Zeroizing::new(encoded);
        if label == "CERTIFICATE" {
            certs.extend_from_slice(encoded.as_bytes());
        } else {
            keys.extend_from_slice(encoded.as_bytes());
        }
    }
    (certs, keys)
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

    #[test]
    fn split_re_encodes_blocks_by_label() {
        let key = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &[1, 2, 3]).unwrap();
        let cert = pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &[4, 5]).unwrap();
        let crlf = cert.replace('\n', "\r\n");
        let input = format!("junk\n{key}between\n{crlf}{cert}");
        let (certs, keys) = split_cert_and_key(input.as_bytes());
        assert_eq!(String::from_utf8(certs.to_vec()).unwrap(), format!("{cert}{cert}"));
        assert_eq!(String::from_utf8(keys.to_vec()).unwrap(), key);
        let (certs, keys) = split_cert_and_key(b"MIIK...base64 pfx");
        assert!(certs.is_empty() && keys.is_empty());
    }

    #[test]
    fn pkcs8_attributes_are_dropped_like_go_does() {
        // SEQUENCE { INTEGER 0, SEQUENCE { OID }, OCTET STRING { 01 02 }, [0] { 05 00 } }
        let with = [
            0x30, 0x10, 0x02, 0x01, 0x00, 0x30, 0x03, 0x06, 0x01, 0x2a, 0x04, 0x02, 0x01, 0x02, 0xa0, 0x02,
            0x05, 0x00,
        ];
        let without = [0x30, 0x0c, 0x02, 0x01, 0x00, 0x30, 0x03, 0x06, 0x01, 0x2a, 0x04, 0x02, 0x01, 0x02];
        assert_eq!(pkcs8_without_attributes(&with).unwrap().as_slice(), &without);
        assert!(pkcs8_without_attributes(&without).is_none(), "nothing to drop");
        assert!(pkcs8_without_attributes(&with[..10]).is_none(), "truncated");
        let mut long = vec![0u8; 300];
        der_length(300, &mut long);
        assert_eq!(&long[300..], &[0x82, 0x01, 0x2c]);
    }
}
