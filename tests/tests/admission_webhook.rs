//! The admission webhook on a real kube-apiserver (`clientConfig.url`, TLS it verifies against the `caBundle` the
//! controller keeps): SealedSecrets refused and accepted, server-side dry runs (the API and `kubectl apply
//! --dry-run=server`, as Flux and Argo CD run them), warnings for retired keys shown by kubectl, a controller that
//! is down under `failurePolicy: Ignore` and `Fail`, the serving Secret remade when deleted, and a certificate
//! kept by someone else (cert-manager's layout).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use arcseal_controller::unseal;
use arcseal_controller::unseal::crd::SealedSecret;
use arcseal_controller::unseal::webhook;
use arcseal_crypto::Scope;
use arcseal_tests::k8s::{self, TestNamespace, poll};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    RuleWithOperations, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

mod controller_common;
use controller_common::*;

const SELECTOR_LABEL: &str = "arcseal-webhook-test";

/// A webhook configuration sending this namespace's SealedSecrets to `url` (cluster-scoped: each test deletes it).
struct Hook {
    api: Api<ValidatingWebhookConfiguration>,
    name: String,
}

impl Hook {
    async fn create(
        client: &Client,
        ns: &TestNamespace,
        url: &str,
        failure_policy: &str,
        ca_bundle: Option<&[u8]>,
    ) -> Hook {
        // Only this test's namespace: other test binaries share the API server.
        Api::<Namespace>::all(client.clone())
            .patch(
                ns.name(),
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"labels": {SELECTOR_LABEL: ns.name()}}})),
            )
            .await
            .unwrap();
        let name = format!("arcseal-test-{}", ns.name());
        let vwc = ValidatingWebhookConfiguration {
            metadata: ObjectMeta { name: Some(name.clone()), ..ObjectMeta::default() },
            webhooks: Some(vec![ValidatingWebhook {
                name: "sealedsecrets.arcseal.dev".into(),
                admission_review_versions: vec!["v1".into()],
                client_config: WebhookClientConfig {
                    url: Some(url.to_owned()),
                    ca_bundle: ca_bundle.map(|b| ByteString(b.to_vec())),
                    service: None,
                },
                failure_policy: Some(failure_policy.into()),
                side_effects: "None".into(),
                timeout_seconds: Some(5),
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(SELECTOR_LABEL.to_owned(), ns.name().to_owned())])),
                    ..LabelSelector::default()
                }),
                rules: Some(vec![RuleWithOperations {
                    api_groups: Some(vec!["bitnami.com".into()]),
                    api_versions: Some(vec!["v1alpha1".into()]),
                    resources: Some(vec!["sealedsecrets".into()]),
                    operations: Some(vec!["CREATE".into(), "UPDATE".into()]),
                    scope: Some("Namespaced".into()),
                }]),
                ..ValidatingWebhook::default()
            }]),
        };
        let api = Api::<ValidatingWebhookConfiguration>::all(client.clone());
        api.create(&PostParams::default(), &vwc).await.unwrap();
        Hook { api, name }
    }

    async fn ca_bundle(&self) -> Option<Vec<u8>> {
        let vwc = self.api.get(&self.name).await.ok()?;
        vwc.webhooks?.first()?.client_config.ca_bundle.clone().map(|b| b.0).filter(|b| !b.is_empty())
    }

    async fn delete(self) {
        let _ = self.api.delete(&self.name, &DeleteParams::default()).await;
    }
}

fn url(addr: SocketAddr) -> String {
    format!("https://{addr}{}", webhook::PATH)
}

/// Starts a controller with the webhook on a free port, and the configuration pointing at it.
async fn start_with_webhook(ns: &TestNamespace, managed: bool) -> (Running, Hook) {
    let (key, cert) = new_key();
    store_key(&ns.client(), ns.name(), &key, &cert).await;
    // The address is known once bound: bind, then create the configuration with it.
    let hook_name = format!("arcseal-test-{}", ns.name());
    let mut config = config(ns.name(), &[ns.name()]);
    config.admission = Some(admission_config(ns.name(), &hook_name, managed));
    let running = start(ns.client(), config).await;
    let addr = running.handles.admission_addr.expect("webhook bound");
    let hook = Hook::create(&ns.client(), ns, &url(addr), "Fail", None).await;
    wait_ready(&running).await;
    (running, hook)
}

async fn wait_webhook_serving(running: &Running, hook: &Hook) {
    poll("the caBundle is set and the certificate loaded", TIMEOUT, || async {
        let loaded = running.handles.admission_cert.as_ref().is_some_and(|c| c.is_loaded());
        Ok((loaded && hook.ca_bundle().await.is_some()).then_some(()))
    })
    .await
    .unwrap();
}

fn refusal(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 403, "{status:?}");
            status.message
        }
        other => panic!("expected the API server's refusal, got {other}"),
    }
}

/// Creates `ss` until the API server answers something other than "the webhook could not be called" (the
/// authorizer and the webhook's client cache settle within a second or two).
async fn create(
    api: &Api<SealedSecret>,
    ss: &SealedSecret,
    pp: &PostParams,
) -> Result<SealedSecret, kube::Error> {
    for _ in 0..20 {
        match api.create(pp, ss).await {
            Err(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            other => return other,
        }
    }
    api.create(pp, ss).await
}

/// A SealedSecret `name` whose item `item` was sealed for another name is refused, naming the item.
async fn assert_refuses_misnamed(
    api: &Api<SealedSecret>,
    ns: &str,
    key: &arcseal_crypto::PublicKey,
    name: &str,
    item: &str,
) {
    let misnamed = sealed(ns, name, Scope::Strict, key, &[(item, b"1")], Some(("o", name)));
    // A webhook configuration takes effect a moment after it is written: an object admitted before is undone.
    let mut outcome = create(api, &misnamed, &PostParams::default()).await;
    for _ in 0..20 {
        if outcome.is_err() {
            break;
        }
        api.delete(name, &DeleteParams::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
        outcome = create(api, &misnamed, &PostParams::default()).await;
    }
    let message = refusal(outcome.unwrap_err());
    assert!(message.contains(&format!("{item:?}")), "{message}");
}

#[tokio::test]
async fn refuses_what_no_key_opens_and_admits_the_rest_dry_runs_included() -> TestResult {
    let ns = TestNamespace::new("webhook").await?;
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await?;
    let (running, hook) = start_with_webhook(&ns, true).await;
    wait_webhook_serving(&running, &hook).await;
    let key = running.handles.keys.snapshot().newest().expect("a key").key.public_key().clone();
    let api: Api<SealedSecret> = ns.api();
    let secret_value: &[u8] = b"webhook-test-plaintext";

    // Sealed for this object: admitted.
    let good =
        sealed(ns.name(), "good", Scope::Strict, &key, &[("a", secret_value), ("b", secret_value)], None);
    create(&api, &good, &PostParams::default()).await?;

    // Sealed for another name, and for another cluster: refused, naming the item and the reason class.
    let renamed = sealed(
        ns.name(),
        "renamed",
        Scope::Strict,
        &key,
        &[("password", secret_value)],
        Some((ns.name(), "x")),
    );
    let message = refusal(create(&api, &renamed, &PostParams::default()).await.unwrap_err());
    assert!(message.contains("\"password\"") && message.contains("no-key-opens"), "{message}");
    assert!(message.contains(&format!("strict ({}/renamed)", ns.name())), "{message}");
    let (foreign, _) = new_key();
    let other_cluster =
        sealed(ns.name(), "foreign", Scope::Strict, foreign.public_key(), &[("token", secret_value)], None);
    let message = refusal(create(&api, &other_cluster, &PostParams::default()).await.unwrap_err());
    assert!(message.contains("\"token\""), "{message}");
    assert!(!message.contains(std::str::from_utf8(secret_value)?), "no value in a refusal");
    assert!(api.get_opt("renamed").await?.is_none() && api.get_opt("foreign").await?.is_none());

    // A scope annotation sealed-secrets ignores.
    let mut typo = sealed(ns.name(), "typo", Scope::NamespaceWide, &key, &[("a", secret_value)], None);
    typo.metadata.annotations =
        Some(BTreeMap::from([(arcseal_crypto::NAMESPACE_WIDE_ANNOTATION.to_owned(), "True".to_owned())]));
    let message = refusal(create(&api, &typo, &PostParams::default()).await.unwrap_err());
    assert!(message.contains("scope-annotation") && message.contains("exactly \"true\""), "{message}");

    // Server-side dry runs get the same answers and store nothing.
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    refusal(create(&api, &renamed, &dry).await.unwrap_err());
    let good_too = sealed(ns.name(), "good-too", Scope::Strict, &key, &[("a", secret_value)], None);
    create(&api, &good_too, &dry).await?;
    assert!(api.get_opt("good-too").await?.is_none(), "a dry run stores nothing");

    // kubectl apply --dry-run=server, as a pipeline runs it: non-zero exit and the webhook's words.
    let yaml = serde_json::to_string(&renamed)?;
    let output = kubectl_apply(&ns, &yaml, &["--dry-run=server"]).await;
    assert!(!output.status.success(), "kubectl must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("denied the request") && stderr.contains("\"password\""), "{stderr}");

    // An UPDATE that changes only labels is admitted without a check; one that swaps in a foreign item is not.
    api.patch(
        "good",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"metadata": {"labels": {"x": "y"}}})),
    )
    .await?;
    let foreign_value =
        arcseal_crypto::seal(foreign.public_key(), format!("{}/good", ns.name()).as_bytes(), b"v")?;
    let swap = serde_json::json!({"spec": {"encryptedData": {"a": foreign_value}}});
    let message = refusal(api.patch("good", &PatchParams::default(), &Patch::Merge(swap)).await.unwrap_err());
    assert!(message.contains("\"a\""), "{message}");

    running.stop().await;
    hook.delete().await;
    ns.finish().await?;
    Ok(())
}

/// `kubectl apply -f -` with `yaml` on stdin, on a blocking thread: the webhook answers from this test's runtime.
async fn kubectl_apply(ns: &TestNamespace, yaml: &str, extra: &[&str]) -> std::process::Output {
    use std::io::Write as _;
    let mut command = ns.kubectl();
    command
        .args(["apply", "-f", "-"])
        .args(extra)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let yaml = yaml.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("kubectl runs");
        child.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn kubectl_shows_a_warning_for_items_sealed_with_a_retired_key() -> TestResult {
    let (ns, old_key) = namespace_with_key("webhook-warn").await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // the newer certificate's NotBefore is later
    let (running, hook) = start_with_webhook(&ns, true).await;
    wait_webhook_serving(&running, &hook).await;
    poll("both keys loaded", TIMEOUT, || async {
        Ok((running.handles.keys.snapshot().keys().len() == 2).then_some(()))
    })
    .await?;
    let ss = sealed(ns.name(), "old", Scope::Strict, old_key.public_key(), &[("a", b"1")], None);
    let yaml = serde_json::to_string(&ss)?;
    let mut output = kubectl_apply(&ns, &yaml, &[]).await;
    for _ in 0..10 {
        if output.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        output = kubectl_apply(&ns, &yaml, &[]).await;
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("Warning:") && stderr.contains("no longer the sealing key"), "{stderr}");
    assert!(stderr.contains(&old_key.fingerprint().to_string()), "{stderr}");
    running.stop().await;
    hook.delete().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_controller_that_is_down_blocks_nothing_under_ignore_and_everything_under_fail() -> TestResult {
    let ns = TestNamespace::new("webhook-down").await?;
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await?;
    // A port nothing listens on: the controller is down.
    let free = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (key, _) = new_key();
    let ss = sealed(ns.name(), "any", Scope::Strict, key.public_key(), &[("a", b"1")], None);
    let api: Api<SealedSecret> = ns.api();

    let hook = Hook::create(&ns.client(), &ns, &url(free), "Fail", None).await;
    // The API server picks a new webhook configuration up a moment after it is created: a create admitted in that
    // moment is undone, so the object's absence afterwards is the refusal's doing.
    let refused = poll("Fail refuses while the webhook is down", TIMEOUT, || async {
        Ok(match api.create(&PostParams::default(), &ss).await {
            Err(kube::Error::Api(s)) if s.message.contains("failed calling webhook") => Some(s.message),
            Ok(_) => {
                api.delete("any", &DeleteParams::default()).await.map_err(|source| k8s::Error::Kube {
                    what: "deleting a SealedSecret admitted before the webhook took effect".into(),
                    source,
                })?;
                None
            }
            _ => None,
        })
    })
    .await?;
    assert!(refused.contains("sealedsecrets.arcseal.dev"), "{refused}");
    assert!(api.get_opt("any").await?.is_none());

    hook.api
        .patch(
            &hook.name,
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(serde_json::json!([
                {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}
            ]))?),
        )
        .await?;
    poll("Ignore admits while the webhook is down", TIMEOUT, || async {
        Ok(api.create(&PostParams::default(), &ss).await.ok())
    })
    .await?;
    hook.delete().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn a_deleted_serving_secret_is_remade_and_a_certificate_kept_by_cert_manager_is_served() -> TestResult {
    let ns = TestNamespace::new("webhook-tls").await?;
    k8s::apply_crd(&ns.client(), &unseal::crd::crd_yaml()).await?;
    let (running, hook) = start_with_webhook(&ns, true).await;
    wait_webhook_serving(&running, &hook).await;
    let secrets: Api<Secret> = ns.api();
    let first = secrets.get("arcseal-admission-tls").await?;
    assert_eq!(first.type_.as_deref(), Some("kubernetes.io/tls"));
    let first_ca = first.data.clone().unwrap_or_default()["ca.crt"].0.clone();
    assert_eq!(hook.ca_bundle().await.as_deref(), Some(first_ca.as_slice()), "caBundle = ca.crt");
    let key = running.handles.keys.snapshot().newest().expect("a key").key.public_key().clone();
    let api: Api<SealedSecret> = ns.api();
    assert_refuses_misnamed(&api, ns.name(), &key, "a", "x").await;
    running.stop().await;

    // The leader of a new run remakes a deleted Secret and the bundle follows.
    secrets.delete("arcseal-admission-tls", &DeleteParams::default()).await?;
    let mut restarted = config(ns.name(), &[ns.name()]);
    restarted.admission = Some(admission_config(ns.name(), &hook.name, true));
    let running = start(ns.client(), restarted).await;
    let remade = poll("the serving Secret is remade", TIMEOUT, || async {
        Ok(secrets.get_opt("arcseal-admission-tls").await.ok().flatten())
    })
    .await?;
    let remade_ca = remade.data.unwrap_or_default()["ca.crt"].0.clone();
    assert_ne!(remade_ca, first_ca);
    poll("the caBundle follows", TIMEOUT, || async {
        Ok((hook.ca_bundle().await.as_deref() == Some(remade_ca.as_slice())).then_some(()))
    })
    .await?;
    running.stop().await;
    hook.delete().await;

    // cert-manager's layout: someone else writes the Secret and the caBundle; the controller only serves.
    let material = arcseal_crypto::tls::serving_certificate(&arcseal_crypto::tls::ServingParams {
        dns_names: vec![],
        ips: vec!["127.0.0.1".parse()?],
        not_before: std::time::SystemTime::now() - Duration::from_secs(60),
        validity: Duration::from_secs(3600),
    })?;
    secrets.delete("arcseal-admission-tls", &DeleteParams::default()).await?;
    // Until cert-manager has issued the Secret, a replica holds no serving certificate and must not be Ready: under
    // Fail the API server would be routed to a TLS listener with nothing to serve.
    let mut issued_elsewhere = config(ns.name(), &[ns.name()]);
    issued_elsewhere.admission = Some(admission_config(ns.name(), "", false));
    let running = start(ns.client(), issued_elsewhere).await;
    poll("the keys are loaded", TIMEOUT, || async {
        Ok(running.handles.ready.load(std::sync::atomic::Ordering::SeqCst).then_some(()))
    })
    .await?;
    let unready = reqwest::get(running.url("/readyz")).await?;
    assert_eq!(unready.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(unready.text().await?.contains("serving certificate"));
    let issued = Secret {
        metadata: ObjectMeta { name: Some("arcseal-admission-tls".into()), ..ObjectMeta::default() },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(material.cert_pem.clone().into_bytes())),
            ("tls.key".to_owned(), ByteString(material.key_pem.as_bytes().to_vec())),
            ("ca.crt".to_owned(), ByteString(material.ca_pem.clone().into_bytes())),
        ])),
        ..Secret::default()
    };
    secrets.create(&PostParams::default(), &issued).await?;
    let addr = running.handles.admission_addr.expect("webhook bound");
    let hook = Hook::create(&ns.client(), &ns, &url(addr), "Fail", Some(material.ca_pem.as_bytes())).await;
    poll("the issued certificate is loaded", TIMEOUT, || async {
        Ok(running.handles.admission_cert.as_ref().is_some_and(|c| c.is_loaded()).then_some(()))
    })
    .await?;
    poll("/readyz answers 200 once the certificate is loaded", TIMEOUT, || async {
        Ok(reqwest::get(running.url("/readyz")).await.is_ok_and(|r| r.status().is_success()).then_some(()))
    })
    .await?;
    assert_refuses_misnamed(&api, ns.name(), &key, "b", "y").await;
    let unchanged = secrets.get("arcseal-admission-tls").await?;
    assert_eq!(
        unchanged.data.unwrap_or_default()["tls.crt"].0,
        material.cert_pem.as_bytes(),
        "not rewritten"
    );
    assert_eq!(hook.ca_bundle().await.as_deref(), Some(material.ca_pem.as_bytes()), "caBundle left alone");
    running.stop().await;
    hook.delete().await;
    ns.finish().await?;
    Ok(())
}
