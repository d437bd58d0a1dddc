//! Sprig's float helpers: `addf`, `add1f`, `subf`, `mulf` (shopspring/decimal), `maxf`, `minf` (math.Max/Min) and
//! `round`. Decimal arithmetic is exact on the shortest decimal form of each operand (`NewFromFloat`), then rounded
//! once to float64 (`Rat().Float64()`), so `addf 0.1 0.2` is 0.3 where float addition gives 0.30000000000000004.
//! Operands whose exact result does not fit an i128 mantissa are refused; `divf` (16-digit division) is refused.

use crate::funcs::CallError;

/// An exact decimal: mantissa × 10^exp.
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

fn refuse<T>() -> Result<T, CallError> {
    Err(CallError::Unsupported("decimal arithmetic beyond 38 digits is not reproduced"))
}

/// shopspring's `NewFromFloat`: the shortest decimal that reads back as `f`.
fn from_float(f: f64) -> Result<Dec, CallError> {
    if !f.is_finite() {
        return Err(CallError::Failed("cannot create a Decimal from NaN or an infinity"));
    }
    if f == 0.0 {
        return Ok(Dec { m: 0, e: 0 });
    }
    let s = format!("{:e}", f);
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().map_err(|_| CallError::Unsupported("float formatting"))?;
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let m: i128 = digits.parse().map_err(|_| CallError::Unsupported("float formatting"))?;
    let frac = i32::try_from(digits.len()).unwrap_or(i32::MAX) - 1;
    Ok(Dec { m: if neg { -m } else { m }, e: exp - frac })
}

fn scale(d: Dec, to: i32) -> Result<i128, CallError> {
    let k = u32::try_from(d.e - to).map_err(|_| CallError::Unsupported("decimal alignment"))?;
    match 10i128.checked_pow(k).and_then(|p| d.m.checked_mul(p)) {
        Some(v) => Ok(v),
        None => refuse(),
    }
}

fn add(a: Dec, b: Dec) -> Result<Dec, CallError> {
    let e = a.e.min(b.e);
    match scale(a, e)?.checked_add(scale(b, e)?) {
        Some(m) => Ok(Dec { m, e }),
        None => refuse(),
    }
}

fn mul(a: Dec, b: Dec) -> Result<Dec, CallError> {
    match a.m.checked_mul(b.m) {
        Some(m) => Ok(Dec { m, e: a.e + b.e }),
        None => refuse(),
    }
}

/// `Rat().Float64()`: the float64 nearest the exact decimal (Rust's parser rounds correctly too).
fn to_float(d: Dec) -> Result<f64, CallError> {
    format!("{}e{}", d.m, d.e).parse::<f64>().map_err(|_| CallError::Unsupported("decimal to float"))
}

/// Sprig's `execDecimalOp(a, b, op)`.
pub(crate) fn op(first: f64, rest: &[f64], which: &str) -> Result<f64, CallError> {
    let mut acc = from_float(first)?;
    for &x in rest {
        let d = from_float(x)?;
        acc = match which {
            "add" => add(acc, d)?,
            "sub" => add(acc, Dec { m: -d.m, e: d.e })?,
            _ => mul(acc, d)?,
        };
    }
    to_float(acc)
}

/// Go's `math.Max`.
pub(crate) fn go_max(x: f64, y: f64) -> f64 {
    if x == f64::INFINITY || y == f64::INFINITY {
        return f64::INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { y } else { x };
    }
    if x > y { x } else { y }
}

/// Go's `math.Min`.
pub(crate) fn go_min(x: f64, y: f64) -> f64 {
    if x == f64::NEG_INFINITY || y == f64::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    if x == 0.0 && y == 0.0 {
        return if x.is_sign_negative() { x } else { y };
    }
    if x < y { x } else { y }
}

/// Sprig's `round(value, places, roundOn)`: only for 0..=22 places, where 10^places is exact in both languages.
pub(crate) fn round(val: f64, places: i64, round_on: f64) -> Result<f64, CallError> {
    let Ok(p) = i32::try_from(places) else {
        return Err(CallError::Unsupported("round to this many places"));
    };
    if !(0..=22).contains(&p) {
        return Err(CallError::Unsupported(
            "round to negative or more than 22 places (math.Pow is not exact there)",
        ));
    }
    let pow = 10f64.powi(p);
    let digit = pow * val;
    let frac = digit.fract();
    let r = if frac >= round_on { digit.ceil() } else { digit.floor() };
    Ok(r / pow)
}
