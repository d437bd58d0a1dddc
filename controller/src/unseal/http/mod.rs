//! The HTTP API kubeseal talks to (sealed-secrets' routes, port 8080 by default), served by every replica with the
//! current keys, and the metrics endpoint (port 8081).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | `ok` at once (liveness must not wait for a slow start) |
//! | `GET /readyz` | 200 once keys and caches are synced and, with `--admission-addr`, the webhook's serving certificate is loaded (`degraded: <why>` when the keys' Key Vault is not reachable), 503 before |
//! | `GET /v1/cert.pem` | the newest certificate, one PEM block |
//! | `POST /v1/verify` | a SealedSecret (JSON or YAML): 200 if every item decrypts, 409 if not, 400 if unparsable |
//! | `POST /v1/rotate` | a SealedSecret: 200 + the same object with every item re-sealed to the newest key |
//!
//! Both POSTs decrypt, so admission control ([`admission`]) runs before a body is read: per-caller request and
//! item (RSA operation) buckets, a controller-wide item bucket, capped body slots, body and header read timeouts
//! ([`crate::listener`]). The scope is read from the SealedSecret's top-level metadata only, never from `spec.template`
//! (CVE-2026-22728).
//!
//! No answer carries text derived from a decrypted value: `/v1/verify` answers with a status code and a fixed
//! message, and checks only that the items decrypt. It does not render `spec.template.data`: a template chosen by
//! the caller would turn the status code into an oracle on the values (`{{ if hasPrefix "a" .password }}...`).

pub mod admission;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::crd::SealedSecret;
use super::keys::KeyStore;
use super::metrics::{HttpDurationLabels, HttpLabels, Metrics};
use super::reconcile;
pub use admission::{Admission, HttpLimits, Refusal};

/// Serves `router` on `listener` under the connection limits of `limits` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: &HttpLimits,
) -> std::io::Result<()> {
    crate::listener::serve(listener, router, connection_limits(limits)).await
}

/// The accept loop's limits from the HTTP flags (the admission webhook's listener uses them too).
pub fn connection_limits(limits: &HttpLimits) -> crate::listener::ConnectionLimits {
    crate::listener::ConnectionLimits {
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
        max_connections_per_peer: limits.max_connections_per_client,
        max_age: std::time::Duration::from_secs(300),
    }
}

/// Largest body accepted on the POST routes (a Kubernetes object is at most ~1.5 MiB).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// `/v1/verify`'s answer when an item does not decrypt: fixed, like sealed-secrets' (status code + fixed text).
pub const VERIFY_CONFLICT: &str = "the SealedSecret cannot be decrypted with this controller's keys";

/// What the handlers share.
pub struct Api {
    /// Current keys.
    pub keys: Arc<KeyStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once keys and caches are synced.
    pub ready: Arc<AtomicBool>,
    /// Admission control of `/v1/verify` and `/v1/rotate`.
    pub admission: Arc<Admission>,
    /// The admission webhook's serving certificate, when the webhook is served: a replica is not ready until it
    /// holds one, so under `failurePolicy: Fail` the API server is never sent to a replica that would fail TLS.
    pub webhook_cert: Option<Arc<super::webhook::tls::ServingCert>>,
}

/// The API router.
pub fn router(api: Arc<Api>) -> Router {
    let metrics = api.metrics.clone();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/v1/cert.pem", get(cert))
        .route("/v1/verify", post(verify))
        .route("/v1/rotate", post(rotate))
        .with_state(api)
        .layer(middleware::from_fn_with_state(metrics, record))
}

/// The metrics router: `GET /metrics`.
pub fn metrics_router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], m.encode())
            }),
        )
        .with_state(metrics)
}

/// Counts and times every request (`http_requests_total`, `http_request_duration_seconds`) by matched path.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let code = response.status().as_u16().to_string();
    metrics
        .http_requests
        .get_or_create(&HttpLabels { path: path.clone(), code, method: method.clone() })
        .inc();
    metrics
        .http_duration
        .get_or_create(&HttpDurationLabels { path, method })
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn readyz(State(api): State<Arc<Api>>) -> Response {
    if api.webhook_cert.as_ref().is_some_and(|cert| !cert.is_loaded()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the admission webhook's serving certificate is not loaded yet (see --admission-tls-secret)",
        )
            .into_response();
    }
    if api.ready.load(Ordering::SeqCst) {
        // Serving from the cached key Secrets still unseals: ready, but say why it is degraded.
        match api.keys.degraded() {
            Some(reason) => format!("degraded: {reason}").into_response(),
            None => "ok".into_response(),
        }
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "keys and caches are not synced yet").into_response()
    }
}

async fn cert(State(api): State<Arc<Api>>) -> Response {
    match api.keys.snapshot().newest().and_then(|k| k.cert.as_ref()) {
        Some(cert) => ([(header::CONTENT_TYPE, "application/x-pem-file")], cert.to_pem()).into_response(),
        None => {
            (StatusCode::SERVICE_UNAVAILABLE, "no certificate yet: the controller has no key").into_response()
        }
    }
}

/// Parses a SealedSecret sent as JSON or YAML; the error names what is wrong with it.
pub fn parse_sealed_secret(body: &[u8]) -> Result<SealedSecret, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
    let parsed: SealedSecret = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| format!("not a SealedSecret (JSON): {e}"))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| format!("not a SealedSecret (YAML): {e}"))?
    };
    if parsed.spec.data.is_some() && !parsed.spec.encrypted_data.is_empty() {
        return Err("sets both spec.data and spec.encryptedData; keep only encryptedData".into());
    }
    Ok(parsed)
}

/// The RSA operations a SealedSecret asks for: one per item (the key hint makes later items cost one each).
pub fn item_count(ss: &SealedSecret) -> usize {
    ss.spec.encrypted_data.len() + usize::from(ss.spec.data.is_some())
}

fn refused(refusal: &Refusal, metrics: &Metrics) -> Response {
    let (status, reason, retry, text) = match refusal {
        Refusal::RateLimited(wait) => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            "rate limited: retry after the time in Retry-After".to_owned(),
        ),
        Refusal::Busy => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            1,
            "too many requests in flight: retry after the time in Retry-After".to_owned(),
        ),
        Refusal::TooManyItems { items, max } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_items",
            0,
            format!("the SealedSecret has {items} items; one request may carry at most {max}"),
        ),
    };
    metrics.http_refused(reason);
    let mut response = (status, text).into_response();
    if retry > 0
        && let Ok(value) = HeaderValue::from_str(&retry.max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// Admission, the bounded body read, parsing and the item charge: what both decrypting routes do first.
async fn admit(
    api: &Arc<Api>,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<SealedSecret, Response> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    let too_large = || {
        api.metrics.http_refused("too_large");
        (StatusCode::PAYLOAD_TOO_LARGE, format!("the body is larger than {MAX_BODY_BYTES} bytes"))
            .into_response()
    };
    // A declared oversize body is refused before it costs a token or a slot.
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let caller = admission::caller_key(peer, headers);
    let _permit = api.admission.admit(&caller).map_err(|r| refused(&r, &api.metrics))?;
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES);
    let bytes: Bytes = match tokio::time::timeout(api.admission.limits().body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => return Err(too_large()),
        Err(_) => {
            api.metrics.http_refused("body_timeout");
            return Err((StatusCode::REQUEST_TIMEOUT, "the body did not arrive in time").into_response());
        }
    };
    let ss = parse_sealed_secret(&bytes).map_err(|e| (StatusCode::BAD_REQUEST, e).into_response())?;
    api.admission.charge_items(&caller, item_count(&ss)).map_err(|r| refused(&r, &api.metrics))?;
    Ok(ss)
}

/// Admission, then `work` on a blocking thread (RSA is CPU-bound) with the current keys.
async fn decrypting(
    api: Arc<Api>,
    peer: SocketAddr,
    headers: HeaderMap,
    body: Body,
    work: impl FnOnce(SealedSecret, &super::keys::KeySet, &Metrics) -> Response + Send + 'static,
) -> Response {
    let ss = match admit(&api, peer, &headers, body).await {
        Ok(ss) => ss,
        Err(response) => return response,
    };
    let (keys, metrics) = (api.keys.snapshot(), api.metrics.clone());
    tokio::task::spawn_blocking(move || work(ss, &keys, &metrics))
        .await
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn verify(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decrypting(api, peer, headers, body, |ss, keys, metrics| {
        match reconcile::open_items(&ss, keys, None, metrics) {
            Ok(_) => (StatusCode::OK, "ok").into_response(),
            Err(reconcile::Error::NoKeys) => {
                (StatusCode::SERVICE_UNAVAILABLE, "the controller has no key yet").into_response()
            }
            Err(_) => (StatusCode::CONFLICT, VERIFY_CONFLICT).into_response(),
        }
    })
    .await
}

async fn rotate(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    decrypting(api, peer, headers, body, |ss, keys, metrics| match rotate_blocking(ss, keys, metrics) {
        Ok(ss) => match serde_json::to_string(&ss) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Err((code, message)) => (code, message).into_response(),
    })
    .await
}

/// Re-seals every item of `ss` to the newest key under the label its own metadata declares.
pub fn rotate_blocking(
    mut ss: SealedSecret,
    keys: &super::keys::KeySet,
    metrics: &Metrics,
) -> Result<SealedSecret, (StatusCode, String)> {
    let Some(newest) = keys.newest() else {
        return Err((StatusCode::SERVICE_UNAVAILABLE, "the controller has no key yet".into()));
    };
    let label = ss.encryption_label();
    let ops = metrics.rsa_operations.inner();
    let conflict =
        |item: &str| (StatusCode::CONFLICT, reconcile::Error::Decrypt { item: item.to_owned() }.to_string());
    let reseal = |plaintext: &[u8]| {
        arcseal_crypto::seal(newest.key.public_key(), &label, plaintext)
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "sealing failed".to_owned()))
    };
    let mut hint = None;
    if let Some(legacy) = ss.spec.data.clone() {
        let (plaintext, by) = keys.open(&label, &legacy, None, ops).map_err(|_| conflict("spec.data"))?;
        hint = Some(by);
        ss.spec.data = Some(reseal(plaintext.as_bytes())?);
    }
    for (item, value) in ss.spec.encrypted_data.iter_mut() {
        let (plaintext, by) = keys.open(&label, value, hint.as_ref(), ops).map_err(|_| conflict(item))?;
        hint = Some(by);
        *value = reseal(plaintext.as_bytes())?;
    }
    ss.status = None;
    ss.metadata.resource_version = None;
    ss.metadata.managed_fields = None;
    Ok(ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn parsing_any_body_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = parse_sealed_secret(&body);
        }

        #[test]
        fn parsing_near_valid_json_never_panics(noise in "[{}\\[\\]:,\"a-zA-Z0-9 ]{0,200}") {
            let body = format!(r#"{{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret","metadata":{{"name":"a"}},"spec":{noise}"#);
            let _ = parse_sealed_secret(body.as_bytes());
        }
    }

    #[test]
    fn parse_accepts_json_and_yaml_and_names_errors() {
        let json = r#"{"apiVersion":"bitnami.com/v1alpha1","kind":"SealedSecret","metadata":{"name":"a","namespace":"n"},"spec":{"encryptedData":{"x":"AgB"}}}"#;
        assert_eq!(parse_sealed_secret(json.as_bytes()).unwrap().spec.encrypted_data["x"], "AgB");
        let yaml = "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: a\nspec:\n  encryptedData:\n    x: AgB\n";
        assert_eq!(parse_sealed_secret(yaml.as_bytes()).unwrap().metadata.name.as_deref(), Some("a"));
        assert!(parse_sealed_secret(b"{").unwrap_err().contains("JSON"));
        assert!(parse_sealed_secret(&[0xff]).unwrap_err().contains("UTF-8"));
    }
}
