//! Sealing keys kept in Azure Key Vault (`--key-vault-url`): the vault is the source of truth, the key Secrets in
//! the controller's namespace are a cache rewritten from it. Storage form: [`arcseal_keyvault::sealing_keys`].
//!
//! The leader syncs at the start of its term (before its first reconcile pass, so a rebuilt cluster unseals
//! everything on that pass) and every `--key-vault-sync-period`:
//! - every enabled key pair under the prefix gets a cache Secret (`sealed-secrets-key-kv-<16 hex>`, labelled active,
//!   annotated [`VAULT_SECRET_ANNOTATION`] with the vault secret's URL); a cache Secret that was deleted, or whose data
//!   no longer reads, is written again from the vault;
//! - a key disabled in the vault has its cache Secret relabelled [`RETIRED_DISABLED`], one deleted from the vault
//!   [`RETIRED_DELETED`] (retired at once: it neither seals nor unseals; the Secret is never deleted), with a Warning
//!   event on the Secret. Enabling or recovering it in the vault makes it active again at the next sync. A key retired
//!   by hand (any other label value) is left alone.
//!
//! Renewal ([`create_key`]): the new key pair is stored in the vault first, then cached; if the vault write fails the
//! current key stays in use, a Warning event says why, and the renewal is retried.
//!
//! Failure rules: vault unreachable, throttling beyond the bounded wait, or a missing permission leave the keys
//! already cached in service; `/readyz` answers `degraded: <code>: Key Vault <url> (<permission>) ...` naming the
//! vault and the permission, a Warning event `KeyVaultSyncFailed` is recorded, and the next sync retries.
//! No text derived from a key ever reaches a log, event or status: only names, fingerprints and what Key Vault said.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arcseal_crypto::{Certificate, Fingerprint, PrivateKey};
use arcseal_keyvault::sealing_keys::{self, VaultError, VaultKeys};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, ResourceExt};

use super::keys::{self, KEY_LABEL, KEY_LABEL_ACTIVE, KeyPolicy, KeyStore, LEGACY_KEY_NAME};
use super::metrics::Metrics;

/// Annotation on a cache Secret: the URL of the vault secret it was written from.
pub const VAULT_SECRET_ANNOTATION: &str = "arcseal.dev/key-vault-secret";
/// [`KEY_LABEL`] value of a cached key disabled in the vault.
pub const RETIRED_DISABLED: &str = "disabled-in-key-vault";
/// [`KEY_LABEL`] value of a cached key deleted from the vault.
pub const RETIRED_DELETED: &str = "deleted-from-key-vault";

/// `--key-vault-url` and friends.
#[derive(Debug, Clone)]
pub struct KeyVaultConfig {
    /// The vault's key pairs under the prefix.
    pub keys: Arc<VaultKeys>,
    /// How often the leader syncs the cache with the vault.
    pub sync_period: Duration,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Fingerprints of the enabled key pairs in the vault.
    pub loaded: Vec<Fingerprint>,
    /// Cache Secrets created or rewritten.
    pub written: Vec<String>,
    /// Cache Secrets retired because the vault's key is disabled or gone.
    pub retired: Vec<String>,
    /// Vault secrets under the prefix that are not a readable key pair (names only).
    pub invalid: Vec<String>,
}

fn vault_secret_url(vault: &VaultKeys, name: &str) -> String {
    format!("{}/secrets/{name}", vault.vault().trim_end_matches('/'))
}

/// The vault secret name a cache Secret came from, if it came from this vault and prefix.
fn cached_from<'a>(vault: &VaultKeys, secret: &'a Secret) -> Option<&'a str> {
    let url = secret.annotations().get(VAULT_SECRET_ANNOTATION)?;
    let base = format!("{}/secrets/", vault.vault().trim_end_matches('/'));
    let name = url.strip_prefix(&base)?;
    sealing_keys::is_key_name(vault.prefix(), name).then_some(name)
}

/// The cache Secret of a vault key pair.
fn cache_secret(
    vault: &VaultKeys,
    name: &str,
    key: &PrivateKey,
    cert: &Certificate,
    namespace: &str,
) -> Result<Secret, String> {
    let mut secret = keys::key_secret(key, cert, namespace)?;
    let short: String = key.fingerprint().to_string().chars().take(16).collect();
    secret.metadata.generate_name = None;
    secret.metadata.name = Some(format!("{LEGACY_KEY_NAME}-kv-{short}"));
    secret.metadata.annotations =
        Some(BTreeMap::from([(VAULT_SECRET_ANNOTATION.to_owned(), vault_secret_url(vault, name))]));
    Ok(secret)
}

fn reference(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: Some(name.to_owned()),
        namespace: Some(namespace.to_owned()),
        ..Default::default()
    }
}

async fn warn(recorder: &Recorder, regarding: &ObjectReference, reason: &str, note: String) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, regarding).await {
        tracing::warn!(error = %e, reason, "publishing a Key Vault event");
    }
}

/// Fingerprint of a key Secret's key (certificate first: cheaper than parsing the private key).
fn secret_fingerprint(secret: &Secret) -> Option<Fingerprint> {
    let data = secret.data.as_ref()?;
    if let Some(c) = data.get("tls.crt").and_then(|c| Certificate::from_pem(&c.0).ok()) {
        return Some(c.fingerprint());
    }
    data.get("tls.key").and_then(|k| PrivateKey::from_pem(&k.0).ok()).map(|k| k.fingerprint())
}

/// Key Secrets created at once while caching the vault's keys: enough to hide the API server's per-write latency,
/// few enough not to flood it (client-side rate limits of kube-apiserver's default priority levels).
const CACHE_WRITES_AT_ONCE: usize = 8;

/// One sync of the cache with the vault (leader only). `Err`: the vault could not be read; nothing was changed.
pub async fn sync(
    client: &Client,
    namespace: &str,
    vault: &VaultKeys,
    recorder: &Recorder,
) -> Result<SyncReport, VaultError> {
    let listing = vault.load().await?;
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let cached = match api.list(&ListParams::default().labels(KEY_LABEL)).await {
        Ok(list) => list.items,
        Err(e) => {
            // The vault answered; the API server did not. Report it like a failed sync so it is retried.
            tracing::warn!(error = %e, namespace, "listing the key Secrets to sync them with Key Vault");
            return Ok(SyncReport::default());
        }
    };
    let by_fingerprint: HashMap<Fingerprint, &Secret> =
        cached.iter().filter_map(|s| secret_fingerprint(s).map(|f| (f, s))).collect();
    let mut report = SyncReport::default();
    let mut in_vault = std::collections::HashSet::new();
    // Keys not cached yet, written together below (a rebuilt cluster caches every key on its first pass).
    let mut to_cache = Vec::new();
    for stored in &listing.keys {
        in_vault.insert(stored.name.clone());
        let (key, cert) = match stored.pair(vault.prefix()) {
            Ok(pair) => pair,
            Err(why) => {
                tracing::error!(vault = vault.vault(), secret = %stored.name, why, "not a sealing key pair; skipped");
                report.invalid.push(stored.name.clone());
                continue;
            }
        };
        let fingerprint = key.fingerprint();
        report.loaded.push(fingerprint);
        let fresh =
            cache_secret(vault, &stored.name, &key, &cert, namespace).map_err(|message| VaultError {
                kind: sealing_keys::VaultErrorKind::Content,
                vault: vault.vault().to_owned(),
                permission: "secrets get",
                secret: Some(stored.name.clone()),
                message,
            })?;
        match by_fingerprint.get(&fingerprint) {
            None => to_cache.push((stored.name.clone(), fresh)),
            Some(existing) => {
                let label = existing.labels().get(KEY_LABEL).map(String::as_str);
                if matches!(label, Some(RETIRED_DISABLED | RETIRED_DELETED)) {
                    relabel(&api, &existing.name_any(), KEY_LABEL_ACTIVE).await;
                    report.written.push(existing.name_any());
                } else if label == Some(KEY_LABEL_ACTIVE) && keys::parse_key_secret(existing).is_err() {
                    // The cache was damaged: rewrite its data from the vault.
                    let patch = serde_json::json!({ "data": fresh.data });
                    match api
                        .patch(&existing.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => report.written.push(existing.name_any()),
                        Err(e) => {
                            tracing::warn!(error = %e, secret = %existing.name_any(), "rewriting a key Secret")
                        }
                    }
                }
            }
        }
    }
    // Owned futures (an Api clone is a handle): borrowed ones do not satisfy the spawned sync task's `Send`.
    let writes = futures::stream::iter(to_cache.into_iter().map(|(stored, fresh)| {
        let api = api.clone();
        async move {
            let written = write_cache(&api, &fresh).await;
            (stored, written)
        }
    }))
    .buffer_unordered(CACHE_WRITES_AT_ONCE)
    .collect::<Vec<_>>()
    .await;
    for (stored, written) in writes {
        match written {
            Ok(name) => report.written.push(name),
            Err(e) => tracing::warn!(error = %e, secret = %stored, "caching a Key Vault key"),
        }
    }
    for secret in &cached {
        let Some(name) = cached_from(vault, secret) else { continue };
        if in_vault.contains(name)
            || secret.labels().get(KEY_LABEL).map(String::as_str) != Some(KEY_LABEL_ACTIVE)
        {
            continue;
        }
        let disabled = listing.disabled.iter().any(|d| d == name);
        let (label, reason, what) = if disabled {
            (RETIRED_DISABLED, "KeyVaultKeyDisabled", "is disabled")
        } else {
            (RETIRED_DELETED, "KeyVaultKeyDeleted", "was deleted")
        };
        let secret_name = secret.name_any();
        relabel(&api, &secret_name, label).await;
        report.retired.push(secret_name.clone());
        tracing::warn!(vault = vault.vault(), key = name, secret = %secret_name, "key {what} in Key Vault: retired");
        warn(
            recorder,
            &reference(namespace, &secret_name),
            reason,
            format!(
                "key {name} {what} in Key Vault {}: its cached key Secret is retired (label {label}); enable or \
                 recover the key in the vault to use it again",
                vault.vault()
            ),
        )
        .await;
    }
    Ok(report)
}

async fn write_cache(api: &Api<Secret>, secret: &Secret) -> Result<String, kube::Error> {
    let name = secret.name_any();
    match api.create(&PostParams::default(), secret).await {
        Ok(_) => Ok(name),
        // Cached under this name already (by another term of this leader): nothing to do.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(name),
        Err(e) => Err(e),
    }
}

async fn relabel(api: &Api<Secret>, name: &str, value: &str) {
    let patch = serde_json::json!({ "metadata": { "labels": { KEY_LABEL: value } } });
    if let Err(e) = api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
        tracing::warn!(error = %e, secret = name, "relabelling a key Secret");
    }
}

/// Records in `store` and the `key_vault_degraded` gauge whether the last `what` (`sync`, `renewal`) failed.
fn record(store: &KeyStore, metrics: &Metrics, what: &'static str, failure: Option<String>) {
    store.set_degraded(what, failure);
    metrics.key_vault_degraded.set(i64::from(store.degraded().is_some()));
}

/// Syncs and records the outcome in `store` (degraded or not) and, on failure, a Warning event about the newest
/// key's Secret. Returns the fingerprints the vault holds (empty on failure).
pub async fn sync_and_report(
    client: &Client,
    namespace: &str,
    vault: &VaultKeys,
    store: &KeyStore,
    metrics: &Metrics,
    recorder: &Recorder,
) -> Vec<Fingerprint> {
    match sync(client, namespace, vault, recorder).await {
        Ok(report) => {
            tracing::info!(
                vault = vault.vault(),
                keys = report.loaded.len(),
                written = report.written.len(),
                retired = report.retired.len(),
                invalid = report.invalid.len(),
                "synced the key Secrets with Key Vault"
            );
            record(store, metrics, "sync", None);
            report.loaded
        }
        Err(e) => {
            tracing::error!(error = %e, "Key Vault sync failed; serving the cached key Secrets");
            let regarding = store.snapshot().newest().map(|k| k.secret_name.clone());
            if let Some(name) = regarding {
                warn(recorder, &reference(namespace, &name), "KeyVaultSyncFailed", e.to_string()).await;
            }
            record(store, metrics, "sync", Some(e.to_string()));
            Vec::new()
        }
    }
}

/// Generates a key pair, stores it in the vault, then caches it. On a vault failure nothing is cached and the
/// current key stays the sealing key.
pub async fn create_key(
    client: &Client,
    policy: &KeyPolicy,
    vault: &VaultKeys,
    store: &KeyStore,
    metrics: &Metrics,
    recorder: &Recorder,
) -> Result<String, String> {
    let (key, cert) = keys::generate(policy).await?;
    let fingerprint = key.fingerprint().to_string();
    let name = match vault.put_pair(&key, &cert).await {
        Ok(name) => name,
        Err(e) => {
            if let Some(current) = store.snapshot().newest().map(|k| k.secret_name.clone()) {
                let note = format!("new sealing key not created, the current one stays in use: {e}");
                warn(recorder, &reference(&policy.namespace, &current), "KeyRenewalFailed", note).await;
            }
            record(store, metrics, "renewal", Some(e.to_string()));
            return Err(e.to_string());
        }
    };
    record(store, metrics, "renewal", None);
    let secret = cache_secret(vault, &name, &key, &cert, &policy.namespace)?;
    let api = Api::<Secret>::namespaced(client.clone(), &policy.namespace);
    let cached = write_cache(&api, &secret).await.map_err(|e| {
        format!("caching the new key {name} (it is in Key Vault) in {}: {e}", policy.namespace)
    })?;
    tracing::info!(vault = vault.vault(), key = %name, secret = %cached, fingerprint, "new sealing key in Key Vault");
    Ok(cached)
}

/// Waits (at most `limit`) until `store` holds every fingerprint in `wanted`, so the first reconcile pass after a
/// sync sees the vault's keys.
pub async fn wait_loaded(
    store: &KeyStore,
    keys_rx: &mut tokio::sync::watch::Receiver<bool>,
    wanted: &[Fingerprint],
    limit: Duration,
) {
    let _ = tokio::time::timeout(limit, async {
        loop {
            let snapshot = store.snapshot();
            if wanted.iter().all(|f| snapshot.ring().get(f).is_some()) {
                return;
            }
            if keys_rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
}
