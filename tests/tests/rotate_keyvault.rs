//! `arcseal rotate --rotate-values` for Key Vault backed secrets: the real `arcseal` binary against the Key Vault +
//! Entra ID stand-in over TLS with a test CA, reached the way a private cloud is (`--ca-bundle`, `--authority-host`,
//! `--keyvault-dns-suffix`, and host names pinned to the loopback stand-in).

use std::path::PathBuf;
use std::process::{Command, Output};

use arcseal_tests::arcseal_bin;
use arcseal_tests::keyvault::{Fault, FaultKind, KeyVaultStandIn, TestCa, service_account_jwt};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

struct Fixture {
    kv: KeyVaultStandIn,
    dir: tempfile::TempDir,
    keys: PathBuf,
    repo: PathBuf,
    ca: PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        let ca = TestCa::new(&["kv1.vault.test", "login.test"]);
        let kv = KeyVaultStandIn::start_tls(&ca).await;
        kv.add_app("app-1", "s3cret");
        kv.create_vault("kv1");
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.ca_pem).unwrap();
        let keys = dir.path().join("key-backup.yaml");
        let out = Command::new(arcseal_bin())
            .args(["keygen", "--bits", "2048", "--key-out"])
            .arg(dir.path().join("k.pem"))
            .arg("--cert-out")
            .arg(dir.path().join("k.crt"))
            .arg("--secret-out")
            .arg(&keys)
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", String::from_utf8_lossy(&out.stderr));
        Fixture { kv, dir, keys, repo, ca: ca_path }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.repo.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `arcseal rotate --rotate-values <repo> extra...` as the CI job would (service principal from env).
    async fn rotate(&self, extra: &[&str]) -> Output {
        self.rotate_with(extra, &[("AZURE_CLIENT_ID", "app-1"), ("AZURE_CLIENT_SECRET", "s3cret")]).await
    }

    async fn rotate_with(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let port = self.kv.addr().port();
        let addr = self.kv.addr().to_string();
        let mut cmd = Command::new(arcseal_bin());
        cmd.arg("rotate")
            .arg(&self.repo)
            .arg("--private-key")
            .arg(&self.keys)
            .arg("--rotate-values")
            .arg("--report")
            .arg(self.dir.path().join("report.json"))
            .args(["--authority-host", &format!("https://login.test:{port}")])
            .args(["--keyvault-dns-suffix", &format!("vault.test:{port}")])
            .arg("--ca-bundle")
            .arg(&self.ca)
            .args([
                "--resolve",
                &format!("kv1.vault.test={addr}"),
                "--resolve",
                &format!("login.test={addr}"),
            ])
            .args(extra)
            .env("AZURE_TENANT_ID", TENANT)
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET")
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env_remove("SEALED_SECRETS_CERT")
            .env("KUBECONFIG", "/nonexistent")
            .envs(env.iter().copied());
        // The stand-in runs on this test's runtime: wait for the child without blocking it.
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }

    fn report(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.path().join("report.json")).unwrap()).unwrap()
    }
}

/// A SecretProviderClass with the objects given (each an `objects` array item), generating `generate`.
fn spc(name: &str, generate: &str, objects: &[String]) -> String {
    let mut items = String::new();
    for o in objects {
        items.push_str("        - |\n");
        for line in o.lines() {
            items.push_str(&format!("          {line}\n"));
        }
    }
    format!(
        "# Secrets for {name}; comments and layout must survive rotation.\n\
         apiVersion: secrets-store.csi.x-k8s.io/v1\n\
         kind: SecretProviderClass\n\
         metadata:\n  name: {name}\n  namespace: team-a\n  annotations:\n    arcseal.dev/generate: \"{generate}\"\n\
         spec:\n  provider: azure\n  parameters:\n    keyvaultName: kv1\n    tenantID: {TENANT}\n    objects: |\n      array:\n{items}"
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn new_versions_are_written_and_pins_follow_them() {
    let f = Fixture::new().await;
    let v0 = f.kv.set_secret("kv1", "db-password", "old-value");
    f.kv.set_secret("kv1", "api-token", "old-token");
    let pinned = f.write(
        "pinned.yaml",
        &spc(
            "app",
            "db-password=24:hex",
            &[
                format!("objectName: db-password\nobjectType: secret\nobjectVersion: {v0}"),
                "objectName: tls\nobjectType: cert".into(),
            ],
        ),
    );
    let unpinned_text = spc("api", "api-token=40", &["objectName: api-token\nobjectType: secret".into()]);
    let unpinned = f.write("unpinned.yaml", &unpinned_text);
    let before = std::fs::read_to_string(&pinned).unwrap();

    let out = f.rotate(&[]).await;
    assert!(out.status.success(), "rotate failed: {}", stderr(&out));

    let db = f.kv.secret_versions("kv1", "db-password");
    assert_eq!(db.len(), 2, "one new version");
    let (v1, value, _) = &db[1];
    assert_eq!(v1.len(), 32);
    assert_eq!(value.len(), 24);
    assert!(value.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "hex alphabet");
    let api = f.kv.secret_versions("kv1", "api-token");
    assert_eq!(api.len(), 2);
    assert_eq!(api[1].1.len(), 40);
    assert!(api[1].1.bytes().all(|b| b.is_ascii_alphanumeric()), "alnum alphabet");

    // The pin moved to the new version, byte for byte; the unpinned class is untouched.
    assert_eq!(std::fs::read_to_string(&pinned).unwrap(), before.replace(&v0, v1));
    assert_eq!(std::fs::read_to_string(&unpinned).unwrap(), unpinned_text);

    let report = f.report();
    let kv = report["keyVault"].as_array().unwrap();
    assert_eq!(kv.len(), 2);
    let db_row = kv.iter().find(|r| r["object"] == "db-password").unwrap();
    assert_eq!(db_row["oldVersion"], v0.as_str());
    assert_eq!(db_row["newVersion"], v1.as_str());
    assert_eq!(db_row["editsFile"], true);
    assert_eq!(db_row["vault"], format!("https://kv1.vault.test:{}/", f.kv.addr().port()));
    let api_row = kv.iter().find(|r| r["object"] == "api-token").unwrap();
    assert_eq!(api_row["editsFile"], false);
    // No value anywhere in what the job prints or keeps.
    let printed = format!("{}{}{report}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(!printed.contains(value.as_str()) && !printed.contains(api[1].1.as_str()));
    assert!(printed.contains(v1.as_str()), "the new version is reported: {printed}");
}

#[tokio::test]
async fn a_refused_write_changes_no_file_and_names_the_object() {
    let f = Fixture::new().await;
    let a0 = f.kv.set_secret("kv1", "a-secret", "old-a");
    let b0 = f.kv.set_secret("kv1", "b-secret", "old-b");
    let a =
        spc("a", "a-secret=32", &[format!("objectName: a-secret\nobjectType: secret\nobjectVersion: {a0}")]);
    let b =
        spc("b", "b-secret=32", &[format!("objectName: b-secret\nobjectType: secret\nobjectVersion: {b0}")]);
    f.write("a.yaml", &a);
    f.write("b.yaml", &b);
    f.kv.inject(Fault {
        kind: FaultKind::Forbidden,
        count: 1,
        path_contains: Some("/secrets/b-secret".into()),
    });

    let out = f.rotate(&[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("\"b-secret\"") && err.contains("kv1.vault.test"), "names object and vault: {err}");
    assert!(
        err.contains("403") && err.contains("does not have secrets set permission"),
        "says what Key Vault said: {err}"
    );
    assert!(err.contains("no repository file was changed"), "{err}");
    // The write before it succeeded (Key Vault has no transactions): the error says so.
    assert!(err.contains("a-secret in https://kv1.vault.test"), "{err}");
    let written = &f.kv.secret_versions("kv1", "a-secret")[1].1;
    assert!(!err.contains(written.as_str()), "no value in the error");
    assert_eq!(std::fs::read_to_string(f.repo.join("a.yaml")).unwrap(), a);
    assert_eq!(std::fs::read_to_string(f.repo.join("b.yaml")).unwrap(), b);
    assert_eq!(f.kv.secret_versions("kv1", "b-secret").len(), 1);
}

#[tokio::test]
async fn dry_run_contacts_nothing() {
    let f = Fixture::new().await;
    let v0 = f.kv.set_secret("kv1", "db-password", "old-value");
    let text = spc(
        "app",
        "db-password=24",
        &[format!("objectName: db-password\nobjectType: secret\nobjectVersion: {v0}")],
    );
    f.write("pinned.yaml", &text);
    let out = f.rotate(&["--dry-run"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("db-password") && plan.contains(&v0), "the plan names the object: {plan}");
    assert_eq!(f.kv.secret_versions("kv1", "db-password").len(), 1);
    let c = f.kv.counters();
    assert_eq!((c.keyvault, c.challenges, c.tokens), (0, 0, 0), "no request at all");
    assert_eq!(std::fs::read_to_string(f.repo.join("pinned.yaml")).unwrap(), text);
}

#[tokio::test]
async fn workload_identity_from_a_federated_token_file() {
    let f = Fixture::new().await;
    f.kv.federate("app-wi", "system:serviceaccount:ci:rotator");
    let v0 = f.kv.set_secret("kv1", "db-password", "old-value");
    f.write(
        "pinned.yaml",
        &spc(
            "app",
            "db-password=16",
            &[format!("objectName: db-password\nobjectType: secret\nobjectVersion: {v0}")],
        ),
    );
    let token = f.dir.path().join("sa-token");
    std::fs::write(&token, service_account_jwt("ci", "rotator")).unwrap();
    let token = token.display().to_string();
    let out = f
        .rotate_with(&[], &[("AZURE_CLIENT_ID", "app-wi"), ("AZURE_FEDERATED_TOKEN_FILE", token.as_str())])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(f.kv.secret_versions("kv1", "db-password").len(), 2);
    assert_eq!(f.kv.counters().tokens, 1, "one token for the run");

    // Without any credential in the environment, the run says which variables to set and writes nothing.
    let before = f.kv.secret_versions("kv1", "db-password").len();
    let out = f.rotate_with(&[], &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("AZURE_CLIENT_ID is not set"), "{}", stderr(&out));
    assert_eq!(f.kv.secret_versions("kv1", "db-password").len(), before);
}
