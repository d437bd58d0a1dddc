//! A GitOps config repository as a pipeline sees it: a bare remote (`remote.git`, branch `main`), a
//! clone of it (`work`) with a committer identity, and two sealing keys: `old` (what the committed
//! SealedSecret is sealed with) and `new` (the controller's newest); `backup.yaml` holds both, as the
//! controller's key backup does.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use arcseal_tests::arcseal_bin;

pub const BRANCH: &str = "arcseal/rotate";

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub struct ConfigRepo {
    pub dir: tempfile::TempDir,
    pub remote: PathBuf,
    pub work: PathBuf,
    pub keys: PathBuf,
}

pub const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\n  namespace: team-a\n\
                          stringData:\n  username: admin\n  password: correct-horse\n";
pub const SEALED_PATH: &str = "apps/team-a/db-credentials.yaml";

impl ConfigRepo {
    /// A repository whose one SealedSecret is sealed with `sealed_with` (`old`: rotation due; `new`: current).
    pub fn new(sealed_with: &str) -> ConfigRepo {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("remote.git");
        let work = dir.path().join("work");
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        git(dir.path(), &["init", "--quiet", "--bare", "-b", "main", remote.to_str().unwrap()]);
        git(dir.path(), &["init", "--quiet", "-b", "main", work.to_str().unwrap()]);
        git(&work, &["config", "user.email", "ci@example.invalid"]);
        git(&work, &["config", "user.name", "ci"]);
        git(&work, &["remote", "add", "origin", remote.to_str().unwrap()]);
        let repo = ConfigRepo { dir, remote, work, keys };
        for name in ["old", "new"] {
            repo.keygen(name);
        }
        let backup: Vec<String> = ["old", "new"]
            .iter()
            .map(|n| std::fs::read_to_string(repo.keys.join(format!("{n}-secret.yaml"))).unwrap())
            .collect();
        std::fs::write(repo.backup(), backup.join("---\n")).unwrap();
        let sealed = repo.arcseal_ok(&["seal", "--cert", repo.cert(sealed_with).to_str().unwrap()], SECRET);
        repo.write(SEALED_PATH, &sealed);
        repo.write(
            "apps/team-a/deployment.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: db\n",
        );
        git(&repo.work, &["add", "-A"]);
        git(&repo.work, &["commit", "--quiet", "-m", "initial"]);
        git(&repo.work, &["push", "--quiet", "origin", "main"]);
        repo
    }

    fn keygen(&self, name: &str) {
        let k = |suffix: &str| self.keys.join(format!("{name}{suffix}"));
        let out = Command::new(arcseal_bin())
            .args(["keygen", "--bits", "2048", "--key-out"])
            .arg(k(".pem"))
            .arg("--cert-out")
            .arg(k(".crt"))
            .arg("--secret-out")
            .arg(k("-secret.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", stderr(&out));
    }

    pub fn cert(&self, name: &str) -> PathBuf {
        self.keys.join(format!("{name}.crt"))
    }

    pub fn backup(&self) -> PathBuf {
        self.keys.join("backup.yaml")
    }

    pub fn report(&self) -> PathBuf {
        self.dir.path().join("report.json")
    }

    fn arcseal_ok(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = Command::new(arcseal_bin())
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "arcseal {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.work.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.work.join(rel)).unwrap()
    }

    /// The commit `branch` points at on the remote, if it exists there.
    pub fn remote_head(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.remote)
            .args(["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")])
            .output()
            .unwrap();
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// What the next CI run starts from: a checkout of main with no local rotation branch.
    pub fn fresh_checkout(&self) {
        git(&self.work, &["checkout", "--quiet", "main"]);
        git(&self.work, &["branch", "--quiet", "-D", BRANCH]);
    }

    /// `arcseal rotate` as the rotation job runs it, with `--open-pr provider` and only the given
    /// pipeline variables (the test's own environment's are removed).
    pub fn rotate_open_pr(&self, provider: &str, env: &[(&str, String)]) -> Output {
        let mut cmd = Command::new(arcseal_bin());
        cmd.arg("rotate")
            .arg(&self.work)
            .arg("--private-key")
            .arg(self.backup())
            .arg("--cert")
            .arg(self.cert("new"))
            .args(["--branch", BRANCH, "--open-pr", provider, "--report"])
            .arg(self.report());
        for var in PIPELINE_VARS {
            cmd.env_remove(var);
        }
        cmd.env("KUBECONFIG", "/nonexistent").envs(env.iter().map(|(k, v)| (k, v)));
        cmd.output().unwrap()
    }
}

/// The pipeline variables arcseal reads; tests set them explicitly.
pub const PIPELINE_VARS: [&str; 13] = [
    "GITHUB_TOKEN",
    "GITHUB_REPOSITORY",
    "GITHUB_API_URL",
    "GITHUB_REF_NAME",
    "GITHUB_REF_TYPE",
    "SYSTEM_ACCESSTOKEN",
    "SYSTEM_COLLECTIONURI",
    "SYSTEM_TEAMPROJECT",
    "SYSTEM_TEAMPROJECTID",
    "BUILD_REPOSITORY_ID",
    "BUILD_REPOSITORY_NAME",
    "BUILD_SOURCEBRANCH",
    "SEALED_SECRETS_CERT",
];
