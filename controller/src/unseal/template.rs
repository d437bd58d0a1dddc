//! `spec.template.data`: the subset of Go text/template + Sprig that SealedSecrets use in practice, rendered over
//! the decrypted items (`.` is the map item name -> value).
//!
//! Supported: literal text; actions `{{ ... }}` with `{{-`/`-}}` trimming; operands `.`, `.item`, `"string"`,
//! `` `raw` ``, `( pipeline )`; pipes `a | f`; functions `index`, `printf` (`%s %v %q %d %%`), `b64enc`, `b64dec`,
//! `upper`, `lower`, `trim`, `trimPrefix`, `trimSuffix`, `quote`, `squote`, `replace`, `default`. Anything else
//! (control structures, variables, other functions) is a [`TemplateError`] naming the construct, never a guess.
//!
//! Deliberate difference from Go: a missing item (`.nope`, `index . "nope"`) is an error rather than the text
//! `<no value>` or an empty string written silently into a Secret.
//!
//! Errors name the template key and the construct, never a decrypted value.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// Why a template could not be rendered. The message names the construct; it never holds a plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

fn err<T>(msg: impl Into<String>) -> Result<T, TemplateError> {
    Err(TemplateError(msg.into()))
}

/// Decrypted items by name. Values are wiped on drop.
pub type Items = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// Whether `text` needs rendering at all (a value without `{{` is literal, as in Go).
pub fn is_template(text: &str) -> bool {
    text.contains("{{")
}

/// Renders `text` over `items`.
pub fn render(text: &str, items: &Items) -> Result<Zeroizing<Vec<u8>>, TemplateError> {
    let mut out = Zeroizing::new(Vec::new());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let mut literal = &rest[..start];
        let after = &rest[start + 2..];
        let (trim_left, after) = match after.strip_prefix('-') {
            Some(a) if a.starts_with(char::is_whitespace) => (true, a),
            _ => (false, after),
        };
        if trim_left {
            literal = literal.trim_end();
        }
        out.extend_from_slice(literal.as_bytes());
        let end =
            find_action_end(after).ok_or_else(|| TemplateError("unclosed action: missing }}".into()))?;
        let mut body = &after[..end];
        let mut tail = &after[end + 2..];
        if let Some(b) = body.strip_suffix('-')
            && b.ends_with(char::is_whitespace)
        {
            body = b;
            tail = tail.trim_start();
        }
        let body = body.trim();
        if body.starts_with("/*") {
            rest = tail;
            continue; // a comment
        }
        let tokens = lex(body)?;
        let mut parser = Parser { tokens: &tokens, pos: 0, depth: 0 };
        let pipeline = parser.pipeline()?;
        if parser.pos != tokens.len() {
            return err(format!("unexpected {} in action {{{{ {body} }}}}", tokens[parser.pos].describe()));
        }
        let value = eval_pipeline(&pipeline, items)?;
        out.extend_from_slice(&value);
        check_size(out.len())?;
        rest = tail;
    }
    out.extend_from_slice(rest.as_bytes());
    check_size(out.len())?;
    Ok(out)
}

fn check_size(len: usize) -> Result<(), TemplateError> {
    if len > MAX_OUTPUT_BYTES {
        return err(format!("the rendered value would exceed {MAX_OUTPUT_BYTES} bytes"));
    }
    Ok(())
}

/// Index of the `}}` closing an action, skipping string literals.
fn find_action_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dot,
    Field(String),
    Str(String),
    Number(i64),
    Ident(String),
    Pipe,
    Open,
    Close,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Dot => "`.`".into(),
            Token::Field(f) => format!("`.{f}`"),
            Token::Str(_) => "a string".into(),
            Token::Number(n) => format!("`{n}`"),
            Token::Ident(i) => format!("`{i}`"),
            Token::Pipe => "`|`".into(),
            Token::Open => "`(`".into(),
            Token::Close => "`)`".into(),
        }
    }
}

fn lex(body: &str) -> Result<Vec<Token>, TemplateError> {
    let mut tokens = Vec::new();
    let mut chars = body.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '|' => {
                chars.next();
                tokens.push(Token::Pipe);
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return err("unterminated string literal"),
                        Some((_, '"')) => break,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => s.push('\n'),
                            Some((_, 't')) => s.push('\t'),
                            Some((_, 'r')) => s.push('\r'),
                            Some((_, c @ ('"' | '\\'))) => s.push(c),
                            _ => return err("unsupported escape in string literal"),
                        },
                        Some((_, c)) => s.push(c),
                    }
                }
                tokens.push(Token::Str(s));
            }
            '`' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return err("unterminated raw string literal"),
                        Some((_, '`')) => break,
                        Some((_, c)) => s.push(c),
                    }
                }
                tokens.push(Token::Str(s));
            }
            '.' => {
                chars.next();
                let name = take_word(&mut chars);
                if name.is_empty() {
                    tokens.push(Token::Dot);
                } else {
                    if chars.peek().is_some_and(|&(_, c)| c == '.') {
                        return err(format!(
                            "nested field `.{name}.…`: items are strings and have no fields"
                        ));
                    }
                    tokens.push(Token::Field(name));
                }
            }
            '$' => return err("variables (`$`) are not supported; use `.item` or `index . \"item\"`"),
            c if c.is_ascii_digit() || c == '-' => {
                chars.next();
                let mut s = String::from(c);
                s.push_str(&take_word(&mut chars));
                let n = s.parse().map_err(|_| TemplateError(format!("unsupported number `{s}`")))?;
                tokens.push(Token::Number(n));
            }
            c if c.is_alphabetic() || c == '_' => tokens.push(Token::Ident(take_word(&mut chars))),
            other => return err(format!("unexpected character {other:?} at offset {i} of an action")),
        }
    }
    Ok(tokens)
}

fn take_word(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>) -> String {
    let mut s = String::new();
    while let Some(&(_, c)) = chars.peek() {
        if c.is_alphanumeric() || c == '_' {
            s.push(c);
            chars.next();
        } else {
            break;
        }
    }
    s
}

#[derive(Debug)]
enum Operand {
    Dot,
    Field(String),
    Str(String),
    Number(i64),
    Func(String),
    Sub(Vec<Command>),
}

type Command = Vec<Operand>;

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

/// Deepest `( ... )` nesting accepted: templates come from any user who may create a SealedSecret, and the parser
/// recurses on parentheses.
pub const MAX_NESTING: usize = 32;
/// Largest rendered value: a Secret holds at most 1 MiB, and `b64enc` chains grow by 4/3 per step.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

impl Parser<'_> {
    fn pipeline(&mut self) -> Result<Vec<Command>, TemplateError> {
        let mut commands = vec![self.command()?];
        while self.tokens.get(self.pos) == Some(&Token::Pipe) {
            self.pos += 1;
            commands.push(self.command()?);
        }
        Ok(commands)
    }

    fn command(&mut self) -> Result<Command, TemplateError> {
        let mut operands = Vec::new();
        while let Some(token) = self.tokens.get(self.pos) {
            let operand = match token {
                Token::Pipe | Token::Close => break,
                Token::Dot => Operand::Dot,
                Token::Field(f) => Operand::Field(f.clone()),
                Token::Str(s) => Operand::Str(s.clone()),
                Token::Number(n) => Operand::Number(*n),
                Token::Ident(name) => match name.as_str() {
                    "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block" | "break"
                    | "continue" => {
                        return err(format!("`{name}` is not supported: only expressions and pipes are"));
                    }
                    "true" | "false" | "nil" => return err(format!("`{name}` is not supported")),
                    _ => Operand::Func(name.clone()),
                },
                Token::Open => {
                    if self.depth >= MAX_NESTING {
                        return err(format!("parentheses nested deeper than {MAX_NESTING}"));
                    }
                    self.pos += 1;
                    self.depth += 1;
                    let sub = self.pipeline()?;
                    self.depth -= 1;
                    if self.tokens.get(self.pos) != Some(&Token::Close) {
                        return err("missing `)`");
                    }
                    Operand::Sub(sub)
                }
            };
            self.pos += 1;
            operands.push(operand);
        }
        if operands.is_empty() {
            return err("empty command in a pipeline");
        }
        Ok(operands)
    }
}

type Value = Zeroizing<Vec<u8>>;

fn eval_pipeline(pipeline: &[Command], items: &Items) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in pipeline {
        let value = eval_command(command, piped, items)?;
        check_size(value.len())?;
        piped = Some(value);
    }
    piped.ok_or_else(|| TemplateError("empty pipeline".into()))
}

fn eval_command(command: &[Operand], piped: Option<Value>, items: &Items) -> Result<Value, TemplateError> {
    let (first, rest) = command.split_first().ok_or_else(|| TemplateError("empty command".into()))?;
    let Operand::Func(name) = first else {
        if !rest.is_empty() || piped.is_some() {
            return err("a value cannot take arguments; only functions can (e.g. `.item | upper`)");
        }
        return eval_operand(first, items);
    };
    let mut args: Vec<Arg> = rest.iter().map(|o| eval_arg(o, items)).collect::<Result<_, _>>()?;
    if let Some(p) = piped {
        args.push(Arg::Value(p));
    }
    call(name, args, items)
}

enum Arg {
    Dot,
    Value(Value),
    Number(i64),
}

fn eval_arg(operand: &Operand, items: &Items) -> Result<Arg, TemplateError> {
    match operand {
        Operand::Dot => Ok(Arg::Dot),
        Operand::Number(n) => Ok(Arg::Number(*n)),
        other => eval_operand(other, items).map(Arg::Value),
    }
}

fn eval_operand(operand: &Operand, items: &Items) -> Result<Value, TemplateError> {
    match operand {
        Operand::Dot => err("`.` is the map of all items; pick one with `.item` or `index . \"item\"`"),
        Operand::Field(f) => lookup(items, f),
        Operand::Str(s) => Ok(Zeroizing::new(s.as_bytes().to_vec())),
        Operand::Number(n) => Ok(Zeroizing::new(n.to_string().into_bytes())),
        Operand::Func(name) => call(name, Vec::new(), items),
        Operand::Sub(p) => eval_pipeline(p, items),
    }
}

fn lookup(items: &Items, name: &str) -> Result<Value, TemplateError> {
    items.get(name).map(|v| Zeroizing::new(v.to_vec())).ok_or_else(|| {
        TemplateError(format!("item {name:?} is not among the SealedSecret's decrypted items"))
    })
}

fn text(arg: &Arg, func: &str) -> Result<Value, TemplateError> {
    match arg {
        Arg::Value(v) => Ok(Zeroizing::new(v.to_vec())),
        Arg::Number(n) => Ok(Zeroizing::new(n.to_string().into_bytes())),
        Arg::Dot => err(format!("`{func}` expects a string, got `.` (the map of all items)")),
    }
}

fn arity(func: &str, args: &[Arg], n: usize) -> Result<(), TemplateError> {
    if args.len() == n { Ok(()) } else { err(format!("`{func}` takes {n} argument(s), got {}", args.len())) }
}

fn map_utf8(v: &[u8], f: impl Fn(&str) -> String) -> Value {
    Zeroizing::new(match std::str::from_utf8(v) {
        Ok(s) => f(s).into_bytes(),
        Err(_) => {
            // Go strings are bytes: transform the ASCII and leave other bytes alone.
            let mut out = v.to_vec();
            for b in &mut out {
                let s = [*b];
                if b.is_ascii() {
                    *b = f(std::str::from_utf8(&s).unwrap_or_default()).bytes().next().unwrap_or(*b);
                }
            }
            out
        }
    })
}

fn call(name: &str, args: Vec<Arg>, items: &Items) -> Result<Value, TemplateError> {
    match name {
        "index" => {
            arity(name, &args, 2)?;
            if !matches!(args[0], Arg::Dot) {
                return err("`index` is supported on `.` only: `index . \"item\"`");
            }
            let key = text(&args[1], name)?;
            let key = String::from_utf8_lossy(&key).into_owned();
            lookup(items, &key)
        }
        "b64enc" => {
            arity(name, &args, 1)?;
            Ok(Zeroizing::new(STANDARD.encode(text(&args[0], name)?.as_slice()).into_bytes()))
        }
        "b64dec" => {
            arity(name, &args, 1)?;
            let input = text(&args[0], name)?;
            STANDARD
                .decode(input.as_slice())
                .map(Zeroizing::new)
                .map_err(|_| TemplateError("`b64dec`: the input is not valid base64".into()))
        }
        "upper" | "lower" | "trim" | "quote" | "squote" => {
            arity(name, &args, 1)?;
            let v = text(&args[0], name)?;
            Ok(match name {
                "upper" => map_utf8(&v, str::to_uppercase),
                "lower" => map_utf8(&v, str::to_lowercase),
                "trim" => map_utf8(&v, |s| s.trim().to_owned()),
                "quote" => go_quote(&v),
                _ => {
                    let mut out = Zeroizing::new(Vec::with_capacity(v.len() + 2));
                    out.push(b'\'');
                    out.extend_from_slice(&v);
                    out.push(b'\'');
                    out
                }
            })
        }
        "trimPrefix" | "trimSuffix" => {
            // Sprig's argument order: trimPrefix "prefix" .value
            arity(name, &args, 2)?;
            let (affix, v) = (text(&args[0], name)?, text(&args[1], name)?);
            let trimmed = if name == "trimPrefix" {
                v.strip_prefix(affix.as_slice()).unwrap_or(&v)
            } else {
                v.strip_suffix(affix.as_slice()).unwrap_or(&v)
            };
            Ok(Zeroizing::new(trimmed.to_vec()))
        }
        "replace" => {
            // Sprig: replace old new .value
            arity(name, &args, 3)?;
            let (old, new, v) = (text(&args[0], name)?, text(&args[1], name)?, text(&args[2], name)?);
            let (old, new, v) = (
                String::from_utf8_lossy(&old).into_owned(),
                String::from_utf8_lossy(&new).into_owned(),
                Zeroizing::new(String::from_utf8_lossy(&v).into_owned()),
            );
            Ok(Zeroizing::new(v.replace(&old, &new).into_bytes()))
        }
        "default" => {
            // Sprig: default "fallback" .value
            arity(name, &args, 2)?;
            let (fallback, v) = (text(&args[0], name)?, text(&args[1], name)?);
            Ok(if v.is_empty() { fallback } else { v })
        }
        "printf" => printf(&args),
        other => err(format!(
            "function `{other}` is not supported (supported: index, printf, b64enc, b64dec, upper, lower, trim, \
             trimPrefix, trimSuffix, quote, squote, replace, default)"
        )),
    }
}

fn go_quote(v: &[u8]) -> Value {
    let mut out = Zeroizing::new(Vec::with_capacity(v.len() + 2));
    out.push(b'"');
    for &b in v {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b if b < 0x20 || b == 0x7f => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    out.push(b'"');
    out
}

fn printf(args: &[Arg]) -> Result<Value, TemplateError> {
    let Some((format, rest)) = args.split_first() else {
        return err("`printf` needs a format string");
    };
    let format = text(format, "printf")?;
    let mut out = Zeroizing::new(Vec::new());
    let mut rest = rest.iter();
    let mut bytes = format.iter().copied();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let verb = bytes.next().ok_or_else(|| TemplateError("`printf`: format ends with %".into()))?;
        if verb == b'%' {
            out.push(b'%');
            continue;
        }
        let arg = rest.next().ok_or_else(|| TemplateError("`printf`: more verbs than arguments".into()))?;
        match verb {
            b's' | b'v' => out.extend_from_slice(&text(arg, "printf")?),
            b'q' => out.extend_from_slice(&go_quote(&text(arg, "printf")?)),
            b'd' => match arg {
                Arg::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
                _ => return err("`printf`: %d needs a number"),
            },
            other => {
                return err(format!(
                    "`printf`: verb %{} is not supported (use %s, %v, %q, %d)",
                    other as char
                ));
            }
        }
    }
    if rest.next().is_some() {
        return err("`printf`: more arguments than verbs");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Items {
        [("user", "admin"), ("pass", "s3cr3t"), ("b64", "aGk="), ("sp", "  x  ")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Zeroizing::new(v.as_bytes().to_vec())))
            .collect()
    }

    fn r(t: &str) -> Result<String, TemplateError> {
        render(t, &items()).map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    #[test]
    fn renders_the_common_forms() {
        assert_eq!(r(r#"{{ index . "user" }}"#).unwrap(), "admin");
        assert_eq!(r("{{ .user }}:{{.pass}}").unwrap(), "admin:s3cr3t");
        assert_eq!(
            r("postgres://{{ .user }}:{{ .pass }}@db:5432/app").unwrap(),
            "postgres://admin:s3cr3t@db:5432/app"
        );
        assert_eq!(r("{{ .user | upper }}").unwrap(), "ADMIN");
        assert_eq!(r("{{ .user | upper | lower }}").unwrap(), "admin");
        assert_eq!(r("{{ .user | b64enc }}").unwrap(), "YWRtaW4=");
        assert_eq!(r("{{ .b64 | b64dec }}").unwrap(), "hi");
        assert_eq!(r("{{ .sp | trim }}").unwrap(), "x");
        assert_eq!(r("{{ .user | quote }}").unwrap(), "\"admin\"");
        assert_eq!(r("{{ .user | squote }}").unwrap(), "'admin'");
        assert_eq!(r(r#"{{ printf "%s:%s" .user .pass }}"#).unwrap(), "admin:s3cr3t");
        assert_eq!(r(r#"{{ printf "%s=%q" "k" (index . "user" | upper) }}"#).unwrap(), "k=\"ADMIN\"");
        assert_eq!(r(r#"{{ .user | trimPrefix "ad" }}"#).unwrap(), "min");
        assert_eq!(r(r#"{{ .user | replace "a" "A" }}"#).unwrap(), "Admin");
        assert_eq!(r("a  {{- .user -}}  b").unwrap(), "aadminb");
        assert_eq!(r("no template").unwrap(), "no template");
        assert_eq!(r("{{/* comment */}}x").unwrap(), "x");
        assert_eq!(r(r#"{{ "}}" }}"#).unwrap(), "}}");
    }

    #[test]
    fn unsupported_constructs_are_named_and_values_never_shown() {
        let cases = [
            ("{{ if .user }}x{{ end }}", "`if` is not supported"),
            ("{{ .user | sha256sum }}", "function `sha256sum` is not supported"),
            ("{{ $x := .user }}", "variables"),
            ("{{ .missing }}", "item \"missing\" is not among"),
            (r#"{{ index . "missing" }}"#, "item \"missing\" is not among"),
            ("{{ .user ", "unclosed action"),
            ("{{ .pass | b64dec }}", "not valid base64"),
            ("{{ . }}", "map of all items"),
            (r#"{{ printf "%x" .pass }}"#, "verb %x"),
        ];
        for (template, expected) in cases {
            let e = r(template).unwrap_err().to_string();
            assert!(e.contains(expected), "{template}: {e}");
            assert!(!e.contains("s3cr3t") && !e.contains("admin"), "{template}: {e}");
        }
    }

    #[test]
    fn hostile_templates_are_bounded() {
        let deep = format!("{{{{ {}.user{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(r(&deep).unwrap_err().to_string().contains("nested deeper than 32"));
        let grow = format!("{{{{ .user{} }}}}", " | b64enc".repeat(100));
        assert!(r(&grow).unwrap_err().to_string().contains("exceed"));
        let wide = "{{ .user }}".repeat(300_000);
        assert!(r(&wide).unwrap_err().to_string().contains("exceed"));
    }

    proptest::proptest! {
        #[test]
        fn rendering_never_panics(text in "([{}|().\\-\" a-z$`]|\\.user|index|printf|b64enc|b64dec|upper|%s){0,60}") {
            let _ = render(&text, &items());
        }

        #[test]
        fn text_without_actions_is_literal(text in "[^{]{0,200}") {
            let rendered = render(&text, &items()).unwrap();
            proptest::prop_assert_eq!(rendered.as_slice(), text.as_bytes());
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_survive() {
        let mut items = items();
        items.insert("bin".into(), Zeroizing::new(vec![0xff, b'a', 0x00]));
        assert_eq!(render("{{ .bin | upper }}", &items).unwrap().as_slice(), &[0xff, b'A', 0x00]);
        assert_eq!(render("{{ .bin | b64enc }}", &items).unwrap().as_slice(), b"/2EA");
    }
}
