//! `arcseal keys import/export`, `arcseal unseal --key-vault-url` and `arcseal rotate --key-vault-url`: the real
//! `arcseal` binary against the Key Vault + Entra ID stand-in over TLS with a test CA (service principal from the
//! environment, host names pinned to the loopback stand-in).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use arcseal_tests::arcseal_bin;
use arcseal_tests::keyvault::{KeyVaultStandIn, TestCa};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: hunter2-in-plain\n";

struct Fixture {
    kv: KeyVaultStandIn,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl Fixture {
    async fn new() -> Fixture {
        let ca = TestCa::new(&["kv1.vault.test", "login.test"]);
        let kv = KeyVaultStandIn::start_tls(&ca).await;
        kv.add_app("ci", "ci-s3cret");
        kv.create_vault("kv1");
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.ca_pem).unwrap();
        Fixture { kv, dir, ca: ca_path }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `arcseal <args> --key-vault-url ...` with the vault flags and the service principal in the environment.
    async fn run(&self, args: &[&str]) -> Output {
        let port = self.kv.addr().port();
        let addr = self.kv.addr().to_string();
        let mut cmd = Command::new(arcseal_bin());
        cmd.args(args)
            .args(["--key-vault-url", &format!("https://kv1.vault.test:{port}/")])
            .args(["--key-vault-key-prefix", "prod"])
            .args(["--key-vault-authority-host", &format!("https://login.test:{port}")])
            .arg("--key-vault-ca-bundle")
            .arg(&self.ca)
            .args(["--key-vault-resolve", &format!("kv1.vault.test={addr}")])
            .args(["--key-vault-resolve", &format!("login.test={addr}")])
            .env("AZURE_TENANT_ID", TENANT)
            .env("AZURE_CLIENT_ID", "ci")
            .env("AZURE_CLIENT_SECRET", "ci-s3cret")
            .env_remove("AZURE_FEDERATED_TOKEN_FILE")
            .env("KUBECONFIG", "/nonexistent")
            .current_dir(self.dir.path());
        // The stand-in runs on this test's runtime: wait for the child without blocking it.
        tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap()
    }

    /// A key pair as `arcseal keygen` writes it: the key Secret backup file and the certificate.
    fn keygen(&self, name: &str) -> (PathBuf, PathBuf) {
        let (secret, cert) = (self.path(&format!("{name}.yaml")), self.path(&format!("{name}.crt")));
        let out = Command::new(arcseal_bin())
            .args(["keygen", "--bits", "2048", "--key-out"])
            .arg(self.path(&format!("{name}.pem")))
            .arg("--cert-out")
            .arg(&cert)
            .arg("--secret-out")
            .arg(&secret)
            .output()
            .unwrap();
        assert!(out.status.success(), "keygen: {}", stderr(&out));
        (secret, cert)
    }

    fn seal(&self, cert: &Path, out: &str) -> PathBuf {
        let input = self.path("secret.yaml");
        std::fs::write(&input, SECRET).unwrap();
        let target = self.path(out);
        let o = Command::new(arcseal_bin())
            .arg("seal")
            .arg("--cert")
            .arg(cert)
            .arg("-f")
            .arg(&input)
            .arg("-w")
            .arg(&target)
            .output()
            .unwrap();
        assert!(o.status.success(), "seal: {}", stderr(&o));
        target
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn no_key_material(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains("PRIVATE KEY") && !text.contains("tls.key"), "key material printed: {text}");
    }
}

/// Import a sealed-secrets key backup once (a second import writes nothing), recover a SealedSecret with the key
/// read from the vault, and export a 0600 backup that opens it too; never a key on the terminal.
#[tokio::test]
async fn import_then_unseal_and_export_from_the_vault() {
    let f = Fixture::new().await;
    let (backup, cert) = f.keygen("k1");
    let out = f.run(&["keys", "import"]).await;
    assert!(!out.status.success(), "import without files is refused");
    let out = f.run(&["keys", "import", backup.to_str().unwrap()]).await;
    assert!(out.status.success(), "import: {}", stderr(&out));
    no_key_material(&out);
    let names = f.kv.secret_names("kv1");
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("prod-") && stderr(&out).contains(&names[0]), "{}", stderr(&out));
    let again = f.run(&["keys", "import", backup.to_str().unwrap()]).await;
    assert!(again.status.success() && stderr(&again).contains("already in the vault"), "{}", stderr(&again));
    assert_eq!(f.kv.secret_versions("kv1", &names[0]).len(), 1, "a second import writes nothing");

    let sealed = f.seal(&cert, "sealed.yaml");
    let out = f.run(&["unseal", "-f", sealed.to_str().unwrap(), "-w", "plain.yaml"]).await;
    assert!(out.status.success(), "unseal: {}", stderr(&out));
    assert!(std::fs::read_to_string(f.path("plain.yaml")).unwrap().contains("aHVudGVyMi1pbi1wbGFpbg"));

    let refused = f.run(&["keys", "export", "--out", "-"]).await;
    assert!(!refused.status.success() && stderr(&refused).contains("never to a terminal"));
    no_key_material(&refused);
    let out = f.run(&["keys", "export", "--out", "exported.yaml"]).await;
    assert!(out.status.success(), "export: {}", stderr(&out));
    no_key_material(&out);
    let mode = std::fs::metadata(f.path("exported.yaml")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let out = Command::new(arcseal_bin())
        .args(["unseal", "--private-key", "exported.yaml", "-f", "sealed.yaml"])
        .current_dir(f.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "unseal with the exported backup: {}", stderr(&out));
    let again = f.run(&["keys", "export", "--out", "exported.yaml"]).await;
    assert!(!again.status.success() && stderr(&again).contains("--force"), "never overwrites");
}

/// `rotate --key-vault-url` re-seals to the newest key in the vault with no key file on disk; a PEM key without its
/// certificate is refused by import, naming the file.
#[tokio::test]
async fn rotate_reads_keys_from_the_vault() {
    let f = Fixture::new().await;
    let (old, old_cert) = f.keygen("old");
    // Certificates carry whole seconds: the new key must be strictly newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (new, _) = f.keygen("new");
    let out = f.run(&["keys", "import", old.to_str().unwrap(), new.to_str().unwrap()]).await;
    assert!(out.status.success(), "import: {}", stderr(&out));
    let repo = f.path("repo");
    std::fs::create_dir_all(&repo).unwrap();
    let sealed = f.seal(&old_cert, "repo/db.yaml");
    let before = std::fs::read_to_string(&sealed).unwrap();
    // Kept outside the repository to check the result; rotate itself sees no key file.
    std::fs::rename(f.path("new.pem"), f.path("check-new.pem")).unwrap();
    std::fs::rename(f.path("old.pem"), f.path("lone.pem")).unwrap();
    for path in [&old, &new] {
        std::fs::remove_file(path).unwrap();
    }
    let opens_with_new_key = || {
        Command::new(arcseal_bin())
            .args(["unseal", "--private-key", "check-new.pem", "-f"])
            .arg(&sealed)
            .current_dir(f.dir.path())
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!opens_with_new_key(), "sealed to the old key before rotation");
    let out = f.run(&["rotate", repo.to_str().unwrap()]).await;
    assert!(out.status.success(), "rotate: {}", stderr(&out));
    no_key_material(&out);
    assert_ne!(before, std::fs::read_to_string(&sealed).unwrap(), "re-sealed");
    assert!(opens_with_new_key(), "re-sealed to the newest key in the vault");

    // A PEM key alone (no certificate next to it) cannot seal in the controller: import refuses it by name.
    let out = f.run(&["keys", "import", "lone.pem"]).await;
    assert!(!out.status.success() && stderr(&out).contains("lone.pem"), "{}", stderr(&out));
    assert!(stderr(&out).contains("no certificate"), "{}", stderr(&out));
    no_key_material(&out);
}

/// `--key-vault-identity`: a user-assigned client id given with the environment identity would be ignored, so it is
/// refused naming the fix, and an unknown kind lists the kinds; neither contacts the vault or Entra ID.
#[tokio::test]
async fn identity_flags_that_would_be_ignored_are_refused() {
    let f = Fixture::new().await;
    let out = f
        .run(&["keys", "export", "--out", "x.yaml", "--key-vault-managed-identity-client-id", "3c5a1f0e"])
        .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--key-vault-identity managed-identity"), "{}", stderr(&out));
    let out = f.run(&["keys", "export", "--out", "x.yaml", "--key-vault-identity", "msi"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("environment") && stderr(&out).contains("managed-identity"),
        "{}",
        stderr(&out)
    );
    let counters = f.kv.counters();
    assert_eq!((counters.tokens, counters.imds), (0, 0), "nothing asked of Entra ID or IMDS");
    assert!(f.kv.log().is_empty(), "nothing asked of the vault: {:?}", f.kv.log());
    assert!(!f.path("x.yaml").exists());
}
