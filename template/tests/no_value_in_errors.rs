//! The security rule of the crate: an error's Display never quotes decrypted data. For random item values and a
//! corpus of templates that fail at parse or execution time, no 4-byte window of any value (raw, upper- or
//! lower-cased, base64, hex) appears in the message unless the template source itself contains it, or the same
//! template rendered over unrelated data fails with it too (then it is fixed wording, not data). The unrelated data
//! covers each kind of value the engine words differently (plain bytes, not UTF-8, numbers, JSON, broken regular
//! expressions), so the wording of every error the random values reach is known.

use std::collections::BTreeMap;

use arcseal_template::{Limits, render};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;

/// Templates that fail with the items `a` and `b` in every shape of value (function errors, type errors, fmt,
/// JSON, regex, index, comparison, fail, missing templates, limits, refusals).
const FAILING: &[&str] = &[
    "{{ fail .a }}",
    "{{ .a | fail }}",
    "{{ index .a 99 }}",
    "{{ index . .a }}{{ index (dict) .a .a }}",
    "{{ .a.b }}",
    "{{ .a 1 }}",
    "{{ .a | .b }}",
    "{{ range .a }}{{ end }}",
    "{{ lt .a 1 }}",
    "{{ eq .a 1 }}",
    "{{ eq (list .a) (list .b) }}",
    "{{ template .a }}",
    "{{ b64enc 5 }}{{ .a }}",
    "{{ add .a (div 1 0) }}",
    "{{ div .a 0 }}",
    "{{ mod (len .a) 0 }}",
    "{{ repeat -1 .a }}",
    "{{ substr 99 100 .a }}",
    "{{ regexFind .a .b }}",
    "{{ regexFindAll \"(\" .a 1 }}",
    "{{ mustRegexMatch .a .b }}",
    "{{ mustFromJson .a }}",
    "{{ fromJson .a }}",
    "{{ first .a }}",
    "{{ append .a .b }}",
    "{{ keys . }}",
    "{{ get . .a }}",
    "{{ hasKey . .a }}",
    "{{ set . .a .b }}",
    "{{ dig .a .b (dict) }}",
    "{{ trunc .a .b }}",
    "{{ indent .a .b }}",
    "{{ printf .a }}{{ printf \"%p\" .a }}",
    "{{ printf \"%[1]s\" .a }}",
    "{{ uuidv4 | printf \"%s%s\" .a }}",
    "{{ date .a .b }}",
    "{{ dateInZone \"2006\" 0 .a }}",
    "{{ toJson (float64 .a) | mustToJson }}",
    "{{ mustToJson (float64 \"NaN\") }}{{ .a }}",
    "{{ chunk 0 (list .a) }}",
    "{{ slice (list .a) 5 }}",
    "{{ call .a }}",
    "{{ not .a .b }}",
    "{{ and .a (index .b 999) }}",
    "{{ .a | int | trunc 2 | printf \"%d\" }}",
    "{{ repeat 100000000 .a }}",
    "{{ range until 1000000 }}{{ $.a }}{{ end }}",
    "{{ define \"r\" }}{{ .a }}{{ template \"r\" . }}{{ end }}{{ template \"r\" . }}",
    "{{ $x := .a }}{{ $x.y.z }}",
    "{{ (dict .a .b).x.y }}",
    "{{ semver .a }}",
    "{{ genPrivateKey .a }}",
];

fn windows(v: &[u8]) -> Vec<Vec<u8>> {
    let forms = [
        v.to_vec(),
        v.to_ascii_uppercase(),
        v.to_ascii_lowercase(),
        STANDARD.encode(v).into_bytes(),
        v.iter().map(|b| format!("{b:02x}")).collect::<String>().into_bytes(),
        v.iter().map(|b| format!("{b:02X}")).collect::<String>().into_bytes(),
    ];
    forms.iter().flat_map(|f| f.windows(4).map(<[u8]>::to_vec).collect::<Vec<_>>()).collect()
}

/// Unrelated values for `a` and `b`, one pair per kind of value the engine words its errors differently for (plain,
/// not UTF-8, integers, floats Go parses and arcseal refuses, huge floats, JSON and not, broken regular expressions).
/// All but one are under 4 bytes, so no message can quote a 4-byte window of them.
const UNRELATED: &[(&[u8], &[u8])] = &[
    (b"\x01\x02\x03", b"\x04"),
    (b"\xff\xfe\xfd", b"\xfc"),
    (b"\xff", b"\x04"),
    (b"\x01", b"\xfe"),
    (b"7", b"8"),
    (b"-1", b"2.5"),
    (b"1e99", b"-"),
    (b"_", b"0x1"),
    (b"inf", b"nan"),
    (b"{}", b"[]"),
    (b"{", b"}"),
    (b"(", b"["),
];

/// The limits every render here uses.
const LIMITS: Limits = Limits { max_output: 1 << 16, max_steps: 100_000, max_depth: 20, max_range: 10_000 };

/// For each template of [`FAILING`], the messages of the errors it gives over the unrelated values: wording that is
/// the template's, not the data's. The same for every case, so worked out once.
fn fixed_wording() -> &'static [Vec<String>] {
    static WORDING: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    WORDING.get_or_init(|| {
        FAILING
            .iter()
            .map(|t| {
                UNRELATED
                    .iter()
                    .filter_map(|(a, b)| {
                        let data =
                            BTreeMap::from([("a".to_string(), a.to_vec()), ("b".to_string(), b.to_vec())]);
                        render("key", t, &data, &LIMITS).err().map(|e| e.to_string())
                    })
                    .collect()
            })
            .collect()
    })
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// 64 cases by default (the suite stays fast); PROPTEST_CASES raises it for a longer soak.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]
    #[test]
    fn error_messages_never_quote_values(
        a in proptest::collection::vec(any::<u8>(), 4..40),
        b in proptest::collection::vec(any::<u8>(), 4..40),
        a2 in "[a-zA-Z0-9 :%._-]{4,40}",
        b2 in "[0-9a-f=+/]{4,40}",
    ) {
        for (va, vb) in [(a.clone(), b.clone()), (a2.into_bytes(), b2.into_bytes())] {
            let data = BTreeMap::from([("a".to_string(), va.clone()), ("b".to_string(), vb.clone())]);
            for (t, fixed) in FAILING.iter().zip(fixed_wording()) {
                let Err(e) = render("key", t, &data, &LIMITS) else { continue };
                let msg = e.to_string().into_bytes();
                for w in windows(&va).iter().chain(windows(&vb).iter()) {
                    if contains(&msg, w)
                        && !contains(t.as_bytes(), w)
                        && !fixed.iter().any(|f| contains(f.as_bytes(), w))
                    {
                        prop_assert!(false, "{t}: error {:?} quotes data window {:?}", e.to_string(), String::from_utf8_lossy(w));
                    }
                }
            }
        }
    }

    #[test]
    fn arbitrary_templates_never_panic(src in "\\PC{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
        let limits = Limits { max_output: 1 << 14, max_steps: 10_000, max_depth: 20, max_range: 1_000 };
        let data = BTreeMap::from([("a".to_string(), bytes.clone()), ("b".to_string(), b"x".to_vec())]);
        let _ = render("key", &src, &data, &limits);
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = render("key", &lossy, &data, &limits);
    }

    #[test]
    fn template_shaped_inputs_never_panic(
        parts in proptest::collection::vec(prop_oneof![
            Just("{{"), Just("}}"), Just("{{- "), Just(" -}}"), Just(" "), Just("."), Just(".a"), Just("$"),
            Just("$x := "), Just("|"), Just("("), Just(")"), Just("if "), Just("else "), Just("end"), Just("range "),
            Just("with "), Just("define \"t\""), Just("template \"t\" ."), Just("block \"b\" ."), Just("break"),
            Just("continue"), Just("\""), Just("`"), Just("'a'"), Just("1"), Just("-1.5e3"), Just("0x1F"), Just("nil"),
            Just("true"), Just("printf \"%5.2f %q %x\" "), Just("index . "), Just("list 1 2"), Just("dict \"a\" "),
            Just("/*"), Just("*/"), Just("toJson "), Just("upper "), Just("default "), Just("until 5 "), Just(","),
        ], 0..40)
    ) {
        let src: String = parts.concat();
        let limits = Limits { max_output: 1 << 14, max_steps: 10_000, max_depth: 20, max_range: 1_000 };
        let data = BTreeMap::from([("a".to_string(), b"v".to_vec())]);
        let _ = render("t", &src, &data, &limits);
    }
}

#[test]
fn limits_end_runaway_templates() {
    let limits = Limits { max_output: 1000, max_steps: 10_000, max_depth: 10, max_range: 100 };
    let data = BTreeMap::new();
    for t in [
        "{{ range until 1000 }}x{{ end }}",
        "{{ repeat 5000 \"x\" }}",
        "{{ define \"r\" }}{{ template \"r\" }}{{ end }}{{ template \"r\" }}",
        "{{ range until 90 }}{{ range until 90 }}{{ range until 90 }}{{ end }}{{ end }}{{ end }}",
        "{{ $d := dict }}{{ $_ := set $d \"s\" $d }}{{ $d }}",
    ] {
        let e = render("key", t, &data, &limits).expect_err(t);
        assert!(
            matches!(e, arcseal_template::Error::Limit { .. } | arcseal_template::Error::Unsupported { .. }),
            "{t}: {e}"
        );
    }
}

/// Work that grows faster than the template: quadratic copying in a loop, exponentially shared values, cycles.
/// Each must end in an error (Limit or Unsupported) quickly with the default limits (the bound is loose for slow debug builds).
#[test]
fn default_limits_end_superlinear_work() {
    let data = BTreeMap::new();
    for t in [
        "{{ $l := list }}{{ range until 50000 }}{{ $l = append $l . }}{{ end }}{{ len $l }}",
        "{{ $s := \"\" }}{{ range until 100000 }}{{ $s = printf \"%s%s\" $s \"xxxxxxxxxx\" }}{{ end }}{{ len $s }}",
        "{{ $l := list 1 1 }}{{ range until 60 }}{{ $l = list $l $l }}{{ end }}{{ toJson $l }}",
        "{{ $l := list 1 1 }}{{ range until 60 }}{{ $l = list $l $l }}{{ end }}{{ toString $l }}",
        "{{ $l := list 1 1 }}{{ range until 60 }}{{ $l = list $l $l }}{{ end }}{{ deepEqual $l (deepCopy $l) }}",
        "{{ $d := dict }}{{ $_ := set $d \"s\" $d }}{{ deepCopy $d }}",
        "{{ $a := dict }}{{ $_ := set $a \"s\" $a }}{{ $b := dict }}{{ $_ := set $b \"s\" $b }}{{ deepEqual $a $b }}",
        "{{ uniq (until 100000) | len }}",
        "{{ $s := repeat 1000000 \"x\" }}{{ range until 100000 }}{{ if contains \"y\" $s }}{{ end }}{{ end }}",
        "{{ $l := until 100000 }}{{ range until 100000 }}{{ first $l }}{{ end }}",
        "{{ $s := repeat 100000 \"x\" }}{{ regexReplaceAll \"\" $s $s | len }}",
        "{{ $s := repeat 100000 \"x\" }}{{ join $s (until 100000) | len }}",
        "{{ $s := repeat 100000 \"x\" }}{{ wrapWith 1 $s $s | len }}",
        "{{ range until 1000 }}{{ bcrypt \"x\" }}{{ end }}",
        "{{ range until 100000 }}{{ regexMatch \"(a|b)*c{1,1000}\" \"ab\" }}{{ end }}",
        "{{ printf (repeat 100 \"%999999[1]d\") 1 }}",
    ] {
        let start = std::time::Instant::now();
        let e = render("key", t, &data, &Limits::default()).expect_err(t);
        assert!(
            matches!(e, arcseal_template::Error::Limit { .. } | arcseal_template::Error::Unsupported { .. }),
            "{t}: {e}"
        );
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "{t} took {:?}", start.elapsed());
    }
}

#[test]
fn error_display_is_go_like_and_names_the_construct() {
    let data = BTreeMap::from([("a".to_string(), b"secret-value".to_vec())]);
    let e = render("cfg", "x\n{{ fail .a }}", &data, &Limits::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "template: cfg:2:3: executing \"cfg\" at <fail .a>: error calling fail: fail called"
    );
    let e = render("cfg", "{{ genCA \"x\" 1 }}", &data, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("function \"genCA\" is not supported"), "{e}");
    let e = render("cfg", "{{ if }}", &data, &Limits::default()).unwrap_err();
    assert_eq!(e.to_string(), "template: cfg:1: missing value for if");
}
