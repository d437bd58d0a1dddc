//! Property tests of the CSI provider's readers of what Key Vault returns: PEM bundles split into certificate and
//! key, PKCS#12 and JWK, PKCS#8 attributes. (The parameter parsers' are in keyvault/tests/properties.rs.)

use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Where proptest records failing cases (and replays them first): in the repository, beside this file.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/csi_properties.proptest-regressions");

proptest! {
    // Failures are kept beside this file; the default persistence keeps nothing for an integration test.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn cert_and_key_split_never_panics_and_keeps_only_pem(bytes in proptest::collection::vec(any::<u8>(), 0..400), pemish in "(-----(BEGIN|END) [A-Z ]{0,12}-----\n[A-Za-z0-9+/=\n]{0,40}){0,4}") {
        for input in [bytes.as_slice(), pemish.as_bytes()] {
            let (certs, keys) = arcseal_controller::csi::content::split_cert_and_key(input);
            for part in [&certs, &keys] {
                let t = String::from_utf8(part.to_vec()).unwrap();
                prop_assert!(t.is_empty() || (t.starts_with("-----BEGIN ") && t.ends_with("-----\n")));
            }
        }
    }

    #[test]
    fn pkcs12_and_jwk_readers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), crv in "P-(256|384|521)|x") {
        let _ = arcseal_crypto::pkcs12::decode_without_password(&bytes);
        let mut wrapped = vec![0x30, 0x80];
        wrapped.extend_from_slice(&bytes);
        let _ = arcseal_crypto::pkcs12::decode_without_password(&wrapped);
        let half = bytes.len() / 2;
        let _ = arcseal_crypto::jwk::ec_public_key_spki(&crv, &bytes[..half], &bytes[half..]);
        let _ = arcseal_crypto::jwk::rsa_public_key_spki(&bytes[..half], &bytes[half..]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

    /// The PKCS#8 attribute stripper reads DER from Key Vault's PFX: never panics, and what it returns is a
    /// SEQUENCE it would not change again.
    #[test]
    fn pkcs8_attribute_stripper_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), tail in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut framed = vec![0x30, 0x81, 0x00, 0x02, 0x01, 0x00, 0x30, 0x00, 0x04, 0x00];
        framed.extend_from_slice(&tail);
        let len = framed.len() - 3;
        framed[2] = u8::try_from(len).unwrap_or(0);
        for input in [bytes.as_slice(), framed.as_slice()] {
            if let Some(out) = arcseal_controller::csi::content::pkcs8_without_attributes(input) {
                prop_assert_eq!(out[0], 0x30);
                prop_assert!(arcseal_controller::csi::content::pkcs8_without_attributes(&out).is_none());
            }
        }
    }
}
