//! What the arcseal CLI (`arcseal rotate --rotate-values`) and the CSI provider (`arcseal-controller csi-provider`)
//! share about Azure Key Vault, so that a SecretProviderClass means the same thing to both:
//!
//! - [`params`]: the SecretProviderClass parameters of Azure's provider (`keyvaultName`, `cloudName`, `objects`,
//!   identities, the driver's mount attributes), parsed under size and parse budgets; every one is untrusted input.
//! - [`cloud`]: which Entra ID authority and Key Vault DNS suffix a `cloudName` means, and the operator's overrides.
//! - [`http`]: the HTTPS client handed to the SDK (platform roots plus an optional CA bundle, no redirects, timeouts).
//! - [`service_error`]: what Key Vault or Entra ID said in an error answer (status, code, message, Retry-After),
//!   cut to a bounded, control-free text.
//!
//! - [`retry`]: how long to wait for a throttled or failing vault.
//! - [`sealing_keys`]: the cluster's sealing key pairs kept as Key Vault secrets (storage form, listing, reading,
//!   storing, bounded retries), for the unseal controller and the CLI.
//! - [`credential`]: the Entra ID credential a binary takes from its environment (workload identity or service
//!   principal).
//!
//! No tonic, no kube, no file I/O of its own; [`sealing_keys`] makes its calls through the SDK client it is given.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cloud;
pub mod credential;
pub mod http;
pub mod params;
pub mod retry;
pub mod sealing_keys;
pub mod service_error;
