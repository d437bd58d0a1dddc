//! The install really runs: arcseal's image (scripts/build-image) on a real node (`k8s-test-cluster up --node`:
//! kube-scheduler, kubelet, kube-proxy, containerd + runc + CNI from Debian), installed with `kubectl apply -k
//! deploy/overlays/dev` and then with the Helm chart, exactly as a user would.
//!
//! What it proves, in order: the pods reach Ready through their own probes under the hardened securityContext
//! (checked on the node: uid 65532, read-only root); the leader takes the Lease; `arcseal seal` fetches the
//! certificate through the API server's service proxy from the pod, and the pod unseals what was sealed with it;
//! deleting the leader pod hands over to the other replica with no SealedSecret left unsynced; the CSI provider
//! DaemonSet pod creates its socket in the node path and answers a Mount over it from the Key Vault stand-in;
//! the Helm chart's PodDisruptionBudget is served as `policy/v1beta1` on this 1.20 cluster (the chart picks the
//! version the cluster serves; the dev overlay has no PodDisruptionBudget) and the disruption controller counts it.
//!
//! Figures (image size, apply to Ready, failover) are printed; nothing asserts on time.
//!
//! Environment: `ARCSEAL_IMAGE_ARCHIVE` (an OCI archive from scripts/build-image; built here when unset),
//! `ARCSEAL_HELM` (default: the helm deploy/test.sh installs; the Helm half is skipped, saying so, outside CI
//! when there is none). A machine that cannot run a node (not root, no overlayfs, no cgroups:
//! `k8s-test-cluster node-check` says which) skips the test with the reason, except under CI=true, where it fails.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arcseal_controller::csi::proto::MountRequest;
use arcseal_controller::csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use arcseal_controller::unseal::crd::SealedSecret;
use arcseal_crypto::Certificate;
use arcseal_tests::k8s::{self, TestCluster, poll};
use arcseal_tests::keyvault::provider::{Pod as MountPod, attributes, objects, unix_channel};
use arcseal_tests::keyvault::{KeyVaultStandIn, TestCa};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SYSTEM: &str = "kube-system";
const CONTROLLER: &str = "sealed-secrets-controller";
const PROVIDER: &str = "arcseal-csi-provider";
const CONTROLLER_SELECTOR: &str =
    "app.kubernetes.io/name=arcseal,app.kubernetes.io/component=unseal-controller";
const PROVIDER_SOCKET: &str = "/var/run/secrets-store-csi-providers/arcseal.sock";
/// The node's own address (k8s-test-cluster's NODE_GATEWAY): the only non-loopback address pods can reach
/// the test process on.
const NODE_ADDRESS: [u8; 4] = [198, 19, 250, 1];
const KEYVAULT_SUFFIX: &str = "vault.arcseal.test";
const AUTHORITY: &str = "login.arcseal.test";
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Pods start, pull nothing, probe: generous on a loaded 2-core machine, and only an upper bound.
const READY_TIMEOUT: Duration = Duration::from_secs(240);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Why this machine cannot run a node, if it cannot. Under CI=true a machine that cannot is a failure.
fn node_unavailable() -> Option<String> {
    let out = Command::new(repo().join("scripts/k8s-test-cluster"))
        .arg("node-check")
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/k8s-test-cluster node-check");
    if out.status.success() {
        return None;
    }
    let why = String::from_utf8_lossy(&out.stdout).trim().replace('\n', "; ");
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true, but this machine cannot run a node: {why}"
    );
    Some(why)
}

/// The image archive: ARCSEAL_IMAGE_ARCHIVE, or built now with scripts/build-image.
fn image_archive() -> PathBuf {
    if let Some(path) = std::env::var_os("ARCSEAL_IMAGE_ARCHIVE").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let out = Command::new(repo().join("scripts/build-image"))
        .stderr(Stdio::inherit())
        .output()
        .expect("running scripts/build-image");
    assert!(out.status.success(), "scripts/build-image failed");
    repo().join(String::from_utf8_lossy(&out.stdout).trim())
}

fn helm() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ARCSEAL_HELM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let home = std::env::var_os("HOME")?;
    let cache = std::env::var_os("ARCSEAL_DEPLOY_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(home).join(".cache/arcseal/deploy"));
    let helm = cache.join("helm-layer-2.2.2/helm/helm");
    helm.exists().then_some(helm)
}

/// Runs a command off the runtime's threads; panics with its stderr when it fails.
async fn run(mut command: Command) -> String {
    let shown = format!("{command:?}");
    let out: Output =
        tokio::task::spawn_blocking(move || command.stdin(Stdio::null()).output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{shown} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl(cluster: &TestCluster) -> Command {
    let program =
        std::env::var_os(k8s::KUBECTL_ENV).filter(|p| !p.is_empty()).unwrap_or_else(|| "kubectl".into());
    let mut command = Command::new(program);
    command.arg("--kubeconfig").arg(cluster.kubeconfig());
    command
}

fn arcseal(cluster: &TestCluster) -> Command {
    let mut command = Command::new(arcseal_tests::arcseal_bin());
    // As kubectl: the cluster from KUBECONFIG (flags come after the subcommand, which callers add).
    command.env("KUBECONFIG", cluster.kubeconfig()).env_remove("SEALED_SECRETS_CERT");
    command
}

fn kube_err(what: &str) -> impl FnOnce(kube::Error) -> k8s::Error + '_ {
    move |source| k8s::Error::Kube { what: what.to_owned(), source }
}

/// Waits until the Deployment has `replicas` ready, updated pods and the DaemonSet one ready pod.
async fn wait_install_ready(client: &Client, replicas: i32) -> Result<(), k8s::Error> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), SYSTEM);
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), SYSTEM);
    poll(&format!("{replicas} controller pod(s) and the CSI provider pod Ready"), READY_TIMEOUT, || async {
        let d = deployments.get(CONTROLLER).await.map_err(kube_err("reading the Deployment"))?;
        let ds = daemonsets.get(PROVIDER).await.map_err(kube_err("reading the DaemonSet"))?;
        let status = d.status.unwrap_or_default();
        let ds_status = ds.status.unwrap_or_default();
        let done = status.ready_replicas == Some(replicas)
            && status.updated_replicas == Some(replicas)
            && status.replicas == Some(replicas)
            && ds_status.number_ready == 1
            && ds_status.updated_number_scheduled == Some(1);
        Ok(done.then_some(()))
    })
    .await
}

async fn controller_pods(client: &Client) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), SYSTEM)
        .list(&ListParams::default().labels(CONTROLLER_SELECTOR))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn lease_holder(client: &Client) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), SYSTEM).get_opt(CONTROLLER).await.ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// The Lease held by one of the running controller pods (the holder identity is the pod name).
async fn wait_leader(client: &Client, not: Option<&str>) -> Result<String, k8s::Error> {
    poll("a running controller pod holding the Lease", READY_TIMEOUT, || async {
        let Some(holder) = lease_holder(client).await else { return Ok(None) };
        let running = controller_pods(client).await.iter().any(|p| p.name_any() == holder);
        Ok((running && Some(holder.as_str()) != not).then_some(holder))
    })
    .await
}

/// On the node itself: the container process of `pod`'s first container runs as `uid` with a read-only root.
async fn check_container_process(cluster: &TestCluster, pod: &Pod, uid: u32) {
    let id = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.container_id.clone())
        .expect("a running container has an id");
    let id = id.strip_prefix("containerd://").expect("containerd runs the pods").to_owned();
    let socket =
        cluster.dir().expect("the harness started this cluster").join("node/containerd/containerd.sock");
    let mut ctr = Command::new("ctr");
    ctr.arg("--address").arg(&socket).args(["-n", "k8s.io", "tasks", "ls"]);
    let tasks = run(ctr).await;
    let pid: u32 = tasks
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(id.as_str())).then(|| f.next().unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("container {id} has no task:\n{tasks}"));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(uids.split_whitespace().skip(1).all(|u| u == uid.to_string()), "{}: {uids}", pod.name_any());
    let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
    assert!(caps.ends_with("0000000000000000"), "{}: capabilities left: {caps}", pod.name_any());
    // The root mount as the process sees it: field 5 of mountinfo is the mount point, 6 the options.
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let root = mountinfo.lines().find(|l| l.split_whitespace().nth(4) == Some("/")).unwrap();
    let options = root.split_whitespace().nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "{}: root mounted {options}", pod.name_any());
}

/// Seals `data` as Secret `name` in `ns` with `arcseal seal` (the certificate fetched through the service proxy)
/// and creates the SealedSecret.
async fn seal_and_create(cluster: &TestCluster, client: &Client, ns: &str, name: &str, value: &str) {
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\nstringData: {{password: {value}}}\n"
    );
    let mut command = arcseal(cluster);
    command.args(["seal", "-o", "json"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = command.spawn().unwrap();
        child.stdin.take().unwrap().write_all(secret.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "arcseal seal: {}", String::from_utf8_lossy(&out.stderr));
    let sealed: SealedSecret = serde_json::from_slice(&out.stdout).unwrap();
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sealed)
        .await
        .unwrap();
}

async fn wait_secret(client: &Client, ns: &str, name: &str, value: &str) -> Result<(), k8s::Error> {
    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    poll(&format!("Secret {ns}/{name} unsealed by the pod"), READY_TIMEOUT, || async {
        let Some(secret) = secrets.get_opt(name).await.map_err(kube_err("reading a Secret"))? else {
            return Ok(None);
        };
        let data: BTreeMap<String, Vec<u8>> =
            secret.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        Ok((data.get("password").map(Vec::as_slice) == Some(value.as_bytes())).then_some(()))
    })
    .await
}

/// `arcseal seal --fetch-cert` through the service proxy equals the pod's active key in kube-system.
async fn check_fetch_cert(cluster: &TestCluster, client: &Client) {
    let mut command = arcseal(cluster);
    command.args(["seal", "--fetch-cert"]);
    let fetched = Certificate::from_pem(run(command).await.as_bytes()).unwrap();
    let keys = Api::<Secret>::namespaced(client.clone(), SYSTEM)
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await
        .unwrap();
    let fingerprints: Vec<_> = keys
        .items
        .iter()
        .filter_map(|s| s.data.as_ref()?.get("tls.crt"))
        .map(|c| Certificate::from_pem(&c.0).unwrap().fingerprint())
        .collect();
    assert!(fingerprints.contains(&fetched.fingerprint()), "fetched cert is not a key the pod stored");
}

async fn create_namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_e2e_install_runs_on_a_real_node() -> TestResult {
    if let Some(why) = node_unavailable() {
        eprintln!("skipped: this machine cannot run a Kubernetes node: {why}");
        return Ok(());
    }
    let archive = tokio::task::spawn_blocking(image_archive).await?;
    let cluster = tokio::task::spawn_blocking(TestCluster::shared_with_node).await??;
    let size = std::fs::metadata(&archive)?.len();
    println!("figure: image archive {} = {:.1} MiB", archive.display(), size as f64 / 1048576.0);
    // The dev overlay names the image arcseal-controller:0.1.0-dev; the archive carries the crate version's tag.
    cluster.load_image(&archive, &["arcseal-controller:0.1.0-dev"])?;
    let client = cluster.client().await?;

    // --- kubectl apply -k deploy/overlays/dev ---------------------------------------------------------------
    let started = Instant::now();
    let mut apply = kubectl(cluster);
    apply.arg("apply").arg("-k").arg(repo().join("deploy/overlays/dev"));
    run(apply).await;
    wait_install_ready(&client, 1).await?;
    println!(
        "figure: kustomize dev overlay, apply to Ready (1 controller + 1 CSI provider pod): {:?}",
        started.elapsed()
    );
    wait_leader(&client, None).await?;
    for pod in controller_pods(&client).await {
        check_container_process(cluster, &pod, 65532).await;
    }

    check_fetch_cert(cluster, &client).await;
    create_namespace(&client, "e2e").await;
    seal_and_create(cluster, &client, "e2e", "first", "s3cret-1").await;
    wait_secret(&client, "e2e", "first", "s3cret-1").await?;

    // --- failover: two replicas, delete the leader ---------------------------------------------------------
    let deployments = Api::<Deployment>::namespaced(client.clone(), SYSTEM);
    let scale = serde_json::json!({"spec": {"replicas": 2}});
    deployments.patch(CONTROLLER, &PatchParams::default(), &Patch::Merge(&scale)).await?;
    wait_install_ready(&client, 2).await?;
    // The first pod still leads (the Lease is renewed); the new replica stands by.
    let leader = wait_leader(&client, None).await?;
    for i in 0..5 {
        seal_and_create(cluster, &client, "e2e", &format!("before-{i}"), &format!("v{i}")).await;
    }
    let deleted = Instant::now();
    Api::<Pod>::namespaced(client.clone(), SYSTEM).delete(&leader, &DeleteParams::default()).await?;
    for i in 0..5 {
        seal_and_create(cluster, &client, "e2e", &format!("during-{i}"), &format!("w{i}")).await;
    }
    let new_leader = wait_leader(&client, Some(&leader)).await?;
    println!("figure: failover, leader pod deleted to Lease held by {new_leader}: {:?}", deleted.elapsed());
    for i in 0..5 {
        wait_secret(&client, "e2e", &format!("before-{i}"), &format!("v{i}")).await?;
        wait_secret(&client, "e2e", &format!("during-{i}"), &format!("w{i}")).await?;
    }
    println!(
        "figure: failover, leader pod deleted to all 10 SealedSecrets unsealed: {:?}",
        deleted.elapsed()
    );

    // --- the CSI provider DaemonSet: socket on the node, a Mount against the Key Vault stand-in -------------
    csi_mount_through_the_pod(cluster, &client).await?;

    // --- the Helm chart, on the same node after the overlay is gone ------------------------------------------
    let Some(helm) = helm() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no helm (deploy/test.sh installs it)"
        );
        eprintln!(
            "Helm half skipped: no helm (set ARCSEAL_HELM, or run deploy/test.sh once, which installs it)"
        );
        return Ok(());
    };
    let mut delete = kubectl(cluster);
    delete.args(["delete", "--wait=true", "--timeout=180s", "-k"]).arg(repo().join("deploy/overlays/dev"));
    run(delete).await;
    let started = Instant::now();
    let mut install = Command::new(helm);
    install
        .arg("install")
        .arg("arcseal")
        .arg(repo().join("deploy/helm/arcseal"))
        .args(["--namespace", SYSTEM, "--kubeconfig"])
        .arg(cluster.kubeconfig())
        // The admission webhook through its Service, with Fail: every SealedSecret below must pass through it.
        .args(["--set", "unseal.admission.enabled=true,unseal.admission.failurePolicy=Fail"]);
    run(install).await;
    wait_install_ready(&client, 2).await?;
    println!(
        "figure: Helm chart, install to Ready (2 controller + 1 CSI provider pods): {:?}",
        started.elapsed()
    );
    wait_leader(&client, None).await?;
    for pod in controller_pods(&client).await {
        check_container_process(cluster, &pod, 65532).await;
    }
    check_fetch_cert(cluster, &client).await;
    let started = Instant::now();
    check_admission_webhook(&client).await?;
    println!(
        "figure: Helm chart, Ready to the webhook refusing through its Service: {:?}",
        started.elapsed()
    );
    seal_and_create(cluster, &client, "e2e", "helm", "s3cret-h").await;
    wait_secret(&client, "e2e", "helm", "s3cret-h").await?;

    // The chart rendered its PodDisruptionBudget as policy/v1beta1 (all 1.20 serves) and the disruption
    // controller allows one of the two replicas to go.
    let pdb_ready = poll("the PodDisruptionBudget to allow one disruption", READY_TIMEOUT, || async {
        let mut get = kubectl(cluster);
        get.args(["get", "poddisruptionbudgets.v1beta1.policy", CONTROLLER, "-n", SYSTEM, "-o", "json"]);
        let pdb: serde_json::Value = serde_json::from_str(&run(get).await).unwrap();
        let allowed = pdb["status"]["disruptionsAllowed"].as_i64() == Some(1)
            && pdb["status"]["currentHealthy"].as_i64() == Some(2);
        Ok(allowed.then_some(pdb))
    })
    .await?;
    assert_eq!(pdb_ready["apiVersion"], "policy/v1beta1");
    Ok(())
}

/// The API server reaches the webhook through the chart's Service (ClusterIP, TLS with the caBundle the leader
/// keeps): a SealedSecret sealed for another name is refused, naming the item, in a server-side dry run too.
async fn check_admission_webhook(client: &Client) -> Result<(), k8s::Error> {
    let vwc: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(client.clone());
    let keys = Api::<Secret>::namespaced(client.clone(), SYSTEM)
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await
        .map_err(kube_err("listing keys"))?;
    let cert =
        keys.items.iter().find_map(|s| Certificate::from_pem(&s.data.as_ref()?.get("tls.crt")?.0).ok());
    let cert = cert.expect("an active key with a certificate");
    let value = arcseal_crypto::seal(cert.public_key(), b"e2e/another-name", b"x").unwrap();
    let refused: SealedSecret = serde_json::from_value(serde_json::json!({
        "apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "refused", "namespace": "e2e"},
        "spec": {"encryptedData": {"wrong-item": value}},
    }))
    .unwrap();
    let api = Api::<SealedSecret>::namespaced(client.clone(), "e2e");
    let dry = PostParams { dry_run: true, ..PostParams::default() };
    let message = poll("the webhook refusing through its Service", READY_TIMEOUT, || async {
        Ok(match api.create(&dry, &refused).await {
            Err(kube::Error::Api(s)) if s.message.contains("denied the request") => Some(s.message),
            _ => None,
        })
    })
    .await?;
    assert!(message.contains("\"wrong-item\"") && message.contains("no-key-opens"), "{message}");
    let bundle =
        vwc.get("arcseal-sealedsecrets").await.map_err(kube_err("reading the webhook configuration"))?;
    assert!(
        bundle.webhooks.unwrap_or_default().iter().all(|w| w.client_config.ca_bundle.is_some()),
        "the leader set the caBundle"
    );
    Ok(())
}

/// The DaemonSet pod's socket appears in the node's path; a Mount sent over it (as the CSI driver would) is
/// served from the Key Vault stand-in, which the pod reaches at the node address as kv1.<suffix> and
/// login.<...> (hostAliases), trusting the stand-in's CA from a ConfigMap (--ca-bundle).
async fn csi_mount_through_the_pod(cluster: &TestCluster, client: &Client) -> TestResult {
    let vault_host = format!("kv1.{KEYVAULT_SUFFIX}");
    let ca = TestCa::new(&[vault_host.as_str(), AUTHORITY]);
    let kv = KeyVaultStandIn::start_tls_at(&ca, (NODE_ADDRESS, 443).into()).await;
    kv.add_app("app-1", "s3cret");
    kv.set_secret("kv1", "db-password", "from-key-vault");

    let configmap: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "arcseal-e2e-ca"},
        "data": {"ca.pem": ca.ca_pem},
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), SYSTEM).create(&PostParams::default(), &configmap).await?;
    let ip = NODE_ADDRESS.map(|b| b.to_string()).join(".");
    let patch = serde_json::json!({"spec": {"template": {"spec": {
        "hostAliases": [{"ip": ip, "hostnames": [vault_host, AUTHORITY]}],
        "volumes": [{"name": "e2e-ca", "configMap": {"name": "arcseal-e2e-ca"}}],
        "containers": [{
            "name": "provider",
            "env": [
                {"name": "ARCSEAL_CSI_CA_BUNDLE", "value": "/etc/arcseal-e2e/ca.pem"},
                {"name": "ARCSEAL_CSI_KEYVAULT_DNS_SUFFIX", "value": KEYVAULT_SUFFIX},
                {"name": "ARCSEAL_CSI_AUTHORITY_HOST", "value": format!("https://{AUTHORITY}")},
            ],
            "volumeMounts": [{"name": "e2e-ca", "mountPath": "/etc/arcseal-e2e", "readOnly": true}],
        }],
    }}}});
    let daemonsets = Api::<DaemonSet>::namespaced(client.clone(), SYSTEM);
    daemonsets.patch(PROVIDER, &PatchParams::default(), &Patch::Strategic(&patch)).await?;
    let generation = daemonsets.get(PROVIDER).await?.metadata.generation;
    poll("the patched CSI provider pod Ready", READY_TIMEOUT, || async {
        let ds = daemonsets.get(PROVIDER).await.map_err(kube_err("reading the DaemonSet"))?;
        let s = ds.status.unwrap_or_default();
        let done = s.observed_generation == generation
            && s.updated_number_scheduled == Some(1)
            && s.number_ready == 1
            && s.number_unavailable.unwrap_or(0) == 0;
        Ok(done.then_some(()))
    })
    .await?;
    let pods = Api::<Pod>::namespaced(client.clone(), SYSTEM)
        .list(&ListParams::default().labels("app.kubernetes.io/component=csi-provider"))
        .await?;
    let pod = pods.items.iter().find(|p| p.metadata.deletion_timestamp.is_none()).expect("provider pod");
    // Root without any capability, read-only root filesystem (deploy/README.md says why root).
    check_container_process(cluster, pod, 0).await;

    let socket = PathBuf::from(PROVIDER_SOCKET);
    // Ready already means the pod's probes reached it over this socket; check it is where the driver looks.
    let metadata = std::fs::metadata(&socket)?;
    assert!(metadata.file_type().is_socket(), "{PROVIDER_SOCKET} is not a socket");
    assert_eq!(metadata.permissions().mode() & 0o077, 0, "{PROVIDER_SOCKET} is open to others");
    let objs = objects(&["objectName: db-password\nobjectType: secret"]);
    let attrs = attributes(
        &[("keyvaultName", "kv1"), ("tenantID", TENANT), ("objects", objs.as_str())],
        &MountPod::new("team-a", "app"),
    );
    let response = CsiDriverProviderClient::new(unix_channel(socket).await)
        .mount(MountRequest {
            attributes: attrs,
            secrets: r#"{"clientid":"app-1","clientsecret":"s3cret"}"#.into(),
            target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/secrets/mount".into(),
            permission: "420".into(),
            current_object_version: vec![],
        })
        .await?
        .into_inner();
    let files: BTreeMap<String, Vec<u8>> = response.files.into_iter().map(|f| (f.path, f.contents)).collect();
    assert_eq!(files.get("db-password").map(Vec::as_slice), Some(&b"from-key-vault"[..]));
    let counters = kv.counters();
    assert!(counters.tokens >= 1 && counters.keyvault >= 1, "the pod's provider did not call the stand-in");
    Ok(())
}
