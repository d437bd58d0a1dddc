//! One SealedSecret -> one Secret. `reconcile` and `error_policy` are plain functions over a shared [`Context`], as
//! in kube-rs' controller-rs.
//!
//! Cost: a SealedSecret whose Secret is already in place (same generation, same scope, Secret `resourceVersion`
//! unchanged since this process wrote or checked it) costs one GET and no RSA operation. Otherwise each item costs
//! one RSA operation with the key that opened the SealedSecret before (remembered per uid, or the first item's key),
//! and one per key only the first time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};

use futures::FutureExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use std::time::{Duration, Instant};

use arcseal_crypto::Fingerprint;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use zeroize::Zeroizing;

use super::crd::{CONDITION_SYNCED, SealedSecret, SealedSecretCondition};
use super::keys::{KeySet, KeyStore};
use super::metrics::Metrics;
use super::redact;
use super::secret::{self, Plan};
use super::template::{self, Items};

/// Annotation arcseal's CLI writes on a SealedSecret: fingerprints of the keys that sealed it, newest first.
pub const SEALED_WITH_ANNOTATION: &str = "arcseal.dev/sealed-with";

/// Why a SealedSecret could not be unsealed. Messages name objects, items and template keys; never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Both forms of data.
    #[error("sets both spec.data (deprecated v1 form) and spec.encryptedData; keep only encryptedData")]
    BothDataForms,
    /// No key opened an item (wrong key, wrong name/namespace/scope, or a damaged value: deliberately one error).
    #[error(
        "no key could decrypt item {item:?}: sealed with another controller's key, or for another name, namespace or scope"
    )]
    Decrypt {
        /// The item (or `spec.data`).
        item: String,
    },
    /// `spec.data` opened but is not a JSON Secret.
    #[error("spec.data decrypted, but the content is not a JSON Secret with base64 data")]
    Legacy,
    /// A `spec.template.data` entry could not be rendered. The message has passed [`redact::withhold`].
    #[error("spec.template.data[{key:?}]: {message}")]
    Template {
        /// The template key.
        key: String,
        /// What was wrong: the construct and the engine's words, never a value.
        message: String,
    },
    /// Changing the Secret's type or an immutable Secret's content means deleting it; a Secret the controller was
    /// handed with the `patch` annotation holds keys that are not ours, so it is never deleted.
    #[error(
        "Secret {0:?} is annotated sealedsecrets.bitnami.com/patch and its type or immutable content would change; arcseal never deletes a Secret it was handed: change its type by hand, or remove the patch annotation to let the controller own it"
    )]
    WouldRecreatePatched(String),
    /// The API server refused the Secret the template describes (a server-side dry run): the live Secret is kept.
    #[error(
        "the Secret that spec.template describes is invalid, so the live Secret {name:?} was kept as it is: {reason}"
    )]
    Invalid {
        /// Secret name.
        name: String,
        /// The API server's reason and the fields it named (never their values).
        reason: String,
    },
    /// No key at all.
    #[error("the controller holds no private key yet")]
    NoKeys,
    /// A Secret of that name is someone else's.
    #[error("Resource {0:?} already exists and is not managed by SealedSecret")]
    Unmanaged(String),
    /// Reading the Secret failed.
    #[error("reading Secret {name:?}: {}", api_summary(source))]
    Fetch {
        /// Secret name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// Writing the Secret failed.
    #[error("writing Secret {name:?}: {}", api_summary(source))]
    Update {
        /// Secret name.
        name: String,
        /// Why.
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("writing the status: {}", api_summary(.0))]
    Status(kube::Error),
    /// The blocking decryption task died.
    #[error("the decryption task failed")]
    Task,
}

/// A kube error as a user may read it: for an API server answer its code, reason and the fields it names, never
/// its message (a validation message may quote the value it refused); transport errors as they are.
pub fn api_summary(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let fields: Vec<&str> = status
                .details
                .as_ref()
                .map(|d| {
                    d.causes
                        .iter()
                        .filter_map(|c| (!c.field.is_empty()).then_some(c.field.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            if fields.is_empty() {
                format!("the API server answered {} {}", status.code, status.reason)
            } else {
                format!(
                    "the API server answered {} {} (fields: {})",
                    status.code,
                    status.reason,
                    fields.join(", ")
                )
            }
        }
        other => other.to_string(),
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// sealed-secrets' `reason` label of `unseal_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Fetch { .. } => "fetch",
            Error::Update { .. } => "update",
            Error::Unmanaged(_) | Error::WouldRecreatePatched(_) => "unmanaged",
            Error::Invalid { .. } => "update",
            Error::Status(_) => "status",
            _ => "unseal",
        }
    }

    /// The event reason sealed-secrets uses for it.
    pub fn event_reason(&self) -> &'static str {
        match self {
            Error::Unmanaged(_)
            | Error::WouldRecreatePatched(_)
            | Error::Invalid { .. }
            | Error::Update { .. }
            | Error::Fetch { .. }
            | Error::Status(_) => "ErrUpdateFailed",
            _ => "ErrUnsealFailed",
        }
    }

    /// Whether retrying soon can help (API trouble: 5xx, 429, 409, transport) or only a change of the object or
    /// keys can (bad ciphertext, unmanaged Secret, a 4xx the API server will give again).
    fn transient(&self) -> bool {
        match self {
            Error::Fetch { source, .. } | Error::Update { source, .. } | Error::Status(source) => {
                match source {
                    kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 409,
                    _ => true,
                }
            }
            Error::Task => true,
            _ => false,
        }
    }
}

/// What this process knows about a SealedSecret it synced.
#[derive(Clone)]
struct Memo {
    generation: Option<i64>,
    label: Vec<u8>,
    secret_resource_version: Option<String>,
}

/// The Secret metadata cache of one watched scope (`None`: all namespaces).
type ScopedSecretCache = (Option<String>, Store<PartialObjectMeta<Secret>>);

/// Shared by all reconciles.
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Current keys.
    pub keys: Arc<KeyStore>,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How often an object is checked again when nothing happens (drift repair).
    pub resync: Duration,
    hints: Mutex<HashMap<String, Fingerprint>>,
    memo: Mutex<HashMap<String, Memo>>,
    failures: Mutex<HashMap<String, u32>>,
    secret_caches: RwLock<Vec<ScopedSecretCache>>,
}

impl Context {
    /// A context.
    pub fn new(
        client: Client,
        keys: Arc<KeyStore>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        resync: Duration,
    ) -> Self {
        Context {
            client,
            keys,
            recorder,
            metrics,
            resync,
            hints: Mutex::default(),
            memo: Mutex::default(),
            failures: Mutex::default(),
            secret_caches: RwLock::default(),
        }
    }

    fn hint(&self, ss: &SealedSecret) -> Option<Fingerprint> {
        let uid = ss.uid().unwrap_or_default();
        if let Some(h) = self.hints.lock().ok().and_then(|m| m.get(&uid).copied()) {
            return Some(h);
        }
        ss.annotations()
            .get(SEALED_WITH_ANNOTATION)
            .and_then(|v| v.split(',').next())
            .and_then(|f| Fingerprint::parse(f.trim()))
    }

    fn memorize(
        &self,
        uid: &str,
        ss: &SealedSecret,
        label: Vec<u8>,
        secret_resource_version: Option<String>,
    ) {
        if let Ok(mut m) = self.memo.lock() {
            m.insert(
                uid.to_owned(),
                Memo { generation: ss.metadata.generation, label, secret_resource_version },
            );
        }
    }

    /// Adds the Secret metadata cache of one watched scope (`None`: all namespaces).
    pub fn add_secret_cache(&self, namespace: Option<String>, store: Store<PartialObjectMeta<Secret>>) {
        if let Ok(mut caches) = self.secret_caches.write() {
            caches.push((namespace, store));
        }
    }

    /// `None`: no synced cache covers the namespace (ask the API server). `Some(None)`: the cache has no such Secret.
    fn cached_secret(&self, namespace: &str, name: &str) -> Option<Option<Arc<PartialObjectMeta<Secret>>>> {
        let caches = self.secret_caches.read().ok()?;
        let (_, store) = caches.iter().find(|(scope, _)| scope.as_deref().is_none_or(|s| s == namespace))?;
        store.wait_until_ready().now_or_never()?.ok()?;
        Some(store.get(&ObjectRef::new(name).within(namespace)))
    }

    /// Counts a failed pass of `uid`; returns how many in a row.
    fn failed(&self, uid: &str) -> u32 {
        self.failures.lock().map_or(1, |mut m| {
            let n = m.entry(uid.to_owned()).or_default();
            *n = n.saturating_add(1);
            *n
        })
    }

    fn succeeded(&self, uid: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(uid);
        }
    }

    fn remember(&self, uid: &str, key: Fingerprint) {
        if let Ok(mut m) = self.hints.lock() {
            m.insert(uid.to_owned(), key);
        }
    }

    /// Forgets what was learnt about SealedSecrets that no longer exist (`live` holds the uids that do).
    pub fn forget_all_but(&self, live: &std::collections::HashSet<String>) {
        if let Ok(mut m) = self.hints.lock() {
            m.retain(|uid, _| live.contains(uid));
        }
        if let Ok(mut m) = self.memo.lock() {
            m.retain(|uid, _| live.contains(uid));
        }
        if let Ok(mut m) = self.failures.lock() {
            m.retain(|uid, _| live.contains(uid));
        }
    }

    /// How many SealedSecrets this process remembers something about.
    pub fn remembered(&self) -> usize {
        self.memo.lock().map_or(0, |m| m.len()).max(self.hints.lock().map_or(0, |m| m.len()))
    }
}

/// Decrypts every item of `ss` (legacy `spec.data` included) and renders `spec.template.data`. The label comes from
/// the SealedSecret's own metadata only. Returns the items and the key that opened them. CPU-bound: call it from a
/// blocking thread.
pub fn unseal_items(
    ss: &SealedSecret,
    keys: &KeySet,
    hint: Option<Fingerprint>,
    metrics: &Metrics,
) -> Result<(Items, Option<Fingerprint>)> {
    let (mut items, hint) = open_items(ss, keys, hint, metrics)?;
    let templates = ss.spec.template.as_ref().and_then(|t| t.data.as_ref());
    if let Some(templates) = templates {
        let rendered = template::render_all(templates, &items).map_err(|(key, e)| Error::Template {
            key,
            message: redact::withhold(
                e.to_string(),
                items.values().map(|v| v.as_slice()),
                "the template failed (details withheld: they overlap a decrypted value)",
            ),
        })?;
        // A templated key overrides an item of the same name.
        items.extend(rendered);
    }
    Ok((items, hint))
}

/// Decrypts every item of `ss` (legacy `spec.data` included), without rendering templates: what `/v1/verify`
/// checks. The label comes from the SealedSecret's own metadata only.
pub fn open_items(
    ss: &SealedSecret,
    keys: &KeySet,
    hint: Option<Fingerprint>,
    metrics: &Metrics,
) -> Result<(Items, Option<Fingerprint>)> {
    if ss.spec.data.is_some() && !ss.spec.encrypted_data.is_empty() {
        return Err(Error::BothDataForms);
    }
    if keys.keys().is_empty() {
        return Err(Error::NoKeys);
    }
    let label = ss.encryption_label();
    let ops = metrics.rsa_operations.inner();
    let mut hint = hint;
    let mut items = Items::new();
    if let Some(legacy) = &ss.spec.data {
        let (plaintext, by) = keys
            .open(&label, legacy, hint.as_ref(), ops)
            .map_err(|_| Error::Decrypt { item: "spec.data".into() })?;
        hint = Some(by);
        items = legacy_items(plaintext.as_bytes())?;
    }
    for (item, value) in &ss.spec.encrypted_data {
        let (plaintext, by) = keys
            .open(&label, value, hint.as_ref(), ops)
            .map_err(|_| Error::Decrypt { item: item.clone() })?;
        hint = Some(by);
        items.insert(item.clone(), plaintext.into_zeroizing());
    }
    Ok((items, hint))
}

fn legacy_items(json: &[u8]) -> Result<Items> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct LegacySecret {
        #[serde(default)]
        data: std::collections::BTreeMap<String, String>,
        #[serde(default)]
        string_data: std::collections::BTreeMap<String, String>,
    }
    let secret: LegacySecret = serde_json::from_slice(json).map_err(|_| Error::Legacy)?;
    let mut items = Items::new();
    for (k, v) in &secret.data {
        let bytes = arcseal_crypto::decode_base64(v).map_err(|_| Error::Legacy)?;
        items.insert(k.clone(), Zeroizing::new(bytes));
    }
    for (k, v) in &secret.string_data {
        items.insert(k.clone(), Zeroizing::new(v.as_bytes().to_vec()));
    }
    drop(secret);
    Ok(items)
}

/// What one pass did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The Secret was created, updated or recreated.
    Written,
    /// Nothing to do.
    Unchanged,
}

/// Reconciles one SealedSecret: unseal, write the Secret if it differs, write status and events on change.
pub async fn reconcile(ss: Arc<SealedSecret>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.unseal_requests.inc();
    let result = sync(&ss, &ctx).await;
    let namespace = ss.namespace().unwrap_or_default();
    let name = ss.name_any();
    let status_result = write_status(&ss, &ctx, result.as_ref().err()).await;
    ctx.metrics.observe_reconcile(result.is_ok(), started.elapsed().as_secs_f64());
    ctx.metrics.condition(&namespace, &name, result.is_ok());
    match (result, status_result) {
        (Ok(outcome), Ok(())) => {
            ctx.succeeded(&ss.uid().unwrap_or_default());
            if outcome == Outcome::Written {
                publish(
                    &ctx,
                    &ss,
                    EventType::Normal,
                    "Unsealed",
                    "SealedSecret unsealed successfully".into(),
                )
                .await;
            }
            Ok(Action::requeue(ctx.resync))
        }
        (Ok(_), Err(e)) => {
            ctx.metrics.error(e.metric_label(), &namespace);
            Err(e)
        }
        (Err(e), _) => {
            ctx.metrics.error(e.metric_label(), &namespace);
            tracing::warn!(namespace = %namespace, name = %name, error = %e, "unseal failed");
            Err(e)
        }
    }
}

/// Requeue policy: API trouble soon, anything else (bad ciphertext, unmanaged Secret) on the resync period: a change
/// of the object or of the keys triggers a new pass anyway.
pub fn error_policy(ss: Arc<SealedSecret>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.failed(&ss.uid().unwrap_or_default());
    Action::requeue(backoff(failures, error.transient()))
}

/// The wait before the `failures`-th retry: 5 s doubling, up to a minute for API trouble and ten minutes for what
/// only a change can fix (a change of the object or of the keys starts a pass at once anyway).
pub fn backoff(failures: u32, transient: bool) -> Duration {
    let cap = if transient { 60 } else { 600 };
    Duration::from_secs(5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10)).min(cap))
}

async fn sync(ss: &SealedSecret, ctx: &Context) -> Result<Outcome> {
    let namespace = ss.namespace().unwrap_or_default();
    let name = ss.name_any();
    let uid = ss.uid().unwrap_or_default();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &namespace);
    let fetch = || async {
        secrets.get_opt(&name).await.map_err(|source| Error::Fetch { name: name.clone(), source })
    };
    let label = ss.encryption_label();
    let memo = ctx.memo.lock().ok().and_then(|m| m.get(&uid).cloned());
    let memo_holds = |rv: Option<&String>| {
        memo.as_ref().is_some_and(|m| {
            m.generation == ss.metadata.generation
                && m.label == label
                && m.secret_resource_version.is_some()
                && m.secret_resource_version.as_ref() == rv
        })
    };

    // The Secret metadata cache answers the common cases without a request: unchanged since this process wrote or
    // checked it, someone else's, or (for a SealedSecret never synced here) not there yet.
    let cached = ctx.cached_secret(&namespace, &name);
    if let Some(Some(meta)) = &cached {
        if memo_holds(meta.metadata.resource_version.as_ref()) {
            return Ok(Outcome::Unchanged);
        }
        if !secret::may_touch(&meta.metadata, &uid) {
            return Err(Error::Unmanaged(name));
        }
    }
    let believed_absent = memo.is_none() && matches!(cached, Some(None));
    let mut live = if believed_absent { None } else { fetch().await? };
    if let Some(live) = &live {
        if memo_holds(live.metadata.resource_version.as_ref()) {
            return Ok(Outcome::Unchanged);
        }
        // Refuse before decrypting: a Secret that is not ours costs no RSA operation.
        if !secret::may_touch(&live.metadata, &uid) {
            return Err(Error::Unmanaged(name));
        }
    }

    let keys = ctx.keys.snapshot();
    let hint = ctx.hint(ss);
    let metrics = ctx.metrics.clone();
    let owned_ss = ss.clone();
    let (items, opened_by) =
        tokio::task::spawn_blocking(move || unseal_items(&owned_ss, &keys, hint, &metrics))
            .await
            .map_err(|_| Error::Task)??;
    if let Some(by) = opened_by {
        ctx.remember(&uid, by);
    }
    let desired = secret::desired_secret(ss, items);
    let pp = PostParams { field_manager: Some(super::FIELD_MANAGER.to_owned()), ..PostParams::default() };
    let update_error = |source| Error::Update { name: name.clone(), source };
    let mut plan = secret::plan(desired.clone(), live.clone(), &uid);
    if believed_absent && let Plan::Create(s) = &plan {
        match secrets.create(&pp, s).await {
            Ok(created) => {
                ctx.memorize(&uid, ss, label, created.metadata.resource_version);
                return Ok(Outcome::Written);
            }
            // The cache was behind: decide again on the real Secret (the items are already decrypted).
            Err(kube::Error::Api(status)) if status.code == 409 => {
                live = fetch().await?;
                plan = secret::plan(desired, live.clone(), &uid);
            }
            Err(e) => return Err(update_error(e)),
        }
    }
    let (outcome, rv) = match plan {
        Plan::Refuse => return Err(Error::Unmanaged(name)),
        Plan::RefuseRecreatePatched => return Err(Error::WouldRecreatePatched(name)),
        Plan::Unchanged => (Outcome::Unchanged, live.and_then(|l| l.metadata.resource_version)),
        Plan::Create(s) => {
            let created = secrets.create(&pp, &s).await.map_err(update_error)?;
            (Outcome::Written, created.metadata.resource_version)
        }
        Plan::Update(s) => {
            let updated = secrets.replace(&name, &pp, &s).await.map_err(update_error)?;
            (Outcome::Written, updated.metadata.resource_version)
        }
        Plan::Recreate(s) => {
            // Never delete a Secret for one the API server would refuse: a dry run of the new one first. The name
            // is taken, so a valid Secret gets 409 AlreadyExists (validation runs before the storage lookup).
            let dry = PostParams { dry_run: true, ..pp.clone() };
            match secrets.create(&dry, &s).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 && status.reason == "AlreadyExists" => {}
                Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
                    let source = kube::Error::Api(status);
                    return Err(Error::Invalid { name, reason: api_summary(&source) });
                }
                Err(e) => return Err(update_error(e)),
            }
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: live.as_ref().and_then(|l| l.metadata.uid.clone()),
                    resource_version: live.as_ref().and_then(|l| l.metadata.resource_version.clone()),
                }),
                ..DeleteParams::default()
            };
            secrets.delete(&name, &dp).await.map_err(update_error)?;
            let created = secrets.create(&pp, &s).await.map_err(update_error)?;
            (Outcome::Written, created.metadata.resource_version)
        }
    };
    ctx.memorize(&uid, ss, label, rv);
    Ok(outcome)
}

/// Writes `status` (observedGeneration + the `Synced` condition) when it changes; publishes a warning event when a
/// failure is new or different. Never writes on a pass that changed nothing.
async fn write_status(ss: &SealedSecret, ctx: &Context, error: Option<&Error>) -> Result<()> {
    let previous = ss.synced_condition();
    let status = if error.is_none() { "True" } else { "False" };
    let message = error.map(ToString::to_string);
    let same_condition =
        previous.is_some_and(|c| c.status == status && c.message.as_deref() == message.as_deref());
    let observed = ss.status.as_ref().and_then(|s| s.observed_generation);
    if let Some(e) = error
        && !same_condition
    {
        publish(ctx, ss, EventType::Warning, e.event_reason(), e.to_string()).await;
    }
    if same_condition && observed == ss.metadata.generation {
        return Ok(());
    }
    let now = now_rfc3339();
    let transition = match previous {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    let condition = SealedSecretCondition {
        type_: CONDITION_SYNCED.to_owned(),
        status: status.to_owned(),
        last_update_time: Some(now),
        last_transition_time: transition,
        reason: error.map(|e| e.event_reason().to_owned()),
        message,
    };
    let mut conditions: Vec<SealedSecretCondition> = ss
        .status
        .as_ref()
        .map(|s| s.conditions.iter().filter(|c| c.type_ != CONDITION_SYNCED).cloned().collect())
        .unwrap_or_default();
    conditions.insert(0, condition);
    let patch = json!({"status": {"observedGeneration": ss.metadata.generation, "conditions": conditions}});
    let api = Api::<SealedSecret>::namespaced(ctx.client.clone(), &ss.namespace().unwrap_or_default());
    api.patch_status(&ss.name_any(), &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(Error::Status)?;
    Ok(())
}

async fn publish(ctx: &Context, ss: &SealedSecret, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: "Unseal".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &ss.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "publishing an event");
    }
}

fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}

/// Counts RSA operations since start (for the benchmark and tests).
pub fn rsa_operations(metrics: &Metrics) -> u64 {
    metrics.rsa_operations.inner().load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    //! Reconcile against kube's tower-test mock API server: each test scripts the requests it expects, in order,
    //! and fails on any other (an unexpected write is a failure, not a silent success).

    use super::*;
    use crate::unseal::crd::{SealedSecretSpec, SealedSecretStatus};
    use crate::unseal::keys::LoadedKey;
    use arcseal_crypto::{PrivateKey, Scope};
    use http::{Method, Request, Response};
    use kube::client::Body;
    use kube::runtime::events::Reporter;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    struct Expect {
        method: Method,
        path: &'static str,
        status: u16,
        body: serde_json::Value,
    }

    fn expect(method: Method, path: &'static str, status: u16, body: serde_json::Value) -> Expect {
        Expect { method, path, status, body }
    }

    /// Answers the scripted requests in order; returns each request's body.
    async fn serve(mut handle: Handle, script: Vec<Expect>) -> Vec<String> {
        let mut bodies = Vec::new();
        for e in script {
            let (request, send) = handle.next_request().await.expect("a scripted request");
            assert_eq!(request.method(), e.method, "{}", request.uri());
            assert!(
                request.uri().path().starts_with(e.path),
                "expected {} {}, got {}",
                e.method,
                e.path,
                request.uri()
            );
            let bytes = request.into_body().collect_bytes().await.unwrap();
            bodies.push(String::from_utf8_lossy(&bytes).into_owned());
            let response = Response::builder()
                .status(e.status)
                .body(Body::from(serde_json::to_vec(&e.body).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        bodies
    }

    fn context(client: Client, key: &PrivateKey) -> Arc<Context> {
        let store = Arc::new(KeyStore::default());
        store.replace(KeySet::new(vec![LoadedKey { key: key.clone(), cert: None, secret_name: "k".into() }]));
        let reporter = Reporter { controller: "test".into(), instance: None };
        Arc::new(Context::new(
            client.clone(),
            store,
            Recorder::new(client, reporter),
            Arc::new(Metrics::new()),
            Duration::from_secs(600),
        ))
    }

    fn sealed(key: &PrivateKey, sealed_for: &str) -> SealedSecret {
        let mut ss = SealedSecret::new(
            "db",
            SealedSecretSpec {
                encrypted_data: [(
                    "password".to_owned(),
                    arcseal_crypto::seal(key.public_key(), sealed_for.as_bytes(), b"hunter2").unwrap(),
                )]
                .into(),
                ..SealedSecretSpec::default()
            },
        );
        ss.metadata.namespace = Some("ns".into());
        ss.metadata.uid = Some("uid-1".into());
        ss.metadata.generation = Some(1);
        ss
    }

    fn ss_json() -> serde_json::Value {
        json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
               "metadata": {"name": "db", "namespace": "ns"}, "spec": {"encryptedData": {}}})
    }

    fn not_found() -> serde_json::Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
               "message": "secrets \"db\" not found"})
    }

    const SECRET: &str = "/api/v1/namespaces/ns/secrets";
    const SECRET_DB: &str = "/api/v1/namespaces/ns/secrets/db";
    const STATUS: &str = "/apis/bitnami.com/v1alpha1/namespaces/ns/sealedsecrets/db/status";
    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

    #[tokio::test]
    async fn unmanaged_secret_is_refused_without_rsa_work() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let key = PrivateKey::generate(2048).unwrap();
        let ctx = context(Client::new(service, "ns"), &key);
        let foreign = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "ns", "resourceVersion": "3"}, "data": {"x": "eA=="}});
        let server = tokio::spawn(serve(
            handle,
            vec![
                expect(Method::GET, SECRET_DB, 200, foreign),
                expect(Method::POST, EVENTS, 201, json!({})),
                expect(Method::PATCH, STATUS, 200, ss_json()),
            ],
        ));
        let err = reconcile(Arc::new(sealed(&key, "ns/db")), ctx.clone()).await.unwrap_err();
        assert!(matches!(err, Error::Unmanaged(_)));
        let bodies = server.await.unwrap();
        assert!(
            bodies[1].contains("ErrUpdateFailed") && bodies[1].contains("is not managed by SealedSecret")
        );
        assert!(bodies[2].contains("\"False\"") && bodies[2].contains("observedGeneration"), "{}", bodies[2]);
        assert_eq!(rsa_operations(&ctx.metrics), 0);
        assert_eq!(err.metric_label(), "unmanaged");
    }

    #[tokio::test]
    async fn create_then_resync_costs_one_get_and_no_rsa_operation() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let key = PrivateKey::generate(2048).unwrap();
        let ctx = context(Client::new(service, "ns"), &key);
        let ss = sealed(&key, "ns/db");
        let created = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "ns", "resourceVersion": "5", "uid": "s-1",
                         "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                                              "name": "db", "uid": "uid-1", "controller": true}]},
            "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        let server = tokio::spawn(serve(
            handle,
            vec![
                expect(Method::GET, SECRET_DB, 404, not_found()),
                expect(Method::POST, SECRET, 201, created.clone()),
                expect(Method::PATCH, STATUS, 200, ss_json()),
                expect(Method::POST, EVENTS, 201, json!({})),
                // The resync: the Secret is as written, status says Synced for this generation.
                expect(Method::GET, SECRET_DB, 200, created),
            ],
        ));
        reconcile(Arc::new(ss.clone()), ctx.clone()).await.unwrap();
        assert_eq!(rsa_operations(&ctx.metrics), 1);
        let mut synced = ss;
        synced.status = Some(SealedSecretStatus {
            observed_generation: Some(1),
            conditions: vec![SealedSecretCondition {
                type_: CONDITION_SYNCED.into(),
                status: "True".into(),
                ..SealedSecretCondition::default()
            }],
        });
        reconcile(Arc::new(synced), ctx.clone()).await.unwrap();
        let bodies = server.await.unwrap();
        assert!(bodies[1].contains("\"password\":\"aHVudGVyMg==\""), "the Secret carries the plaintext");
        assert!(bodies[1].contains("\"controller\":true"));
        assert!(bodies[2].contains("\"True\""));
        assert!(bodies[3].contains("Unsealed"));
        assert_eq!(rsa_operations(&ctx.metrics), 1, "the resync did no RSA work");
        assert!(!bodies[2].contains("hunter2") && !bodies[3].contains("hunter2"));
    }

    #[tokio::test]
    async fn with_a_synced_secret_cache_cold_start_skips_the_get_and_resync_sends_nothing() {
        use kube::runtime::{reflector, watcher};
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let key = PrivateKey::generate(2048).unwrap();
        let ctx = context(Client::new(service, "ns"), &key);
        let (cache, mut writer) = reflector::store::<PartialObjectMeta<Secret>>();
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        ctx.add_secret_cache(Some("ns".into()), cache);
        let created = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "ns", "resourceVersion": "5", "uid": "s-1",
                         "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                                              "name": "db", "uid": "uid-1", "controller": true}]},
            "data": {"password": "aHVudGVyMg=="}, "type": "Opaque"});
        let server = tokio::spawn(serve(
            handle,
            vec![
                expect(Method::POST, SECRET, 201, created.clone()),
                expect(Method::PATCH, STATUS, 200, ss_json()),
                expect(Method::POST, EVENTS, 201, json!({})),
            ],
        ));
        let ss = sealed(&key, "ns/db");
        reconcile(Arc::new(ss.clone()), ctx.clone()).await.unwrap();
        assert_eq!(server.await.unwrap().len(), 3);
        // The watch delivers the Secret's metadata; a resync now needs no request at all.
        let meta: PartialObjectMeta<Secret> = serde_json::from_value(json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": created["metadata"]}))
        .unwrap();
        writer.apply_watcher_event(&watcher::Event::Apply(meta));
        let mut synced = ss;
        synced.status = Some(SealedSecretStatus {
            observed_generation: Some(1),
            conditions: vec![SealedSecretCondition {
                type_: CONDITION_SYNCED.into(),
                status: "True".into(),
                ..SealedSecretCondition::default()
            }],
        });
        // The mock's handle is gone: any request would fail this reconcile.
        reconcile(Arc::new(synced), ctx.clone()).await.unwrap();
        assert_eq!(rsa_operations(&ctx.metrics), 1);
    }

    #[tokio::test]
    async fn what_was_learnt_about_deleted_sealed_secrets_is_forgotten() {
        let (service, _handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let key = PrivateKey::generate(2048).unwrap();
        let ctx = context(Client::new(service, "ns"), &key);
        let ss = sealed(&key, "ns/db");
        for uid in ["uid-1", "uid-2"] {
            ctx.remember(uid, key.fingerprint());
            ctx.memorize(uid, &ss, b"ns/db".to_vec(), Some("1".into()));
        }
        assert_eq!(ctx.remembered(), 2);
        ctx.forget_all_but(&["uid-2".to_owned()].into());
        assert_eq!(ctx.remembered(), 1);
        assert!(ctx.hint(&ss).is_none(), "uid-1's hint is gone");
    }

    #[test]
    fn legacy_spec_data_opens_to_the_items_of_a_whole_secret() {
        let key = PrivateKey::generate(2048).unwrap();
        let keys = KeySet::new(vec![LoadedKey { key: key.clone(), cert: None, secret_name: "k".into() }]);
        let metrics = Metrics::new();
        let mut ss = sealed(&key, "ns/db");
        ss.spec.encrypted_data.clear();
        let whole = br#"{"apiVersion":"v1","kind":"Secret","data":{"a":"eA=="},"stringData":{"b":"y"}}"#;
        ss.spec.data = Some(arcseal_crypto::seal(key.public_key(), b"ns/db", whole).unwrap());
        let (items, by) = unseal_items(&ss, &keys, None, &metrics).unwrap();
        assert_eq!(by, Some(key.fingerprint()));
        let got: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        assert_eq!(got, vec![("a", &b"x"[..]), ("b", &b"y"[..])]);

        ss.spec.encrypted_data.insert("c".into(), "AgB".into());
        assert!(matches!(unseal_items(&ss, &keys, None, &metrics), Err(Error::BothDataForms)));
        ss.spec.encrypted_data.clear();
        ss.spec.data = Some(arcseal_crypto::seal(key.public_key(), b"ns/db", b"not json").unwrap());
        let err = unseal_items(&ss, &keys, None, &metrics).err().unwrap();
        assert!(matches!(err, Error::Legacy) && !err.to_string().contains("not json"));
    }

    #[tokio::test]
    async fn wrong_scope_writes_status_and_event_but_no_secret() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let key = PrivateKey::generate(2048).unwrap();
        let ctx = context(Client::new(service, "ns"), &key);
        // Sealed namespace-wide, but the SealedSecret does not say so in its own metadata.
        let ss = sealed(&key, &String::from_utf8(Scope::NamespaceWide.encryption_label("ns", "db")).unwrap());
        let server = tokio::spawn(serve(
            handle,
            vec![
                expect(Method::GET, SECRET_DB, 404, not_found()),
                expect(Method::POST, EVENTS, 201, json!({})),
                expect(Method::PATCH, STATUS, 200, ss_json()),
            ],
        ));
        let err = reconcile(Arc::new(ss), ctx.clone()).await.unwrap_err();
        assert_eq!(err.metric_label(), "unseal");
        let bodies = server.await.unwrap();
        assert!(bodies[1].contains("ErrUnsealFailed"));
        assert!(bodies[2].contains("no key could decrypt item \\\"password\\\""), "{}", bodies[2]);
        assert!(bodies.iter().all(|b| !b.contains("hunter2")));
    }
}
