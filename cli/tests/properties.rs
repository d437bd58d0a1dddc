//! Property tests of the manifest reader (untrusted YAML/JSON) and of seal -> unseal through the library.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use arcseal::input::{self, Source};
use arcseal::manifest::{SealedSecret, SecretInput};
use arcseal::output::{self, Format};
use arcseal::seal::{self, SealOptions};
use arcseal_crypto::{Certificate, CertificateParams, KeyRing, PrivateKey, Scope};
use proptest::prelude::*;

fn key_and_cert() -> &'static (PrivateKey, Certificate) {
    static KEY: OnceLock<(PrivateKey, Certificate)> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = PrivateKey::generate(2048).unwrap();
        let params = CertificateParams {
            common_name: String::new(),
            not_before: SystemTime::now(),
            validity: arcseal_crypto::DEFAULT_CERT_VALIDITY,
        };
        let cert = Certificate::self_signed(&key, &params).unwrap();
        (key, cert)
    })
}

fn item_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,20}".prop_filter("not all dots", |s| s.chars().any(|c| c != '.'))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics_the_reader(text in "\\PC{0,400}") {
        let source = Source::from_bytes("fuzz.yaml", text.into_bytes());
        if let Ok(docs) = input::documents(&source) {
            for doc in &docs {
                let _ = SecretInput::from_value(&doc.value.0, &doc.at);
                let _ = SealedSecret::from_value(&doc.value.0, &doc.at);
            }
        }
    }

    #[test]
    fn yaml_shaped_noise_never_panics_the_reader(
        lines in prop::collection::vec(("[ ]{0,4}", "[a-zA-Z{}\\[\\]&*!|>:,'\"-]{0,12}", "[ :]{0,2}", "[a-z0-9&*!'\"]{0,8}"), 0..20)
    ) {
        let text: String = lines.iter().map(|(a, b, c, d)| format!("{a}{b}{c}{d}\n")).collect();
        let source = Source::from_bytes("noise.yaml", text.into_bytes());
        if let Ok(docs) = input::documents(&source) {
            for doc in &docs {
                let _ = SecretInput::from_value(&doc.value.0, &doc.at);
            }
        }
    }

    #[test]
    fn sealing_then_unsealing_gives_back_every_item(
        items in prop::collection::btree_map(item_name(), prop::collection::vec(any::<u8>(), 0..200), 1..6),
        name in "[a-z]([a-z0-9-]{0,19}[a-z0-9])?",
        namespace in "[a-z]([a-z0-9-]{0,19}[a-z0-9])?",
        scope in prop::sample::select(Scope::ALL.to_vec()),
        format in prop::sample::select(vec![Format::Yaml, Format::Json]),
    ) {
        let (key, cert) = key_and_cert();
        let data: BTreeMap<&String, String> = items.iter().map(|(k, v)| (k, arcseal_crypto::encode_base64(v))).collect();
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace}, "data": data});
        let text = output::render(&[secret], format).unwrap();
        let docs = input::documents(&Source::from_bytes("in", text.as_bytes().to_vec())).unwrap();
        let options = SealOptions { scope: Some(scope), ..SealOptions::default() };
        let sealed = seal::seal_documents(&docs, cert, &options).unwrap();
        // Through text again, as it would go through Git.
        let sealed_text = output::render(&sealed, format).unwrap();
        let back = input::documents(&Source::from_bytes("sealed", sealed_text.as_bytes().to_vec())).unwrap();
        let parsed = SealedSecret::from_value(&back[0].value.0, &back[0].at).unwrap();
        prop_assert_eq!(parsed.scope(), scope);
        let ring = KeyRing::new(vec![key.clone()]);
        let secret = arcseal::unseal::unseal(&parsed, &ring, &back[0].at).unwrap();
        prop_assert_eq!(secret.data.len(), items.len());
        for (k, v) in &items {
            let got = arcseal_crypto::decode_base64(&secret.data[k]).unwrap();
            prop_assert_eq!(&got, v);
        }
    }

    #[test]
    fn a_repeated_json_key_is_always_refused_and_never_echoes_values(
        keys in prop::collection::vec("[a-z]{1,6}", 1..6),
        dup in 0usize..6,
        values in prop::collection::vec("[A-Za-z0-9]{8,16}", 6),
    ) {
        let mut fields: Vec<String> = keys.iter().zip(&values).map(|(k, v)| format!("{k:?}: {v:?}")).collect();
        let repeated = &keys[dup % keys.len()];
        fields.push(format!("{repeated:?}: \"dupvalue-ZZZ\""));
        let text = format!("{{\"stringData\": {{{}}}}}", fields.join(", "));
        let err = input::documents(&Source::from_bytes("dup.json", text.into_bytes())).err().map(|e| e.to_string());
        let err = err.expect("a duplicate key is refused");
        prop_assert!(err.contains("duplicate key"), "{}", err);
        prop_assert!(!err.contains("dupvalue-ZZZ"));
        for v in &values {
            prop_assert!(!err.contains(v.as_str()));
        }
    }

    #[test]
    fn arbitrary_json_never_panics_the_strict_reader(text in "\\{\\PC{0,200}") {
        let _ = input::documents(&Source::from_bytes("fuzz.json", text.into_bytes()));
    }

    #[test]
    fn names_agree_with_the_api_servers_rules(name in "[a-zA-Z0-9./ _!-]{0,70}") {
        let label_ok = name.len() <= 63
            && !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        prop_assert_eq!(arcseal::names::label_problem(&name).is_none(), label_ok);
        let subdomain_ok = name.split('.').all(|part| {
            !part.is_empty()
                && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        prop_assert_eq!(arcseal::names::subdomain_problem(&name).is_none(), subdomain_ok);
    }

    #[test]
    fn controller_answers_are_checked_without_panicking(value in "\\PC{0,300}") {
        let _ = arcseal::controller::check_answer_value(&value, Some(256));
        if value.contains('\n') {
            prop_assert!(arcseal::controller::check_answer_value(&value, None).is_err());
        }
    }
}
