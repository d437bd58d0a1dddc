//! `arcseal status` on the real API server, with the user's kubeconfig: an in-process controller holding the
//! leader Lease in the test namespace, its key Secret, a SealedSecret that unseals and one that cannot, and a
//! stand-in Deployment for the controller (the test cluster runs no deployment controller and has no node, so the
//! test writes the Deployment's status, as kubeseal_proxy writes a Pod's), and first a Lease left by a dead replica.

use std::process::Command;
use std::time::Duration;

use arcseal_controller::unseal::{self, leader::LeaderConfig};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

mod controller_common;
use controller_common::*;

const NAME: &str = "sealed-secrets-controller";

/// Runs `arcseal status` for the controller in `ns`, SealedSecrets of `ns` only (other tests share the cluster).
async fn status(kubeconfig: &std::path::Path, ns: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<String> =
        ["status", "--kubeconfig", &kubeconfig.display().to_string(), "--controller-namespace", ns, "-n", ns]
            .map(str::to_owned)
            .to_vec();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let program = arcseal_tests::arcseal_bin().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program).args(&args).env_remove("KUBECONFIG").output().expect("running arcseal")
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn deployment(ns: &str) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": ns},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "c"}},
            "template": {
                "metadata": {"labels": {"app": "c"}},
                "spec": {"containers": [{
                    "name": "controller",
                    "image": "arcseal-controller",
                    "args": ["unseal", "--leader-elect=true", "--key-renew-period=720h"]
                }]}
            }
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn status_reports_controller_keys_sealed_secrets_and_events_with_an_exit_code() {
    let ns = arcseal_tests::k8s::TestNamespace::new("status").await.unwrap();
    let client = ns.client();
    let kubeconfig = ns.cluster().kubeconfig().to_path_buf();
    arcseal_tests::k8s::apply_crd(&client, &unseal::crd::crd_yaml()).await.unwrap();

    // Nothing installed yet: unhealthy, and it says what is missing.
    let (code, out, err) = status(&kubeconfig, ns.name(), &[]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains(&format!("no Deployment {}/{NAME}", ns.name())), "{out}");
    assert!(out.contains("no active key Secret"), "{out}");

    // A year of validity: the hour of new_key() would (rightly) be reported as near expiry.
    let key = arcseal_crypto::PrivateKey::generate(2048).unwrap();
    let params = arcseal_crypto::CertificateParams {
        common_name: String::new(),
        not_before: std::time::SystemTime::now(),
        validity: Duration::from_secs(365 * 86400),
    };
    let cert = arcseal_crypto::Certificate::self_signed(&key, &params).unwrap();
    let key_secret = store_key(&client, ns.name(), &key, &cert).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    deployments.create(&PostParams::default(), &deployment(ns.name())).await.unwrap();
    let ready = serde_json::json!({"status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}});
    deployments.patch_status(NAME, &PatchParams::default(), &Patch::Merge(&ready)).await.unwrap();
    // A replica that died holding the Lease a minute ago: nothing unseals (4), and status says who and since when.
    let stale = serde_json::json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": NAME, "namespace": ns.name()},
        "spec": {
            "holderIdentity": "replica-old",
            "leaseDurationSeconds": 4,
            "renewTime": k8s_openapi::jiff::Timestamp::now()
                .checked_sub(k8s_openapi::jiff::SignedDuration::from_secs(60))
                .unwrap()
                .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
                .to_string(),
        }
    });
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns.name());
    leases.create(&PostParams::default(), &serde_json::from_value(stale).unwrap()).await.unwrap();
    let (code, out, err) = status(&kubeconfig, ns.name(), &[]).await;
    assert_eq!(code, 4, "{out}{err}");
    assert!(out.contains("replicas   2/2 ready"), "{out}");
    assert!(out.contains("the leader Lease held by replica-old was last renewed 1m"), "{out}");
    assert!(out.contains("has expired"), "{out}");

    let mut config = config(ns.name(), &[ns.name()]);
    config.instance = "replica-0".into();
    config.leader_election = Some(LeaderConfig {
        namespace: ns.name().to_owned(),
        lease_name: NAME.to_owned(),
        identity: "replica-0".into(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    });
    let running = start(client.clone(), config).await;

    let api = good_and_broken(&client, ns.name(), &key).await;
    // The Warning event is published after the status write: wait for it.
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), ns.name());
    arcseal_tests::k8s::poll("the Warning event of broken", TIMEOUT, || async {
        let list = events
            .list(&Default::default())
            .await
            .map_err(|e| arcseal_tests::k8s::Error::Kube { what: "list events".into(), source: e })?;
        Ok(list.items.iter().any(|e| e.involved_object.name.as_deref() == Some("broken")).then_some(()))
    })
    .await
    .unwrap();

    // One SealedSecret does not unseal: degraded (3), and the JSON names it, the key, the leader.
    let (code, out, err) = status(&kubeconfig, ns.name(), &["-o", "json"]).await;
    assert_eq!(code, 3, "{out}{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["health"], "degraded", "{out}");
    assert_eq!(s["controller"]["found"], true);
    assert_eq!(s["controller"]["ready"], 2);
    assert_eq!(s["controller"]["leader"], "replica-0", "{out}");
    assert_eq!(s["controller"]["lease_expired"], false, "{out}");
    let keys = s["keys"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{out}");
    assert_eq!(keys[0]["fingerprint"], cert.fingerprint().to_string());
    assert_eq!(keys[0]["secret"], key_secret.as_str());
    assert_eq!(keys[0]["sealing"], true);
    assert!(s["keys"]["next_renewal"].is_string(), "720h renewal from the Deployment's args: {out}");
    assert_eq!(s["sealed_secrets"]["total"], 2);
    assert_eq!(s["sealed_secrets"]["synced"], 1);
    let unsynced = s["sealed_secrets"]["not_synced"].as_array().unwrap();
    assert_eq!(unsynced.len(), 1, "{out}");
    assert_eq!(unsynced[0]["name"], format!("{}/broken", ns.name()));
    assert!(
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "Warning" && e["object"].as_str().unwrap().ends_with("/broken")),
        "{out}"
    );
    assert!(!out.contains("BEGIN RSA PRIVATE KEY") && !out.contains("PRIVATE KEY"), "no key material: {out}");

    // The screen says the same.
    let (code, text, _) = status(&kubeconfig, ns.name(), &[]).await;
    assert_eq!(code, 3);
    assert!(text.contains("replicas   2/2 ready"), "{text}");
    assert!(text.contains("leader     replica-0 (Lease renewed"), "{text}");
    assert!(text.contains(&format!("NOT SYNCED  {}/broken", ns.name())), "{text}");
    assert!(text.contains(&cert.fingerprint().to_string()[..16]), "{text}");
    assert!(text.contains("Health: DEGRADED (exit 3)"), "{text}");
    if let Ok(dir) = std::env::var("ARCSEAL_STATUS_SNAPSHOT") {
        // scripts/monitoring-screenshots renders this screen for docs/.
        std::fs::write(std::path::Path::new(&dir).join("status.txt"), &text).unwrap();
    }

    // The failing one removed: healthy (0).
    api.delete("broken", &DeleteParams::default()).await.unwrap();
    let (code, out, err) = status(&kubeconfig, ns.name(), &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Health: HEALTHY (exit 0)"), "{out}");

    running.stop().await;

    // A cluster it cannot reach: an error, exit 1.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bad.path(), "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\ncurrent-context: c\n").unwrap();
    let (code, _, err) = status(bad.path(), ns.name(), &["--request-timeout", "5s"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error:") && err.contains("Deployment"), "{err}");
    ns.finish().await.unwrap();
}
