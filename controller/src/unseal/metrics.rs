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
//! | `key_vault_degraded` (arcseal, gauge) | 1 while the last Key Vault sync or renewal failed (`--key-vault-url`; leader) |
//! | `sealing_key_created_timestamp_seconds` (arcseal, gauge) | NotBefore of the sealing key (0: none) |
//! | `sealing_key_expiry_timestamp_seconds` (arcseal, gauge) | NotAfter of its certificate (0: none) |
//! | `key_renewal_due_timestamp_seconds` (arcseal, gauge) | when the next key is due (0: no renewal planned) |
//! | `key_cutoff_timestamp_seconds` (arcseal, gauge) | `--key-cutoff-time` (0: not set) |
//!
//! The four timestamps (Unix seconds) are what the renewal and expiry alerts of `deploy/monitoring` compare with
//! `time()`: every replica computes them from the keys it loaded and its flags, the leader alone acts on them.

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

/// Labels of `admission_reviews_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReviewLabels {
    /// allowed, denied or error (no verdict: the API server applied the failurePolicy).
    pub result: &'static str,
    /// The reason class (ok, unchanged, no_key_opens, unknown_key, malformed, scope_annotation, no_keys,
    /// not_checked, busy, too_large, body_timeout, bad_review).
    pub reason: &'static str,
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
    admission_reviews: Family<ReviewLabels, Counter>,
    /// `orphaned_keys`: keys still loaded whose key Secret was deleted.
    pub orphaned_keys: Gauge,
    /// `key_vault_degraded`: 1 while the keys' Key Vault could not be synced with or refused a renewal.
    pub key_vault_degraded: Gauge,
    /// `sealing_key_created_timestamp_seconds`.
    pub sealing_key_created: Gauge,
    /// `sealing_key_expiry_timestamp_seconds`.
    pub sealing_key_expiry: Gauge,
    /// `key_renewal_due_timestamp_seconds`.
    pub key_renewal_due: Gauge,
    /// `key_cutoff_timestamp_seconds`.
    pub key_cutoff: Gauge,
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
        let admission_reviews = Family::<ReviewLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "SealedSecret admission reviews answered by the webhook, by result and reason class (arcseal)",
            admission_reviews.clone(),
        );
        let orphaned_keys = Gauge::default();
        registry.register(
            "orphaned_keys",
            "Keys still loaded (they decrypt) whose key Secret was deleted; gone on restart (arcseal)",
            orphaned_keys.clone(),
        );
        let key_vault_degraded = Gauge::default();
        registry.register(
            "key_vault_degraded",
            "1 while the last sync with the sealing keys' Key Vault or a renewal in it failed: keys are served from \
             the cached Secrets (--key-vault-url, leader only) (arcseal)",
            key_vault_degraded.clone(),
        );
        let timestamp = |registry: &mut Registry, name: &str, help: &str| {
            let gauge = Gauge::default();
            registry.register(name, help, gauge.clone());
            gauge
        };
        let sealing_key_created = timestamp(
            &mut registry,
            "sealing_key_created_timestamp_seconds",
            "NotBefore of the sealing key's certificate, Unix seconds; 0 without one (arcseal)",
        );
        let sealing_key_expiry = timestamp(
            &mut registry,
            "sealing_key_expiry_timestamp_seconds",
            "NotAfter of the sealing key's certificate, Unix seconds; 0 without one (arcseal)",
        );
        let key_renewal_due = timestamp(
            &mut registry,
            "key_renewal_due_timestamp_seconds",
            "When the leader is due to make the next key, Unix seconds; 0 when no renewal is planned (arcseal)",
        );
        let key_cutoff = timestamp(
            &mut registry,
            "key_cutoff_timestamp_seconds",
            "--key-cutoff-time, Unix seconds: keys older than this are replaced; 0 when not set (arcseal)",
        );
        Metrics {
            registry,
            sealing_key_created,
            sealing_key_expiry,
            key_renewal_due,
            key_cutoff,
            http_refused,
            admission_reviews,
            orphaned_keys,
            key_vault_degraded,
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

    /// Counts an admission review.
    pub fn admission_review(&self, result: &'static str, reason: &'static str) {
        self.admission_reviews.get_or_create(&ReviewLabels { result, reason }).inc();
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

    /// Sets the key timestamps from the keys loaded and the renewal policy.
    pub fn key_times(&self, keys: &super::keys::KeySet, policy: &super::keys::KeyPolicy) {
        let seconds = |t: std::time::SystemTime| {
            let since = t.duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap_or_default();
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        };
        let cert = keys.newest().and_then(|k| k.cert.as_ref());
        self.sealing_key_created.set(cert.map_or(0, |c| seconds(c.not_before())));
        self.sealing_key_expiry.set(cert.map_or(0, |c| seconds(c.not_after())));
        let newest = cert.map(arcseal_crypto::Certificate::not_before);
        // `now` = the newest key's NotBefore: a cutoff already passed then yields the cutoff itself (not "now"), so
        // the gauge holds still and the time since it grows while nobody renews.
        let at = newest.unwrap_or(std::time::SystemTime::UNIX_EPOCH);
        let due = match newest {
            Some(_) => super::keys::next_renewal(policy, newest, at),
            // No key at all: one is due since the controller started looking.
            None => Some(std::time::SystemTime::now()),
        };
        self.key_renewal_due.set(due.map_or(0, seconds));
        self.key_cutoff.set(policy.cutoff.map_or(0, seconds));
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use arcseal_crypto::{Certificate, CertificateParams, PrivateKey};

    use super::Metrics;
    use crate::unseal::keys::{KeyPolicy, KeySet, LoadedKey};

    fn sample(text: &str, name: &str) -> i64 {
        let line =
            text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn key_timestamps_follow_the_sealing_key_and_the_policy() {
        let t0 = 1_800_000_000u64;
        let key = PrivateKey::generate(2048).unwrap();
        let params = CertificateParams {
            common_name: String::new(),
            not_before: SystemTime::UNIX_EPOCH + Duration::from_secs(t0),
            validity: Duration::from_secs(86400),
        };
        let cert = Certificate::self_signed(&key, &params).unwrap();
        let set = KeySet::new(vec![LoadedKey { key, cert: Some(cert), secret_name: "k".into() }]);
        let mut policy = KeyPolicy {
            namespace: "kube-system".into(),
            bits: 2048,
            ttl: Duration::from_secs(86400),
            renew_period: Duration::from_secs(720 * 3600),
            cutoff: None,
            common_name: String::new(),
        };
        let m = Metrics::new();
        m.key_times(&set, &policy);
        let text = m.encode();
        let t0 = i64::try_from(t0).unwrap();
        assert_eq!(sample(&text, "sealed_secrets_controller_sealing_key_created_timestamp_seconds"), t0);
        assert_eq!(
            sample(&text, "sealed_secrets_controller_sealing_key_expiry_timestamp_seconds"),
            t0 + 86400
        );
        assert_eq!(
            sample(&text, "sealed_secrets_controller_key_renewal_due_timestamp_seconds"),
            t0 + 720 * 3600
        );
        assert_eq!(sample(&text, "sealed_secrets_controller_key_cutoff_timestamp_seconds"), 0);
        // A cutoff after the key, passed or not: the renewal is due at the cutoff itself, and stays there.
        policy.cutoff = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_003_600));
        m.key_times(&set, &policy);
        let text = m.encode();
        assert_eq!(sample(&text, "sealed_secrets_controller_key_renewal_due_timestamp_seconds"), t0 + 3600);
        assert_eq!(sample(&text, "sealed_secrets_controller_key_cutoff_timestamp_seconds"), t0 + 3600);
        // Renewal off and no cutoff: nothing due.
        policy.cutoff = None;
        policy.renew_period = Duration::ZERO;
        m.key_times(&set, &policy);
        assert_eq!(sample(&m.encode(), "sealed_secrets_controller_key_renewal_due_timestamp_seconds"), 0);
        // No key at all: sealing timestamps 0, and a key is due now.
        m.key_times(&KeySet::default(), &policy);
        let text = m.encode();
        assert_eq!(sample(&text, "sealed_secrets_controller_sealing_key_created_timestamp_seconds"), 0);
        assert!(
            sample(&text, "sealed_secrets_controller_key_renewal_due_timestamp_seconds") > t0 - 86400 * 365
        );
    }
}
