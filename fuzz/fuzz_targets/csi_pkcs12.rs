//! The PKCS#12 reader (Key Vault's certificate secrets) and the JWK -> SPKI encoders.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arcseal_crypto::pkcs12::decode_without_password(data);
    let half = data.len() / 2;
    let _ = arcseal_crypto::jwk::rsa_public_key_spki(&data[..half], &data[half..]);
    for crv in ["P-256", "P-384", "P-521"] {
        let _ = arcseal_crypto::jwk::ec_public_key_spki(crv, &data[..half], &data[half..]);
    }
});
