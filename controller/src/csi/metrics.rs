//! Prometheus metrics of the provider, served as text on `--metrics-addr` at `/metrics`.
//!
//! - `arcseal_csi_keyvault_requests_total{operation,result}`: every Key Vault data-plane attempt.
//! - `arcseal_csi_cache_lookups_total{result="hit"|"coalesced"|"miss"}`.
//! - `arcseal_csi_mount_duration_seconds{result}`: Mount latency, by result code (`ok` or an error code).
//!
//! Also under the names Azure's provider (v1.x, OpenTelemetry's Prometheus exporter) exports, so its dashboards and
//! alerts keep working: histograms in seconds with OpenTelemetry's default buckets, as Azure's are:
//! - `keyvault_request{object_type,object_name,error,provider,os_type}`: one per Key Vault read (cache misses;
//!   `error` is empty on success, else arcseal's stable code, where Azure puts the whole error text).
//! - `grpc_request{grpc_method,grpc_code,grpc_message,provider,os_type}`: one per gRPC call of the driver
//!   (`grpc_message` is the stable code, not the message, to keep the label set bounded).
//!
//! `provider` is `azure` and `os_type` is `linux`, the values Azure's provider reports, so queries filtering on
//! them keep matching.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AzureKeyVaultLabels {
    object_type: &'static str,
    object_name: String,
    error: &'static str,
    provider: &'static str,
    os_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AzureGrpcLabels {
    grpc_method: &'static str,
    grpc_code: &'static str,
    grpc_message: &'static str,
    provider: &'static str,
    os_type: &'static str,
}

/// The `provider` label of Azure's metrics.
const AZURE_PROVIDER_LABEL: &str = "azure";
/// The `os_type` label of Azure's metrics (Go's runtime.GOOS).
const OS_TYPE: &str = "linux";
/// OpenTelemetry's default explicit histogram boundaries, which Azure's provider uses for seconds.
const OTEL_DEFAULT_BUCKETS: [f64; 15] =
    [0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0];

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
    azure_keyvault_request: Family<AzureKeyVaultLabels, Histogram>,
    azure_grpc_request: Family<AzureGrpcLabels, Histogram>,
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
        let mut registry = Registry::default();
        let otel = || Histogram::new(OTEL_DEFAULT_BUCKETS);
        let azure_keyvault_request = Family::<AzureKeyVaultLabels, Histogram>::new_with_constructor(otel);
        registry.register(
            "keyvault_request",
            "Distribution of how long it took to get from keyvault",
            azure_keyvault_request.clone(),
        );
        let azure_grpc_request = Family::<AzureGrpcLabels, Histogram>::new_with_constructor(otel);
        registry.register(
            "grpc_request",
            "Distribution of how long it took for the gRPC requests",
            azure_grpc_request.clone(),
        );
        let registry_own = registry.sub_registry_with_prefix("arcseal_csi");
        let keyvault_requests = Family::<RequestLabels, Counter>::default();
        registry_own.register(
            "keyvault_requests",
            "Key Vault data-plane requests, by operation and result",
            keyvault_requests.clone(),
        );
        let cache_lookups = Family::<ResultLabel, Counter>::default();
        registry_own.register(
            "cache_lookups",
            "Object cache lookups: hit, coalesced (joined an in-flight fetch) or miss",
            cache_lookups.clone(),
        );
        let mount_duration = Family::<ResultLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
        });
        registry_own.register(
            "mount_duration_seconds",
            "Mount request latency, by result",
            mount_duration.clone(),
        );
        Self {
            registry,
            keyvault_requests,
            cache_lookups,
            mount_duration,
            azure_keyvault_request,
            azure_grpc_request,
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

    /// One Key Vault read as Azure's provider counts it (`error`: "" on success, else the stable code).
    pub fn azure_keyvault_request(
        &self,
        object_type: &'static str,
        object_name: &str,
        error: &'static str,
        took: Duration,
    ) {
        let labels = AzureKeyVaultLabels {
            object_type,
            object_name: object_name.to_owned(),
            error,
            provider: AZURE_PROVIDER_LABEL,
            os_type: OS_TYPE,
        };
        self.azure_keyvault_request.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// One gRPC call as Azure's provider counts it (`code`: the gRPC code's name, e.g. `OK`, `Unknown`).
    pub fn azure_grpc_request(
        &self,
        method: &'static str,
        code: &'static str,
        message: &'static str,
        took: Duration,
    ) {
        let labels = AzureGrpcLabels {
            grpc_method: method,
            grpc_code: code,
            grpc_message: message,
            provider: AZURE_PROVIDER_LABEL,
            os_type: OS_TYPE,
        };
        self.azure_grpc_request.get_or_create(&labels).observe(took.as_secs_f64());
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

/// The metrics route: `GET /metrics` (and `GET /`) answer the text exposition; nothing else is served.
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    async fn exposition(
        axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    ) -> impl axum::response::IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            metrics.encode(),
        )
    }
    axum::Router::new()
        .route("/metrics", axum::routing::get(exposition))
        .route("/", axum::routing::get(exposition))
        .with_state(metrics)
}

/// Serves [`router`] on `listener` until the task is dropped, under the probe ports' connection limits.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) -> std::io::Result<()> {
    crate::listener::serve(listener, router(metrics), crate::listener::ConnectionLimits::PROBES).await
}
