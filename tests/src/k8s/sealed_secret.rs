//! A stand-in for the controller's `SealedSecret` type (bitnami.com/v1alpha1) and its CRD, enough for the
//! harness tests to exercise what the controller will rely on. The controller issue replaces both with the real
//! type and its generated CRD.

use std::collections::BTreeMap;

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The hand-written CRD, `tests/fixtures/k8s/sealedsecret-crd.yaml`.
pub const CRD_YAML: &str = include_str!("../../fixtures/k8s/sealedsecret-crd.yaml");

/// `spec` of a SealedSecret: ciphertexts only, so `Debug` shows nothing secret.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    namespaced,
    status = "SealedSecretStatus",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Item name to base64 ciphertext.
    #[serde(default)]
    pub encrypted_data: BTreeMap<String, String>,
    /// The Secret to create, without its data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<serde_json::Value>,
}

/// `status` of a SealedSecret as the controller writes it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// The `metadata.generation` the controller last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Synced` and friends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SealedSecretCondition>,
}

/// One entry of `status.conditions`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    /// `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    /// The error, when not synced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A SealedSecret named `name` with the given (opaque, here fake) ciphertexts.
pub fn sealed_secret(name: &str, items: &[(&str, &str)]) -> SealedSecret {
    SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            template: None,
        },
    )
}
