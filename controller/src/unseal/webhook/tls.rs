//! The webhook's serving certificate. It always comes from one `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`,
//! `ca.crt`; `--admission-tls-secret`), which every replica watches and serves from, reloading without a restart.
//! Who writes that Secret:
//! - **the controller** (`--admission-tls-managed=true`, the default): the leader makes a serving certificate signed
//!   by a fresh authority ([`arcseal_crypto::tls`]), puts the authority first into the `caBundle` of every webhook
//!   in the ValidatingWebhookConfiguration (`--admission-webhook-config`), then writes the Secret; it renews when a
//!   third of the validity is left, keeping the previous authority in the bundle until it expires, so replicas
//!   still serving the old certificate stay trusted meanwhile;
//! - **cert-manager** or the operator (`--admission-tls-managed=false`): the controller only reads the Secret;
//!   cert-manager's CA injector keeps the `caBundle` (annotation `cert-manager.io/inject-ca-from`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the serving certificate lives and who keeps it.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Namespace of the Secret (the controller's).
    pub namespace: String,
    /// Name of the `kubernetes.io/tls` Secret.
    pub secret_name: String,
    /// The controller makes and renews the certificate (else cert-manager or the operator does).
    pub managed: bool,
    /// The ValidatingWebhookConfiguration whose `caBundle` the leader keeps current (managed only).
    pub webhook_config: Option<String>,
    /// DNS names for the certificate (the Service's names).
    pub dns_names: Vec<String>,
    /// IP addresses for the certificate (a webhook reached by `clientConfig.url`).
    pub ips: Vec<IpAddr>,
    /// Validity of a serving certificate.
    pub validity: Duration,
}

/// Why the serving certificate could not be used or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The Secret lacks a field or holds something unusable.
    #[error(
        "Secret {namespace}/{name}: {what}; delete it to let the controller make a new one, or fix its issuer"
    )]
    BadSecret {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What is wrong.
        what: String,
    },
    /// Making the certificate failed.
    #[error("making the webhook's serving certificate: {0}")]
    Create(#[from] arcseal_crypto::CertError),
    /// The API server refused a read or write.
    #[error("{what}: {}", crate::unseal::reconcile::api_summary(source))]
    Api {
        /// Which object.
        what: String,
        /// Why.
        source: kube::Error,
    },
}

/// The certificate the listener serves: swapped in place when the Secret changes.
#[derive(Debug, Default)]
pub struct ServingCert(RwLock<Option<Arc<CertifiedKey>>>);

impl ServingCert {
    /// Replaces the served certificate.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Some(key);
        }
    }

    /// Whether a certificate is loaded (readiness of the webhook listener).
    pub fn is_loaded(&self) -> bool {
        self.0.read().is_ok_and(|s| s.is_some())
    }

    /// A rustls server config serving whatever is current (HTTP/1.1 only, TLS 1.2 and 1.3, aws-lc-rs).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().and_then(|s| s.clone())
    }
}

/// The three fields of a serving Secret, read.
pub struct SecretMaterial {
    /// What rustls serves.
    pub certified: Arc<CertifiedKey>,
    /// NotAfter of the serving certificate.
    pub not_after: SystemTime,
    /// NotBefore of the serving certificate.
    pub not_before: SystemTime,
    /// `ca.crt` as stored.
    pub ca_pem: String,
}

fn field<'a>(secret: &'a Secret, key: &str) -> Option<&'a [u8]> {
    secret.data.as_ref()?.get(key).map(|b| b.0.as_slice())
}

/// Reads `tls.crt` (with its chain), `tls.key` and `ca.crt` of a serving Secret.
pub fn read_secret(secret: &Secret, config: &TlsConfig) -> Result<SecretMaterial, TlsError> {
    let bad = |what: String| TlsError::BadSecret {
        namespace: config.namespace.clone(),
        name: config.secret_name.clone(),
        what,
    };
    let cert_pem = field(secret, "tls.crt").ok_or_else(|| bad("no tls.crt".into()))?;
    let key_pem = field(secret, "tls.key").ok_or_else(|| bad("no tls.key".into()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("tls.crt is not PEM certificates".into()))?;
    let leaf = chain.first().ok_or_else(|| bad("tls.crt holds no certificate".into()))?;
    let parsed = arcseal_crypto::tls::validity(leaf)
        .ok_or_else(|| bad("tls.crt is not an X.509 certificate".into()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| bad("tls.key is not a PEM private key".into()))?;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|_| bad("tls.key is not a supported key type".into()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|_| bad("tls.key does not belong to tls.crt".into()))?;
    let ca_pem = field(secret, "ca.crt").map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
    Ok(SecretMaterial { certified: Arc::new(certified), not_before: parsed.0, not_after: parsed.1, ca_pem })
}

/// Watches the serving Secret and swaps the served certificate when it changes (every replica).
pub async fn watch(client: Client, config: TlsConfig, serving: Arc<ServingCert>) {
    let api: Api<Secret> = Api::namespaced(client, &config.namespace);
    let wc = watcher::Config::default().fields(&format!("metadata.name={}", config.secret_name));
    let mut events =
        std::pin::pin!(kube::runtime::WatchStreamExt::default_backoff(watcher::watcher(api, wc)));
    while let Some(event) = events.next().await {
        let secret = match event {
            Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => s,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "watching the webhook's serving Secret (kube retries)");
                continue;
            }
        };
        match read_secret(&secret, &config) {
            Ok(material) => {
                serving.set(material.certified);
                tracing::info!(secret = %config.secret_name, "webhook serving certificate loaded");
            }
            Err(e) => tracing::error!(error = %e, "webhook serving certificate not loaded"),
        }
    }
}

/// Whether a certificate valid from `not_before` to `not_after` should be renewed at `now` (a third left).
pub fn needs_renewal(not_before: SystemTime, not_after: SystemTime, now: SystemTime) -> bool {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    let left = not_after.duration_since(now).unwrap_or_default();
    left < life / 3
}

/// The CA bundle after a renewal: the new authority first, then every previous one still valid at `now`.
pub fn next_bundle(new_ca: &str, previous: &str, now: SystemTime) -> String {
    let mut bundle = new_ca.trim_end().to_owned();
    bundle.push('\n');
    for cert in CertificateDer::pem_slice_iter(previous.as_bytes()).flatten() {
        let still_valid = arcseal_crypto::tls::validity(&cert).is_some_and(|(_, not_after)| not_after > now);
        if still_valid {
            bundle.push_str(
                &pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, &cert)
                    .unwrap_or_default(),
            );
        }
    }
    bundle
}

/// Leader: makes the serving Secret if it is missing, unusable or due, and keeps the `caBundle` current.
/// Returns when the next check is due.
pub async fn keep(client: &Client, config: &TlsConfig) -> Result<Duration, TlsError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &config.namespace);
    let what = |w: &str| format!("{w} {}/{}", config.namespace, config.secret_name);
    let now = SystemTime::now();
    let current = secrets
        .get_opt(&config.secret_name)
        .await
        .map_err(|source| TlsError::Api { what: what("reading Secret"), source })?;
    let usable = current.as_ref().and_then(|s| read_secret(s, config).ok());
    let (ca_bundle, recheck) = match &usable {
        Some(m) if !needs_renewal(m.not_before, m.not_after, now) => {
            let renew_at =
                m.not_before + m.not_after.duration_since(m.not_before).unwrap_or_default() * 2 / 3;
            (m.ca_pem.clone(), renew_at.duration_since(now).unwrap_or_default())
        }
        _ => {
            let material = arcseal_crypto::tls::serving_certificate(&arcseal_crypto::tls::ServingParams {
                dns_names: config.dns_names.clone(),
                ips: config.ips.clone(),
                not_before: now - Duration::from_secs(300),
                validity: config.validity,
            })?;
            let bundle =
                next_bundle(&material.ca_pem, usable.as_ref().map_or("", |m| m.ca_pem.as_str()), now);
            // Trust first, then serve: replicas pick the new certificate up only once the API server trusts it.
            // (A configuration that does not exist yet gets the bundle on the next pass.)
            patch_ca_bundle(client, config, &bundle).await?;
            let data = BTreeMap::from([
                ("tls.crt".to_owned(), ByteString(material.cert_pem.into_bytes())),
                ("tls.key".to_owned(), ByteString(material.key_pem.as_bytes().to_vec())),
                ("ca.crt".to_owned(), ByteString(bundle.clone().into_bytes())),
            ]);
            let mut secret = current.clone().unwrap_or_default();
            secret.metadata.name = Some(config.secret_name.clone());
            secret.metadata.namespace = Some(config.namespace.clone());
            secret
                .metadata
                .labels
                .get_or_insert_default()
                .insert("app.kubernetes.io/managed-by".into(), crate::unseal::FIELD_MANAGER.into());
            secret.type_ = Some("kubernetes.io/tls".into());
            secret.data = Some(data);
            secret.string_data = None;
            let written = if current.is_some() {
                secrets.replace(&config.secret_name, &PostParams::default(), &secret).await
            } else {
                secrets.create(&PostParams::default(), &secret).await
            };
            written.map_err(|source| TlsError::Api { what: what("writing Secret"), source })?;
            tracing::info!(secret = %config.secret_name, "webhook serving certificate made");
            return Ok(Duration::from_secs(1));
        }
    };
    let found = patch_ca_bundle(client, config, &ca_bundle).await?;
    // The configuration may be applied after the controller (Helm, kubectl apply -k): look again soon.
    Ok(if found { recheck.min(Duration::from_secs(3600)) } else { MISSING_CONFIG_RECHECK })
}

/// How soon a missing ValidatingWebhookConfiguration is looked for again.
const MISSING_CONFIG_RECHECK: Duration = Duration::from_secs(5);

/// Sets `caBundle` on every webhook of the configuration (a JSON merge patch cannot address list items, so the
/// list is read and written back whole, guarded by its resourceVersion). Returns whether the configuration exists.
async fn patch_ca_bundle(client: &Client, config: &TlsConfig, bundle: &str) -> Result<bool, TlsError> {
    let Some(name) = &config.webhook_config else { return Ok(true) };
    let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let what = || format!("ValidatingWebhookConfiguration {name}");
    let Some(mut vwc) = api.get_opt(name).await.map_err(|source| TlsError::Api { what: what(), source })?
    else {
        tracing::warn!(config = %name, "the ValidatingWebhookConfiguration does not exist yet; caBundle not set");
        return Ok(false);
    };
    let bundle = ByteString(bundle.as_bytes().to_vec());
    let webhooks = vwc.webhooks.get_or_insert_default();
    if webhooks.iter().all(|w| w.client_config.ca_bundle.as_ref() == Some(&bundle)) {
        return Ok(true);
    }
    for webhook in webhooks.iter_mut() {
        webhook.client_config.ca_bundle = Some(bundle.clone());
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": vwc.metadata.resource_version},
        "webhooks": vwc.webhooks,
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| TlsError::Api { what: what(), source })?;
    tracing::info!(config = %name, "webhook caBundle updated");
    Ok(true)
}

/// Leader loop: [`keep`] until `stop`; errors are logged and retried in 30 s.
pub async fn keep_running(client: Client, config: TlsConfig) {
    loop {
        let wait = match keep(&client, &config).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!(error = %e, "keeping the webhook's serving certificate; retrying in 30 s");
                Duration::from_secs(30)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TlsConfig {
        TlsConfig {
            namespace: "kube-system".into(),
            secret_name: "arcseal-admission-tls".into(),
            managed: true,
            webhook_config: None,
            dns_names: vec!["arcseal-admission.kube-system.svc".into()],
            ips: vec![],
            validity: Duration::from_secs(3600),
        }
    }

    fn secret_of(m: &arcseal_crypto::tls::ServingMaterial) -> Secret {
        Secret {
            data: Some(BTreeMap::from([
                ("tls.crt".to_owned(), ByteString(m.cert_pem.clone().into_bytes())),
                ("tls.key".to_owned(), ByteString(m.key_pem.as_bytes().to_vec())),
                ("ca.crt".to_owned(), ByteString(m.ca_pem.clone().into_bytes())),
            ])),
            ..Secret::default()
        }
    }

    fn material(not_before: SystemTime) -> arcseal_crypto::tls::ServingMaterial {
        arcseal_crypto::tls::serving_certificate(&arcseal_crypto::tls::ServingParams {
            dns_names: config().dns_names,
            ips: vec![],
            not_before,
            validity: Duration::from_secs(3600),
        })
        .unwrap()
    }

    #[test]
    fn a_made_secret_reads_back_and_mismatches_are_named() {
        let now = SystemTime::now();
        let m = material(now);
        let read = read_secret(&secret_of(&m), &config()).unwrap();
        assert_eq!(read.ca_pem, m.ca_pem);
        assert!(read.not_after > now);
        let other = material(now);
        let mut mixed = secret_of(&m);
        mixed.data.as_mut().unwrap().insert("tls.key".into(), ByteString(other.key_pem.as_bytes().to_vec()));
        let err = read_secret(&mixed, &config()).err().unwrap().to_string();
        assert!(
            err.contains("does not belong") && err.contains("kube-system/arcseal-admission-tls"),
            "{err}"
        );
        let mut missing = secret_of(&m);
        missing.data.as_mut().unwrap().remove("tls.crt");
        assert!(read_secret(&missing, &config()).err().unwrap().to_string().contains("no tls.crt"));
    }

    #[test]
    fn renewal_at_a_third_left_and_the_bundle_keeps_valid_authorities() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let end = start + Duration::from_secs(3000);
        assert!(!needs_renewal(start, end, start + Duration::from_secs(1999)));
        assert!(needs_renewal(start, end, start + Duration::from_secs(2001)));
        assert!(needs_renewal(start, end, end + Duration::from_secs(1)));

        let now = SystemTime::now();
        let (old, new) = (material(now), material(now));
        let bundle = next_bundle(&new.ca_pem, &old.ca_pem, now);
        let certs: Vec<_> = CertificateDer::pem_slice_iter(bundle.as_bytes()).flatten().collect();
        assert_eq!(certs.len(), 2, "new and previous authority");
        assert!(bundle.starts_with(new.ca_pem.trim_end()));
        // Once the previous authority has expired it leaves the bundle.
        let later = now + Duration::from_secs(10 * 86_400);
        assert_eq!(
            CertificateDer::pem_slice_iter(next_bundle(&new.ca_pem, &bundle, later).as_bytes()).count(),
            1
        );
    }

    #[tokio::test]
    async fn a_replica_is_not_ready_until_it_holds_a_serving_certificate() {
        use crate::unseal::http;
        use axum::body::Body;
        use axum::extract::ConnectInfo;
        use axum::http::{Request, StatusCode};
        use tower::ServiceExt as _;

        let serving = Arc::new(ServingCert::default());
        let api = Arc::new(http::Api {
            keys: Arc::default(),
            metrics: Arc::new(crate::unseal::metrics::Metrics::new()),
            ready: Arc::new(true.into()),
            admission: http::Admission::new(http::HttpLimits::default()),
            webhook_cert: Some(serving.clone()),
        });
        let readyz = || async {
            let request = Request::get("/readyz")
                .extension(ConnectInfo::<std::net::SocketAddr>(([127, 0, 0, 1], 9).into()))
                .body(Body::empty())
                .unwrap();
            let response = http::router(api.clone()).oneshot(request).await.unwrap();
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
            (status, String::from_utf8(body.to_vec()).unwrap())
        };
        let (status, body) = readyz().await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("serving certificate"), "{body}");
        serving.set(read_secret(&secret_of(&material(SystemTime::now())), &config()).unwrap().certified);
        assert_eq!(readyz().await, (StatusCode::OK, "ok".to_owned()));
    }
}
