//! Go 1.19's `encoding/json` for template values (Sprig's toJson family) and its decoding into
//! `interface{}` (fromJson). Go escapes `<>&`, U+2028/9 and control bytes its own way and picks `%e` for floats
//! below 1e-6 or from 1e21; both are reproduced here.

use std::collections::BTreeMap;

use crate::gostr;
use crate::value::{ElemTy, Value, float_digits};

/// Why a value cannot be encoded (Go's `json.Marshal` error or an unreproduced case).
pub(crate) enum EncodeError {
    /// Go fails too (NaN, infinities).
    Go,
    Unsupported(&'static str),
}

const MAX_DEPTH: usize = 100;
/// Bound on one encoding, checked while encoding: shared sub-lists can make a value exponentially large.
const MAX_ENCODED: usize = 16 << 20;

pub(crate) fn encode(v: &Value, escape_html: bool, indent: bool) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(&mut out, v, escape_html, indent, 0)?;
    Ok(out)
}

fn newline(out: &mut Vec<u8>, indent: bool, depth: usize) {
    if indent {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(b"  ");
        }
    }
}

fn encode_into(
    out: &mut Vec<u8>,
    v: &Value,
    html: bool,
    indent: bool,
    depth: usize,
) -> Result<(), EncodeError> {
    if depth > MAX_DEPTH {
        return Err(EncodeError::Unsupported("values nested this deep are not encoded"));
    }
    if out.len() > MAX_ENCODED {
        return Err(EncodeError::Unsupported("a value this large is not encoded"));
    }
    match v {
        Value::Nil => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(i, _) => out.extend_from_slice(i.to_string().as_bytes()),
        Value::Float(f) => out.extend_from_slice(encode_float(*f)?.as_bytes()),
        Value::Str(s) => encode_string(out, s, html),
        Value::Time(..) => return Err(EncodeError::Unsupported("encoding a time.Time is not reproduced")),
        Value::List(_, ElemTy::NilAny | ElemTy::NilStr) => out.extend_from_slice(b"null"),
        Value::List(l, _) => {
            out.push(b'[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(out, indent, depth + 1);
                encode_into(out, item, html, indent, depth + 1)?;
            }
            if !l.is_empty() {
                newline(out, indent, depth);
            }
            out.push(b']');
        }
        Value::Map(m, _) => {
            let m = m.borrow();
            out.push(b'{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                newline(out, indent, depth + 1);
                encode_string(out, k, html);
                out.push(b':');
                if indent {
                    out.push(b' ');
                }
                encode_into(out, item, html, indent, depth + 1)?;
            }
            if !m.is_empty() {
                newline(out, indent, depth);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn encode_float(f: f64) -> Result<String, EncodeError> {
    if !f.is_finite() {
        return Err(EncodeError::Go);
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, dp) = float_digits(f, None);
        let mut s = String::new();
        if f < 0.0 {
            s.push('-');
        }
        s.push(char::from(digits[0]));
        if digits.len() > 1 {
            s.push('.');
            s.extend(digits[1..].iter().map(|&d| char::from(d)));
        }
        let e = dp - 1;
        s.push('e');
        s.push(if e < 0 { '-' } else { '+' });
        s.push_str(&e.unsigned_abs().to_string());
        return Ok(s);
    }
    Ok(format!("{f}"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn encode_string(out: &mut Vec<u8>, s: &[u8], html: bool) {
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            match b {
                b'"' | b'\\' => {
                    out.push(b'\\');
                    out.push(b);
                }
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'<' | b'>' | b'&' if html => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xF)]);
                }
                b if b < 0x20 => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xF)]);
                }
                b => out.push(b),
            }
            i += 1;
            continue;
        }
        let (c, w) = gostr::decode_rune(&s[i..]);
        if c == gostr::RUNE_ERROR && w == 1 {
            out.extend_from_slice(b"\\ufffd");
        } else if c == '\u{2028}' || c == '\u{2029}' {
            out.extend_from_slice(if c == '\u{2028}' { b"\\u2028" } else { b"\\u2029" });
        } else {
            out.extend_from_slice(&s[i..i + w]);
        }
        i += w;
    }
    out.push(b'"');
}

/// `json.Unmarshal` into `interface{}`: objects become map[string]interface{}, numbers float64.
/// `None` when the input is not JSON that serde_json and Go read alike (Go's error text is not reproduced).
pub(crate) fn decode(s: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(s).ok()?;
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    convert(&v)
}

fn convert(v: &serde_json::Value) -> Option<Value> {
    Some(match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => {
            // Go parses the literal text as float64; serde_json keeps exact integers, whose nearest float is
            // the same value ParseFloat rounds to.
            let f = if let Some(u) = n.as_u64() {
                u as f64
            } else if let Some(i) = n.as_i64() {
                i as f64
            } else {
                n.as_f64()?
            };
            Value::Float(f)
        }
        serde_json::Value::String(s) => Value::str(s.as_bytes()),
        serde_json::Value::Array(a) => Value::list(a.iter().map(convert).collect::<Option<Vec<_>>>()?),
        serde_json::Value::Object(o) => {
            let mut m = BTreeMap::new();
            for (k, v) in o {
                m.insert(k.as_bytes().to_vec(), convert(v)?);
            }
            Value::map(m)
        }
    })
}
