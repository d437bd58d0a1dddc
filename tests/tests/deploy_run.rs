//! deploy/ run for real on the test API server: the `arcseal-controller` binary with the Deployment's own args,
//! authorized exactly as its ServiceAccount (impersonation from the admin kubeconfig) under the RBAC deploy/ grants:
//! the Kustomize base's cluster-wide roles, then the Helm chart's namespace-scoped ones; and the CSI provider with
//! the DaemonSet's own args. The manifests are rendered by real kubectl kustomize and helm template
//! (`deploy/test.sh render DIR`), so what runs here is what a user applies.
//!
//! The permissions the ServiceAccount ends up with are compared with deploy/test/expected-permissions-*.txt (what
//! `kubectl auth can-i --list` reports, from the API server's SelfSubjectRulesReview), and every request of
//! deploy/test/denied.txt must stay denied (SubjectAccessReview).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use arcseal_tests::k8s::{self, TestCluster, poll};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectRulesReview, SelfSubjectRulesReviewSpec, SubjectAccessReview,
    SubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::GroupVersionKind;
use kube::core::TypeMeta;
use kube::discovery::pinned_kind;
use kube::{Client, Config};
use serde_json::{Value, json};

const SA_NAMESPACE: &str = "kube-system";
const SA_NAME: &str = "sealed-secrets-controller";
const SA_USER: &str = "system:serviceaccount:kube-system:sealed-secrets-controller";
/// The namespaces the Helm values of `deploy/test.sh render` name (`unseal.namespaces.additional: [team-a]`).
const TEAM_A: &str = "team-a";
const TEAM_B: &str = "team-b";
const DEPLOY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy");

/// The renders of `deploy/test.sh render`, once per test process.
fn render(name: &str) -> Result<Vec<Value>> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR
        .get_or_init(|| {
            let dir =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("deploy-render-{}", std::process::id()));
            let output = Command::new(Path::new(DEPLOY_DIR).join("test.sh"))
                .arg("render")
                .arg(&dir)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("running deploy/test.sh render: {e}"))?;
            if !output.status.success() {
                return Err(format!(
                    "deploy/test.sh render failed:\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            Ok(dir)
        })
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let text = std::fs::read_to_string(dir.join(name)).with_context(|| format!("render {name}"))?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).with_context(|| format!("parsing render {name}"))?;
    Ok(docs.into_iter().filter(|d| d.is_object()).collect())
}

fn is(object: &Value, kind: &str, name: Option<&str>) -> bool {
    object["kind"] == kind && name.is_none_or(|n| object["metadata"]["name"] == n)
}

/// The first container's args of `kind/name`, with `--flag=value` replaced for every `replace` (which must be there:
/// the binary runs with exactly the manifest's flags except where it listens) and added for every `add`.
fn args_of(
    objects: &[Value],
    kind: &str,
    name: &str,
    replace: &[(&str, String)],
    add: &[(&str, String)],
) -> Result<Vec<String>> {
    let workload = objects
        .iter()
        .find(|o| is(o, kind, Some(name)))
        .with_context(|| format!("no {kind}/{name} in the render"))?;
    let args = workload["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .with_context(|| format!("{kind}/{name} has no args"))?;
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for arg in args {
        let arg = arg.as_str().context("a non-string arg")?;
        let flag = arg.split('=').next().unwrap_or_default().trim_start_matches("--");
        match replace.iter().chain(add).find(|(f, _)| *f == flag) {
            Some((f, v)) => {
                seen.insert(*f);
                out.push(format!("--{f}={v}"));
            }
            None => out.push(arg.to_owned()),
        }
    }
    if let Some((missing, _)) = replace.iter().find(|(f, _)| !seen.contains(f)) {
        bail!("{kind}/{name} has no --{missing} flag");
    }
    out.extend(add.iter().filter(|(f, _)| !seen.contains(f)).map(|(f, v)| format!("--{f}={v}")));
    Ok(out)
}

/// Server-side applies `objects` as the test harness (cluster-admin).
async fn apply(client: &Client, objects: &[&Value]) -> Result<()> {
    for object in objects {
        let gvk = GroupVersionKind::try_from(&serde_json::from_value::<TypeMeta>((*object).clone())?)?;
        let (resource, caps) = pinned_kind(client, &gvk).await?;
        let dynamic: DynamicObject = serde_json::from_value((*object).clone())?;
        let api: Api<DynamicObject> = match (&caps.scope, &dynamic.metadata.namespace) {
            (kube::discovery::Scope::Namespaced, Some(ns)) => {
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            _ => Api::all_with(client.clone(), &resource),
        };
        let name = dynamic.metadata.name.clone().context("an object without a name")?;
        api.patch(&name, &PatchParams::apply(k8s::FIELD_MANAGER).force(), &Patch::Apply(&dynamic))
            .await
            .with_context(|| format!("applying {} {name}", gvk.kind))?;
    }
    Ok(())
}

async fn ensure_namespace(client: &Client, name: &str) -> Result<()> {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply(k8s::FIELD_MANAGER), &Patch::Apply(&ns))
        .await?;
    Ok(())
}

/// The admin kubeconfig with `as: <ServiceAccount>`: every request is authorized as the ServiceAccount (the API
/// server adds its groups system:serviceaccounts, system:serviceaccounts:kube-system and system:authenticated).
fn impersonating_kubeconfig(cluster: &TestCluster, dir: &Path) -> Result<PathBuf> {
    let text = std::fs::read_to_string(cluster.kubeconfig())?;
    let mut config: Value = serde_saphyr::from_str(&text)?;
    for user in config["users"].as_array_mut().context("kubeconfig without users")? {
        user["user"]["as"] = json!(SA_USER);
    }
    let path = dir.join("sa.kubeconfig");
    // JSON is YAML: kubectl and kube-rs read it alike.
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    Ok(path)
}

async fn client_from(kubeconfig: &Path) -> Result<Client> {
    let config =
        Config::from_custom_kubeconfig(Kubeconfig::read_from(kubeconfig)?, &KubeConfigOptions::default())
            .await?;
    Ok(Client::try_from(config)?)
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running binary, killed when dropped; its stderr and stdout go to `log`.
struct Running {
    child: Child,
    log: PathBuf,
}

impl Running {
    fn start(args: &[String], env: &[(&str, &Path)], log: PathBuf) -> Result<Self> {
        let out = std::fs::File::create(&log)?;
        let mut command = Command::new(arcseal_tests::controller_bin());
        command.args(args).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).env("RUST_LOG", "info");
        for (k, v) in env {
            command.env(k, v);
        }
        Ok(Running { child: command.spawn().context("starting arcseal-controller")?, log })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the log, for a failure message.
    fn tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// A request the API server denied: the RBAC is too narrow. (Writes into a namespace being deleted by an earlier
    /// test are refused with 403 too, for another reason; those are not RBAC's.) 403 is matched as a whole number:
    /// a timestamp's microseconds (`19:32:22.284032Z`) once passed for a denial.
    fn denials(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| (l.contains("Forbidden") || mentions_403(l)) && !l.contains("being terminated"))
            .map(|l| l.chars().take(400).collect())
            .collect()
    }

    fn alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("arcseal-controller exited ({status}):\n{}", self.tail());
        }
        Ok(())
    }
}

/// Whether a log line holds the number 403 on its own (not as digits inside a longer number).
fn mentions_403(line: &str) -> bool {
    line.split(|c: char| !c.is_ascii_digit()).any(|number| number == "403")
}

#[test]
fn a_timestamp_is_not_a_denial() {
    assert!(!mentions_403("2026-11-30T19:32:22.284032Z  WARN unseal failed"));
    assert!(!mentions_403("port 4030 and 1403"));
    assert!(mentions_403("ApiError: forbidden (ErrorResponse { reason: \"Forbidden\", code: 403 })"));
    assert!(mentions_403("HTTP status client error (403) for url"));
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get_ok(url: &str) -> bool {
    matches!(reqwest::get(url).await, Ok(r) if r.status().is_success())
}

/// Polls `check` every 200 ms for up to `secs`, failing early (with the log) when the binary exits.
async fn wait_for<F, Fut>(running: &mut Running, what: &str, secs: u64, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 5 {
        running.alive()?;
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let denied = running.denials();
    if !denied.is_empty() {
        bail!(
            "timed out waiting for {what}: the API server denied the controller, the RBAC is too narrow:\n{}",
            denied.join("\n")
        );
    }
    bail!("timed out after {secs} s waiting for {what}:\n{}", running.tail())
}

/// `arcseal seal --cert CERT` of a one-item Secret, as a user runs it; the SealedSecret as JSON.
fn seal(cert: &Path, namespace: &str, name: &str, value: &str) -> Result<Value> {
    use std::io::Write as _;
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
        "stringData": {"password": value}});
    let mut child = Command::new(arcseal_tests::arcseal_bin())
        .args(["seal", "--cert"])
        .arg(cert)
        .args(["--format", "json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(secret.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "arcseal seal: {}", String::from_utf8_lossy(&output.stderr));
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn secret_value(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace).get_opt(name).await.ok()??;
    let bytes = secret.data?.get("password")?.0.clone();
    String::from_utf8(bytes).ok()
}

async fn synced(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let resource = kube::api::ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"),
        "sealedsecrets",
    );
    let object = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
        .get_opt(name)
        .await
        .ok()??;
    object.data["status"]["conditions"][0]["status"].as_str().map(str::to_owned)
}

/// `resource[.group]` and its resource names, to the verbs allowed: `kubectl auth can-i --list`'s resource rules
/// (non-resource URLs come from the server's discovery roles and are left out).
type Rules = BTreeMap<(String, String), BTreeSet<String>>;

async fn granted_rules(as_sa: &Client, namespace: &str) -> Result<Rules> {
    let review = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec { namespace: Some(namespace.to_owned()) },
        ..Default::default()
    };
    let answer =
        Api::<SelfSubjectRulesReview>::all(as_sa.clone()).create(&PostParams::default(), &review).await?;
    let mut rules = Rules::new();
    for rule in answer.status.map(|s| s.resource_rules).unwrap_or_default() {
        // As kubectl prints them: `resource.group/subresource`, one line per resource name.
        let names = rule.resource_names.unwrap_or_default();
        let names: Vec<String> = if names.is_empty() {
            vec!["[]".into()]
        } else {
            names.iter().map(|n| format!("[{n}]")).collect()
        };
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                let (base, sub) =
                    resource.split_once('/').map_or((resource.as_str(), None), |(b, s)| (b, Some(s)));
                let mut full = if group.is_empty() { base.to_owned() } else { format!("{base}.{group}") };
                if let Some(sub) = sub {
                    full = format!("{full}/{sub}");
                }
                for name in &names {
                    rules.entry((full.clone(), name.clone())).or_default().extend(rule.verbs.iter().cloned());
                }
            }
        }
    }
    Ok(rules)
}

fn expected_rules(namespace: &str) -> Result<Rules> {
    let path = Path::new(DEPLOY_DIR).join(format!("test/expected-permissions-{namespace}.txt"));
    let mut rules = Rules::new();
    for line in std::fs::read_to_string(&path)?.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        // `resource [names] [verbs]`
        let (resource, rest) = line.split_once(' ').with_context(|| format!("{}: {line}", path.display()))?;
        let close = rest.find(']').with_context(|| format!("{}: {line}", path.display()))?;
        let verbs = rest[close + 1..].trim().trim_start_matches('[').trim_end_matches(']');
        rules
            .entry((resource.to_owned(), rest[..=close].to_owned()))
            .or_default()
            .extend(verbs.split_whitespace().map(str::to_owned));
    }
    Ok(rules)
}

/// Whether `user` (in `groups`) may `verb` `resource[.group][/subresource]` (named `name`) in `namespace`.
async fn allowed(
    admin: &Client,
    user: &str,
    groups: &[&str],
    verb: &str,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> kube::Result<bool> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let (resource, group) = match resource.split_once('.') {
        Some((r, g)) => (r, g),
        None => (resource, ""),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                namespace: Some(namespace.to_owned()),
                name: name.map(str::to_owned),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer =
        Api::<SubjectAccessReview>::all(admin.clone()).create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

const SA_GROUPS: [&str; 3] =
    ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"];

async fn check_permissions(admin: &Client, as_sa: &Client) -> Result<()> {
    for namespace in [SA_NAMESPACE, TEAM_A] {
        let (granted, expected) = (granted_rules(as_sa, namespace).await?, expected_rules(namespace)?);
        ensure!(
            granted == expected,
            "the ServiceAccount's permissions in {namespace} are not deploy/test/expected-permissions-{namespace}.txt:\n\
             granted {granted:#?}\nexpected {expected:#?}"
        );
    }
    let denied = std::fs::read_to_string(Path::new(DEPLOY_DIR).join("test/denied.txt"))?;
    let mut checked = 0;
    for line in denied.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [verb, resource, namespace, rest @ ..] = fields.as_slice() else { bail!("denied.txt: {line}") };
        ensure!(
            !allowed(admin, SA_USER, &SA_GROUPS, verb, resource, namespace, rest.first().copied()).await?,
            "{SA_USER} may {line}; it must not (deploy/test/denied.txt)"
        );
        checked += 1;
    }
    ensure!(checked > 20, "deploy/test/denied.txt lists only {checked} requests");
    // kubeseal's path to the certificate: any authenticated user may use the service proxy of this one Service.
    let user = ["system:authenticated"];
    for name in [
        "http:sealed-secrets-controller:http",
        "http:sealed-secrets-controller:",
        "sealed-secrets-controller",
    ] {
        for verb in ["get", "create"] {
            ensure!(
                allowed(admin, "alice", &user, verb, "services/proxy", SA_NAMESPACE, Some(name)).await?,
                "an authenticated user cannot {verb} services/{name}/proxy"
            );
        }
    }
    ensure!(
        !allowed(admin, "alice", &user, "get", "services/proxy", SA_NAMESPACE, Some("kube-dns")).await?,
        "any user may proxy to kube-dns"
    );
    ensure!(
        !allowed(admin, "alice", &user, "get", "secrets", SA_NAMESPACE, None).await?,
        "any user may read Secrets in kube-system"
    );
    Ok(())
}

/// Waits until the API server's authorizer has caught up with RBAC objects just applied (its informer lags a
/// little): the ServiceAccount may `list sealedsecrets` in `namespace`, and the secrets it will write.
async fn wait_authorized(admin: &Client, namespace: &str) -> Result<()> {
    poll("the ServiceAccount's new RBAC to take effect", Duration::from_secs(30), || async {
        for (verb, resource) in [
            ("list", "sealedsecrets.bitnami.com"),
            ("create", "secrets"),
            ("update", "leases.coordination.k8s.io"),
        ] {
            let ns = if resource.starts_with("leases") { SA_NAMESPACE } else { namespace };
            let ok = allowed(
                admin,
                SA_USER,
                &SA_GROUPS,
                verb,
                resource,
                ns,
                Some(SA_NAME).filter(|_| resource.starts_with("leases")),
            )
            .await
            .map_err(|source| k8s::Error::Kube { what: "a SubjectAccessReview".into(), source })?;
            if !ok {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await?;
    Ok(())
}

/// Starts the controller of `render`'s Deployment as the ServiceAccount, with its own args (listening on loopback,
/// a 2048-bit key to keep the run short, a short resync). The same identity each time, so a restart keeps the Lease.
fn start_controller(render: &[Value], kubeconfig: &Path, dir: &Path, log: &str) -> Result<(Running, String)> {
    let http = format!("127.0.0.1:{}", free_port()?);
    let args = args_of(
        render,
        "Deployment",
        SA_NAME,
        &[("listen-addr", http.clone()), ("listen-metrics-addr", format!("127.0.0.1:{}", free_port()?))],
        &[("key-size", "2048".into()), ("resync-period", "5s".into())],
    )?;
    ensure!(
        args.first().map(String::as_str) == Some("unseal"),
        "the Deployment does not run unseal: {args:?}"
    );
    let running = Running::start(
        &args,
        &[
            ("KUBECONFIG", kubeconfig),
            ("POD_NAMESPACE", Path::new(SA_NAMESPACE)),
            ("POD_NAME", Path::new("deploy-test-0")),
        ],
        dir.join(log),
    )?;
    Ok((running, format!("http://{http}")))
}

async fn apply_sealed(admin: &Client, sealed: &Value) -> Result<()> {
    apply(admin, &[sealed]).await
}

#[tokio::test]
async fn the_controller_runs_with_the_manifests_args_under_their_rbac() -> Result<()> {
    let base = render("kustomize-base.yaml")?;
    let namespaced = render("helm-namespaced.yaml")?;
    let cluster = TestCluster::shared()?;
    let admin = cluster.client().await?;
    let dir = tempfile::tempdir()?;
    k8s::apply_crd(&admin, k8s::sealed_secret::CRD_YAML).await?;
    for ns in [TEAM_A, TEAM_B] {
        ensure_namespace(&admin, ns).await?;
    }

    // The Kustomize base: ServiceAccount and cluster-wide RBAC applied for real.
    let rbac_kinds = ["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"];
    let rbac: Vec<&Value> = base
        .iter()
        .filter(|o| is(o, "ServiceAccount", Some(SA_NAME)) || rbac_kinds.iter().any(|k| is(o, k, None)))
        .collect();
    ensure!(rbac.len() >= 5, "the base render has only {} RBAC objects", rbac.len());
    apply(&admin, &rbac).await?;
    let kubeconfig = impersonating_kubeconfig(cluster, dir.path())?;
    let as_sa = client_from(&kubeconfig).await?;
    wait_authorized(&admin, TEAM_A).await?;

    let (mut controller, url) = start_controller(&base, &kubeconfig, dir.path(), "controller.log")?;
    let readyz = format!("{url}/readyz");
    wait_for(&mut controller, "/readyz", 90, || get_ok(&readyz)).await?;
    let lease = Api::<Lease>::namespaced(admin.clone(), SA_NAMESPACE).get(SA_NAME).await?;
    ensure!(
        lease.spec.and_then(|s| s.holder_identity).as_deref() == Some("deploy-test-0"),
        "the Lease is not held by the controller"
    );
    let keys = Api::<Secret>::namespaced(admin.clone(), SA_NAMESPACE)
        .list(&ListParams::default().labels("sealedsecrets.bitnami.com/sealed-secrets-key=active"))
        .await?;
    ensure!(!keys.items.is_empty(), "no active key Secret in {SA_NAMESPACE}");
    let cert = dir.path().join("cert.pem");
    std::fs::write(
        &cert,
        reqwest::get(format!("{url}/v1/cert.pem")).await?.error_for_status()?.bytes().await?,
    )?;

    // Unseal, update, restore a Secret deleted by hand, report an undecryptable one.
    apply_sealed(&admin, &seal(&cert, TEAM_A, "db", "first-value")?).await?;
    let value_is = |v: &'static str| {
        let admin = admin.clone();
        move || {
            let admin = admin.clone();
            async move { secret_value(&admin, TEAM_A, "db").await.as_deref() == Some(v) }
        }
    };
    wait_for(&mut controller, "Secret team-a/db from its SealedSecret", 30, value_is("first-value")).await?;
    wait_for(&mut controller, "status Synced=True", 15, || {
        let admin = admin.clone();
        async move { synced(&admin, TEAM_A, "db").await.as_deref() == Some("True") }
    })
    .await?;
    apply_sealed(&admin, &seal(&cert, TEAM_A, "db", "second-value")?).await?;
    wait_for(&mut controller, "Secret team-a/db updated", 30, value_is("second-value")).await?;
    Api::<Secret>::namespaced(admin.clone(), TEAM_A).delete("db", &DeleteParams::default()).await?;
    wait_for(&mut controller, "Secret team-a/db restored after a hand delete", 30, value_is("second-value"))
        .await?;
    let broken = json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "broken", "namespace": TEAM_A},
        "spec": {"encryptedData": {"password": "AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq"}}});
    apply_sealed(&admin, &broken).await?;
    wait_for(&mut controller, "Synced=False on an undecryptable SealedSecret", 30, || {
        let admin = admin.clone();
        async move { synced(&admin, TEAM_A, "broken").await.as_deref() == Some("False") }
    })
    .await?;
    wait_for(&mut controller, "a Warning event for it (events.k8s.io)", 30, || {
        let admin = admin.clone();
        async move {
            let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin, TEAM_A);
            events.list(&ListParams::default()).await.is_ok_and(|l| {
                l.items.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("broken")
                })
            })
        }
    })
    .await?;
    ensure!(
        controller.denials().is_empty(),
        "the controller was denied requests it needs:\n{}",
        controller.denials().join("\n")
    );
    check_permissions(&admin, &as_sa).await?;
    drop(controller);

    // The Helm chart's namespace-scoped RBAC (unseal.namespaces.all=false, additional: [team-a]): no cluster-wide
    // grant any more, only the Roles helm renders for kube-system and team-a.
    for object in base.iter().filter(|o| is(o, "ClusterRoleBinding", None) || is(o, "ClusterRole", None)) {
        let name = object["metadata"]["name"].as_str().context("a ClusterRole without a name")?;
        if is(object, "ClusterRoleBinding", None) {
            Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
                .delete(name, &DeleteParams::default())
                .await?;
        } else {
            Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
                .delete(name, &DeleteParams::default())
                .await?;
        }
    }
    let roles: Vec<&Value> =
        namespaced.iter().filter(|o| is(o, "Role", None) || is(o, "RoleBinding", None)).collect();
    ensure!(!roles.is_empty(), "the namespaced Helm render has no Roles");
    apply(&admin, &roles).await?;
    wait_authorized(&admin, TEAM_A).await?;
    ensure!(
        !allowed(&admin, SA_USER, &SA_GROUPS, "list", "secrets", TEAM_B, None).await?,
        "the ServiceAccount may still list Secrets in team-b"
    );
    let (mut controller, url) =
        start_controller(&namespaced, &kubeconfig, dir.path(), "controller-namespaced.log")?;
    let readyz = format!("{url}/readyz");
    wait_for(&mut controller, "/readyz (namespace-scoped)", 90, || get_ok(&readyz)).await?;
    // team-b's SealedSecret goes in first: by the time team-a's is unsealed, a controller that (wrongly) watched
    // team-b would have acted on it too, so its absence of Secret and status is meaningful without a sleep.
    apply_sealed(&admin, &seal(&cert, TEAM_B, "db", "team-b-value")?).await?;
    apply_sealed(&admin, &seal(&cert, TEAM_A, "db", "third-value")?).await?;
    wait_for(
        &mut controller,
        "Secret team-a/db updated by the namespace-scoped controller",
        30,
        value_is("third-value"),
    )
    .await?;
    ensure!(
        secret_value(&admin, TEAM_B, "db").await.is_none(),
        "the namespace-scoped controller wrote a Secret in team-b"
    );
    ensure!(
        synced(&admin, TEAM_B, "db").await.is_none(),
        "the namespace-scoped controller wrote a status in team-b"
    );
    ensure!(
        controller.denials().is_empty(),
        "the namespace-scoped controller was denied:\n{}",
        controller.denials().join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn the_csi_provider_runs_with_the_daemonsets_args() -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let base = render("kustomize-base.yaml")?;
    let dir = tempfile::tempdir()?;
    let providers = dir.path().join("providers");
    std::fs::create_dir(&providers)?;
    let socket = providers.join("arcseal.sock");
    let (metrics, healthz) = (free_port()?, free_port()?);
    let args = args_of(
        &base,
        "DaemonSet",
        "arcseal-csi-provider",
        &[
            ("endpoint", format!("unix://{}", socket.display())),
            ("metrics-addr", format!("127.0.0.1:{metrics}")),
            ("healthz-port", healthz.to_string()),
        ],
        &[],
    )?;
    ensure!(
        args.first().map(String::as_str) == Some("csi-provider"),
        "the DaemonSet does not run csi-provider: {args:?}"
    );
    let mut provider = Running::start(&args, &[], dir.path().join("csi-provider.log"))?;
    // The probes' paths (GET /healthz and /readyz on the port named healthz) answer once the socket serves.
    for (what, url) in [
        ("the liveness probe's GET /healthz", format!("http://127.0.0.1:{healthz}/healthz")),
        ("the readiness probe's GET /readyz", format!("http://127.0.0.1:{healthz}/readyz")),
        ("GET /metrics", format!("http://127.0.0.1:{metrics}/metrics")),
    ] {
        wait_for(&mut provider, what, 30, || get_ok(&url)).await?;
    }
    // Connecting needs write permission on the socket: no group or other bits means only its owner (root in the
    // DaemonSet), i.e. the driver, can connect.
    let mode = std::fs::metadata(&socket)?.permissions().mode() & 0o777;
    ensure!(mode & 0o077 == 0, "the socket is mode {mode:o}: group or others could connect");
    // The kubelet's stop: SIGTERM, then a clean exit that removes the socket.
    let status = Command::new("kill").args(["-TERM", &provider.child.id().to_string()]).status()?;
    ensure!(status.success(), "kill -TERM failed");
    let exit = provider.child.wait()?;
    ensure!(
        exit.success(),
        "the CSI provider did not exit cleanly on SIGTERM ({exit}):\n{}",
        provider.tail()
    );
    ensure!(!socket.exists(), "the CSI provider left its socket behind");
    Ok(())
}
