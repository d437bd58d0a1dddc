//! Public keys given as JSON Web Key parameters (RFC 7518 §6), as Azure Key Vault returns them, re-encoded as
//! X.509 SubjectPublicKeyInfo DER (RFC 5280 §4.1.2.7) for a `PUBLIC KEY` PEM.
//!
//! - RSA (`kty` RSA / RSA-HSM): `n`, `e` (big-endian, already base64url-decoded) -> PKCS#1 `RSAPublicKey` inside an
//!   `rsaEncryption` SPKI. The key is checked by parsing it with aws-lc.
//! - EC (`kty` EC / EC-HSM): `crv` P-256 / P-384 / P-521, `x`, `y` -> uncompressed point inside an `id-ecPublicKey`
//!   SPKI with the named curve. The point is checked to be on the curve with aws-lc.

use der::Encode;
use der::asn1::{Any, BitString, Null, ObjectIdentifier, UintRef};
use pkcs8::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};

/// Why a JWK could not be turned into a public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// A required parameter is empty.
    #[error("the JWK has no {0}")]
    Missing(&'static str),
    /// `crv` is not a supported curve.
    #[error("unsupported curve {0:?}: expected P-256, P-384 or P-521")]
    UnsupportedCurve(String),
    /// The parameters do not form a valid key.
    #[error("the JWK's {0} is not a valid public key")]
    Invalid(&'static str),
}

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const SECP521R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.35");

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    &b[start..]
}

/// SPKI DER of the RSA public key with modulus `n` and exponent `e` (big-endian).
pub fn rsa_public_key_spki(n: &[u8], e: &[u8]) -> Result<Vec<u8>, JwkError> {
    let (n, e) = (strip_zeros(n), strip_zeros(e));
    if n.is_empty() {
        return Err(JwkError::Missing("n"));
    }
    if e.is_empty() {
        return Err(JwkError::Missing("e"));
    }
    // 1024..=16384-bit moduli (Key Vault: 2048, 3072, 4096); an odd exponent of at most 64 bits.
    if !(128..=2048).contains(&n.len()) || e.len() > 8 || e[e.len() - 1] & 1 == 0 || e == [1] {
        return Err(JwkError::Invalid("RSA n/e"));
    }
    let invalid = |_| JwkError::Invalid("RSA n/e");
    let pkcs1 = pkcs1::RsaPublicKey {
        modulus: UintRef::new(n).map_err(invalid)?,
        public_exponent: UintRef::new(e).map_err(invalid)?,
    }
    .to_der()
    .map_err(invalid)?;
    // aws-lc checks the modulus size (1024..=8192 bits) and the exponent.
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, &pkcs1)
        .parse()
        .or_else(|_| {
            aws_lc_rs::signature::UnparsedPublicKey::new(
                &aws_lc_rs::signature::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY,
                &pkcs1,
            )
            .parse()
        })
        .map_err(|_| JwkError::Invalid("RSA n/e"))?;
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid: RSA_ENCRYPTION, parameters: Some(Any::from(Null)) },
        subject_public_key: BitString::from_bytes(&pkcs1).map_err(invalid)?,
    };
    spki.to_der().map_err(invalid)
}

/// SPKI DER of the EC public key (`crv` as in JWK: P-256, P-384, P-521; `x`, `y` big-endian).
pub fn ec_public_key_spki(crv: &str, x: &[u8], y: &[u8]) -> Result<Vec<u8>, JwkError> {
    let (curve, len, alg): (_, usize, &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm) = match crv {
        "P-256" => (SECP256R1, 32, &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1),
        "P-384" => (SECP384R1, 48, &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1),
        "P-521" => (SECP521R1, 66, &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1),
        other => return Err(JwkError::UnsupportedCurve(other.chars().take(32).collect())),
    };
    if x.is_empty() {
        return Err(JwkError::Missing("x"));
    }
    if y.is_empty() {
        return Err(JwkError::Missing("y"));
    }
    let (x, y) = (strip_zeros(x), strip_zeros(y));
    if x.len() > len || y.len() > len {
        return Err(JwkError::Invalid("EC x/y"));
    }
    // Uncompressed point (SEC 1 §2.3.3): 04 || x || y, each left-padded to the field size.
    let mut point = vec![0u8; 1 + 2 * len];
    point[0] = 4;
    point[1 + len - x.len()..1 + len].copy_from_slice(x);
    point[1 + 2 * len - y.len()..].copy_from_slice(y);
    aws_lc_rs::signature::UnparsedPublicKey::new(alg, &point)
        .parse()
        .map_err(|_| JwkError::Invalid("EC x/y"))?;
    let invalid = |_| JwkError::Invalid("EC x/y");
    let spki = SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned { oid: ID_EC_PUBLIC_KEY, parameters: Some(Any::from(&curve)) },
        subject_public_key: BitString::from_bytes(&point).map_err(invalid)?,
    };
    spki.to_der().map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode;

    #[test]
    fn rsa_spki_matches_aws_lc() {
        let key = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        // aws-lc's public key is PKCS#1 RSAPublicKey DER; ours must carry exactly it inside an rsaEncryption SPKI.
        let pkcs1_der = key.public_key().as_ref().to_vec();
        let parsed = pkcs1::RsaPublicKey::<UintRef<'_>>::from_der(&pkcs1_der).unwrap();
        let spki = rsa_public_key_spki(parsed.modulus.as_bytes(), parsed.public_exponent.as_bytes()).unwrap();
        let info = pkcs8::spki::SubjectPublicKeyInfoRef::from_der(&spki).unwrap();
        assert_eq!(info.algorithm.oid, RSA_ENCRYPTION);
        assert_eq!(info.subject_public_key.raw_bytes(), pkcs1_der.as_slice());
    }

    #[test]
    fn ec_spki_and_errors() {
        for (crv, alg) in [
            ("P-256", &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING),
            ("P-384", &aws_lc_rs::signature::ECDSA_P384_SHA384_ASN1_SIGNING),
        ] {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
            let kp = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref()).unwrap();
            use aws_lc_rs::signature::KeyPair as _;
            let point = kp.public_key().as_ref();
            let len = (point.len() - 1) / 2;
            let spki = ec_public_key_spki(crv, &point[1..1 + len], &point[1 + len..]).unwrap();
            use aws_lc_rs::encoding::AsDer as _;
            let expected = kp.public_key().as_der().unwrap();
            assert_eq!(spki, expected.as_ref());
        }
        assert!(matches!(ec_public_key_spki("P-256", &[1; 32], &[2; 32]), Err(JwkError::Invalid(_))));
        assert!(matches!(ec_public_key_spki("secp256k1", &[1], &[2]), Err(JwkError::UnsupportedCurve(_))));
        assert!(matches!(rsa_public_key_spki(&[], &[1, 0, 1]), Err(JwkError::Missing("n"))));
        assert!(rsa_public_key_spki(&[0xff; 16], &[1, 0, 1]).is_err());
    }
}
