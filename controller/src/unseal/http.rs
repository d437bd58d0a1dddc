//! The HTTP API kubeseal talks to (sealed-secrets' routes, port 8080 by default), served by every replica with the
//! current keys, and the metrics endpoint (port 8081).
//!
//! | route | answer |
//! | --- | --- |
//! | `GET /healthz` | `ok` at once (liveness must not wait for a slow start) |
//! | `GET /readyz` | 200 once keys and caches are synced, 503 before |
//! | `GET /v1/cert.pem` | the newest certificate, one PEM block |
//! | `POST /v1/verify` | a SealedSecret (JSON or YAML): 200 if every item decrypts, 409 if not, 400 if unparsable |
//! | `POST /v1/rotate` | a SealedSecret: 200 + the same object with every item re-sealed to the newest key |
//!
//! Both POSTs decrypt, so they are rate limited (a token bucket shared by all clients: RSA work is the DoS vector)
//! and bodies are capped. The scope is read from the SealedSecret's top-level metadata only, never from
//! `spec.template` (CVE-2026-22728).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use super::crd::SealedSecret;
use super::keys::KeyStore;
use super::metrics::{HttpDurationLabels, HttpLabels, Metrics};
use super::reconcile;

/// Largest body accepted on the POST routes (a Kubernetes object is at most ~1.5 MiB).
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Takes a token if one is there.
    pub fn try_acquire(&self) -> bool {
        let Ok(mut state) = self.state.lock() else { return false };
        let now = Instant::now();
        let (tokens, last) = *state;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * self.rate).min(self.burst);
        if tokens >= 1.0 {
            *state = (tokens - 1.0, now);
            true
        } else {
            *state = (tokens, now);
            false
        }
    }
}

/// What the handlers share.
pub struct Api {
    /// Current keys.
    pub keys: Arc<KeyStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set once keys and caches are synced.
    pub ready: Arc<AtomicBool>,
    /// Limits `/v1/verify` and `/v1/rotate` together.
    pub limiter: RateLimiter,
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
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(api)
        .layer(middleware::from_fn_with_state(metrics, record))
}

/// Serves `router` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await
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

async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
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
    if api.ready.load(Ordering::SeqCst) {
        "ok".into_response()
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

fn limited(api: &Api) -> Option<Response> {
    (!api.limiter.try_acquire())
        .then(|| (StatusCode::TOO_MANY_REQUESTS, "rate limited: retry in a second").into_response())
}

async fn verify(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    if let Some(r) = limited(&api) {
        return r;
    }
    let ss = match parse_sealed_secret(&body) {
        Ok(ss) => ss,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (keys, metrics) = (api.keys.snapshot(), api.metrics.clone());
    let result =
        tokio::task::spawn_blocking(move || reconcile::unseal_items(&ss, &keys, None, &metrics).map(|_| ()))
            .await;
    match result {
        Ok(Ok(())) => (StatusCode::OK, "ok").into_response(),
        Ok(Err(e)) => (StatusCode::CONFLICT, e.to_string()).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn rotate(State(api): State<Arc<Api>>, body: Bytes) -> Response {
    if let Some(r) = limited(&api) {
        return r;
    }
    let ss = match parse_sealed_secret(&body) {
        Ok(ss) => ss,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    let (keys, metrics) = (api.keys.snapshot(), api.metrics.clone());
    let result = tokio::task::spawn_blocking(move || rotate_blocking(ss, &keys, &metrics)).await;
    match result {
        Ok(Ok(ss)) => match serde_json::to_string(&ss) {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        Ok(Err((code, message))) => (code, message).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
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
    fn rate_limiter_allows_the_burst_then_refuses() {
        let limiter = RateLimiter::new(0.001, 2);
        assert!(limiter.try_acquire());
        assert!(limiter.try_acquire());
        assert!(!limiter.try_acquire());
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
