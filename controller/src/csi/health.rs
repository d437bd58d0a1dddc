//! The provider's health endpoint, as Azure's provider serves it: `GET /healthz` on `--healthz-port` dials the
//! provider's own unix socket and asks `grpc.health.v1.Health/Check`; 200 `ok` when it answers SERVING within
//! `--healthz-timeout`, else 503 with the reason. `GET /readyz` is the same check (the provider is ready exactly
//! when the driver can reach it), for readiness probes.
//!
//! Probing through the socket (not in-process) catches what a kubelet cannot see otherwise: a socket file removed or
//! replaced on the host, or a gRPC server that no longer answers. Concurrent probes share one check and its answer
//! is reused for [`HealthConfig::reuse_for`], so a flood of requests on the port costs at most one socket dial per
//! period (and cannot fail the kubelet's probe by exhausting anything).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What the health endpoint checks.
#[derive(Debug, Clone)]
pub struct HealthConfig {
    /// The provider's socket.
    pub socket: PathBuf,
    /// Longest wait for the socket's answer (`--healthz-timeout`).
    pub timeout: Duration,
    /// The liveness path (`--healthz-path`, `/healthz`).
    pub path: String,
    /// How long one check's answer serves later probes (1 s in production; zero checks every time).
    pub reuse_for: Duration,
}

/// The last check: when, and its answer.
type LastCheck = Option<(Instant, Result<(), String>)>;

#[derive(Clone)]
struct Shared {
    config: HealthConfig,
    last: Arc<tokio::sync::Mutex<LastCheck>>,
}

/// Asks the provider's socket for its health, as the driver would reach it.
pub async fn check(config: &HealthConfig) -> Result<(), String> {
    let socket = config.socket.clone();
    let attempt = async move {
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(socket).await?,
                    ))
                }
            }))
            .await
            .map_err(|e| format!("cannot connect to the provider socket: {e}"))?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map_err(|e| format!("health check over the socket failed: {}", e.message()))?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            other => Err(format!("the provider answered {}", other.as_str_name())),
        }
    };
    tokio::time::timeout(config.timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer from the provider socket within {:?}", config.timeout)))
}

async fn probe(State(shared): State<Shared>) -> (StatusCode, String) {
    // One check at a time; waiters take its answer while it is fresh.
    let mut last = shared.last.lock().await;
    let answer = match &*last {
        Some((at, answer)) if at.elapsed() < shared.config.reuse_for => answer.clone(),
        _ => {
            let answer = check(&shared.config).await;
            *last = Some((Instant::now(), answer.clone()));
            answer
        }
    };
    drop(last);
    match answer {
        Ok(()) => (StatusCode::OK, "ok".to_owned()),
        Err(reason) => {
            tracing::warn!(%reason, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, reason)
        }
    }
}

/// The HTTP routes: `--healthz-path` (`/healthz`) and `/readyz`.
pub fn router(config: HealthConfig) -> Router {
    let mut router = Router::new().route("/readyz", get(probe));
    if config.path != "/readyz" {
        router = router.route(&config.path, get(probe));
    }
    router.with_state(Shared { config, last: Arc::default() })
}

/// Serves the health endpoint on `listener` until the task is dropped, under the probe ports' connection limits
/// (a slow or flooding client cannot hold the port).
pub async fn serve(listener: tokio::net::TcpListener, config: HealthConfig) -> std::io::Result<()> {
    crate::listener::serve(listener, router(config), crate::listener::ConnectionLimits::PROBES).await
}
