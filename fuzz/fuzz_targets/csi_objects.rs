//! The SecretProviderClass `objects` string (YAML of YAML strings) must never panic or blow up.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = arcseal_keyvault::params::parse_objects(s);
    }
});
