//! Prometheus metrics under sealed-secrets' names (prefix `sealed_secrets_controller_`), so existing dashboards and
//! alerts keep working, plus arcseal's own:
//!
//! | metric | labels |
//! | --- | --- |
//! | `build_info` | `revision` |
//! | `unseal_requests_total` | |
//! | `unseal_errors_total` | `reason` = fetch, unseal, update, unmanaged, status; `namespace` |
//! | `condition_info` (gauge: 1 True, 0 False) | `namespace`, `name`, `condition` |
//! | `http_requests_total` | `path`, `code`, `method` |
//! | `http_request_duration_seconds` | `path`, `method` |
//! | `reconcile_duration_seconds` (arcseal) | `result` = ok, error |
//! | `keys` (arcseal, gauge) | |
//! | `rsa_operations_total` (arcseal) | |
//! | `is_leader` (arcseal, gauge) | |
//! | `watch_errors_total` (arcseal) | `code` (410: the watch relisted) |
//! | `http_refused_total` (arcseal) | `reason` = rate_limited, busy, too_many_items, too_large, body_timeout |
//! | `orphaned_keys` (arcseal, gauge) | |

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabel {
    revision: String,
}

/// Labels of `unseal_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// fetch, unseal, update, unmanaged or status.
    pub reason: String,
    /// The SealedSecret's namespace.
    pub namespace: String,
}

/// Labels of `condition_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConditionLabels {
    /// Namespace of the SealedSecret.
    pub namespace: String,
    /// Name of the SealedSecret.
    pub name: String,
    /// `Synced`.
    pub condition: String,
}

/// Labels of `http_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// Route path.
    pub path: String,
    /// Status code.
    pub code: String,
    /// Method.
    pub method: String,
}

/// Labels of `http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpDurationLabels {
    /// Route path.
    pub path: String,
    /// Method.
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The controller's metrics.
pub struct Metrics {
    registry: Registry,
    /// `unseal_requests_total`.
    pub unseal_requests: Counter,
    /// `unseal_errors_total`.
    pub unseal_errors: Family<ErrorLabels, Counter>,
    /// `condition_info`.
    pub condition_info: Family<ConditionLabels, Gauge>,
    /// `http_requests_total`.
    pub http_requests: Family<HttpLabels, Counter>,
    /// `http_request_duration_seconds`.
    pub http_duration: Family<HttpDurationLabels, Histogram>,
    reconcile_duration: Family<ResultLabel, Histogram>,
    watch_errors: Family<CodeLabel, Counter>,
    /// `keys`: the number of private keys loaded.
    pub keys: Gauge,
    /// `is_leader`.
    pub is_leader: Gauge,
    /// `rsa_operations_total`, also read directly by the benchmark.
    pub rsa_operations: Counter<u64, AtomicU64>,
    http_refused: Family<ReasonLabel, Counter>,
    /// `orphaned_keys`: keys still loaded whose key Secret was deleted.
    pub orphaned_keys: Gauge,
}

/// A `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sealed_secrets_controller");
        let build_info = Family::<RevisionLabel, Gauge>::default();
        build_info.get_or_create(&RevisionLabel { revision: env!("CARGO_PKG_VERSION").to_owned() }).set(1);
        registry.register("build_info", "Build information", build_info);
        let unseal_requests = Counter::default();
        registry.register(
            "unseal_requests",
            "Total number of sealed secret unseal requests",
            unseal_requests.clone(),
        );
        let unseal_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "unseal_errors",
            "Total number of sealed secret unseal errors by reason",
            unseal_errors.clone(),
        );
        let condition_info = Family::<ConditionLabels, Gauge>::default();
        registry.register(
            "condition_info",
            "Current SealedSecret condition status. Values are -1 (false), 0 (unknown or absent), 1 (true)",
            condition_info.clone(),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "Total number of HTTP requests", http_requests.clone());
        let buckets = || Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let http_duration = Family::<HttpDurationLabels, Histogram>::new_with_constructor(buckets);
        registry.register("http_request_duration_seconds", "HTTP request latency", http_duration.clone());
        let reconcile_duration = Family::<ResultLabel, Histogram>::new_with_constructor(buckets);
        registry.register(
            "reconcile_duration_seconds",
            "Time to reconcile one SealedSecret (arcseal)",
            reconcile_duration.clone(),
        );
        let watch_errors = Family::<CodeLabel, Counter>::default();
        registry.register(
            "watch_errors",
            "Watch errors of the SealedSecret and Secret watches by HTTP code, 410 = relisted (arcseal)",
            watch_errors.clone(),
        );
        let keys = Gauge::default();
        registry.register("keys", "Private keys loaded (arcseal)", keys.clone());
        let is_leader = Gauge::default();
        registry.register(
            "is_leader",
            "1 while this replica holds the leader Lease (arcseal)",
            is_leader.clone(),
        );
        let rsa_operations = Counter::<u64, AtomicU64>::default();
        registry.register(
            "rsa_operations",
            "RSA private-key operations performed by reconciles (arcseal)",
            rsa_operations.clone(),
        );
        let http_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "http_refused",
            "Requests to /v1/verify and /v1/rotate turned away before any RSA work, by reason (arcseal)",
            http_refused.clone(),
        );
        let orphaned_keys = Gauge::default();
        registry.register(
            "orphaned_keys",
            "Keys still loaded (they decrypt) whose key Secret was deleted; gone on restart (arcseal)",
            orphaned_keys.clone(),
        );
        Metrics {
            registry,
            http_refused,
            orphaned_keys,
            unseal_requests,
            unseal_errors,
            condition_info,
            http_requests,
            http_duration,
            reconcile_duration,
            watch_errors,
            keys,
            is_leader,
            rsa_operations,
        }
    }

    /// Records one reconcile's duration.
    pub fn observe_reconcile(&self, ok: bool, seconds: f64) {
        self.reconcile_duration
            .get_or_create(&ResultLabel { result: if ok { "ok" } else { "error" } })
            .observe(seconds);
    }

    /// Counts a watch error (`code` 0 when it was not an HTTP status).
    pub fn watch_error(&self, code: u16) {
        self.watch_errors.get_or_create(&CodeLabel { code }).inc();
    }

    /// Counts a request turned away by admission control.
    pub fn http_refused(&self, reason: &'static str) {
        self.http_refused.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts an unseal error.
    pub fn error(&self, reason: &str, namespace: &str) {
        self.unseal_errors
            .get_or_create(&ErrorLabels { reason: reason.into(), namespace: namespace.into() })
            .inc();
    }

    /// Sets `condition_info` for a SealedSecret.
    pub fn condition(&self, namespace: &str, name: &str, synced: bool) {
        let labels =
            ConditionLabels { namespace: namespace.into(), name: name.into(), condition: "Synced".into() };
        self.condition_info.get_or_create(&labels).set(if synced { 1 } else { -1 });
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
