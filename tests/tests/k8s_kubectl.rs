//! A second, independent client (a real `kubectl`) agrees with what kube-rs sees on the same cluster: the
//! objects, field managers, the CRD's printer columns and deletions. Also guards the reflect2 fix the cluster
//! build needs (a `?pretty=true` request used to kill kube-apiserver built with Go >= 1.18).

use std::{
    io::Write,
    process::{Command, Stdio},
};

use arcseal_tests::k8s::{
    self, KUBECTL_ENV, TestNamespace,
    sealed_secret::{self, SealedSecret, SealedSecretCondition, SealedSecretStatus, sealed_secret},
};
use kube::{
    ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Runs a kubectl command (with `stdin` piped in when given) and returns its stdout; fails with its stderr.
fn run(mut command: Command, stdin: Option<&str>) -> Result<String> {
    let shown = format!("{command:?}");
    let mut child = command
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run {shown}: {e}; run scripts/k8s-test-cluster build (it installs a kubectl) or set {KUBECTL_ENV}"
            )
        })?;
    if let Some(input) = stdin {
        child.stdin.take().ok_or("kubectl stdin was requested as a pipe")?.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        return Err(format!(
            "{shown} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

fn kubectl(ns: &TestNamespace, args: &[&str]) -> Command {
    let mut command = ns.kubectl();
    command.args(args);
    command
}

#[tokio::test]
async fn kubectl_and_kube_rs_agree_on_sealed_secrets() -> Result {
    let ns = TestNamespace::new("kubectl").await?;
    k8s::apply_crd(&ns.client(), sealed_secret::CRD_YAML).await?;
    let api = ns.api::<SealedSecret>();

    // Written by kube-rs, read by kubectl.
    let created =
        api.create(&PostParams::default(), &sealed_secret("from-kube", &[("user", "AgA=")])).await?;
    let synced = SealedSecretStatus {
        observed_generation: created.metadata.generation,
        conditions: vec![SealedSecretCondition {
            type_: "Synced".to_owned(),
            status: "True".to_owned(),
            message: Some("unsealed".to_owned()),
            ..Default::default()
        }],
    };
    let with_status = api
        .patch_status(
            "from-kube",
            &PatchParams::apply("arcseal-controller").force(),
            &Patch::Apply(json!({
                "apiVersion": "bitnami.com/v1alpha1",
                "kind": "SealedSecret",
                "metadata": { "name": "from-kube" },
                "status": synced,
            })),
        )
        .await?;
    let seen: serde_json::Value =
        serde_json::from_str(&run(kubectl(&ns, &["get", "sealedsecret", "from-kube", "-o", "json"]), None)?)?;
    assert_eq!(seen["metadata"]["uid"], json!(created.uid()));
    assert_eq!(seen["metadata"]["resourceVersion"], json!(with_status.resource_version()));
    assert_eq!(seen["spec"]["encryptedData"], json!({ "user": "AgA=" }));
    assert_eq!(seen["status"]["conditions"][0]["type"], "Synced");

    // The CRD's printer columns, as a person sees them.
    let table = run(kubectl(&ns, &["get", "sealedsecrets"]), None)?;
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "SYNCED", "AGE"], "{table}");
    let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(row[..3], ["from-kube", "unsealed", "True"], "{table}");

    // Written by kubectl (server-side apply), read by kube-rs.
    let manifest = format!(
        "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata:\n  name: from-kubectl\n  namespace: {}\n\
         spec:\n  encryptedData:\n    password: AgB=\n  template:\n    type: kubernetes.io/basic-auth\n",
        ns.name()
    );
    run(
        kubectl(&ns, &["apply", "--server-side", "--field-manager=kubectl-test", "-f", "-"]),
        Some(&manifest),
    )?;
    let applied = api.get("from-kubectl").await?;
    assert_eq!(applied.spec.encrypted_data["password"], "AgB=");
    let template = applied.spec.template.clone().unwrap_or_default();
    assert_eq!(template.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert!(
        applied.managed_fields().iter().any(|m| {
            m.manager.as_deref() == Some("kubectl-test") && m.operation.as_deref() == Some("Apply")
        }),
        "kubectl's apply is not recorded as its own field manager: {:?}",
        applied.managed_fields()
    );

    // Deleted by kubectl, gone for kube-rs.
    run(kubectl(&ns, &["delete", "sealedsecret", "from-kubectl", "--wait=true"]), None)?;
    assert!(api.get_opt("from-kubectl").await?.is_none());
    let names: Vec<String> = api.list(&Default::default()).await?.iter().map(|s| s.name_any()).collect();
    assert_eq!(names, ["from-kube"]);

    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn pretty_printed_responses_do_not_crash_the_server() -> Result {
    let ns = TestNamespace::new("pretty").await?;
    let path = format!("/api/v1/namespaces/{}?pretty=true", ns.name());
    let pretty = run(kubectl(&ns, &["get", "--raw", &path]), None)?;
    assert!(pretty.contains(&format!("\n    \"name\": \"{}\",", ns.name())), "not pretty-printed: {pretty}");
    // With the vendored reflect2 1.0.1 the request above kills kube-apiserver; it must still answer.
    let version = ns.client().apiserver_version().await?;
    assert!(!version.git_version.is_empty(), "{version:?}");
    ns.finish().await?;
    Ok(())
}
