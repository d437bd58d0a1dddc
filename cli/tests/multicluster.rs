//! Issue 15, "seal once for every cluster": a three-cluster repository (dev, staging, prod) with an
//! `.arcseal.yaml`, keys made by `arcseal keygen` per test, and the real binary run in the repository.
//! Each SealedSecret must open with its own cluster's key and no other.

use std::path::{Path, PathBuf};

mod common;
use common::{arcseal_in, failed, ok};

const CLUSTERS: [&str; 3] = ["dev", "staging", "prod"];

const CONFIG: &str = "version: 1
clusters:
  dev:
    cert: clusters/dev/sealed-secrets-cert.pem
    paths: [\"apps/dev/**\"]
  staging:
    cert: clusters/staging/sealed-secrets-cert.pem
    paths: [\"apps/staging/**\"]
  prod:
    cert: clusters/prod/sealed-secrets-cert.pem
    paths: [\"apps/prod/**\", \"clusters/prod/*.yaml\"]
";

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: hunter2\n";

/// A repository with the config and each cluster's certificate pinned; the key backups live outside it.
struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("config");
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(root.join("apps")).unwrap();
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(root.join(".arcseal.yaml"), CONFIG).unwrap();
        let repo = Repo { _dir: dir, root, keys };
        for cluster in CLUSTERS {
            std::fs::create_dir_all(repo.root.join("clusters").join(cluster)).unwrap();
            repo.keygen(cluster, "1", &repo.cert(cluster));
        }
        repo
    }

    fn cert(&self, cluster: &str) -> PathBuf {
        self.root.join("clusters").join(cluster).join("sealed-secrets-cert.pem")
    }

    /// Generates key `generation` of `cluster`: its key Secret backup is keys/<cluster>-<generation>.yaml.
    fn keygen(&self, cluster: &str, generation: &str, cert_out: &Path) {
        let key = self.keys.join(format!("{cluster}-{generation}.pem"));
        let backup = self.backup(cluster, generation);
        ok(&self.run(&[
            "keygen",
            "--bits",
            "2048",
            "--key-out",
            &key.display().to_string(),
            "--cert-out",
            &cert_out.display().to_string(),
            "--secret-out",
            &backup,
        ]));
    }

    fn backup(&self, cluster: &str, generation: &str) -> String {
        self.keys.join(format!("{cluster}-{generation}.yaml")).display().to_string()
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        arcseal_in(&self.root, args, Some(SECRET.as_bytes()))
    }

    /// Whether `file` opens with key `generation` of `cluster` alone.
    fn opens(&self, file: &str, cluster: &str, generation: &str) -> bool {
        let out = self.run(&["unseal", "--private-key", &self.backup(cluster, generation), "-f", file]);
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("password"), "unsealed: no item");
        }
        out.status.success()
    }
}

#[test]
fn seal_takes_the_certificate_of_the_cluster_that_owns_the_output_path() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.root.join("apps/prod")).unwrap();
    ok(&repo.run(&["seal", "-w", "apps/prod/db.yaml"]));
    assert!(repo.opens("apps/prod/db.yaml", "prod", "1"));
    assert!(!repo.opens("apps/prod/db.yaml", "dev", "1"));
    assert!(!repo.opens("apps/prod/db.yaml", "staging", "1"));

    // From a subdirectory, the config is found above; --for-cluster seals to stdout.
    let out =
        arcseal_in(&repo.root.join("apps"), &["seal", "--for-cluster", "staging"], Some(SECRET.as_bytes()));
    std::fs::write(repo.root.join("staging.yaml"), ok(&out)).unwrap();
    assert!(repo.opens("staging.yaml", "staging", "1"));
    assert!(!repo.opens("staging.yaml", "prod", "1"));
}

/// `seal --all-clusters --merge-into 'apps/{cluster}/db.yaml'`: a new item merged into every cluster's existing
/// SealedSecret with that cluster's certificate; the items already there stay byte-identical. A cluster whose file
/// is missing stops the run before any file changes.
#[test]
fn all_clusters_merges_a_new_item_into_each_clusters_file() {
    let repo = Repo::new();
    ok(&repo.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    let before: Vec<String> = CLUSTERS
        .iter()
        .map(|c| std::fs::read_to_string(repo.root.join(format!("apps/{c}/db.yaml"))).unwrap())
        .collect();
    let item = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  apikey: k3y\n";
    let out = arcseal_in(
        &repo.root,
        &["seal", "--all-clusters", "--merge-into", "apps/{cluster}/db.yaml"],
        Some(item.as_bytes()),
    );
    ok(&out);
    for (cluster, before) in CLUSTERS.iter().zip(&before) {
        let file = format!("apps/{cluster}/db.yaml");
        let after = std::fs::read_to_string(repo.root.join(&file)).unwrap();
        let password = |text: &str| text.lines().find(|l| l.contains("password:")).unwrap().to_owned();
        assert_eq!(password(&after), password(before), "{file}: the existing item is untouched");
        assert!(after.contains("apikey:"), "{file}");
        let unsealed = repo.run(&["unseal", "--private-key", &repo.backup(cluster, "1"), "-f", &file]);
        let text = ok(&unsealed);
        assert!(text.contains("apikey") && text.contains("password"), "{file}");
        let other = if *cluster == "dev" { "prod" } else { "dev" };
        assert!(!repo.opens(&file, other, "1"), "{file} opens with {other}'s key");
    }

    std::fs::remove_file(repo.root.join("apps/staging/db.yaml")).unwrap();
    let dev_before = std::fs::read_to_string(repo.root.join("apps/dev/db.yaml")).unwrap();
    let item2 = item.replace("apikey: k3y", "token: t0k");
    let out = arcseal_in(
        &repo.root,
        &["seal", "--all-clusters", "--merge-into", "apps/{cluster}/db.yaml"],
        Some(item2.as_bytes()),
    );
    let err = failed(&out);
    assert!(err.contains("staging") && err.contains("apps/staging/db.yaml"), "{err}");
    assert_eq!(
        std::fs::read_to_string(repo.root.join("apps/dev/db.yaml")).unwrap(),
        dev_before,
        "nothing written"
    );
    let neither = failed(&repo.run(&["seal", "--all-clusters"]));
    assert!(neither.contains("-w PATTERN") && neither.contains("--merge-into PATTERN"), "{neither}");
}

/// kubeseal's own cluster flags pick a cluster of the config too: `--cluster NAME` (a cluster of the config by that
/// name) and `--context CTX` (the cluster whose `context` is CTX) seal with its pinned certificate; names the
/// config does not know keep kubeseal's meaning (a kubeconfig cluster to fetch from).
#[test]
fn kubeseals_cluster_and_context_flags_select_a_cluster_of_the_config() {
    let repo = Repo::new();
    let with_context = CONFIG.replace(
        "  prod:\n    cert: clusters/prod/sealed-secrets-cert.pem\n",
        "  prod:\n    cert: clusters/prod/sealed-secrets-cert.pem\n    context: prod-admin\n",
    );
    assert_ne!(with_context, CONFIG);
    std::fs::write(repo.root.join(".arcseal.yaml"), with_context).unwrap();

    std::fs::write(repo.root.join("staging.yaml"), ok(&repo.run(&["seal", "--cluster", "staging"]))).unwrap();
    assert!(repo.opens("staging.yaml", "staging", "1") && !repo.opens("staging.yaml", "dev", "1"));
    std::fs::write(repo.root.join("prod.yaml"), ok(&repo.run(&["seal", "--context", "prod-admin"]))).unwrap();
    assert!(repo.opens("prod.yaml", "prod", "1") && !repo.opens("prod.yaml", "staging", "1"));

    let both = failed(&repo.run(&["seal", "--cluster", "staging", "--context", "prod-admin"]));
    assert!(both.contains("name different clusters") && both.contains("prod"), "{both}");
    std::fs::create_dir_all(repo.root.join("apps/prod")).unwrap();
    let misrouted = failed(&repo.run(&["seal", "--cluster", "dev", "-w", "apps/prod/db.yaml"]));
    assert!(misrouted.contains("belongs to cluster prod"), "{misrouted}");
    assert!(!repo.root.join("apps/prod/db.yaml").exists());
    // A kubeconfig cluster the config does not name: kubeseal's fetch (no kubeconfig here), not a config error.
    let elsewhere = failed(&repo.run(&["seal", "--cluster", "kind-other"]));
    assert!(
        elsewhere.contains("fetched from the cluster") && !elsewhere.contains("stdout names no"),
        "{elsewhere}"
    );
}

#[test]
fn all_clusters_writes_one_sealed_secret_per_cluster_and_validate_checks_each_against_its_own() {
    let repo = Repo::new();
    let out = repo.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.sealedsecret.yaml"]);
    let stderr = String::from_utf8_lossy(&ok_output(&out).stderr).into_owned();
    for cluster in CLUSTERS {
        let file = format!("apps/{cluster}/db.sealedsecret.yaml");
        assert!(stderr.contains(&format!("sealed for {cluster}: {file}")), "{stderr}");
        for other in CLUSTERS {
            assert_eq!(repo.opens(&file, other, "1"), cluster == other, "{file} with {other}'s key");
        }
    }
    let out = repo.run(&["validate", "apps"]);
    let stderr = String::from_utf8_lossy(&ok_output(&out).stderr).into_owned();
    assert!(stderr.contains("3 SealedSecret(s) checked: 0 error(s), 0 warning(s)"), "{stderr}");

    // dev's SealedSecret copied into prod's directory: prod's certificate did not seal it.
    std::fs::copy(repo.root.join("apps/dev/db.sealedsecret.yaml"), repo.root.join("apps/prod/copied.yaml"))
        .unwrap();
    let out = repo.run(&["validate", "apps"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    failed(&out);
    let errors: Vec<&str> = report.lines().filter(|l| l.contains("error")).collect();
    assert!(!errors.is_empty() && errors.iter().all(|l| l.contains("apps/prod/copied.yaml")), "{report}");
    assert!(report.contains("sealed with cluster dev's certificate"), "{report}");

    // A SealedSecret outside every cluster's paths is reported, not silently passed.
    std::fs::remove_file(repo.root.join("apps/prod/copied.yaml")).unwrap();
    std::fs::create_dir_all(repo.root.join("apps/base")).unwrap();
    std::fs::copy(repo.root.join("apps/dev/db.sealedsecret.yaml"), repo.root.join("apps/base/stray.yaml"))
        .unwrap();
    let out = repo.run(&["validate", "apps"]);
    let report = String::from_utf8_lossy(&ok_output(&out).stdout).into_owned();
    assert!(
        report.contains("apps/base/stray.yaml") && report.contains("matches no cluster's paths"),
        "{report}"
    );
}

/// `validate PATH...` with PATHs in two repositories: each PATH is routed by the `.arcseal.yaml` above it, so the
/// second repository's files are checked against its own clusters' certificates (not reported as outside the first
/// one's paths); a file sealed for the other repository's cluster is flagged on that file. `--cluster-key` names
/// one config's clusters, so PATHs of two repositories are refused with it, naming both.
#[test]
fn validate_routes_each_path_by_its_own_repository_config() {
    let (a, b) = (Repo::new(), Repo::new());
    ok(&a.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    ok(&b.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    let b_apps = b.root.join("apps").display().to_string();
    let out = a.run(&["validate", "apps", &b_apps]);
    let stderr = String::from_utf8_lossy(&ok_output(&out).stderr).into_owned();
    assert!(stderr.contains("6 SealedSecret(s) checked: 0 error(s), 0 warning(s)"), "{stderr}");

    // a's dev SealedSecret in b's prod directory: b's prod certificate did not seal it (a warning, as for any
    // key the pinned certificate does not hold: it may be a retired key of that cluster).
    std::fs::copy(a.root.join("apps/dev/db.yaml"), b.root.join("apps/prod/copied.yaml")).unwrap();
    let report = ok(&a.run(&["validate", "apps", &b_apps]));
    let flagged: Vec<&str> = report.lines().filter(|l| l.starts_with("warning")).collect();
    assert_eq!(flagged.len(), 1, "{report}");
    assert!(
        flagged[0].contains(&format!("{b_apps}/prod/copied.yaml"))
            && flagged[0].contains("sealed with another key"),
        "{report}"
    );

    let key = format!("dev={}", a.backup("dev", "1"));
    let refused = failed(&a.run(&["validate", "apps", &b_apps, "--cluster-key", &key]));
    assert!(refused.contains("run validate once per repository") && refused.contains(&b_apps), "{refused}");
}

/// `validate --cluster-key NAME=FILE`: each file's items must open with its own cluster's keys; a key backup given
/// for the wrong cluster is an error on that cluster's file, and clusters without keys are checked by certificate.
#[test]
fn validate_opens_each_file_with_its_own_clusters_keys() {
    let repo = Repo::new();
    ok(&repo.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    let dev = format!("dev={}", repo.backup("dev", "1"));
    let prod = format!("prod={}", repo.backup("prod", "1"));
    let out = repo.run(&["validate", "apps", "--cluster-key", &dev, "--cluster-key", &prod]);
    assert!(ok(&out).is_empty(), "no problem reported");
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 SealedSecret(s) checked: 0 error(s)"));

    let swapped = format!("dev={}", repo.backup("prod", "1"));
    let out = repo.run(&["validate", "apps", "--cluster-key", &swapped, "--cluster-key", &prod]);
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("apps/dev/db.yaml") && report.contains("password"), "{report}");
    assert!(!report.contains("apps/prod/db.yaml") && !report.contains("apps/staging/db.yaml"), "{report}");

    let unknown = failed(&repo.run(&["validate", "apps", "--cluster-key", "qa=keys.yaml"]));
    assert!(unknown.contains("qa") && unknown.contains(".arcseal.yaml"), "{unknown}");
    let malformed = failed(&repo.run(&["validate", "apps", "--cluster-key", "dev"]));
    assert!(malformed.contains("NAME=FILE"), "{malformed}");
}

#[test]
fn rotate_all_clusters_reseals_each_cluster_with_its_own_newest_key_in_one_run() {
    let repo = Repo::new();
    ok(&repo.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    let before: Vec<Vec<u8>> = CLUSTERS
        .iter()
        .map(|c| std::fs::read(repo.root.join(format!("apps/{c}/db.yaml"))).unwrap())
        .collect();
    // Each controller renewed its key: a second generation per cluster (the repository's pins unchanged).
    for cluster in CLUSTERS {
        repo.keygen(cluster, "2", &repo.keys.join(format!("{cluster}-2.crt")));
    }
    let mut args = vec!["rotate".to_owned(), "--all-clusters".to_owned(), "apps".to_owned()];
    for cluster in ["dev", "staging"] {
        for generation in ["1", "2"] {
            args.extend([
                "--cluster-key".to_owned(),
                format!("{cluster}={}", repo.backup(cluster, generation)),
            ]);
        }
    }
    let stderr = failed(&repo.run(&["rotate", "--all-clusters", "apps"]));
    assert!(stderr.contains("--cluster-key NAME=FILE") && stderr.contains("--online"), "{stderr}");
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    // prod has SealedSecrets under apps/ and no key given: nothing is written.
    let stderr = failed(&repo.run(&args_ref));
    assert!(stderr.contains("cluster prod") && stderr.contains("--cluster-key prod=FILE"), "{stderr}");
    for (c, old) in CLUSTERS.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(repo.root.join(format!("apps/{c}/db.yaml"))).unwrap(),
            old,
            "{c} untouched"
        );
    }

    for generation in ["1", "2"] {
        args.extend(["--cluster-key".to_owned(), format!("prod={}", repo.backup("prod", generation))]);
    }
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    // A dry run plans every cluster and writes nothing; the report names each cluster's new key.
    let report = repo.keys.join("report.json");
    let dry = [args_ref.clone(), vec!["--dry-run", "--report", report.to_str().unwrap()]].concat();
    ok(&repo.run(&dry));
    for (c, old) in CLUSTERS.iter().zip(&before) {
        assert_eq!(
            &std::fs::read(repo.root.join(format!("apps/{c}/db.yaml"))).unwrap(),
            old,
            "{c} untouched"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let target = report["target"].as_str().unwrap();
    assert!(CLUSTERS.iter().all(|c| target.contains(&format!("{c} sha256:"))), "{target}");
    assert_eq!(report["rotated"], 3, "{report}");

    let stderr = String::from_utf8_lossy(&ok_output(&repo.run(&args_ref)).stderr).into_owned();
    assert!(stderr.contains("rotated 3 item(s) in 3 file(s)"), "{stderr}");
    for cluster in CLUSTERS {
        let file = format!("apps/{cluster}/db.yaml");
        assert!(repo.opens(&file, cluster, "2"), "{file} opens with {cluster}'s new key");
        assert!(!repo.opens(&file, cluster, "1"), "{file} no longer needs {cluster}'s old key");
        for other in CLUSTERS.iter().filter(|o| **o != cluster) {
            assert!(!repo.opens(&file, other, "2"), "{file} must not open with {other}'s key");
        }
    }
}

#[test]
fn wrong_routes_are_refused_with_the_file_and_the_fix_and_nothing_is_written() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.root.join("apps/dev")).unwrap();
    std::fs::create_dir_all(repo.root.join("apps/base")).unwrap();
    for (args, want) in [
        (vec!["seal", "--for-cluster", "prod", "-w", "apps/dev/db.yaml"], "belongs to cluster dev"),
        (vec!["seal", "-w", "apps/base/db.yaml"], "matches no cluster's paths"),
        (vec!["seal"], "pass --for-cluster NAME"),
        (vec!["seal", "--for-cluster", "qa"], "no cluster \"qa\"; the clusters are: dev, prod, staging"),
        (vec!["seal", "--all-clusters", "-w", "apps/dev/db.yaml"], "put {cluster} in the path"),
        (vec!["seal", "--all-clusters", "-w", "apps/base/{cluster}.yaml"], "is not under its paths"),
    ] {
        let stderr = failed(&repo.run(&args));
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
    }
    // A target that cannot be replaced (a directory where prod's file would go): no cluster's file is written.
    std::fs::create_dir_all(repo.root.join("apps/prod/db.yaml")).unwrap();
    let stderr = failed(&repo.run(&["seal", "--all-clusters", "-w", "apps/{cluster}/db.yaml"]));
    assert!(stderr.contains("apps/prod/db.yaml") && stderr.contains("not a regular file"), "{stderr}");
    std::fs::remove_dir(repo.root.join("apps/prod/db.yaml")).unwrap();
    let written: Vec<_> = walk(&repo.root.join("apps"));
    assert!(written.is_empty(), "nothing written: {written:?}");

    // A missing pin names the cluster and how to pin it.
    std::fs::remove_file(repo.cert("staging")).unwrap();
    let stderr = failed(&repo.run(&["seal", "--for-cluster", "staging"]));
    assert!(
        stderr.contains("cluster staging") && stderr.contains("arcseal cert --pin --for-cluster staging"),
        "{stderr}"
    );
}

#[test]
fn as_kubeseal_a_cluster_path_uses_its_pin_and_other_outputs_keep_kubeseals_fetch() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.root.join("apps/dev")).unwrap();
    let target = repo.root.join("apps/dev/db.json").display().to_string();
    ok(&common::kubeseal(&["-w", &target], Some(SECRET.as_bytes()), &[]));
    assert!(repo.opens(&target, "dev", "1") && !repo.opens(&target, "prod", "1"));
    // Outside every cluster's paths, kubeseal fetches from the cluster as it always did (none here).
    let elsewhere = repo.root.join("db.json").display().to_string();
    let stderr = failed(&common::kubeseal(&["-w", &elsewhere], Some(SECRET.as_bytes()), &[]));
    assert!(stderr.contains("fetched from the cluster") && !stderr.contains("--for-cluster"), "{stderr}");
}

#[test]
fn a_bad_config_is_refused_naming_the_file_and_the_fix() {
    let repo = Repo::new();
    let config = repo.root.join(".arcseal.yaml");
    for (text, want) in [
        (CONFIG.replace("    paths: [\"apps/staging/**\"]", "    path: [\"apps/staging/**\"]"), "path"),
        (CONFIG.replace("apps/staging/**", "apps/*/**"), "narrow one of the globs"),
        (CONFIG.replace("version: 1\n", ""), "add `version: 1`"),
    ] {
        std::fs::write(&config, &text).unwrap();
        let stderr = failed(&repo.run(&["seal", "-w", "apps/dev/db.yaml"]));
        assert!(
            stderr.contains(&config.display().to_string()) && stderr.contains(want),
            "want {want:?}: {stderr}"
        );
    }
    assert!(walk(&repo.root.join("apps")).is_empty());
}

#[test]
fn without_a_config_for_cluster_says_where_it_looked_and_plain_seal_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = failed(&arcseal_in(dir.path(), &["seal", "--for-cluster", "dev"], Some(SECRET.as_bytes())));
    assert!(
        stderr.contains("no .arcseal.yaml in") && stderr.contains("create one at the repository root"),
        "{stderr}"
    );
    // No config: seal fetches from the cluster as before (there is none), it does not ask for a cluster.
    let stderr = failed(&arcseal_in(dir.path(), &["seal"], Some(SECRET.as_bytes())));
    assert!(stderr.contains("fetched from the cluster") && !stderr.contains("--for-cluster"), "{stderr}");
}

#[test]
fn cert_check_reports_each_cluster_it_cannot_reach_and_fails() {
    let repo = Repo::new();
    let out = repo.run(&["cert", "--check"]);
    let stderr = failed(&out);
    for cluster in CLUSTERS {
        assert!(stderr.contains(&format!("error: cluster {cluster}: ")), "{stderr}");
    }
    let stderr = failed(&repo.run(&["cert", "--for-cluster", "dev"]));
    assert!(stderr.contains("needs --pin or --check"), "{stderr}");
}

fn ok_output(out: &std::process::Output) -> &std::process::Output {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().unwrap().is_dir() {
            files.extend(walk(&entry.path()));
        } else {
            files.push(entry.path());
        }
    }
    files
}
