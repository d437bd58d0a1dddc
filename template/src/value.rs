//! The values a template handles, with the Go types that decide how functions accept them and how `fmt` prints
//! them. Values hold decrypted secrets: no `Debug`, and nothing here formats them into errors.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Go integer types that templates meet: literals and builtins give `int`, Sprig arithmetic gives `int64`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntTy {
    Int,
    Int64,
    /// A byte of a string (`index "abc" 0`).
    Uint8,
}

/// Element type of a slice: `[]interface {}` (Sprig's list) or `[]string` (splitList, sortAlpha, ...).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElemTy {
    Any,
    Str,
    /// `[]int` (until, untilStep); only lists use it.
    Int,
    /// A nil `[]interface {}` (Sprig's `rest` of an empty list): prints `[]` but encodes as JSON `null`.
    NilAny,
    /// A nil `[]string` (`regexFindAll` without matches).
    NilStr,
}

#[derive(Clone)]
pub(crate) enum Value {
    /// Go's invalid reflect.Value or nil interface: printed `<no value>` at top level, `<nil>` inside fmt.
    Nil,
    Bool(bool),
    Int(i64, IntTy),
    Float(f64),
    Str(Rc<[u8]>),
    List(Rc<Vec<Value>>, ElemTy),
    /// map[string]T; keys are Go strings, iterated in byte order as Go's fmt and range sort them. Shared and
    /// mutable because Go maps are references: Sprig's `set` on `$d` is seen through every copy of `$d`.
    Map(Rc<RefCell<BTreeMap<Vec<u8>, Value>>>, ElemTy),
    /// time.Time in UTC: seconds and nanoseconds since the Unix epoch.
    Time(i64, u32),
}

impl Value {
    pub(crate) fn str(b: impl Into<Rc<[u8]>>) -> Value {
        Value::Str(b.into())
    }

    pub(crate) fn int(i: i64) -> Value {
        Value::Int(i, IntTy::Int)
    }

    pub(crate) fn int64(i: i64) -> Value {
        Value::Int(i, IntTy::Int64)
    }

    pub(crate) fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v), ElemTy::Any)
    }

    pub(crate) fn map(m: BTreeMap<Vec<u8>, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(m)), ElemTy::Any)
    }

    pub(crate) fn str_list(v: Vec<Vec<u8>>) -> Value {
        Value::List(Rc::new(v.into_iter().map(Value::str).collect()), ElemTy::Str)
    }

    /// Go's `reflect.Type.String()`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_, IntTy::Int) => "int",
            Value::Int(_, IntTy::Int64) => "int64",
            Value::Int(_, IntTy::Uint8) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_, ElemTy::Any | ElemTy::NilAny) => "[]interface {}",
            Value::List(_, ElemTy::Str | ElemTy::NilStr) => "[]string",
            Value::List(_, ElemTy::Int) => "[]int",
            Value::Map(_, ElemTy::Str) => "map[string]string",
            Value::Map(..) => "map[string]interface {}",
            Value::Time(..) => "time.Time",
        }
    }

    /// Go's `reflect.Kind.String()`.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_, IntTy::Int) => "int",
            Value::Int(_, IntTy::Int64) => "int64",
            Value::Int(_, IntTy::Uint8) => "uint8",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(..) => "slice",
            Value::Map(..) => "map",
            Value::Time(..) => "struct",
        }
    }

    /// text/template's `isTrue`.
    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i, _) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l, _) => !l.is_empty(),
            Value::Map(m, _) => !m.borrow().is_empty(),
            Value::Time(..) => true,
        }
    }

    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which `%v` prints: shortest digits, exponent form below 1e-4 or
/// from 1e6 (`fmt.Print(1000000.0)` is `1e+06`).
pub(crate) fn format_float_v(f: f64) -> String {
    format_float_g(f, None)
}

/// Decimal digits and exponent of `f` (|f| = 0.d1d2... * 10^exp), shortest or rounded to `prec` significant digits.
pub(crate) fn float_digits(f: f64, prec: Option<usize>) -> (Vec<u8>, i32) {
    let s = match prec {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.saturating_sub(1), f.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: Vec<u8> = mant.bytes().filter(u8::is_ascii_digit).collect();
    (digits, exp + 1)
}

/// `strconv.FormatFloat(f, 'g', prec, 64)`; `None` is the shortest representation.
pub(crate) fn format_float_g(f: f64, prec: Option<usize>) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let neg = f.is_sign_negative();
    let prec = prec.map(|p| p.max(1));
    let (mut digits, dp) = if f == 0.0 { (vec![b'0'], 1) } else { float_digits(f, prec) };
    if prec.is_some() {
        // %g drops trailing zeros (unless #).
        while digits.len() > 1 && digits.last() == Some(&b'0') {
            digits.pop();
        }
    }
    let eprec: i32 = match prec {
        None => 6,
        Some(p) => {
            let p = i32::try_from(p).unwrap_or(i32::MAX);
            let nd = i32::try_from(digits.len()).unwrap_or(i32::MAX);
            if p > nd && nd >= dp { nd } else { p }
        }
    };
    let exp = dp - 1;
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if exp < -4 || exp >= eprec {
        out.push(char::from(digits[0]));
        if digits.len() > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| char::from(d)));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if dp <= 0 {
        out.push_str("0.");
        for _ in 0..-dp {
            out.push('0');
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
    } else {
        let dp = dp as usize;
        for i in 0..dp.max(digits.len()) {
            if i == dp {
                out.push('.');
            }
            out.push(char::from(*digits.get(i).unwrap_or(&b'0')));
        }
    }
    out
}
