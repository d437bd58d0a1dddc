//! `arcseal rotate --controller-url` and `arcseal validate --controller-url`: the real CLI binary against
//! arcseal's controller (its /v1/cert.pem, /v1/rotate and /v1/verify) running on the real API server.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use arcseal_crypto::{Certificate, KeyRing, PrivateKey, Scope};
use arcseal_tests::arcseal_bin;
use arcseal_tests::k8s::poll;

mod controller_common;
use controller_common::*;

async fn served_cert(running: &Running) -> Option<Certificate> {
    let response = reqwest::get(running.url("/v1/cert.pem")).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    Certificate::from_pem(&response.bytes().await.ok()?).ok()
}

/// Runs the CLI off the runtime's threads: the controller it talks to runs on them.
async fn arcseal(args: Vec<String>, stdin: Option<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(arcseal_bin())
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(stdin.unwrap_or_default().as_bytes());
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn values(path: &Path) -> Vec<(String, String)> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&std::fs::read_to_string(path).unwrap()).unwrap();
    docs.iter()
        .filter(|d| d["kind"] == "SealedSecret")
        .flat_map(|d| d["spec"]["encryptedData"].as_object().unwrap().clone())
        .map(|(k, v)| (k, v.as_str().unwrap().to_owned()))
        .collect()
}

fn opens(key: &PrivateKey, ns: &str, value: &str) -> Option<Vec<u8>> {
    let label = Scope::Strict.encryption_label(ns, "db");
    KeyRing::new(vec![key.clone()])
        .open_value(&label, value, None)
        .ok()
        .map(|o| o.plaintext.as_bytes().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_validate_online_through_the_controller() -> TestResult {
    let (ns, old_key, running) = setup("rotate-online").await;
    let base = running.url("");
    let old_cert = poll("cert.pem", TIMEOUT, || async { Ok(served_cert(&running).await) }).await?;
    assert_eq!(old_cert.fingerprint(), old_key.fingerprint());

    let dir = tempfile::tempdir()?;
    let cert_path = dir.path().join("old.pem");
    std::fs::write(&cert_path, old_cert.to_pem())?;
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {}\nstringData:\n  username: admin\n  password: hunter2\n",
        ns.name()
    );
    let out =
        arcseal(vec!["seal".into(), "--cert".into(), cert_path.display().to_string()], Some(secret)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = repo.join("sealed.yaml");
    let original = format!("# credentials of the db\n{}", String::from_utf8(out.stdout)?);
    std::fs::write(&file, &original)?;

    // The controller verifies it as it is.
    let validate =
        vec!["validate".into(), "--controller-url".into(), base.clone(), repo.display().to_string()];
    let out = arcseal(validate.clone(), None).await;
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // A newer key in the cluster: the controller serves it, and rotate moves the repo onto it.
    tokio::time::sleep(Duration::from_millis(1100)).await; // certificates carry whole seconds
    let (new_key, new_cert) = new_key();
    store_key(&ns.client(), ns.name(), &new_key, &new_cert).await;
    poll("cert.pem of the new key", TIMEOUT, || async {
        Ok(served_cert(&running).await.filter(|c| c.fingerprint() == new_key.fingerprint()))
    })
    .await?;
    let rotate = vec!["rotate".into(), repo.display().to_string(), "--controller-url".into(), base.clone()];
    let out = arcseal(rotate.clone(), None).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("rotated 2 item(s) in 1 file(s)"), "{err}");
    let after = std::fs::read_to_string(&file)?;
    assert!(after.starts_with("# credentials of the db\n"), "comments stay");
    assert_eq!(after.lines().count(), original.lines().count());
    assert!(after.contains(&format!("arcseal.dev/sealed-with: sha256:{}", new_key.fingerprint())));
    for (item, value) in values(&file) {
        assert!(opens(&old_key, ns.name(), &value).is_none(), "{item} still opens with the old key");
        let expected: &[u8] = if item == "username" { b"admin" } else { b"hunter2" };
        assert_eq!(opens(&new_key, ns.name(), &value).as_deref(), Some(expected), "{item}");
    }

    // Current now: the annotation names the controller's newest key, nothing to do.
    let out = arcseal(rotate, None).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to rotate"));
    assert_eq!(std::fs::read_to_string(&file)?, after);

    // The PR gate catches a SealedSecret renamed after sealing (its strict scope no longer matches).
    std::fs::write(repo.join("renamed.yaml"), after.replace("name: db\n", "name: db-renamed\n"))?;
    let out = arcseal(validate, None).await;
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("renamed.yaml") && report.contains("cannot decrypt it (/v1/verify: 409)"),
        "{report}"
    );
    assert!(!report.contains("sealed.yaml:"), "{report}");

    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Issue 17: a CI job validates and rotates a 500-file repository in one run although the controller
/// rate-limits /v1/verify and /v1/rotate: the CLI waits out each HTTP 429 instead of failing the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_file_repository_validates_and_rotates_under_the_rate_limit() -> TestResult {
    let ns = arcseal_tests::k8s::TestNamespace::new("rotate-500").await?;
    arcseal_tests::k8s::apply_crd(&ns.client(), &arcseal_controller::unseal::crd::crd_yaml()).await?;
    let (old_key, old_cert) = new_key();
    store_key(&ns.client(), ns.name(), &old_key, &old_cert).await;
    let mut cfg = config(ns.name(), &[ns.name()]);
    // Far below the request rate the CLI could reach, so most requests meet a 429 first.
    cfg.http_limits.request_rate = 25.0;
    cfg.http_limits.request_burst = 2;
    let running = start(ns.client(), cfg).await;
    let base = running.url("");
    poll("cert.pem", TIMEOUT, || async { Ok(served_cert(&running).await) }).await?;

    let dir = tempfile::tempdir()?;
    let cert_path = dir.path().join("old.pem");
    std::fs::write(&cert_path, old_cert.to_pem())?;
    // Namespace-wide, so one sealed text serves 500 objects of different names.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-0\n  namespace: {}\nstringData:\n  password: hunter2\n",
        ns.name()
    );
    let args = vec![
        "seal".into(),
        "--cert".into(),
        cert_path.display().to_string(),
        "--scope".into(),
        "namespace-wide".into(),
    ];
    let out = arcseal(args, Some(secret)).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let sealed = String::from_utf8(out.stdout)?;
    let repo = dir.path().join("repo");
    for i in 0..500 {
        let team = repo.join(format!("team-{}", i % 10));
        std::fs::create_dir_all(&team)?;
        std::fs::write(
            team.join(format!("app-{i}.yaml")),
            sealed.replace("name: app-0\n", &format!("name: app-{i}\n")),
        )?;
    }

    let validate =
        vec!["validate".into(), "--controller-url".into(), base.clone(), repo.display().to_string()];
    let started = std::time::Instant::now();
    let out = arcseal(validate, None).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{}{err}", String::from_utf8_lossy(&out.stdout));
    assert!(err.contains("500 SealedSecret(s) checked: 0 error(s)"), "{err}");
    eprintln!("validate: 500 files in {:.1} s at 25 requests/s", started.elapsed().as_secs_f64());

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (new_key, new_cert) = new_key();
    store_key(&ns.client(), ns.name(), &new_key, &new_cert).await;
    poll("cert.pem of the new key", TIMEOUT, || async {
        Ok(served_cert(&running).await.filter(|c| c.fingerprint() == new_key.fingerprint()))
    })
    .await?;
    let started = std::time::Instant::now();
    let out =
        arcseal(vec!["rotate".into(), repo.display().to_string(), "--controller-url".into(), base], None)
            .await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("rotated 500 item(s) in 500 file(s)"), "{err}");
    eprintln!("rotate: 500 files in {:.1} s at 25 requests/s", started.elapsed().as_secs_f64());
    let value = values(&repo.join("team-9/app-499.yaml")).remove(0).1;
    let label = Scope::NamespaceWide.encryption_label(ns.name(), "");
    let opened = KeyRing::new(vec![new_key]).open_value(&label, &value, None)?;
    assert_eq!(opened.plaintext.as_bytes(), b"hunter2");

    running.stop().await;
    ns.finish().await?;
    Ok(())
}
