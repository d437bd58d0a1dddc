//! Go's `fmt` for the values templates handle: `Sprint`, `Sprintln` and `Sprintf` with verbs, flags, widths,
//! precisions, argument indexes and Go's in-band error forms (`%!d(string=x)`, `%!(EXTRA ...)`, `%!s(MISSING)`).
//! Those forms are output, exactly as Go writes them; they are never turned into an [`crate::Error`].
//! The few corners not reproduced (`%p`, `%#` on floats, hex floats) return `Err(reason)` so the caller refuses.

use crate::gostr;
use crate::value::{Value, float_digits, format_float_g, format_float_v};

pub(crate) type FmtResult<T> = Result<T, &'static str>;

#[derive(Clone, Copy, Default)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    wid: Option<usize>,
    prec: Option<usize>,
    sharp_v: bool,
    plus_v: bool,
}

/// One formatting run (Go's `pp`).
struct Printer {
    buf: Vec<u8>,
    f: Flags,
}

const LDIGITS: &[u8; 16] = b"0123456789abcdef";
const UDIGITS: &[u8; 16] = b"0123456789ABCDEF";

/// Bound on one formatted value, checked while printing (the output limit applies only afterwards).
const MAX_PRINTED: usize = 16 << 20;

/// Go would recurse until its stack overflows on a map containing itself; we stop here.
const MAX_NESTING: usize = 100;

/// Bounds widths and precisions so that `%999999999d` cannot allocate without limit (Go's own bound is 1e6).
const MAX_WIDTH: usize = 1_000_000;

impl Printer {
    fn new() -> Self {
        Printer { buf: Vec::new(), f: Flags::default() }
    }

    fn write_padding(&mut self, n: usize) {
        let c = if self.f.zero { b'0' } else { b' ' };
        self.buf.extend(std::iter::repeat_n(c, n));
    }

    fn pad(&mut self, b: &[u8]) {
        let Some(wid) = self.f.wid else {
            self.buf.extend_from_slice(b);
            return;
        };
        let n = gostr::rune_count(b);
        let fill = wid.saturating_sub(n);
        if self.f.minus {
            self.buf.extend_from_slice(b);
            let zero = std::mem::replace(&mut self.f.zero, false);
            self.write_padding(fill);
            self.f.zero = zero;
        } else {
            self.write_padding(fill);
            self.buf.extend_from_slice(b);
        }
    }

    fn truncate<'b>(&self, s: &'b [u8]) -> &'b [u8] {
        if let Some(p) = self.f.prec {
            let mut end = 0;
            for (i, (_, w)) in gostr::runes(s).enumerate() {
                if i == p {
                    return &s[..end];
                }
                end += w;
            }
        }
        s
    }

    fn bad_verb(&mut self, verb: char, v: &Value) -> FmtResult<()> {
        self.buf.extend_from_slice(b"%!");
        gostr::push_rune(&mut self.buf, verb);
        self.buf.push(b'(');
        if let Value::Nil = v {
            self.buf.extend_from_slice(b"<nil>");
        } else {
            self.buf.extend_from_slice(v.type_name().as_bytes());
            self.buf.push(b'=');
            self.print_value(v, 'v', 0)?;
        }
        self.buf.push(b')');
        Ok(())
    }

    /// `printArg` / `printValue` for one value.
    fn print_value(&mut self, v: &Value, verb: char, depth: usize) -> FmtResult<()> {
        // Shared sub-lists can make a value exponentially larger than the template that built it.
        if self.buf.len() > MAX_PRINTED {
            return Err("a value this large is not printed");
        }
        if verb == 'T' {
            let t = v.type_name();
            self.pad(t.as_bytes());
            return Ok(());
        }
        if verb == 'p' {
            return Err("the %p verb prints memory addresses");
        }
        match v {
            Value::Nil => {
                if depth > 0 {
                    self.buf.extend_from_slice(if self.f.sharp_v { b"interface {}(nil)" } else { b"<nil>" });
                    return Ok(());
                }
                match verb {
                    'v' => self.pad(b"<nil>"),
                    _ => self.bad_verb(verb, v)?,
                }
            }
            Value::Bool(b) => match verb {
                't' | 'v' => self.pad(if *b { b"true" } else { b"false" }),
                _ => self.bad_verb(verb, v)?,
            },
            Value::Int(i, _) => self.fmt_int(*i, verb, v)?,
            Value::Float(x) => self.fmt_float(*x, verb, v)?,
            Value::Time(..) => {
                return Err("printing a time.Time is not reproduced (Go adds a monotonic clock reading)");
            }
            Value::Str(s) => self.fmt_string(s, verb, v)?,
            Value::List(items, _) => {
                if self.f.sharp_v {
                    self.buf.extend_from_slice(v.type_name().as_bytes());
                    self.buf.push(b'{');
                } else {
                    self.buf.push(b'[');
                }
                if depth >= MAX_NESTING {
                    return Err("values nested this deep are not printed");
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.buf.extend_from_slice(if self.f.sharp_v { b", " } else { b" " });
                    }
                    self.print_value(item, verb, depth + 1)?;
                }
                self.buf.push(if self.f.sharp_v { b'}' } else { b']' });
            }
            Value::Map(m, _) => {
                if self.f.sharp_v {
                    self.buf.extend_from_slice(v.type_name().as_bytes());
                    self.buf.push(b'{');
                } else {
                    self.buf.extend_from_slice(b"map[");
                }
                if depth >= MAX_NESTING {
                    return Err("values nested this deep (or a map containing itself) are not printed");
                }
                let m = m.borrow();
                for (i, (k, item)) in m.iter().enumerate() {
                    if i > 0 {
                        self.buf.extend_from_slice(if self.f.sharp_v { b", " } else { b" " });
                    }
                    self.fmt_string(k, verb, &Value::str(k.as_slice()))?;
                    self.buf.push(b':');
                    self.print_value(item, verb, depth + 1)?;
                }
                self.buf.push(if self.f.sharp_v { b'}' } else { b']' });
            }
        }
        Ok(())
    }

    fn fmt_string(&mut self, s: &[u8], verb: char, v: &Value) -> FmtResult<()> {
        match verb {
            'v' if self.f.sharp_v => self.fmt_q(s),
            'v' | 's' => {
                let t = self.truncate(s).to_vec();
                self.pad(&t);
            }
            'x' => self.fmt_sx(s, LDIGITS),
            'X' => self.fmt_sx(s, UDIGITS),
            'q' => self.fmt_q(s),
            _ => self.bad_verb(verb, v)?,
        }
        Ok(())
    }

    fn fmt_q(&mut self, s: &[u8]) {
        let s = self.truncate(s).to_vec();
        if self.f.sharp && gostr::can_backquote(&s) {
            let mut q = vec![b'`'];
            q.extend_from_slice(&s);
            q.push(b'`');
            self.pad(&q);
            return;
        }
        let mut out = Vec::new();
        gostr::quote_into(&mut out, &s, b'"', self.f.plus);
        self.pad(&out);
    }

    fn fmt_sx(&mut self, s: &[u8], digits: &[u8; 16]) {
        let x = if digits[10] == b'a' { b'x' } else { b'X' };
        let mut length = s.len();
        if let Some(p) = self.f.prec {
            length = length.min(p);
        }
        let mut width = 2 * length;
        if width == 0 {
            if let Some(w) = self.f.wid {
                self.write_padding(w);
            }
            return;
        }
        if self.f.space {
            if self.f.sharp {
                width *= 2;
            }
            width += length - 1;
        } else if self.f.sharp {
            width += 2;
        }
        let wid = self.f.wid.unwrap_or(0);
        if wid > width && !self.f.minus {
            self.write_padding(wid - width);
        }
        if self.f.sharp {
            self.buf.extend_from_slice(&[b'0', x]);
        }
        for (i, &c) in s[..length].iter().enumerate() {
            if self.f.space && i > 0 {
                self.buf.push(b' ');
                if self.f.sharp {
                    self.buf.extend_from_slice(&[b'0', x]);
                }
            }
            self.buf.push(digits[usize::from(c >> 4)]);
            self.buf.push(digits[usize::from(c & 0xF)]);
        }
        if wid > width && self.f.minus {
            self.write_padding(wid - width);
        }
    }

    fn fmt_int(&mut self, i: i64, verb: char, v: &Value) -> FmtResult<()> {
        match verb {
            'v' | 'd' => self.fmt_integer(i, 10, verb, LDIGITS),
            'b' => self.fmt_integer(i, 2, verb, LDIGITS),
            'o' | 'O' => self.fmt_integer(i, 8, verb, LDIGITS),
            'x' => self.fmt_integer(i, 16, verb, LDIGITS),
            'X' => self.fmt_integer(i, 16, verb, UDIGITS),
            'c' => {
                let c = u32::try_from(i).ok().and_then(char::from_u32).unwrap_or(gostr::RUNE_ERROR);
                let mut b = Vec::new();
                gostr::push_rune(&mut b, c);
                self.pad(&b);
            }
            'q' => {
                let c = u32::try_from(i).ok().and_then(char::from_u32).unwrap_or(gostr::RUNE_ERROR);
                let q = gostr::quote_rune(c, self.f.plus);
                self.pad(&q);
            }
            'U' => {
                let mut s = format!("U+{:04X}", i as u64);
                if self.f.sharp
                    && let Some(c) = u32::try_from(i).ok().and_then(char::from_u32)
                    && gostr::is_print(c)
                {
                    s.push_str(" '");
                    s.push(c);
                    s.push('\'');
                }
                // fmtUnicode pads with spaces only.
                let zero = std::mem::replace(&mut self.f.zero, false);
                self.pad(s.as_bytes());
                self.f.zero = zero;
            }
            _ => self.bad_verb(verb, v)?,
        }
        Ok(())
    }

    fn fmt_integer(&mut self, v: i64, base: u64, verb: char, digits: &[u8; 16]) {
        let negative = v < 0;
        let mut u = v.unsigned_abs();
        let mut prec = 0usize;
        if let Some(p) = self.f.prec {
            prec = p;
            if p == 0 && u == 0 {
                let zero = std::mem::replace(&mut self.f.zero, false);
                self.write_padding(self.f.wid.unwrap_or(0));
                self.f.zero = zero;
                return;
            }
        } else if self.f.zero
            && let Some(w) = self.f.wid
        {
            prec = w;
            if negative || self.f.plus || self.f.space {
                prec = prec.saturating_sub(1);
            }
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            out.push(digits[usize::try_from(u % base).unwrap_or(0)]);
            u /= base;
            if u == 0 {
                break;
            }
        }
        while out.len() < prec {
            out.push(b'0');
        }
        if self.f.sharp {
            match base {
                2 => out.extend_from_slice(b"b0"),
                8 if out.last() != Some(&b'0') => out.push(b'0'),
                16 => out.extend_from_slice(if digits[10] == b'a' { b"x0" } else { b"X0" }),
                _ => {}
            }
        }
        if verb == 'O' {
            out.extend_from_slice(b"o0");
        }
        if negative {
            out.push(b'-');
        } else if self.f.plus {
            out.push(b'+');
        } else if self.f.space {
            out.push(b' ');
        }
        out.reverse();
        let zero = std::mem::replace(&mut self.f.zero, false);
        self.pad(&out);
        self.f.zero = zero;
    }

    fn fmt_float(&mut self, x: f64, verb: char, v: &Value) -> FmtResult<()> {
        let (verb_c, prec) = match verb {
            'v' => ('g', self.f.prec),
            'g' | 'G' => (verb, self.f.prec),
            'e' | 'E' | 'f' | 'F' => (verb, Some(self.f.prec.unwrap_or(6))),
            'b' | 'x' | 'X' => return Err("binary and hexadecimal float verbs are not reproduced"),
            _ => return self.bad_verb(verb, v),
        };
        if self.f.sharp || self.f.sharp_v {
            return Err("the # flag on floats is not reproduced");
        }
        let body = format_float(x, verb_c, prec);
        let mut num = Vec::with_capacity(body.len() + 1);
        if body.starts_with('-') {
            num.extend_from_slice(body.as_bytes());
        } else {
            num.push(b'+');
            num.extend_from_slice(body.as_bytes());
        }
        if self.f.space && num[0] == b'+' && !self.f.plus {
            num[0] = b' ';
        }
        if num[1] == b'I' || num[1] == b'N' {
            let zero = std::mem::replace(&mut self.f.zero, false);
            if num[1] == b'N' && !self.f.space && !self.f.plus {
                num.remove(0);
            }
            self.pad(&num);
            self.f.zero = zero;
            return Ok(());
        }
        if self.f.plus || num[0] != b'+' {
            if self.f.zero
                && let Some(w) = self.f.wid
                && w > num.len()
            {
                self.buf.push(num[0]);
                self.write_padding(w - num.len());
                self.buf.extend_from_slice(&num[1..]);
                return Ok(());
            }
            self.pad(&num);
            return Ok(());
        }
        self.pad(&num[1..]);
        Ok(())
    }
}

/// `strconv.FormatFloat(x, verb, prec, 64)` for e, E, f, F, g, G.
pub(crate) fn format_float(x: f64, verb: char, prec: Option<usize>) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let s = match verb {
        'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), x),
        'e' | 'E' => {
            let p = prec.unwrap_or(6);
            let (digits, dp) = if x == 0.0 { (vec![b'0'; p + 1], 1) } else { float_digits(x, Some(p + 1)) };
            let mut s = String::new();
            if x.is_sign_negative() {
                s.push('-');
            }
            s.push(char::from(digits[0]));
            if p > 0 {
                s.push('.');
                s.extend(digits[1..].iter().map(|&d| char::from(d)));
            }
            let e = if x == 0.0 { 0 } else { dp - 1 };
            s.push('e');
            s.push(if e < 0 { '-' } else { '+' });
            if e.unsigned_abs() < 10 {
                s.push('0');
            }
            s.push_str(&e.unsigned_abs().to_string());
            s
        }
        _ => match prec {
            None => format_float_v(x),
            Some(p) => format_float_g(x, Some(p)),
        },
    };
    if matches!(verb, 'E' | 'G') { s.to_uppercase() } else { s }
}

/// Go's `fmt.Sprint`.
pub(crate) fn sprint(args: &[Value]) -> FmtResult<Vec<u8>> {
    let mut p = Printer::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            p.buf.push(b' ');
        }
        p.print_value(a, 'v', 0)?;
        prev_string = is_string;
    }
    Ok(p.buf)
}

/// Go's `fmt.Sprintln`.
pub(crate) fn sprintln(args: &[Value]) -> FmtResult<Vec<u8>> {
    let mut p = Printer::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            p.buf.push(b' ');
        }
        p.print_value(a, 'v', 0)?;
    }
    p.buf.push(b'\n');
    Ok(p.buf)
}

/// `%v` of one value (what `{{ . }}` prints).
pub(crate) fn print_v(v: &Value) -> FmtResult<Vec<u8>> {
    let mut p = Printer::new();
    p.print_value(v, 'v', 0)?;
    Ok(p.buf)
}

fn parse_num(b: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n: usize = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        if n > MAX_WIDTH {
            return (None, b.len()); // Go: a crazy long number is no number, and ends the format.
        }
        n = n * 10 + usize::from(b[i] - b'0');
        i += 1;
    }
    if i == start { (None, i) } else { (Some(n), i) }
}

/// Go's `fmt.Sprintf`.
pub(crate) fn sprintf(format: &[u8], args: &[Value]) -> FmtResult<Vec<u8>> {
    let mut p = Printer::new();
    let end = format.len();
    let mut arg_num = 0usize;
    let mut after_index;
    let mut reordered = false;
    let mut good_arg_num;
    let mut i = 0;
    while i < end {
        let lasti = i;
        while i < end && format[i] != b'%' {
            i += 1;
        }
        p.buf.extend_from_slice(&format[lasti..i]);
        if i >= end {
            break;
        }
        i += 1; // '%'
        p.f = Flags::default();
        while i < end {
            match format[i] {
                b'#' => p.f.sharp = true,
                b'0' => p.f.zero = !p.f.minus,
                b'+' => p.f.plus = true,
                b'-' => {
                    p.f.minus = true;
                    p.f.zero = false;
                }
                b' ' => p.f.space = true,
                _ => break,
            }
            i += 1;
        }
        // Argument index, then width.
        good_arg_num = true;
        (arg_num, i, after_index) =
            arg_index(format, i, arg_num, args.len(), &mut reordered, &mut good_arg_num);
        if i < end && format[i] == b'*' {
            i += 1;
            match int_from_arg(args, &mut arg_num) {
                Some(w) => {
                    if w < 0 {
                        p.f.minus = true;
                        p.f.zero = false;
                    }
                    p.f.wid = usize::try_from(w.unsigned_abs()).ok();
                }
                None => p.buf.extend_from_slice(b"%!(BADWIDTH)"),
            }
            after_index = false;
        } else {
            let (w, ni) = parse_num(format, i);
            p.f.wid = w;
            if after_index && w.is_some() {
                good_arg_num = false;
            }
            i = ni;
        }
        // Go looks for a precision only when something follows the dot ("%5." prints the verb '.').
        if i + 1 < end && format[i] == b'.' {
            i += 1;
            if after_index {
                good_arg_num = false;
            }
            (arg_num, i, after_index) =
                arg_index(format, i, arg_num, args.len(), &mut reordered, &mut good_arg_num);
            if i < end && format[i] == b'*' {
                i += 1;
                match int_from_arg(args, &mut arg_num) {
                    Some(pr) if pr >= 0 => p.f.prec = usize::try_from(pr).ok(),
                    // Go: a negative precision argument makes no sense.
                    _ => p.buf.extend_from_slice(b"%!(BADPREC)"),
                }
                after_index = false;
            } else {
                let (pr, ni) = parse_num(format, i);
                p.f.prec = Some(pr.unwrap_or(0));
                i = ni;
            }
        }
        if !after_index {
            (arg_num, i, _) = arg_index(format, i, arg_num, args.len(), &mut reordered, &mut good_arg_num);
        }
        if i >= end {
            p.buf.extend_from_slice(b"%!(NOVERB)");
            break;
        }
        let (verb, size) = gostr::decode_rune(&format[i..]);
        i += size;
        if verb == '%' {
            p.buf.push(b'%');
            continue;
        }
        if !good_arg_num {
            p.buf.extend_from_slice(b"%!");
            gostr::push_rune(&mut p.buf, verb);
            p.buf.extend_from_slice(b"(BADINDEX)");
            continue;
        }
        let Some(arg) = args.get(arg_num) else {
            p.buf.extend_from_slice(b"%!");
            gostr::push_rune(&mut p.buf, verb);
            p.buf.extend_from_slice(b"(MISSING)");
            continue;
        };
        if verb == 'w' {
            p.bad_verb(verb, arg)?;
            arg_num += 1;
            continue;
        }
        if verb == 'v' {
            if p.f.sharp {
                p.f.sharp = false;
                p.f.sharp_v = true;
            }
            if p.f.plus {
                p.f.plus = false;
                p.f.plus_v = true;
            }
        }
        p.print_value(arg, verb, 0)?;
        arg_num += 1;
        // Each verb may pad to a million bytes; a long format of them must not grow without bound.
        if p.buf.len() > MAX_PRINTED {
            return Err("a formatted string this large is not produced");
        }
    }
    if !reordered && arg_num < args.len() {
        p.f = Flags::default();
        p.buf.extend_from_slice(b"%!(EXTRA ");
        for (k, a) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                p.buf.extend_from_slice(b", ");
            }
            if let Value::Nil = a {
                p.buf.extend_from_slice(b"<nil>");
            } else {
                p.buf.extend_from_slice(a.type_name().as_bytes());
                p.buf.push(b'=');
                p.print_value(a, 'v', 0)?;
            }
        }
        p.buf.push(b')');
    }
    Ok(p.buf)
}

/// Go's `intFromArg`: an int argument for `*`, consumed if present; `None` when missing, not an int or too large.
fn int_from_arg(args: &[Value], arg_num: &mut usize) -> Option<i64> {
    let a = args.get(*arg_num)?;
    *arg_num += 1;
    match a {
        Value::Int(n, _) if n.unsigned_abs() <= MAX_WIDTH as u64 => Some(*n),
        _ => None,
    }
}

/// Go's `argNumber`: an optional `[n]` at `i` selects argument n (1-based). A malformed or out-of-range index
/// marks the verb BADINDEX; any index turns off the EXTRA report (`reordered`).
fn arg_index(
    format: &[u8],
    i: usize,
    arg_num: usize,
    num_args: usize,
    reordered: &mut bool,
    good: &mut bool,
) -> (usize, usize, bool) {
    if i >= format.len() || format[i] != b'[' {
        return (arg_num, i, false);
    }
    *reordered = true;
    let rest = &format[i..];
    // Go's parseArgNumber: at least "[n]", digits only up to the closing bracket.
    let (index, wid, ok) = match rest.iter().position(|&c| c == b']') {
        Some(close) if rest.len() >= 3 => match parse_num(rest, 1) {
            (Some(n), newi) if newi == close => (n.checked_sub(1), close + 1, true),
            _ => (None, close + 1, false),
        },
        _ => (None, 1, false),
    };
    match index {
        Some(index) if ok && index < num_args => (index, i + wid, true),
        _ => {
            *good = false;
            (arg_num, i + wid, ok)
        }
    }
}
