//! deploy/README.md's Flux walkthrough, step 4, on a copy of `deploy/gitops-example/`: sealing a new
//! Secret into its own file leaves the file holding the other SealedSecrets untouched, and the PR gate
//! passes with 0 errors and 0 warnings.

use std::path::{Path, PathBuf};

mod common;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn step_4_seals_into_a_new_file_and_the_gate_passes() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/gitops-example");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("config");
    copy_dir(&example, &repo);
    let existing = repo.join("apps/dev/team-a-secrets.sealedsecret.yaml");
    let before = std::fs::read(&existing).unwrap();
    // What `kubectl create secret generic app-api -n team-a --from-literal=token=... --dry-run=client -o yaml` prints.
    let secret = "apiVersion: v1\ndata:\n  token: czNjcmV0\nkind: Secret\nmetadata:\n  creationTimestamp: null\n  name: app-api\n  namespace: team-a\n";
    let cert = repo.join("clusters/dev/sealed-secrets-cert.pem").display().to_string();
    let target = repo.join("apps/dev/app-api.sealedsecret.yaml").display().to_string();
    let out = common::arcseal(&["seal", "--cert", &cert, "-w", &target], Some(secret.as_bytes()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read(&existing).unwrap(),
        before,
        "the file with the other SealedSecrets is untouched"
    );
    let out =
        common::arcseal(&["validate", "--cert", &cert, &repo.join("apps/dev").display().to_string()], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("3 SealedSecret(s) checked: 0 error(s), 0 warning(s)"), "{stderr}");
}
