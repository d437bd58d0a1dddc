//! The `arcseal` library: what the `arcseal` command does, as functions over manifests.
//!
//! - [`input`] reads Kubernetes manifests (YAML or JSON, several documents, `v1` Lists) with limits;
//! - [`manifest`] is the `bitnami.com/v1alpha1` SealedSecret and the `v1` Secret as sealed-secrets sees them;
//! - [`repo_config`] is `.arcseal.yaml`: which cluster (certificate, kube context) each repository path belongs to;
//! - [`seal`], [`unseal`], [`validate`] and [`rotate`] are the operations ([`keyvault`]: rotate's Key Vault half); [`keys`] reads private keys and the key
//!   Secret backups the sealed-secrets controller keeps; [`output`] renders and writes atomically.
//!
//! [`cluster`] reaches the cluster as kubectl does (kubeconfig rules, the controller behind the API
//! server's service proxy; [`status`] reads a cluster's controller, keys and SealedSecrets), [`controller`] speaks
//! the controller's HTTP API, [`names`] checks object names as the API server does, [`pr`] opens rotate's pull
//! request on GitHub or Azure DevOps.
//!
//! Cryptography lives in [`arcseal_crypto`]; nothing here touches a cipher directly.

#![forbid(unsafe_code)]

pub mod cluster;
pub mod controller;
pub mod error;
pub mod input;
pub mod keys;
pub mod keyvault;
pub mod manifest;
pub mod names;
pub mod output;
pub mod pr;
pub mod repo;
pub mod repo_config;
pub mod rotate;
pub mod seal;
pub mod status;
pub mod unseal;
pub mod validate;
pub mod vault_keys;

pub use error::{Error, Location, Result};
