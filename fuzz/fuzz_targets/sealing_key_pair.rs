//! A sealing key pair read from Key Vault (`arcseal_keyvault::sealing_keys::StoredKey::pair`): whatever the vault holds
//! under the prefix, reading it never panics, and an error never quotes the value.
#![no_main]
use arcseal_keyvault::sealing_keys::StoredKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let stored = StoredKey { name: "prod-00".into(), version: "v".into(), pem: s.to_owned().into() };
        if let Err(e) = stored.pair("prod")
            && s.len() >= 16
        {
            assert!(!e.contains(s), "the error quotes the value");
        }
    }
});
