//! Opening arbitrary bytes with a real key ring: always the one opaque error, never a panic.
//! (A forged value that opens would need the private key.)
#![no_main]

use std::sync::OnceLock;

use arcseal_crypto::{DecryptError, KeyRing, PrivateKey};
use libfuzzer_sys::fuzz_target;

fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::new(vec![PrivateKey::generate(2048).unwrap()]))
}

fuzz_target!(|data: &[u8]| {
    let (label, value) = data.split_at(data.len().min(usize::from(data.first().copied().unwrap_or(0) % 32)));
    assert_eq!(ring().open(label, value, None).unwrap_err(), DecryptError);
    if let Ok(text) = std::str::from_utf8(value) {
        assert!(ring().open_value(label, text, None).is_err());
    }
});
