//! Property tests of every parser of untrusted input in the CSI provider: the driver's attributes, secrets and
//! permission, the objects string, and the PKCS#12 / JWK readers fed by Key Vault.

use std::collections::BTreeMap;

use arcseal_controller::csi::params::{
    self, ObjectEncoding, ObjectFormat, ObjectType, parse_attributes, parse_mount, parse_objects,
    parse_permission, parse_secrets,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9-]{0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn no_parser_panics_on_arbitrary_text(s in "\\PC{0,400}") {
        let _ = parse_attributes(&s);
        let _ = parse_secrets(&s);
        let _ = parse_permission(&s);
        let _ = parse_objects(&s);
        let _ = parse_mount(&s, &s, &s);
    }

    #[test]
    fn no_parser_panics_on_yamlish_objects(s in "(array:\n)?( *- *[|>]?\n)?( *[a-zA-Z]{1,12}: *[&*!|>\\[\\]{}\"'a-z0-9-]{0,12}\n){0,12}") {
        let _ = parse_objects(&s);
    }

    #[test]
    fn attributes_round_trip(m in proptest::collection::btree_map("\\PC{0,20}", "\\PC{0,40}", 0..8)) {
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(parse_attributes(&json).unwrap(), m);
    }

    #[test]
    fn secrets_are_found_case_insensitively(id in "\\PC{1,20}", secret in "\\PC{1,40}") {
        let m: BTreeMap<&str, &str> = [("ClientID", id.as_str()), ("CLIENTSECRET", secret.as_str())].into();
        let s = parse_secrets(&serde_json::to_string(&m).unwrap()).unwrap();
        prop_assert_eq!(s.get_ignore_case("clientid"), Some(id.as_str()));
        prop_assert_eq!(s.get_ignore_case("clientsecret"), Some(secret.as_str()));
        let debug = format!("{s:?}");
        let keys_only = r#"{"ClientID", "CLIENTSECRET"}"#;
        let leaked = debug.contains(secret.as_str()) && !keys_only.contains(secret.as_str());
        prop_assert!(!leaked);
    }

    #[test]
    fn permission_accepts_exactly_0_to_0777(mode in 0u32..2000) {
        let r = parse_permission(&mode.to_string());
        if mode <= 0o777 { prop_assert_eq!(r.unwrap(), mode) } else { prop_assert!(r.is_err()) }
        let quoted = parse_permission(&format!("\"{mode}\""));
        prop_assert_eq!(quoted.is_ok(), mode <= 0o777);
    }

    // The bad modes hold a character that is neither an octal digit nor the `o` of a `0o` prefix: "0o0" is a
    // valid mode, and generating it as a bad one made this test fail at random.
    #[test]
    fn file_permission_is_octal_and_bounded(mode in 0u32..0o1000, bad in "[0-7]{0,2}[89a-np-z][0-9a-z]{0,2}") {
        prop_assert_eq!(params::parse_file_permission(&format!("0{mode:o}")).unwrap(), mode);
        prop_assert!(params::parse_file_permission(&bad).is_err());
    }

    #[test]
    fn generated_objects_parse_back(
        objs in proptest::collection::vec(
            (name(), 0usize..3, proptest::option::of("[A-Za-z0-9_.-]{1,20}"), 0u32..5, 0usize..3, proptest::option::of(0u32..0o1000)),
            1..6)
    ) {
        let mut yaml = String::from("array:\n");
        let mut seen = std::collections::BTreeSet::new();
        let mut expect = Vec::new();
        for (i, (n, t, alias, hist, enc, perm)) in objs.iter().enumerate() {
            let ty = ["secret", "key", "cert"][*t];
            let alias = alias.clone().filter(|a| a != "." && a != "..").unwrap_or_else(|| format!("{n}-{i}"));
            if !seen.insert(alias.clone()) { continue; }
            let enc = if ty == "secret" { ["utf-8", "hex", "base64"][*enc] } else { "utf-8" };
            yaml.push_str(&format!("  - |\n    objectName: {n}\n    objectType: {ty}\n    objectAlias: \"{alias}\"\n    objectVersionHistory: {hist}\n    objectEncoding: {enc}\n"));
            if let Some(p) = perm { yaml.push_str(&format!("    filePermission: \"0{p:o}\"\n")); }
            expect.push((n.clone(), ty, alias, *hist, enc, *perm));
        }
        let parsed = parse_objects(&yaml).unwrap();
        prop_assert_eq!(parsed.len(), expect.len());
        for (o, (n, ty, alias, hist, enc, perm)) in parsed.iter().zip(expect) {
            prop_assert_eq!(&o.name, &n);
            prop_assert_eq!(o.object_type.as_str(), ty);
            prop_assert_eq!(&o.alias, &alias);
            prop_assert_eq!(o.version_history, hist);
            prop_assert_eq!(o.format, ObjectFormat::Pem);
            let e = match enc { "hex" => ObjectEncoding::Hex, "base64" => ObjectEncoding::Base64, _ => ObjectEncoding::Utf8 };
            prop_assert_eq!(o.encoding, e);
            prop_assert_eq!(o.file_permission, perm);
            let _ = ObjectType::Secret;
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
