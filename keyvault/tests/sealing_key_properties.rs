//! Property tests of the sealing key storage form (arcseal_keyvault::sealing_keys): secret names under a prefix, and
//! the key pair read from whatever a vault holds (untrusted input).

use arcseal_keyvault::sealing_keys::{MAX_PREFIX_LEN, StoredKey, is_key_name, secret_name, validate_prefix};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// Where proptest records failing cases (and replays them first): in the repository, beside this file.
const REGRESSIONS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sealing_key_properties.proptest-regressions");

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

    /// Every valid prefix and fingerprint give a Key Vault secret name that is recognised under that prefix, and
    /// under no prefix that merely starts the same way (another cluster's).
    #[test]
    fn names_round_trip_and_prefixes_do_not_overlap(
        prefix in "[a-zA-Z0-9-]{1,60}",
        longer in "-?[a-zA-Z0-9-]{1,20}",
        fingerprint in "[0-9a-f]{64}",
    ) {
        prop_assert!(validate_prefix(&prefix).is_ok());
        let name = secret_name(&prefix, &fingerprint);
        prop_assert!(name.len() <= 127 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        prop_assert!(is_key_name(&prefix, &name));
        let other = format!("{prefix}{longer}");
        prop_assert!(!is_key_name(&prefix, &secret_name(&other, &fingerprint)));
    }

    #[test]
    fn prefixes_outside_key_vault_names_are_refused(prefix in "\\PC{0,120}") {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        prop_assert_eq!(validate_prefix(&prefix).is_ok(), valid);
    }

    /// Arbitrary text under a key pair's name: an error, never a panic, and the error never quotes the value.
    #[test]
    fn arbitrary_values_are_refused_without_quoting_them(value in "(-----BEGIN [A-Z ]{0,20}-----\n)?\\PC{16,300}") {
        let stored = StoredKey { name: "prod-0".into(), version: "v".into(), pem: value.clone().into() };
        let e = stored.pair("prod").unwrap_err();
        prop_assert!(!e.contains(value.as_str()));
    }
}
