//! Sprig 3.2.3's functions with Go's semantics: byte strings, `strings.*` rune handling, `cast` conversions,
//! panics that text/template turns into errors. Functions not listed in [`signature`] are refused by name with the
//! reason from [`refusal`].

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::Engine as _;

use crate::exec::State;
use crate::funcs::{CallError, CallResult, Param::*, Sig, fixed, variadic};
use crate::value::{ElemTy, Value};
use crate::{LimitKind, fmt, gostr, json, random};

pub(crate) fn signature(name: &str) -> Option<Sig> {
    Some(match name {
        "hello" | "now" => fixed(&[]),
        "upper" | "lower" | "title" | "trim" | "nospace" | "sha1sum" | "sha256sum" | "adler32sum"
        | "atoi" | "b64enc" | "b64dec" | "b32enc" | "b32dec" | "fromJson" | "mustFromJson" | "base"
        | "dir" | "clean" | "ext" | "isAbs" | "osBase" | "osClean" | "osDir" | "osExt" | "osIsAbs"
        | "regexQuoteMeta" | "fail" | "swapcase" | "initials" | "untitle" | "camelcase" | "snakecase"
        | "kebabcase" => fixed(&[Str]),
        "trimAll" | "trimall" | "trimSuffix" | "trimPrefix" | "contains" | "hasPrefix" | "hasSuffix"
        | "splitList" | "split" | "regexMatch" | "mustRegexMatch" | "regexFind" | "mustRegexFind" => {
            fixed(&[Str, Str])
        }
        "trunc" | "repeat" | "indent" | "nindent" | "abbrev" => fixed(&[Int, Str]),
        "abbrevboth" => fixed(&[Int, Int, Str]),
        "wrap" => fixed(&[Int, Str]),
        "wrapWith" => fixed(&[Int, Str, Str]),
        "substr" => fixed(&[Int, Int, Str]),
        "replace"
        | "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral" => fixed(&[Str, Str, Str]),
        "regexFindAll" | "mustRegexFindAll" | "regexSplit" | "mustRegexSplit" => fixed(&[Str, Str, Int]),
        "splitn" => fixed(&[Str, Int, Str]),
        "plural" => fixed(&[Str, Str, Int]),
        "quote" | "squote" | "cat" | "list" | "tuple" | "dict" | "coalesce" | "all" | "any" | "add"
        | "concat" => variadic(&[], Any),
        "toString" | "int64" | "int" | "float64" | "toStrings" | "add1" | "floor" | "ceil" | "sortAlpha"
        | "empty" | "toJson" | "toPrettyJson" | "toRawJson" | "mustToJson" | "mustToPrettyJson"
        | "mustToRawJson" | "typeOf" | "kindOf" | "first" | "mustFirst" | "last" | "mustLast" | "rest"
        | "mustRest" | "initial" | "mustInitial" | "reverse" | "mustReverse" | "uniq" | "mustUniq"
        | "compact" | "mustCompact" | "deepCopy" | "mustDeepCopy" | "htmlDate" => fixed(&[Any]),
        "sub" | "div" | "mod" | "deepEqual" | "append" | "push" | "mustAppend" | "mustPush" | "prepend"
        | "mustPrepend" | "has" | "mustHas" => fixed(&[Any, Any]),
        "addf" => variadic(&[], Any),
        "seq" => variadic(&[], Int),
        "toDecimal" => fixed(&[Any]),
        "add1f" => fixed(&[Any]),
        "subf" | "mulf" | "maxf" | "minf" => variadic(&[Any], Any),
        "mul" | "max" | "biggest" | "min" | "default" | "without" | "mustWithout" | "slice" | "mustSlice" => {
            variadic(&[Any], Any)
        }
        "round" => variadic(&[Any, Int], Float),
        "join" => fixed(&[Str, Any]),
        "ternary" => fixed(&[Any, Any, Bool]),
        "typeIs" | "typeIsLike" | "kindIs" => fixed(&[Str, Any]),
        "until" => fixed(&[Int]),
        "untilStep" => fixed(&[Int, Int, Int]),
        "get" | "unset" | "hasKey" => fixed(&[Map, Str]),
        "set" => fixed(&[Map, Str, Any]),
        "keys" => variadic(&[], Map),
        "values" => fixed(&[Map]),
        "pick" | "omit" => variadic(&[Map], Str),
        "pluck" => variadic(&[Str], Map),
        "dig" => variadic(&[], Any),
        "chunk" | "mustChunk" => fixed(&[Int, Any]),
        "date" => fixed(&[Str, Any]),
        "uuidv4" => fixed(&[]),
        "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" | "randBytes" => fixed(&[Int]),
        "randInt" => fixed(&[Int, Int]),
        "shuffle" | "bcrypt" => fixed(&[Str]),
        "htpasswd" => fixed(&[Str, Str]),
        "dateInZone" | "date_in_zone" => fixed(&[Str, Any, Str]),
        "htmlDateInZone" => fixed(&[Any, Str]),
        "unixEpoch" | "duration" => fixed(&[Any]),
        _ => return None,
    })
}

/// Why a function of the map is refused.
pub(crate) fn refusal(name: &str) -> &'static str {
    match name {
        "genPrivateKey"
        | "genCA"
        | "genCAWithKey"
        | "genSelfSignedCert"
        | "genSelfSignedCertWithKey"
        | "genSignedCert"
        | "genSignedCertWithKey"
        | "buildCustomCert" => {
            "key and certificate generation in a template makes a new secret at every unseal; generate it once and seal it"
        }
        "encryptAES" | "decryptAES" | "derivePassword" => {
            "home-made cryptography (AES-CBC with a key from the template, master-password derivation) is not offered"
        }
        "randAlphaNum" | "randAlpha" | "randAscii" | "randNumeric" | "randBytes" | "randInt" | "uuidv4"
        | "shuffle" | "bcrypt" | "htpasswd" => {
            "random output changes the Secret at every unseal; generate the value once and seal it"
        }
        "ago" | "durationRound" | "dateModify" | "date_modify" | "mustDateModify" | "must_date_modify"
        | "toDate" | "mustToDate" => "time arithmetic and parsing are not reproduced",
        "semver" | "semverCompare" => "Masterminds/semver constraint semantics are not reproduced",
        "urlParse" | "urlJoin" => "Go's net/url parsing is not reproduced",
        "divf" => "shopspring/decimal's 16-digit division is not reproduced",
        "merge" | "mergeOverwrite" | "mustMerge" | "mustMergeOverwrite" => {
            "mergo's deep-merge rules are not reproduced"
        }
        _ => "not implemented in arcseal",
    }
}

fn fail<T>(why: &'static str) -> Result<T, CallError> {
    Err(CallError::Failed(why))
}

fn unsupported<T>(why: &'static str) -> Result<T, CallError> {
    Err(CallError::Unsupported(why))
}

/// The bytes of a `string` parameter (empty for anything else, which the signature check excludes).
fn s(v: &Value) -> &[u8] {
    v.as_bytes().unwrap_or_default()
}

/// The value of an `int` parameter (0 for anything else, which the signature check excludes).
fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i, _) => *i,
        _ => 0,
    }
}

fn b(v: bool) -> Value {
    Value::Bool(v)
}

fn st(v: impl Into<Rc<[u8]>>) -> Value {
    Value::str(v)
}

/// Sprig's `strval`: strings as they are, everything else `%v`.
fn strval(v: &Value) -> Result<Vec<u8>, CallError> {
    match v {
        Value::Str(s) => Ok(s.to_vec()),
        v => fmt::print_v(v).map_err(CallError::Unsupported),
    }
}

/// Builds a string, refusing ones longer than the output bound before allocating them.
fn sized(st_: &State<'_>, len: u128) -> Result<usize, CallError> {
    if len > st_.limits.max_output as u128 {
        return Err(CallError::Limit(LimitKind::Output));
    }
    Ok(len as usize)
}

/// Calls a Sprig function. Invariant (as in [`crate::funcs::call`]): `a` matches [`signature`] in count and type,
/// so `a[i]` exists for every fixed parameter and [`s`]/[`int`] see strings and ints where the signature says so.
pub(crate) fn call(st_: &mut State<'_>, name: &str, a: Vec<Value>) -> CallResult {
    let out = match name {
        "hello" => st(&b"Hello!"[..]),
        "upper" => st(upper(s(&a[0]))),
        "lower" => st(lower(s(&a[0]))),
        "title" => st(title(s(&a[0]))),
        "swapcase" => st(swapcase(s(&a[0]))),
        "wrap" | "wrapWith" => {
            let (text, sep) = if name == "wrap" { (s(&a[1]), &b"\n"[..]) } else { (s(&a[2]), s(&a[1])) };
            // At most one separator per input byte.
            sized(st_, text.len() as u128 * (1 + sep.len().max(1) as u128))?;
            st(wrap(text, int(&a[0]), sep, name == "wrapWith"))
        }
        "camelcase" => st(crate::xstrings::camel(s(&a[0]))),
        "snakecase" => st(crate::xstrings::lower_case(s(&a[0]), '_')),
        "kebabcase" => st(crate::xstrings::lower_case(s(&a[0]), '-')),
        "initials" => st(initials(s(&a[0]))),
        "untitle" => st(untitle(s(&a[0]))),
        "abbrev" => {
            let (w, x) = (int(&a[0]), s(&a[1]));
            if w < 4 { st(x) } else { st(abbreviate(x, 0, w)) }
        }
        "abbrevboth" => {
            let (l, r, x) = (int(&a[0]), int(&a[1]), s(&a[2]));
            if r < 4 || (l > 0 && r < 7) { st(x) } else { st(abbreviate(x, l, r)) }
        }
        "trim" => st(trim_func(s(&a[0]), gostr::is_space)),
        "trimAll" | "trimall" => st(trim_cutset(s(&a[1]), s(&a[0]))),
        "trimSuffix" => st(s(&a[1]).strip_suffix(s(&a[0])).unwrap_or(s(&a[1]))),
        "trimPrefix" => st(s(&a[1]).strip_prefix(s(&a[0])).unwrap_or(s(&a[1]))),
        "nospace" => st(nospace(s(&a[0]))),
        "contains" => b(find(s(&a[1]), s(&a[0])).is_some()),
        "hasPrefix" => b(s(&a[1]).starts_with(s(&a[0]))),
        "hasSuffix" => b(s(&a[1]).ends_with(s(&a[0]))),
        "trunc" => {
            let (c, x) = (int(&a[0]), s(&a[1]));
            let n = x.len() as i64;
            if c < 0 && n + c > 0 {
                st(&x[ix(n + c)..])
            } else if c >= 0 && n > c {
                st(&x[..ix(c)])
            } else {
                st(x)
            }
        }
        "substr" => {
            let (start, end, x) = (int(&a[0]), int(&a[1]), s(&a[2]));
            let n = x.len() as i64;
            if start < 0 {
                if end < 0 || end > n {
                    return fail("slice bounds out of range");
                }
                st(&x[..ix(end)])
            } else if end < 0 || end > n {
                if start > n {
                    return fail("slice bounds out of range");
                }
                st(&x[ix(start)..])
            } else {
                if start > end {
                    return fail("slice bounds out of range");
                }
                st(&x[ix(start)..ix(end)])
            }
        }
        "repeat" => {
            let (c, x) = (int(&a[0]), s(&a[1]));
            if c < 0 {
                return fail("negative Repeat count");
            }
            sized(st_, x.len() as u128 * c as u128)?;
            st(x.repeat(ix(c)))
        }
        "indent" | "nindent" => {
            let (n, x) = (int(&a[0]), s(&a[1]));
            if n < 0 {
                return fail("negative Repeat count");
            }
            let lines = x.iter().filter(|&&c| c == b'\n').count() as u128 + 1;
            sized(st_, x.len() as u128 + lines * n as u128 + 1)?;
            let pad = vec![b' '; ix(n)];
            let mut out = Vec::new();
            if name == "nindent" {
                out.push(b'\n');
            }
            out.extend_from_slice(&pad);
            for &c in x {
                out.push(c);
                if c == b'\n' {
                    out.extend_from_slice(&pad);
                }
            }
            st(out)
        }
        "replace" => st(replace(st_, s(&a[2]), s(&a[0]), s(&a[1]))?),
        "plural" => {
            if int(&a[2]) == 1 {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "quote" | "squote" => {
            let mut out = Vec::new();
            for v in a.iter().filter(|v| !matches!(v, Value::Nil)) {
                if !out.is_empty() {
                    out.push(b' ');
                }
                let text = strval(v)?;
                if name == "quote" {
                    out.extend_from_slice(&gostr::quote(&text));
                } else {
                    out.push(b'\'');
                    out.extend_from_slice(&text);
                    out.push(b'\'');
                }
            }
            st(out)
        }
        "cat" => {
            let vals: Vec<Value> = a.into_iter().filter(|v| !matches!(v, Value::Nil)).collect();
            let mut out = Vec::new();
            for (i, v) in vals.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(&fmt::print_v(v).map_err(CallError::Unsupported)?);
            }
            st(out)
        }
        "sha1sum" => {
            use sha1::Digest as _;
            st(hex(&sha1::Sha1::digest(s(&a[0]))))
        }
        "sha256sum" => {
            use sha2::Digest as _;
            st(hex(&sha2::Sha256::digest(s(&a[0]))))
        }
        "adler32sum" => st(adler32(s(&a[0])).to_string().into_bytes()),
        "toString" => st(strval(&a[0])?),
        "atoi" => Value::int(atoi(s(&a[0]))),
        "int64" => Value::int64(to_int64(&a[0])?),
        "int" => Value::int(to_int64(&a[0])?),
        "float64" => Value::Float(to_float64(&a[0])?),
        "add1" => Value::int64(to_int64(&a[0])?.wrapping_add(1)),
        "add" => {
            let mut sum = 0i64;
            for v in &a {
                sum = sum.wrapping_add(to_int64(v)?);
            }
            Value::int64(sum)
        }
        "sub" => Value::int64(to_int64(&a[0])?.wrapping_sub(to_int64(&a[1])?)),
        "mul" => {
            let mut p = to_int64(&a[0])?;
            for v in &a[1..] {
                p = p.wrapping_mul(to_int64(v)?);
            }
            Value::int64(p)
        }
        "div" | "mod" => {
            let (x, y) = (to_int64(&a[0])?, to_int64(&a[1])?);
            if y == 0 {
                return fail("integer divide by zero");
            }
            Value::int64(if name == "div" { x.wrapping_div(y) } else { x.wrapping_rem(y) })
        }
        "max" | "biggest" | "min" => {
            let mut m = to_int64(&a[0])?;
            for v in &a[1..] {
                let x = to_int64(v)?;
                m = if name == "min" { m.min(x) } else { m.max(x) };
            }
            Value::int64(m)
        }
        "floor" => Value::Float(to_float64(&a[0])?.floor()),
        "ceil" => Value::Float(to_float64(&a[0])?.ceil()),
        "round" => {
            let on = match a.get(2) {
                Some(Value::Float(f)) => *f,
                _ => 0.5,
            };
            Value::Float(crate::decimal::round(to_float64(&a[0])?, int(&a[1]), on)?)
        }
        "maxf" | "minf" => {
            let mut m = to_float64(&a[0])?;
            for v in &a[1..] {
                let x = to_float64(v)?;
                m = if name == "maxf" { crate::decimal::go_max(m, x) } else { crate::decimal::go_min(m, x) };
            }
            Value::Float(m)
        }
        "addf" | "add1f" | "subf" | "mulf" => {
            let floats = a.iter().map(to_float64).collect::<Result<Vec<_>, _>>()?;
            let r = match name {
                "addf" => crate::decimal::op(0.0, &floats, "add")?,
                "add1f" => crate::decimal::op(floats[0], &[1.0], "add")?,
                "subf" => crate::decimal::op(floats[0], &floats[1..], "sub")?,
                _ => crate::decimal::op(floats[0], &floats[1..], "mul")?,
            };
            Value::Float(r)
        }
        "seq" => {
            let p: Vec<i64> = a.iter().map(int).collect();
            let (start, end, step) = match p[..] {
                [end] => (1, end, if end < 1 { -1 } else { 1 }),
                [start, end] => (start, end, if end < start { -1 } else { 1 }),
                [start, step, end] => {
                    if end < start && step > 0 {
                        return Ok(st(&b""[..]));
                    }
                    (start, end, step)
                }
                _ => return Ok(st(&b""[..])),
            };
            // Sprig stops one increment past `end` (the increment is the direction, not the step).
            let inc = if end < start { -1 } else { 1 };
            let Value::List(items, _) = until_step(st_, start, end.wrapping_add(inc), step)? else {
                return fail("seq");
            };
            let parts: Vec<String> = items.iter().map(|v| int(v).to_string()).collect();
            st(parts.join(" ").into_bytes())
        }
        "toDecimal" => {
            // strconv.ParseInt(fmt.Sprint(v), 8, 64), 0 on error: sign allowed, no prefix, no underscores.
            let text = strval(&a[0])?;
            let t = std::str::from_utf8(&text).unwrap_or("");
            let body = t.strip_prefix(['+', '-']).unwrap_or(t);
            let ok = !body.is_empty() && body.bytes().all(|c| (b'0'..=b'7').contains(&c));
            Value::int64(if ok { i64::from_str_radix(t, 8).unwrap_or(0) } else { 0 })
        }
        "until" => until_step(st_, 0, int(&a[0]), if int(&a[0]) < 0 { -1 } else { 1 })?,
        "untilStep" => until_step(st_, int(&a[0]), int(&a[1]), int(&a[2]))?,
        "split" | "splitn" => {
            let (sep, n, x) =
                if name == "split" { (s(&a[0]), -1, s(&a[1])) } else { (s(&a[0]), int(&a[1]), s(&a[2])) };
            let parts = split_n(x, sep, n);
            let m: BTreeMap<Vec<u8>, Value> =
                parts.into_iter().enumerate().map(|(i, p)| (format!("_{i}").into_bytes(), st(p))).collect();
            Value::Map(Rc::new(std::cell::RefCell::new(m)), ElemTy::Str)
        }
        "splitList" => Value::str_list(split_n(s(&a[1]), s(&a[0]), -1)),
        "toStrings" => Value::str_list(strslice(&a[0])?),
        "join" => {
            let parts = strslice(&a[1])?;
            let total: u128 = parts.iter().map(|p| p.len() as u128).sum::<u128>()
                + (parts.len() as u128).saturating_sub(1) * s(&a[0]).len() as u128;
            sized(st_, total)?;
            st(parts.join(s(&a[0])))
        }
        "sortAlpha" => match &a[0] {
            Value::List(..) => {
                let mut v = strslice(&a[0])?;
                v.sort();
                Value::str_list(v)
            }
            other => Value::str_list(vec![strval(other)?]),
        },
        "default" => {
            if a.len() < 2 || empty(&a[1]) {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "empty" => b(empty(&a[0])),
        "coalesce" => a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil),
        "all" => b(a.iter().all(|v| !empty(v))),
        "any" => b(a.iter().any(|v| !empty(v))),
        "ternary" => {
            if matches!(a[2], Value::Bool(true)) {
                a[0].clone()
            } else {
                a[1].clone()
            }
        }
        "toJson" | "toPrettyJson" | "mustToJson" | "mustToPrettyJson" | "toRawJson" | "mustToRawJson" => {
            let raw = name.ends_with("RawJson");
            let pretty = name.ends_with("PrettyJson");
            match json::encode(&a[0], !raw, pretty) {
                Ok(v) => st(v),
                Err(json::EncodeError::Unsupported(why)) => return unsupported(why),
                Err(json::EncodeError::Go) if name.starts_with("must") => {
                    return fail("json: unsupported value");
                }
                Err(json::EncodeError::Go) => st(&b""[..]),
            }
        }
        "fromJson" | "mustFromJson" => match json::decode(s(&a[0])) {
            Some(v) => v,
            None if name == "mustFromJson" => return fail("invalid JSON"),
            None => {
                return unsupported(
                    "fromJson of input that is not plain valid JSON (Go's error text is not reproduced)",
                );
            }
        },
        "typeOf" => st(if let Value::Nil = a[0] { &b"<nil>"[..] } else { a[0].type_name().as_bytes() }),
        "kindOf" => st(a[0].kind_name().as_bytes()),
        "typeIs" => b(s(&a[0]) == type_of(&a[1]).as_bytes()),
        "typeIsLike" => {
            let t = type_of(&a[1]);
            b(s(&a[0]) == t.as_bytes() || s(&a[0]) == format!("*{t}").as_bytes())
        }
        "kindIs" => b(s(&a[0]) == a[1].kind_name().as_bytes()),
        "deepEqual" => {
            let mut budget = Budget::new();
            let r = deep_equal(&a[0], &a[1], &mut budget);
            budget.charge(st_)?;
            b(r?)
        }
        "deepCopy" | "mustDeepCopy" => {
            let mut budget = Budget::new();
            let r = deep_copy(&a[0], &mut budget);
            budget.charge(st_)?;
            r?
        }
        "base" | "osBase" => st(path_base(s(&a[0]))),
        "dir" | "osDir" => st(path_dir(s(&a[0]))),
        "clean" | "osClean" => st(path_clean(s(&a[0]))),
        "ext" | "osExt" => st(path_ext(s(&a[0]))),
        "isAbs" | "osIsAbs" => b(s(&a[0]).starts_with(b"/")),
        "b64enc" => st(base64::engine::general_purpose::STANDARD.encode(s(&a[0])).into_bytes()),
        "b64dec" => st(b64dec(s(&a[0]))),
        "b32enc" => st(b32enc(s(&a[0]))),
        "b32dec" => st(match go_base32_decode(s(&a[0])) {
            Ok(v) => v,
            Err(pos) => format!("illegal base32 data at input byte {pos}").into_bytes(),
        }),
        "list" | "tuple" => Value::list(a),
        "dict" => {
            let mut m = BTreeMap::new();
            let mut i = 0;
            while i < a.len() {
                let k = strval(&a[i])?;
                let v = a.get(i + 1).cloned().unwrap_or_else(|| st(&b""[..]));
                m.insert(k, v);
                i += 2;
            }
            Value::map(m)
        }
        "get" => map_of(&a[0])?.borrow().get(s(&a[1])).cloned().unwrap_or_else(|| st(&b""[..])),
        "set" => {
            map_of(&a[0])?.borrow_mut().insert(s(&a[1]).to_vec(), a[2].clone());
            a[0].clone()
        }
        "unset" => {
            map_of(&a[0])?.borrow_mut().remove(s(&a[1]));
            a[0].clone()
        }
        "hasKey" => b(map_of(&a[0])?.borrow().contains_key(s(&a[1]))),
        "keys" => {
            // Go's map order is random; sorted is one of the orders Go may print.
            let mut k: Vec<Vec<u8>> = Vec::new();
            for m in &a {
                k.extend(map_of(m)?.borrow().keys().cloned());
            }
            Value::str_list(k)
        }
        "values" => Value::list(map_of(&a[0])?.borrow().values().cloned().collect()),
        "pick" | "omit" => {
            let keys: Vec<&[u8]> = a[1..].iter().map(s).collect();
            let m = map_of(&a[0])?.borrow();
            let out = m
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_slice()) == (name == "pick"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Value::map(out)
        }
        "pluck" => {
            let mut out = Vec::new();
            for m in &a[1..] {
                if let Some(v) = map_of(m)?.borrow().get(s(&a[0])) {
                    out.push(v.clone());
                }
            }
            Value::list(out)
        }
        "dig" => dig(&a)?,
        "first" | "mustFirst" | "last" | "mustLast" => {
            let l = list_of(st_, &a[0])?;
            let item = if name.ends_with("irst") { l.first() } else { l.last() };
            item.cloned().unwrap_or(Value::Nil)
        }
        "rest" | "mustRest" | "initial" | "mustInitial" => {
            let l = list_of(st_, &a[0])?;
            if l.is_empty() {
                Value::List(Rc::default(), ElemTy::NilAny)
            } else if name.ends_with("est") {
                Value::list(l[1..].to_vec())
            } else {
                Value::list(l[..l.len() - 1].to_vec())
            }
        }
        "reverse" | "mustReverse" => {
            let mut l = list_of(st_, &a[0])?;
            l.reverse();
            Value::list(l)
        }
        "uniq" | "mustUniq" => {
            let l = list_of(st_, &a[0])?;
            let mut out: Vec<Value> = Vec::new();
            let mut budget = Budget::new();
            for v in l {
                let mut seen = false;
                st_.step_n(out.len() as u64).map_err(|_| CallError::Limit(LimitKind::Steps))?;
                for o in &out {
                    if deep_equal(o, &v, &mut budget)? {
                        seen = true;
                        break;
                    }
                }
                if !seen {
                    out.push(v);
                }
            }
            budget.charge(st_)?;
            Value::list(out)
        }
        "compact" | "mustCompact" => {
            let l = list_of(st_, &a[0])?;
            Value::list(l.into_iter().filter(|v| !empty(v)).collect())
        }
        "without" | "mustWithout" => {
            let l = list_of(st_, &a[0])?;
            let mut keep = Vec::new();
            let mut budget = Budget::new();
            st_.step_n((l.len() as u64).saturating_mul(a.len() as u64))
                .map_err(|_| CallError::Limit(LimitKind::Steps))?;
            for v in l {
                let mut found = false;
                for o in &a[1..] {
                    if deep_equal(o, &v, &mut budget)? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    keep.push(v);
                }
            }
            budget.charge(st_)?;
            Value::list(keep)
        }
        "has" | "mustHas" => {
            if let Value::Nil = a[1] {
                b(false)
            } else {
                let l = list_of(st_, &a[1])?;
                let mut found = false;
                let mut budget = Budget::new();
                st_.step_n(l.len() as u64).map_err(|_| CallError::Limit(LimitKind::Steps))?;
                for v in &l {
                    if deep_equal(v, &a[0], &mut budget)? {
                        found = true;
                        break;
                    }
                }
                budget.charge(st_)?;
                b(found)
            }
        }
        "append" | "push" | "mustAppend" | "mustPush" | "prepend" | "mustPrepend" => {
            let mut l = list_of(st_, &a[0])?;
            if name.contains("repend") {
                l.insert(0, a[1].clone());
            } else {
                l.push(a[1].clone());
            }
            Value::list(l)
        }
        "concat" => {
            let mut out = Vec::new();
            for l in &a {
                out.extend(list_of(st_, l)?);
            }
            // Sprig appends to a nil slice: nothing appended stays nil.
            if out.is_empty() { Value::List(Rc::default(), ElemTy::NilAny) } else { Value::list(out) }
        }
        "chunk" | "mustChunk" => {
            let size = int(&a[0]);
            let l = list_of(st_, &a[1])?;
            if size <= 0 {
                return fail("chunk size must be positive");
            }
            Value::list(l.chunks(ix(size)).map(|c| Value::list(c.to_vec())).collect())
        }
        "slice" | "mustSlice" => {
            let l = list_of(st_, &a[0])?;
            let n = l.len() as i64;
            let (mut lo, mut hi) = (0, n);
            if let Some(v) = a.get(1) {
                lo = to_int64(v)?;
            }
            if let Some(v) = a.get(2) {
                hi = to_int64(v)?;
            }
            if lo < 0 || hi > n || lo > hi {
                return fail("slice bounds out of range");
            }
            Value::list(l[ix(lo)..ix(hi)].to_vec())
        }
        "fail" => return fail("fail called"),
        "regexMatch"
        | "mustRegexMatch"
        | "regexFind"
        | "mustRegexFind"
        | "regexFindAll"
        | "mustRegexFindAll"
        | "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral"
        | "regexSplit"
        | "mustRegexSplit" => {
            // Compiling a pattern costs far more than a step.
            st_.step_n(1000).map_err(|_| CallError::Limit(LimitKind::Steps))?;
            crate::sprig_regex::call(name, &a, st_.limits.max_output)?
        }
        "regexQuoteMeta" => {
            let mut out = Vec::new();
            for &c in s(&a[0]) {
                if b"\\.+*?()|[]{}^$".contains(&c) {
                    out.push(b'\\');
                }
                out.push(c);
            }
            st(out)
        }
        "now" => crate::date::now()?,
        "uuidv4" => st(random::uuidv4()?),
        "randAlphaNum" | "randAlpha" | "randNumeric" | "randAscii" if int(&a[0]) > 0 => {
            sized(st_, u128::from(int(&a[0]).unsigned_abs()))?;
            return call_random(name, int(&a[0]));
        }
        "randAlphaNum" => st(random::string_from(random::ALPHANUM, int(&a[0]))?),
        "randAlpha" => st(random::string_from(random::ALPHA, int(&a[0]))?),
        "randNumeric" => st(random::string_from(random::NUMERIC, int(&a[0]))?),
        "randAscii" => st(random::ascii(int(&a[0]))?),
        "randBytes" => st(random::bytes(int(&a[0]), st_.limits.max_output)?),
        "randInt" => Value::int(random::int(int(&a[0]), int(&a[1]))?),
        "shuffle" => st(random::shuffle(s(&a[0]))?),
        "bcrypt" | "htpasswd" => {
            // A cost-10 bcrypt takes tens of milliseconds: a rendering may run about twenty of them.
            st_.step_n(50_000).map_err(|_| CallError::Limit(LimitKind::Steps))?;
            st(if name == "bcrypt" {
                random::bcrypt(s(&a[0]))?
            } else {
                random::htpasswd(s(&a[0]), s(&a[1]))?
            })
        }
        "date" => st(crate::date::date(s(&a[0]), &a[1], b"Local")?),
        "dateInZone" | "date_in_zone" => st(crate::date::date(s(&a[0]), &a[1], s(&a[2]))?),
        "htmlDate" => st(crate::date::date(b"2006-01-02", &a[0], b"Local")?),
        "htmlDateInZone" => st(crate::date::date(b"2006-01-02", &a[0], s(&a[1]))?),
        "duration" => {
            // Sprig reads an int64 or a decimal string (strconv.ParseInt keeps the clamped value on overflow);
            // anything else, plain int included, is 0. Go's Duration multiplication wraps.
            let n = match &a[0] {
                Value::Int(n, crate::value::IntTy::Int64) => *n,
                Value::Str(x) => {
                    let t = std::str::from_utf8(x).unwrap_or("");
                    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
                    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
                        0
                    } else {
                        t.parse::<i64>().unwrap_or(if t.starts_with('-') { i64::MIN } else { i64::MAX })
                    }
                }
                _ => 0,
            };
            st(crate::date::go_duration(n.wrapping_mul(1_000_000_000)).into_bytes())
        }
        "unixEpoch" => match &a[0] {
            Value::Time(secs, _) => st(secs.to_string().into_bytes()),
            _ => return fail("wrong type for value; expected time.Time"),
        },
        _ => return unsupported(refusal(name)),
    };
    if let Value::Str(x) = &out {
        sized(st_, x.len() as u128)?;
    }
    crate::funcs::charge_size(st_, &out)?;
    Ok(out)
}

fn call_random(name: &str, count: i64) -> CallResult {
    let set = match name {
        "randAlphaNum" => random::ALPHANUM,
        "randAlpha" => random::ALPHA,
        "randNumeric" => random::NUMERIC,
        _ => return Ok(st(random::ascii(count)?)),
    };
    Ok(st(random::string_from(set, count)?))
}

/// A Go int already checked to be a valid index or count (non-negative, within a length or the output bound).
fn ix(i: i64) -> usize {
    usize::try_from(i).unwrap_or(0)
}

fn hex(b: &[u8]) -> Vec<u8> {
    const H: &[u8; 16] = b"0123456789abcdef";
    b.iter().flat_map(|&c| [H[usize::from(c >> 4)], H[usize::from(c & 15)]]).collect()
}

fn adler32(b: &[u8]) -> u32 {
    let (mut a, mut s2) = (1u32, 0u32);
    for &c in b {
        a = (a + u32::from(c)) % 65521;
        s2 = (s2 + a) % 65521;
    }
    (s2 << 16) | a
}

/// `strings.ToUpper`.
pub(crate) fn upper(x: &[u8]) -> Vec<u8> {
    if x.is_ascii() {
        return x.to_ascii_uppercase();
    }
    gostr::map_runes(x, gostr::to_upper)
}

/// `strings.ToLower`.
pub(crate) fn lower(x: &[u8]) -> Vec<u8> {
    if x.is_ascii() {
        return x.to_ascii_lowercase();
    }
    gostr::map_runes(x, gostr::to_lower)
}

/// `strings.Title`.
fn title(x: &[u8]) -> Vec<u8> {
    let mut prev = ' ';
    gostr::map_runes(x, |r| {
        let sep = is_separator(prev);
        prev = r;
        if sep { gostr::to_title(r) } else { r }
    })
}

fn is_separator(r: char) -> bool {
    if r.is_ascii() {
        return !(r.is_ascii_alphanumeric() || r == '_');
    }
    if gostr::is_letter(r) || gostr::is_digit(r) {
        return false;
    }
    gostr::is_space(r)
}

/// goutils' SwapCase: upper and title to lower, lower to upper (title case after a space).
fn swapcase(x: &[u8]) -> Vec<u8> {
    let mut space = true;
    gostr::map_runes(x, |c| {
        if gostr::is_upper(c) || gostr::is_title(c) {
            space = false;
            gostr::to_lower(c)
        } else if gostr::is_lower(c) {
            let was = std::mem::replace(&mut space, false);
            if was { gostr::to_title(c) } else { gostr::to_upper(c) }
        } else {
            space = gostr::is_space(c);
            c
        }
    })
}

/// goutils' WrapCustom: break at the last space within `width` bytes; long words split only if asked.
fn wrap(x: &[u8], width: i64, newline: &[u8], long_words: bool) -> Vec<u8> {
    if x.is_empty() {
        return Vec::new();
    }
    let newline: &[u8] = if newline.is_empty() { b"\n" } else { newline };
    let w = usize::try_from(width.max(1)).unwrap_or(usize::MAX);
    let n = x.len();
    let mut out = Vec::with_capacity(n + n / w.max(1) * newline.len());
    let mut offset = 0;
    while n - offset > w {
        if x[offset] == b' ' {
            offset += 1;
            continue;
        }
        // In bounds: n - offset > w, so offset + w + 1 <= n.
        let end = offset + w + 1;
        if let Some(sp) = x[offset..end].iter().rposition(|&c| c == b' ') {
            out.extend_from_slice(&x[offset..offset + sp]);
            out.extend_from_slice(newline);
            offset += sp + 1;
        } else if long_words {
            out.extend_from_slice(&x[offset..offset + w]);
            out.extend_from_slice(newline);
            offset += w;
        } else {
            let end = offset + w;
            match x[end..].iter().position(|&c| c == b' ') {
                None => {
                    out.extend_from_slice(&x[offset..]);
                    offset = n;
                }
                Some(i) => {
                    out.extend_from_slice(&x[offset..end + i]);
                    out.extend_from_slice(newline);
                    offset = end + i + 1;
                }
            }
        }
    }
    out.extend_from_slice(&x[offset..]);
    out
}

/// goutils' Initials: byte by byte (each byte a Latin-1 rune), the first of each space-separated word.
fn initials(x: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut gap = true;
    for &b in x {
        let c = char::from(b);
        if gostr::is_space(c) {
            gap = true;
        } else if gap {
            gostr::push_rune(&mut out, c);
            gap = false;
        }
    }
    out
}

/// goutils' Uncapitalize: the first rune of each space-separated word lowered.
fn untitle(x: &[u8]) -> Vec<u8> {
    if x.is_empty() {
        return Vec::new();
    }
    let mut next = true;
    gostr::map_runes(x, |c| {
        if gostr::is_space(c) {
            next = true;
            c
        } else if std::mem::replace(&mut next, false) {
            gostr::to_lower(c)
        } else {
            c
        }
    })
}

/// goutils' AbbreviateFull (byte offsets, "..." marker); Sprig has already excluded the widths that error.
fn abbreviate(x: &[u8], offset: i64, max_width: i64) -> Vec<u8> {
    let n = x.len() as i64;
    if x.is_empty() || n <= max_width {
        return x.to_vec();
    }
    let mut offset = offset.min(n);
    if n - offset < max_width - 3 {
        offset = n - (max_width - 3);
    }
    let mut out = b"...".to_vec();
    if offset <= 4 {
        let mut head = x[..ix(max_width - 3)].to_vec();
        head.extend_from_slice(b"...");
        return head;
    }
    if offset + max_width - 3 < n {
        out.extend_from_slice(&abbreviate(&x[ix(offset)..], 0, max_width - 3));
        return out;
    }
    out.extend_from_slice(&x[ix(n - (max_width - 3))..]);
    out
}

/// Go's `utf8.DecodeLastRune`.
fn decode_last_rune(x: &[u8]) -> (char, usize) {
    let n = x.len();
    if n == 0 {
        return (gostr::RUNE_ERROR, 0);
    }
    if x[n - 1] < 0x80 {
        return (char::from(x[n - 1]), 1);
    }
    let lim = n.saturating_sub(4);
    let mut start = n - 1;
    while start > lim && (x[start] & 0xC0) == 0x80 {
        start -= 1;
    }
    let (r, w) = gostr::decode_rune(&x[start..]);
    if start + w != n {
        return (gostr::RUNE_ERROR, 1);
    }
    (r, w)
}

fn trim_func(x: &[u8], f: impl Fn(char) -> bool) -> Vec<u8> {
    let mut start = 0;
    while start < x.len() {
        let (r, w) = gostr::decode_rune(&x[start..]);
        if !f(r) || (r == gostr::RUNE_ERROR && w == 1) {
            break;
        }
        start += w;
    }
    let mut end = x.len();
    while end > start {
        let (r, w) = decode_last_rune(&x[start..end]);
        if !f(r) || (r == gostr::RUNE_ERROR && w == 1) {
            break;
        }
        end -= w;
    }
    x[start..end].to_vec()
}

/// `strings.Trim(x, cutset)`.
fn trim_cutset(x: &[u8], cutset: &[u8]) -> Vec<u8> {
    if x.is_empty() || cutset.is_empty() {
        return x.to_vec();
    }
    if cutset.is_ascii() {
        let mut start = 0;
        while start < x.len() && cutset.contains(&x[start]) {
            start += 1;
        }
        let mut end = x.len();
        while end > start && cutset.contains(&x[end - 1]) {
            end -= 1;
        }
        return x[start..end].to_vec();
    }
    let set: std::collections::BTreeSet<char> = gostr::runes(cutset).map(|(c, _)| c).collect();
    // An invalid byte decodes to U+FFFD, which a cutset holding U+FFFD or an invalid byte contains.
    let mut start = 0;
    while start < x.len() {
        let (r, w) = gostr::decode_rune(&x[start..]);
        if !set.contains(&r) {
            break;
        }
        start += w;
    }
    let mut end = x.len();
    while end > start {
        let (r, w) = decode_last_rune(&x[start..end]);
        if !set.contains(&r) {
            break;
        }
        end -= w;
    }
    x[start..end].to_vec()
}

/// goutils' `DeleteWhiteSpace`: byte by byte, each byte taken as a Latin-1 rune (and re-encoded as UTF-8 when any
/// space was removed).
fn nospace(x: &[u8]) -> Vec<u8> {
    let is_sp = |c: u8| gostr::is_space(char::from(c));
    if !x.iter().any(|&c| is_sp(c)) {
        return x.to_vec();
    }
    let mut out = Vec::with_capacity(x.len());
    for &c in x.iter().filter(|&&c| !is_sp(c)) {
        gostr::push_rune(&mut out, char::from(c));
    }
    out
}

/// `strings.Index` (linear time).
fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

/// `strings.Replace(x, old, new, -1)`.
fn replace(st_: &State<'_>, x: &[u8], old: &[u8], new: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::new();
    if old.is_empty() {
        // An empty old string matches at the start and after each rune.
        let count = gostr::rune_count(x) as u128 + 1;
        sized(st_, x.len() as u128 + count * new.len() as u128)?;
        out.extend_from_slice(new);
        for (i, (_, w)) in gostr::runes(x).scan(0usize, |p, (c, w)| {
            let s0 = *p;
            *p += w;
            Some((s0, (c, w)))
        }) {
            out.extend_from_slice(&x[i..i + w]);
            out.extend_from_slice(new);
        }
        return Ok(out);
    }
    let mut i = 0;
    while let Some(p) = find(&x[i..], old) {
        out.extend_from_slice(&x[i..i + p]);
        out.extend_from_slice(new);
        i += p + old.len();
        sized(st_, out.len() as u128)?;
    }
    out.extend_from_slice(&x[i..]);
    Ok(out)
}

/// `strings.SplitN(x, sep, n)` (n < 0: all).
fn split_n(x: &[u8], sep: &[u8], n: i64) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    if sep.is_empty() {
        // Explode into runes (invalid bytes one by one).
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut i = 0;
        while i < x.len() {
            if n > 0 && parts.len() as i64 == n - 1 {
                parts.push(x[i..].to_vec());
                return parts;
            }
            let (_, w) = gostr::decode_rune(&x[i..]);
            parts.push(x[i..i + w].to_vec());
            i += w;
        }
        return parts;
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while n < 0 || (parts.len() as i64) < n - 1 {
        match find(&x[i..], sep) {
            Some(p) => {
                parts.push(x[i..i + p].to_vec());
                i += p + sep.len();
            }
            None => break,
        }
    }
    parts.push(x[i..].to_vec());
    parts
}

/// Sprig's `strslice`.
fn strslice(v: &Value) -> Result<Vec<Vec<u8>>, CallError> {
    match v {
        Value::List(l, _) => {
            l.iter().filter(|x| !matches!(x, Value::Nil)).map(strval).collect::<Result<Vec<_>, _>>()
        }
        Value::Nil => Ok(Vec::new()),
        other => Ok(vec![strval(other)?]),
    }
}

/// `strconv.Atoi`, 0 on error.
fn atoi(x: &[u8]) -> i64 {
    let t = std::str::from_utf8(x).unwrap_or("");
    let body = t.strip_prefix(['+', '-']).unwrap_or(t);
    if body.is_empty() || !body.bytes().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    // Go's Atoi returns the clamped value with its range error, and Sprig keeps the value.
    t.parse::<i64>().unwrap_or(if t.starts_with('-') { i64::MIN } else { i64::MAX })
}

/// spf13/cast's `ToInt64E` as Sprig uses it: errors become 0.
fn to_int64(v: &Value) -> Result<i64, CallError> {
    Ok(match v {
        Value::Int(i, _) => *i,
        Value::Float(f) => {
            if f.is_nan() || f.abs() >= 9.2e18 {
                return unsupported(
                    "converting a non-finite or huge float to an integer is platform-specific in Go",
                );
            }
            // Finite and below 2^63 in magnitude (checked above): Go's conversion truncates toward zero too.
            #[allow(clippy::cast_possible_truncation)]
            let i = *f as i64;
            i
        }
        Value::Bool(x) => i64::from(*x),
        Value::Str(x) => {
            let t = trim_zero_decimal(x);
            std::str::from_utf8(t).ok().and_then(parse_int_base0).unwrap_or(0)
        }
        _ => 0,
    })
}

/// cast's `trimZeroDecimal`: "12.00" -> "12".
fn trim_zero_decimal(x: &[u8]) -> &[u8] {
    let mut found_zero = false;
    for i in (1..=x.len()).rev() {
        match x[i - 1] {
            b'.' => {
                if found_zero {
                    return &x[..i - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return x,
        }
    }
    x
}

fn parse_int_base0(t: &str) -> Option<i64> {
    crate::parse::parse_int(t)
}

/// cast's `ToFloat64E`: errors become 0.
fn to_float64(v: &Value) -> Result<f64, CallError> {
    Ok(match v {
        Value::Int(i, _) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(x) => f64::from(u8::from(*x)),
        Value::Str(x) => {
            // strconv.ParseFloat: decimal forms parse alike; Go also reads hex floats, underscores, "inf" and
            // "nan", which are refused rather than guessed. Anything else is a syntax error, which cast makes 0.
            let t = std::str::from_utf8(x).unwrap_or("");
            let body = t.trim_start_matches(['+', '-']).to_ascii_lowercase();
            if body.starts_with("0x")
                || body.contains('_')
                || ["inf", "infinity", "nan"].contains(&body.as_str())
            {
                return unsupported("float64 of hex, underscore, inf or nan forms is not reproduced");
            }
            let decimal = !t.is_empty()
                && t.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E'));
            if decimal { t.parse::<f64>().ok().filter(|f| f.is_finite()).unwrap_or(0.0) } else { 0.0 }
        }
        _ => 0.0,
    })
}

fn until_step(st_: &State<'_>, start: i64, stop: i64, step: i64) -> CallResult {
    let mut v = Vec::new();
    let limit = st_.limits.max_range;
    let push = |i: i64, v: &mut Vec<Value>| -> Result<(), CallError> {
        if v.len() as u64 >= limit {
            return Err(CallError::Limit(LimitKind::Range));
        }
        v.push(Value::int(i));
        Ok(())
    };
    if stop < start {
        if step >= 0 {
            return Ok(Value::List(Rc::new(v), ElemTy::Int));
        }
        let mut i = start;
        while i > stop {
            push(i, &mut v)?;
            i = i.wrapping_add(step);
        }
    } else if step > 0 {
        let mut i = start;
        while i < stop {
            push(i, &mut v)?;
            let (n, o) = i.overflowing_add(step);
            if o {
                break;
            }
            i = n;
        }
    }
    Ok(Value::List(Rc::new(v), ElemTy::Int))
}

/// Sprig's `empty`.
pub(crate) fn empty(v: &Value) -> bool {
    match v {
        Value::Nil => true,
        Value::Bool(x) => !x,
        Value::Int(i, _) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(x) => x.is_empty(),
        Value::List(l, _) => l.is_empty(),
        Value::Map(m, _) => m.borrow().is_empty(),
        Value::Time(..) => false,
    }
}

fn type_of(v: &Value) -> String {
    if let Value::Nil = v { "<nil>".into() } else { v.type_name().into() }
}

/// Work allowed to one deepEqual/deepCopy: nesting (a map may contain itself) and nodes visited (shared
/// sub-values can make a value exponentially larger than the template that built it).
pub(crate) struct Budget {
    nodes: u32,
}

const MAX_NEST: usize = 100;

impl Budget {
    const NODES: u32 = 1_000_000;

    fn new() -> Self {
        Budget { nodes: Self::NODES }
    }

    /// Charges the nodes visited so far to the rendering's steps (1 step per 16 nodes).
    fn charge(&self, st_: &mut State<'_>) -> Result<(), CallError> {
        st_.step_n(u64::from(Self::NODES - self.nodes) / 16).map_err(|_| CallError::Limit(LimitKind::Steps))
    }

    fn visit(&mut self, depth: usize) -> Result<(), CallError> {
        self.nodes = self
            .nodes
            .checked_sub(1)
            .ok_or(CallError::Unsupported("values this large are not compared or copied"))?;
        if depth > MAX_NEST {
            return Err(CallError::Unsupported(
                "values nested this deep (or containing themselves) are not compared or copied",
            ));
        }
        Ok(())
    }
}

/// `reflect.DeepEqual` for template values (types must match too), within `budget`.
fn deep_equal(x: &Value, y: &Value, budget: &mut Budget) -> Result<bool, CallError> {
    deep_equal_in(x, y, budget, 0)
}

fn deep_equal_in(x: &Value, y: &Value, budget: &mut Budget, depth: usize) -> Result<bool, CallError> {
    budget.visit(depth)?;
    Ok(match (x, y) {
        (Value::Nil, Value::Nil) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Int(a, ta), Value::Int(b, tb)) => a == b && ta == tb,
        (Value::Float(a), Value::Float(b)) => a == b,
        (Value::Str(a), Value::Str(b)) => a == b,
        (Value::Time(a, b), Value::Time(c, d)) => a == c && b == d,
        (Value::List(a, ta), Value::List(b, tb)) => {
            if ta != tb || a.len() != b.len() {
                return Ok(false);
            }
            for (p, q) in a.iter().zip(b.iter()) {
                if !deep_equal_in(p, q, budget, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Map(a, ta), Value::Map(b, tb)) => {
            if Rc::ptr_eq(a, b) {
                return Ok(true);
            }
            let (a, b) = (a.borrow(), b.borrow());
            if ta != tb || a.len() != b.len() {
                return Ok(false);
            }
            for (k, v) in a.iter() {
                match b.get(k) {
                    Some(w) if deep_equal_in(v, w, budget, depth + 1)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        _ => false,
    })
}

/// copystructure's deep copy (Sprig's deepCopy), within `budget`.
fn deep_copy(v: &Value, budget: &mut Budget) -> Result<Value, CallError> {
    deep_copy_in(v, budget, 0)
}

fn deep_copy_in(v: &Value, budget: &mut Budget, depth: usize) -> Result<Value, CallError> {
    budget.visit(depth)?;
    Ok(match v {
        Value::List(l, t) => {
            let items =
                l.iter().map(|x| deep_copy_in(x, budget, depth + 1)).collect::<Result<Vec<_>, _>>()?;
            Value::List(Rc::new(items), *t)
        }
        Value::Map(m, t) => {
            let mut out = BTreeMap::new();
            for (k, x) in m.borrow().iter() {
                out.insert(k.clone(), deep_copy_in(x, budget, depth + 1)?);
            }
            Value::Map(Rc::new(std::cell::RefCell::new(out)), *t)
        }
        other => other.clone(),
    })
}

type SharedMap = Rc<std::cell::RefCell<BTreeMap<Vec<u8>, Value>>>;

/// The map behind a `map[string]interface{}` parameter (validate admits only such maps).
fn map_of(v: &Value) -> Result<&SharedMap, CallError> {
    match v {
        Value::Map(m, _) => Ok(m),
        _ => fail("expected a dict"),
    }
}

/// The elements of a slice parameter (Sprig's reflect-based list functions); nil and non-slices fail as in Go.
/// The copy is charged to the step bound, so calling `first` on a long list in a loop is bounded.
fn list_of(st_: &mut State<'_>, v: &Value) -> Result<Vec<Value>, CallError> {
    match v {
        Value::List(l, _) => {
            st_.step_n(l.len() as u64).map_err(|_| CallError::Limit(LimitKind::Steps))?;
            Ok(l.to_vec())
        }
        Value::Nil => fail("cannot use nil as a list"),
        _ => fail("cannot use this type as a list"),
    }
}

/// Sprig's `dig "a" "b" default dict`.
fn dig(a: &[Value]) -> CallResult {
    if a.len() < 3 {
        return fail("dig needs at least three arguments");
    }
    let Value::Map(m, _) = &a[a.len() - 1] else { return fail("dig's last argument must be a dict") };
    let default = a[a.len() - 2].clone();
    let keys = &a[..a.len() - 2];
    let mut cur = m.clone();
    for (i, k) in keys.iter().enumerate() {
        let Value::Str(k) = k else { return fail("dig's keys must be strings") };
        let next = cur.borrow().get(&k[..]).cloned();
        match next {
            None => return Ok(default),
            Some(v) if i == keys.len() - 1 => return Ok(v),
            Some(Value::Map(n, ElemTy::Any)) => cur = n,
            Some(_) => return fail("dig through a value that is not a dict"),
        }
    }
    Ok(default)
}

/// `base64.StdEncoding.DecodeString`, or Go's error text as the result, as Sprig's `b64dec` returns it.
fn b64dec(x: &[u8]) -> Vec<u8> {
    match go_base64_decode(x) {
        Ok(v) => v,
        Err(pos) => format!("illegal base64 data at input byte {pos}").into_bytes(),
    }
}

/// Go's `(*Encoding).Decode` for StdEncoding (padding required, `\r` and `\n` skipped), returning the corrupt
/// input offset Go reports on error.
fn go_base64_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    while si < src.len() {
        let mut dbuf = [0u32; 4];
        let mut dlen = 4;
        let mut j = 0;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // Go: j == 1 or no padding: corrupt at si - j.
                return Err(si - j);
            }
            let c = src[si];
            si += 1;
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if let Some(v) = val(c) {
                dbuf[j] = v;
                j += 1;
                continue;
            }
            if c != b'=' {
                return Err(si - 1);
            }
            // Padding.
            match j {
                0 | 1 => return Err(si - 1),
                2 => {
                    // Skip newlines, then expect a second '='.
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(src.len());
                    }
                    if src[si] != b'=' {
                        return Err(si - 1);
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                return Err(si);
            }
            dlen = j;
            break;
        }
        let v = (dbuf[0] << 18) | (dbuf[1] << 12) | (dbuf[2] << 6) | dbuf[3];
        let [_, b0, b1, b2] = v.to_be_bytes();
        let bytes = [b0, b1, b2];
        match dlen {
            4 => out.extend_from_slice(&bytes),
            // StdEncoding is not Strict: leftover bits after the last byte are ignored.
            3 => out.extend_from_slice(&bytes[..2]),
            2 => out.push(bytes[0]),
            _ => {}
        }
        if dlen < 4 {
            return Ok(out);
        }
    }
    Ok(out)
}

/// Go's base32 `StdEncoding.DecodeString`: newlines stripped first, padding required, decoding stops after the
/// first padded quantum; `Err(offset)` is Go's CorruptInputError offset (into the stripped input).
fn go_base32_decode(src: &[u8]) -> Result<Vec<u8>, usize> {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let src: Vec<u8> = src.iter().copied().filter(|&b| b != b'\r' && b != b'\n').collect();
    let olen = src.len();
    let mut rest: &[u8] = &src;
    let mut out = Vec::with_capacity(olen / 8 * 5);
    let mut end = false;
    while !rest.is_empty() && !end {
        let mut dbuf = [0u8; 8];
        let mut dlen = 8;
        let mut j = 0;
        while j < 8 {
            let Some((&c, tail)) = rest.split_first() else { return Err(olen - j) };
            rest = tail;
            if c == b'=' && j >= 2 && rest.len() < 8 {
                if rest.len() + j < 7 {
                    return Err(olen);
                }
                for k in 0..7 - j {
                    if rest.len() > k && rest[k] != b'=' {
                        return Err(olen - rest.len() + k - 1);
                    }
                }
                dlen = j;
                end = true;
                if matches!(dlen, 1 | 3 | 6) {
                    return Err(olen - rest.len() - 1);
                }
                break;
            }
            match A.iter().position(|&x| x == c) {
                // Invariant: position in a 32-entry table fits a u8.
                Some(v) => dbuf[j] = u8::try_from(v).unwrap_or(0),
                None => return Err(olen - rest.len() - 1),
            }
            j += 1;
        }
        let bytes = [
            dbuf[0] << 3 | dbuf[1] >> 2,
            dbuf[1] << 6 | dbuf[2] << 1 | dbuf[3] >> 4,
            dbuf[3] << 4 | dbuf[4] >> 1,
            dbuf[4] << 7 | dbuf[5] << 2 | dbuf[6] >> 3,
            dbuf[6] << 5 | dbuf[7],
        ];
        let n = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            2 => 1,
            _ => 0,
        };
        out.extend_from_slice(&bytes[..n]);
    }
    Ok(out)
}

fn b32enc(x: &[u8]) -> Vec<u8> {
    const A: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = Vec::new();
    for chunk in x.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |acc, &c| (acc << 8) | u64::from(c));
        let n = match chunk.len() {
            1 => 2,
            2 => 4,
            3 => 5,
            4 => 7,
            _ => 8,
        };
        for i in 0..8 {
            if i < n {
                out.push(A[((v >> (35 - 5 * i)) & 31) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

/// `path.Clean`.
fn path_clean(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let rooted = p[0] == b'/';
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|l| *l != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(seg);
                }
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::new();
    if rooted {
        out.push(b'/');
    }
    out.extend_from_slice(&parts.join(&b'/'));
    if out.is_empty() {
        return b".".to_vec();
    }
    out
}

/// `path.Base`.
fn path_base(p: &[u8]) -> Vec<u8> {
    if p.is_empty() {
        return b".".to_vec();
    }
    let mut p = p;
    while !p.is_empty() && p[p.len() - 1] == b'/' {
        p = &p[..p.len() - 1];
    }
    if let Some(i) = p.iter().rposition(|&c| c == b'/') {
        p = &p[i + 1..];
    }
    if p.is_empty() {
        return b"/".to_vec();
    }
    p.to_vec()
}

/// `path.Dir`.
fn path_dir(p: &[u8]) -> Vec<u8> {
    let i = p.iter().rposition(|&c| c == b'/').map_or(0, |i| i + 1);
    path_clean(&p[..i])
}

/// `path.Ext`.
fn path_ext(p: &[u8]) -> Vec<u8> {
    for i in (0..p.len()).rev() {
        if p[i] == b'/' {
            break;
        }
        if p[i] == b'.' {
            return p[i..].to_vec();
        }
    }
    Vec::new()
}
