//! The unseal controller's keys and availability on a real kube-apiserver: key generation and renewal, the key
//! cutoff time, keys added and retired without a restart, leader failover between two controller processes, the
//! Lease released by a stopping leader, and watches that survive 410 Gone.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use arcseal_controller::unseal::crd::SealedSecret;
use arcseal_controller::unseal::keys::{self, KEY_LABEL, LEGACY_KEY_NAME};
use arcseal_controller::unseal::{self};
use arcseal_crypto::{Certificate, Scope};
use arcseal_tests::k8s::{self, TestNamespace, poll};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};

mod controller_common;
use controller_common::*;

async fn key_secrets(api: &Api<Secret>) -> Vec<Secret> {
    api.list(&ListParams::default().labels(KEY_LABEL)).await.unwrap().items
}

async fn served_cert(running: &Running) -> Option<Certificate> {
    let response = reqwest::get(running.url("/v1/cert.pem")).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    Certificate::from_pem(&response.bytes().await.ok()?).ok()
}

#[tokio::test]
async fn generates_a_key_when_none_exists_and_renews_it() -> TestResult {
    let ns = TestNamespace::new("keygen").await?;
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await?;
    let secrets = ns.api::<Secret>();
    let mut config = config(ns.name(), &[ns.name()]);
    config.keys.renew_period = Duration::from_secs(6);
    let running = start(ns.client(), config).await;

    let first =
        poll("a generated key", TIMEOUT, || async { Ok(key_secrets(&secrets).await.into_iter().next()) })
            .await?;
    assert!(
        first.name_any().starts_with(LEGACY_KEY_NAME),
        "generateName like sealed-secrets: {}",
        first.name_any()
    );
    assert_eq!(first.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(first.labels().get(KEY_LABEL).map(String::as_str), Some("active"));
    let data = first.data.clone().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&data["tls.key"].0).starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "PKCS#1"
    );
    let loaded = keys::parse_key_secret(&first).map_err(|e| e.to_string())?.expect("an active key");
    let cert = loaded.cert.expect("tls.crt");
    assert_eq!(cert.subject(), "", "--my-cn defaults to empty");
    let validity = cert.not_after().duration_since(cert.not_before())?;
    assert_eq!(validity, arcseal_crypto::DEFAULT_CERT_VALIDITY);
    let served = poll("cert.pem", TIMEOUT, || async { Ok(served_cert(&running).await) }).await?;
    assert_eq!(served.fingerprint(), loaded.key.fingerprint());

    // The renew period passes: a second key, served as the newest; the first one is kept.
    let both = poll("a renewed key", TIMEOUT, || async {
        let all = key_secrets(&secrets).await;
        Ok((all.len() >= 2).then_some(all))
    })
    .await?;
    assert!(both.iter().any(|s| s.name_any() == first.name_any()), "old keys are kept");
    let newer = poll("cert.pem of the new key", TIMEOUT, || async {
        Ok(served_cert(&running).await.filter(|c| c.fingerprint() != loaded.key.fingerprint()))
    })
    .await?;
    assert!(newer.not_before() >= cert.not_before());
    assert!(running.handles.keys.snapshot().keys().len() >= 2);
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn key_cutoff_time_forces_a_new_key() -> TestResult {
    let ns = TestNamespace::new("cutoff").await?;
    let (key, cert) = new_key();
    store_key(&ns.client(), ns.name(), &key, &cert).await;
    let mut config = config(ns.name(), &[ns.name()]);
    config.keys.cutoff = Some(SystemTime::now() + Duration::from_secs(4));
    let running = start(ns.client(), config).await;
    poll("the existing key loaded", TIMEOUT, || async {
        Ok(served_cert(&running).await.filter(|c| c.fingerprint() == key.fingerprint()))
    })
    .await?;
    poll("a new key after the cutoff", TIMEOUT, || async {
        Ok(served_cert(&running).await.filter(|c| c.fingerprint() != key.fingerprint()))
    })
    .await?;
    assert_eq!(key_secrets(&ns.api::<Secret>()).await.len(), 2, "the old key is kept");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn added_and_retired_keys_take_effect_without_a_restart() -> TestResult {
    let (ns, key_a, running) = setup("key-changes").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let (key_b, cert_b) = new_key();
    let by_b = sealed(ns.name(), "by-b", Scope::Strict, key_b.public_key(), &[("v", b"b")], None);
    ssa.create(&pp, &by_b).await?;
    wait_synced(&ssa, "by-b", "False").await;

    // Key B arrives (restored from a backup, say): the SealedSecret opens without any change to it.
    let b_name = store_key(&ns.client(), ns.name(), &key_b, &cert_b).await;
    wait_synced(&ssa, "by-b", "True").await;
    assert_eq!(data(&secrets, "by-b").await, map(&[("v", b"b")]));

    // Key B is retired: it leaves the ring, new SealedSecrets sealed with it fail, the Secret made earlier stays.
    let retire = serde_json::json!({"metadata": {"labels": {KEY_LABEL: "compromised"}}});
    secrets.patch(&b_name, &PatchParams::default(), &Patch::Merge(&retire)).await?;
    poll("key B retired", TIMEOUT, || async {
        Ok((running.handles.keys.snapshot().keys().len() == 1).then_some(()))
    })
    .await?;
    assert_eq!(running.handles.keys.snapshot().keys()[0].key.fingerprint(), key_a.fingerprint());
    let again = sealed(ns.name(), "by-b-later", Scope::Strict, key_b.public_key(), &[("v", b"b")], None);
    ssa.create(&pp, &again).await?;
    wait_synced(&ssa, "by-b-later", "False").await;
    let verify = reqwest::Client::new()
        .post(running.url("/v1/verify"))
        .body(serde_json::to_string(&again)?)
        .send()
        .await?;
    assert_eq!(verify.status(), 409);
    assert_eq!(data(&secrets, "by-b").await, map(&[("v", b"b")]), "existing Secrets are not removed");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// A key Secret whose data is rewritten under the same name (restored from another backup, or the Key Vault cache
/// repaired) loads what it holds now: the watch re-reads a Secret whenever its resourceVersion changes, and only then.
#[tokio::test]
async fn a_key_secret_rewritten_in_place_loads_its_new_key() -> TestResult {
    let (ns, key_a, running) = setup("key-rewritten").await;
    wait_ready(&running).await;
    let secrets = ns.api::<Secret>();
    let name = running.handles.keys.snapshot().keys()[0].secret_name.clone();
    assert_eq!(running.handles.keys.snapshot().keys()[0].key.fingerprint(), key_a.fingerprint());
    let (key_c, cert_c) = new_key();
    let data = keys::key_secret(&key_c, &cert_c, ns.name())?.data;
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&serde_json::json!({ "data": data })))
        .await?;
    poll("the rewritten Secret's key loaded", TIMEOUT, || async {
        let prints: Vec<_> =
            running.handles.keys.snapshot().keys().iter().map(|k| k.key.fingerprint()).collect();
        Ok((prints == vec![key_c.fingerprint()]).then_some(()))
    })
    .await?;
    let (ssa, pp) = (ns.api::<SealedSecret>(), PostParams::default());
    ssa.create(&pp, &sealed(ns.name(), "by-c", Scope::Strict, key_c.public_key(), &[("v", b"c")], None))
        .await?;
    wait_synced(&ssa, "by-c", "True").await;
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Issue 10, attack 4: deleting a key Secret must not drop the key from memory: what it sealed keeps opening until
/// the controller restarts, with a warning event and the `orphaned_keys` gauge.
#[tokio::test]
async fn a_deleted_key_secret_keeps_its_key_loaded() -> TestResult {
    let (ns, key_a, running) = setup("key-deleted").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let a_name = key_secrets(&secrets).await[0].name_any();
    // Deleted only once loaded: a key the controller never saw is not the case under test.
    poll("key A loaded", TIMEOUT, || async {
        Ok(running.handles.keys.snapshot().ring().get(&key_a.fingerprint()).map(|_| ()))
    })
    .await?;
    secrets.delete(&a_name, &Default::default()).await?;
    poll("key A orphaned", TIMEOUT, || async {
        let keys = running.handles.keys.snapshot();
        Ok(keys.is_orphaned(&key_a.fingerprint()).then_some(()))
    })
    .await?;
    assert!(running.handles.keys.snapshot().ring().get(&key_a.fingerprint()).is_some(), "still loaded");
    let later = sealed(ns.name(), "by-a", Scope::Strict, key_a.public_key(), &[("v", b"a")], None);
    ssa.create(&pp, &later).await?;
    wait_synced(&ssa, "by-a", "True").await;
    assert_eq!(data(&secrets, "by-a").await, map(&[("v", b"a")]));
    assert_eq!(running.handles.metrics.orphaned_keys.get(), 1);
    let warned = poll("KeySecretDeleted event", TIMEOUT, || async {
        let found = events(&ns.client(), ns.name(), &a_name).await;
        Ok(found.into_iter().find(|(reason, _)| reason == "KeySecretDeleted"))
    })
    .await?;
    assert!(warned.1.contains("stays loaded"), "{warned:?}");
    // The key no longer seals: /v1/cert.pem serves another key (or none) once the Secret is gone.
    let served = served_cert(&running).await;
    assert!(served.is_none_or(|c| c.fingerprint() != key_a.fingerprint()), "an orphaned key does not seal");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Whether a watch of `api` from `resource_version` is answered with 410 Gone.
async fn watch_is_gone(api: &Api<SealedSecret>, resource_version: &str) -> Result<bool, kube::Error> {
    use futures::StreamExt;
    let stream = match api.watch(&WatchParams::default().timeout(1), resource_version).await {
        Ok(stream) => stream,
        Err(kube::Error::Api(s)) if s.code == 410 => return Ok(true),
        Err(e) => return Err(e),
    };
    let mut stream = std::pin::pin!(stream);
    Ok(matches!(stream.next().await, Some(Ok(WatchEvent::Error(s))) if s.code == 410))
}

#[tokio::test]
async fn watches_relist_after_410_gone_and_keep_reconciling() -> TestResult {
    let (ns, key) = namespace_with_key("watch-410").await?;
    let mut config = config(ns.name(), &[ns.name()]);
    // Every watch resumes from its last resourceVersion every 2 s.
    config.watch_timeout = Some(2);
    let running = start(ns.client(), config).await;
    let ssa = ns.api::<SealedSecret>();
    let pp = PostParams::default();
    ssa.create(&pp, &sealed(ns.name(), "before", Scope::Strict, key.public_key(), &[("v", b"1")], None))
        .await?;
    let before = wait_synced(&ssa, "before", "True").await;
    let seen_at = before.resource_version().unwrap_or_default();

    // Move etcd on without touching anything the controller watches until compaction removed `seen_at`.
    let configmaps = ns.api::<ConfigMap>();
    let churn = ConfigMap {
        metadata: ObjectMeta { name: Some("churn".into()), ..ObjectMeta::default() },
        ..Default::default()
    };
    configmaps.create(&pp, &churn).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut writes = 0u32;
    while !watch_is_gone(&ssa, &seen_at).await? {
        writes += 1;
        let patch = serde_json::json!({"data": {"n": writes.to_string()}});
        configmaps.patch("churn", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        assert!(
            tokio::time::Instant::now() < deadline,
            "resourceVersion {seen_at} still watchable after 90 s"
        );
    }
    let gone = poll("the controller's watch to get 410 Gone", TIMEOUT, || async {
        Ok(running.handles.metrics.encode().contains("watch_errors_total{code=\"410\"}").then_some(()))
    })
    .await;
    if gone.is_err() {
        let encoded = running.handles.metrics.encode();
        let lines: Vec<&str> = encoded.lines().filter(|l| l.contains("watch_errors")).collect();
        panic!("no 410 seen by the controller's watches; watch_errors: {lines:?}");
    }

    // After the relist the controller goes on: a new SealedSecret is unsealed.
    ssa.create(&pp, &sealed(ns.name(), "after", Scope::Strict, key.public_key(), &[("v", b"2")], None))
        .await?;
    wait_synced(&ssa, "after", "True").await;
    assert_eq!(data(&ns.api::<Secret>(), "after").await, map(&[("v", b"2")]));
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// A controller process for [`leader_failover_between_two_controller_processes`]: this same test binary, run with
/// `--ignored --exact controller_child_process` and the settings in the environment. Does nothing otherwise.
#[tokio::test]
#[ignore = "run by leader_failover_between_two_controller_processes as a separate process"]
async fn controller_child_process() {
    let (Ok(namespace), Ok(identity), Ok(kubeconfig)) = (
        std::env::var("ARCSEAL_CHILD_NAMESPACE"),
        std::env::var("ARCSEAL_CHILD_IDENTITY"),
        std::env::var("ARCSEAL_CHILD_KUBECONFIG"),
    ) else {
        return;
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let kube_config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    let client = kube::Client::try_from(kube_config).unwrap();
    let mut config = config(&namespace, &[&namespace]);
    config.instance = identity.clone();
    config.listen_addr = std::env::var("ARCSEAL_CHILD_LISTEN").ok().and_then(|a| a.parse().ok());
    config.leader_election = Some(fast_election(&namespace, &identity));
    let (_handles, task) = unseal::start(client, config, std::future::pending()).await.unwrap();
    let _ = task.await;
}

/// Kills the child when dropped, so a failing test leaves no process behind.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_controller(ns: &TestNamespace, identity: &str, listen: &str) -> ChildGuard {
    let child = Command::new(std::env::current_exe().unwrap())
        .env("ARCSEAL_CHILD_LISTEN", listen)
        .args(["--exact", "controller_child_process", "--ignored", "--nocapture", "--test-threads=1"])
        .env("ARCSEAL_CHILD_NAMESPACE", ns.name())
        .env("ARCSEAL_CHILD_IDENTITY", identity)
        .env("ARCSEAL_CHILD_KUBECONFIG", ns.cluster().kubeconfig())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    ChildGuard(child)
}

#[tokio::test]
async fn leader_failover_between_two_controller_processes() -> TestResult {
    let (ns, key) = namespace_with_key("failover").await?;
    let free =
        || std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().to_string();
    let (addr_a, addr_b) = (free(), free());
    let mut children = vec![
        ("a", Some(spawn_controller(&ns, "a", &addr_a))),
        ("b", Some(spawn_controller(&ns, "b", &addr_b))),
    ];
    let leases = ns.api::<Lease>();
    let holder = || async {
        leases.get_opt("arcseal-unseal").await.ok().flatten().and_then(|l| l.spec?.holder_identity)
    };
    let leader = poll("a leader", TIMEOUT, || async { Ok(holder().await) }).await?;
    // Every replica serves the HTTP API with the current keys, leader or not.
    for addr in [&addr_a, &addr_b] {
        let served = poll(&format!("cert.pem on {addr}"), TIMEOUT, || async {
            let Ok(response) = reqwest::get(format!("http://{addr}/v1/cert.pem")).await else {
                return Ok(None);
            };
            let Ok(bytes) = response.bytes().await else { return Ok(None) };
            Ok(Certificate::from_pem(&bytes).ok())
        })
        .await?;
        assert_eq!(served.fingerprint(), key.fingerprint(), "{addr}");
    }
    let ssa = ns.api::<SealedSecret>();
    let pp = PostParams::default();
    ssa.create(&pp, &sealed(ns.name(), "first", Scope::Strict, key.public_key(), &[("v", b"1")], None))
        .await?;
    wait_synced(&ssa, "first", "True").await;
    let sources = event_sources(&ns.client(), ns.name(), "first").await;
    assert!(!sources.is_empty() && sources.iter().all(|(_, instance)| *instance == leader), "{sources:?}");

    // SIGKILL the leader: no release, the survivor waits for the Lease to expire.
    let (_, slot) = children.iter_mut().find(|(id, _)| *id == leader).unwrap();
    drop(slot.take());
    let survivor = poll("the other replica to take over", TIMEOUT, || async {
        Ok(holder().await.filter(|h| *h != leader))
    })
    .await?;
    ssa.create(&pp, &sealed(ns.name(), "second", Scope::Strict, key.public_key(), &[("v", b"2")], None))
        .await?;
    wait_synced(&ssa, "second", "True").await;
    assert_eq!(data(&ns.api::<Secret>(), "second").await, map(&[("v", b"2")]));
    let sources = event_sources(&ns.client(), ns.name(), "second").await;
    assert!(!sources.is_empty() && sources.iter().all(|(_, instance)| *instance == survivor), "{sources:?}");
    let lease = leases.get("arcseal-unseal").await?;
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    drop(children);
    ns.finish().await?;
    Ok(())
}

/// A leader that stops gives the Lease up and never takes it back while it stops: the replica that should take over
/// finds it free at once. (Before, the election task outlived the release and could win the Lease again, so a
/// stopping pod held it for a whole lease duration.)
#[tokio::test]
async fn a_stopping_leader_releases_the_lease_and_does_not_take_it_back() -> TestResult {
    let (ns, _key) = namespace_with_key("release").await?;
    let election = fast_election(ns.name(), "a");
    let retry_period = election.retry_period;
    let mut config = config(ns.name(), &[ns.name()]);
    config.leader_election = Some(election);
    let running = start(ns.client(), config).await;
    let leases = ns.api::<Lease>();
    let holder = || async {
        leases.get_opt("arcseal-unseal").await.ok().flatten().and_then(|l| l.spec?.holder_identity)
    };
    poll("the replica leads", TIMEOUT, || async { Ok(holder().await.filter(|h| h == "a")) }).await?;
    running.stop().await;
    assert_eq!(holder().await, None, "the Lease is released when the replica stops");
    // Ten election rounds later nothing has taken it back.
    tokio::time::sleep(retry_period * 10).await;
    let lease = leases.get("arcseal-unseal").await?;
    let spec = lease.spec.unwrap_or_default();
    assert_eq!(spec.holder_identity, None, "a stopped replica took the Lease back");
    assert_eq!(spec.lease_duration_seconds, Some(1), "a released Lease expires at once");
    ns.finish().await?;
    Ok(())
}
