//! Sprig's regex functions over Go's `regexp` (RE2 syntax). Patterns are run by the `regex` crate after
//! translating the few constructs whose meaning differs (Go's `\d \w \s \b` are ASCII-only); patterns using syntax
//! the two engines read differently (nested classes, class set operations, `(?x)`, `\Q..\E`, `\C`) and inputs that
//! are not UTF-8 are refused rather than guessed. Match iteration and replacement follow Go's rules for empty
//! matches, written out here instead of relying on the crate's.

use regex::Regex;

use crate::funcs::{CallError, CallResult};
use crate::value::{ElemTy, Value};

/// Go's regexp.Compile succeeded (`Ok`), failed (`Err(None)`), or we cannot tell (`Err(Some(reason))`).
type Compiled = Result<Regex, Option<&'static str>>;

/// Where a repetition operator may not follow (Go rejects `a**`, `a{2}{3}`, `a*??`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    Other,
    Repeat,
    LazyRepeat,
}

/// Go's `{n}`, `{n,}`, `{n,m}` at `i` (no leading zeros): `Some((min, max, len))`; `None` if `{` is a literal.
fn parse_repeat(chars: &[char], i: usize) -> Option<(u32, Option<u32>, usize)> {
    let rest: String = chars[i..].iter().take_while(|&&c| c != '}').collect();
    if i + rest.chars().count() >= chars.len() {
        return None;
    }
    let body = &rest[1..];
    let num = |t: &str| -> Option<u32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) || (t.len() > 1 && t.starts_with('0')) {
            return None;
        }
        t.parse::<u32>().ok().or(Some(u32::MAX))
    };
    let (min, max) = match body.split_once(',') {
        None => (num(body)?, Some(num(body)?)),
        Some((a, "")) => (num(a)?, None),
        Some((a, b)) => (num(a)?, Some(num(b)?)),
    };
    Some((min, max, rest.chars().count() + 1))
}

/// Rewrites a Go pattern for the regex crate. `Err(None)`: Go rejects the pattern; `Err(Some(why))`: refused.
fn translate(p: &str) -> Result<String, Option<&'static str>> {
    let mut out = String::with_capacity(p.len() + 8);
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    let mut class_start = 0;
    let mut last = Last::Other;
    while i < chars.len() {
        let c = chars[i];
        if !in_class {
            match c {
                '*' | '+' | '?' => {
                    last = match (c, last) {
                        ('?', Last::Repeat) => Last::LazyRepeat,
                        (_, Last::Other) => Last::Repeat,
                        _ => return Err(None), // invalid nested repetition operator
                    };
                    out.push(c);
                    i += 1;
                    continue;
                }
                '{' => match parse_repeat(&chars, i) {
                    Some((min, max, len)) => {
                        if last != Last::Other || min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
                            return Err(None); // nested repetition or invalid repeat count
                        }
                        last = Last::Repeat;
                        out.extend(&chars[i..i + len]);
                        i += len;
                        continue;
                    }
                    None => {
                        // A literal '{' for Go; the regex crate reads some of these forms as repetitions.
                        let rest: String = chars[i + 1..].iter().take_while(|&&c| c != '}').collect();
                        if rest.bytes().any(|b| b.is_ascii_digit()) {
                            return Err(Some("'{' forms Go reads as a literal"));
                        }
                        out.push_str("\\{");
                        last = Last::Other;
                        i += 1;
                        continue;
                    }
                },
                _ => last = Last::Other,
            }
        }
        if c == '\\' {
            let Some(&e) = chars.get(i + 1) else { return Err(None) };
            if !in_class && matches!(e, 'b' | 'B') && chars.get(i + 2) == Some(&'{') {
                return Err(Some("\\b{...} word-boundary forms Go lacks"));
            }
            let rep: Option<&str> = match (in_class, e) {
                (false, 'd') => Some("[0-9]"),
                (false, 'D') => Some("[^0-9]"),
                (false, 'w') => Some("[0-9A-Za-z_]"),
                (false, 'W') => Some("[^0-9A-Za-z_]"),
                (false, 's') => Some("[\\t\\n\\f\\r ]"),
                (false, 'S') => Some("[^\\t\\n\\f\\r ]"),
                (false, 'b') => Some("(?-u:\\b)"),
                (false, 'B') => Some("(?-u:\\B)"),
                (true, 'd') => Some("0-9"),
                (true, 'w') => Some("0-9A-Za-z_"),
                (true, 's') => Some("\\t\\n\\f\\r "),
                (true, 'D' | 'W' | 'S') => return Err(Some("negated Perl classes inside a class")),
                (_, 'Q' | 'C' | '<' | '>' | 'e' | 'K') => {
                    return Err(Some("escape not shared by Go and Rust"));
                }
                _ => None,
            };
            match rep {
                Some(r) => out.push_str(r),
                None => {
                    out.push('\\');
                    out.push(e);
                }
            }
            i += 2;
            continue;
        }
        if in_class {
            match c {
                '[' if chars.get(i + 1) == Some(&':') => {
                    // A POSIX class [:name:] is the same in both.
                    let rest: String = chars[i..].iter().collect();
                    let Some(end) = rest.find(":]") else { return Err(Some("unterminated POSIX class")) };
                    out.push_str(&rest[..end + 2]);
                    i += rest[..end + 2].chars().count();
                    continue;
                }
                '[' => return Err(Some("nested classes")),
                '&' | '-' | '~' if chars.get(i + 1) == Some(&c) => return Err(Some("class set operations")),
                ']' if i > class_start => in_class = false,
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i; // A ']' right here is a literal.
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
                continue;
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i + 2..].iter().collect();
                if rest.starts_with("P<") {
                } else if rest.starts_with('<') || rest.starts_with("P=") || rest.starts_with("P>") {
                    return Err(Some("group syntax Go 1.19 lacks"));
                } else {
                    for f in rest.chars() {
                        match f {
                            'i' | 'm' | 's' | 'U' | '-' => {}
                            ')' | ':' => break,
                            _ => return Err(Some("flags Go lacks")),
                        }
                    }
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Ok(out)
}

fn compile(p: &[u8]) -> Compiled {
    let p = std::str::from_utf8(p).map_err(|_| Some("patterns that are not UTF-8"))?;
    let t = translate(p)?;
    // Go bounds repetition counts at 1000; so does the regex crate's default size limits, but refuse beyond.
    regex::RegexBuilder::new(&t)
        .size_limit(1 << 20)
        .build()
        .map_err(|_| Some("a pattern the regex crate rejects (Go may accept it)"))
}

fn text(v: &Value) -> Result<&str, CallError> {
    std::str::from_utf8(v.as_bytes().unwrap_or_default())
        .map_err(|_| CallError::Unsupported("regex functions on input that is not UTF-8"))
}

fn must(r: Compiled) -> Result<Regex, CallError> {
    match r {
        Ok(re) => Ok(re),
        Err(None) => Err(CallError::Failed("invalid regular expression")),
        Err(Some(why)) => Err(CallError::Unsupported(why)),
    }
}

/// Go's `allMatches`: (start, end) of up to `n` matches (n < 0: all), skipping empty matches that abut the
/// previous match.
fn all_matches(re: &Regex, s: &str, n: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut pos, mut prev_end): (usize, Option<usize>) = (0, None);
    while (n < 0 || (out.len() as i64) < n) && pos <= s.len() {
        let Some(m) = re.find_at(s, pos) else { break };
        let mut accept = true;
        if m.end() == pos {
            if Some(m.start()) == prev_end {
                accept = false;
            }
            match s[pos..].chars().next() {
                Some(c) => pos += c.len_utf8(),
                None => pos = s.len() + 1,
            }
        } else {
            pos = m.end();
        }
        prev_end = Some(m.end());
        if accept {
            out.push((m.start(), m.end()));
        }
    }
    out
}

/// Go's `Regexp.Expand` of `$1`, `${name}`, `$$`.
fn expand(out: &mut String, tmpl: &str, re: &Regex, caps: &regex::Captures<'_>) {
    let mut t = tmpl;
    while let Some(i) = t.find('$') {
        out.push_str(&t[..i]);
        t = &t[i..];
        if t.len() > 1 && t.as_bytes()[1] == b'$' {
            out.push('$');
            t = &t[2..];
            continue;
        }
        let (name, rest) = if t[1..].starts_with('{') {
            match t[2..].find('}') {
                Some(end) => {
                    let name = &t[2..2 + end];
                    if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                        (None, t)
                    } else {
                        (Some(name), &t[3 + end..])
                    }
                }
                None => (None, t),
            }
        } else {
            let end = t[1..].find(|c: char| !(c.is_alphanumeric() || c == '_')).map_or(t.len(), |e| e + 1);
            if end == 1 { (None, t) } else { (Some(&t[1..end]), &t[end..]) }
        };
        let Some(name) = name else {
            out.push('$');
            t = &t[1..];
            continue;
        };
        let m = match name.parse::<usize>() {
            Ok(k) => caps.get(k),
            Err(_) => {
                if re.capture_names().flatten().any(|n| n == name) {
                    caps.name(name)
                } else {
                    None
                }
            }
        };
        if let Some(m) = m {
            out.push_str(m.as_str());
        }
        t = rest;
    }
    out.push_str(t);
}

/// Go's `replaceAll`.
/// Go's `replaceAll`; `None` once the result would exceed `max` bytes.
fn replace_all(re: &Regex, src: &str, repl: &str, literal: bool, max: usize) -> Option<String> {
    let mut buf = String::new();
    let (mut last_end, mut search) = (0usize, 0usize);
    while search <= src.len() {
        let Some(caps) = re.captures_at(src, search) else { break };
        // Invariant: group 0 is present in every successful match.
        let Some(m) = caps.get(0) else { break };
        buf.push_str(&src[last_end..m.start()]);
        if m.end() > last_end || m.start() == 0 {
            if literal {
                buf.push_str(repl);
            } else {
                expand(&mut buf, repl, re, &caps);
            }
        }
        last_end = m.end();
        if buf.len() > max {
            return None;
        }
        let width = src[search..].chars().next().map_or(0, char::len_utf8);
        if search + width > m.end() {
            search += width;
        } else if search + 1 > m.end() {
            search += 1;
        } else {
            search = m.end();
        }
        if width == 0 && search > src.len() {
            break;
        }
    }
    buf.push_str(&src[last_end.min(src.len())..]);
    Some(buf)
}

pub(crate) fn call(name: &str, a: &[Value], max_output: usize) -> CallResult {
    let re = compile(a[0].as_bytes().unwrap_or_default());
    let s = text(&a[1])?;
    Ok(match name {
        "regexMatch" => match re {
            Ok(re) => Value::Bool(re.is_match(s)),
            Err(None) => Value::Bool(false),
            Err(Some(why)) => return Err(CallError::Unsupported(why)),
        },
        "mustRegexMatch" => Value::Bool(must(re)?.is_match(s)),
        "regexFind" | "mustRegexFind" => {
            let re = must(re)?;
            Value::str(re.find(s).map_or("", |m| m.as_str()).as_bytes())
        }
        "regexFindAll" | "mustRegexFindAll" => {
            let re = must(re)?;
            let n = match &a[2] {
                Value::Int(n, _) => *n,
                _ => -1,
            };
            let parts = if n == 0 { Vec::new() } else { all_matches(&re, s, n) };
            if parts.is_empty() {
                // Go's FindAllString returns nil when nothing matches.
                return Ok(Value::List(Default::default(), ElemTy::NilStr));
            }
            Value::str_list(parts.into_iter().map(|(x, y)| s.as_bytes()[x..y].to_vec()).collect())
        }
        "regexReplaceAll"
        | "mustRegexReplaceAll"
        | "regexReplaceAllLiteral"
        | "mustRegexReplaceAllLiteral" => {
            let re = must(re)?;
            let repl = text(&a[2])?;
            match replace_all(&re, s, repl, name.ends_with("Literal"), max_output) {
                Some(out) => Value::str(out.into_bytes()),
                None => return Err(CallError::Limit(crate::LimitKind::Output)),
            }
        }
        "regexSplit" | "mustRegexSplit" => {
            let re = must(re)?;
            let n = match &a[2] {
                Value::Int(n, _) => *n,
                _ => -1,
            };
            if n == 0 {
                return Ok(Value::List(Default::default(), ElemTy::NilStr));
            }
            Value::str_list(split(&re, s, n))
        }
        _ => return Err(CallError::Unsupported("unknown regex function")),
    })
}

/// Go's `Regexp.Split`.
fn split(re: &Regex, s: &str, n: i64) -> Vec<Vec<u8>> {
    if n == 0 {
        return Vec::new();
    }
    if !re.as_str().is_empty() && s.is_empty() {
        return vec![Vec::new()];
    }
    let matches = all_matches(re, s, n);
    let mut out: Vec<Vec<u8>> = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for (x, y) in matches {
        if n > 0 && out.len() as i64 == n - 1 {
            break;
        }
        end = x;
        if y != 0 {
            out.push(s.as_bytes()[beg..end].to_vec());
        }
        beg = y;
    }
    if end != s.len() {
        out.push(s.as_bytes()[beg..].to_vec());
    }
    out
}
