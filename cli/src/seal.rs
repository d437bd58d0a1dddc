//! `arcseal seal`: Secrets in, SealedSecrets out, as kubeseal does, but GitOps-clean: stable order,
//! no `creationTimestamp: null`, no status, labels and annotations kept on the SealedSecret and its
//! template, `last-applied-configuration` and ownerReferences dropped, the sealing key recorded.

use std::collections::BTreeMap;

use arcseal_crypto::{CLUSTER_WIDE_ANNOTATION, Certificate, NAMESPACE_WIDE_ANNOTATION, Scope};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use rayon::prelude::*;

use crate::error::{Error, Location, Result};
use crate::input::Document;
use crate::manifest::{
    API_VERSION, KIND, LAST_APPLIED_ANNOTATION, SealedSecret, SealedSecretSpec, SecretInput,
    SecretTemplateSpec,
};

/// How to seal.
#[derive(Debug, Clone)]
pub struct SealOptions {
    /// `--scope`; when `None`, the input Secret's scope annotations decide (strict by default).
    pub scope: Option<Scope>,
    /// `-n/--namespace`; an input naming another namespace is an error.
    pub namespace: Option<String>,
    /// Namespace for inputs that name none and no `-n` (kubectl's: the kubeconfig context's, else
    /// `default`), or why there is none (an unreadable kubeconfig): an error only when a Secret needs it.
    /// A cluster-wide Secret naming no namespace never needs it and stays namespace-less.
    pub fallback_namespace: std::result::Result<String, String>,
    /// Seal a Secret with no items.
    pub allow_empty_data: bool,
}

impl Default for SealOptions {
    fn default() -> Self {
        SealOptions {
            scope: None,
            namespace: None,
            fallback_namespace: Ok("default".to_owned()),
            allow_empty_data: false,
        }
    }
}

/// A Secret ready to seal: where it came from, what to write, and its items.
struct Prepared {
    at: Location,
    sealed: SealedSecret,
    label: Vec<u8>,
    input: SecretInput,
}

/// Seals every Secret document with `cert`. All-or-nothing: any bad document fails the whole call.
pub fn seal_documents(
    docs: &[Document],
    cert: &Certificate,
    options: &SealOptions,
) -> Result<Vec<SealedSecret>> {
    let mut prepared = docs.iter().map(|doc| prepare(doc, options)).collect::<Result<Vec<_>>>()?;
    let jobs: Vec<(usize, &String, &[u8])> = prepared
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.input.items.iter().map(move |(k, v)| (i, k, v.as_slice())))
        .collect();
    let sealed_values = jobs
        .par_iter()
        .map(|(i, item, plaintext)| {
            let p = &prepared[*i];
            arcseal_crypto::seal(cert.public_key(), &p.label, plaintext)
                .map(|value| (*i, (*item).clone(), value))
                .map_err(|source| Error::Encrypt { at: Box::new(p.at.item(item)), source })
        })
        .collect::<Result<Vec<_>>>()?;
    for (i, item, value) in sealed_values {
        prepared[i].sealed.spec.encrypted_data.insert(item, value);
    }
    Ok(prepared
        .into_iter()
        .map(|mut p| {
            p.sealed.record_sealing_key(cert.fingerprint(), false);
            p.sealed
        })
        .collect())
}

/// Adds or replaces the items of the Secret in `doc` in `existing`, sealed with `cert` for
/// `existing`'s own name, namespace and scope. Other items keep their ciphertext byte for byte.
pub fn merge_into(
    existing: &mut SealedSecret,
    existing_at: &Location,
    doc: &Document,
    cert: &Certificate,
    options: &SealOptions,
) -> Result<usize> {
    let input = SecretInput::from_value(&doc.value.0, &doc.at)?;
    let at = doc.at.object("Secret", input.metadata.namespace.as_deref(), input.metadata.name.as_deref());
    let target = existing.location(existing_at);
    for (what, given, theirs) in [
        ("name", input.metadata.name.as_deref(), existing.name()),
        (
            "namespace",
            input.metadata.namespace.as_deref().or(options.namespace.as_deref()),
            existing.namespace(),
        ),
    ] {
        if let Some(given) = given
            && given != theirs
        {
            return Err(Error::input(
                &at,
                format!(
                    "{what} {given:?} differs from {theirs:?} in {target}; items are sealed for the target's {what}"
                ),
            ));
        }
    }
    if let Some(scope) = options.scope
        && scope != existing.scope()
    {
        return Err(Error::input(
            &target,
            format!(
                "is {} but --scope {scope} was given; drop --scope to merge with its scope",
                existing.scope()
            ),
        ));
    }
    if input.items.is_empty() {
        return Err(Error::input(&at, "has no data or stringData: nothing to merge"));
    }
    let label = existing.encryption_label();
    let new = input
        .items
        .par_iter()
        .map(|(item, plaintext)| {
            arcseal_crypto::seal(cert.public_key(), &label, plaintext)
                .map(|v| (item.clone(), v))
                .map_err(|source| Error::Encrypt { at: Box::new(at.item(item)), source })
        })
        .collect::<Result<Vec<_>>>()?;
    let kept = existing.spec.encrypted_data.keys().filter(|k| !input.items.contains_key(*k)).count();
    let count = new.len();
    existing.spec.encrypted_data.extend(new);
    existing.record_sealing_key(cert.fingerprint(), kept > 0);
    Ok(count)
}

/// `--raw`: one value for `namespace`/`name` under `scope`, base64 as it goes into encryptedData.
pub fn seal_raw(
    cert: &Certificate,
    scope: Scope,
    namespace: Option<&str>,
    name: Option<&str>,
    plaintext: &[u8],
) -> Result<String> {
    let need = |what: &str, value: Option<&str>| {
        value.filter(|v| !v.is_empty()).map(str::to_owned).ok_or_else(|| {
            Error::Usage(format!("--raw with --scope {scope} needs --{what} (the value is bound to it)"))
        })
    };
    for (what, value, problem) in [
        ("namespace", namespace, crate::names::label_problem as fn(&str) -> Option<String>),
        ("name", name, crate::names::subdomain_problem),
    ] {
        if let Some(why) = value.filter(|v| !v.is_empty()).and_then(problem) {
            return Err(Error::Usage(format!("--{what} {:?} {why}", value.unwrap_or_default())));
        }
    }
    let (namespace, name) = match scope {
        Scope::Strict => (need("namespace", namespace)?, need("name", name)?),
        Scope::NamespaceWide => (need("namespace", namespace)?, String::new()),
        Scope::ClusterWide => (String::new(), String::new()),
    };
    arcseal_crypto::seal(cert.public_key(), &scope.encryption_label(&namespace, &name), plaintext)
        .map_err(|source| Error::Encrypt { at: Box::new(Location::source("--raw")), source })
}

fn prepare(doc: &Document, options: &SealOptions) -> Result<Prepared> {
    let input = SecretInput::from_value(&doc.value.0, &doc.at)?;
    let meta = &input.metadata;
    let at = doc.at.object("Secret", meta.namespace.as_deref(), meta.name.as_deref());
    let name = meta.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
        Error::input(&at, "metadata.name is missing; a SealedSecret is bound to its Secret's name")
    })?;
    if let Some(why) = crate::names::subdomain_problem(&name) {
        return Err(Error::input(
            &at,
            format!("metadata.name {name:?} {why}; the API server would refuse it"),
        ));
    }
    let scope = options.scope.unwrap_or_else(|| {
        let annotations = meta.annotations.as_ref();
        Scope::from_annotations(|k| annotations.and_then(|a| a.get(k)).map(String::as_str))
    });
    let namespace = match (meta.namespace.as_deref(), options.namespace.as_deref()) {
        (Some(mine), Some(flag)) if !mine.is_empty() && mine != flag => {
            return Err(Error::input(
                &at,
                format!("metadata.namespace {mine:?} conflicts with --namespace {flag:?}; drop one of them"),
            ));
        }
        (Some(mine), _) if !mine.is_empty() => Some(mine.to_owned()),
        (_, Some(flag)) => Some(flag.to_owned()),
        // A cluster-wide value is not bound to a namespace: leave it out, as kubeseal does.
        _ if scope == Scope::ClusterWide => None,
        _ => Some(options.fallback_namespace.clone().map_err(|why| {
            Error::input(&at, format!("names no namespace and {why}; give metadata.namespace or --namespace"))
        })?),
    };
    if let Some(ns) = &namespace
        && let Some(why) = crate::names::label_problem(ns)
    {
        return Err(Error::input(&at, format!("namespace {ns:?} {why}; the API server would refuse it")));
    }
    if input.items.is_empty() && !options.allow_empty_data {
        return Err(Error::input(
            &at,
            "has no data or stringData: nothing to seal (pass --allow-empty-data to seal it anyway)",
        ));
    }

    let mut annotations = clean_annotations(meta.annotations.as_ref());
    let template_annotations = annotations.clone();
    if let Some((key, value)) = scope.annotation() {
        annotations.insert(key.to_owned(), value.to_owned());
    }
    let labels = meta.labels.clone().filter(|l| !l.is_empty());
    let template_meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: namespace.clone(),
        labels: labels.clone(),
        annotations: Some(template_annotations).filter(|a| !a.is_empty()),
        finalizers: meta.finalizers.clone().filter(|f| !f.is_empty()),
        ..ObjectMeta::default()
    };
    let sealed = SealedSecret {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: namespace.clone(),
            labels,
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: SealedSecretSpec {
            data: None,
            encrypted_data: BTreeMap::new(),
            template: Some(SecretTemplateSpec {
                data: None,
                immutable: input.immutable,
                metadata: Some(template_meta),
                type_: input.type_.clone(),
            }),
        },
        status: None,
    };
    let label = scope.encryption_label(namespace.as_deref().unwrap_or(""), &name);
    Ok(Prepared { at, sealed, label, input })
}

/// The input's annotations minus kubectl's copy of the whole object (it holds the plaintext) and
/// minus the scope annotations (the SealedSecret's own metadata carries the scope).
fn clean_annotations(annotations: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| {
            ![LAST_APPLIED_ANNOTATION, NAMESPACE_WIDE_ANNOTATION, CLUSTER_WIDE_ANNOTATION]
                .contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
