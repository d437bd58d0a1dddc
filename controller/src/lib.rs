//! The arcseal controller crate: the Secrets Store CSI Driver provider for Azure Key Vault ([`csi`]) and the in-cluster
//! unseal controller ([`unseal`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod csi;
pub mod unseal;
