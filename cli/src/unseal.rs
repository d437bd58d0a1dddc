//! `arcseal unseal`: offline recovery of the Secret a SealedSecret stands for, with private keys
//! (PEM files or the controller's key Secret backups). What the controller would create, minus the
//! ownerReference: name and namespace forced to the SealedSecret's, template metadata, type, immutable.

use std::collections::BTreeMap;

use arcseal_crypto::KeyRing;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Location, Result};
use crate::input::Wiped;
use crate::manifest::{SealedSecret, SecretInput, SecretOutput};

/// Decrypts every item of `sealed` and builds the Secret.
pub fn unseal(sealed: &SealedSecret, ring: &KeyRing, at: &Location) -> Result<SecretOutput> {
    let at = sealed.location(at);
    let label = sealed.encryption_label();
    let hint = sealed.sealed_with().first().copied();
    let mut items: BTreeMap<String, Zeroizing<Vec<u8>>> = BTreeMap::new();

    if let Some(legacy) = &sealed.spec.data {
        items = open_legacy(legacy, &label, ring, &at)?;
    }
    for (item, value) in &sealed.spec.encrypted_data {
        let opened = ring
            .open_value(&label, value, hint.as_ref())
            .map_err(|source| Error::Decrypt { at: Box::new(at.item(item)), source })?;
        items.insert(item.clone(), opened.plaintext.into_zeroizing());
    }

    let template = sealed.spec.template.clone().unwrap_or_default();
    if let Some(templates) = &template.data {
        // The controller's engine and bounds: offline recovery renders exactly what the cluster renders.
        let rendered =
            arcseal_template::render_template_data(templates, &items, &arcseal_template::Limits::default())
                .map_err(|e| Error::input(&at.item("spec.template.data"), template_message(&e, &items)))?;
        items.extend(rendered);
    }

    let template_meta = template.metadata.unwrap_or_default();
    let metadata = ObjectMeta {
        name: sealed.metadata.name.clone(),
        namespace: sealed.metadata.namespace.clone(),
        labels: template_meta.labels,
        annotations: template_meta.annotations,
        finalizers: template_meta.finalizers,
        ..ObjectMeta::default()
    };
    let data =
        items.iter().map(|(k, v)| (k.clone(), Zeroizing::new(arcseal_crypto::encode_base64(v)))).collect();
    Ok(SecretOutput {
        api_version: "v1",
        kind: "Secret",
        metadata,
        immutable: template.immutable,
        type_: template.type_,
        data,
    })
}

/// A template error as the user reads it: the engine's words (key, position, the template's source), unless they
/// share a run with a decrypted value; the engine never quotes values, this checks it again.
fn template_message(error: &arcseal_template::Error, items: &BTreeMap<String, Zeroizing<Vec<u8>>>) -> String {
    let message = error.to_string();
    let windows: std::collections::HashSet<&[u8]> = message.as_bytes().windows(4).collect();
    let overlaps = items.values().any(|v| v.windows(4).any(|w| windows.contains(w)));
    if overlaps {
        "a spec.template.data entry failed to render (details withheld: they overlap a decrypted value)"
            .to_owned()
    } else {
        format!("{message}; the controller would fail the same way")
    }
}

/// The deprecated v1 form: `spec.data` seals a whole JSON Secret; its items become the Secret's.
fn open_legacy(
    value: &str,
    label: &[u8],
    ring: &KeyRing,
    at: &Location,
) -> Result<BTreeMap<String, Zeroizing<Vec<u8>>>> {
    let legacy_at = at.item("spec.data");
    let opened = ring
        .open_value(label, value, None)
        .map_err(|source| Error::Decrypt { at: Box::new(legacy_at.clone()), source })?;
    let secret: Wiped = Wiped(
        serde_json::from_slice::<Value>(opened.plaintext.as_bytes())
            .map_err(|_| Error::input(&legacy_at, "decrypted, but the content is not a JSON Secret"))?,
    );
    Ok(SecretInput::from_value(&secret.0, &legacy_at)?.items)
}

/// The scope a SealedSecret is opened under, for messages.
pub fn describe_scope(sealed: &SealedSecret) -> String {
    sealed.scope().describe(sealed.namespace(), sealed.name())
}
