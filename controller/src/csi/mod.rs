//! `arcseal-controller csi-provider`: a provider for the Secrets Store CSI Driver that serves Azure Key Vault objects
//! with the Azure provider's SecretProviderClass parameters, behind a per-identity cache.
//!
//! Wire contract (proto/service.proto, package `v1alpha1`): the driver calls `Version` and `Mount` over a unix socket;
//! `Mount` gets `attributes` (JSON object of strings), `secrets` (JSON or `null`), `permission` (decimal mode) and
//! returns files (relative path, mode, contents) plus one `ObjectVersion` per file (`<type>/<name>[/<index>]` and the
//! Key Vault version id). `grpc.health.v1.Health` is served on the same socket.
//!
//! Flow of a mount: [`arcseal_keyvault::params`] parses and validates (the parameter rules the CLI shares); [`cloud`] resolves the authority and vault DNS suffix;
//! [`identity`] picks (or creates) the credential and clients for the caller's identity; [`cache`] answers from memory
//! or makes one Key Vault call shared by concurrent mounts ([`keyvault`] retries 429/5xx within a bounded wait);
//! [`content`] renders the files. Nothing is returned unless every object succeeded.

pub mod cache;
pub mod cloud;
pub mod content;
pub mod health;
pub mod identity;
pub mod keyvault;
pub mod metrics;
pub mod server;

/// Generated from proto/service.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("v1alpha1");
}
