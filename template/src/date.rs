//! Sprig's `now`, `date`, `dateInZone`, `htmlDate` and Go's `time.Format` layouts, in UTC. sealed-secrets'
//! controller image has no time zone database and no TZ, so Go's `Local` is UTC there; other zone names would need
//! the database and are refused.

use crate::funcs::CallError;
use crate::value::Value;

/// The current time (`time.Now`): the one clock read of the crate.
pub(crate) fn now() -> Result<Value, CallError> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| CallError::Unsupported("a clock before 1970"))?;
    let secs = i64::try_from(d.as_secs()).map_err(|_| CallError::Unsupported("a clock beyond year 292e9"))?;
    Ok(Value::Time(secs, d.subsec_nanos()))
}

/// Go's `time.Duration.String` of `d` nanoseconds ("1h2m3.5s", "1.5ms", "0s").
pub(crate) fn go_duration(d: i64) -> String {
    /// fmtFrac: the fraction of `v / 10^prec` without trailing zeros (and without the dot if all are zero).
    fn frac(v: u64, prec: u32) -> (String, u64) {
        let p = 10u64.pow(prec);
        let digits = format!("{:0width$}", v % p, width = prec as usize);
        let digits = digits.trim_end_matches('0');
        (if digits.is_empty() { String::new() } else { format!(".{digits}") }, v / p)
    }
    let u = d.unsigned_abs();
    let mut s = String::new();
    if d < 0 {
        s.push('-');
    }
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".into();
        }
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("\u{b5}s", 3)
        } else {
            ("ms", 6)
        };
        let (f, int) = frac(u, prec);
        s.push_str(&format!("{int}{f}{unit}"));
        return s;
    }
    let (f, secs) = frac(u, 9);
    let mins = secs / 60;
    if mins > 0 {
        let hours = mins / 60;
        if hours > 0 {
            s.push_str(&format!("{hours}h"));
        }
        s.push_str(&format!("{}m", mins % 60));
    }
    s.push_str(&format!("{}{f}s", secs % 60));
    s
}

/// Sprig's `dateInZone(layout, date, zone)`.
pub(crate) fn date(layout: &[u8], date: &Value, zone: &[u8]) -> Result<Vec<u8>, CallError> {
    let (secs, nanos) = match date {
        Value::Time(s, n) => (*s, *n),
        Value::Int(s, crate::value::IntTy::Int | crate::value::IntTy::Int64) => (*s, 0),
        _ => return Err(CallError::Unsupported("date of a value Sprig replaces by the current time")),
    };
    if !matches!(zone, b"" | b"UTC" | b"Local") {
        return Err(CallError::Unsupported("time zones other than UTC need a zone database"));
    }
    // Go's Time range beyond these years formats differently (negative or 5+ digit years); refuse.
    if !(-62_135_596_800..=253_402_300_799).contains(&secs) {
        return Err(CallError::Unsupported("dates outside years 1-9999"));
    }
    Ok(format(layout, secs, nanos))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// Days since 1970-01-01 to (year, month 1-12, day 1-31) (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: day 1..=31, month 1..=12.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)
}

#[derive(Clone, Copy)]
enum Std {
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    Pm(bool),
    Tz,
    /// Numeric zone: text printed for UTC.
    Zone(&'static str),
    /// Fractional seconds: separator, digits, trim trailing zeros.
    Frac(u8, usize, bool),
}

/// Go's `nextStdChunk`: (prefix length, chunk, chunk length).
fn next_std(l: &[u8]) -> Option<(usize, Std, usize)> {
    let has = |i: usize, s: &[u8]| l[i..].starts_with(s);
    let lower_at = |i: usize| l.get(i).is_some_and(u8::is_ascii_lowercase);
    for i in 0..l.len() {
        let r = match l[i] {
            b'J' if has(i, b"January") => Some((Std::LongMonth, 7)),
            b'J' if has(i, b"Jan") && !lower_at(i + 3) => Some((Std::Month, 3)),
            b'M' if has(i, b"Monday") => Some((Std::LongWeekDay, 6)),
            b'M' if has(i, b"Mon") && !lower_at(i + 3) => Some((Std::WeekDay, 3)),
            b'M' if has(i, b"MST") => Some((Std::Tz, 3)),
            b'0' if l.get(i + 1).is_some_and(|c| (b'1'..=b'6').contains(c)) => Some((
                [Std::ZeroMonth, Std::ZeroDay, Std::ZeroHour12, Std::ZeroMinute, Std::ZeroSecond, Std::Year]
                    [usize::from(l[i + 1] - b'1')],
                2,
            )),
            b'0' if has(i, b"002") => Some((Std::ZeroYearDay, 3)),
            b'1' if has(i, b"15") => Some((Std::Hour, 2)),
            b'1' => Some((Std::NumMonth, 1)),
            b'2' if has(i, b"2006") => Some((Std::LongYear, 4)),
            b'2' => Some((Std::Day, 1)),
            b'_' if has(i, b"_2006") => return Some((i + 1, Std::LongYear, 4)),
            b'_' if has(i, b"_2") => Some((Std::UnderDay, 2)),
            b'_' if has(i, b"__2") => Some((Std::UnderYearDay, 3)),
            b'3' => Some((Std::Hour12, 1)),
            b'4' => Some((Std::Minute, 1)),
            b'5' => Some((Std::Second, 1)),
            b'P' if has(i, b"PM") => Some((Std::Pm(true), 2)),
            b'p' if has(i, b"pm") => Some((Std::Pm(false), 2)),
            b'-' if has(i, b"-070000") => Some((Std::Zone("+000000"), 7)),
            b'-' if has(i, b"-07:00:00") => Some((Std::Zone("+00:00:00"), 9)),
            b'-' if has(i, b"-0700") => Some((Std::Zone("+0000"), 5)),
            b'-' if has(i, b"-07:00") => Some((Std::Zone("+00:00"), 6)),
            b'-' if has(i, b"-07") => Some((Std::Zone("+00"), 3)),
            b'Z' if has(i, b"Z070000") => Some((Std::Zone("Z"), 7)),
            b'Z' if has(i, b"Z07:00:00") => Some((Std::Zone("Z"), 9)),
            b'Z' if has(i, b"Z0700") => Some((Std::Zone("Z"), 5)),
            b'Z' if has(i, b"Z07:00") => Some((Std::Zone("Z"), 6)),
            b'Z' if has(i, b"Z07") => Some((Std::Zone("Z"), 3)),
            b'.' | b',' if l.get(i + 1).is_some_and(|&c| c == b'0' || c == b'9') => {
                let ch = l[i + 1];
                let mut j = i + 1;
                while j < l.len() && l[j] == ch {
                    j += 1;
                }
                if l.get(j).is_some_and(u8::is_ascii_digit) {
                    None
                } else {
                    Some((Std::Frac(l[i], j - i - 1, ch == b'9'), j - i))
                }
            }
            _ => None,
        };
        if let Some((std, len)) = r {
            return Some((i, std, len));
        }
    }
    None
}

fn pad(out: &mut Vec<u8>, v: i64, width: usize, fill: u8) {
    let s = v.to_string();
    for _ in s.len()..width {
        out.push(fill);
    }
    out.extend_from_slice(s.as_bytes());
}

/// `time.Time.Format(layout)` in UTC.
fn format(layout: &[u8], secs: i64, nanos: u32) -> Vec<u8> {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    let (hour, min, sec) = (sod / 3600, (sod / 60) % 60, sod % 60);
    let weekday = usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0);
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let mut yday = cum[month as usize - 1] + i64::from(day);
    if is_leap(year) && month > 2 {
        yday += 1;
    }
    let mut out = Vec::new();
    let mut l = layout;
    while let Some((pre, std, len)) = next_std(l) {
        out.extend_from_slice(&l[..pre]);
        l = &l[pre + len..];
        match std {
            Std::LongMonth => out.extend_from_slice(MONTHS[month as usize - 1].as_bytes()),
            Std::Month => out.extend_from_slice(&MONTHS[month as usize - 1].as_bytes()[..3]),
            Std::NumMonth => pad(&mut out, i64::from(month), 0, b'0'),
            Std::ZeroMonth => pad(&mut out, i64::from(month), 2, b'0'),
            Std::LongWeekDay => out.extend_from_slice(DAYS[weekday].as_bytes()),
            Std::WeekDay => out.extend_from_slice(&DAYS[weekday].as_bytes()[..3]),
            Std::Day => pad(&mut out, i64::from(day), 0, b'0'),
            Std::UnderDay => pad(&mut out, i64::from(day), 2, b' '),
            Std::ZeroDay => pad(&mut out, i64::from(day), 2, b'0'),
            Std::UnderYearDay => pad(&mut out, yday, 3, b' '),
            Std::ZeroYearDay => pad(&mut out, yday, 3, b'0'),
            Std::Hour => pad(&mut out, hour, 2, b'0'),
            Std::Hour12 => pad(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 }, 0, b'0'),
            Std::ZeroHour12 => pad(&mut out, if hour % 12 == 0 { 12 } else { hour % 12 }, 2, b'0'),
            Std::Minute => pad(&mut out, min, 0, b'0'),
            Std::ZeroMinute => pad(&mut out, min, 2, b'0'),
            Std::Second => pad(&mut out, sec, 0, b'0'),
            Std::ZeroSecond => pad(&mut out, sec, 2, b'0'),
            Std::LongYear => pad(&mut out, year, 4, b'0'),
            Std::Year => pad(&mut out, year.rem_euclid(100), 2, b'0'),
            Std::Pm(upper) => {
                let s: &[u8] = match (hour >= 12, upper) {
                    (true, true) => b"PM",
                    (false, true) => b"AM",
                    (true, false) => b"pm",
                    (false, false) => b"am",
                };
                out.extend_from_slice(s);
            }
            Std::Tz => out.extend_from_slice(b"UTC"),
            Std::Zone(z) => out.extend_from_slice(z.as_bytes()),
            Std::Frac(sep, n, trim) => {
                let digits = format!("{nanos:09}");
                let mut d = &digits.as_bytes()[..n.min(9)];
                if trim {
                    while d.last() == Some(&b'0') {
                        d = &d[..d.len() - 1];
                    }
                    if d.is_empty() {
                        continue;
                    }
                }
                out.push(sep);
                out.extend_from_slice(d);
                out.resize(out.len() + n.saturating_sub(9), b'0');
            }
        }
    }
    out.extend_from_slice(l);
    out
}
