//! The admission webhook's latency, in figures (no assertions): the webhook's own router and TLS accept loop on
//! loopback, three RSA-4096 keys (sealed-secrets' default size; the items sealed with the newest), and AdmissionReviews
//! of SealedSecrets with 1, 10, 50 and 200 items sent one after another over one kept-alive HTTPS connection, as the
//! API server sends them. Printed: p50 and p99 per review and per item, the RSA operations per item, and the raw
//! cost of one RSA-4096 OAEP decryption measured in the same run for scale.
//!
//! `cargo bench -p arcseal-controller --bench admission`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arcseal_controller::unseal::keys::{KeySet, KeyStore, LoadedKey};
use arcseal_controller::unseal::metrics::Metrics;
use arcseal_controller::unseal::webhook::{self, WebhookLimits, tls};
use arcseal_crypto::{Certificate, CertificateParams, PrivateKey, Scope};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

const ROUNDS: usize = 200;

/// The `pct`th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], pct: usize) -> Duration {
    sorted[((sorted.len() - 1) * pct).div_ceil(100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn review(items: usize, key: &PrivateKey) -> String {
    let label = Scope::Strict.encryption_label("bench", "db");
    let data: serde_json::Map<String, serde_json::Value> = (0..items)
        .map(|i| {
            let value =
                arcseal_crypto::seal(key.public_key(), &label, format!("value-{i}").as_bytes()).unwrap();
            (format!("item-{i:03}"), value.into())
        })
        .collect();
    serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "operation": "CREATE",
            "name": "db",
            "namespace": "bench",
            "object": {
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": {"name": "db", "namespace": "bench"},
                "spec": {"encryptedData": data},
            },
        },
    })
    .to_string()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("generating three RSA-4096 keys...");
    let day = Duration::from_secs(86_400);
    let keys: Vec<LoadedKey> = (0..3u32)
        .map(|i| {
            let key = PrivateKey::generate(4096).unwrap();
            let params = CertificateParams {
                common_name: String::new(),
                not_before: SystemTime::now() - (3 - i) * day,
                validity: 1000 * day,
            };
            let cert = Certificate::self_signed(&key, &params).unwrap();
            LoadedKey { key, cert: Some(cert), secret_name: format!("key-{i}") }
        })
        .collect();
    let newest = keys[2].key.clone();
    let store = Arc::new(KeyStore::default());
    store.replace(KeySet::new(keys));
    let metrics = Arc::new(Metrics::new());

    // The serving certificate as the controller makes it, loaded as replicas load it.
    let material = arcseal_crypto::tls::serving_certificate(&arcseal_crypto::tls::ServingParams {
        dns_names: vec![],
        ips: vec!["127.0.0.1".parse()?],
        not_before: SystemTime::now() - Duration::from_secs(60),
        validity: day,
    })?;
    let secret = Secret {
        data: Some(
            [
                ("tls.crt", material.cert_pem.as_bytes()),
                ("tls.key", material.key_pem.as_bytes()),
                ("ca.crt", material.ca_pem.as_bytes()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.to_vec())))
            .collect(),
        ),
        ..Secret::default()
    };
    let tls_config = tls::TlsConfig {
        namespace: "bench".into(),
        secret_name: "tls".into(),
        managed: false,
        webhook_config: None,
        dns_names: vec![],
        ips: vec![],
        validity: day,
    };
    let serving = Arc::new(tls::ServingCert::default());
    serving.set(tls::read_secret(&secret, &tls_config)?.certified);
    let limits = WebhookLimits::default();
    let router = webhook::router(webhook::Webhook::new(store.clone(), metrics.clone(), limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let connections = arcseal_controller::listener::ConnectionLimits::PROBES;
    let server_config = serving.server_config()?;
    tokio::spawn(arcseal_controller::listener::serve_tls(listener, router, connections, server_config));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(material.ca_pem.as_bytes())?)
        .build()?;
    let url = format!("https://{addr}{}", webhook::PATH);

    // Raw cost of one RSA-4096 OAEP decryption, in this run.
    let label = Scope::Strict.encryption_label("bench", "db");
    let value = arcseal_crypto::seal(newest.public_key(), &label, b"x")?;
    let raw = arcseal_crypto::decode_base64(&value)?;
    let mut rsa: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let started = Instant::now();
            let _ = arcseal_crypto::open(&newest, &label, &raw);
            started.elapsed()
        })
        .collect();
    rsa.sort();
    let rsa_p50 = percentile(&rsa, 50);
    println!("raw RSA-4096 OAEP decryption + AES-GCM: p50 {} p99 {}", ms(rsa_p50), ms(percentile(&rsa, 99)));
    println!();
    println!(
        "| items | reviews | p50 / review | p99 / review | p50 / item | p99 / item | RSA ops / item | p50 / item vs raw RSA |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for items in [1usize, 10, 50, 200] {
        let body = review(items, &newest);
        let rounds = if items >= 50 { ROUNDS / 4 } else { ROUNDS };
        // One warm-up review opens the connection and the TLS session.
        let warm = client.post(&url).body(body.clone()).send().await?.text().await?;
        assert!(warm.contains("\"allowed\":true"), "the bench's review must be admitted: {warm}");
        let before = metrics.rsa_operations.get();
        let mut took = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let answer = client.post(&url).body(body.clone()).send().await?.bytes().await?;
            took.push(started.elapsed());
            std::hint::black_box(answer);
        }
        let ops = metrics.rsa_operations.get() - before;
        took.sort();
        let (p50, p99) = (percentile(&took, 50), percentile(&took, 99));
        let n = u32::try_from(items)?;
        println!(
            "| {items} | {rounds} | {} | {} | {} | {} | {:.2} | {:.2}x |",
            ms(p50),
            ms(p99),
            ms(p50 / n),
            ms(p99 / n),
            ops as f64 / (rounds * items) as f64,
            (p50 / n).as_secs_f64() / rsa_p50.as_secs_f64(),
        );
    }
    Ok(())
}
