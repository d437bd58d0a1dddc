//! The function map: Go's builtins (`and or not len index print printf println html js urlquery eq ne lt le gt
//! ge call`) and Sprig's `GenericFuncMap` as sealed-secrets installs it (so Sprig's `slice` replaces Go's), each with
//! its Go signature, which decides what arguments text/template accepts before the call.

use crate::exec::State;
use crate::fmt;
use crate::value::{ElemTy, IntTy, Value};
use crate::{LimitKind, gostr, sprig};

/// A Go parameter type, as text/template's `evalArg` and `validateType` treat it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Param {
    /// `interface{}`.
    Any,
    /// `reflect.Value` (the comparison and logic builtins): like `interface{}` but never nil.
    Val,
    Str,
    Int,
    Float,
    Bool,
    /// `map[string]interface{}`.
    Map,
}

impl Param {
    pub(crate) fn can_be_nil(self) -> bool {
        // reflect.Value is a struct, yet text/template's canBeNil admits it: a missing value arrives invalid.
        matches!(self, Param::Any | Param::Map | Param::Val)
    }

    /// The typed zero value Go passes for a nil argument.
    pub(crate) fn zero(self) -> Value {
        match self {
            Param::Map => Value::map(Default::default()),
            _ => Value::Nil,
        }
    }

    pub(crate) fn go_type(self) -> &'static str {
        match self {
            Param::Any => "interface {}",
            Param::Val => "reflect.Value",
            Param::Str => "string",
            Param::Int => "int",
            Param::Float => "float64",
            Param::Bool => "bool",
            Param::Map => "map[string]interface {}",
        }
    }
}

/// A function's parameters: fixed ones, then an optional variadic element type.
#[derive(Clone, Copy)]
pub(crate) struct Sig {
    pub(crate) fixed: &'static [Param],
    pub(crate) variadic: Option<Param>,
}

pub(crate) const fn fixed(p: &'static [Param]) -> Sig {
    Sig { fixed: p, variadic: None }
}

pub(crate) const fn variadic(p: &'static [Param], v: Param) -> Sig {
    Sig { fixed: p, variadic: Some(v) }
}

/// Why a call did not return a value (fixed wording only, so Debug cannot leak data).
#[derive(Debug)]
pub(crate) enum CallError {
    /// The Go function returned an error or panicked. Fixed wording only: never the argument or `fail` text.
    Failed(&'static str),
    Unsupported(&'static str),
    Limit(LimitKind),
}

pub(crate) type CallResult = Result<Value, CallError>;

/// Every name text/template accepts at parse time in sealed-secrets.
const NAMES: &[&str] = &[
    // Go builtins.
    "and",
    "call",
    "html",
    "index",
    "slice",
    "js",
    "len",
    "not",
    "or",
    "print",
    "printf",
    "println",
    "urlquery",
    "eq",
    "ge",
    "gt",
    "le",
    "lt",
    "ne", // Sprig 3.2.3 GenericFuncMap minus env, expandenv, getHostByName.
    "hello",
    "ago",
    "date",
    "date_in_zone",
    "date_modify",
    "dateInZone",
    "dateModify",
    "duration",
    "durationRound",
    "htmlDate",
    "htmlDateInZone",
    "must_date_modify",
    "mustDateModify",
    "mustToDate",
    "now",
    "toDate",
    "unixEpoch",
    "abbrev",
    "abbrevboth",
    "trunc",
    "trim",
    "upper",
    "lower",
    "title",
    "untitle",
    "substr",
    "repeat",
    "trimall",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "nospace",
    "initials",
    "randAlphaNum",
    "randAlpha",
    "randAscii",
    "randNumeric",
    "swapcase",
    "shuffle",
    "snakecase",
    "camelcase",
    "kebabcase",
    "wrap",
    "wrapWith",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "quote",
    "squote",
    "cat",
    "indent",
    "nindent",
    "replace",
    "plural",
    "sha1sum",
    "sha256sum",
    "adler32sum",
    "toString",
    "atoi",
    "int64",
    "int",
    "float64",
    "seq",
    "toDecimal",
    "split",
    "splitList",
    "splitn",
    "toStrings",
    "until",
    "untilStep",
    "add1",
    "add",
    "sub",
    "div",
    "mod",
    "mul",
    "randInt",
    "add1f",
    "addf",
    "subf",
    "divf",
    "mulf",
    "biggest",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "join",
    "sortAlpha",
    "default",
    "empty",
    "coalesce",
    "all",
    "any",
    "compact",
    "mustCompact",
    "fromJson",
    "toJson",
    "toPrettyJson",
    "toRawJson",
    "mustFromJson",
    "mustToJson",
    "mustToPrettyJson",
    "mustToRawJson",
    "ternary",
    "deepCopy",
    "mustDeepCopy",
    "typeOf",
    "typeIs",
    "typeIsLike",
    "kindOf",
    "kindIs",
    "deepEqual",
    "base",
    "dir",
    "clean",
    "ext",
    "isAbs",
    "osBase",
    "osClean",
    "osDir",
    "osExt",
    "osIsAbs",
    "b64enc",
    "b64dec",
    "b32enc",
    "b32dec",
    "tuple",
    "list",
    "dict",
    "get",
    "set",
    "unset",
    "hasKey",
    "pluck",
    "keys",
    "pick",
    "omit",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "values",
    "append",
    "push",
    "mustAppend",
    "mustPush",
    "prepend",
    "mustPrepend",
    "first",
    "mustFirst",
    "rest",
    "mustRest",
    "last",
    "mustLast",
    "initial",
    "mustInitial",
    "reverse",
    "mustReverse",
    "uniq",
    "mustUniq",
    "without",
    "mustWithout",
    "has",
    "mustHas",
    "mustSlice",
    "concat",
    "dig",
    "chunk",
    "mustChunk",
    "bcrypt",
    "htpasswd",
    "genPrivateKey",
    "derivePassword",
    "buildCustomCert",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "encryptAES",
    "decryptAES",
    "randBytes",
    "uuidv4",
    "semver",
    "semverCompare",
    "fail",
    "regexMatch",
    "mustRegexMatch",
    "regexFindAll",
    "mustRegexFindAll",
    "regexFind",
    "mustRegexFind",
    "regexReplaceAll",
    "mustRegexReplaceAll",
    "regexReplaceAllLiteral",
    "mustRegexReplaceAllLiteral",
    "regexSplit",
    "mustRegexSplit",
    "regexQuoteMeta",
    "urlParse",
    "urlJoin",
];

/// Whether `name` is in sealed-secrets' function map (else Go's parser rejects it: "function not defined").
pub(crate) fn is_defined(name: &str) -> bool {
    NAMES.contains(&name)
}

/// Why a defined function is refused (it has no signature here).
pub(crate) fn refusal(name: &str) -> &'static str {
    sprig::refusal(name)
}

use Param::*;

/// The Go signature of an implemented function; `None` for defined functions that are refused.
pub(crate) fn signature(name: &str) -> Option<Sig> {
    Some(match name {
        "and" | "or" => variadic(&[Val], Val),
        "not" | "len" => fixed(&[Val]),
        "index" => variadic(&[Val], Val),
        "eq" => variadic(&[Val], Val),
        "ne" | "lt" | "le" | "gt" | "ge" => fixed(&[Val, Val]),
        "print" | "println" | "html" | "js" | "urlquery" => variadic(&[], Any),
        "printf" => variadic(&[Str], Any),
        "call" => variadic(&[Val], Val),
        _ => return sprig::signature(name),
    })
}

/// Calls an implemented function. Invariant: the executor has checked `args` against [`signature`] (count and
/// Go types, as evalCall does), so the fixed positions index safely and typed positions hold their type.
pub(crate) fn call(st: &mut State<'_>, name: &str, args: Vec<Value>) -> CallResult {
    let out = match name {
        // Invariant: the executor short-circuits and/or itself and never calls them here.
        "and" | "or" => Value::Nil,
        "not" => Value::Bool(!args[0].truth()),
        "len" => Value::int(match &args[0] {
            Value::Str(s) => s.len() as i64,
            Value::List(l, _) => l.len() as i64,
            Value::Map(m, _) => m.borrow().len() as i64,
            _ => return Err(CallError::Failed("len of this type")),
        }),
        "index" => index(&args[0], &args[1..])?,
        "eq" => Value::Bool(eq(&args[0], &args[1..])?),
        "ne" => Value::Bool(!eq(&args[0], &args[1..2])?),
        "lt" => Value::Bool(lt(&args[0], &args[1])?),
        "le" => Value::Bool(lt(&args[0], &args[1])? || eq(&args[0], &args[1..2])?),
        "gt" => Value::Bool(!(lt(&args[0], &args[1])? || eq(&args[0], &args[1..2])?)),
        "ge" => Value::Bool(!lt(&args[0], &args[1])?),
        // print and println are fmt's own: a nil argument prints <nil>.
        "print" => Value::str(fmt::sprint(&args).map_err(CallError::Unsupported)?),
        "println" => Value::str(fmt::sprintln(&args).map_err(CallError::Unsupported)?),
        "printf" => {
            let Value::Str(f) = &args[0] else { return Err(CallError::Failed("format is not a string")) };
            Value::str(fmt::sprintf(f, &args[1..]).map_err(CallError::Unsupported)?)
        }
        "html" => Value::str(html_escape(&eval_args(args)?)),
        "js" => Value::str(js_escape(&eval_args(args)?)),
        "urlquery" => Value::str(query_escape(&eval_args(args)?)),
        "call" => return Err(CallError::Failed("non-function argument to call")),
        _ => return sprig::call(st, name, args),
    };
    if let Value::Str(s) = &out {
        st.check_len(s.len()).map_err(|_| CallError::Limit(LimitKind::Output))?;
    }
    charge_size(st, &out)?;
    Ok(out)
}

/// Charges the steps a value's size represents (one per 64 bytes of string, one per list element): with the
/// default million steps, a rendering touches at most some 64 MB of strings.
pub(crate) fn charge_size(st: &mut State<'_>, v: &Value) -> Result<(), CallError> {
    let n = match v {
        Value::Str(s) => s.len() as u64 / 64,
        Value::List(l, _) => l.len() as u64,
        _ => 0,
    };
    st.step_n(n).map_err(|_| CallError::Limit(LimitKind::Steps))
}

/// text/template's `printableValue` for html/js/urlquery arguments: a nil prints as `<no value>`.
fn printable(args: Vec<Value>) -> Vec<Value> {
    args.into_iter().map(|a| if let Value::Nil = a { Value::str(&b"<no value>"[..]) } else { a }).collect()
}

/// text/template's `evalArgs`: one string argument as is, else `fmt.Sprint` of the printable values.
fn eval_args(args: Vec<Value>) -> Result<Vec<u8>, CallError> {
    if args.len() == 1
        && let Value::Str(s) = &args[0]
    {
        return Ok(s.to_vec());
    }
    fmt::sprint(&printable(args)).map_err(CallError::Unsupported)
}

fn html_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        match c {
            0 => out.extend_from_slice("\u{FFFD}".as_bytes()),
            b'"' => out.extend_from_slice(b"&#34;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            _ => out.push(c),
        }
    }
    out
}

fn js_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c < 0x80 {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\'' => out.extend_from_slice(b"\\'"),
                b'"' => out.extend_from_slice(b"\\\""),
                b'<' => out.extend_from_slice(b"\\u003C"),
                b'>' => out.extend_from_slice(b"\\u003E"),
                b'&' => out.extend_from_slice(b"\\u0026"),
                b'=' => out.extend_from_slice(b"\\u003D"),
                c if c < b' ' => out.extend_from_slice(format!("\\u{:04X}", c).as_bytes()),
                c => out.push(c),
            }
            i += 1;
            continue;
        }
        let (r, w) = gostr::decode_rune(&b[i..]);
        if gostr::is_print(r) {
            out.extend_from_slice(&b[i..i + w]);
        } else {
            out.extend_from_slice(format!("\\u{:04X}", u32::from(r)).as_bytes());
        }
        i += w;
    }
    out
}

/// `url.QueryEscape`.
pub(crate) fn query_escape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    for &c in b {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(c),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{c:02X}").as_bytes()),
        }
    }
    out
}

/// Go's `index` builtin.
fn index(item: &Value, indexes: &[Value]) -> CallResult {
    if let Value::Nil = item {
        return Err(CallError::Failed("index of untyped nil"));
    }
    let mut item = item.clone();
    for ix in indexes {
        item = match &item {
            Value::Str(s) => Value::Int(i64::from(s[index_arg(ix, s.len())?]), IntTy::Uint8),
            Value::List(l, _) => l[index_arg(ix, l.len())?].clone(),
            Value::Map(m, ety) => {
                let key = match ix {
                    Value::Str(k) => k.to_vec(),
                    Value::Nil => return Err(CallError::Failed("value is nil; should be of type string")),
                    _ => return Err(CallError::Failed("index has the wrong type for this map")),
                };
                match m.borrow().get(&key) {
                    Some(v) => v.clone(),
                    None if *ety == ElemTy::Str => Value::str(&b""[..]),
                    None => Value::Nil,
                }
            }
            Value::Nil => return Err(CallError::Failed("index of nil pointer")),
            _ => return Err(CallError::Failed("can't index item of this type")),
        };
    }
    Ok(item)
}

/// Go's `indexArg`, also rejecting the index equal to the length (Go's `Index` panics there).
fn index_arg(ix: &Value, len: usize) -> Result<usize, CallError> {
    let x = match ix {
        Value::Int(i, _) => *i,
        Value::Nil => return Err(CallError::Failed("cannot index slice/array with nil")),
        _ => return Err(CallError::Failed("cannot index slice/array with this type")),
    };
    match usize::try_from(x) {
        Ok(x) if x < len => Ok(x),
        _ => Err(CallError::Failed("index out of range")),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic_kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(..) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

/// Go's `eq`: true if `a` equals any of `bs`.
fn eq(a: &Value, bs: &[Value]) -> Result<bool, CallError> {
    if bs.is_empty() {
        return Err(CallError::Failed("missing argument for comparison"));
    }
    let k1 = basic_kind(a);
    for b in bs {
        let k2 = basic_kind(b);
        let truth = if let (Value::Nil, _) | (_, Value::Nil) = (a, b) {
            // Go: an invalid (missing) value equals only another invalid one, and is no error.
            matches!((a, b), (Value::Nil, Value::Nil))
        } else if k1 != k2 {
            return Err(CallError::Failed("incompatible types for comparison"));
        } else {
            match (a, b) {
                (Value::Bool(x), Value::Bool(y)) => x == y,
                (Value::Int(x, _), Value::Int(y, _)) => x == y,
                (Value::Float(x), Value::Float(y)) => x == y,
                (Value::Str(x), Value::Str(y)) => x == y,
                _ => return Err(CallError::Failed("non-comparable types")),
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Go's `lt`.
fn lt(a: &Value, b: &Value) -> Result<bool, CallError> {
    let (k1, k2) = (basic_kind(a), basic_kind(b));
    if k1 == Kind::Other || k2 == Kind::Other {
        return Err(CallError::Failed("invalid type for comparison"));
    }
    if k1 != k2 {
        return Err(CallError::Failed("incompatible types for comparison"));
    }
    Ok(match (a, b) {
        (Value::Int(x, _), Value::Int(y, _)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => return Err(CallError::Failed("invalid type for comparison")),
    })
}
