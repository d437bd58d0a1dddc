//! The in-process unseal controller as tests and benchmarks run it.

use std::time::Duration;

use arcseal_controller::unseal::keys::KeyPolicy;
use arcseal_controller::unseal::{self, Config};

/// A controller configuration for tests: keys in `key_namespace` (RSA-2048, no renewal), SealedSecrets watched in
/// `watch`, the HTTP API on a free loopback port, no leader election, no Key Vault.
pub fn config(key_namespace: &str, watch: &[&str]) -> Config {
    Config {
        keys: KeyPolicy {
            namespace: key_namespace.to_owned(),
            bits: 2048,
            ttl: arcseal_crypto::DEFAULT_CERT_VALIDITY,
            renew_period: Duration::ZERO,
            cutoff: None,
            common_name: String::new(),
        },
        watch_namespaces: watch.iter().map(|s| (*s).to_owned()).collect(),
        workers: 4,
        resync: Duration::from_secs(2),
        listen_addr: Some("127.0.0.1:0".parse().expect("a socket address")),
        metrics_addr: None,
        http_limits: unseal::http::HttpLimits {
            request_rate: 100.0,
            request_burst: 100,
            ..unseal::http::HttpLimits::default()
        },
        leader_election: None,
        instance: "test".into(),
        watch_timeout: None,
        key_vault: None,
        admission: None,
    }
}
