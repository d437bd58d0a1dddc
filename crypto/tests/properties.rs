//! Property tests: sealing round trips, and the value parser and opener over arbitrary input.

use std::sync::OnceLock;

use arcseal_crypto::{
    DecryptError, GCM_TAG_LEN, KeyRing, PrivateKey, Scope, SealedValue, decode_base64, encode_base64,
    seal_bytes,
};
use proptest::prelude::*;

fn ring() -> &'static (PrivateKey, KeyRing) {
    static RING: OnceLock<(PrivateKey, KeyRing)> = OnceLock::new();
    RING.get_or_init(|| {
        let key = PrivateKey::generate(2048).unwrap();
        (key.clone(), KeyRing::new(vec![key]))
    })
}

fn scope() -> impl Strategy<Value = Scope> {
    prop::sample::select(Scope::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn seal_then_open_gives_the_plaintext(
        plaintext in prop::collection::vec(any::<u8>(), 0..2048),
        namespace in "[a-z0-9-]{1,20}",
        name in "[a-z0-9.-]{1,30}",
        scope in scope(),
    ) {
        let (key, ring) = ring();
        let label = scope.encryption_label(&namespace, &name);
        let value = seal_bytes(key.public_key(), &label, &plaintext).unwrap();
        prop_assert_eq!(value.len(), 2 + 256 + plaintext.len() + GCM_TAG_LEN);
        let parts = SealedValue::parse(&value).unwrap();
        prop_assert_eq!(parts.plaintext_len(), plaintext.len());
        let opened = ring.open(&label, &value, None).unwrap();
        prop_assert_eq!(opened.plaintext.as_bytes(), &plaintext[..]);
        // Another name, namespace or scope is another label.
        if scope != Scope::ClusterWide {
            let other = scope.encryption_label(&format!("{namespace}x"), &name);
            prop_assert_eq!(ring.open(&other, &value, None).unwrap_err(), DecryptError);
        }
    }

    #[test]
    fn any_flipped_bit_is_refused(byte in 0usize..300, bit in 0u8..8) {
        let (key, ring) = ring();
        let mut value = seal_bytes(key.public_key(), b"ns/n", b"payload-of-some-length").unwrap();
        let at = byte % value.len();
        value[at] ^= 1 << bit;
        prop_assert_eq!(ring.open(b"ns/n", &value, None).unwrap_err(), DecryptError);
    }

    #[test]
    fn arbitrary_bytes_never_open_and_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let (_, ring) = ring();
        let _ = SealedValue::parse(&bytes);
        prop_assert_eq!(ring.open(b"", &bytes, None).unwrap_err(), DecryptError);
    }

    #[test]
    fn parser_accepts_exactly_the_well_formed_layouts(
        declared in 0u16..600,
        rest in prop::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut bytes = declared.to_be_bytes().to_vec();
        bytes.extend_from_slice(&rest);
        let ok = rest.len() >= usize::from(declared) + GCM_TAG_LEN;
        match SealedValue::parse(&bytes) {
            Ok(parts) => {
                prop_assert!(ok);
                prop_assert_eq!(parts.rsa_ciphertext.len(), usize::from(declared));
                prop_assert_eq!(parts.rsa_ciphertext.len() + parts.aes_ciphertext.len(), rest.len());
            }
            Err(_) => prop_assert!(!ok),
        }
    }

    #[test]
    fn base64_round_trips_and_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), junk in "\\PC{0,80}") {
        let text = encode_base64(&bytes);
        prop_assert_eq!(decode_base64(&text).unwrap(), bytes);
        let folded: String = text.as_bytes().chunks(20).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("\r\n");
        prop_assert_eq!(decode_base64(&folded).unwrap(), decode_base64(&text).unwrap());
        let _ = decode_base64(&junk);
    }
}
