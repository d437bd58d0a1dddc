//! huandu/xstrings' `ToCamelCase`, `ToSnakeCase` and `ToKebabCase` as Sprig 3.2.3 ships them (camelcase,
//! snakecase, kebabcase), ported rule for rule: their word splitting has many corners (runs of capitals, digits
//! glued to words, punctuation, invalid bytes) that the differential suite pins.

use crate::gostr::{self, RUNE_ERROR};

fn is_connector(r: char) -> bool {
    r == '-' || r == '_' || gostr::is_space(r)
}

/// xstrings' isAlphabet: letters, except the CJK ideographs.
fn is_alphabet(r: char) -> bool {
    if !gostr::is_letter(r) {
        return false;
    }
    let u = u32::from(r);
    !((0x4E00..=0x9FCC).contains(&u) || (0x3400..=0x4D85).contains(&u) || (0x20000..=0x2B81D).contains(&u))
}

/// `utf8.DecodeRuneInString` on a byte string (an empty one decodes to (RuneError, 0)).
fn decode(s: &[u8]) -> (char, usize) {
    gostr::decode_rune(s)
}

/// `ToCamelCase`.
pub(crate) fn camel(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let (mut r0, mut size) = (RUNE_ERROR, 0);
    while !s.is_empty() {
        (r0, size) = decode(s);
        s = &s[size..];
        if !is_connector(r0) {
            r0 = gostr::to_upper(r0);
            break;
        }
        gostr::push_rune(&mut out, r0);
    }
    if s.is_empty() {
        if size != 0 {
            gostr::push_rune(&mut out, r0);
        }
        return out;
    }
    while !s.is_empty() {
        let r1 = r0;
        (r0, size) = decode(s);
        s = &s[size..];
        if is_connector(r0) && is_connector(r1) {
            gostr::push_rune(&mut out, r1);
            continue;
        }
        if is_connector(r1) {
            r0 = gostr::to_upper(r0);
        } else {
            r0 = gostr::to_lower(r0);
            gostr::push_rune(&mut out, r1);
        }
    }
    gostr::push_rune(&mut out, r0);
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Word {
    Invalid,
    Number,
    UpperCase,
    Alphabet,
    Connector,
    Punct,
    Other,
}

/// `nextValidRune`: the next decodable rune and the bytes consumed to reach it (invalid bytes skipped), or
/// `prev` when none is left.
fn next_valid_rune(mut s: &[u8], prev: char) -> (char, usize) {
    let mut size = 0;
    while !s.is_empty() {
        let (r, sz) = decode(s);
        size += sz;
        // Go compares the rune only: a literal U+FFFD is skipped like an invalid byte.
        if r != RUNE_ERROR {
            return (r, size);
        }
        s = &s[sz..];
    }
    (prev, size)
}

/// `nextWord`: (type, word, remaining).
fn next_word(s: &[u8]) -> (Word, &[u8], &[u8]) {
    if s.is_empty() {
        return (Word::Invalid, s, s);
    }
    let mut remaining = s;
    let (mut r, mut size) = next_valid_rune(remaining, RUNE_ERROR);
    let mut offset = size;
    if r == RUNE_ERROR {
        return (Word::Invalid, &s[..offset], &s[offset..]);
    }
    let wt;
    let run = |remaining: &mut &[u8], offset: &mut usize, mut r: char, keep: &dyn Fn(char) -> bool| {
        while !remaining.is_empty() {
            let (nr, sz) = next_valid_rune(remaining, r);
            r = nr;
            if !keep(r) {
                break;
            }
            *offset += sz;
            *remaining = &remaining[sz..];
        }
    };
    if is_connector(r) {
        wt = Word::Connector;
        remaining = &remaining[size..];
        run(&mut remaining, &mut offset, r, &is_connector);
    } else if gostr::is_punct(r) {
        wt = Word::Punct;
        remaining = &remaining[size..];
        run(&mut remaining, &mut offset, r, &gostr::is_punct);
    } else if gostr::is_upper(r) {
        wt = Word::UpperCase;
        remaining = &remaining[size..];
        if !remaining.is_empty() {
            (r, size) = next_valid_rune(remaining, r);
            if gostr::is_upper(r) {
                let mut prev_size = size;
                offset += size;
                remaining = &remaining[size..];
                while !remaining.is_empty() {
                    (r, size) = next_valid_rune(remaining, r);
                    if !gostr::is_upper(r) {
                        break;
                    }
                    prev_size = size;
                    offset += size;
                    remaining = &remaining[size..];
                }
                if !remaining.is_empty() && is_alphabet(r) {
                    offset -= prev_size;
                    remaining = &s[offset..];
                }
            } else if is_alphabet(r) {
                offset += size;
                remaining = &remaining[size..];
                run(&mut remaining, &mut offset, r, &|c| is_alphabet(c) && !gostr::is_upper(c));
            }
        }
    } else if is_alphabet(r) {
        wt = Word::Alphabet;
        remaining = &remaining[size..];
        run(&mut remaining, &mut offset, r, &|c| is_alphabet(c) && !gostr::is_upper(c));
    } else if gostr::is_number(r) {
        wt = Word::Number;
        remaining = &remaining[size..];
        run(&mut remaining, &mut offset, r, &gostr::is_number);
    } else {
        wt = Word::Other;
        remaining = &remaining[size..];
        while !remaining.is_empty() {
            (r, size) = next_valid_rune(remaining, r);
            if size == 0 || is_connector(r) || is_alphabet(r) || gostr::is_number(r) || gostr::is_punct(r) {
                break;
            }
            offset += size;
            remaining = &remaining[size..];
        }
    }
    (wt, &s[..offset], remaining)
}

/// xstrings' `toLower`: upper-case and connector words are lowered (connectors become `connector`).
fn to_lower(out: &mut Vec<u8>, wt: Word, word: &[u8], connector: char) {
    if wt != Word::UpperCase && wt != Word::Connector {
        out.extend_from_slice(word);
        return;
    }
    for (r, _) in gostr::runes(word) {
        if is_connector(r) {
            gostr::push_rune(out, connector);
        } else if gostr::is_upper(r) {
            gostr::push_rune(out, gostr::to_lower(r));
        } else {
            gostr::push_rune(out, r);
        }
    }
}

/// `camelCaseToLowerCase` (ToSnakeCase with '_', ToKebabCase with '-').
pub(crate) fn lower_case(s: &[u8], connector: char) -> Vec<u8> {
    let mut out = Vec::new();
    if s.is_empty() {
        return out;
    }
    let (mut wt, mut word, mut remaining) = next_word(s);
    while !remaining.is_empty() {
        if wt != Word::Connector {
            to_lower(&mut out, wt, word, connector);
        }
        let prev = wt;
        let last = word;
        (wt, word, remaining) = next_word(remaining);
        match prev {
            Word::Number => {
                while wt == Word::Alphabet || wt == Word::Number {
                    to_lower(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if wt != Word::Invalid && wt != Word::Punct && wt != Word::Connector {
                    gostr::push_rune(&mut out, connector);
                }
            }
            Word::Connector => to_lower(&mut out, prev, last, connector),
            Word::Punct => {}
            _ => {
                if wt != Word::Number {
                    if wt != Word::Connector && wt != Word::Punct {
                        gostr::push_rune(&mut out, connector);
                    }
                    continue;
                }
                if remaining.is_empty() {
                    continue;
                }
                let last = word;
                (wt, word, remaining) = next_word(remaining);
                if wt != Word::Alphabet {
                    to_lower(&mut out, Word::Number, last, connector);
                    if wt != Word::Connector && wt != Word::Punct {
                        gostr::push_rune(&mut out, connector);
                    }
                    continue;
                }
                gostr::push_rune(&mut out, connector);
                to_lower(&mut out, Word::Number, last, connector);
                while wt == Word::Alphabet || wt == Word::Number {
                    to_lower(&mut out, wt, word, connector);
                    (wt, word, remaining) = next_word(remaining);
                }
                if wt != Word::Invalid && wt != Word::Connector && wt != Word::Punct {
                    gostr::push_rune(&mut out, connector);
                }
            }
        }
    }
    to_lower(&mut out, wt, word, connector);
    out
}
