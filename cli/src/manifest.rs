//! The resources as sealed-secrets reads and writes them: `bitnami.com/v1alpha1` SealedSecret and
//! `v1` Secret. Field order is fixed (alphabetical, as kubeseal's YAML), maps are sorted, and empty
//! or server-side fields (`creationTimestamp`, `status`, `uid`...) are never written.

use std::collections::BTreeMap;

use arcseal_crypto::{Fingerprint, Scope};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Location, Result};

/// `apiVersion` of a SealedSecret.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// `kind` of a SealedSecret.
pub const KIND: &str = "SealedSecret";
/// Annotation arcseal writes on a SealedSecret: the fingerprints (`sha256:<hex>`, comma-separated,
/// newest first) of the keys its items were sealed with. sealed-secrets ignores unknown annotations.
pub const SEALING_KEY_ANNOTATION: &str = "arcseal.dev/sealed-with";
/// Annotation kubectl leaves on applied objects; it holds the whole object, plaintext included.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Template annotation: do not set an ownerReference on the unsealed Secret.
pub const SKIP_OWNER_REFERENCES_ANNOTATION: &str = "sealedsecrets.bitnami.com/skip-set-owner-references";

/// A SealedSecret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecret {
    /// `bitnami.com/v1alpha1`.
    pub api_version: String,
    /// `SealedSecret`.
    pub kind: String,
    /// Name, namespace, labels, annotations (the scope annotation lives here).
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to unseal.
    pub spec: SealedSecretSpec,
    /// Written by the controller; never by arcseal.
    #[serde(default, skip_serializing)]
    pub status: Option<Value>,
}

/// `spec` of a SealedSecret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Deprecated v1 form: one hybrid ciphertext of a whole JSON Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Item name -> sealed value (base64).
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, String>,
    /// What the unsealed Secret looks like apart from its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplateSpec>,
}

/// `spec.template`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplateSpec {
    /// Go text/template values rendered with the decrypted items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<BTreeMap<String, String>>,
    /// `immutable` of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Labels, annotations, finalizers of the Secret (name and namespace are forced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ObjectMeta>,
    /// `type` of the Secret.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

impl SealedSecret {
    /// The scope the SealedSecret declares in its own metadata (never its template).
    pub fn scope(&self) -> Scope {
        let annotations = self.metadata.annotations.as_ref();
        Scope::from_annotations(|k| annotations.and_then(|a| a.get(k)).map(String::as_str))
    }

    /// Namespace, or "" when unset.
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("")
    }

    /// Name, or "" when unset.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// The OAEP label its values are sealed under.
    pub fn encryption_label(&self) -> Vec<u8> {
        self.scope().encryption_label(self.namespace(), self.name())
    }

    /// Where this object is, for errors.
    pub fn location(&self, at: &Location) -> Location {
        at.object(KIND, self.metadata.namespace.as_deref(), self.metadata.name.as_deref())
    }

    /// Key fingerprints recorded in [`SEALING_KEY_ANNOTATION`].
    pub fn sealed_with(&self) -> Vec<Fingerprint> {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SEALING_KEY_ANNOTATION))
            .map(|v| v.split(',').filter_map(|f| Fingerprint::parse(f.trim())).collect())
            .unwrap_or_default()
    }

    /// Records that items were sealed with `newest`, keeping earlier fingerprints whose items remain.
    pub fn record_sealing_key(&mut self, newest: Fingerprint, keep_earlier: bool) {
        let mut prints = vec![newest];
        if keep_earlier {
            prints.extend(self.sealed_with().into_iter().filter(|f| *f != newest));
        }
        let value = prints.iter().map(|f| format!("sha256:{f}")).collect::<Vec<_>>().join(",");
        self.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(SEALING_KEY_ANNOTATION.into(), value);
    }

    /// Parses a document as a SealedSecret.
    pub fn from_value(value: &Value, at: &Location) -> Result<SealedSecret> {
        expect_kind(value, at, API_VERSION, KIND)?;
        let sealed: SealedSecret = serde_json::from_value(value.clone()).map_err(|e| {
            Error::input(at, format!("not a valid SealedSecret: {e}; compare with `arcseal seal` output"))
        })?;
        let at = sealed.location(at);
        if sealed.spec.data.is_some() && !sealed.spec.encrypted_data.is_empty() {
            return Err(Error::input(
                &at,
                "sets both spec.data (deprecated v1 form) and spec.encryptedData; keep only encryptedData",
            ));
        }
        Ok(sealed)
    }
}

/// A Secret to seal: its metadata, type, and decoded items (from `data` and `stringData`).
pub struct SecretInput {
    /// Metadata as given.
    pub metadata: ObjectMeta,
    /// `type`, if given.
    pub type_: Option<String>,
    /// `immutable`, if given.
    pub immutable: Option<bool>,
    /// Item name -> plaintext bytes (wiped on drop). `stringData` overrides `data`.
    pub items: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl SecretInput {
    /// Parses a document as a `v1` Secret. Messages name fields and items, never values.
    pub fn from_value(value: &Value, at: &Location) -> Result<SecretInput> {
        expect_kind(value, at, "v1", "Secret")?;
        let metadata: ObjectMeta = match value.get("metadata") {
            None | Some(Value::Null) => ObjectMeta::default(),
            Some(m) => serde_json::from_value(m.clone())
                .map_err(|e| Error::input(at, format!("invalid metadata: {e}")))?,
        };
        let at = at.object("Secret", metadata.namespace.as_deref(), metadata.name.as_deref());
        let type_ = optional_string(value, "type", &at)?;
        let immutable = match value.get("immutable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(Error::input(&at, "immutable must be true or false")),
        };
        let mut items = BTreeMap::new();
        for (field, encoded) in [("data", true), ("stringData", false)] {
            let map = match value.get(field) {
                None | Some(Value::Null) => continue,
                Some(Value::Object(map)) => map,
                Some(_) => {
                    return Err(Error::input(&at, format!("{field} must be a map of item name to value")));
                }
            };
            for (key, v) in map {
                let item_at = at.item(key);
                check_item_name(key, &item_at)?;
                let text = match v {
                    Value::String(s) => s.as_str(),
                    Value::Null => "",
                    _ => {
                        return Err(Error::input(
                            &item_at,
                            format!("{field} values must be strings; quote the value in the YAML"),
                        ));
                    }
                };
                let bytes = if encoded {
                    arcseal_crypto::decode_base64(text).map_err(|_| {
                        Error::input(
                            &item_at,
                            "data values must be base64; base64-encode it or move it to stringData",
                        )
                    })?
                } else {
                    text.as_bytes().to_vec()
                };
                items.insert(key.clone(), Zeroizing::new(bytes));
            }
        }
        Ok(SecretInput { metadata, type_, immutable, items })
    }
}

/// A `v1` Secret as `arcseal unseal` prints it. Values are base64 text of plaintexts, wiped on drop.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretOutput {
    /// `v1`.
    pub api_version: &'static str,
    /// `Secret`.
    pub kind: &'static str,
    /// Name, namespace, labels, annotations from the template.
    pub metadata: ObjectMeta,
    /// `immutable` from the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// `type` from the template.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Item -> base64 of the plaintext.
    pub data: BTreeMap<String, Zeroizing<String>>,
}

/// Kubernetes Secret keys: `[-._a-zA-Z0-9]+`, at most 253 characters.
pub fn check_item_name(key: &str, at: &Location) -> Result<()> {
    let valid = !key.is_empty()
        && key.len() <= 253
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::input(
            at,
            "invalid item name: Secret keys are 1-253 characters of letters, digits, '-', '_' and '.'",
        ))
    }
}

fn expect_kind(value: &Value, at: &Location, api_version: &str, kind: &str) -> Result<()> {
    if !value.is_object() {
        return Err(Error::input(at, format!("not a Kubernetes object; expected a {kind}")));
    }
    let got_kind = value.get("kind").and_then(Value::as_str);
    if got_kind != Some(kind) {
        return Err(Error::input(
            at,
            format!(
                "kind is {}, expected {kind}",
                got_kind.map_or_else(|| "missing".to_owned(), |k| format!("{k:?}"))
            ),
        ));
    }
    match value.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v == api_version => Ok(()),
        None if kind == "Secret" => Ok(()),
        other => Err(Error::input(at, format!("apiVersion is {other:?}, expected {api_version:?}"))),
    }
}

fn optional_string(value: &Value, field: &str, at: &Location) -> Result<Option<String>> {
    match value.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::input(at, format!("{field} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at() -> Location {
        Location::source("in.yaml").document(1)
    }

    #[test]
    fn secret_items_merge_data_and_string_data() {
        let v = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
            "data": {"a": "aGk=", "b": "Yg=="}, "stringData": {"b": "override"}, "type": "Opaque"});
        let s = SecretInput::from_value(&v, &at()).unwrap();
        assert_eq!(s.items["a"].as_slice(), b"hi");
        assert_eq!(s.items["b"].as_slice(), b"override");
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
    }

    #[test]
    fn secret_errors_name_the_item_and_never_the_value() {
        let v = json!({"kind": "Secret", "metadata": {"name": "s", "namespace": "n"}, "data": {"pw": "hunter2!"}});
        let err = SecretInput::from_value(&v, &at()).err().unwrap().to_string();
        assert_eq!(
            err,
            "in.yaml, document 1 (Secret n/s), item \"pw\": data values must be base64; base64-encode it or move it to stringData"
        );
        let v = json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"port": 5432}});
        let err = SecretInput::from_value(&v, &at()).err().unwrap().to_string();
        assert!(err.contains("item \"port\"") && err.contains("quote"), "{err}");
        let v = json!({"kind": "Secret", "metadata": {"name": "s"}, "stringData": {"a/b": "x"}});
        assert!(SecretInput::from_value(&v, &at()).err().unwrap().to_string().contains("invalid item name"));
        let v = json!({"kind": "ConfigMap", "data": {}});
        assert!(
            SecretInput::from_value(&v, &at()).err().unwrap().to_string().contains("kind is \"ConfigMap\"")
        );
    }

    #[test]
    fn sealed_secret_scope_comes_from_its_own_metadata_only() {
        let v = json!({"apiVersion": API_VERSION, "kind": KIND,
            "metadata": {"name": "s", "namespace": "n"},
            "spec": {"encryptedData": {"a": "AQA="},
                "template": {"metadata": {"annotations": {"sealedsecrets.bitnami.com/cluster-wide": "true"}}}}});
        let s = SealedSecret::from_value(&v, &at()).unwrap();
        assert_eq!(s.scope(), Scope::Strict);
        assert_eq!(s.encryption_label(), b"n/s");
    }

    #[test]
    fn both_legacy_data_and_encrypted_data_is_refused() {
        let v = json!({"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "s"},
            "spec": {"data": "AAAA", "encryptedData": {"a": "AQA="}}});
        assert!(
            SealedSecret::from_value(&v, &at())
                .err()
                .unwrap()
                .to_string()
                .contains("keep only encryptedData")
        );
    }

    #[test]
    fn sealing_key_annotation_keeps_earlier_keys_when_asked() {
        let mut s = SealedSecret {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: ObjectMeta::default(),
            spec: SealedSecretSpec::default(),
            status: None,
        };
        let (a, b) = (Fingerprint([1; 32]), Fingerprint([2; 32]));
        s.record_sealing_key(a, true);
        s.record_sealing_key(b, true);
        assert_eq!(s.sealed_with(), vec![b, a]);
        s.record_sealing_key(b, false);
        assert_eq!(s.sealed_with(), vec![b]);
    }
}
