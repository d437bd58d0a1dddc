//! Cold start of the unseal controller on a real kube-apiserver (the tests' harness): N SealedSecrets x 3 items,
//! sealed round-robin with 3 active RSA-4096 keys, the `arcseal-controller unseal` binary started as its own process,
//! until every SealedSecret is `Synced=True`. Prints wall time, RSA operations performed (from the controller's
//! metrics), the controller's peak RSS (VmHWM), and the lower bound: RSA operations x the cost of one RSA-4096
//! OAEP decryption measured in the same run (`arcseal_crypto::hazmat`). Figures only, no assertions.
//!
//! `cargo bench -p arcseal-controller --bench unseal` (env `ARCSEAL_BENCH_SEALED_SECRETS`, default 2000;
//! `ARCSEAL_BENCH_WORKERS`, default 8).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use arcseal_controller::unseal::crd::{SealedSecret, SealedSecretSpec};
use arcseal_controller::unseal::keys;
use arcseal_crypto::{Certificate, CertificateParams, PrivateKey, Scope};
use arcseal_tests::k8s::{self, TestNamespace};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(0)
}

fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

async fn metric(url: &str, name: &str) -> Option<f64> {
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines().find(|l| l.starts_with(name)).and_then(|l| l.rsplit(' ').next()).and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count = env_usize("ARCSEAL_BENCH_SEALED_SECRETS", 2000);
    let workers = env_usize("ARCSEAL_BENCH_WORKERS", 8);
    let ns = TestNamespace::new("bench-unseal").await?;
    let client = ns.client();
    k8s::apply_crd(&client, &arcseal_controller::unseal::crd::crd_yaml()).await?;

    // Three active RSA-4096 keys, stored as sealed-secrets stores them; certificates one second apart so the
    // newest is well defined.
    let started = Instant::now();
    let mut ring = Vec::new();
    for i in 0..3u64 {
        let key = tokio::task::spawn_blocking(|| PrivateKey::generate(4096)).await??;
        let params = CertificateParams {
            common_name: String::new(),
            not_before: SystemTime::now() - Duration::from_secs(100 - i),
            validity: arcseal_crypto::DEFAULT_CERT_VALIDITY,
        };
        let cert = Certificate::self_signed(&key, &params)?;
        let secret = keys::key_secret(&key, &cert, ns.name()).map_err(std::io::Error::other)?;
        ns.api::<Secret>().create(&PostParams::default(), &secret).await?;
        ring.push(key);
    }
    println!("setup: 3 RSA-4096 keys in {:.1} s", started.elapsed().as_secs_f64());

    let started = Instant::now();
    let api: Api<SealedSecret> = ns.api();
    let namespace = ns.name().to_owned();
    futures::stream::iter(0..count)
        .map(|i| {
            let (api, key, namespace) = (api.clone(), ring[i % 3].public_key().clone(), namespace.clone());
            async move {
                let name = format!("app-{i:05}");
                let label = Scope::Strict.encryption_label(&namespace, &name);
                let items = [
                    ("username", format!("user-{i}")),
                    ("password", format!("pw-{i:08}")),
                    ("url", "db:5432".into()),
                ];
                let encrypted_data = items
                    .iter()
                    .map(|(k, v)| Ok(((*k).to_owned(), arcseal_crypto::seal(&key, &label, v.as_bytes())?)))
                    .collect::<Result<_, arcseal_crypto::EncryptError>>()
                    .map_err(std::io::Error::other)?;
                let mut ss =
                    SealedSecret::new(&name, SealedSecretSpec { encrypted_data, ..Default::default() });
                ss.metadata.namespace = Some(namespace);
                api.create(&PostParams::default(), &ss).await.map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    println!("setup: {count} SealedSecrets x 3 items created in {:.1} s", started.elapsed().as_secs_f64());

    // The controller, as its own process (peak RSS is its own).
    let (http_port, metrics_port) = (free_port(), free_port());
    let metrics_url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_arcseal-controller"))
        .args([
            "unseal",
            &format!("--listen-addr=127.0.0.1:{http_port}"),
            &format!("--listen-metrics-addr=127.0.0.1:{metrics_port}"),
            "--all-namespaces=false",
            "--key-renew-period=0",
            &format!("--workers={workers}"),
        ])
        .env("POD_NAMESPACE", ns.name())
        .env("KUBECONFIG", ns.cluster().kubeconfig())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mut peak = 0.0f64;
    let synced_after = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak = peak.max(peak_rss_mib(pid).unwrap_or(0.0));
        let list = api.list(&ListParams::default()).await?;
        let synced = list
            .items
            .iter()
            .filter(|ss| {
                ss.synced_condition().is_some_and(|c| c.status == "True")
                    && ss.status.as_ref().and_then(|s| s.observed_generation) == ss.metadata.generation
            })
            .count();
        if synced == count {
            break started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(900) {
            let _ = child.kill();
            return Err(format!("only {synced}/{count} Synced after 900 s").into());
        }
    };
    peak = peak.max(peak_rss_mib(pid).unwrap_or(0.0));
    let rsa_ops =
        metric(&metrics_url, "sealed_secrets_controller_rsa_operations_total").await.unwrap_or(f64::NAN);
    // Let one resync-free moment pass, then read the peak again (status writes finish after the last list).
    tokio::time::sleep(Duration::from_secs(2)).await;
    peak = peak.max(peak_rss_mib(pid).unwrap_or(0.0));
    let _ = child.kill();
    let _ = child.wait();

    // The cost of one RSA-4096 OAEP decryption on this machine, now (same load conditions minus the controller).
    let key = &ring[0];
    let label = Scope::Strict.encryption_label(&namespace, "app-00000");
    let ct = arcseal_crypto::hazmat::rsa_oaep_encrypt_session_key(key.public_key(), &label)?;
    let rounds = 200;
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(arcseal_crypto::hazmat::rsa_oaep_decrypt_session_key(key, &label, &ct)?);
    }
    let per_op = t.elapsed().as_secs_f64() / f64::from(rounds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let lower = rsa_ops * per_op;

    println!();
    println!(
        "unseal cold start: {count} SealedSecrets x 3 items, 3 active RSA-4096 keys, {workers} workers, {cores} cores"
    );
    println!("  time to all Synced          {:>8.1} s", synced_after.as_secs_f64());
    println!(
        "  RSA operations              {:>8.0}  ({:.2} per item; {} items)",
        rsa_ops,
        rsa_ops / (3.0 * count as f64),
        3 * count
    );
    println!("  RSA-4096 decryption         {:>8.2} ms (measured now, one thread)", per_op * 1e3);
    println!("  lower bound, one core       {:>8.1} s  (RSA operations x cost)", lower);
    println!("  lower bound, {cores} cores        {:>8.1} s", lower / cores as f64);
    println!("  controller peak RSS (VmHWM) {:>8.1} MiB", peak);
    ns.finish().await?;
    Ok(())
}
