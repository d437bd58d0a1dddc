//! Helpers shared by the `csi_*` socket test binaries: the stand-in and the provider started together, service
//! principal attributes for a SecretProviderClass, and the files of a mount by path.
#![allow(dead_code)]

use std::collections::BTreeMap;

use arcseal_controller::csi::proto::MountResponse;
use arcseal_tests::keyvault::KeyVaultStandIn;
use arcseal_tests::keyvault::provider::{Pod, ProviderHarness, attributes, objects};

pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
pub const SP: &str = r#"{"clientid":"app-1","clientsecret":"s3cret"}"#;

/// The mount's files by path: (mode, contents).
pub fn files(r: &MountResponse) -> BTreeMap<String, (i32, Vec<u8>)> {
    r.files.iter().map(|f| (f.path.clone(), (f.mode, f.contents.clone()))).collect()
}

/// The Key Vault stand-in with the service principal app-1, and a provider on a socket talking to it.
pub async fn setup() -> (KeyVaultStandIn, ProviderHarness) {
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("app-1", "s3cret");
    let p = ProviderHarness::start(&kv).await;
    (kv, p)
}

/// Mount attributes for vault kv1 in [`TENANT`] with `objs`, from pod team-a/app.
pub fn sp_attrs(objs: &[&str]) -> String {
    sp_attrs_with(objs, &[])
}

/// [`sp_attrs`] plus `extra` parameters.
pub fn sp_attrs_with(objs: &[&str], extra: &[(&str, &str)]) -> String {
    let o = objects(objs);
    let mut params = vec![("keyvaultName", "kv1"), ("tenantID", TENANT), ("objects", o.as_str())];
    params.extend_from_slice(extra);
    attributes(&params, &Pod::new("team-a", "app"))
}
