//! The `bitnami.com/v1alpha1` SealedSecret resource, shaped field for field like sealed-secrets' own CRD so that
//! existing objects validate unchanged. The CRD YAML (`deploy/crds/sealedsecret.yaml`) is generated from these
//! types by the `crdgen` binary; a test fails when the checked-in file is stale.
//!
//! Only ciphertexts and templates live here, so `Debug` shows nothing secret.

use std::collections::BTreeMap;

use arcseal_crypto::Scope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{CustomResource, CustomResourceExt, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type the controller maintains.
pub const CONDITION_SYNCED: &str = "Synced";

/// What a SealedSecret holds: sealed values and the shape of the Secret to create.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    singular = "sealedsecret",
    namespaced,
    status = "SealedSecretStatus",
    doc = "A Secret whose values are encrypted so that only the controller's keys can decrypt them.",
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[0].message"}"#,
    printcolumn = r#"{"name":"Synced","type":"string","jsonPath":".status.conditions[0].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Deprecated v1 form: one hybrid ciphertext of a whole JSON Secret. Use encryptedData instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "legacy_data_schema")]
    pub data: Option<String>,
    /// Item name to sealed value (base64 of RSA-OAEP session key + AES-256-GCM ciphertext).
    #[serde(default)]
    #[schemars(schema_with = "encrypted_data_schema")]
    pub encrypted_data: BTreeMap<String, String>,
    /// The Secret to create, apart from its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SecretTemplateSpec>,
}

/// `spec.template`: what the unsealed Secret looks like apart from its data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplateSpec {
    /// Labels, annotations and finalizers of the Secret (name and namespace are always the SealedSecret's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "template_metadata_schema")]
    pub metadata: Option<ObjectMeta>,
    /// Type of the Secret (default Opaque).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Whether the Secret is immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// Keys rendered with Go text/template (Sprig subset) over the decrypted items, e.g. `{{ index . "foo" }}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "template_data_schema")]
    pub data: Option<BTreeMap<String, String>>,
}

/// The most recently observed state of a SealedSecret, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The metadata.generation the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest observations; the controller maintains the one of type Synced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SealedSecretCondition>,
}

/// One observation of a SealedSecret's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    /// Type of condition: Synced.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// Last time the condition was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub last_update_time: Option<String>,
    /// Last time the condition changed status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "date_time_schema")]
    pub last_transition_time: Option<String>,
    /// Machine-readable reason of the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What went wrong, when not synced. Never holds a plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SealedSecret {
    /// The scope declared in the SealedSecret's own top-level annotations, never in its template
    /// (reading the template was CVE-2026-22728).
    pub fn scope(&self) -> Scope {
        let annotations = self.metadata.annotations.as_ref();
        Scope::from_annotations(|k| annotations.and_then(|a| a.get(k)).map(String::as_str))
    }

    /// The OAEP label the SealedSecret's values must have been sealed under.
    pub fn encryption_label(&self) -> Vec<u8> {
        self.scope().encryption_label(&self.namespace().unwrap_or_default(), &self.name_any())
    }

    /// The `Synced` condition, if written.
    pub fn synced_condition(&self) -> Option<&SealedSecretCondition> {
        self.status.as_ref()?.conditions.iter().find(|c| c.type_ == CONDITION_SYNCED)
    }
}

/// Where the generated CRD is checked in, relative to the repository root: the one source (Kustomize reads it) and
/// the Helm chart's copy.
pub const CRD_PLACES: [&str; 2] =
    ["deploy/crds/sealedsecret.yaml", "deploy/helm/arcseal/crds/sealedsecret.yaml"];

/// The CRD as YAML, exactly as `deploy/crds/sealedsecret.yaml` holds it.
pub fn crd_yaml() -> String {
    let crd = SealedSecret::crd();
    let mut out = String::from(
        "# Generated by `cargo run -p arcseal-controller --bin crdgen`; do not edit.\n\
         # bitnami.com/v1alpha1 SealedSecret, compatible with sealed-secrets' own CRD (objects validate unchanged).\n",
    );
    // serde_json::Value -> YAML through serde-saphyr keeps key order as generated (sorted maps).
    let value = serde_json::to_value(&crd).unwrap_or_default();
    out.push_str(&serde_saphyr::to_string(&value).unwrap_or_default());
    out
}

fn legacy_data_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Deprecated v1 form: one hybrid ciphertext of a whole JSON Secret. Use encryptedData instead.",
        "type": "string",
        "format": "byte"
    })
}

fn encrypted_data_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    // sealed-secrets' CRD preserves unknown fields here; kept so that every object it accepted validates.
    schemars::json_schema!({
        "description": "Item name to sealed value (base64 of RSA-OAEP session key + AES-256-GCM ciphertext).",
        "type": "object",
        "additionalProperties": {"type": "string"},
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn template_metadata_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Labels, annotations and finalizers of the Secret (name and namespace are always the SealedSecret's).",
        "type": "object",
        "nullable": true,
        "properties": {
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "name": {"type": "string"},
            "namespace": {"type": "string"}
        },
        "x-kubernetes-preserve-unknown-fields": true
    })
}

fn template_data_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Keys rendered with Go text/template (Sprig subset) over the decrypted items, e.g. {{ index . \"foo\" }}.",
        "type": "object",
        "nullable": true,
        "additionalProperties": {"type": "string"}
    })
}

fn date_time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "format": "date-time"})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_comes_from_own_metadata_not_the_template() {
        let mut ss = SealedSecret::new("db", SealedSecretSpec::default());
        ss.metadata.namespace = Some("team-a".into());
        let template_meta = ObjectMeta {
            annotations: Some(
                [(arcseal_crypto::CLUSTER_WIDE_ANNOTATION.to_owned(), "true".to_owned())].into(),
            ),
            ..ObjectMeta::default()
        };
        ss.spec.template = Some(SecretTemplateSpec { metadata: Some(template_meta), ..Default::default() });
        assert_eq!(ss.scope(), Scope::Strict);
        assert_eq!(ss.encryption_label(), b"team-a/db");
        ss.metadata.annotations =
            Some([(arcseal_crypto::NAMESPACE_WIDE_ANNOTATION.to_owned(), "true".to_owned())].into());
        assert_eq!(ss.encryption_label(), b"team-a");
    }

    #[test]
    fn checked_in_crds_are_current() {
        for place in CRD_PLACES {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(place);
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                checked_in == crd_yaml(),
                "{place} is stale: run `cargo run -p arcseal-controller --bin crdgen -- --write`"
            );
        }
    }

    #[test]
    fn crd_has_status_subresource_printer_columns_and_no_cel() {
        let yaml = crd_yaml();
        assert!(yaml.contains("status: {}"), "{yaml}");
        assert!(yaml.contains(".status.conditions[0].message"));
        assert!(!yaml.contains("x-kubernetes-validations"), "CEL rules are not served by Kubernetes 1.20");
        assert_eq!(yaml.matches("x-kubernetes-preserve-unknown-fields: true").count(), 2, "{yaml}");
    }
}
