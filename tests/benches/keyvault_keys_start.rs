//! Benchmark (prints figures; checks only that its set-up worked): start-up of the unseal controller with its sealing keys in Key Vault
//! (`--key-vault-url`), 50 key pairs in the vault (the Key Vault stand-in, official SDK), a real kube-apiserver and
//! an empty namespace (a rebuilt cluster): time until every key is loaded and `/readyz` answers, the share of it spent
//! reading the vault, and the Key Vault requests made.
//!
//! `cargo bench -p arcseal-tests --bench keyvault_keys_start` (ARCSEAL_BENCH_KEYS, ARCSEAL_BENCH_KEY_BITS to vary;
//! the default RSA-2048 keeps the set-up short, the read cost grows little with the key size).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arcseal_controller::unseal::vault::KeyVaultConfig;
use arcseal_controller::unseal::{self, keys::KeyPolicy};
use arcseal_tests::k8s::{self, TestNamespace};
use arcseal_tests::keyvault::KeyVaultStandIn;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let (count, bits) = (env_or("ARCSEAL_BENCH_KEYS", 50), env_or("ARCSEAL_BENCH_KEY_BITS", 2048));
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("controller", "s3cret");
    kv.create_vault("kv1");
    let vault =
        || Arc::new(KeyVaultStandIn::sealing_keys("kv1", "bench", "controller", "s3cret", kv.transport()));
    let policy = KeyPolicy {
        namespace: String::new(),
        bits,
        ttl: arcseal_crypto::DEFAULT_CERT_VALIDITY,
        renew_period: Duration::ZERO,
        cutoff: None,
        common_name: String::new(),
    };
    eprintln!("generating {count} RSA-{bits} key pairs into the vault...");
    let writer = vault();
    for _ in 0..count {
        let (key, cert) = unseal::keys::generate(&policy).await.expect("a key pair");
        writer.put_pair(&key, &cert).await.expect("stored");
    }

    let before = kv.counters().keyvault;
    let t = Instant::now();
    let listing = vault().load().await.expect("vault read");
    let read = t.elapsed();
    let requests = kv.counters().keyvault - before;
    assert_eq!(listing.keys.len(), count, "the vault holds the keys written");

    let ns = TestNamespace::new("kv-bench").await.expect("namespace");
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await.expect("CRD");
    let mut config = arcseal_tests::unseal::config(ns.name(), &[ns.name()]);
    config.key_vault = Some(KeyVaultConfig { keys: vault(), sync_period: Duration::from_secs(3600) });
    let cold = start_until_loaded(&ns, config.clone(), count, &kv).await;
    // A restart: the cache Secrets are there, the vault is read again and nothing is written.
    let warm = start_until_loaded(&ns, config, count, &kv).await;
    let _ = ns.finish().await;
    println!("keys in the vault:                     {count} (RSA-{bits})");
    println!(
        "vault read (list + get each):          {:.0} ms, {requests} Key Vault requests",
        read.as_secs_f64() * 1e3
    );
    println!(
        "cold start to all keys loaded + ready: {:.0} ms ({} Key Vault requests; empty namespace: {count} cache \
         Secrets written and watched back)",
        cold.0.as_secs_f64() * 1e3,
        cold.1
    );
    println!(
        "restart (cache present) to ready:      {:.0} ms ({} Key Vault requests by then; served from the cache while the vault sync runs)",
        warm.0.as_secs_f64() * 1e3,
        warm.1
    );
}

/// Starts a controller, waits until it holds `count` keys and /readyz answers 200, stops it; returns the time taken
/// and the Key Vault requests made.
async fn start_until_loaded(
    ns: &TestNamespace,
    config: unseal::Config,
    count: usize,
    kv: &KeyVaultStandIn,
) -> (Duration, u64) {
    let http = reqwest::Client::new();
    let before = kv.counters().keyvault;
    let t = Instant::now();
    let (handles, task) =
        unseal::start(ns.client(), config, std::future::pending()).await.expect("controller");
    let url = format!("http://{}/readyz", handles.http_addr.expect("HTTP API"));
    loop {
        let loaded = handles.keys.snapshot().keys().len();
        let ready = http.get(&url).send().await.is_ok_and(|r| r.status() == 200);
        if loaded == count && ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    task.abort();
    (took, kv.counters().keyvault - before)
}
