//! Helpers shared by the `controller_*` test binaries: an in-process controller per test, keys stored as
//! sealed-secrets stores them, SealedSecrets sealed for any scope, and bounded waits on status.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use arcseal_controller::unseal::crd::{SealedSecret, SealedSecretSpec};
use arcseal_controller::unseal::keys;
use arcseal_controller::unseal::leader::LeaderConfig;
use arcseal_controller::unseal::{self, Config, Handles};
use arcseal_crypto::{Certificate, CertificateParams, PrivateKey, PublicKey, Scope};
use arcseal_tests::k8s::{self, TestNamespace, poll};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::oneshot;

pub const TIMEOUT: Duration = Duration::from_secs(45);

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub struct Running {
    pub handles: Handles,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), &mut self.task).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.handles.http_addr.expect("HTTP API bound"))
    }
}

pub use arcseal_tests::unseal::config;

pub async fn start(client: Client, config: Config) -> Running {
    let (tx, rx) = oneshot::channel();
    let (handles, task) = unseal::start(client, config, async move {
        let _ = rx.await;
    })
    .await
    .expect("controller starts");
    Running { handles, stop: Some(tx), task }
}

/// Leader election on the Lease `arcseal-unseal` with short periods: a Lease lasts 4 s and is renewed every 500 ms.
pub fn fast_election(namespace: &str, identity: &str) -> LeaderConfig {
    LeaderConfig {
        namespace: namespace.to_owned(),
        lease_name: "arcseal-unseal".into(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    }
}

pub fn new_key() -> (PrivateKey, Certificate) {
    let key = PrivateKey::generate(2048).unwrap();
    let params = CertificateParams {
        common_name: String::new(),
        not_before: SystemTime::now(),
        validity: Duration::from_secs(3600),
    };
    let cert = Certificate::self_signed(&key, &params).unwrap();
    (key, cert)
}

pub async fn store_key(client: &Client, ns: &str, key: &PrivateKey, cert: &Certificate) -> String {
    let secret = keys::key_secret(key, cert, ns).unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap()
        .name_any()
}

/// A test namespace with the SealedSecret CRD applied and one sealing key stored in it.
pub async fn namespace_with_key(test: &str) -> Result<(TestNamespace, PrivateKey), k8s::Error> {
    let ns = TestNamespace::new(test).await?;
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await?;
    let (key, cert) = new_key();
    store_key(&ns.client(), ns.name(), &key, &cert).await;
    Ok((ns, key))
}

pub async fn setup(test: &str) -> (TestNamespace, PrivateKey, Running) {
    let (ns, key) = namespace_with_key(test).await.unwrap();
    let running = start(ns.client(), config(ns.name(), &[ns.name()])).await;
    (ns, key, running)
}

pub fn sealed(
    ns: &str,
    name: &str,
    scope: Scope,
    key: &PublicKey,
    items: &[(&str, &[u8])],
    sealed_for: Option<(&str, &str)>,
) -> SealedSecret {
    let (label_ns, label_name) = sealed_for.unwrap_or((ns, name));
    let label = scope.encryption_label(label_ns, label_name);
    let mut ss = SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: items
                .iter()
                .map(|(k, v)| ((*k).to_owned(), arcseal_crypto::seal(key, &label, v).unwrap()))
                .collect(),
            ..SealedSecretSpec::default()
        },
    );
    ss.metadata.namespace = Some(ns.to_owned());
    if let Some((k, v)) = scope.annotation() {
        ss.metadata.annotations = Some([(k.to_owned(), v.to_owned())].into());
    }
    ss
}

/// Creates SealedSecret `good` (sealed with `key`) and `broken` (sealed with a key the controller does not have) in
/// `ns` and waits until the controller reports them Synced=True and Synced=False.
pub async fn good_and_broken(client: &Client, ns: &str, key: &PrivateKey) -> Api<SealedSecret> {
    let api: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    let good = sealed(ns, "good", Scope::Strict, key.public_key(), &[("a", b"1")], None);
    api.create(&PostParams::default(), &good).await.unwrap();
    let (other, _) = new_key();
    let broken = sealed(ns, "broken", Scope::Strict, other.public_key(), &[("a", b"1")], None);
    api.create(&PostParams::default(), &broken).await.unwrap();
    wait_synced(&api, "good", "True").await;
    wait_synced(&api, "broken", "False").await;
    api
}

/// Waits until the controller has acted on the current generation and `Synced` is `status`.
pub async fn wait_synced(api: &Api<SealedSecret>, name: &str, status: &str) -> SealedSecret {
    poll(&format!("SealedSecret {name} Synced={status}"), TIMEOUT, || async {
        let ss = api.get(name).await.map_err(|e| k8s::Error::Kube { what: "get".into(), source: e })?;
        let observed = ss.status.as_ref().and_then(|s| s.observed_generation);
        let done =
            observed == ss.metadata.generation && ss.synced_condition().is_some_and(|c| c.status == status);
        Ok(done.then_some(ss))
    })
    .await
    .unwrap()
}

pub async fn data(api: &Api<Secret>, name: &str) -> BTreeMap<String, Vec<u8>> {
    api.get(name).await.unwrap().data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()
}

pub fn map(pairs: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.to_vec())).collect()
}

pub async fn events(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let list = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// (reason, reportingInstance) of the events about `name`.
pub async fn event_sources(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let list = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.reporting_instance.unwrap_or_default()))
        .collect()
}

/// Waits until the controller's `/readyz` answers 200 (keys loaded).
pub async fn wait_ready(running: &Running) {
    let http = reqwest::Client::new();
    poll("the controller is ready", TIMEOUT, || async {
        let ready = http.get(running.url("/readyz")).send().await.is_ok_and(|r| r.status() == 200);
        Ok(ready.then_some(()))
    })
    .await
    .unwrap();
}

/// The admission webhook on a free loopback port, its serving Secret `arcseal-admission-tls` in `ns` (made by the
/// leader when `managed`), its certificate valid for 127.0.0.1; the leader keeps the caBundle of `webhook_config`.
pub fn admission_config(ns: &str, webhook_config: &str, managed: bool) -> unseal::AdmissionConfig {
    use arcseal_controller::unseal::webhook::{WebhookLimits, tls::TlsConfig};
    unseal::AdmissionConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        limits: WebhookLimits::default(),
        tls: TlsConfig {
            namespace: ns.to_owned(),
            secret_name: "arcseal-admission-tls".into(),
            managed,
            webhook_config: Some(webhook_config.to_owned()),
            dns_names: vec![format!("arcseal-admission.{ns}.svc")],
            ips: vec!["127.0.0.1".parse().unwrap()],
            validity: Duration::from_secs(24 * 3600),
        },
    }
}
