//! The manifest reader on arbitrary input: YAML/JSON documents with budgets, then the Secret and
//! SealedSecret readers. Errors are fine; panics, hangs and unbounded memory are not.
#![no_main]

use arcseal::input::{self, Source};
use arcseal::manifest::{SealedSecret, SecretInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = Source::from_bytes("fuzz", data.to_vec());
    if let Ok(docs) = input::documents(&source) {
        for doc in &docs {
            let _ = SecretInput::from_value(&doc.value.0, &doc.at);
            if let Ok(sealed) = SealedSecret::from_value(&doc.value.0, &doc.at) {
                let _ = sealed.encryption_label();
                let _ = sealed.sealed_with();
            }
        }
    }
});
