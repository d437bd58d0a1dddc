//! The validating admission webhook for SealedSecrets (`--admission-addr`, TLS): the API server asks it about every
//! CREATE and UPDATE of a SealedSecret, dry runs included (`sideEffects: None`), so a SealedSecret sealed for
//! another cluster, name, namespace or scope is refused by `kubectl apply` (and Flux's or Argo CD's server-side
//! dry run in a pull request) instead of being accepted and failing later in the controller's status.
//!
//! What it refuses, naming the items and the reason class, never a value:
//! - items no loaded key opens under the object's own scope (`no-key-opens`), items sealed with a key size no
//!   loaded key has (`unknown-key`), values that are not base64 or not a sealed value (`malformed`), an object
//!   that is not a SealedSecret (`malformed`);
//! - scope annotations sealed-secrets would silently ignore: a value other than `"true"`, or an annotation only in
//!   `spec.template.metadata` (`scope-annotation`).
//!
//! What it warns about (admission warnings, shown by kubectl): items sealed with a key that is no longer the
//! sealing key (`arcseal rotate` re-seals them), keys whose Secret was deleted, both scope annotations, items past
//! the per-request budget (not checked).
//!
//! It never renders `spec.template.data`: a template chosen by whoever can create SealedSecrets would turn the
//! verdict into an oracle on the values (the reason `/v1/verify` does not render either).
//!
//! Cost: one RSA operation per item when the items share a key (the key that opened one item is tried first for the
//! next), at most `max_items + keys` per request; reviews run on blocking threads, at most `max_concurrent` at a
//! time; a review that cannot start within `queue_timeout` gets 503, which the API server treats by the
//! webhook's `failurePolicy` (`Ignore` by default, so a busy or absent controller never blocks deploys).

pub mod review;
pub mod tls;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arcseal_crypto::{Fingerprint, ScopeAnnotationProblem, SealedValue};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kube::ResourceExt;
use tokio::sync::Semaphore;

use super::crd::SealedSecret;
use super::keys::{KeySet, KeyStore};
use super::metrics::Metrics;
use review::{AdmissionRequest, AdmissionResponse, AdmissionReview};

/// The path the ValidatingWebhookConfiguration names.
pub const PATH: &str = "/validate-sealedsecrets";

/// An AdmissionReview holds the object and the old object (each at most ~1.5 MiB in etcd) plus request metadata.
pub const MAX_REVIEW_BYTES: usize = 4 << 20;

/// At most this many item names in one message; the rest are counted.
const NAMES_SHOWN: usize = 10;

/// The webhook's knobs (flags `--admission-*`).
#[derive(Debug, Clone)]
pub struct WebhookLimits {
    /// Items checked per SealedSecret; later items are not checked (a warning says so).
    pub max_items: usize,
    /// Reviews decrypting at the same time.
    pub max_concurrent: usize,
    /// How long a review may wait for a slot before the answer is 503 (the API server applies `failurePolicy`).
    pub queue_timeout: Duration,
    /// How long the body may take to arrive.
    pub body_timeout: Duration,
}

impl Default for WebhookLimits {
    fn default() -> Self {
        WebhookLimits {
            max_items: 256,
            max_concurrent: 4,
            queue_timeout: Duration::from_secs(2),
            body_timeout: Duration::from_secs(5),
        }
    }
}

/// What the handler shares.
pub struct Webhook {
    /// Current keys.
    pub keys: Arc<KeyStore>,
    /// Metrics (`admission_reviews_total`, RSA operations, HTTP requests).
    pub metrics: Arc<Metrics>,
    /// Limits.
    pub limits: WebhookLimits,
    slots: Arc<Semaphore>,
}

impl Webhook {
    /// A webhook over `keys` with `limits`.
    pub fn new(keys: Arc<KeyStore>, metrics: Arc<Metrics>, limits: WebhookLimits) -> Arc<Webhook> {
        let slots = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
        Arc::new(Webhook { keys, metrics, limits, slots })
    }
}

/// The webhook's router: `POST /validate-sealedsecrets`, `GET /healthz`.
pub fn router(webhook: Arc<Webhook>) -> Router {
    let metrics = webhook.metrics.clone();
    Router::new()
        .route(PATH, post(validate))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(webhook)
        .layer(axum::middleware::from_fn_with_state(metrics, super::http::record))
}

async fn validate(State(webhook): State<Arc<Webhook>>, body: Body) -> Response {
    let read = axum::body::to_bytes(body, MAX_REVIEW_BYTES);
    let bytes: Bytes = match tokio::time::timeout(webhook.limits.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            webhook.metrics.admission_review("error", "too_large");
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an AdmissionReview is at most {MAX_REVIEW_BYTES} bytes"),
            )
                .into_response();
        }
        Err(_) => {
            webhook.metrics.admission_review("error", "body_timeout");
            return (StatusCode::REQUEST_TIMEOUT, "the AdmissionReview did not arrive in time")
                .into_response();
        }
    };
    let review = match AdmissionReview::parse(&bytes) {
        Ok(review) => review,
        Err(e) => {
            webhook.metrics.admission_review("error", "bad_review");
            return (StatusCode::BAD_REQUEST, e).into_response();
        }
    };
    let Ok(slot) =
        tokio::time::timeout(webhook.limits.queue_timeout, webhook.slots.clone().acquire_owned()).await
    else {
        webhook.metrics.admission_review("error", "busy");
        return (StatusCode::SERVICE_UNAVAILABLE, "too many reviews in flight; the failurePolicy applies")
            .into_response();
    };
    let (keys, metrics, limits) = (webhook.keys.snapshot(), webhook.metrics.clone(), webhook.limits.clone());
    let answered = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let verdict = check_request(&review.request, &keys, &limits, metrics.rsa_operations.inner());
        metrics.admission_review(if verdict.allowed { "allowed" } else { "denied" }, verdict.reason);
        review.answer(verdict.into_response(&review.request.uid))
    })
    .await;
    match answered {
        Ok(json) => ([(axum::http::header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The webhook's decision on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Admit the object.
    pub allowed: bool,
    /// The metric's reason class (`ok`, `no_key_opens`, `unknown_key`, `malformed`, `scope_annotation`,
    /// `no_keys`, `not_checked`).
    pub reason: &'static str,
    /// Why it was refused (names items and reason classes, never a value).
    pub message: Option<String>,
    /// Admission warnings.
    pub warnings: Vec<String>,
}

impl Verdict {
    fn allow(reason: &'static str, warnings: Vec<String>) -> Verdict {
        Verdict { allowed: true, reason, message: None, warnings }
    }

    fn deny(reason: &'static str, message: String, warnings: Vec<String>) -> Verdict {
        Verdict { allowed: false, reason, message: Some(message), warnings }
    }

    fn into_response(self, uid: &str) -> AdmissionResponse {
        AdmissionResponse::new(uid, self.allowed, self.message, self.warnings)
    }
}

/// How one item fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ItemFault {
    NotBase64,
    NotSealedValue,
    UnknownKeySize,
    NoKeyOpens,
}

impl ItemFault {
    fn describe(self, scope: &str) -> String {
        match self {
            ItemFault::NotBase64 => "malformed: not standard base64".to_owned(),
            ItemFault::NotSealedValue => "malformed: not a sealed value (length prefix and RSA block)".to_owned(),
            ItemFault::UnknownKeySize => {
                "unknown-key: sealed with a key size none of this controller's keys has (sealed for another cluster?)"
                    .to_owned()
            }
            ItemFault::NoKeyOpens => format!(
                "no-key-opens: no key of this controller opens them under scope {scope} (sealed for another cluster, name, namespace or scope)"
            ),
        }
    }

    fn reason(self) -> &'static str {
        match self {
            ItemFault::NotBase64 | ItemFault::NotSealedValue => "malformed",
            ItemFault::UnknownKeySize => "unknown_key",
            ItemFault::NoKeyOpens => "no_key_opens",
        }
    }
}

fn names(items: &[String]) -> String {
    let mut shown: Vec<String> = items.iter().take(NAMES_SHOWN).map(|i| format!("{i:?}")).collect();
    if items.len() > NAMES_SHOWN {
        shown.push(format!("and {} more", items.len() - NAMES_SHOWN));
    }
    shown.join(", ")
}

/// Whether an UPDATE leaves everything the verdict depends on as it was (a label, a finalizer, the template): then
/// the object is admitted unchecked, so metadata edits never fail because a key was retired since.
fn same_sealed_content(old: &SealedSecret, new: &SealedSecret) -> bool {
    let scope_annotations = |ss: &SealedSecret| {
        [arcseal_crypto::NAMESPACE_WIDE_ANNOTATION, arcseal_crypto::CLUSTER_WIDE_ANNOTATION]
            .map(|k| ss.annotations().get(k).cloned())
    };
    old.spec.encrypted_data == new.spec.encrypted_data
        && old.spec.data == new.spec.data
        && scope_annotations(old) == scope_annotations(new)
        && old.spec.template.as_ref().and_then(|t| t.metadata.as_ref()).map(|m| &m.annotations)
            == new.spec.template.as_ref().and_then(|t| t.metadata.as_ref()).map(|m| &m.annotations)
}

/// Decides one request. CPU-bound (RSA): call it from a blocking thread. `rsa_ops` counts the RSA operations.
pub fn check_request(
    request: &AdmissionRequest,
    keys: &KeySet,
    limits: &WebhookLimits,
    rsa_ops: &AtomicU64,
) -> Verdict {
    if !matches!(request.operation.as_str(), "CREATE" | "UPDATE") {
        return Verdict::allow("ok", Vec::new());
    }
    let ss = match request.object.as_ref().map(|o| serde_json::from_value::<SealedSecret>(o.clone())) {
        Some(Ok(ss)) => ss,
        Some(Err(e)) => {
            return Verdict::deny(
                "malformed",
                format!("malformed: not a SealedSecret this controller can read: {e}"),
                Vec::new(),
            );
        }
        None => {
            return Verdict::deny("malformed", "malformed: the review carries no object".into(), Vec::new());
        }
    };
    if request.operation == "UPDATE"
        && let Some(Ok(old)) =
            request.old_object.as_ref().map(|o| serde_json::from_value::<SealedSecret>(o.clone()))
        && same_sealed_content(&old, &ss)
    {
        return Verdict::allow("unchanged", Vec::new());
    }
    let namespace =
        ss.namespace().filter(|n| !n.is_empty()).or_else(|| request.namespace.clone()).unwrap_or_default();
    let name = Some(ss.name_any()).filter(|n| !n.is_empty()).unwrap_or_else(|| request.name.clone());
    check_object(&ss, &namespace, &name, keys, limits, rsa_ops)
}

/// Decides one SealedSecret, bound to `namespace`/`name` (the request's, when the object does not say).
pub fn check_object(
    ss: &SealedSecret,
    namespace: &str,
    name: &str,
    keys: &KeySet,
    limits: &WebhookLimits,
    rsa_ops: &AtomicU64,
) -> Verdict {
    let mut warnings = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    let mut reason = None;

    let own = ss.metadata.annotations.as_ref();
    let template =
        ss.spec.template.as_ref().and_then(|t| t.metadata.as_ref()).and_then(|m| m.annotations.as_ref());
    for problem in arcseal_crypto::scope_annotation_problems(
        |k| own.and_then(|a| a.get(k)).map(String::as_str),
        |k| template.and_then(|a| a.get(k)).map(String::as_str),
    ) {
        match problem {
            p if p.changes_the_scope() => {
                reason.get_or_insert("scope_annotation");
                refusals.push(format!("scope-annotation: {p}"));
            }
            ScopeAnnotationProblem::BothScopes => warnings.push(problem.to_string()),
            _ => {}
        }
    }
    if ss.spec.data.is_some() && !ss.spec.encrypted_data.is_empty() {
        reason.get_or_insert("malformed");
        refusals.push("malformed: sets both spec.data (deprecated v1 form) and spec.encryptedData".into());
    }
    if name.is_empty() && ss.scope() == arcseal_crypto::Scope::Strict {
        reason.get_or_insert("malformed");
        refusals.push("malformed: no name to bind a strict-scope value to".into());
    }

    let items: Vec<(String, &String)> = ss
        .spec
        .data
        .iter()
        .map(|v| ("spec.data".to_owned(), v))
        .chain(ss.spec.encrypted_data.iter().map(|(k, v)| (k.clone(), v)))
        .collect();
    if !items.is_empty() && keys.keys().is_empty() {
        // A controller without keys yet cannot judge: answer like an outage (the failurePolicy applies).
        return Verdict {
            allowed: true,
            reason: "no_keys",
            message: None,
            warnings: vec!["arcseal: the controller has no key yet; the items were not checked".into()],
        };
    }
    let label = ss.scope().encryption_label(namespace, name);
    let key_sizes: Vec<usize> = keys.keys().iter().map(|k| k.key.public_key().modulus_len()).collect();
    let budget = limits.max_items.saturating_add(keys.keys().len()) as u64;
    let spent = AtomicU64::new(0);
    let mut faults: BTreeMap<ItemFault, Vec<String>> = BTreeMap::new();
    let mut opened_by: BTreeMap<Fingerprint, Vec<String>> = BTreeMap::new();
    let mut unchecked = Vec::new();
    let mut hint: Option<Fingerprint> = None;
    for (index, (item, value)) in items.iter().enumerate() {
        let raw = match arcseal_crypto::decode_base64(value) {
            Ok(raw) => raw,
            Err(_) => {
                faults.entry(ItemFault::NotBase64).or_default().push(item.clone());
                continue;
            }
        };
        let Ok(parts) = SealedValue::parse(&raw) else {
            faults.entry(ItemFault::NotSealedValue).or_default().push(item.clone());
            continue;
        };
        if !key_sizes.contains(&parts.rsa_ciphertext.len()) {
            faults.entry(ItemFault::UnknownKeySize).or_default().push(item.clone());
            continue;
        }
        // Each item costs one RSA operation when the hinted key opens it, up to one per key when none does.
        if index >= limits.max_items || spent.load(Ordering::Relaxed) >= budget {
            unchecked.push(item.clone());
            continue;
        }
        match keys.open(&label, value, hint.as_ref(), &spent) {
            Ok((plaintext, by)) => {
                drop(plaintext);
                hint = Some(by);
                opened_by.entry(by).or_default().push(item.clone());
            }
            Err(_) => faults.entry(ItemFault::NoKeyOpens).or_default().push(item.clone()),
        }
    }
    rsa_ops.fetch_add(spent.load(Ordering::Relaxed), Ordering::Relaxed);

    let scope = ss.scope().describe(namespace, name);
    for (fault, items) in &faults {
        reason.get_or_insert(fault.reason());
        refusals.push(format!("items {}: {}", names(items), fault.describe(&scope)));
    }
    let newest = keys.newest().map(|k| k.key.fingerprint());
    for (key, items) in &opened_by {
        if keys.is_orphaned(key) {
            warnings.push(format!(
                "items {} are sealed with key {key}, whose key Secret was deleted: they stop opening when the controller restarts; re-seal them (arcseal rotate)",
                names(items)
            ));
        } else if Some(*key) != newest {
            warnings.push(format!(
                "items {} are sealed with key {key}, which is no longer the sealing key: re-seal them with `arcseal rotate`",
                names(items)
            ));
        }
    }
    if !unchecked.is_empty() {
        warnings.push(format!(
            "items {} were not checked: at most {} items per SealedSecret are (--admission-max-items)",
            names(&unchecked),
            limits.max_items
        ));
    }
    if refusals.is_empty() {
        let reason = if unchecked.is_empty() { "ok" } else { "not_checked" };
        return Verdict::allow(reason, warnings);
    }
    let fix = if faults.is_empty() {
        "fix the annotations and re-seal"
    } else {
        "re-seal the values with this cluster's certificate for this name, namespace and scope"
    };
    Verdict::deny(
        reason.unwrap_or("malformed"),
        format!("SealedSecret {namespace}/{name} refused: {}; {fix}", refusals.join("; ")),
        warnings,
    )
}

#[cfg(test)]
mod tests;
