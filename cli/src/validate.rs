//! `arcseal validate`: offline checks of SealedSecret manifests before a cluster sees them. Structure,
//! base64, value sizes against the certificate, scope annotations; and, given private keys, that every
//! item opens. Problems are listed, not thrown: one run reports them all.

use std::fmt;
use std::time::SystemTime;

use arcseal_crypto::{Certificate, KeyRing, SealedValue};
use serde_json::Value;

use crate::error::Location;
use crate::input::Document;
use crate::manifest::{API_VERSION, KIND, SealedSecret};

/// How bad a problem is. Errors fail `validate`; warnings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Worth a look; does not fail.
    Warning,
    /// Will not unseal as intended.
    Error,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub at: Location,
    /// How bad.
    pub severity: Severity,
    /// What and how to fix it.
    pub message: String,
}

impl Problem {
    /// An error as a problem, keeping the error's own location when it has one.
    pub fn from_error(at: &Location, error: &crate::Error) -> Problem {
        let (at, message) = match error {
            crate::Error::Input { at, message } => ((**at).clone(), message.clone()),
            other => (at.clone(), other.to_string()),
        };
        Problem { at, severity: Severity::Error, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{tag}: {}: {}", self.at, self.message)
    }
}

/// What to check against.
#[derive(Default)]
pub struct Checks<'a> {
    /// The sealing certificate: value sizes must match its key, it must not be expired.
    pub cert: Option<&'a Certificate>,
    /// Private keys: every item must open.
    pub keys: Option<&'a KeyRing>,
    /// A controller whose `/v1/verify` must accept every SealedSecret.
    pub controller: Option<&'a crate::controller::Controller>,
    /// Other clusters' certificates, by cluster name (a repository config): a SealedSecret sealed with
    /// one of them was sealed for another cluster and will not open in this one.
    pub foreign: &'a [(String, arcseal_crypto::Fingerprint)],
}

/// JUnit XML: one test case per SealedSecret (named by its location), failing on its errors.
pub fn junit_xml(cases: &[(String, Vec<Problem>)]) -> String {
    let failed = cases.iter().filter(|(_, p)| p.iter().any(|p| p.severity == Severity::Error)).count();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"arcseal validate\" tests=\"{}\" failures=\"{failed}\">\n",
        cases.len()
    );
    for (name, problems) in cases {
        xml.push_str(&format!("  <testcase classname=\"sealedsecrets\" name=\"{}\">", escape(name)));
        let errors: Vec<&Problem> = problems.iter().filter(|p| p.severity == Severity::Error).collect();
        if !errors.is_empty() {
            let text: Vec<String> = errors.iter().map(|p| p.to_string()).collect();
            xml.push_str(&format!(
                "\n    <failure message=\"{}\">{}</failure>\n  ",
                escape(&errors[0].message),
                escape(&text.join("\n"))
            ));
        }
        let warnings: Vec<String> =
            problems.iter().filter(|p| p.severity == Severity::Warning).map(|p| p.to_string()).collect();
        if !warnings.is_empty() {
            xml.push_str(&format!("\n    <system-out>{}</system-out>\n  ", escape(&warnings.join("\n"))));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Checks the certificate itself once.
pub fn check_certificate(cert: &Certificate, at: &Location, now: SystemTime) -> Vec<Problem> {
    let mut out = Vec::new();
    if cert.is_expired_at(now) {
        out.push(Problem {
            at: at.clone(),
            severity: Severity::Error,
            message: "the certificate has expired; fetch the controller's current certificate".into(),
        });
    }
    out
}

/// The item names of a plaintext `v1` Secret (with `data` or `stringData`) in `value`, or of every
/// such Secret in a List: what a secrets PR gate must never let through. Never the values.
pub fn plaintext_secret_items(value: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let is_secret = value.get("kind").and_then(Value::as_str) == Some("Secret")
        && value.get("apiVersion").and_then(Value::as_str).is_none_or(|v| v == "v1");
    if is_secret {
        let mut items: Vec<String> = ["data", "stringData"]
            .iter()
            .filter_map(|field| value.get(field).and_then(Value::as_object))
            .flat_map(|map| map.keys().cloned())
            .collect();
        items.sort();
        items.dedup();
        if !items.is_empty() {
            let meta = value.get("metadata");
            let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("<no name>");
            let object = match meta.and_then(|m| m.get("namespace")).and_then(Value::as_str) {
                Some(ns) => format!("{ns}/{name}"),
                None => name.to_owned(),
            };
            out.push((object, items));
        }
    }
    if value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
        && let Some(items) = value.get("items").and_then(Value::as_array)
    {
        items.iter().for_each(|item| out.extend(plaintext_secret_items(item)));
    }
    out
}

/// The problems for the plaintext Secrets in `value` (see [`plaintext_secret_items`]).
pub fn plaintext_secret_problems(value: &Value, at: &Location) -> Vec<Problem> {
    plaintext_secret_items(value)
        .into_iter()
        .map(|(object, items)| Problem {
            at: at.clone(),
            severity: Severity::Error,
            message: format!(
                "plaintext Secret {object} with item(s) {}: a Secret's data is only base64, not encrypted; \
                 seal it (`arcseal seal`), commit the SealedSecret, remove this file from Git and change the values",
                items.join(", ")
            ),
        })
        .collect()
}

/// Problems found in one document, in the order found.
struct Found(Vec<Problem>);

impl Found {
    fn add(&mut self, at: &Location, severity: Severity, message: impl Into<String>) {
        self.0.push(Problem { at: at.clone(), severity, message: message.into() });
    }
}

/// Checks one document. Documents that are not SealedSecrets are skipped (a repo holds other kinds).
pub fn check_document(doc: &Document, checks: &Checks<'_>) -> Vec<Problem> {
    let value = &doc.value.0;
    if value.get("kind").and_then(Value::as_str) != Some(KIND) {
        return Vec::new();
    }
    let mut found = Found(Vec::new());
    if value.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION) {
        found.add(&doc.at, Severity::Error, format!("a SealedSecret's apiVersion must be {API_VERSION}"));
    }
    let sealed = match SealedSecret::from_value(value, &doc.at) {
        Ok(s) => s,
        Err(e) => {
            found.0.push(Problem::from_error(&doc.at, &e));
            return found.0;
        }
    };
    let at = sealed.location(&doc.at);
    check_metadata(&sealed, &at, checks, &mut found);
    check_scope_annotations(&sealed, &at, &mut found);
    check_generators(&sealed, &at, &mut found);
    if let Some(controller) = checks.controller {
        check_with_controller(controller, value, &at, &mut found);
    }
    check_items(&sealed, &at, checks, &mut found);
    found.0
}

/// Name, namespace, emptiness and the key it was sealed with.
fn check_metadata(sealed: &SealedSecret, at: &Location, checks: &Checks<'_>, found: &mut Found) {
    let mut problem = |at: &Location, severity, message: String| found.add(at, severity, message);
    if sealed.name().is_empty() {
        problem(
            at,
            Severity::Error,
            "metadata.name is missing; values are bound to it (strict scope)".into(),
        );
    }
    let scope = sealed.scope();
    if scope != arcseal_crypto::Scope::ClusterWide && sealed.namespace().is_empty() {
        problem(
            at,
            Severity::Warning,
            format!(
                "metadata.namespace is missing but the {scope} scope binds the namespace; set it to the namespace it was sealed for"
            ),
        );
    }
    if sealed.spec.encrypted_data.is_empty() && sealed.spec.data.is_none() {
        problem(
            at,
            Severity::Warning,
            "spec.encryptedData is empty: the Secret will have no sealed items".into(),
        );
    }
    if let Some((cluster, fingerprint)) =
        checks.foreign.iter().find(|(_, f)| sealed.sealed_with().contains(f))
    {
        problem(
            at,
            Severity::Error,
            format!(
                "sealed with cluster {cluster}'s certificate ({fingerprint}) but its path belongs to another \
                 cluster, whose controller cannot open it; seal the Secret for this path's cluster (`arcseal seal -w \
                 FILE`), or move the file under {cluster}'s paths"
            ),
        );
    } else if let (Some(cert), false) = (checks.cert, sealed.sealed_with().is_empty())
        && !sealed.sealed_with().contains(&cert.fingerprint())
    {
        problem(
            at,
            Severity::Warning,
            format!(
                "sealed with another key than the given certificate ({}); `arcseal rotate` re-seals it",
                cert.fingerprint()
            ),
        );
    }
}

/// Scope annotations as sealed-secrets reads them (exactly "true", on the SealedSecret itself).
fn check_scope_annotations(sealed: &SealedSecret, at: &Location, found: &mut Found) {
    let own = sealed.metadata.annotations.as_ref();
    let template =
        sealed.spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    let problems = arcseal_crypto::scope_annotation_problems(
        |k| own.and_then(|a| a.get(k)).map(String::as_str),
        |k| template.and_then(|a| a.get(k)).map(String::as_str),
    );
    for problem in problems {
        let severity = match problem {
            arcseal_crypto::ScopeAnnotationProblem::NotTrue { .. } => Severity::Error,
            _ => Severity::Warning,
        };
        found.add(at, severity, problem.to_string());
    }
}

/// The `arcseal.dev/generate` annotation, as `rotate --rotate-values` will read it.
fn check_generators(sealed: &SealedSecret, at: &Location, found: &mut Found) {
    let mut problem = |at: &Location, severity, message: String| found.add(at, severity, message);
    let annotations = sealed.metadata.annotations.clone().unwrap_or_default();
    if let Some(spec) = annotations.get(crate::rotate::GENERATE_ANNOTATION) {
        match crate::rotate::parse_generators(spec) {
            Err(e) => problem(
                at,
                Severity::Error,
                format!(
                    "{}: {e}; `rotate --rotate-values` would refuse it",
                    crate::rotate::GENERATE_ANNOTATION
                ),
            ),
            Ok(generators) => {
                for name in generators.keys().filter(|g| !sealed.spec.encrypted_data.contains_key(*g)) {
                    problem(
                        at,
                        Severity::Error,
                        format!(
                            "{} names item {name:?}, which is not in encryptedData; `rotate --rotate-values` would \
                             refuse it (seal the item once, or drop it from the annotation)",
                            crate::rotate::GENERATE_ANNOTATION
                        ),
                    );
                }
            }
        }
    }
}

/// Asks the controller (`/v1/verify`) whether its keys open the object.
fn check_with_controller(
    controller: &crate::controller::Controller,
    value: &Value,
    at: &Location,
    found: &mut Found,
) {
    let mut problem = |at: &Location, severity, message: String| found.add(at, severity, message);
    use crate::controller::Verdict;
    match controller.verify(value, at) {
            Ok(Verdict::Opens) => {}
            Ok(Verdict::DoesNotOpen) => problem(
                at,
                Severity::Error,
                "the controller cannot decrypt it (/v1/verify: 409): sealed with another key, or for another name, namespace or scope".into(),
            ),
            Ok(Verdict::Invalid(why)) => {
                problem(at, Severity::Error, format!("the controller refused it (/v1/verify: 400): {why}"))
            }
            Err(e) => {
                let p = Problem::from_error(at, &e);
                problem(&p.at, p.severity, p.message)
            }
        }
}

/// Every item: base64, the sealed value's framing, the key size, and whether a given key opens it.
fn check_items(sealed: &SealedSecret, at: &Location, checks: &Checks<'_>, found: &mut Found) {
    let mut problem = |at: &Location, severity, message: String| found.add(at, severity, message);
    let label = sealed.encryption_label();
    let legacy = sealed.spec.data.iter().map(|v| ("spec.data".to_owned(), v));
    for (item, text) in sealed.spec.encrypted_data.iter().map(|(k, v)| (k.clone(), v)).chain(legacy) {
        let item_at = at.item(&item);
        let raw = match arcseal_crypto::decode_base64(text) {
            Ok(raw) => raw,
            Err(e) => {
                problem(&item_at, Severity::Error, e.to_string());
                continue;
            }
        };
        let parts = match SealedValue::parse(&raw) {
            Ok(parts) => parts,
            Err(e) => {
                problem(&item_at, Severity::Error, format!("not a sealed value: {e}"));
                continue;
            }
        };
        if let Some(cert) = checks.cert
            && parts.rsa_ciphertext.len() != cert.public_key().modulus_len()
        {
            problem(
                &item_at,
                Severity::Error,
                format!(
                    "sealed with a {}-bit key but the certificate's key has {} bits; re-seal it with the certificate",
                    parts.key_bits(),
                    cert.public_key().bits()
                ),
            );
            continue;
        }
        if let Some(ring) = checks.keys
            && ring.open(&label, &raw, None).is_err()
        {
            problem(
                &item_at,
                Severity::Error,
                format!(
                    "no given key opens it under scope {}; it was sealed with another key or for another name, namespace or scope",
                    crate::unseal::describe_scope(sealed)
                ),
            );
        }
    }
}
