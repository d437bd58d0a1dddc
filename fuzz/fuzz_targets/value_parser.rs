//! The sealed value parser: base64 decoding (with folding) and the length-prefix split never panic,
//! and a successful split accounts for every byte.
#![no_main]

use arcseal_crypto::{GCM_TAG_LEN, SealedValue, decode_base64};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = decode_base64(text);
    }
    if let Ok(parts) = SealedValue::parse(data) {
        assert_eq!(2 + parts.rsa_ciphertext.len() + parts.aes_ciphertext.len(), data.len());
        assert!(parts.aes_ciphertext.len() >= GCM_TAG_LEN);
    }
});
