//! Go `text/template` + Sprig, rendered byte for byte as Bitnami sealed-secrets renders `spec.template.data`.
//!
//! sealed-secrets renders each template entry with `template.New(key).Funcs(sprig.GenericFuncMap() minus env,
//! expandenv, getHostByName).Parse(value)` and executes it over `map[string]string` of the decrypted items.
//! [`render`] does the same: the reference is Go 1.19's `text/template` and Sprig 3.2.3 (Debian's packages), and
//! `tests/differential.rs` checks every case of `tests/data/cases.jsonl` against the answers Go recorded.
//!
//! The contract:
//! - Output is identical to Go's, or the call fails. Anything this engine does not reproduce exactly (a Sprig function
//!   not implemented, or judged unsafe in a controller) is [`Error::Unsupported`] naming the function, raised when
//!   the function is called, as Go would only call it then. It is never a silently different output.
//! - Rendering is bounded by [`Limits`]: output bytes, evaluation steps, template call depth and range iterations.
//! - Errors never carry text derived from the data (decrypted secrets): their `Display` holds the template name,
//!   position, the template's own source text, function and Go type names, and fixed wording. `fail`'s message, a
//!   bad argument's value and Go's `%!d(string=...)` echo are left out on purpose.
//! - Pure: no I/O, no clock except `now`, no randomness except Sprig's random functions (`uuidv4`, `rand*`,
//!   `shuffle`, `bcrypt`, `htpasswd`), drawn from the OS generator as Go draws them from crypto/rand.
//!
//! ```
//! use std::collections::BTreeMap;
//! let data = BTreeMap::from([("user".to_string(), b"admin".to_vec())]);
//! let out = arcseal_template::render("k", "{{ .user | upper | quote }}", &data, &Default::default()).unwrap();
//! assert_eq!(out, b"\"ADMIN\"");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod date;
mod decimal;
mod exec;
mod fmt;
mod funcs;
mod gostr;
mod json;
mod parse;
mod random;
mod sprig;
mod sprig_regex;
#[rustfmt::skip]
mod unicode_tables;
mod value;
mod xstrings;

use std::collections::BTreeMap;

use zeroize::{Zeroize, Zeroizing};

/// Bounds on one rendering. Hitting any of them is [`Error::Limit`], never a hang or an unbounded allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest output, in bytes (also bounds intermediate strings such as `repeat`).
    pub max_output: usize,
    /// Evaluation steps: nodes executed plus function calls plus range iterations.
    pub max_steps: u64,
    /// Depth of nested `template` calls and nested parentheses/blocks.
    pub max_depth: usize,
    /// Iterations of one `range`, and length of lists made by `until`, `seq` and the like.
    pub max_range: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_output: 1 << 20, max_steps: 1_000_000, max_depth: 100, max_range: 100_000 }
    }
}

/// Which bound of [`Limits`] a rendering hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::max_output`].
    Output,
    /// [`Limits::max_steps`].
    Steps,
    /// [`Limits::max_depth`].
    Depth,
    /// [`Limits::max_range`].
    Range,
}

impl std::fmt::Display for LimitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LimitKind::Output => "output size",
            LimitKind::Steps => "evaluation steps",
            LimitKind::Depth => "nesting depth",
            LimitKind::Range => "range iterations",
        })
    }
}

/// Why a template could not be rendered. No variant holds text derived from the data values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The template does not parse (Go's `Parse` fails too).
    #[error("template: {name}:{line}: {message}")]
    Parse {
        /// The template's name (the `spec.template.data` key).
        name: String,
        /// 1-based line in the source.
        line: usize,
        /// What is wrong, in Go's wording, quoting only the template source.
        message: String,
    },
    /// Execution failed (Go's `Execute` fails too).
    #[error("template: {name}:{line}:{col}: executing {name:?} at <{action}>: {message}")]
    Exec {
        /// The template's name.
        name: String,
        /// 1-based line of the failing node.
        line: usize,
        /// 0-based byte column of the failing node, as Go counts it.
        col: usize,
        /// Source text of the failing node.
        action: String,
        /// What is wrong: fixed wording, function and Go type names only.
        message: String,
    },
    /// The template calls a function this engine does not render exactly like Sprig, or refuses in a controller.
    #[error("template: {name}:{line}:{col}: function {function:?} is not supported by arcseal: {reason}")]
    Unsupported {
        /// The template's name.
        name: String,
        /// 1-based line of the call.
        line: usize,
        /// 0-based byte column of the call.
        col: usize,
        /// The Sprig (or Go) function name, or the construct.
        function: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A bound of [`Limits`] was reached.
    #[error("template: {name}: {limit} limit exceeded")]
    Limit {
        /// The template's name.
        name: String,
        /// Which bound.
        limit: LimitKind,
    },
}

/// Renders one `spec.template.data` entry like sealed-secrets: template named `name`, Sprig funcs minus
/// env/expandenv/getHostByName, data = every decrypted item as a Go string (bytes).
pub fn render(
    name: &str,
    source: &str,
    data: &BTreeMap<String, Vec<u8>>,
    limits: &Limits,
) -> Result<Vec<u8>, Error> {
    let set = parse::parse(name, source, limits)?;
    exec::execute(name, source, &set, data, limits)
}

/// Decrypted items as the engine reads them, wiped when dropped (the engine itself takes plain byte strings).
struct WipedData(BTreeMap<String, Vec<u8>>);

impl Drop for WipedData {
    fn drop(&mut self) {
        self.0.values_mut().for_each(Zeroize::zeroize);
    }
}

/// Renders every `spec.template.data` entry as sealed-secrets' `Unseal` does: each entry over the decrypted items
/// (never over another entry's output), named after its key; a parse or execution error of any entry fails the
/// whole call. An entry without `{{` is literal text (Go's parse of it yields the same bytes). The caller adds the
/// result to the Secret's data, a rendered key replacing an item of the same name. The controller and `arcseal
/// unseal` both call this, so offline recovery renders exactly what the cluster does.
pub fn render_template_data<'a>(
    templates: impl IntoIterator<Item = (&'a String, &'a String)>,
    items: &BTreeMap<String, Zeroizing<Vec<u8>>>,
    limits: &Limits,
) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>, Error> {
    let data = WipedData(items.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect());
    let mut rendered = BTreeMap::new();
    for (key, source) in templates {
        let value = if source.contains("{{") {
            Zeroizing::new(render(key, source, &data.0, limits)?)
        } else {
            Zeroizing::new(source.as_bytes().to_vec())
        };
        rendered.insert(key.clone(), value);
    }
    Ok(rendered)
}

#[cfg(test)]
mod template_data_tests {
    use super::*;

    #[test]
    fn entries_render_over_the_items_not_over_each_other() {
        let items = BTreeMap::from([("user".to_owned(), Zeroizing::new(b"admin".to_vec()))]);
        let templates = BTreeMap::from([
            ("user".to_owned(), "{{ .user | upper }}".to_owned()),
            ("url".to_owned(), "db://{{ .user }}".to_owned()),
            ("plain".to_owned(), "no actions".to_owned()),
        ]);
        let out = render_template_data(&templates, &items, &Limits::default()).unwrap();
        assert_eq!(out["user"].as_slice(), b"ADMIN");
        assert_eq!(
            out["url"].as_slice(),
            b"db://admin",
            "sees the item, not the rendered entry of the same name"
        );
        assert_eq!(out["plain"].as_slice(), b"no actions");
        let bad = BTreeMap::from([("k".to_owned(), "{{ .user | nosuchfunc }}".to_owned())]);
        let err = render_template_data(&bad, &items, &Limits::default()).unwrap_err();
        assert!(err.to_string().contains("k:1"), "{err}");
    }
}
