//! The arcseal controller crate: the Secrets Store CSI Driver provider for Azure Key Vault ([`csi`]) and the in-cluster
//! unseal controller ([`unseal`]), and the HTTP accept loop both serve their ports with ([`listener`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csi;
pub mod listener;
pub mod unseal;
