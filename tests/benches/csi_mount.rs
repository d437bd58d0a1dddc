//! Benchmark (prints figures, asserts nothing): 1,000 mounts of 5 objects by 10 identities (workload identity, one
//! service account each) against the Key Vault stand-in, through the provider's unix socket.
//!
//! `cargo bench -p arcseal-tests --bench csi_mount`

use std::time::{Duration, Instant};

use arcseal_tests::keyvault::KeyVaultStandIn;
use arcseal_tests::keyvault::provider::{Pod, ProviderHarness, attributes, objects};

const IDENTITIES: usize = 10;
const MOUNTS: usize = 1_000;
const CONCURRENCY: usize = 16;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let kv = KeyVaultStandIn::start().await;
    let names = ["db-password", "api-key", "tls-cert", "signing-key", "feature-flags"];
    for n in names {
        kv.set_secret("kv1", n, &format!("value of {n}"));
    }
    let o = objects(
        &names
            .map(|n| format!("objectName: {n}\nobjectType: secret"))
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let attrs: Vec<String> = (0..IDENTITIES)
        .map(|i| {
            let sa = format!("app-{i}");
            kv.federate("wi-client", &format!("system:serviceaccount:team-{i}:{sa}"));
            attributes(
                &[
                    ("keyvaultName", "kv1"),
                    ("tenantID", "contoso.onmicrosoft.com"),
                    ("clientID", "wi-client"),
                    ("objects", &o),
                ],
                &Pod::new(&format!("team-{i}"), &sa).with_token(),
            )
        })
        .collect();
    let p = ProviderHarness::start(&kv).await;
    let client = p.client().await;

    let started = Instant::now();
    let mut latencies: Vec<Duration> = Vec::with_capacity(MOUNTS);
    let mut next = 0usize;
    while next < MOUNTS {
        let batch: Vec<_> = (next..(next + CONCURRENCY).min(MOUNTS))
            .map(|i| {
                let mut c = client.clone();
                let a = attrs[i % IDENTITIES].clone();
                async move {
                    let t = Instant::now();
                    let r = c
                        .mount(arcseal_controller::csi::proto::MountRequest {
                            attributes: a,
                            secrets: "null".into(),
                            target_path: String::new(),
                            permission: "420".into(),
                            current_object_version: vec![],
                        })
                        .await
                        .expect("mount");
                    assert_eq!(r.into_inner().files.len(), 5);
                    t.elapsed()
                }
            })
            .collect();
        next += batch.len();
        latencies.extend(futures::future::join_all(batch).await);
    }
    let total = started.elapsed();
    let cached: Vec<Duration> = latencies[IDENTITIES * 2..].to_vec();
    let pct = |v: &[Duration], percent: usize| {
        let mut v = v.to_vec();
        v.sort();
        v[(v.len() - 1) * percent / 100]
    };
    let c = kv.counters();
    let (hits, lookups) = p.provider.metrics().cache_totals();
    println!(
        "csi_mount: {MOUNTS} mounts x 5 objects, {IDENTITIES} identities, {CONCURRENCY} concurrent, over the unix socket"
    );
    println!("  Key Vault data-plane calls : {}", c.keyvault);
    println!(
        "  Key Vault 401 challenges   : {} (first concurrent requests of each new vault client)",
        c.challenges
    );
    println!("  Entra ID token requests    : {}", c.tokens);
    println!(
        "  cache hit rate             : {:.2}% ({hits}/{lookups}, coalesced fetches count as hits)",
        100.0 * hits as f64 / lookups as f64
    );
    println!(
        "  mount latency p50 / p99    : {:.3} ms / {:.3} ms (all mounts)",
        ms(pct(&latencies, 50)),
        ms(pct(&latencies, 99))
    );
    println!(
        "  cached mounts p50 / p99    : {:.3} ms / {:.3} ms",
        ms(pct(&cached, 50)),
        ms(pct(&cached, 99))
    );
    println!("  wall time                  : {:.2} s", total.as_secs_f64());
    // Cached latency without queueing behind 15 other mounts: one at a time.
    let mut seq = Vec::with_capacity(200);
    for i in 0..200 {
        let mut c = client.clone();
        let t = Instant::now();
        c.mount(arcseal_controller::csi::proto::MountRequest {
            attributes: attrs[i % IDENTITIES].clone(),
            secrets: "null".into(),
            target_path: String::new(),
            permission: "420".into(),
            current_object_version: vec![],
        })
        .await
        .expect("mount");
        seq.push(t.elapsed());
    }
    println!(
        "  cached, sequential p50/p99 : {:.3} ms / {:.3} ms (200 more mounts, one at a time)",
        ms(pct(&seq, 50)),
        ms(pct(&seq, 99))
    );
    p.stop().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
