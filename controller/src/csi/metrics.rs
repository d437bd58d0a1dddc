//! Prometheus metrics of the provider, served as text on `--metrics-addr` at `/metrics`.
//!
//! - `arcseal_csi_keyvault_requests_total{operation,result}`: every Key Vault data-plane attempt.
//! - `arcseal_csi_cache_lookups_total{result="hit"|"coalesced"|"miss"}`.
//! - `arcseal_csi_mount_duration_seconds{result}`: Mount latency, by result code (`ok` or an error code).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The provider's metrics.
pub struct Metrics {
    registry: Registry,
    keyvault_requests: Family<RequestLabels, Counter>,
    cache_lookups: Family<ResultLabel, Counter>,
    mount_duration: Family<ResultLabel, Histogram>,
    // Plain totals for the benchmark and tests, without parsing the exposition.
    kv_total: AtomicU64,
    hits: AtomicU64,
    lookups: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("arcseal_csi");
        let keyvault_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "keyvault_requests",
            "Key Vault data-plane requests, by operation and result",
            keyvault_requests.clone(),
        );
        let cache_lookups = Family::<ResultLabel, Counter>::default();
        registry.register(
            "cache_lookups",
            "Object cache lookups: hit, coalesced (joined an in-flight fetch) or miss",
            cache_lookups.clone(),
        );
        let mount_duration = Family::<ResultLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry.register(
            "mount_duration_seconds",
            "Mount request latency, by result",
            mount_duration.clone(),
        );
        Self {
            registry,
            keyvault_requests,
            cache_lookups,
            mount_duration,
            kv_total: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
        }
    }

    /// One Key Vault attempt.
    pub fn keyvault_request(&self, operation: &'static str, result: &'static str) {
        self.keyvault_requests.get_or_create(&RequestLabels { operation, result }).inc();
        self.kv_total.fetch_add(1, Ordering::Relaxed);
    }

    /// One cache lookup.
    pub fn cache_lookup(&self, result: &'static str) {
        self.cache_lookups.get_or_create(&ResultLabel { result }).inc();
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if result != "miss" {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One mount.
    pub fn mount(&self, result: &'static str, took: Duration) {
        self.mount_duration.get_or_create(&ResultLabel { result }).observe(took.as_secs_f64());
    }

    /// Key Vault attempts so far.
    pub fn keyvault_requests_total(&self) -> u64 {
        self.kv_total.load(Ordering::Relaxed)
    }

    /// (hits incl. coalesced, lookups).
    pub fn cache_totals(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.lookups.load(Ordering::Relaxed))
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` until the task is dropped. A deliberately tiny HTTP/1.1 responder: one
/// request per connection, no body read, nothing else served.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let head = String::from_utf8_lossy(&buf[..n]);
            let response = if head.starts_with("GET /metrics ") || head.starts_with("GET / ") {
                let body = metrics.encode();
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
            };
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
