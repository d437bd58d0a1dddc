//! Test support shared by arcseal's integration tests: a real Kubernetes API server per test binary
//! ([`k8s`]) and a wire-faithful Azure Key Vault + Entra ID stand-in ([`keyvault`]).

pub mod k8s;
pub mod keyvault;
