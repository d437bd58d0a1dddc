//! The SecretProviderClasses shipped in `deploy/` (examples and the gitops example) are accepted by the CSI
//! provider's own parameter parser, with exactly what the Secrets Store CSI Driver adds at mount time, and select the
//! identity mode their file says. `deploy/test.sh` checks the rest of `deploy/` with kubectl, helm and a real
//! API server; this test needs none of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arcseal_keyvault::params::{self, IdentityRequest, WORKLOAD_IDENTITY_AUDIENCE};
use serde_json::{Value, json};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml") {
            out.push(path);
        }
    }
}

/// Every `SecretProviderClass` with `provider: arcseal` under `deploy/examples` and `deploy/gitops-example`.
fn provider_classes() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&deploy_dir().join("examples"), &mut files);
    yaml_files(&deploy_dir().join("gitops-example"), &mut files);
    let mut classes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable YAML file");
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", file.display()));
        for doc in docs {
            if doc["kind"] == "SecretProviderClass" {
                assert_eq!(
                    doc["apiVersion"],
                    "secrets-store.csi.x-k8s.io/v1",
                    "{}: the driver's current API",
                    file.display()
                );
                assert_eq!(doc["spec"]["provider"], "arcseal", "{}: provider", file.display());
                classes.push((file.clone(), doc));
            }
        }
    }
    classes
}

/// The `attributes` of a `MountRequest` as the driver builds them: the class's parameters plus the pod's fields, and
/// the pod's token for audience api://AzureADTokenExchange when the CSIDriver has `tokenRequests`.
fn mount_attributes(class: &Value) -> String {
    let mut attrs: BTreeMap<String, String> =
        serde_json::from_value(class["spec"]["parameters"].clone()).expect("parameters are a map of strings");
    attrs.insert(params::keys::POD_NAME.into(), "app-7d4b9c-x2x9q".into());
    attrs.insert(params::keys::POD_NAMESPACE.into(), "team-a".into());
    attrs.insert(params::keys::POD_UID.into(), "0b8e4c4e-0000-4000-8000-000000000001".into());
    attrs.insert(params::keys::SERVICE_ACCOUNT_NAME.into(), "app".into());
    let tokens = json!({WORKLOAD_IDENTITY_AUDIENCE: {"token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln", "expirationTimestamp": "2030-01-01T00:00:00Z"}});
    attrs.insert(params::keys::SERVICE_ACCOUNT_TOKENS.into(), tokens.to_string());
    serde_json::to_string(&attrs).expect("JSON")
}

/// The `secrets` of a `MountRequest`: the nodePublishSecretRef's data when the pod names one (service principal).
fn mount_secrets(uses_node_publish_secret: bool) -> String {
    if uses_node_publish_secret {
        json!({"clientid": "00000000-0000-4000-8000-000000000003", "clientsecret": "example"}).to_string()
    } else {
        "null".into()
    }
}

#[test]
fn every_shipped_secret_provider_class_parses_with_its_identity_mode() {
    let classes = provider_classes();
    assert!(
        classes.len() >= 5,
        "expected the 3 examples and the gitops example's 2, found {}",
        classes.len()
    );
    let mut modes = BTreeMap::<&str, usize>::new();
    for (file, class) in &classes {
        let name = class["metadata"]["name"].as_str().unwrap_or_default();
        let parameters = &class["spec"]["parameters"];
        // Which mode the class means: VM identity and workload identity say so in parameters; anything else
        // authenticates with the nodePublishSecretRef the pod names.
        let expected = if parameters["useVMManagedIdentity"] == "true" {
            "vm_managed_identity"
        } else if parameters.get("clientID").is_some() {
            "workload_identity"
        } else {
            "service_principal"
        };
        let mount = params::parse_mount(
            &mount_attributes(class),
            &mount_secrets(expected == "service_principal"),
            "\"420\"",
        )
        .unwrap_or_else(|e| panic!("{} ({name}): the provider refuses it: {e}", file.display()));
        assert_eq!(mount.identity.mode(), expected, "{} ({name})", file.display());
        assert!(!mount.objects.is_empty(), "{} ({name}): no objects", file.display());
        if let IdentityRequest::VmManagedIdentity { user_assigned_id } = &mount.identity {
            assert!(
                user_assigned_id.is_some(),
                "{} ({name}): name the user-assigned identity",
                file.display()
            );
        }
        *modes.entry(mount.identity.mode()).or_default() += 1;
    }
    for mode in ["workload_identity", "service_principal", "vm_managed_identity"] {
        assert!(modes.contains_key(mode), "no example for {mode}: {modes:?}");
    }
}

#[test]
fn each_example_file_is_named_after_its_identity_mode() {
    for (file, class) in provider_classes() {
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let Some(mode) = stem.strip_prefix("secretproviderclass-") else { continue };
        let mount = params::parse_mount(
            &mount_attributes(&class),
            &mount_secrets(mode == "service-principal"),
            "\"420\"",
        )
        .expect("parses (checked above)");
        assert_eq!(mount.identity.mode().replace('_', "-"), mode, "{}", file.display());
    }
}
