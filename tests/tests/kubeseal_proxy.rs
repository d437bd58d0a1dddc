//! `arcseal seal --fetch-cert`, the default certificate fetch, `--re-encrypt` and `--validate` (also as
//! `kubeseal`) through the real API server's service proxy to arcseal's controller.
//!
//! The test cluster has no node, and the API server proxies a Service only to an Endpoints address that
//! a Pod's `status.podIP` names, never to loopback. So the test gives the controller an address of its
//! own: a veth interface with 198.18.0.1/32 (RFC 2544 benchmarking space, never routed), a stand-in Pod
//! whose status says that IP, and a selector-less Service plus Endpoints pointing at the controller's
//! port. The interface is removed at the end. Needs root (CAP_NET_ADMIN); without it the test says so
//! and is skipped.

use std::process::{Command, Output, Stdio};

use arcseal_crypto::{Certificate, KeyRing, Scope};
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Patch, PatchParams, PostParams};

mod controller_common;
use controller_common::*;

const ADDRESS: &str = "198.18.0.1";

/// The test's interface (one end of a veth pair; deleting it deletes both), removed on drop, also
/// when the test fails.
struct Interface(String);

impl Interface {
    fn create() -> Result<Interface, String> {
        let name = format!("arcseal-t{}", std::process::id() % 10_000);
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().map_err(|e| format!("running ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
            }
        };
        // A veth pair (this kernel has no dummy driver): the address on one end, both ends up.
        let peer = format!("{name}p");
        ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
        let interface = Interface(name.clone());
        ip(&["addr", "add", &format!("{ADDRESS}/32"), "dev", &name])?;
        ip(&["link", "set", &peer, "up"])?;
        ip(&["link", "set", &name, "up"])?;
        Ok(interface)
    }
}

impl Drop for Interface {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).output();
    }
}

/// Runs the CLI (as `arcseal`, or as `kubeseal` through a link) off the runtime's threads.
async fn run(program: std::path::PathBuf, args: Vec<String>, stdin: Vec<u8>) -> Output {
    run_in(std::env::current_dir().unwrap(), program, args, stdin).await
}

/// [`run`] in `dir` (commands that find `.arcseal.yaml` from the working directory).
async fn run_in(
    dir: std::path::PathBuf,
    program: std::path::PathBuf,
    args: Vec<String>,
    stdin: Vec<u8>,
) -> Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(program)
            .current_dir(dir)
            .args(&args)
            .env_remove("SEALED_SECRETS_CERT")
            // No kubeconfig unless a flag names one (a missing KUBECONFIG file is skipped, as kubectl does).
            .env("KUBECONFIG", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(&stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_cert_and_default_fetch_go_through_the_service_proxy() -> TestResult {
    let interface = match Interface::create() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("skipped: cannot create the test address {ADDRESS} ({e}); needs root");
            return Ok(());
        }
    };
    let ns = arcseal_tests::k8s::TestNamespace::new("kubeseal-proxy").await?;
    arcseal_tests::k8s::apply_crd(&ns.client(), &arcseal_controller::unseal::crd::crd_yaml()).await?;
    let (key, cert) = new_key();
    store_key(&ns.client(), ns.name(), &key, &cert).await;
    let mut cfg = config(ns.name(), &[ns.name()]);
    cfg.listen_addr = Some(format!("{ADDRESS}:0").parse()?);
    let running = start(ns.client(), cfg).await;
    let port = running.handles.http_addr.expect("HTTP API bound").port();

    // The stand-in Pod (never scheduled: no node) whose status names the controller's address.
    let pods = ns.api::<Pod>();
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sealed-secrets-controller-0", "labels": {"app": "sealed-secrets"}},
        "spec": {"containers": [{"name": "controller", "image": "arcseal-controller:test"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let status =
        serde_json::json!({"status": {"podIP": ADDRESS, "podIPs": [{"ip": ADDRESS}], "phase": "Running"}});
    pods.patch_status("sealed-secrets-controller-0", &PatchParams::default(), &Patch::Merge(&status)).await?;
    let service: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sealed-secrets-controller"},
        "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": port}]},
    }))?;
    ns.api::<Service>().create(&PostParams::default(), &service).await?;
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "sealed-secrets-controller"},
        "subsets": [{
            "addresses": [{"ip": ADDRESS, "targetRef": {"kind": "Pod", "name": "sealed-secrets-controller-0", "namespace": ns.name()}}],
            "ports": [{"name": "http", "port": port}],
        }],
    }))?;
    ns.api::<Endpoints>().create(&PostParams::default(), &endpoints).await?;

    let kubeconfig = ns.cluster().kubeconfig().display().to_string();
    let cluster = |extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "--controller-namespace".into(),
            ns.name().into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let arcseal = arcseal_tests::arcseal_bin().to_path_buf();

    // --fetch-cert prints the controller's certificate.
    let out =
        run(arcseal.clone(), [vec!["seal".into(), "--fetch-cert".into()], cluster(&[])].concat(), vec![])
            .await;
    let fetched = Certificate::from_pem(ok(&out).as_bytes())?;
    assert_eq!(fetched.fingerprint(), cert.fingerprint());

    // The default fetch when no --cert is given: the sealed value opens with the controller's key.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {}}}\nstringData: {{password: hunter2}}\n",
        ns.name()
    );
    let out = run(
        arcseal.clone(),
        [vec!["seal".into(), "-o".into(), "json".into()], cluster(&[])].concat(),
        secret.clone().into_bytes(),
    )
    .await;
    let sealed: serde_json::Value = serde_json::from_str(&ok(&out))?;
    let value = sealed["spec"]["encryptedData"]["password"].as_str().unwrap();
    let label = Scope::Strict.encryption_label(ns.name(), "db");
    let opened = KeyRing::new(vec![key.clone()]).open_value(&label, value, None)?;
    assert_eq!(opened.plaintext.as_bytes(), b"hunter2");

    // The same binary as `kubeseal`: --validate and --re-encrypt through the proxy.
    let dir = tempfile::tempdir()?;
    let kubeseal = dir.path().join("kubeseal");
    std::os::unix::fs::symlink(&arcseal, &kubeseal)?;
    let sealed_text = sealed.to_string().into_bytes();
    ok(&run(kubeseal.clone(), cluster(&["--validate"]), sealed_text.clone()).await);
    let out = run(kubeseal.clone(), cluster(&["--re-encrypt"]), sealed_text).await;
    let again: serde_json::Value = serde_json::from_str(&ok(&out))?;
    let value = again["spec"]["encryptedData"]["password"].as_str().unwrap();
    assert_eq!(
        KeyRing::new(vec![key.clone()]).open_value(&label, value, None)?.plaintext.as_bytes(),
        b"hunter2"
    );

    // validate and rotate --online reach the same controller the same way.
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("db.json"), sealed.to_string())?;
    let repo_arg = repo.display().to_string();
    let out = run(
        arcseal.clone(),
        [vec!["validate".into(), "--online".into(), repo_arg.clone()], cluster(&[])].concat(),
        vec![],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("1 SealedSecret(s) checked: 0 error(s)"), "{err}");
    let out = run(
        arcseal.clone(),
        [vec!["rotate".into(), "--online".into(), repo_arg], cluster(&[])].concat(),
        vec![],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("nothing to rotate"), "{err}");

    // The repository config's pins (issue 15): `cert --pin` fetches through the kubeconfig context the
    // config names for the cluster, `cert --check` agrees, then names the cluster and the fix once the pin
    // differs; a cluster whose context is not in the kubeconfig fails on its own line.
    let kubeconfig_yaml: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&kubeconfig)?)?;
    let context = kubeconfig_yaml["contexts"][0]["name"].as_str().unwrap().to_owned();
    let pins = dir.path().join("pins");
    std::fs::create_dir_all(&pins)?;
    std::fs::write(
        pins.join(".arcseal.yaml"),
        format!(
            "version: 1\nclusters:\n  live:\n    cert: clusters/live/cert.pem\n    paths: [\"apps/live/**\"]\n    context: {context}\n    controllerNamespace: {}\n  ghost:\n    cert: clusters/ghost/cert.pem\n    paths: [\"apps/ghost/**\"]\n    context: no-such-context\n",
            ns.name()
        ),
    )?;
    let certs = |extra: &[&str]| {
        let mut args: Vec<String> = vec!["cert".into(), "--kubeconfig".into(), kubeconfig.clone()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let out = run_in(pins.clone(), arcseal.clone(), certs(&["--pin", "--for-cluster", "live"]), vec![]).await;
    assert!(ok(&out).contains(&cert.fingerprint().to_string()));
    let pinned = Certificate::from_pem(&std::fs::read(pins.join("clusters/live/cert.pem"))?)?;
    assert_eq!(pinned.fingerprint(), cert.fingerprint());
    let out =
        run_in(pins.clone(), arcseal.clone(), certs(&["--check", "--for-cluster", "live"]), vec![]).await;
    assert!(ok(&out).contains("matches the controller's"));
    std::fs::write(pins.join("clusters/live/cert.pem"), new_key().1.to_pem())?;
    std::fs::create_dir_all(pins.join("clusters/ghost"))?;
    std::fs::write(pins.join("clusters/ghost/cert.pem"), new_key().1.to_pem())?;
    let out = run_in(pins.clone(), arcseal.clone(), certs(&["--check"]), vec![]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: cluster live: ")
            && err.contains(&format!("the controller serves sha256:{}", cert.fingerprint()))
            && err.contains("arcseal cert --pin --for-cluster live"),
        "{err}"
    );
    assert!(err.contains("error: cluster ghost: ") && err.contains("no-such-context"), "{err}");

    // Re-pinning says which key it replaced; `seal -w` under the cluster's paths then uses the new pin, and
    // `rotate --all-clusters --online` re-seals through that cluster's controller (a SealedSecret without
    // the sealed-with annotation is re-sealed on every online run); ghost has no files and is not called.
    let out = run_in(pins.clone(), arcseal.clone(), certs(&["--pin", "--for-cluster", "live"]), vec![]).await;
    assert!(ok(&out).contains("(was sha256:"), "a changed pin names the key it replaced");
    std::fs::create_dir_all(pins.join("apps/live"))?;
    let seal_args = vec!["seal".into(), "-w".into(), "apps/live/db.yaml".into()];
    ok(&run_in(pins.clone(), arcseal.clone(), seal_args, secret.clone().into_bytes()).await);
    let sealed_text = std::fs::read_to_string(pins.join("apps/live/db.yaml"))?;
    let unannotated: String = sealed_text
        .lines()
        .filter(|l| !l.contains("arcseal.dev/sealed-with"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(pins.join("apps/live/db.yaml"), &unannotated)?;
    let rotate = vec![
        "rotate".into(),
        "apps".into(),
        "--all-clusters".into(),
        "--online".into(),
        "--kubeconfig".into(),
        kubeconfig.clone(),
    ];
    let out = run_in(pins.clone(), arcseal.clone(), rotate, vec![]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("rotated 1 item(s) in 1 file(s) to live sha256:"), "{err}");
    let rotated: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(pins.join("apps/live/db.yaml"))?)?;
    let before: serde_json::Value = serde_saphyr::from_str(&unannotated)?;
    let value = rotated["spec"]["encryptedData"]["password"].as_str().unwrap();
    assert_ne!(
        value,
        before["spec"]["encryptedData"]["password"].as_str().unwrap(),
        "re-sealed by the controller"
    );
    assert_eq!(
        KeyRing::new(vec![key.clone()]).open_value(&label, value, None)?.plaintext.as_bytes(),
        b"hunter2"
    );

    // `validate --online` in the repository asks each file's own cluster: live's controller in the namespace
    // its config names (the default --controller-namespace has none); ghost has no files and is not called.
    let validate = || {
        vec![
            "validate".to_owned(),
            "apps".into(),
            "--online".into(),
            "--kubeconfig".into(),
            kubeconfig.clone(),
        ]
    };
    let out = run_in(pins.clone(), arcseal.clone(), validate(), vec![]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && err.contains("1 SealedSecret(s) checked: 0 error(s)"), "{err}");
    // A file of ghost: its context is not in the kubeconfig, an error on that file naming the cluster.
    std::fs::create_dir_all(pins.join("apps/ghost"))?;
    std::fs::copy(pins.join("apps/live/db.yaml"), pins.join("apps/ghost/db.yaml"))?;
    let out = run_in(pins.clone(), arcseal.clone(), validate(), vec![]).await;
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{report}");
    assert!(
        report.lines().any(|l| l.contains("apps/ghost/db.yaml")
            && l.contains("cluster ghost of")
            && l.contains("cannot be asked")
            && l.contains("no-such-context")),
        "{report}"
    );
    std::fs::remove_dir_all(pins.join("apps/ghost"))?;

    // A controller that is not there: the error names the Service and what to do.
    let out = run(
        arcseal.clone(),
        [vec!["seal".into(), "--fetch-cert".into(), "--controller-name".into(), "nope".into()], cluster(&[])]
            .concat(),
        vec![],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nope") && err.contains("--controller-name"), "{err}");

    // kubectl's connection flags without any kubeconfig: server, token, CA, TLS, impersonation, env.
    let config: serde_json::Value = serde_saphyr::from_str(&std::fs::read_to_string(&kubeconfig)?)?;
    let server = config["clusters"][0]["cluster"]["server"].as_str().unwrap().to_owned();
    let ca = config["clusters"][0]["cluster"]["certificate-authority"].as_str().unwrap().to_owned();
    let token = config["users"][0]["user"]["token"].as_str().unwrap().to_owned();
    let fetch = |extra: &[&str]| {
        let mut args: Vec<String> =
            vec!["seal".into(), "--fetch-cert".into(), "--server".into(), server.clone()];
        args.extend(["--token".into(), token.clone(), "--request-timeout".into(), "20s".into()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    for extra in [
        vec!["--certificate-authority", &ca, "--controller-namespace", ns.name()],
        vec!["--insecure-skip-tls-verify", "--controller-namespace", ns.name()],
        vec![
            "--certificate-authority",
            &ca,
            "--tls-server-name",
            "kubernetes.default",
            "--controller-namespace",
            ns.name(),
        ],
    ] {
        let out = run(arcseal.clone(), fetch(&extra), vec![]).await;
        assert_eq!(
            Certificate::from_pem(ok(&out).as_bytes())?.fingerprint(),
            cert.fingerprint(),
            "{extra:?}"
        );
    }
    let out = tokio::task::spawn_blocking({
        let (arcseal, args, ns) =
            (arcseal.clone(), fetch(&["--insecure-skip-tls-verify"]), ns.name().to_owned());
        move || {
            Command::new(arcseal)
                .args(&args)
                .env("KUBECONFIG", "/nonexistent")
                .env("SEALED_SECRETS_CONTROLLER_NAMESPACE", ns)
                .output()
                .unwrap()
        }
    })
    .await?;
    assert_eq!(Certificate::from_pem(ok(&out).as_bytes())?.fingerprint(), cert.fingerprint(), "env");
    // Impersonating a user with no rights: the API server refuses, and the error says where.
    let out = run(
        arcseal.clone(),
        fetch(&[
            "--insecure-skip-tls-verify",
            "--as",
            "nobody",
            "--as-group",
            "nobodies",
            "--controller-namespace",
            ns.name(),
        ]),
        vec![],
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("403"), "{err}");
    // A context the kubeconfig does not hold.
    let out = run(
        arcseal.clone(),
        [vec!["seal".into(), "--fetch-cert".into(), "--context".into(), "nope".into()], cluster(&[])]
            .concat(),
        vec![],
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no context \"nope\""));

    running.stop().await;
    ns.finish().await?;
    drop(interface);
    Ok(())
}
