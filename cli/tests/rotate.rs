//! `arcseal rotate` and `arcseal validate PATH` on a temporary git repository, driving the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use arcseal_crypto::{KeyRing, PrivateKey, Scope};
use serde_json::Value;

mod common;

fn arcseal(args: &[&str], stdin: Option<&str>) -> Output {
    common::arcseal(args, stdin.map(str::as_bytes))
}

fn ok(out: Output) -> (String, String) {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    keys: PathBuf,
}

impl Repo {
    fn new() -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&keys).unwrap();
        git(&root, &["init", "--quiet", "-b", "main"]);
        git(&root, &["config", "user.email", "ci@example.invalid"]);
        git(&root, &["config", "user.name", "ci"]);
        Repo { _dir: dir, root, keys }
    }

    fn keygen(&self, name: &str) -> PrivateKey {
        let k = |f: &str| self.keys.join(format!("{name}{f}")).display().to_string();
        ok(arcseal(
            &[
                "keygen",
                "--bits",
                "2048",
                "--key-out",
                &k(".pem"),
                "--cert-out",
                &k(".crt"),
                "--secret-out",
                &k("-secret.yaml"),
            ],
            None,
        ));
        PrivateKey::from_pem(&std::fs::read(k(".pem")).unwrap()).unwrap()
    }

    fn key(&self, name: &str, suffix: &str) -> String {
        self.keys.join(format!("{name}{suffix}")).display().to_string()
    }

    fn seal(&self, cert: &str, secret: &str, extra: &[&str]) -> String {
        let mut args = vec!["seal", "--cert", cert];
        args.extend_from_slice(extra);
        ok(arcseal(&args, Some(secret))).0
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap()
    }

    fn commit_all(&self) {
        git(&self.root, &["add", "-A"]);
        git(&self.root, &["commit", "--quiet", "-m", "initial"]);
    }

    /// The controller's key backup: both key Secrets in one file.
    fn backup(&self, names: &[&str]) -> String {
        let text: Vec<String> =
            names.iter().map(|n| std::fs::read_to_string(self.key(n, "-secret.yaml")).unwrap()).collect();
        let path = self.keys.join("backup.yaml");
        std::fs::write(&path, text.join("---\n")).unwrap();
        path.display().to_string()
    }
}

fn secret(name: &str, items: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: team-a\nstringData:\n"
    );
    for (k, v) in items {
        s.push_str(&format!("  {k}: {v}\n"));
    }
    s
}

fn items(text: &str) -> Vec<(String, String, String)> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).unwrap();
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == "SealedSecret") {
        for (k, v) in d["spec"]["encryptedData"].as_object().unwrap() {
            out.push((
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                k.clone(),
                v.as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn opens(key: &PrivateKey, name: &str, value: &str) -> Option<Vec<u8>> {
    let label = Scope::Strict.encryption_label("team-a", name);
    KeyRing::new(vec![key.clone()])
        .open_value(&label, value, None)
        .ok()
        .map(|o| o.plaintext.as_bytes().to_vec())
}

#[test]
fn rotate_reseals_exactly_the_old_items_commits_and_then_is_a_no_op() {
    let repo = Repo::new();
    let old = repo.keygen("old");
    let old_cert = repo.key("old", ".crt");
    let db = repo.seal(&old_cert, &secret("db", &[("username", "admin"), ("password", "hunter2")]), &[]);
    let api = repo.seal(&old_cert, &secret("api", &[("token", "t0k3n")]), &[]);
    let with_comments = format!(
        "# Managed by the platform team.\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{a: \"1\"}}\n---\n# the database credentials\n{db}"
    );
    repo.write("apps/db/sealed.yaml", &with_comments);
    repo.write("apps/api/sealed.yml", &api);
    repo.write(
        "apps/api/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api # keep\n",
    );
    repo.write("README.md", "docs\n");
    repo.commit_all();

    let new = repo.keygen("new");
    let new_cert = repo.key("new", ".crt");
    // One SealedSecret is already on the new key: rotate must leave it alone.
    let current = repo.seal(&new_cert, &secret("cache", &[("password", "p")]), &[]);
    repo.write("apps/cache/sealed.yaml", &current);
    repo.commit_all();
    let before_commits = git(&repo.root, &["rev-list", "--count", "HEAD"]);
    let backup = repo.backup(&["old", "new"]);
    let report = repo.keys.join("report.json");
    let root = repo.root.display().to_string();

    let (_, err) = ok(arcseal(
        &[
            "rotate",
            &root,
            "--private-key",
            &backup,
            "--cert",
            &new_cert,
            "--branch",
            "rotate-keys",
            "--report",
            report.to_str().unwrap(),
        ],
        None,
    ));
    assert!(err.contains("rotated 3 item(s) in 2 file(s)"), "{err}");

    // Every item opens with the new key only, to the same plaintext.
    for rel in ["apps/db/sealed.yaml", "apps/api/sealed.yml", "apps/cache/sealed.yaml"] {
        for (name, item, value) in items(&repo.read(rel)) {
            assert!(opens(&old, &name, &value).is_none(), "{rel} {item} still opens with the old key");
            let plain = opens(&new, &name, &value).unwrap_or_else(|| panic!("{rel} {item} does not open"));
            let expected: &[u8] = match (name.as_str(), item.as_str()) {
                ("db", "username") => b"admin",
                ("db", "password") => b"hunter2",
                ("api", "token") => b"t0k3n",
                ("cache", "password") => b"p",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(plain, expected);
        }
    }
    // Only ciphertext lines (and the sealed-with annotation) changed; comments and other documents did not.
    let after = repo.read("apps/db/sealed.yaml");
    assert_eq!(after.lines().count(), with_comments.lines().count());
    for (a, b) in with_comments.lines().zip(after.lines()) {
        if a != b {
            let key = a.trim_start().split(':').next().unwrap();
            assert!(
                ["username", "password", "arcseal.dev/sealed-with"].contains(&key),
                "unexpected change: {a}"
            );
        }
    }
    assert!(after.starts_with("# Managed by the platform team.\napiVersion: v1\nkind: ConfigMap"));
    assert_eq!(repo.read("apps/cache/sealed.yaml"), current, "already current: untouched");
    assert_eq!(
        repo.read("apps/api/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api # keep\n"
    );
    let fingerprint =
        arcseal_crypto::Certificate::from_pem(&std::fs::read(&new_cert).unwrap()).unwrap().fingerprint();
    assert!(after.contains(&format!("arcseal.dev/sealed-with: sha256:{fingerprint}")));

    // One commit on the new branch, listing what rotated.
    assert_eq!(git(&repo.root, &["rev-parse", "--abbrev-ref", "HEAD"]), "rotate-keys");
    let count: usize = git(&repo.root, &["rev-list", "--count", "HEAD"]).parse().unwrap();
    assert_eq!(count, before_commits.parse::<usize>().unwrap() + 1);
    let message = git(&repo.root, &["log", "-1", "--format=%B"]);
    assert!(message.contains("re-seal 3 item(s)") && message.contains("team-a/db password"), "{message}");
    assert_eq!(git(&repo.root, &["status", "--porcelain"]), "");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(report["rotated"], 3);
    assert_eq!(report["current"], 1);

    // A second run has nothing to do, says so, and changes nothing.
    let snapshot = repo.read("apps/db/sealed.yaml");
    let (_, err) = ok(arcseal(
        &["rotate", &root, "--private-key", &backup, "--cert", &new_cert, "--branch", "again"],
        None,
    ));
    assert!(err.contains("nothing to rotate"), "{err}");
    assert_eq!(repo.read("apps/db/sealed.yaml"), snapshot);
    assert_eq!(
        git(&repo.root, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "rotate-keys",
        "no branch for a no-op"
    );
}

#[test]
fn rotate_defaults_to_the_newest_backup_certificate_and_dry_run_writes_nothing() {
    let repo = Repo::new();
    let _old = repo.keygen("old");
    let db = repo.seal(&repo.key("old", ".crt"), &secret("db", &[("password", "hunter2")]), &[]);
    repo.write("sealed.yaml", &db);
    std::thread::sleep(Duration::from_millis(1100)); // certificates carry whole seconds
    let _new = repo.keygen("new");
    let backup = repo.backup(&["old", "new"]);
    let root = repo.root.display().to_string();
    let (plan, err) = ok(arcseal(&["rotate", &root, "--private-key", &backup, "--dry-run"], None));
    assert!(plan.contains("re-seal 1 item(s)") && err.contains("dry run"), "{plan}{err}");
    assert_eq!(repo.read("sealed.yaml"), db);
    let newest =
        arcseal_crypto::Certificate::from_pem(&std::fs::read(repo.key("new", ".crt")).unwrap()).unwrap();
    assert!(plan.contains(&format!("sha256:{}", newest.fingerprint())), "{plan}");
}

#[test]
fn rotate_values_regenerates_marked_items_only() {
    let repo = Repo::new();
    let _old = repo.keygen("old");
    let new = repo.keygen("new");
    let sealed = repo.seal(
        &repo.key("old", ".crt"),
        &secret("db", &[("username", "admin"), ("password", "hunter2")]),
        &[],
    );
    let marked =
        sealed.replacen("  annotations:\n", "  annotations:\n    arcseal.dev/generate: password=24:hex\n", 1);
    assert_ne!(marked, sealed);
    repo.write("sealed.yaml", &marked);
    let backup = repo.backup(&["old", "new"]);
    let root = repo.root.display().to_string();
    ok(arcseal(
        &["rotate", &root, "--private-key", &backup, "--cert", &repo.key("new", ".crt"), "--rotate-values"],
        None,
    ));
    let after = items(&repo.read("sealed.yaml"));
    let get = |item: &str| after.iter().find(|(_, i, _)| i == item).unwrap().2.clone();
    let password = opens(&new, "db", &get("password")).unwrap();
    assert_eq!(password.len(), 24);
    assert!(password.iter().all(|b| b"0123456789abcdef".contains(b)), "{password:?}");
    assert_eq!(opens(&new, "db", &get("username")).unwrap(), b"admin");

    let bad = marked.replace("password=24:hex", "password=24:emoji");
    repo.write("sealed.yaml", &bad);
    let out = arcseal(
        &["rotate", &root, "--private-key", &backup, "--cert", &repo.key("new", ".crt"), "--rotate-values"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sealed.yaml:") && err.contains("unknown alphabet"), "{err}");
    assert_eq!(repo.read("sealed.yaml"), bad, "a refused run writes nothing");
}

#[test]
fn an_item_no_key_opens_fails_the_run_and_writes_nothing() {
    let repo = Repo::new();
    let _a = repo.keygen("a");
    let _b = repo.keygen("b");
    let _stranger = repo.keygen("stranger");
    let good = repo.seal(&repo.key("a", ".crt"), &secret("one", &[("k", "v")]), &[]);
    let foreign = repo.seal(&repo.key("stranger", ".crt"), &secret("two", &[("k", "v")]), &[]);
    repo.write("one.yaml", &good);
    repo.write("two.yaml", &foreign);
    let backup = repo.backup(&["a", "b"]);
    let out = arcseal(
        &[
            "rotate",
            &repo.root.display().to_string(),
            "--private-key",
            &backup,
            "--cert",
            &repo.key("b", ".crt"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("two.yaml:") && err.contains("SealedSecret team-a/two") && err.contains("item \"k\""),
        "{err}"
    );
    assert_eq!(repo.read("one.yaml"), good);
}

#[test]
fn an_interrupted_rotation_leaves_every_file_old_or_new() {
    let repo = Repo::new();
    let _old = repo.keygen("old");
    let new = repo.keygen("new");
    let mut originals = Vec::new();
    let many: String = (0..40)
        .map(|i| format!("---\n{}", secret(&format!("s{i}"), &[("a", "one"), ("b", "two")])))
        .collect();
    let sealed = repo.seal(&repo.key("old", ".crt"), &many, &[]);
    for (i, doc) in sealed.split("---\n").enumerate() {
        let rel = format!("apps/s{i}.yaml");
        repo.write(&rel, doc);
        originals.push((rel, doc.to_owned()));
    }
    let backup = repo.backup(&["old", "new"]);
    for delay_ms in [30u64, 120, 400] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arcseal"))
            .args([
                "rotate",
                &repo.root.display().to_string(),
                "--private-key",
                &backup,
                "--cert",
                &repo.key("new", ".crt"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        for (rel, original) in &originals {
            let now = repo.read(rel);
            if &now == original {
                continue;
            }
            // Not old: then wholly new, every item on the new key.
            let found = items(&now);
            assert_eq!(found.len(), 2, "{rel} is half-written");
            for (name, _, value) in found {
                assert!(opens(&new, &name, &value).is_some(), "{rel} is neither old nor new");
            }
        }
    }
}

#[test]
fn validate_walks_a_repo_points_at_lines_and_writes_junit() {
    let repo = Repo::new();
    let _k = repo.keygen("k");
    let cert = repo.key("k", ".crt");
    let good = repo.seal(&cert, &secret("db", &[("username", "admin"), ("password", "hunter2")]), &[]);
    repo.write("apps/good.yaml", &good);
    repo.write("apps/other.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
    let broken =
        format!("# header\n---\n{}", good.replace("name: db\n  namespace", "name: db2\n  namespace"));
    let value = items(&good).into_iter().find(|(_, i, _)| i == "password").unwrap().2;
    let broken = broken.replace(&value, "bm90IGEgc2VhbGVkIHZhbHVl");
    repo.write("apps/bad.yaml", &broken);
    let junit = repo.keys.join("junit.xml");
    let out = arcseal(
        &[
            "validate",
            "--cert",
            &cert,
            "--private-key",
            &repo.key("k", ".pem"),
            "--junit",
            junit.to_str().unwrap(),
            &repo.root.display().to_string(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8(out.stdout).unwrap();
    let line = broken.lines().position(|l| l.trim_start().starts_with("password:")).unwrap() + 1;
    assert!(report.contains(&format!("bad.yaml:{line}")), "{report}");
    assert!(report.contains("item \"password\"") && report.contains("not a sealed value"), "{report}");
    assert!(report.contains("item \"username\"") && report.contains("no given key opens it"), "{report}");
    assert!(!report.contains("good.yaml"), "{report}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<failure"), "{xml}");
}

/// `git status`, the branches and the checked-out branch: what "the tree as it was" means.
fn git_state(repo: &Repo) -> (String, String, String) {
    (
        git(&repo.root, &["status", "--porcelain"]),
        git(&repo.root, &["branch", "--list"]),
        git(&repo.root, &["rev-parse", "HEAD"]),
    )
}

fn rotate_branch(repo: &Repo, branch: &str, env: &[(&str, &str)]) -> Output {
    common::arcseal_env(
        &[
            "rotate",
            &repo.root.display().to_string(),
            "--private-key",
            &repo.backup(&["old", "new"]),
            "--cert",
            &repo.key("new", ".crt"),
            "--branch",
            branch,
        ],
        None,
        env,
    )
}

#[test]
fn rotate_branch_checks_everything_first_and_leaves_the_tree_as_it_was() {
    let repo = Repo::new();
    let _old = repo.keygen("old");
    let _new = repo.keygen("new");
    let db = repo.seal(&repo.key("old", ".crt"), &secret("db", &[("password", "hunter2")]), &[]);
    repo.write("apps/db.yaml", &db);
    repo.commit_all();
    let before = git_state(&repo);
    let home = tempfile::tempdir().unwrap();
    let home = home.path().display().to_string();

    // A CI runner without a git identity: refused before anything is written.
    git(&repo.root, &["config", "--unset", "user.email"]);
    git(&repo.root, &["config", "--unset", "user.name"]);
    git(&repo.root, &["config", "user.useConfigOnly", "true"]);
    let no_identity =
        [("HOME", home.as_str()), ("GIT_CONFIG_NOSYSTEM", "1"), ("GIT_CONFIG_GLOBAL", "/dev/null")];
    let out = rotate_branch(&repo, "rotate/keys", &no_identity);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no identity") && err.contains("nothing was changed"), "{err}");
    assert_eq!(git_state(&repo), before);
    assert_eq!(repo.read("apps/db.yaml"), db);
    git(&repo.root, &["config", "user.email", "ci@example.invalid"]);
    git(&repo.root, &["config", "user.name", "ci"]);

    // An invalid or existing branch name: refused first too.
    for (branch, expect) in [("bad..name", "not a valid"), ("main", "already exists")] {
        let out = rotate_branch(&repo, branch, &[]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(expect));
        assert_eq!(git_state(&repo), before);
    }

    // A failure at the very end (a pre-commit hook refusing): undone, branch deleted.
    let hook = repo.root.join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\necho refused by hook >&2\nexit 1\n").unwrap();
    let executable = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755);
    std::fs::set_permissions(&hook, executable).unwrap();
    let out = rotate_branch(&repo, "rotate/keys", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused by hook") && err.contains("as they were"), "{err}");
    assert_eq!(git_state(&repo), before);
    assert_eq!(repo.read("apps/db.yaml"), db);

    // And with the hook gone it commits, so a rerun is not "nothing to rotate" with nothing committed.
    std::fs::remove_file(&hook).unwrap();
    ok(rotate_branch(&repo, "rotate/keys", &[]));
    assert_eq!(git(&repo.root, &["rev-parse", "--abbrev-ref", "HEAD"]), "rotate/keys");
    assert_eq!(git(&repo.root, &["status", "--porcelain"]), "");
}
