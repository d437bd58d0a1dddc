//! What the controller relies on from the API server, shown through kube 5 unmodified against a real
//! kube-apiserver (see `arcseal_tests::k8s`): the SealedSecret CRD, create and server-side apply, the status
//! subresource, optimistic concurrency, a watch that outlives 410 Gone, and ownerReference garbage collection.

use std::time::Duration;

use arcseal_tests::k8s::{
    self, TestNamespace,
    sealed_secret::{self, SealedSecret, SealedSecretCondition, SealedSecretStatus, sealed_secret},
};
use futures::{Stream, StreamExt};
use k8s_openapi::{
    api::core::v1::{ConfigMap, Secret},
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::{
    Api, Resource, ResourceExt,
    api::{
        ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
    },
    core::{GroupVersionKind, Status},
    runtime::watcher,
};
use serde_json::json;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Bound for anything that normally takes well under a second.
const QUICK: Duration = Duration::from_secs(30);
/// Bound for the garbage collector: it notices a new CRD only at its next discovery resync (every 30 s).
const GC: Duration = Duration::from_secs(120);

/// Every test needs the CRD; applying it again is idempotent (same field manager, same content).
async fn setup(test: &str) -> Result<(TestNamespace, Api<SealedSecret>)> {
    let ns = TestNamespace::new(test).await?;
    k8s::apply_crd(&ns.client(), sealed_secret::CRD_YAML).await?;
    let api = ns.api::<SealedSecret>();
    Ok((ns, api))
}

fn api_status(error: &kube::Error) -> Option<&Status> {
    match error {
        kube::Error::Api(status) => Some(status),
        _ => None,
    }
}

/// SealedSecrets as untyped objects, to send what the typed struct cannot express.
fn dynamic_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "sealedsecrets");
    Api::namespaced_with(ns.client(), ns.name(), &resource)
}

fn dynamic(ns: &TestNamespace, name: &str, spec: serde_json::Value) -> DynamicObject {
    let gvk = GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret");
    let mut object =
        DynamicObject::new(name, &ApiResource::from_gvk_with_plural(&gvk, "sealedsecrets")).within(ns.name());
    object.data = json!({ "spec": spec });
    object
}

#[tokio::test]
async fn crd_is_established_served_and_its_schema_enforced() -> Result {
    let (ns, api) = setup("crd").await?;
    let crd = k8s::apply_crd(&ns.client(), sealed_secret::CRD_YAML).await?;
    let conditions = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conditions.iter().any(|c| c.type_ == "NamesAccepted" && c.status == "True"),
        "names not accepted: {conditions:?}"
    );

    // Discovery serves the resource under the names the controller and kubectl use.
    let resources = ns.client().list_api_group_resources("bitnami.com/v1alpha1").await?;
    let sealedsecrets = resources
        .resources
        .iter()
        .find(|r| r.name == "sealedsecrets")
        .ok_or("discovery does not list sealedsecrets")?;
    assert_eq!(sealedsecrets.kind, "SealedSecret");
    assert!(sealedsecrets.namespaced);
    assert!(
        resources.resources.iter().any(|r| r.name == "sealedsecrets/status"),
        "no status subresource in discovery: {resources:?}"
    );

    // The structural schema rejects a non-string ciphertext with 422 Invalid...
    let untyped = dynamic_api(&ns);
    let rejected = untyped
        .create(&PostParams::default(), &dynamic(&ns, "bad", json!({ "encryptedData": { "password": 42 } })))
        .await;
    let status = rejected
        .as_ref()
        .err()
        .and_then(api_status)
        .ok_or_else(|| format!("a numeric ciphertext must be rejected, got {rejected:?}"))?;
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"), "{status:?}");
    // ...as it rejects a SealedSecret without a spec...
    let mut no_spec = dynamic(&ns, "no-spec", json!({}));
    no_spec.data = json!({});
    let rejected = untyped.create(&PostParams::default(), &no_spec).await;
    assert_eq!(rejected.as_ref().err().and_then(api_status).map(|s| s.code), Some(422), "{rejected:?}");
    // ...defaults a missing encryptedData to {} (as a v1-only object of older sealed-secrets has none)...
    let empty = untyped.create(&PostParams::default(), &dynamic(&ns, "empty", json!({}))).await?;
    assert_eq!(empty.data["spec"], json!({ "encryptedData": {} }));

    // ...and prunes fields it does not know.
    let pruned = untyped
        .create(
            &PostParams::default(),
            &dynamic(&ns, "pruned", json!({ "encryptedData": { "a": "AgB=" }, "unknownField": "dropped" })),
        )
        .await?;
    assert_eq!(pruned.data["spec"], json!({ "encryptedData": { "a": "AgB=" } }));
    assert_eq!(api.get("pruned").await?.spec.encrypted_data["a"], "AgB=");

    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn create_and_server_side_apply_track_field_owners() -> Result {
    let (ns, api) = setup("apply").await?;
    let created = api.create(&PostParams::default(), &sealed_secret("db", &[("user", "AgA=")])).await?;
    assert_eq!(created.metadata.generation, Some(1));
    let again = api.create(&PostParams::default(), &sealed_secret("db", &[("user", "AgA=")])).await;
    assert_eq!(
        again.as_ref().err().and_then(api_status).map(|s| s.reason.as_str()),
        Some("AlreadyExists"),
        "{again:?}"
    );

    // Server-side apply by the "controller" manager takes ownership of the fields it sends.
    let applied = api
        .patch(
            "db",
            &PatchParams::apply("arcseal-controller"),
            &Patch::Apply(sealed_secret("db", &[("user", "AgA="), ("password", "AgB=")])),
        )
        .await?;
    assert_eq!(applied.spec.encrypted_data.len(), 2);
    assert_eq!(applied.metadata.generation, Some(2), "a spec change bumps the generation");
    let managers = applied.managed_fields();
    assert!(
        managers.iter().any(|m| {
            m.manager.as_deref() == Some("arcseal-controller") && m.operation.as_deref() == Some("Apply")
        }),
        "no Apply entry for arcseal-controller: {managers:?}"
    );

    // A second applier that sets the same field to another value conflicts (409) unless it forces.
    let other = sealed_secret("db", &[("password", "AgC=")]);
    let conflict = api.patch("db", &PatchParams::apply("someone-else"), &Patch::Apply(&other)).await;
    let status = conflict.as_ref().err().and_then(api_status).ok_or("apply conflict expected")?;
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{status:?}");
    assert!(status.message.contains("arcseal-controller"), "{}", status.message);
    let forced = api.patch("db", &PatchParams::apply("someone-else").force(), &Patch::Apply(&other)).await?;
    assert_eq!(forced.spec.encrypted_data["password"], "AgC=");
    assert_eq!(forced.spec.encrypted_data["user"], "AgA=", "fields not in the forced apply stay");

    // Re-applying identical content is a no-op: same resourceVersion, same generation.
    let same = api.patch("db", &PatchParams::apply("someone-else"), &Patch::Apply(&other)).await?;
    assert_eq!(same.resource_version(), forced.resource_version());

    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn status_subresource_is_written_separately_from_spec() -> Result {
    let (ns, api) = setup("status").await?;
    let created = api.create(&PostParams::default(), &sealed_secret("app", &[("k", "AgA=")])).await?;

    let status = SealedSecretStatus {
        observed_generation: created.metadata.generation,
        conditions: vec![SealedSecretCondition {
            type_: "Synced".to_owned(),
            status: "True".to_owned(),
            message: None,
            ..Default::default()
        }],
    };
    let patched = api
        .patch_status(
            "app",
            &PatchParams::apply("arcseal-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": { "name": "app" },
                "status": status,
            })),
        )
        .await?;
    assert_eq!(patched.status.as_ref(), Some(&status));
    assert_eq!(patched.metadata.generation, created.metadata.generation, "status does not bump generation");

    // Status sent to the main resource is ignored...
    let mut via_main = patched.clone();
    via_main.status = Some(SealedSecretStatus::default());
    via_main.spec.encrypted_data.insert("k2".to_owned(), "AgB=".to_owned());
    let replaced = api.replace("app", &PostParams::default(), &via_main).await?;
    assert_eq!(replaced.status.as_ref(), Some(&status), "the main resource must not write status");
    assert_eq!(replaced.metadata.generation.map(|g| g - 1), created.metadata.generation);

    // ...and spec sent to the status subresource is ignored.
    let mut via_status = replaced.clone();
    via_status.spec.encrypted_data.clear();
    via_status.status =
        Some(SealedSecretStatus { observed_generation: replaced.metadata.generation, ..status.clone() });
    let replaced_status = api.replace_status("app", &PostParams::default(), &via_status).await?;
    assert_eq!(replaced_status.spec.encrypted_data.len(), 2, "the status subresource must not write spec");
    assert_eq!(replaced_status.status.and_then(|s| s.observed_generation), replaced.metadata.generation);

    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_stale_resource_version_is_a_409_conflict() -> Result {
    let (ns, api) = setup("conflict").await?;
    let original = api.create(&PostParams::default(), &sealed_secret("x", &[("k", "AgA=")])).await?;

    let mut first = original.clone();
    first.spec.encrypted_data.insert("k".to_owned(), "AgB=".to_owned());
    let updated = api.replace("x", &PostParams::default(), &first).await?;
    assert_ne!(updated.resource_version(), original.resource_version());

    // A writer still holding the original resourceVersion loses, on the main resource and on status alike.
    let mut stale = original.clone();
    stale.spec.encrypted_data.insert("k".to_owned(), "AgC=".to_owned());
    let lost = api.replace("x", &PostParams::default(), &stale).await;
    let status = lost.as_ref().err().and_then(api_status).ok_or("stale write must fail")?;
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"), "{status:?}");
    stale.status = Some(SealedSecretStatus::default());
    let lost = api.replace_status("x", &PostParams::default(), &stale).await;
    assert_eq!(lost.as_ref().err().and_then(api_status).map(|s| s.code), Some(409), "{lost:?}");
    // A JSON merge patch carrying the stale resourceVersion as a precondition fails the same way.
    let lost = api
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "resourceVersion": original.resource_version() } })),
        )
        .await;
    assert_eq!(lost.as_ref().err().and_then(api_status).map(|s| s.code), Some(409), "{lost:?}");

    assert_eq!(api.get("x").await?.spec.encrypted_data["k"], "AgB=", "the winner's write stays");
    ns.finish().await?;
    Ok(())
}

/// The next event the predicate accepts; other events are skipped, watcher errors fail the test.
async fn next_matching<S, K>(
    events: &mut S,
    what: &str,
    accept: impl Fn(&watcher::Event<K>) -> bool,
) -> Result<watcher::Event<K>>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin,
{
    let found = tokio::time::timeout(QUICK, async {
        while let Some(event) = events.next().await {
            let event = event.map_err(|e| format!("watcher error while waiting for {what}: {e}"))?;
            if accept(&event) {
                return Ok(event);
            }
        }
        Err(format!("watcher ended while waiting for {what}"))
    })
    .await
    .map_err(|_| format!("no {what} within {QUICK:?}"))??;
    Ok(found)
}

/// Whether a watch from `resource_version` is answered with 410 Gone (etcd compacted that revision).
async fn watch_is_gone(api: &Api<SealedSecret>, resource_version: &str) -> Result<bool> {
    let stream = match api.watch(&WatchParams::default().timeout(1), resource_version).await {
        Ok(stream) => stream,
        Err(e) if api_status(&e).is_some_and(|s| s.code == 410) => return Ok(true),
        Err(e) => return Err(e.into()),
    };
    let mut stream = std::pin::pin!(stream);
    match stream.next().await {
        Some(Ok(WatchEvent::Error(status))) => Ok(status.code == 410),
        Some(Err(e)) => Err(e.into()),
        _ => Ok(false),
    }
}

#[tokio::test]
async fn watcher_relists_after_410_gone_and_keeps_going() -> Result {
    let (ns, api) = setup("watch-410").await?;
    // A short server-side timeout makes the watcher resume from its last resourceVersion every 2 s.
    let mut events = watcher(api.clone(), watcher::Config::default().timeout(2)).boxed();
    next_matching(&mut events, "the initial InitDone", |e| matches!(e, watcher::Event::InitDone)).await?;

    let first = api.create(&PostParams::default(), &sealed_secret("first", &[("k", "AgA=")])).await?;
    let seen_at = first.resource_version().ok_or("created object without resourceVersion")?;
    next_matching(
        &mut events,
        "Apply(first)",
        |e| matches!(e, watcher::Event::Apply(o) if o.name_any() == "first"),
    )
    .await?;

    // Move etcd's revision on without touching SealedSecrets here, until the API server's compaction (every 5 s)
    // has removed `seen_at`: the watcher's resourceVersion is now too old. The watcher is not polled meanwhile.
    let configmaps = ns.api::<ConfigMap>();
    let churn = ConfigMap {
        metadata: ObjectMeta { name: Some("churn".to_owned()), ..ObjectMeta::default() },
        ..ConfigMap::default()
    };
    configmaps.create(&PostParams::default(), &churn).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut writes = 0u32;
    loop {
        writes += 1;
        configmaps
            .patch(
                "churn",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "n": writes.to_string() } })),
            )
            .await?;
        if watch_is_gone(&api, &seen_at).await? {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("resourceVersion {seen_at} still watchable after 90 s of writes").into());
        }
    }

    // The watcher resumes from `seen_at`, gets 410, relists (Init, InitApply(first), InitDone) and goes on.
    let mut saw_gone = false;
    let mut relisted = Vec::new();
    tokio::time::timeout(QUICK, async {
        loop {
            match events.next().await {
                Some(Err(watcher::Error::WatchError(status))) if status.code == 410 => saw_gone = true,
                Some(Err(e)) => return Err(format!("unexpected watcher error: {e}")),
                Some(Ok(watcher::Event::Init)) if saw_gone => relisted.clear(),
                Some(Ok(watcher::Event::InitApply(o))) if saw_gone => relisted.push(o.name_any()),
                Some(Ok(watcher::Event::InitDone)) if saw_gone => return Ok(()),
                Some(Ok(other)) => return Err(format!("unexpected event before the 410: {other:?}")),
                None => return Err("watcher ended".to_owned()),
            }
        }
    })
    .await
    .map_err(|_| "the watcher did not relist after 410 Gone")??;
    assert!(saw_gone);
    assert_eq!(relisted, ["first"]);

    api.create(&PostParams::default(), &sealed_secret("second", &[("k", "AgA=")])).await?;
    next_matching(
        &mut events,
        "Apply(second) after the relist",
        |e| matches!(e, watcher::Event::Apply(o) if o.name_any() == "second"),
    )
    .await?;

    ns.finish().await?;
    Ok(())
}

fn owned_secret(name: &str, owner: Option<&SealedSecret>) -> Result<Secret> {
    let owner_references = match owner {
        Some(owner) => Some(vec![OwnerReference {
            api_version: SealedSecret::api_version(&()).into_owned(),
            kind: SealedSecret::kind(&()).into_owned(),
            name: owner.name_any(),
            uid: owner.uid().ok_or("owner without uid")?,
            controller: Some(true),
            block_owner_deletion: None,
        }]),
        None => None,
    };
    Ok(Secret {
        metadata: ObjectMeta { name: Some(name.to_owned()), owner_references, ..ObjectMeta::default() },
        string_data: Some([("k".to_owned(), "v".to_owned())].into()),
        ..Secret::default()
    })
}

#[tokio::test]
async fn owner_references_garbage_collect_child_secrets() -> Result {
    let (ns, api) = setup("gc").await?;
    let secrets = ns.api::<Secret>();
    let pp = PostParams::default();

    let owner = api.create(&pp, &sealed_secret("owned", &[("k", "AgA=")])).await?;
    secrets.create(&pp, &owned_secret("owned", Some(&owner))?).await?;
    let orphaning = api.create(&pp, &sealed_secret("orphaning", &[("k", "AgA=")])).await?;
    secrets.create(&pp, &owned_secret("orphaning", Some(&orphaning))?).await?;
    secrets.create(&pp, &owned_secret("bystander", None)?).await?;

    // Background deletion of the owner: the garbage collector deletes the child Secret.
    api.delete("owned", &DeleteParams::background()).await?;
    k8s::poll("the garbage collector to delete Secret owned", GC, || async {
        Ok(secrets.get_opt("owned").await.map_err(k8s_error)?.is_none().then_some(()))
    })
    .await?;

    // Orphan deletion: the child stays, with the ownerReference removed by the garbage collector.
    api.delete("orphaning", &DeleteParams::orphan()).await?;
    let orphan = k8s::poll("the garbage collector to orphan Secret orphaning", GC, || async {
        let owner_gone = api.get_opt("orphaning").await.map_err(k8s_error)?.is_none();
        let child = secrets.get("orphaning").await.map_err(k8s_error)?;
        Ok((owner_gone && child.owner_references().is_empty()).then_some(child))
    })
    .await?;
    assert_eq!(orphan.name_any(), "orphaning");

    assert!(secrets.get_opt("bystander").await?.is_some(), "a Secret without owner must stay");
    ns.finish().await?;
    Ok(())
}

fn k8s_error(source: kube::Error) -> k8s::Error {
    k8s::Error::Kube { what: "polling".to_owned(), source }
}
