//! Sprig's random functions: `uuidv4`, `randAlphaNum`, `randAlpha`, `randNumeric`, `randAscii`, `randBytes`,
//! `randInt`, `shuffle`, `bcrypt`, `htpasswd`. Go draws them from crypto/rand (math/rand for randInt and shuffle);
//! here all come from the OS generator. Like in sealed-secrets, their output differs at every rendering: the
//! differential suite compares their shape, not their bytes.

use crate::funcs::CallError;
use crate::gostr;

fn fill(buf: &mut [u8]) -> Result<(), CallError> {
    getrandom::fill(buf).map_err(|_| CallError::Failed("random source unavailable"))
}

/// A uniform integer in `0..n` (n > 0) by rejection sampling.
fn below(n: u64) -> Result<u64, CallError> {
    let zone = u64::MAX - (u64::MAX % n);
    loop {
        let mut b = [0u8; 8];
        fill(&mut b)?;
        let v = u64::from_le_bytes(b);
        if v < zone {
            return Ok(v % n);
        }
    }
}

/// goutils' CryptoRandom over a charset: `count` characters drawn uniformly; empty for count <= 0 (Sprig drops
/// goutils' error for negative counts).
pub(crate) fn string_from(charset: &[u8], count: i64) -> Result<Vec<u8>, CallError> {
    let n = usize::try_from(count).unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let i = usize::try_from(below(charset.len() as u64)?).unwrap_or(0);
        out.push(charset[i]);
    }
    Ok(out)
}

pub(crate) const ALPHANUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(crate) const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub(crate) const NUMERIC: &[u8] = b"0123456789";

/// CryptoRandomAscii: code points 32..=126.
pub(crate) fn ascii(count: i64) -> Result<Vec<u8>, CallError> {
    let set: Vec<u8> = (32u8..=126).collect();
    string_from(&set, count)
}

/// google/uuid's `New().String()`: random, version 4, RFC 4122 variant.
pub(crate) fn uuidv4() -> Result<Vec<u8>, CallError> {
    let mut b = [0u8; 16];
    fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]).into_bytes())
}

/// Sprig's randBytes: base64 of `count` random bytes; Go's `make` panics on a negative count.
pub(crate) fn bytes(count: i64, max: usize) -> Result<Vec<u8>, CallError> {
    let n = usize::try_from(count).map_err(|_| CallError::Failed("makeslice: len out of range"))?;
    if n > max {
        return Err(CallError::Limit(crate::LimitKind::Output));
    }
    let mut buf = vec![0u8; n];
    fill(&mut buf)?;
    use base64::Engine as _;
    Ok(base64::engine::general_purpose::STANDARD.encode(buf).into_bytes())
}

/// Sprig's randInt: `rand.Intn(max-min) + min`, which panics unless max > min.
pub(crate) fn int(min: i64, max: i64) -> Result<i64, CallError> {
    let span =
        max.checked_sub(min).filter(|s| *s > 0).ok_or(CallError::Failed("invalid argument to Intn"))?;
    let v = below(span.unsigned_abs())?;
    Ok(min.wrapping_add(i64::try_from(v).unwrap_or(0)))
}

/// xstrings' Shuffle: the runes of the string in random order (invalid bytes become U+FFFD).
pub(crate) fn shuffle(s: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut runes: Vec<char> = gostr::runes(s).map(|(c, _)| c).collect();
    for i in (1..runes.len()).rev() {
        let j = usize::try_from(below(i as u64 + 1)?).unwrap_or(0);
        runes.swap(i, j);
    }
    let mut out = Vec::with_capacity(s.len());
    for c in runes {
        gostr::push_rune(&mut out, c);
    }
    Ok(out)
}

/// Sprig's bcrypt: golang.org/x/crypto's `$2a$` hash at DefaultCost (10). Go uses the first 72 bytes of the
/// password (with its trailing NUL), as the bcrypt crate's truncating mode does.
pub(crate) fn bcrypt(password: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut salt = [0u8; 16];
    fill(&mut salt)?;
    let parts = ::bcrypt::hash_with_salt(password, 10, salt)
        .map_err(|_| CallError::Failed("bcrypt hashing failed"))?;
    Ok(parts.format_for_version(::bcrypt::Version::TwoA).into_bytes())
}

/// Sprig's htpasswd: `user:bcrypt(password)`, or Go's message as the output for a user name holding ':'.
pub(crate) fn htpasswd(user: &[u8], password: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    if user.contains(&b':') {
        out.extend_from_slice(b"invalid username: ");
        out.extend_from_slice(user);
        return Ok(out);
    }
    out.extend_from_slice(user);
    out.push(b':');
    out.extend_from_slice(&bcrypt(password)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes made by Go's Sprig (go-template-ref): ours must agree on the password they encode, including
    /// the 72-byte truncation.
    #[test]
    fn go_bcrypt_hashes_verify_and_ours_have_their_shape() {
        let go_x = "$2a$10$4IWvtf2XX/rdryQ6R0r5OuZ0GiuQVZAhndL.B//H3ngz1iGAYJl92";
        let go_100a = "$2a$10$GoQ/IsVzKNWhiFkUONmVOeyjlzTnXlSNZZaaEIRxkQAZFjmbReiOO";
        assert!(::bcrypt::verify(b"x", go_x).unwrap());
        assert!(::bcrypt::verify([b'a'; 100], go_100a).unwrap());
        assert!(::bcrypt::verify([b'a'; 72], go_100a).unwrap());
        let ours = String::from_utf8(bcrypt(b"x").unwrap()).unwrap();
        assert!(ours.starts_with("$2a$10$") && ours.len() == go_x.len(), "{ours}");
        assert!(::bcrypt::verify(b"x", &ours).unwrap());
    }

    #[test]
    fn uuid_and_strings_have_go_shapes() {
        let u = String::from_utf8(uuidv4().unwrap()).unwrap();
        let b = u.as_bytes();
        assert_eq!((u.len(), b[8], b[13], b[14], b[18], b[23]), (36, b'-', b'-', b'4', b'-', b'-'));
        assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'));
        assert!(string_from(ALPHANUM, 64).unwrap().iter().all(u8::is_ascii_alphanumeric));
        assert!(ascii(64).unwrap().iter().all(|c| (32..=126).contains(c)));
        assert!(string_from(NUMERIC, -1).unwrap().is_empty());
        assert_eq!(shuffle("é\u{FFFD}a".as_bytes()).unwrap().len(), 6);
        assert!(int(5, 5).is_err());
        assert!((0..50).all(|_| (-10..-1).contains(&int(-10, -1).unwrap())));
    }
}
