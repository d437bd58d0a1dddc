//! `rotate --open-pr`'s readers of API answers: the GitHub `Link` header, and the scrubbing of
//! server text quoted in errors (never panics; never keeps the token).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = arcseal::pr::next_link(s);
    let scrubbed = arcseal::pr::scrub(s, "tok3n-value");
    assert!(!scrubbed.contains("tok3n-value"));
    let _ = arcseal::pr::truncate_body(s, 4000);
});
