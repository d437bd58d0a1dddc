//! deploy/README.md's Flux walkthrough on a copy of `deploy/gitops-example/`: step 4 (sealing a new
//! Secret into its own file leaves the file holding the other SealedSecrets untouched, and the PR gate
//! passes with 0 errors and 0 warnings) and "Several clusters" (adding a third cluster).

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

/// A copy of deploy/gitops-example in a temporary directory, and the copy's root.
fn example_copy() -> (tempfile::TempDir, PathBuf) {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/gitops-example");
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("config");
    copy_dir(&example, &repo);
    (dir, repo)
}

#[test]
fn step_4_seals_into_a_new_file_and_the_gate_passes() {
    let (_dir, repo) = example_copy();
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

/// deploy/README.md's "Several clusters" walkthrough: a third cluster (staging) joins the example's
/// `.arcseal.yaml`, its certificate is pinned (here: made by `arcseal keygen`, as no cluster runs), one
/// Secret is sealed for every cluster at once, and `arcseal validate apps` checks each against its own.
#[test]
fn adding_a_third_cluster_seals_for_all_three_and_the_gate_passes() {
    let (dir, repo) = example_copy();
    let run = |args: &[&str], stdin: Option<&[u8]>| common::arcseal_in(&repo, args, stdin);
    let before = std::fs::read_to_string(repo.join(".arcseal.yaml")).unwrap();
    std::fs::write(
        repo.join(".arcseal.yaml"),
        format!(
            "{before}  staging:\n    cert: clusters/staging/sealed-secrets-cert.pem\n    paths: [\"apps/staging/**\"]\n    context: staging\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(repo.join("clusters/staging")).unwrap();
    let key = dir.path().join("staging-key.yaml").display().to_string();
    common::ok(&run(
        &[
            "keygen",
            "--bits",
            "2048",
            "--key-out",
            &dir.path().join("staging.pem").display().to_string(),
            "--cert-out",
            "clusters/staging/sealed-secrets-cert.pem",
            "--secret-out",
            &key,
        ],
        None,
    ));
    let secret = "apiVersion: v1\ndata:\n  token: czNjcmV0\nkind: Secret\nmetadata:\n  name: app-api\n  namespace: team-a\n";
    let out = run(
        &["seal", "--all-clusters", "-w", "apps/{cluster}/app-api.sealedsecret.yaml"],
        Some(secret.as_bytes()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for cluster in ["dev", "prod", "staging"] {
        assert!(
            stderr.contains(&format!("sealed for {cluster}: apps/{cluster}/app-api.sealedsecret.yaml")),
            "{stderr}"
        );
    }
    let unsealed = common::ok(&run(
        &["unseal", "--private-key", &key, "-f", "apps/staging/app-api.sealedsecret.yaml"],
        None,
    ));
    assert!(unsealed.contains("token: czNjcmV0"), "staging's key opens staging's copy");
    let out = run(&["validate", "apps"], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}{stderr}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains("7 SealedSecret(s) checked: 0 error(s), 0 warning(s)"), "{stderr}");
}
