//! Bodies of `POST /v1/verify` and `/v1/rotate` (JSON or YAML SealedSecrets from any caller) must never panic, and
//! a body that parses must count its items without overflow.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ss) = arcseal_controller::unseal::http::parse_sealed_secret(data) {
        let _ = arcseal_controller::unseal::http::item_count(&ss);
    }
});
