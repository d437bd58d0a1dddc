//! The last guard between decrypted values and anything a user can read (status, events, logs, HTTP answers).
//!
//! Errors of the template engine are built from the template's source text, never from the values; this module
//! checks that promise again where an error leaves the process: a message that shares any 4-byte run with a value
//! (as is, upper or lower case), or any 8-character run with its standard base64 or hex text, is replaced by a
//! fixed text. A false alarm costs a vaguer message; a miss would publish a secret.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The shortest run of a value's bytes (as is, or case-mapped) that counts as a leak.
pub const WINDOW: usize = 4;
/// The shortest run of a value's base64 or hex text that counts as a leak (two encoded bytes and more).
pub const ENCODED_WINDOW: usize = 8;

/// The forms in which a value could appear in text, each with the run length that counts.
fn forms(value: &[u8]) -> Vec<(Vec<u8>, usize)> {
    let lossy = String::from_utf8_lossy(value);
    vec![
        (value.to_vec(), WINDOW),
        (value.to_ascii_uppercase(), WINDOW),
        (value.to_ascii_lowercase(), WINDOW),
        (lossy.to_uppercase().into_bytes(), WINDOW),
        (lossy.to_lowercase().into_bytes(), WINDOW),
        (STANDARD.encode(value).into_bytes(), ENCODED_WINDOW),
        (value.iter().flat_map(|b| format!("{b:02x}").into_bytes()).collect(), ENCODED_WINDOW),
        (value.iter().flat_map(|b| format!("{b:02X}").into_bytes()).collect(), ENCODED_WINDOW),
    ]
}

/// Whether `text` shares a run with any form of any of `values` (see [`WINDOW`], [`ENCODED_WINDOW`]).
pub fn overlaps<'a>(text: &str, values: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let short: HashSet<&[u8]> = text.as_bytes().windows(WINDOW).collect();
    let long: HashSet<&[u8]> = text.as_bytes().windows(ENCODED_WINDOW).collect();
    if short.is_empty() {
        return false;
    }
    values.into_iter().any(|value| {
        forms(value).iter().any(|(form, n)| {
            let seen = if *n == WINDOW { &short } else { &long };
            form.windows(*n).any(|w| seen.contains(w))
        })
    })
}

/// `message`, unless it overlaps a value; then `fallback`.
pub fn withhold<'a>(message: String, values: impl IntoIterator<Item = &'a [u8]>, fallback: &str) -> String {
    if overlaps(&message, values) { fallback.to_owned() } else { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_of_a_value_is_caught() {
        let v: &[u8] = b"hunter2!";
        for text in ["x hunter2", "HUNTER", "aHVudGVyMiE=", "68756e746572", "68756E746572"] {
            assert!(overlaps(text, [v]), "{text}");
        }
        assert!(!overlaps("item \"password\" failed", [v]));
        assert!(!overlaps("abc", [v]), "shorter than a window");
        assert!(!overlaps("aHVu 6875", [v]), "encoded runs count from 8 characters");
        assert_eq!(withhold("has hunter2".into(), [v], "withheld"), "withheld");
        assert_eq!(withhold("fine".into(), [v], "withheld"), "fine");
    }
}
