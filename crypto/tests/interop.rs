//! Interop with values, keys and certificates made by other implementations of the sealed-secrets
//! format (kubesealpy, aes-gcm-rsa-oaep, @linode/kubeseal-encrypt), kept in the repository at
//! tests/fixtures/sealed-secrets with their README.

use std::path::PathBuf;

use arcseal_crypto::{Certificate, DecryptError, KeyRing, PrivateKey, PublicKey, Scope, decode_base64};
use serde_json::Value;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("ARCSEAL_FIXTURES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sealed-secrets")
    });
    assert!(dir.is_dir(), "interop fixtures not found at {} (set ARCSEAL_FIXTURES)", dir.display());
    dir
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key(bits: &str) -> PrivateKey {
    PrivateKey::from_pem(&read(&format!("key-{bits}.pem"))).unwrap()
}

fn vectors() -> Vec<Value> {
    String::from_utf8(read("vectors.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_else(|| panic!("vector without {name}: {v}"))
}

#[test]
fn every_positive_vector_opens_to_its_plaintext() {
    let ring = KeyRing::new(vec![key("2048"), key("4096")]);
    let mut producers = std::collections::BTreeSet::new();
    let mut opened = 0;
    for v in vectors().iter().filter(|v| field(v, "expect") == "ok") {
        let scope: Scope = field(v, "scope").parse().unwrap();
        let label = scope.encryption_label(field(v, "namespace"), field(v, "name"));
        let expected = decode_base64(field(v, "plaintext_b64")).unwrap();
        let out = ring.open_value(&label, field(v, "ciphertext"), None).unwrap_or_else(|e| {
            panic!("{} {} {}: {e}", field(v, "producer"), field(v, "scope"), field(v, "item"))
        });
        assert_eq!(out.plaintext.as_bytes(), &expected[..], "{v}");
        // The vector says which key sealed it; the ring must report that key.
        assert_eq!(out.key, key(field(v, "key")).fingerprint());
        producers.insert(field(v, "producer").to_owned());
        opened += 1;
    }
    assert_eq!(producers.len(), 3, "vectors from three implementations: {producers:?}");
    assert!(opened >= 50, "only {opened} positive vectors");
}

#[test]
fn every_negative_vector_fails_with_the_one_opaque_error() {
    let keys = [key("2048"), key("4096")];
    let mut refused = 0;
    for v in vectors().iter().filter(|v| field(v, "expect") == "error") {
        let scope: Scope = field(v, "scope").parse().unwrap();
        let label = scope.encryption_label(field(v, "namespace"), field(v, "name"));
        for k in &keys {
            let single = KeyRing::new(vec![k.clone()]);
            let err = single.open_value(&label, field(v, "ciphertext"), None).unwrap_err();
            assert_eq!(err, DecryptError, "{}", field(v, "why"));
        }
        refused += 1;
    }
    assert_eq!(refused, 7);
}

#[test]
fn fixture_keys_and_certificates_agree() {
    for bits in ["2048", "4096"] {
        let k = key(bits);
        let cert = Certificate::from_pem(&read(&format!("cert-{bits}.pem"))).unwrap();
        let public = PublicKey::from_pem(&read(&format!("pub-{bits}.pem"))).unwrap();
        assert_eq!(cert.fingerprint(), k.fingerprint());
        assert_eq!(public.fingerprint(), k.fingerprint());
        assert_eq!(cert.public_key().bits().to_string(), bits);
        assert_eq!(cert.subject(), "", "sealed-secrets certificates have an empty subject");
        // PKCS#1 PEM written back is the PEM the controller wrote.
        let written = k.to_pkcs1_pem().unwrap();
        assert_eq!(written.trim(), String::from_utf8(read(&format!("key-{bits}.pem"))).unwrap().trim());
    }
}

#[test]
fn values_we_seal_for_fixture_certificates_open_with_fixture_keys() {
    for bits in ["2048", "4096"] {
        let cert = Certificate::from_pem(&read(&format!("cert-{bits}.pem"))).unwrap();
        let label = Scope::Strict.encryption_label("team-a", "db-credentials");
        let value = arcseal_crypto::seal(cert.public_key(), &label, b"s3cret").unwrap();
        let raw = decode_base64(&value).unwrap();
        let prefix: [u8; 2] = if bits == "2048" { [0x01, 0x00] } else { [0x02, 0x00] };
        assert_eq!(raw[..2], prefix);
        let ring = KeyRing::new(vec![key(bits)]);
        assert_eq!(ring.open_value(&label, &value, None).unwrap().plaintext.as_bytes(), b"s3cret");
    }
}
