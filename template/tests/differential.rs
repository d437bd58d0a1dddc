//! Differential suite: every case of `tests/data/cases.jsonl` rendered here and compared with the answer Go 1.19 +
//! Sprig 3.2.3 gave (`tests/data/go-results.jsonl`, recorded by `tests/record-go.sh`).
//!
//! A case passes when the bytes are identical, when Go failed and we fail too, or when we refuse with
//! `Error::Unsupported` (counted). Anything else is a difference, and the suite requires zero of them.
//! Cases marked `"check": "shape"` (clock-dependent) compare the output length only.
//!
//! `live_go_reference_matches_recording` re-runs the Go reference when `ARCSEAL_GO_REF=1` and checks the
//! recording is current; without it, it is skipped (a machine without Go still checks the recording).

use std::collections::BTreeMap;
use std::path::Path;

use arcseal_template::{Error, Limits, render};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    template: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
    #[serde(default)]
    check: Option<String>,
}

#[derive(serde::Deserialize, PartialEq, Debug)]
struct GoResult {
    #[serde(default)]
    ok: Option<String>,
    #[serde(default)]
    error: bool,
    #[serde(default)]
    stage: Option<String>,
}

fn data_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

fn load() -> (Vec<Case>, Vec<GoResult>) {
    let cases = std::fs::read_to_string(data_dir().join("cases.jsonl")).expect("cases.jsonl");
    let results = std::fs::read_to_string(data_dir().join("go-results.jsonl")).expect("go-results.jsonl");
    let cases: Vec<Case> =
        cases.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect(l)).collect();
    let results: Vec<GoResult> =
        results.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).expect(l)).collect();
    assert_eq!(cases.len(), results.len(), "go-results.jsonl is stale: run template/tests/record-go.sh");
    (cases, results)
}

fn decode_data(c: &Case) -> BTreeMap<String, Vec<u8>> {
    c.data.iter().map(|(k, v)| (k.clone(), STANDARD.decode(v).expect("base64 data"))).collect()
}

#[test]
fn rust_matches_recorded_go_results() {
    let (cases, results) = load();
    let (mut identical, mut refused, mut both_failed, mut different) = (0, 0, 0, Vec::new());
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (c, go)) in cases.iter().zip(&results).enumerate() {
        let data = decode_data(c);
        let ours = render(&c.name, &c.template, &data, &Limits::default());
        match (ours, go) {
            (Err(Error::Unsupported { function, .. }), _) => {
                refused += 1;
                *refusals.entry(function).or_default() += 1;
            }
            (Err(Error::Limit { .. }), GoResult { ok: Some(_), .. }) => {
                refused += 1;
                *refusals.entry("<limit>".into()).or_default() += 1;
            }
            (Ok(out), GoResult { ok: Some(want), .. }) => {
                let want = STANDARD.decode(want).expect("recorded base64");
                let same = match c.check.as_deref() {
                    Some("shape") => out.len() == want.len(),
                    _ => out == want,
                };
                if same {
                    identical += 1;
                } else {
                    different.push(format!(
                        "case {} {:?}: want {:?} got {:?}",
                        i + 1,
                        c.template,
                        String::from_utf8_lossy(&want),
                        String::from_utf8_lossy(&out)
                    ));
                }
            }
            (Err(e), GoResult { error: true, stage, .. }) => {
                both_failed += 1;
                // Go rejects at parse time whatever it cannot parse, even in branches never executed; a parse
                // failure we only notice at execution would render such a dead branch where Go refuses.
                if stage.as_deref() == Some("parse") && !matches!(e, Error::Parse { .. }) {
                    different.push(format!(
                        "case {} {:?}: Go failed at parse, we at execution: {e}",
                        i + 1,
                        c.template
                    ));
                }
            }
            (Ok(out), GoResult { stage, .. }) => different.push(format!(
                "case {} {:?}: Go failed at {:?}, we rendered {:?}",
                i + 1,
                c.template,
                stage,
                String::from_utf8_lossy(&out)
            )),
            (Err(e), _) => {
                different.push(format!("case {} {:?}: Go rendered, we failed: {e}", i + 1, c.template))
            }
        }
    }
    println!(
        "differential: {} cases: {identical} identical outputs, {both_failed} errors in both, {refused} refused, {} different",
        cases.len(),
        different.len()
    );
    println!("refusals by function: {refusals:?}");
    for d in &different {
        println!("DIFFERENT {d}");
    }
    assert!(different.is_empty(), "{} cases differ from Go", different.len());
}

#[test]
fn live_go_reference_matches_recording() {
    if std::env::var("ARCSEAL_GO_REF").as_deref() != Ok("1") {
        eprintln!("skipped: set ARCSEAL_GO_REF=1 (needs golang-go and golang-github-masterminds-sprig-dev)");
        return;
    }
    let script = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/record-go.sh"));
    let out =
        std::process::Command::new("bash").arg(script).arg("--stdout").output().expect("run record-go.sh");
    assert!(out.status.success(), "record-go.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let recorded = std::fs::read_to_string(data_dir().join("go-results.jsonl")).expect("go-results.jsonl");
    let (cases, _) = load();
    let live = String::from_utf8(out.stdout).expect("utf-8");
    let mut mismatched = 0;
    for (i, (a, b)) in live.lines().zip(recorded.lines()).enumerate() {
        if a != b && cases[i].check.as_deref() != Some("shape") {
            mismatched += 1;
            eprintln!("case {}: recorded {b} live {a}", i + 1);
        }
    }
    assert_eq!(live.lines().count(), recorded.lines().count());
    assert_eq!(mismatched, 0, "go-results.jsonl is stale: run template/tests/record-go.sh");
}
