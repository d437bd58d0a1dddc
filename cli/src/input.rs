//! Reading untrusted manifests: YAML (several `---` documents) or JSON (one or more objects), with
//! limits, so an alias bomb, a deeply nested or a huge document is refused quickly instead of expanded.
//!
//! Documents are parsed into [`serde_json::Value`] trees held in [`Wiped`], which overwrites every
//! string when dropped (Secret inputs carry plaintext). Parse errors carry line and column only, never
//! a snippet of the input.

use std::io::Read;
use std::path::Path;

use serde_json::Value;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Location, Result};

/// Largest input read from one file or stdin: 64 MiB (a Kubernetes object is at most 1.5 MiB in etcd).
pub const MAX_INPUT_BYTES: usize = 64 << 20;
/// Most documents in one input.
pub const MAX_DOCUMENTS: usize = 100_000;
/// Deepest nesting accepted (Secrets and SealedSecrets need fewer than 10 levels).
pub const MAX_DEPTH: usize = 64;
/// Most aliases in one input. Manifests rarely use any; a billion-laughs document uses many.
pub const MAX_ALIASES: usize = 1_000;

/// Bytes read from a file or stdin, wiped when dropped.
pub struct Source {
    /// File name as given, or `<stdin>`.
    pub name: String,
    /// The content.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl Source {
    /// Reads `path`, or stdin for `None` or `-`, refusing more than [`MAX_INPUT_BYTES`].
    pub fn read(path: Option<&Path>) -> Result<Source> {
        match path {
            None => Self::from_reader("<stdin>", std::io::stdin().lock()),
            Some(p) if p.as_os_str() == "-" => Self::from_reader("<stdin>", std::io::stdin().lock()),
            Some(p) => {
                let file = std::fs::File::open(p).map_err(|e| Error::io(p.display(), e))?;
                Self::from_reader(&p.display().to_string(), file)
            }
        }
    }

    /// Reads at most [`MAX_INPUT_BYTES`] (+1 to notice more) from `reader`.
    pub fn from_reader(name: &str, reader: impl Read) -> Result<Source> {
        let mut bytes = Zeroizing::new(Vec::new());
        reader.take(MAX_INPUT_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(|e| Error::io(name, e))?;
        if bytes.len() > MAX_INPUT_BYTES {
            return Err(Error::input(
                &Location::source(name),
                format!("input larger than {} MiB; split it into several files", MAX_INPUT_BYTES >> 20),
            ));
        }
        Ok(Source { name: name.to_owned(), bytes })
    }

    /// Wraps bytes already in memory.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> Source {
        Source { name: name.to_owned(), bytes: Zeroizing::new(bytes) }
    }

    /// Where this source is, for errors.
    pub fn location(&self) -> Location {
        Location::source(&self.name)
    }
}

/// A JSON-like tree whose strings are overwritten when it is dropped.
#[derive(Default)]
pub struct Wiped(pub Value);

impl Drop for Wiped {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

fn wipe(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}

/// One document of an input: its 1-based position and its content. Items of a `v1` List are
/// documents of their own, numbered `document.item`.
pub struct Document {
    /// Where it is.
    pub at: Location,
    /// The parsed content.
    pub value: Wiped,
}

/// Parses every document of `source`.
pub fn documents(source: &Source) -> Result<Vec<Document>> {
    let at = source.location();
    let text = std::str::from_utf8(&source.bytes).map_err(|e| {
        Error::input(&at, format!("not UTF-8 text (byte {}): manifests are UTF-8", e.valid_up_to()))
    })?;
    let trimmed = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    let values = if trimmed.starts_with('{') { parse_json(trimmed, &at)? } else { parse_yaml(text, &at)? };
    let mut out = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let doc_at = at.document(i + 1);
        flatten_list(value, doc_at, &mut out)?;
    }
    Ok(out)
}

fn flatten_list(mut value: Wiped, at: Location, out: &mut Vec<Document>) -> Result<()> {
    let is_list =
        value.0.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"))
            && value.0.get("items").is_some();
    if !is_list {
        out.push(Document { at, value });
        return Ok(());
    }
    let Some(Value::Array(items)) = value.0.get_mut("items").map(Value::take) else {
        return Err(Error::input(&at, "a List whose items is not a list"));
    };
    for (i, item) in items.into_iter().enumerate() {
        let source = format!("{}, document {} item {}", at.source, at.document.unwrap_or(1), i + 1);
        out.push(Document { at: Location::source(source), value: Wiped(item) });
    }
    Ok(())
}

fn parse_json(text: &str, at: &Location) -> Result<Vec<Wiped>> {
    let mut out = Vec::new();
    for value in serde_json::Deserializer::from_str(text).into_iter::<StrictValue>() {
        // serde_json's messages give line and column; they never quote string contents. A duplicate
        // key is named (keys are field and item names, not values).
        let value = value.map_err(|e| {
            let why = if e.is_data() {
                let message = e.to_string();
                let reason = message.split(" at line ").next().unwrap_or("invalid JSON").to_owned();
                format!("{reason} at line {} column {}; remove one of them", e.line(), e.column())
            } else {
                format!("invalid JSON at line {} column {}", e.line(), e.column())
            };
            Error::input(&at.document(out.len() + 1), why)
        })?;
        let value = value.0;
        if out.len() == MAX_DOCUMENTS {
            return Err(Error::input(at, format!("more than {MAX_DOCUMENTS} documents")));
        }
        out.push(Wiped(value));
    }
    Ok(out)
}

/// A JSON value whose objects must not repeat a key: serde_json keeps the last one silently, so
/// `{"data": {...}, "data": {...}}` would seal something other than what a reviewer read.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if object.contains_key(&key) {
                // Not wiped by Wiped (it never gets there): the value is dropped here; keys are names.
                let mut value = value;
                wipe(&mut value);
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn parse_yaml(text: &str, at: &Location) -> Result<Vec<Wiped>> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: MAX_DOCUMENTS,
            max_depth: MAX_DEPTH,
            max_aliases: MAX_ALIASES,
            max_anchors: MAX_ALIASES,
            max_total_scalar_bytes: MAX_INPUT_BYTES,
        },
        // Never echo input in errors: it may be a plaintext.
        with_snippet: false,
        // YAML 1.2 booleans only: `n`, `no`, `off` stay strings (a namespace called `n` is a namespace).
        strict_booleans: true,
    };
    let values: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| Error::input(at, format!("invalid YAML: {}", redact_yaml_error(&e.to_string()))))?;
    Ok(values.into_iter().map(Wiped).collect())
}

/// Keeps a parse error's position and reason but drops anything quoted from the input.
fn redact_yaml_error(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' | '`' => {
                quoted = !quoted;
                if quoted {
                    out.push_str("<…>");
                }
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out.lines().next().unwrap_or("").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Document>> {
        documents(&Source::from_bytes("t.yaml", text.as_bytes().to_vec()))
    }

    #[test]
    fn yaml_documents_are_numbered_and_lists_flattened() {
        let docs = parse("a: 1\n---\nkind: List\napiVersion: v1\nitems:\n- x: 1\n- x: 2\n").unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].at.to_string(), "t.yaml, document 1");
        assert_eq!(docs[2].at.to_string(), "t.yaml, document 2 item 2");
        assert_eq!(docs[2].value.0["x"], 2);
    }

    #[test]
    fn json_stream_is_several_documents() {
        let docs = parse("{\"a\":1}\n{\"a\":2}").unwrap();
        assert_eq!(docs.len(), 2);
        let err = parse("{\"a\":1}\n{\"a\": \"hunter2").err().unwrap().to_string();
        assert!(err.contains("document 2") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        let started = std::time::Instant::now();
        assert!(parse(&bomb).is_err());
        // Not a timing assertion on the product: a guard that the test itself cannot hang the suite.
        assert!(started.elapsed().as_secs() < 30);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn yaml_errors_do_not_echo_input() {
        let err = parse("data:\n  password: \"hunter2\n").err().unwrap().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.starts_with("t.yaml"), "{err}");
    }

    #[test]
    fn duplicate_json_keys_are_refused_and_named() {
        let err = parse(r#"{"kind": "Secret", "data": {"a": "eA=="}, "data": {"b": "eQ=="}}"#)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("duplicate key \"data\""), "{err}");
        assert!(err.contains("line 1"), "{err}");
        assert!(
            parse(r#"{"stringData": {"p": "hunter2", "p": "x"}}"#)
                .err()
                .unwrap()
                .to_string()
                .contains("\"p\"")
        );
        assert!(
            !parse(r#"{"stringData": {"p": "hunter2", "p": "x"}}"#)
                .err()
                .unwrap()
                .to_string()
                .contains("hunter2")
        );
        assert!(parse("a: 1\na: 2\n").is_err(), "YAML duplicate keys are refused too");
    }

    #[test]
    fn too_large_input_is_refused() {
        let big = std::io::repeat(b'a').take(MAX_INPUT_BYTES as u64 + 10);
        let err = Source::from_reader("big", big).err().unwrap().to_string();
        assert!(err.contains("larger than 64 MiB"), "{err}");
    }
}
