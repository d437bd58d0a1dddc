//! `admission.k8s.io/v1` (and `v1beta1`) AdmissionReview as the API server sends it, read loosely where the
//! webhook does not care and strictly where it does: the request's uid, operation, name, namespace and the
//! objects as JSON (so a malformed SealedSecret is refused with a message instead of failing the whole review).
//! The answer echoes the review's apiVersion, as the API server requires.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The part of an AdmissionReview's request the webhook reads.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    /// Echoed in the answer.
    pub uid: String,
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    #[serde(default)]
    pub operation: String,
    /// The object's name (empty on a CREATE with generateName before the name is made).
    #[serde(default)]
    pub name: String,
    /// The request's namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The object as it would be stored.
    #[serde(default)]
    pub object: Option<Value>,
    /// The stored object (UPDATE).
    #[serde(default)]
    pub old_object: Option<Value>,
    /// A dry run (`kubectl apply --dry-run=server`): answered the same way; the webhook has no side effects.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// A parsed review.
#[derive(Debug, Clone)]
pub struct AdmissionReview {
    /// `admission.k8s.io/v1` or `admission.k8s.io/v1beta1`.
    pub api_version: String,
    /// The request.
    pub request: AdmissionRequest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest>,
}

/// The answer to one request.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionResponse {
    uid: String,
    allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
struct Status {
    code: u16,
    reason: &'static str,
    message: String,
}

/// Longest message or warning sent (the API server caps warnings; a message this long is unreadable anyway).
const MAX_TEXT: usize = 2048;

fn clip(mut text: String) -> String {
    // One line, printable: item names come from the object and may hold anything.
    text = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

impl AdmissionResponse {
    /// An answer for request `uid`: allowed, or refused with `message` (403 Forbidden), with warnings.
    pub fn new(
        uid: &str,
        allowed: bool,
        message: Option<String>,
        warnings: Vec<String>,
    ) -> AdmissionResponse {
        AdmissionResponse {
            uid: uid.to_owned(),
            allowed,
            status: (!allowed).then(|| Status {
                code: 403,
                reason: "Forbidden",
                message: clip(message.unwrap_or_else(|| "refused".into())),
            }),
            warnings: warnings.into_iter().take(16).map(clip).collect(),
        }
    }

    /// Whether the object is admitted.
    pub fn allowed(&self) -> bool {
        self.allowed
    }
}

impl AdmissionReview {
    /// Reads a review; the error says what is wrong with it.
    pub fn parse(body: &[u8]) -> Result<AdmissionReview, String> {
        let wire: Wire =
            serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview (JSON): {e}"))?;
        if wire.kind != "AdmissionReview"
            || !matches!(wire.api_version.as_str(), "admission.k8s.io/v1" | "admission.k8s.io/v1beta1")
        {
            return Err(format!(
                "expected an admission.k8s.io/v1 or v1beta1 AdmissionReview, got {} {}",
                wire.api_version, wire.kind
            ));
        }
        let request = wire.request.ok_or("the AdmissionReview has no request")?;
        if request.uid.is_empty() {
            return Err("the AdmissionReview's request has no uid".into());
        }
        Ok(AdmissionReview { api_version: wire.api_version, request })
    }

    /// The review sent back with `response`.
    pub fn answer(&self, response: AdmissionResponse) -> String {
        serde_json::json!({
            "apiVersion": self.api_version,
            "kind": "AdmissionReview",
            "response": response,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn any_body_is_read_or_refused_without_panic(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = AdmissionReview::parse(&body);
        }

        #[test]
        fn near_valid_reviews_never_panic(noise in "[{}\\[\\]:,\"a-zA-Z0-9 ]{0,200}") {
            let body = format!(r#"{{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{{"uid":"u","object":{noise}}}}}"#);
            let _ = AdmissionReview::parse(body.as_bytes());
        }

        #[test]
        fn answers_are_one_bounded_line(message in ".{0,3000}", warning in ".{0,3000}") {
            let response = AdmissionResponse::new("u", false, Some(message), vec![warning]);
            let status = response.status.clone().unwrap();
            proptest::prop_assert!(status.message.len() <= MAX_TEXT + 3);
            proptest::prop_assert!(!status.message.chars().any(char::is_control));
            proptest::prop_assert!(response.warnings.iter().all(|w| w.len() <= MAX_TEXT + 3 && !w.chars().any(char::is_control)));
        }
    }

    #[test]
    fn reviews_are_read_and_answered_in_their_own_version() {
        for version in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
            let body = format!(
                r#"{{"apiVersion":"{version}","kind":"AdmissionReview","request":{{"uid":"abc","operation":"CREATE","name":"n","namespace":"ns","object":{{"kind":"SealedSecret"}},"dryRun":true}}}}"#
            );
            let review = AdmissionReview::parse(body.as_bytes()).unwrap();
            assert_eq!(review.request.uid, "abc");
            assert_eq!(review.request.dry_run, Some(true));
            let answer: Value =
                serde_json::from_str(&review.answer(AdmissionResponse::new("abc", true, None, vec![])))
                    .unwrap();
            assert_eq!(answer["apiVersion"], version);
            assert_eq!(answer["response"]["uid"], "abc");
            assert_eq!(answer["response"]["allowed"], true);
            assert!(answer["response"].get("status").is_none());
        }
        let denied = AdmissionResponse::new("u", false, Some("no".into()), vec!["w".into()]);
        let json = serde_json::to_value(&denied).unwrap();
        assert_eq!(json["status"]["code"], 403);
        assert_eq!(json["warnings"][0], "w");
        for bad in [
            r#"{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"u"}}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
            r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":""}}"#,
            "[]",
        ] {
            assert!(AdmissionReview::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
