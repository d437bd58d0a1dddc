//! The controller's keys, kept exactly as sealed-secrets keeps them: `kubernetes.io/tls` Secrets in the
//! controller's namespace, `tls.key` = PKCS#1 PEM, `tls.crt` = self-signed certificate, label
//! `sealedsecrets.bitnami.com/sealed-secrets-key: active`, `generateName: sealed-secrets-key`. The legacy Secret named
//! exactly `sealed-secrets-key` is loaded too. Any label value other than `active` retires a key.
//!
//! A key whose Secret is deleted stays loaded (it still decrypts; it no longer seals), with a warning event on the
//! Secret and the `orphaned_keys` gauge, until the process restarts: sealed-secrets keeps loaded keys the same way,
//! and dropping them at once would stop every SealedSecret sealed with that key. Retiring a key on purpose is done
//! by relabelling its Secret (any value other than `active`), which takes effect at once.
//!
//! [`KeyStore`] holds the current [`KeySet`] behind an `Arc` swap: readers (reconcile workers, the HTTP API) take a
//! snapshot without locking for the length of a decryption. [`watch`] keeps it in step with the key Secrets, so keys
//! added or retired by hand take effect without a restart.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use arcseal_crypto::{
    Certificate, CertificateParams, Fingerprint, KeyRing, Plaintext, PrivateKey, SealedValue,
};
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::watcher;

use super::metrics::Metrics;
use kube::{Client, ResourceExt};
use tokio::sync::watch as tokio_watch;

/// Label on key Secrets.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// Value of [`KEY_LABEL`] on keys in use; anything else retires the key.
pub const KEY_LABEL_ACTIVE: &str = "active";
/// The key Secret name of sealed-secrets before labels, and the `generateName` prefix of new keys.
pub const LEGACY_KEY_NAME: &str = "sealed-secrets-key";

/// One usable key.
#[derive(Clone)]
pub struct LoadedKey {
    /// The private key.
    pub key: PrivateKey,
    /// Its certificate (`tls.crt`); `None` when the Secret has none (the key still decrypts).
    pub cert: Option<Certificate>,
    /// The Secret it came from.
    pub secret_name: String,
}

impl LoadedKey {
    /// NotBefore of the certificate: what "newest" means for sealed-secrets.
    pub fn not_before(&self) -> SystemTime {
        self.cert.as_ref().map_or(SystemTime::UNIX_EPOCH, Certificate::not_before)
    }
}

/// The keys at one moment: newest first.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<LoadedKey>,
    ring: KeyRing,
    orphaned: std::collections::HashSet<Fingerprint>,
}

impl KeySet {
    /// A set of `keys`, ordered newest first (duplicates by fingerprint kept once).
    pub fn new(mut keys: Vec<LoadedKey>) -> Self {
        keys.sort_by(|a, b| b.not_before().cmp(&a.not_before()).then(a.secret_name.cmp(&b.secret_name)));
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(k.key.fingerprint()));
        let ring = KeyRing::new(keys.iter().map(|k| k.key.clone()).collect());
        KeySet { keys, ring, orphaned: std::collections::HashSet::new() }
    }

    /// `keys` plus `orphans`: keys whose Secret was deleted, kept for decryption only.
    pub fn with_orphans(keys: Vec<LoadedKey>, orphans: Vec<LoadedKey>) -> Self {
        let orphaned = orphans
            .iter()
            .map(|k| k.key.fingerprint())
            .filter(|f| !keys.iter().any(|k| k.key.fingerprint() == *f))
            .collect();
        KeySet { orphaned, ..KeySet::new(keys.into_iter().chain(orphans).collect()) }
    }

    /// Whether the key's Secret is gone (it decrypts, it does not seal).
    pub fn is_orphaned(&self, fingerprint: &Fingerprint) -> bool {
        self.orphaned.contains(fingerprint)
    }

    /// The keys, newest first.
    pub fn keys(&self) -> &[LoadedKey] {
        &self.keys
    }

    /// The ring of private keys.
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// The sealing key: the newest with a certificate whose Secret still exists.
    pub fn newest(&self) -> Option<&LoadedKey> {
        self.keys.iter().find(|k| k.cert.is_some() && !self.orphaned.contains(&k.key.fingerprint()))
    }

    /// Opens a base64 value: the hinted key first, then every other key whose modulus fits. Each attempt is one
    /// RSA private-key operation and is counted in `rsa_ops`. Every failure is the one opaque error.
    pub fn open(
        &self,
        label: &[u8],
        value: &str,
        hint: Option<&Fingerprint>,
        rsa_ops: &AtomicU64,
    ) -> Result<(Plaintext, Fingerprint), arcseal_crypto::DecryptError> {
        let raw = arcseal_crypto::decode_base64(value).map_err(|_| arcseal_crypto::DecryptError)?;
        let rsa_len =
            SealedValue::parse(&raw).map_err(|_| arcseal_crypto::DecryptError)?.rsa_ciphertext.len();
        let hinted = hint.and_then(|h| self.ring.get(h));
        let others = self.ring.keys().iter().filter(|k| Some(k.fingerprint()) != hint.copied());
        for key in hinted.into_iter().chain(others) {
            if key.public_key().modulus_len() != rsa_len {
                continue;
            }
            rsa_ops.fetch_add(1, Ordering::Relaxed);
            if let Ok(plaintext) = arcseal_crypto::open(key, label, &raw) {
                return Ok((plaintext, key.fingerprint()));
            }
        }
        Err(arcseal_crypto::DecryptError)
    }
}

/// Shared, swappable key set plus a change counter that tells reconcilers their cached results may be stale.
#[derive(Default)]
pub struct KeyStore {
    current: RwLock<Arc<KeySet>>,
    epoch: AtomicU64,
    /// Why the keys are served from the cached Secrets rather than the Key Vault they are kept in, by what failed
    /// (`sync`, `renewal`); empty: no vault, or the last attempt of each succeeded.
    degraded: RwLock<BTreeMap<&'static str, String>>,
}

impl KeyStore {
    /// The current keys.
    pub fn snapshot(&self) -> Arc<KeySet> {
        self.current.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Replaces the keys; returns whether the set of fingerprints changed.
    pub fn replace(&self, set: KeySet) -> bool {
        let prints = |s: &KeySet| {
            s.keys
                .iter()
                .map(|k| (k.key.fingerprint(), s.is_orphaned(&k.key.fingerprint())))
                .collect::<Vec<_>>()
        };
        let Ok(mut guard) = self.current.write() else { return false };
        let changed = prints(&guard) != prints(&set);
        *guard = Arc::new(set);
        if changed {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        changed
    }

    /// Records whether the last `what` (`sync`, `renewal`) with the Key Vault holding the keys failed, and why (no
    /// key material). Each kind is cleared only by its own next success.
    pub fn set_degraded(&self, what: &'static str, reason: Option<String>) {
        if let Ok(mut d) = self.degraded.write() {
            match reason {
                Some(r) => d.insert(what, r),
                None => d.remove(what),
            };
        }
    }

    /// Why the keys are served from cache only, if they are (see [`Self::set_degraded`]).
    pub fn degraded(&self) -> Option<String> {
        let d = self.degraded.read().ok()?;
        (!d.is_empty())
            .then(|| d.iter().map(|(what, why)| format!("{what}: {why}")).collect::<Vec<_>>().join("; "))
    }

    /// Increases every time the set of keys changes.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// Reads a key Secret. `Ok(None)`: not a key Secret, or a retired one. `Err`: a key Secret that cannot be read
/// (the message names the Secret and the field; never key material).
pub fn parse_key_secret(secret: &Secret) -> Result<Option<LoadedKey>, String> {
    let name = secret.name_any();
    let label = secret.labels().get(KEY_LABEL).map(String::as_str);
    let is_key = match label {
        Some(v) => v == KEY_LABEL_ACTIVE,
        None => name == LEGACY_KEY_NAME,
    };
    if !is_key || secret.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    let data = secret.data.as_ref();
    let key_pem = data
        .and_then(|d| d.get("tls.key"))
        .ok_or_else(|| format!("key Secret {name:?} has no data.tls.key"))?;
    let key = PrivateKey::from_pem(&key_pem.0).map_err(|e| format!("key Secret {name:?}, tls.key: {e}"))?;
    let cert = match data.and_then(|d| d.get("tls.crt")) {
        None => None,
        Some(pem) => {
            let cert =
                Certificate::from_pem(&pem.0).map_err(|e| format!("key Secret {name:?}, tls.crt: {e}"))?;
            if cert.fingerprint() != key.fingerprint() {
                return Err(format!("key Secret {name:?}: tls.crt is not the certificate of tls.key"));
            }
            Some(cert)
        }
    };
    Ok(Some(LoadedKey { key, cert, secret_name: name }))
}

/// The Secret sealed-secrets would store for a new key (the API server completes the name).
pub fn key_secret(key: &PrivateKey, cert: &Certificate, namespace: &str) -> Result<Secret, String> {
    let pem = key.to_pkcs1_pem().map_err(|e| format!("encoding the new key: {e}"))?;
    Ok(Secret {
        metadata: ObjectMeta {
            generate_name: Some(LEGACY_KEY_NAME.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(KEY_LABEL.to_owned(), KEY_LABEL_ACTIVE.to_owned())])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(cert.to_pem().into_bytes())),
            ("tls.key".to_owned(), ByteString(pem.as_bytes().to_vec())),
        ])),
        ..Secret::default()
    })
}

/// How keys are made and renewed (sealed-secrets' flags of the same names).
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    /// `--key-prefix` is fixed to sealed-secrets' `sealed-secrets-key`; this is the namespace.
    pub namespace: String,
    /// `--key-size`.
    pub bits: usize,
    /// `--key-ttl`: certificate validity.
    pub ttl: Duration,
    /// `--key-renew-period`; zero disables renewal.
    pub renew_period: Duration,
    /// `--key-cutoff-time`: a key older than this instant is replaced.
    pub cutoff: Option<SystemTime>,
    /// `--my-cn`.
    pub common_name: String,
}

/// When the next key is due, given the newest key's NotBefore. `None`: no renewal planned.
/// (The rule is [`arcseal_crypto::next_key_due`], which `arcseal status` reports too.)
pub fn next_renewal(policy: &KeyPolicy, newest: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    arcseal_crypto::next_key_due(policy.renew_period, policy.cutoff, newest, now)
}

/// Generates a key and its certificate as the policy says (CPU-heavy: RSA-4096 takes seconds; runs off the runtime).
pub async fn generate(policy: &KeyPolicy) -> Result<(PrivateKey, Certificate), String> {
    let (bits, params) = (
        policy.bits,
        CertificateParams {
            common_name: policy.common_name.clone(),
            not_before: SystemTime::now(),
            validity: policy.ttl,
        },
    );
    tokio::task::spawn_blocking(move || {
        let key = PrivateKey::generate(bits).map_err(|e| format!("generating an RSA-{bits} key: {e}"))?;
        let cert = Certificate::self_signed(&key, &params).map_err(|e| format!("self-signing: {e}"))?;
        Ok::<_, String>((key, cert))
    })
    .await
    .map_err(|e| format!("key generation task: {e}"))?
}

/// Generates a key and its certificate and stores it as a key Secret.
pub async fn create_key(client: &Client, policy: &KeyPolicy) -> Result<String, String> {
    let (key, cert) = generate(policy).await?;
    let secret = key_secret(&key, &cert, &policy.namespace)?;
    let created = Api::<Secret>::namespaced(client.clone(), &policy.namespace)
        .create(&PostParams::default(), &secret)
        .await
        .map_err(|e| format!("storing the new key Secret in {}: {e}", policy.namespace))?;
    let name = created.name_any();
    tracing::info!(secret = %name, fingerprint = %key.fingerprint(), "new sealing key");
    Ok(name)
}

/// Watches the key Secrets of `namespace` and keeps `store` current. Sends `true` on `ready` once both initial
/// lists are in, and bumps it on every change of the key set. Runs until the watch streams end (never, normally).
pub async fn watch(
    client: Client,
    namespace: String,
    watch_timeout: Option<u32>,
    store: Arc<KeyStore>,
    ready: tokio_watch::Sender<bool>,
    reporter: Reporter,
    metrics: Arc<Metrics>,
) {
    let recorder = Recorder::new(client.clone(), reporter);
    let api = Api::<Secret>::namespaced(client, &namespace);
    let wc = || match watch_timeout {
        Some(t) => watcher::Config::default().timeout(t),
        None => watcher::Config::default(),
    };
    let labelled = watcher(api.clone(), wc().labels(KEY_LABEL)).map(|e| (0usize, e));
    let legacy = watcher(api, wc().fields(&format!("metadata.name={LEGACY_KEY_NAME}"))).map(|e| (1, e));
    let mut events = futures::stream::select(labelled.boxed(), legacy.boxed());
    // Per stream: the Secrets by name, and whether its initial list is complete.
    let mut seen: [BTreeMap<String, Secret>; 2] = [BTreeMap::new(), BTreeMap::new()];
    let mut init: [Option<BTreeMap<String, Secret>>; 2] = [None, None];
    let mut listed = [false, false];
    // Keys loaded from a Secret, by Secret name, at the last change; and keys whose Secret has gone since.
    let mut loaded: BTreeMap<String, LoadedKey> = BTreeMap::new();
    let mut orphans: BTreeMap<String, LoadedKey> = BTreeMap::new();
    // What each Secret parsed to, by name, at its resourceVersion: an event re-parses only the Secrets it changed,
    // not every key (a cold start writing 50 key Secrets would otherwise parse 50 x 50 keys).
    let mut parsed: BTreeMap<String, (String, Option<LoadedKey>)> = BTreeMap::new();
    while let Some((i, event)) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => init[i] = Some(BTreeMap::new()),
            Ok(watcher::Event::InitApply(s)) => {
                init[i].get_or_insert_with(BTreeMap::new).insert(s.name_any(), s);
            }
            Ok(watcher::Event::InitDone) => {
                seen[i] = init[i].take().unwrap_or_default();
                listed[i] = true;
            }
            Ok(watcher::Event::Apply(s)) => {
                seen[i].insert(s.name_any(), s);
            }
            Ok(watcher::Event::Delete(s)) => {
                seen[i].remove(&s.name_any());
            }
            Err(e) => {
                // The watcher retries by itself (with a relist after 410 Gone); only note it.
                tracing::warn!(error = %e, namespace = %namespace, "watching key Secrets");
                continue;
            }
        }
        if !(listed[0] && listed[1]) {
            continue;
        }
        let mut keys = Vec::new();
        let mut current = BTreeMap::new();
        for secret in
            seen[0].values().chain(seen[1].values().filter(|s| !seen[0].contains_key(&s.name_any())))
        {
            let name = secret.name_any();
            let version = secret.resource_version().unwrap_or_default();
            let key = match parsed.remove(&name) {
                Some((at, key)) if !version.is_empty() && at == version => key,
                _ => match parse_key_secret(secret) {
                    Ok(key) => key,
                    Err(e) => {
                        tracing::error!(error = %e, "ignoring an unreadable key Secret");
                        continue;
                    }
                },
            };
            keys.extend(key.clone());
            current.insert(name, (version, key));
        }
        parsed = current;
        let present: std::collections::HashSet<String> = seen[0]
            .values()
            .chain(seen[1].values())
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .map(ResourceExt::name_any)
            .collect();
        for (name, key) in &loaded {
            let reloaded = keys.iter().any(|k| k.key.fingerprint() == key.key.fingerprint());
            if !present.contains(name) && !reloaded && !orphans.contains_key(name) {
                tracing::warn!(secret = %name, fingerprint = %key.key.fingerprint(),
                    "a key Secret was deleted; its key stays loaded until restart (it decrypts, it no longer seals)");
                let secret_ref = k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Secret".into()),
                    name: Some(name.clone()),
                    namespace: Some(namespace.clone()),
                    ..Default::default()
                };
                let event = Event {
                    type_: EventType::Warning,
                    reason: "KeySecretDeleted".into(),
                    note: Some(format!(
                        "key Secret {name} was deleted; its key {} stays loaded until the controller restarts: restore the Secret from a backup to keep it",
                        key.key.fingerprint()
                    )),
                    action: "Keep".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&event, &secret_ref).await {
                    tracing::warn!(error = %e, "publishing the key-deleted event");
                }
                orphans.insert(name.clone(), key.clone());
            }
        }
        // A key that is back (the Secret restored, under any name) is no orphan any more.
        orphans.retain(|_, o| !keys.iter().any(|k| k.key.fingerprint() == o.key.fingerprint()));
        loaded = keys.iter().map(|k| (k.secret_name.clone(), k.clone())).collect();
        metrics.orphaned_keys.set(i64::try_from(orphans.len()).unwrap_or(i64::MAX));
        let count = keys.len();
        let changed = store.replace(KeySet::with_orphans(keys, orphans.values().cloned().collect()));
        if changed {
            tracing::info!(keys = count, orphaned = orphans.len(), "key set changed");
        }
        if changed || !*ready.borrow() {
            ready.send_replace(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_failure_is_cleared_only_by_its_own_success() {
        let store = KeyStore::default();
        assert_eq!(store.degraded(), None);
        store.set_degraded("renewal", Some("KeyVaultForbidden: secrets set".into()));
        store.set_degraded("sync", None);
        assert_eq!(store.degraded().as_deref(), Some("renewal: KeyVaultForbidden: secrets set"));
        store.set_degraded("sync", Some("KeyVaultUnreachable".into()));
        assert_eq!(
            store.degraded().as_deref(),
            Some("renewal: KeyVaultForbidden: secrets set; sync: KeyVaultUnreachable")
        );
        store.set_degraded("renewal", None);
        store.set_degraded("sync", None);
        assert_eq!(store.degraded(), None);
    }

    #[test]
    fn key_secrets_are_read_like_sealed_secrets_reads_them() {
        let key = PrivateKey::generate(2048).unwrap();
        let params = CertificateParams {
            common_name: String::new(),
            not_before: SystemTime::now(),
            validity: Duration::from_secs(3600),
        };
        let cert = Certificate::self_signed(&key, &params).unwrap();
        let mut secret = key_secret(&key, &cert, "kube-system").unwrap();
        secret.metadata.name = Some("sealed-secrets-keyabcde".into());
        let loaded = parse_key_secret(&secret).unwrap().unwrap();
        assert_eq!(loaded.key.fingerprint(), key.fingerprint());

        secret.labels_mut().insert(KEY_LABEL.into(), "compromised".into());
        assert!(parse_key_secret(&secret).unwrap().is_none(), "retired");
        secret.labels_mut().clear();
        assert!(parse_key_secret(&secret).unwrap().is_none(), "not a key Secret");
        secret.metadata.name = Some(LEGACY_KEY_NAME.into());
        assert!(parse_key_secret(&secret).unwrap().is_some(), "legacy name");

        secret.data.as_mut().unwrap().insert("tls.key".into(), ByteString(b"junk".to_vec()));
        let e = parse_key_secret(&secret).err().unwrap();
        assert!(e.contains("sealed-secrets-key") && e.contains("tls.key"), "{e}");
    }

    #[test]
    fn open_tries_the_hint_first_and_counts_rsa_operations() {
        let keys: Vec<LoadedKey> = (0..3)
            .map(|i| LoadedKey {
                key: PrivateKey::generate(2048).unwrap(),
                cert: None,
                secret_name: format!("k{i}"),
            })
            .collect();
        let set = KeySet::new(keys.clone());
        let last = set.ring().keys()[2].clone();
        let value = arcseal_crypto::seal(last.public_key(), b"ns/n", b"v").unwrap();
        let ops = AtomicU64::new(0);
        let (_, by) = set.open(b"ns/n", &value, None, &ops).unwrap();
        assert_eq!((by, ops.load(Ordering::Relaxed)), (last.fingerprint(), 3));
        ops.store(0, Ordering::Relaxed);
        set.open(b"ns/n", &value, Some(&by), &ops).unwrap();
        assert_eq!(ops.load(Ordering::Relaxed), 1, "the hint costs one RSA operation");
        ops.store(0, Ordering::Relaxed);
        assert!(set.open(b"ns/other", &value, Some(&by), &ops).is_err());
        assert_eq!(ops.load(Ordering::Relaxed), 3);
    }
}
