//! A MountRequest's attributes / secrets / permission strings, split from one input at NUL bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let mut parts = s.splitn(3, '\0');
    let attributes = parts.next().unwrap_or("");
    let secrets = parts.next().unwrap_or("null");
    let permission = parts.next().unwrap_or("420");
    let _ = arcseal_keyvault::params::parse_attributes(attributes);
    let _ = arcseal_keyvault::params::parse_secrets(secrets);
    let _ = arcseal_keyvault::params::parse_permission(permission);
    let _ = arcseal_keyvault::params::parse_mount(attributes, secrets, permission);
});
