//! Property tests of the SecretProviderClass parameter parsers (untrusted input for the CSI provider and the
//! CLI alike): the driver's attributes, secrets and permission, the objects string, file names; and of the sealing
//! key storage form: secret names under a prefix, the key pair read from whatever a vault holds.

use std::collections::BTreeMap;

use arcseal_keyvault::params::{
    self, ObjectEncoding, ObjectFormat, ObjectType, parse_attributes, parse_mount, parse_objects,
    parse_permission, parse_secrets,
};
use arcseal_keyvault::sealing_keys::{MAX_PREFIX_LEN, StoredKey, is_key_name, secret_name, validate_prefix};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9-]{0,30}"
}

/// Where proptest records failing cases (and replays them first): in the repository, beside this file.
const REGRESSIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/properties.proptest-regressions");

#[test]
fn file_permission_regression_0o0() {
    // The case proptest found ("0o0" generated as a bad mode): refused, as Go's ParseInt(s, 8, 32) refuses it.
    assert!(params::parse_file_permission("0o0").is_err());
    assert!(params::parse_file_permission("0o644").is_err());
}

proptest! {
    // Failures are kept beside this file (properties.proptest-regressions, in the repository). The default
    // (SourceParallel) looks for a lib.rs or main.rs and finds none for an integration test, and WithSource saves
    // relative to the working directory (the package, not the workspace), so neither kept anything.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..ProptestConfig::default()
    })]

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
        // Debug shows the keys and nothing else, whatever the values are.
        prop_assert_eq!(format!("{s:?}"), r#"{"CLIENTSECRET", "ClientID"}"#);
    }

    #[test]
    fn permission_accepts_exactly_0_to_0777(mode in 0u32..2000) {
        let r = parse_permission(&mode.to_string());
        if mode <= 0o777 { prop_assert_eq!(r.unwrap(), mode) } else { prop_assert!(r.is_err()) }
        let quoted = parse_permission(&format!("\"{mode}\""));
        prop_assert_eq!(quoted.is_ok(), mode <= 0o777);
    }

    /// `bad` holds a character that is not an octal digit, so it must be refused. It used to fail at random: the
    /// parser took a Rust-style `0o` prefix (so `0o0` passed), which Azure's Go `strconv.ParseInt(s, 8, 32)` never
    /// accepts. The parser now takes octal digits only, as Azure's does.
    #[test]
    fn file_permission_is_octal_and_bounded(mode in 0u32..0o1000, bad in "[0-7]{0,2}[89a-z][0-9a-z]{0,2}") {
        prop_assert_eq!(params::parse_file_permission(&format!("0{mode:o}")).unwrap(), mode);
        prop_assert_eq!(params::parse_file_permission(&format!("{mode:o}")).unwrap(), mode);
        prop_assert!(params::parse_file_permission(&bad).is_err());
    }

    /// objectAlias: whatever comes in, an accepted path is what the driver accepts (relative, clean, no '..',
    /// components of at most 255 bytes) and cleaning is idempotent.
    #[test]
    fn file_names_accepted_are_clean_relative_paths(s in "([a-z.]{0,3}/{0,2}){0,6}|\\PC{0,300}") {
        if let Ok(clean) = params::validate_file_name(&s) {
            prop_assert!(!clean.is_empty() && !clean.starts_with('/') && !clean.ends_with('/'));
            prop_assert!(!clean.contains(".."));
            prop_assert!(clean.split('/').all(|c| !c.is_empty() && c != "." && c.len() <= 255));
            prop_assert!(clean.len() <= 4096);
            prop_assert_eq!(params::validate_file_name(&clean), Ok(clean.clone()));
            prop_assert!(!s.starts_with('/'));
        }
    }

    #[test]
    fn sub_folder_aliases_parse_back_cleaned(parts in proptest::collection::vec("[A-Za-z0-9_-][A-Za-z0-9_.-]{0,10}", 1..5), doubled in any::<bool>()) {
        prop_assume!(parts.iter().all(|p| !p.contains("..")));
        let sep = if doubled { "//" } else { "/" };
        let yaml = format!("array:\n  - |\n    objectName: a\n    objectType: secret\n    objectAlias: \"{}\"\n", parts.join(sep));
        prop_assert_eq!(&parse_objects(&yaml).unwrap()[0].alias, &parts.join("/"));
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
            // Azure refuses '..' anywhere in a file name; '.' names no file.
            let alias = alias.clone().filter(|a| a != "." && !a.contains("..")).unwrap_or_else(|| format!("{n}-{i}"));
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
            // 0 and 1 both mean "the single selected version" (Azure's IsSyncingSingleVersion).
            prop_assert_eq!(o.version_history, if hist <= 1 { 0 } else { hist });
            prop_assert_eq!(o.format, ObjectFormat::Pem);
            let e = match enc { "hex" => ObjectEncoding::Hex, "base64" => ObjectEncoding::Base64, _ => ObjectEncoding::Utf8 };
            prop_assert_eq!(o.encoding, e);
            prop_assert_eq!(o.file_permission, perm);
            let _ = ObjectType::Secret;
        }
    }


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
