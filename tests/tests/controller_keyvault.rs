//! Sealing keys kept in Azure Key Vault (`unseal --key-vault-url`): the in-process controller on a real
//! kube-apiserver, the Key Vault stand-in driven by the official SDK. Cold start from the vault, a rebuilt cluster
//! (a fresh namespace, no key Secrets) unsealing SealedSecrets sealed before on its first pass, renewal in the vault first, and the
//! failure rules: vault unreachable at start, a missing permission, throttling, a key disabled or deleted in the vault,
//! the vault refusing a renewal; and two replicas under leader election, of which only the leader calls the vault.

use std::sync::Arc;
use std::time::Duration;

use arcseal_controller::unseal::keys::{KEY_LABEL, KEY_LABEL_ACTIVE};
use arcseal_controller::unseal::vault::{
    KeyVaultConfig, RETIRED_DELETED, RETIRED_DISABLED, VAULT_SECRET_ANNOTATION,
};
use arcseal_controller::unseal::{self, SealedSecret};
use arcseal_crypto::{Certificate, PrivateKey, Scope};
use arcseal_keyvault::credential::Identity;
use arcseal_keyvault::sealing_keys::{self, CONTENT_TYPE, RetryPolicy, TAG_FINGERPRINT, TAG_KIND, VaultKeys};
use arcseal_tests::k8s::{self, TestNamespace, poll};
use arcseal_tests::keyvault::{Fault, FaultKind, KeyVaultStandIn, LoopbackTransport};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};

mod controller_common;
use controller_common::*;

const VAULT: &str = "kv1";
const APP: &str = "arcseal-controller";
const APP_SECRET: &str = "app-s3cret";

struct Vault {
    kv: KeyVaultStandIn,
}

impl Vault {
    async fn new() -> Self {
        let kv = KeyVaultStandIn::start().await;
        kv.add_app(APP, APP_SECRET);
        kv.create_vault(VAULT);
        Vault { kv }
    }

    fn keys(&self, prefix: &str) -> VaultKeys {
        KeyVaultStandIn::sealing_keys(VAULT, prefix, APP, APP_SECRET, self.kv.transport())
    }

    /// Stores a new key pair under `prefix`, as `arcseal keys import` or another cluster would have.
    async fn add_key(&self, prefix: &str) -> (PrivateKey, Certificate, String) {
        let (key, cert) = new_key();
        let name = self.keys(prefix).put_pair(&key, &cert).await.expect("store a key pair");
        (key, cert, name)
    }

    fn config(&self, prefix: &str) -> KeyVaultConfig {
        KeyVaultConfig { keys: Arc::new(self.keys(prefix)), sync_period: Duration::from_secs(1) }
    }
}

/// A namespace for one test, with the SealedSecret CRD in place.
async fn namespace(test: &str) -> TestNamespace {
    let ns = TestNamespace::new(test).await.unwrap();
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await.unwrap();
    ns
}

async fn start_with_vault(ns: &TestNamespace, kv: KeyVaultConfig, renew: Duration) -> Running {
    let mut config = config(ns.name(), &[ns.name()]);
    config.keys.renew_period = renew;
    config.key_vault = Some(kv);
    start(ns.client(), config).await
}

async fn key_secrets(ns: &TestNamespace) -> Vec<Secret> {
    ns.api::<Secret>().list(&ListParams::default().labels(KEY_LABEL)).await.unwrap().items
}

async fn readyz(running: &Running) -> (u16, String) {
    let r = reqwest::get(running.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn wait_readyz(running: &Running, what: &str, check: impl Fn(&str) -> bool) -> String {
    poll(what, TIMEOUT, || async {
        let (status, body) = readyz(running).await;
        Ok((status == 200 && check(&body)).then_some(body))
    })
    .await
    .unwrap()
}

async fn create_sealed(ns: &TestNamespace, name: &str, key: &PrivateKey) -> Api<SealedSecret> {
    let api: Api<SealedSecret> = ns.api();
    let ss = sealed(ns.name(), name, Scope::Strict, key.public_key(), &[("password", b"hunter2")], None);
    api.create(&PostParams::default(), &ss).await.unwrap();
    api
}

fn label(secret: &Secret) -> Option<&str> {
    secret.labels().get(KEY_LABEL).map(String::as_str)
}

/// A cluster built from nothing but the vault: the first pass unseals what was sealed with the vault's key, the key
/// is cached as a Secret annotated with its vault secret, and no new key is made. A second, "rebuilt" cluster (a
/// fresh namespace without key Secrets) does the same with the same vault.
#[tokio::test]
async fn cold_start_and_rebuilt_cluster_unseal_from_the_vault() -> TestResult {
    let vault = Vault::new().await;
    let (key, _, name) = vault.add_key("prod").await;
    for round in ["cold", "rebuilt"] {
        let ns = namespace(&format!("kv-{round}")).await;
        let sealed = create_sealed(&ns, "db", &key).await;
        assert!(key_secrets(&ns).await.is_empty(), "no key Secret before the controller starts");
        let running = start_with_vault(&ns, vault.config("prod"), Duration::from_secs(3600)).await;
        wait_synced(&sealed, "db", "True").await;
        let secret = ns.api::<Secret>().get("db").await?;
        assert_eq!(secret.data.unwrap()["password"].0, b"hunter2");
        // Unsealed on the first pass: the vault's key was loaded before any reconcile, so no failure was recorded.
        // (The event follows the status write: wait for it.)
        let reasons = poll("the Unsealed event", TIMEOUT, || async {
            let reasons: Vec<String> =
                events(&ns.client(), ns.name(), "db").await.into_iter().map(|(r, _)| r).collect();
            Ok(reasons.iter().any(|r| r == "Unsealed").then_some(reasons))
        })
        .await?;
        assert!(!reasons.iter().any(|r| r.starts_with("Err")), "{reasons:?}");
        let cached = key_secrets(&ns).await;
        assert_eq!(cached.len(), 1, "{round}: the vault's key cached, no new key made");
        assert_eq!(label(&cached[0]), Some(KEY_LABEL_ACTIVE));
        let url = &cached[0].annotations()[VAULT_SECRET_ANNOTATION];
        assert_eq!(url, &format!("https://{VAULT}.vault.azure.net/secrets/{name}"));
        assert_eq!(readyz(&running).await, (200, "ok".to_owned()));
        running.stop().await;
        ns.finish().await?;
    }
    assert_eq!(vault.kv.secret_names(VAULT), vec![name], "nothing written to the vault");
    Ok(())
}

/// The node's managed identity (`--key-vault-identity managed-identity`, through `sealing_keys::connect` as the
/// binary builds it): tokens come from IMDS for the user-assigned identity named, never from Entra ID's token
/// endpoint, and a vault only that identity may read serves its key on the first pass. An identity the node does
/// not have is an authentication failure that /readyz names; the cached key keeps serving and nothing is made.
#[tokio::test]
async fn a_managed_identity_reads_the_vault_through_imds() -> TestResult {
    let vault = Vault::new().await;
    let (key, _, _) = vault.add_key("mi").await;
    vault.kv.add_managed_identity(Some("kv-reader"));
    vault.kv.set_readers(VAULT, &["mi-kv-reader"]);
    let as_identity = |client_id: &str| {
        let identity = Identity::Managed { client_id: Some(client_id.to_owned()) };
        let retry = RetryPolicy {
            max_total_wait: Duration::from_secs(4),
            initial_backoff: Duration::from_millis(50),
            max_attempts: 5,
        };
        let keys = sealing_keys::connect(
            &format!("https://{VAULT}.vault.azure.net/"),
            "mi",
            "https://login.microsoftonline.com",
            &identity,
            vault.kv.transport(),
            retry,
        )
        .expect("sealing keys client");
        KeyVaultConfig { keys: Arc::new(keys), sync_period: Duration::from_secs(1) }
    };

    let before = vault.kv.counters();
    let ns = namespace("kv-mi").await;
    let sealed = create_sealed(&ns, "db", &key).await;
    let running = start_with_vault(&ns, as_identity("kv-reader"), Duration::from_secs(3600)).await;
    wait_synced(&sealed, "db", "True").await;
    assert_eq!(ns.api::<Secret>().get("db").await?.data.unwrap()["password"].0, b"hunter2");
    assert_eq!(readyz(&running).await, (200, "ok".to_owned()));
    let after = vault.kv.counters();
    assert!(after.imds > before.imds, "the token came from IMDS");
    assert_eq!(after.tokens, before.tokens, "Entra ID's token endpoint was not called");
    running.stop().await;
    ns.finish().await?;

    let ns = namespace("kv-mi-missing").await;
    let (cached, cert) = new_key();
    store_key(&ns.client(), ns.name(), &cached, &cert).await;
    let sealed = create_sealed(&ns, "db", &cached).await;
    let running = start_with_vault(&ns, as_identity("not-on-this-node"), Duration::from_secs(3600)).await;
    let body = wait_readyz(&running, "degraded readiness", |b| b.starts_with("degraded")).await;
    assert!(body.contains("KeyVaultAuthenticationFailed") && body.contains(VAULT), "{body}");
    wait_synced(&sealed, "db", "True").await;
    assert_eq!(key_secrets(&ns).await.len(), 1, "the cached key serves; no key made without the vault");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Renewal stores the new key in the vault first (content type, tags, name by fingerprint), then caches it. When
/// the vault refuses the write, the current key stays the sealing key, an event and /readyz say why (naming the
/// vault and the permission), and the renewal is retried once the permission is back.
#[tokio::test]
async fn renewal_goes_to_the_vault_first_and_survives_a_refusal() -> TestResult {
    let vault = Vault::new().await;
    let ns = namespace("kv-renew").await;
    let running = start_with_vault(&ns, vault.config("renew"), Duration::from_secs(5)).await;
    let first = poll("a first key in the vault", TIMEOUT, || async {
        Ok(vault.kv.secret_names(VAULT).into_iter().next())
    })
    .await?;
    let versions = vault.kv.secret_versions(VAULT, &first);
    assert_eq!(versions[0].2.as_deref(), Some(CONTENT_TYPE));
    let tags = vault.kv.secret_tags(VAULT, &first);
    assert_eq!(tags[TAG_KIND], "v1");
    let fingerprint = tags[TAG_FINGERPRINT].as_str().unwrap().to_owned();
    assert_eq!(sealing_keys::secret_name("renew", &fingerprint), first);
    wait_ready(&running).await;
    let served = running.handles.keys.snapshot().newest().unwrap().key.fingerprint().to_string();
    assert_eq!(served, fingerprint, "the sealing key is the vault's");

    vault.kv.deny(VAULT, "set");
    let body = wait_readyz(&running, "degraded readiness", |b| b.starts_with("degraded")).await;
    assert!(
        body.contains("KeyVaultForbidden")
            && body.contains(&format!("https://{VAULT}.vault.azure.net/"))
            && body.contains("secrets set"),
        "{body}"
    );
    let cached = key_secrets(&ns).await;
    assert_eq!(cached.len(), 1, "nothing cached that is not in the vault");
    let events = events(&ns.client(), ns.name(), &cached[0].name_any()).await;
    assert!(events.iter().any(|(reason, note)| reason == "KeyRenewalFailed" && note.contains("secrets set")));
    let current = running.handles.keys.snapshot().newest().unwrap().key.fingerprint().to_string();
    assert_eq!(current, fingerprint, "the current key stays in use");

    vault.kv.allow_all(VAULT);
    poll("a second key in the vault and the cluster", Duration::from_secs(90), || async {
        let in_vault = vault.kv.secret_names(VAULT).len();
        let cached = key_secrets(&ns).await.len();
        Ok((in_vault >= 2 && cached >= 2).then_some(()))
    })
    .await?;
    wait_readyz(&running, "readiness back to ok", |b| b == "ok").await;
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// The vault is unreachable at start: the cached key Secrets serve, /readyz is 200 but degraded, and SealedSecrets
/// still unseal. No key is made (it could not be stored in the vault).
#[tokio::test]
async fn unreachable_vault_at_start_serves_from_cache() -> TestResult {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let transport = Arc::new(LoopbackTransport::new(dead));
    let keys = KeyVaultStandIn::sealing_keys(VAULT, "prod", APP, APP_SECRET, transport);
    let ns = namespace("kv-down").await;
    let (key, cert) = new_key();
    store_key(&ns.client(), ns.name(), &key, &cert).await;
    let sealed = create_sealed(&ns, "db", &key).await;
    let kv = KeyVaultConfig { keys: Arc::new(keys), sync_period: Duration::from_secs(3600) };
    let running = start_with_vault(&ns, kv, Duration::from_secs(3600)).await;
    wait_synced(&sealed, "db", "True").await;
    let body = wait_readyz(&running, "degraded readiness", |b| b.starts_with("degraded")).await;
    assert!(body.contains("KeyVaultUnreachable") && body.contains("kv1.vault.azure.net"), "{body}");
    assert_eq!(key_secrets(&ns).await.len(), 1);
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// An identity without the `list` permission: the status names the vault and the permission; an event says it too.
#[tokio::test]
async fn missing_permission_is_named() -> TestResult {
    let vault = Vault::new().await;
    vault.add_key("prod").await;
    vault.kv.deny(VAULT, "list");
    let ns = namespace("kv-perm").await;
    let (key, cert) = new_key();
    let cached = store_key(&ns.client(), ns.name(), &key, &cert).await;
    let running = start_with_vault(&ns, vault.config("prod"), Duration::from_secs(3600)).await;
    let body = wait_readyz(&running, "degraded readiness", |b| b.starts_with("degraded")).await;
    assert!(body.contains("KeyVaultForbidden") && body.contains("secrets list permission"), "{body}");
    assert_eq!(running.handles.metrics.key_vault_degraded.get(), 1, "the key_vault_degraded gauge");
    let events = poll("a sync failure event", TIMEOUT, || async {
        let e = events(&ns.client(), ns.name(), &cached).await;
        Ok((!e.is_empty()).then_some(e))
    })
    .await?;
    assert!(
        events.iter().any(|(r, n)| r == "KeyVaultSyncFailed" && n.contains("kv1.vault.azure.net")),
        "{events:?}"
    );
    vault.kv.allow_all(VAULT);
    wait_readyz(&running, "readiness back to ok", |b| b == "ok").await;
    assert_eq!(key_secrets(&ns).await.len(), 2, "the vault's key cached once the permission is granted");
    assert_eq!(running.handles.metrics.key_vault_degraded.get(), 0);
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Throttling within the bounded wait is retried after Retry-After (the start is not degraded); beyond it, the
/// controller is degraded and keeps serving the cached key until the vault answers again.
#[tokio::test]
async fn throttling_is_waited_out() -> TestResult {
    let vault = Vault::new().await;
    let (key, _, _) = vault.add_key("prod").await;
    vault.kv.inject(Fault { kind: FaultKind::Throttle { retry_after: 1 }, count: 2, path_contains: None });
    let before = vault.kv.counters().keyvault;
    let ns = namespace("kv-429").await;
    let sealed = create_sealed(&ns, "db", &key).await;
    let running = start_with_vault(&ns, vault.config("prod"), Duration::from_secs(3600)).await;
    wait_synced(&sealed, "db", "True").await;
    assert_eq!(readyz(&running).await, (200, "ok".to_owned()));
    assert!(vault.kv.counters().keyvault - before >= 4, "two throttled requests were repeated");

    // Throttled beyond the bounded wait (Retry-After longer than it): degraded, the cached key keeps serving.
    vault.kv.inject(Fault {
        kind: FaultKind::Throttle { retry_after: 10 },
        count: 100_000,
        path_contains: None,
    });
    let body = wait_readyz(&running, "degraded by throttling", |b| b.contains("KeyVaultThrottled")).await;
    assert!(body.contains("gave up after"), "{body}");
    assert_eq!(running.handles.keys.snapshot().keys().len(), 1);
    vault.kv.clear_faults();
    wait_readyz(&running, "readiness back to ok", |b| b == "ok").await;
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// A key disabled in the vault, and one deleted from it, are retired in the cluster (relabelled, not deleted) with
/// an event; enabling the key again makes it active again.
#[tokio::test]
async fn disabled_and_deleted_keys_are_retired() -> TestResult {
    let vault = Vault::new().await;
    let (disabled_key, _, disabled) = vault.add_key("prod").await;
    let (deleted_key, _, deleted) = vault.add_key("prod").await;
    let ns = namespace("kv-retire").await;
    let running = start_with_vault(&ns, vault.config("prod"), Duration::from_secs(3600)).await;
    wait_ready(&running).await;
    poll("both keys loaded", TIMEOUT, || async {
        Ok((running.handles.keys.snapshot().keys().len() == 2).then_some(()))
    })
    .await?;
    vault.kv.set_secret_enabled(VAULT, &disabled, false);
    vault.kv.delete_secret(VAULT, &deleted);
    let by_fingerprint = |secrets: &[Secret], key: &PrivateKey| {
        let short: String = key.fingerprint().to_string().chars().take(16).collect();
        secrets.iter().find(|s| s.name_any().ends_with(&short)).and_then(|s| label(s).map(str::to_owned))
    };
    poll("both cache Secrets retired", TIMEOUT, || async {
        let secrets = key_secrets(&ns).await;
        let done = by_fingerprint(&secrets, &disabled_key).as_deref() == Some(RETIRED_DISABLED)
            && by_fingerprint(&secrets, &deleted_key).as_deref() == Some(RETIRED_DELETED);
        Ok(done.then_some(()))
    })
    .await?;
    // With both keys retired the leader has no key left and makes a new one (as sealed-secrets does), so the key
    // set is empty only for a moment: what must hold is that neither retired key is loaded any more.
    let retired = [disabled_key.fingerprint(), deleted_key.fingerprint()];
    poll("the retired keys unloaded", TIMEOUT, || async {
        let snapshot = running.handles.keys.snapshot();
        Ok((!snapshot.keys().iter().any(|k| retired.contains(&k.key.fingerprint()))).then_some(()))
    })
    .await?;
    poll("a new sealing key made in place of the retired ones", TIMEOUT, || async {
        let snapshot = running.handles.keys.snapshot();
        Ok(snapshot.newest().filter(|k| !retired.contains(&k.key.fingerprint())).map(|_| ()))
    })
    .await?;
    let secrets = key_secrets(&ns).await;
    for key in [&disabled_key, &deleted_key] {
        let short: String = key.fingerprint().to_string().chars().take(16).collect();
        let secret = secrets.iter().find(|s| s.name_any().ends_with(&short)).expect("retired, never deleted");
        let events = events(&ns.client(), ns.name(), &secret.name_any()).await;
        assert!(
            events.iter().any(|(r, _)| r == "KeyVaultKeyDisabled" || r == "KeyVaultKeyDeleted"),
            "{events:?}"
        );
    }
    vault.kv.set_secret_enabled(VAULT, &disabled, true);
    poll("the re-enabled key active again", TIMEOUT, || async {
        let secrets = key_secrets(&ns).await;
        Ok((by_fingerprint(&secrets, &disabled_key).as_deref() == Some(KEY_LABEL_ACTIVE)).then_some(()))
    })
    .await?;
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Two clusters share a vault with one prefix each, one prefix starting like the other: each loads only its own keys.
#[tokio::test]
async fn clusters_sharing_a_vault_see_only_their_prefix() -> TestResult {
    let vault = Vault::new().await;
    let (blue, _, _) = vault.add_key("blue").await;
    let (blue_eu, _, _) = vault.add_key("blue-eu").await;
    for (prefix, mine, other) in [("blue", &blue, &blue_eu), ("blue-eu", &blue_eu, &blue)] {
        let ns = namespace(&format!("kv-{prefix}")).await;
        let sealed = create_sealed(&ns, "db", mine).await;
        let running = start_with_vault(&ns, vault.config(prefix), Duration::from_secs(3600)).await;
        // Synced after the first pass, which follows the whole vault sync: every cache write is done by now.
        wait_synced(&sealed, "db", "True").await;
        let keys = running.handles.keys.snapshot();
        let prints: Vec<_> = keys.keys().iter().map(|k| k.key.fingerprint()).collect();
        assert_eq!(prints, vec![mine.fingerprint()], "{prefix} loads its own key only");
        assert!(!prints.contains(&other.fingerprint()));
        assert_eq!(key_secrets(&ns).await.len(), 1);
        running.stop().await;
        ns.finish().await?;
    }
    Ok(())
}

/// Two replicas with leader election: only the leader talks to the vault. The other serves the vault's keys from the
/// cache Secrets the leader writes (a key added to the vault reaches it that way), and takes over the vault sync
/// when the leader goes.
#[tokio::test]
async fn a_replica_that_does_not_lead_serves_the_vaults_keys_from_the_cache_and_takes_over() -> TestResult {
    let vault = Vault::new().await;
    let (first, _, _) = vault.add_key("ha").await;
    let ns = namespace("kv-ha").await;
    // Tokens so far (the test's own write); each replica's credential gets one when it first calls the vault.
    let tokens = vault.kv.counters().tokens;
    let replica = |identity: &str| {
        let mut config = config(ns.name(), &[ns.name()]);
        config.keys.renew_period = Duration::from_secs(3600);
        config.key_vault = Some(vault.config("ha"));
        config.instance = identity.to_owned();
        config.leader_election = Some(fast_election(ns.name(), identity));
        config
    };
    let mut replicas =
        vec![("a", start(ns.client(), replica("a")).await), ("b", start(ns.client(), replica("b")).await)];
    let leader = poll("one leader", TIMEOUT, || async {
        let leaders = leading(&replicas);
        Ok((leaders.len() == 1).then(|| leaders[0]))
    })
    .await?;
    all_load(&replicas, &[&first]).await;
    // Only the leader authenticated to the vault.
    assert_eq!(vault.kv.counters().tokens, tokens + 1, "the replica that does not lead called the vault");
    for (id, running) in &replicas {
        assert_eq!(readyz(running).await, (200, "ok".to_owned()), "replica {id}");
    }

    // A key imported into the vault (by `arcseal keys import` or another cluster) reaches both replicas.
    let (second, _, _) = vault.add_key("ha").await;
    all_load(&replicas, &[&first, &second]).await;

    // The leader goes (released on stop); the other replica leads, syncs from the vault and unseals.
    let tokens = vault.kv.counters().tokens;
    let position = replicas.iter().position(|(id, _)| *id == leader).expect("the leader is a replica");
    let (_, stopped) = replicas.remove(position);
    stopped.stop().await;
    let survivor =
        poll("the other replica leads", TIMEOUT, || async { Ok(leading(&replicas).first().copied()) })
            .await?;
    assert_ne!(survivor, leader);
    let (third, _, _) = vault.add_key("ha").await;
    all_load(&replicas, &[&first, &second, &third]).await;
    // The test's write and the new leader's first call.
    assert_eq!(vault.kv.counters().tokens, tokens + 2, "the new leader authenticates to the vault itself");
    let sealed = create_sealed(&ns, "db", &third).await;
    wait_synced(&sealed, "db", "True").await;
    let sources = event_sources(&ns.client(), ns.name(), "db").await;
    assert!(!sources.is_empty() && sources.iter().all(|(_, instance)| instance == survivor), "{sources:?}");
    assert_eq!(key_secrets(&ns).await.len(), 3, "one cache Secret per vault key, no key made");
    for (_, running) in replicas {
        running.stop().await;
    }
    ns.finish().await?;
    Ok(())
}

/// The replicas that lead now.
fn leading(replicas: &[(&'static str, Running)]) -> Vec<&'static str> {
    replicas.iter().filter(|(_, r)| *r.handles.leading.borrow()).map(|(id, _)| *id).collect()
}

/// Waits until every replica has loaded exactly `keys`.
async fn all_load(replicas: &[(&'static str, Running)], keys: &[&PrivateKey]) {
    let mut want: Vec<String> = keys.iter().map(|k| k.fingerprint().to_string()).collect();
    want.sort();
    poll("every replica loads the vault's keys", TIMEOUT, || async {
        Ok(replicas
            .iter()
            .all(|(_, r)| {
                let mut have: Vec<String> = r
                    .handles
                    .keys
                    .snapshot()
                    .keys()
                    .iter()
                    .map(|k| k.key.fingerprint().to_string())
                    .collect();
                have.sort();
                have == want
            })
            .then_some(()))
    })
    .await
    .unwrap();
}
