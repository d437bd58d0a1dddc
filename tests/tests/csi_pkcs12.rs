//! arcseal-crypto's PKCS#12 reader against files made by OpenSSL 3 (tests/fixtures/keyvault/make-fixtures.sh):
//! every protection Key Vault and its clients produce gives the same key and the chain leaf -> root.

use base64::Engine as _;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/keyvault/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    let body: String =
        std::str::from_utf8(pem).unwrap().lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap()
}

#[test]
fn openssl_pfx_variants_decode_to_key_and_ordered_chain() {
    let key = pem_der(&fixture("leaf.pkcs8.pem"));
    let chain: Vec<Vec<u8>> =
        ["leaf.pem", "intermediate.pem", "root.pem"].iter().map(|f| pem_der(&fixture(f))).collect();
    for name in ["aes.pfx", "tdes.pfx", "legacy-rc2.pfx", "nomac.pfx"] {
        let c = arcseal_crypto::pkcs12::decode_without_password(&fixture(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.private_key_pkcs8.as_deref().map(|k| k.as_slice()), Some(key.as_slice()), "{name}");
        assert_eq!(c.certificates, chain, "{name}: leaf -> intermediate -> root");
    }
}

#[test]
fn a_password_protected_pfx_is_refused() {
    let mut pfx = fixture("tdes.pfx");
    // Corrupting the MAC makes it look like another password.
    let n = pfx.len();
    pfx[n - 30] ^= 0xff;
    assert!(arcseal_crypto::pkcs12::decode_without_password(&pfx).is_err());
}

#[test]
fn incomplete_chain_keeps_vault_order() {
    let leaf = pem_der(&fixture("leaf.pem"));
    let root = pem_der(&fixture("root.pem"));
    // No intermediate: leaf first (it issued nothing), then the rest in the given order.
    let ordered = arcseal_crypto::pkcs12::order_chain(vec![root.clone(), leaf.clone()]);
    assert_eq!(ordered, vec![leaf, root]);
}
