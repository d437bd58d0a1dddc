//! New secret values for `arcseal rotate --rotate-values`: uniform random strings over an alphabet,
//! drawn from the system CSPRNG with rejection sampling (no modulo bias).

use zeroize::Zeroizing;

use crate::error::EncryptError;
use crate::value::Plaintext;

/// A random string of `length` characters, each uniform over `alphabet` (1 to 256 distinct bytes).
pub fn random_string(length: usize, alphabet: &[u8]) -> Result<Plaintext, EncryptError> {
    let n = alphabet.len();
    if n == 0 || n > 256 {
        return Err(EncryptError::Backend);
    }
    // Accept a random byte only below the largest multiple of n that fits in a byte.
    let limit = 256 - (256 % n);
    let mut out = Zeroizing::new(Vec::with_capacity(length));
    let mut pool = Zeroizing::new([0u8; 64]);
    while out.len() < length {
        aws_lc_rs::rand::fill(&mut pool[..]).map_err(|_| EncryptError::Backend)?;
        for &b in pool.iter() {
            if usize::from(b) < limit && out.len() < length {
                out.push(alphabet[usize::from(b) % n]);
            }
        }
    }
    Ok(Plaintext::new(std::mem::take(&mut *out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_only_from_the_alphabet_and_covers_it() {
        let alphabet = b"abc";
        let s = random_string(3000, alphabet).unwrap();
        assert_eq!(s.len(), 3000);
        for c in alphabet {
            let count = s.as_bytes().iter().filter(|b| *b == c).count();
            // Expected 1000 each; 800..1200 is > 10 standard deviations wide.
            assert!((800..1200).contains(&count), "{} appeared {count} times", *c as char);
        }
        assert!(s.as_bytes().iter().all(|b| alphabet.contains(b)));
        assert_ne!(
            random_string(32, b"01").unwrap().as_bytes(),
            random_string(32, b"01").unwrap().as_bytes()
        );
        assert!(random_string(4, b"").is_err());
    }
}
