//! The controller's own `SealedSecret` type (bitnami.com/v1alpha1) and the CRD deploy/ installs, for the harness
//! tests: what they check about the API server is checked against exactly what users apply.

use arcseal_controller::unseal::crd::SealedSecretSpec;
pub use arcseal_controller::unseal::crd::{SealedSecret, SealedSecretCondition, SealedSecretStatus};

/// The CRD as deploy/ ships it (written by `crdgen --write`; a controller unit test keeps it current).
pub const CRD_YAML: &str = include_str!("../../../deploy/crds/sealedsecret.yaml");

/// A SealedSecret named `name` with the given (opaque, here fake) ciphertexts.
pub fn sealed_secret(name: &str, items: &[(&str, &str)]) -> SealedSecret {
    SealedSecret::new(
        name,
        SealedSecretSpec {
            encrypted_data: items.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            ..Default::default()
        },
    )
}
