//! From decrypted items to the Secret in the cluster, without I/O: the desired Secret ([`desired_secret`]) and what
//! to do about the live one ([`plan`]), following sealed-secrets' rules:
//!
//! - name and namespace are the SealedSecret's; labels, annotations, finalizers, `type` and `immutable` come from
//!   `spec.template`; an ownerReference (controller) points at the SealedSecret unless the template annotation
//!   `sealedsecrets.bitnami.com/skip-set-owner-references: "true"` is set, in which case the Secret is marked
//!   `sealedsecrets.bitnami.com/managed: "true"` so that later passes may still update it;
//! - a live Secret is touched only when it is controlled by this SealedSecret, or annotated `managed` (taken over:
//!   replaced) or `patch` (merged: data, labels and annotations added or overwritten, nothing removed);
//! - nothing is written when nothing differs; a Secret whose `type` changes, or an immutable one whose content
//!   changes, is deleted and created again (the API server refuses to update either), but only after a server-side
//!   dry run of the new Secret succeeds, and never when it was handed over with `patch` (it holds others' keys).

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::crd::SealedSecret;
use super::template::Items;

/// On a live Secret: the controller may take it over (replace it).
pub const MANAGED_ANNOTATION: &str = "sealedsecrets.bitnami.com/managed";
/// On a live Secret: the controller merges into it.
pub const PATCH_ANNOTATION: &str = "sealedsecrets.bitnami.com/patch";
/// On `spec.template.metadata.annotations`: no ownerReference on the Secret.
pub const SKIP_OWNER_REFERENCES_ANNOTATION: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";

/// What to do with the live Secret. Its `Debug` names the variant only: the Secrets it carries hold decrypted data.
#[derive(PartialEq)]
pub enum Plan {
    /// No Secret of that name: create this one.
    Create(Secret),
    /// Replace the live Secret with this one (it carries the live `resourceVersion`).
    Update(Secret),
    /// Delete the live Secret (by uid and resourceVersion) and create this one: its type or immutable content
    /// changes. Done only after a server-side dry run of the new Secret succeeds.
    Recreate(Secret),
    /// The type or immutable content of a Secret handed over with the `patch` annotation would change: it holds
    /// keys that are not ours, so it is never deleted.
    RefuseRecreatePatched,
    /// The live Secret already is what it should be.
    Unchanged,
    /// A Secret of that name exists that this SealedSecret neither controls nor was handed.
    Refuse,
}

impl std::fmt::Debug for Plan {
    /// The variant only, never the Secret it carries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Plan::Create(_) => "Create",
            Plan::Update(_) => "Update",
            Plan::Recreate(_) => "Recreate",
            Plan::RefuseRecreatePatched => "RefuseRecreatePatched",
            Plan::Unchanged => "Unchanged",
            Plan::Refuse => "Refuse",
        })
    }
}

fn is_true(map: Option<&BTreeMap<String, String>>, key: &str) -> bool {
    map.and_then(|m| m.get(key)).is_some_and(|v| v == "true")
}

/// The Secret `ss` stands for, with `items` as its data.
pub fn desired_secret(ss: &SealedSecret, items: Items) -> Secret {
    let template = ss.spec.template.clone().unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut annotations = meta.annotations.unwrap_or_default();
    let skip_owner = is_true(Some(&annotations), SKIP_OWNER_REFERENCES_ANNOTATION);
    let owner_references = if skip_owner {
        annotations.insert(MANAGED_ANNOTATION.to_owned(), "true".to_owned());
        None
    } else {
        ss.controller_owner_ref(&()).map(|r| vec![r])
    };
    let data = items.iter().map(|(k, v)| (k.clone(), ByteString(v.to_vec()))).collect();
    Secret {
        metadata: ObjectMeta {
            name: ss.metadata.name.clone(),
            namespace: ss.metadata.namespace.clone(),
            labels: meta.labels.filter(|l| !l.is_empty()),
            annotations: Some(annotations).filter(|a| !a.is_empty()),
            finalizers: meta.finalizers.filter(|f| !f.is_empty()),
            owner_references,
            ..ObjectMeta::default()
        },
        type_: Some(template.type_.filter(|t| !t.is_empty()).unwrap_or_else(|| "Opaque".to_owned())),
        immutable: template.immutable,
        data: Some(data),
        ..Secret::default()
    }
}

/// Whether the controller may write a live Secret with this metadata: controlled by (an ownerReference to) the
/// SealedSecret with `uid`, or annotated `managed` or `patch`.
pub fn may_touch(meta: &ObjectMeta, uid: &str) -> bool {
    let annotations = meta.annotations.as_ref();
    meta.owner_references.iter().flatten().any(|r| r.uid == uid)
        || is_true(annotations, MANAGED_ANNOTATION)
        || is_true(annotations, PATCH_ANNOTATION)
}

/// Whether `secret` has an ownerReference to the SealedSecret with `uid`.
pub fn owned_by(secret: &Secret, uid: &str) -> bool {
    secret.owner_references().iter().any(|r| r.uid == uid)
}

/// Decides what to do, given the desired Secret and the live one (if any). `owner_uid` is the SealedSecret's uid.
pub fn plan(desired: Secret, live: Option<Secret>, owner_uid: &str) -> Plan {
    let Some(live) = live else { return Plan::Create(desired) };
    let live_annotations = live.metadata.annotations.as_ref();
    let patch = is_true(live_annotations, PATCH_ANNOTATION);
    let managed = is_true(live_annotations, MANAGED_ANNOTATION);
    if !(owned_by(&live, owner_uid) || managed || patch) {
        return Plan::Refuse;
    }
    let mut next = live.clone();
    if patch {
        let merge = |into: &mut Option<BTreeMap<String, String>>, from: Option<BTreeMap<String, String>>| {
            if let Some(from) = from {
                into.get_or_insert_with(BTreeMap::new).extend(from);
            }
        };
        merge(&mut next.metadata.labels, desired.metadata.labels);
        merge(&mut next.metadata.annotations, desired.metadata.annotations);
        if let Some(data) = desired.data {
            next.data.get_or_insert_with(BTreeMap::new).extend(data);
        }
        for r in desired.metadata.owner_references.into_iter().flatten() {
            add_owner(&mut next.metadata, r);
        }
        if let Some(f) = desired.metadata.finalizers {
            let list = next.metadata.finalizers.get_or_insert_with(Vec::new);
            list.extend(f.into_iter().filter(|x| !list.contains(x)).collect::<Vec<_>>());
        }
        if desired.type_.as_deref() != Some("Opaque") {
            next.type_ = desired.type_;
        }
        if desired.immutable.is_some() {
            next.immutable = desired.immutable;
        }
    } else {
        let mut annotations = desired.metadata.annotations.unwrap_or_default();
        if managed {
            // Taken over: keep the mark, so a Secret without an ownerReference stays manageable.
            annotations.insert(MANAGED_ANNOTATION.to_owned(), "true".to_owned());
        }
        next.metadata.annotations = Some(annotations).filter(|a| !a.is_empty());
        next.metadata.labels = desired.metadata.labels;
        next.metadata.finalizers = desired.metadata.finalizers;
        // Keep other owners (not controllers) someone else set; replace any controller reference with ours.
        let mut owners: Vec<OwnerReference> = live
            .owner_references()
            .iter()
            .filter(|r| r.controller != Some(true) && r.uid != owner_uid)
            .cloned()
            .collect();
        owners.extend(desired.metadata.owner_references.into_iter().flatten());
        next.metadata.owner_references = Some(owners).filter(|o| !o.is_empty());
        next.data = desired.data;
        next.type_ = desired.type_;
        next.immutable = desired.immutable;
    }
    if same_content(&next, &live) {
        return Plan::Unchanged;
    }
    let type_changes = next.type_.as_deref().unwrap_or("Opaque") != live.type_.as_deref().unwrap_or("Opaque");
    if type_changes || live.immutable == Some(true) {
        if patch {
            return Plan::RefuseRecreatePatched;
        }
        next.metadata.resource_version = None;
        next.metadata.uid = None;
        next.metadata.creation_timestamp = None;
        next.metadata.managed_fields = None;
        return Plan::Recreate(next);
    }
    Plan::Update(next)
}

fn add_owner(meta: &mut ObjectMeta, owner: OwnerReference) {
    let owners = meta.owner_references.get_or_insert_with(Vec::new);
    if !owners.iter().any(|r| r.uid == owner.uid) {
        // Only one controller reference is allowed; ours becomes a plain owner if another controls it.
        let controlled = owners.iter().any(|r| r.controller == Some(true));
        owners.push(OwnerReference { controller: (!controlled).then_some(true), ..owner });
    }
}

fn same_content(a: &Secret, b: &Secret) -> bool {
    let empty_map = |m: &Option<BTreeMap<String, String>>| m.clone().filter(|m| !m.is_empty());
    a.data.clone().unwrap_or_default() == b.data.clone().unwrap_or_default()
        && a.type_.as_deref().unwrap_or("Opaque") == b.type_.as_deref().unwrap_or("Opaque")
        && a.immutable.unwrap_or(false) == b.immutable.unwrap_or(false)
        && empty_map(&a.metadata.labels) == empty_map(&b.metadata.labels)
        && empty_map(&a.metadata.annotations) == empty_map(&b.metadata.annotations)
        && a.metadata.finalizers.clone().unwrap_or_default()
            == b.metadata.finalizers.clone().unwrap_or_default()
        && a.owner_references() == b.owner_references()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unseal::crd::{SealedSecretSpec, SecretTemplateSpec};
    use zeroize::Zeroizing;

    fn ss() -> SealedSecret {
        let mut ss = SealedSecret::new("db", SealedSecretSpec::default());
        ss.metadata.namespace = Some("team-a".into());
        ss.metadata.uid = Some("uid-1".into());
        ss
    }

    fn items(pairs: &[(&str, &str)]) -> Items {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), Zeroizing::new(v.as_bytes().to_vec()))).collect()
    }

    fn data(s: &Secret) -> BTreeMap<String, String> {
        s.data.iter().flatten().map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap())).collect()
    }

    fn live_with(annotation: Option<&str>) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("db".into());
        s.metadata.namespace = Some("team-a".into());
        s.metadata.resource_version = Some("7".into());
        s.metadata.labels = Some([("keep".to_owned(), "me".to_owned())].into());
        if let Some(a) = annotation {
            s.metadata.annotations = Some([(a.to_owned(), "true".to_owned())].into());
        }
        s.data = Some([("old".to_owned(), ByteString(b"o".to_vec()))].into());
        s.type_ = Some("Opaque".into());
        s
    }

    #[test]
    fn desired_secret_takes_template_and_owner() {
        let mut ss = ss();
        ss.spec.template = Some(SecretTemplateSpec {
            metadata: Some(ObjectMeta {
                name: Some("ignored".into()),
                labels: Some([("app".to_owned(), "x".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            type_: Some("kubernetes.io/basic-auth".into()),
            immutable: Some(true),
            data: None,
        });
        let s = desired_secret(&ss, items(&[("username", "u")]));
        assert_eq!(s.metadata.name.as_deref(), Some("db"));
        assert_eq!(s.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        assert_eq!(s.immutable, Some(true));
        assert_eq!(s.owner_references()[0].uid, "uid-1");
        assert_eq!(s.owner_references()[0].controller, Some(true));
        assert_eq!(s.labels().get("app").map(String::as_str), Some("x"));
        assert!(matches!(plan(s, None, "uid-1"), Plan::Create(_)));
    }

    #[test]
    fn skip_owner_references_marks_the_secret_managed() {
        let mut ss = ss();
        ss.spec.template = Some(SecretTemplateSpec {
            metadata: Some(ObjectMeta {
                annotations: Some([(SKIP_OWNER_REFERENCES_ANNOTATION.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            }),
            ..SecretTemplateSpec::default()
        });
        let s = desired_secret(&ss, items(&[("a", "1")]));
        assert!(s.owner_references().is_empty());
        assert_eq!(s.annotations().get(MANAGED_ANNOTATION).map(String::as_str), Some("true"));
        // The next pass may update it.
        let mut live = s.clone();
        live.data = Some(BTreeMap::new());
        assert!(matches!(plan(s, Some(live), "uid-1"), Plan::Update(_)));
    }

    #[test]
    fn unowned_secret_is_refused_managed_is_replaced_patch_is_merged() {
        let desired = || desired_secret(&ss(), items(&[("new", "n")]));
        assert_eq!(plan(desired(), Some(live_with(None)), "uid-1"), Plan::Refuse);

        let Plan::Update(s) = plan(desired(), Some(live_with(Some(MANAGED_ANNOTATION))), "uid-1") else {
            panic!()
        };
        assert_eq!(data(&s), BTreeMap::from([("new".into(), "n".into())]));
        assert!(s.labels().is_empty(), "managed: replaced");
        assert_eq!(s.owner_references()[0].uid, "uid-1");
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"), "update is conditional");

        let Plan::Update(s) = plan(desired(), Some(live_with(Some(PATCH_ANNOTATION))), "uid-1") else {
            panic!()
        };
        assert_eq!(data(&s), BTreeMap::from([("new".into(), "n".into()), ("old".into(), "o".into())]));
        assert_eq!(s.labels().get("keep").map(String::as_str), Some("me"), "patch: nothing removed");
        assert_eq!(s.annotations().get(PATCH_ANNOTATION).map(String::as_str), Some("true"));
    }

    #[test]
    fn unchanged_is_not_written_and_immutable_or_type_change_recreates() {
        let desired = desired_secret(&ss(), items(&[("a", "1")]));
        let mut live = desired.clone();
        live.metadata.resource_version = Some("9".into());
        assert_eq!(plan(desired.clone(), Some(live.clone()), "uid-1"), Plan::Unchanged);

        let other = desired_secret(&ss(), items(&[("a", "2")]));
        assert!(matches!(plan(other.clone(), Some(live.clone()), "uid-1"), Plan::Update(_)));
        live.immutable = Some(true);
        let Plan::Recreate(s) = plan(other, Some(live.clone()), "uid-1") else { panic!() };
        assert_eq!(s.metadata.resource_version, None);
        live.immutable = None;
        let mut typed = desired.clone();
        typed.type_ = Some("kubernetes.io/tls".into());
        assert!(matches!(plan(typed, Some(live), "uid-1"), Plan::Recreate(_)));
    }
}
