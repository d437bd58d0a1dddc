//! Go strings are bytes: rune decoding (`utf8.DecodeRune`, invalid byte -> U+FFFD width 1), `strconv.Quote`,
//! `strconv.Unquote`, and `unicode`'s simple case mapping, which differ from Rust's `str` methods. Unicode facts
//! come from Go's own tables (`unicode_tables.rs`: Unicode 13, as in Go 1.19), not from Rust's newer ones.

use crate::unicode_tables as tables;

pub(crate) const RUNE_ERROR: char = '\u{FFFD}';

/// Go's `utf8.DecodeRune`: the rune and its width; an invalid or truncated sequence is (U+FFFD, 1).
pub(crate) fn decode_rune(b: &[u8]) -> (char, usize) {
    let Some(&b0) = b.first() else { return (RUNE_ERROR, 0) };
    if b0 < 0x80 {
        return (char::from(b0), 1);
    }
    let len = match b0 {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (RUNE_ERROR, 1),
    };
    if b.len() < len {
        return (RUNE_ERROR, 1);
    }
    match std::str::from_utf8(&b[..len]) {
        Ok(s) => (s.chars().next().unwrap_or(RUNE_ERROR), len),
        Err(_) => (RUNE_ERROR, 1),
    }
}

/// Iterates (rune, width) over a Go string.
pub(crate) fn runes(b: &[u8]) -> impl Iterator<Item = (char, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        if i >= b.len() {
            return None;
        }
        let (c, w) = decode_rune(&b[i..]);
        i += w;
        Some((c, w))
    })
}

/// `utf8.RuneCount`.
pub(crate) fn rune_count(b: &[u8]) -> usize {
    runes(b).count()
}

pub(crate) fn push_rune(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Maps every rune (invalid bytes become U+FFFD, as Go's `strings.Map` does).
pub(crate) fn map_runes(b: &[u8], mut f: impl FnMut(char) -> char) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for (c, _) in runes(b) {
        push_rune(&mut out, f(c));
    }
    out
}

fn in_ranges(table: &[(u32, u32)], c: char) -> bool {
    let u = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < u {
                std::cmp::Ordering::Less
            } else if lo > u {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn mapped(table: &[(u32, u32)], c: char) -> char {
    let u = u32::from(c);
    match table.binary_search_by_key(&u, |&(from, _)| from) {
        Ok(i) => char::from_u32(table[i].1).unwrap_or(c),
        Err(_) => c,
    }
}

/// `unicode.ToUpper` (simple case mapping, Go's Unicode tables: ß stays ß).
pub(crate) fn to_upper(c: char) -> char {
    if c.is_ascii() { c.to_ascii_uppercase() } else { mapped(tables::TO_UPPER, c) }
}

/// `unicode.ToLower`.
pub(crate) fn to_lower(c: char) -> char {
    if c.is_ascii() { c.to_ascii_lowercase() } else { mapped(tables::TO_LOWER, c) }
}

/// `unicode.ToTitle`.
pub(crate) fn to_title(c: char) -> char {
    if c.is_ascii() { c.to_ascii_uppercase() } else { mapped(tables::TO_TITLE, c) }
}

/// `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    if c.is_ascii() {
        return matches!(c, '\t' | '\n' | '\u{0B}' | '\u{0C}' | '\r' | ' ');
    }
    in_ranges(tables::SPACE, c)
}

/// `unicode.IsLetter`.
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() { c.is_ascii_alphabetic() } else { in_ranges(tables::LETTER, c) }
}

/// `unicode.IsDigit`.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() { c.is_ascii_digit() } else { in_ranges(tables::DIGIT, c) }
}

/// `unicode.IsUpper`.
pub(crate) fn is_upper(c: char) -> bool {
    if c.is_ascii() { c.is_ascii_uppercase() } else { in_ranges(tables::UPPER, c) }
}

/// `unicode.IsLower`.
pub(crate) fn is_lower(c: char) -> bool {
    if c.is_ascii() { c.is_ascii_lowercase() } else { in_ranges(tables::LOWER, c) }
}

/// `unicode.IsTitle`.
pub(crate) fn is_title(c: char) -> bool {
    !c.is_ascii() && in_ranges(tables::TITLE, c)
}

/// `unicode.IsPunct`.
pub(crate) fn is_punct(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_punctuation() && !"$+<=>^`|~".contains(c)
    } else {
        in_ranges(tables::PUNCT, c)
    }
}

/// `unicode.IsNumber`.
pub(crate) fn is_number(c: char) -> bool {
    if c.is_ascii() { c.is_ascii_digit() } else { in_ranges(tables::NUMBER, c) }
}

/// `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and U+0020, per Go's tables.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    in_ranges(tables::PRINT, c)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `strconv.Quote` (or `QuoteToASCII` when `ascii`), appending to `out`.
pub(crate) fn quote_into(out: &mut Vec<u8>, s: &[u8], q: u8, ascii: bool) {
    out.push(q);
    let mut i = 0;
    while i < s.len() {
        let (c, w) = decode_rune(&s[i..]);
        if w == 1 && c == RUNE_ERROR {
            out.extend_from_slice(b"\\x");
            out.push(HEX[usize::from(s[i] >> 4)]);
            out.push(HEX[usize::from(s[i] & 0xF)]);
            i += 1;
            continue;
        }
        append_escaped_rune(out, c, q, ascii);
        i += w;
    }
    out.push(q);
}

pub(crate) fn quote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    quote_into(&mut out, s, b'"', false);
    out
}

/// `strconv.QuoteRune`.
pub(crate) fn quote_rune(c: char, ascii: bool) -> Vec<u8> {
    let mut out = vec![b'\''];
    append_escaped_rune(&mut out, c, b'\'', ascii);
    out.push(b'\'');
    out
}

fn append_escaped_rune(out: &mut Vec<u8>, c: char, q: u8, ascii: bool) {
    let u = u32::from(c);
    if u == u32::from(q) || c == '\\' {
        out.push(b'\\');
        push_rune(out, c);
        return;
    }
    if ascii {
        if u < 0x80 && is_print(c) {
            push_rune(out, c);
            return;
        }
    } else if is_print(c) {
        push_rune(out, c);
        return;
    }
    let esc: &[u8] = match c {
        '\u{7}' => b"\\a",
        '\u{8}' => b"\\b",
        '\u{C}' => b"\\f",
        '\n' => b"\\n",
        '\r' => b"\\r",
        '\t' => b"\\t",
        '\u{B}' => b"\\v",
        _ => {
            let (prefix, digits): (&[u8], u32) = if u < 0x20 || u == 0x7F {
                (b"\\x", 2)
            } else if u < 0x10000 {
                (b"\\u", 4)
            } else {
                (b"\\U", 8)
            };
            out.extend_from_slice(prefix);
            for k in (0..digits).rev() {
                out.push(HEX[((u >> (4 * k)) & 0xF) as usize]);
            }
            return;
        }
    };
    out.extend_from_slice(esc);
}

/// `strconv.CanBackquote`.
pub(crate) fn can_backquote(s: &[u8]) -> bool {
    for (c, w) in runes(s) {
        if w == 1 && c == RUNE_ERROR {
            return false;
        }
        if c == '\u{FEFF}' {
            return false;
        }
        if (c < ' ' && c != '\t') || c == '`' || c == '\u{7F}' {
            return false;
        }
    }
    true
}

/// One escape or rune of a Go quoted literal; returns the bytes it stands for and the rest.
fn unquote_one(s: &str, q: u8) -> Option<(Vec<u8>, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c != '\\' {
        if c as u32 == u32::from(q) || c == '\n' {
            return None;
        }
        return Some((c.to_string().into_bytes(), chars.as_str()));
    }
    let e = chars.next()?;
    let rest = chars.as_str();
    let simple = |b: u8| Some((vec![b], rest));
    match e {
        'a' => simple(7),
        'b' => simple(8),
        'f' => simple(12),
        'n' => simple(b'\n'),
        'r' => simple(b'\r'),
        't' => simple(b'\t'),
        'v' => simple(11),
        '\\' => simple(b'\\'),
        '\'' | '"' => {
            if e as u32 != u32::from(q) {
                return None;
            }
            simple(e as u8)
        }
        '0'..='7' => {
            let digits = s.get(1..4)?;
            if !digits.bytes().all(|d| (b'0'..=b'7').contains(&d)) {
                return None;
            }
            let v = u8::try_from(u32::from_str_radix(digits, 8).ok()?).ok()?;
            Some((vec![v], &s[4..]))
        }
        'x' => {
            let digits = rest.get(..2)?;
            if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            let v = u8::from_str_radix(digits, 16).ok()?;
            Some((vec![v], &rest[2..]))
        }
        'u' | 'U' => {
            let n = if e == 'u' { 4 } else { 8 };
            let digits = rest.get(..n)?;
            if !digits.bytes().all(|d| d.is_ascii_hexdigit()) {
                return None;
            }
            let c = char::from_u32(u32::from_str_radix(digits, 16).ok()?)?;
            Some((c.to_string().into_bytes(), &rest[n..]))
        }
        _ => None,
    }
}

/// `strconv.Unquote` of the inside of a double-quoted literal.
pub(crate) fn unquote(mut s: &str, q: u8) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    while !s.is_empty() {
        let (b, rest) = unquote_one(s, q)?;
        out.extend_from_slice(&b);
        s = rest;
    }
    Some(out)
}

/// The inside of a character constant: exactly one rune (Go rejects `'\xff'` above 0x7F? no: it is the byte value).
pub(crate) fn unquote_char(s: &str) -> Option<u32> {
    if s.starts_with("\\x") || (s.starts_with('\\') && s[1..].starts_with(|c: char| c.is_ascii_digit())) {
        let (b, rest) = unquote_one(s, b'\'')?;
        return (rest.is_empty() && b.len() == 1).then(|| u32::from(b[0]));
    }
    let (b, rest) = unquote_one(s, b'\'')?;
    if !rest.is_empty() {
        return None;
    }
    let st = std::str::from_utf8(&b).ok()?;
    let mut it = st.chars();
    let c = it.next()?;
    it.next().is_none().then_some(u32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_go_1_19s_and_map_like_go() {
        assert_eq!(tables::UNICODE_VERSION, "13.0.0");
        assert_eq!((to_upper('ß'), to_lower('İ'), to_title('ǆ'), to_upper('ǆ')), ('ß', 'i', 'ǅ', 'Ǆ'));
        assert!(!is_print('\u{A0}') && !is_print('\u{200B}') && is_print('é'));
        assert_eq!(quote("\u{7}\u{A0}\u{200B}\u{FF}".as_bytes()), b"\"\\a\\u00a0\\u200b\xc3\xbf\"".to_vec());
        assert_eq!(quote(b"\xff"), b"\"\\xff\"".to_vec());
    }
}
