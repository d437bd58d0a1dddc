//! A real kube-apiserver on etcd (plus kube-controller-manager for garbage collection and namespace deletion) for
//! integration tests, started by `scripts/k8s-test-cluster`; see `tests/README.md`.
//!
//! Contract:
//! - One cluster per test binary, started by the first [`TestNamespace::new`] and shared through a static.
//!   With `ARCSEAL_TEST_KUBECONFIG=<path>` an existing cluster is used instead and nothing is started or stopped.
//! - Every test gets a fresh namespace and its own [`kube::Client`]: a client belongs to the tokio runtime that
//!   built it, and each `#[tokio::test]` has its own runtime, so clients are never shared between tests.
//! - The cluster goes down when the test process ends, however it ends (normal exit, panic, SIGKILL): a watchdog
//!   (`k8s-test-cluster watch DIR`) reads a pipe whose only writer is this process and runs `down` at EOF.
//! - A test that does not reach [`TestNamespace::finish`] (it panicked or returned an error) keeps its namespace
//!   and the cluster directory with the component logs; both are printed.

pub mod sealed_secret;

use std::{
    ffi::OsString,
    fs, io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api, Client, Config, Resource,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};

/// Use the cluster this kubeconfig points at instead of starting one.
pub const KUBECONFIG_ENV: &str = "ARCSEAL_TEST_KUBECONFIG";
/// Where per-binary cluster directories go (default: the system temp dir).
pub const DIR_ENV: &str = "ARCSEAL_K8S_TEST_DIR";
/// The kubectl the cross-check tests run (default: `kubectl` on `PATH`).
pub const KUBECTL_ENV: &str = "ARCSEAL_KUBECTL";
/// The field manager the harness applies with.
pub const FIELD_MANAGER: &str = "arcseal-tests";
/// Label on every namespace the harness creates, to find leftovers on a shared cluster.
pub const NAMESPACE_LABEL: &str = "arcseal.dev/test-namespace";

/// What went wrong while providing a cluster, a client or a namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The cluster script could not be run at all.
    #[error("cannot run {}: {source}", script.display())]
    Spawn {
        /// The script.
        script: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `k8s-test-cluster up` failed; its own output (above in the test log) says which component and why.
    #[error(
        "`{} up {}` failed ({status}); component logs are kept in {}/logs",
        script.display(),
        dir.display(),
        dir.display()
    )]
    Up {
        /// The script.
        script: PathBuf,
        /// The cluster directory.
        dir: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
    },
    /// `k8s-test-cluster load-image` failed; its output (above in the test log) says why.
    #[error("loading image archive {} into the node failed ({status})", archive.display())]
    LoadImage {
        /// The OCI archive.
        archive: PathBuf,
        /// The script's exit status.
        status: std::process::ExitStatus,
    },
    /// An earlier test in this binary already failed to start the cluster.
    #[error("the test cluster failed to start earlier in this test binary: {0}")]
    StartedBadly(String),
    /// Reading or using the kubeconfig failed.
    #[error("kubeconfig {}: {message}", path.display())]
    Kubeconfig {
        /// The kubeconfig.
        path: PathBuf,
        /// What was wrong with it.
        message: String,
    },
    /// A harness file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A YAML fixture does not parse into the expected object.
    #[error("fixture {name}: {message}")]
    Fixture {
        /// The fixture's name.
        name: String,
        /// The parser's complaint.
        message: String,
    },
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Kube {
        /// What the harness was doing.
        what: String,
        /// The client's error.
        source: kube::Error,
    },
    /// A bounded wait ran out.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
    },
}

/// The cluster of this test binary: started here, or given by [`KUBECONFIG_ENV`].
#[derive(Debug)]
pub struct TestCluster {
    kubeconfig: PathBuf,
    /// `None` for an external cluster.
    dir: Option<PathBuf>,
    /// Holds the write end of the watchdog's stdin open until this process ends; never waited on.
    _watchdog: Option<Child>,
}

static CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();
static NODE_CLUSTER: OnceLock<Result<TestCluster, String>> = OnceLock::new();

impl TestCluster {
    /// This binary's cluster, started on first use (blocking: the first call waits for `/readyz`, ~6-10 s, or for
    /// the one-off build of the Kubernetes binaries if `scripts/k8s-test-cluster build` has not run).
    pub fn shared() -> Result<&'static TestCluster, Error> {
        CLUSTER
            .get_or_init(|| Self::start(false).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::StartedBadly(e.clone()))
    }

    /// This binary's cluster with a node (`k8s-test-cluster up --node`: kube-scheduler, kubelet, kube-proxy,
    /// containerd), on which pods really run. One node per machine; [`KUBECONFIG_ENV`] is not used for it.
    pub fn shared_with_node() -> Result<&'static TestCluster, Error> {
        NODE_CLUSTER
            .get_or_init(|| Self::start(true).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::StartedBadly(e.clone()))
    }

    fn start(node: bool) -> Result<TestCluster, Error> {
        if let Some(path) = std::env::var_os(KUBECONFIG_ENV).filter(|p| !p.is_empty() && !node) {
            return Ok(TestCluster { kubeconfig: PathBuf::from(path), dir: None, _watchdog: None });
        }
        let script = script_path();
        let dir = cluster_dir();
        fs::create_dir_all(&dir).map_err(|source| Error::Io { path: dir.clone(), source })?;
        // The watchdog first: if this process dies while `up` runs, `down` still follows (it waits for `up`'s lock).
        let watchdog = Command::new(&script)
            .arg("watch")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| Error::Spawn { script: script.clone(), source })?;
        let output = Command::new(&script)
            .arg("up")
            .args(node.then_some("--node"))
            .arg(&dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| Error::Spawn { script: script.clone(), source })?;
        if !output.status.success() {
            keep_dir(&dir);
            return Err(Error::Up { script, dir, status: output.status });
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let kubeconfig = stdout.lines().last().map(PathBuf::from).unwrap_or_else(|| dir.join("kubeconfig"));
        Ok(TestCluster { kubeconfig, dir: Some(dir), _watchdog: Some(watchdog) })
    }

    /// The kubeconfig (cluster-admin bearer token, the API server's own certificate as CA).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The directory holding the component logs (`logs/etcd.log`, ...); `None` for an external cluster.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Imports an OCI archive into the node's containerd (`k8s-test-cluster load-image`), where the kubelet
    /// finds it without a registry; `extra_refs` name the image too (e.g. an overlay's tag).
    pub fn load_image(&self, archive: &Path, extra_refs: &[&str]) -> Result<(), Error> {
        let script = script_path();
        let dir = self.dir.as_deref().ok_or_else(|| Error::Kubeconfig {
            path: self.kubeconfig.clone(),
            message: "an external cluster has no node this harness can load images into".to_owned(),
        })?;
        let status = Command::new(&script)
            .arg("load-image")
            .arg(dir)
            .arg(archive)
            .args(extra_refs)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|source| Error::Spawn { script: script.clone(), source })?;
        if !status.success() {
            return Err(Error::LoadImage { archive: archive.to_owned(), status });
        }
        Ok(())
    }

    /// A new client for the calling test's runtime.
    pub async fn client(&self) -> Result<Client, Error> {
        let kubeconfig_error = |message: String| Error::Kubeconfig { path: self.kubeconfig.clone(), message };
        let kubeconfig =
            Kubeconfig::read_from(&self.kubeconfig).map_err(|e| kubeconfig_error(e.to_string()))?;
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| kubeconfig_error(e.to_string()))?;
        Client::try_from(config).map_err(|e| kubeconfig_error(e.to_string()))
    }
}

fn script_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/k8s-test-cluster")
}

fn cluster_dir() -> PathBuf {
    let base = std::env::var_os(DIR_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_os_string()))
        .unwrap_or_else(|| OsString::from("tests"));
    let mut name = OsString::from("arcseal-k8s-");
    name.push(binary);
    name.push(format!("-{}", std::process::id()));
    base.join(name)
}

/// Asks the watchdog to keep the cluster directory (logs) after `down`.
fn keep_dir(dir: &Path) {
    // Best effort: failing to keep logs must not hide the test's own failure.
    let _ = fs::write(dir.join("keep"), b"a test failed\n");
}

/// A namespace of its own for one test, with a client. Call [`finish`](Self::finish) at the end of the test:
/// a namespace dropped without it belongs to a failed test and is kept, with the cluster's logs.
pub struct TestNamespace {
    name: String,
    client: Client,
    cluster: &'static TestCluster,
    finished: bool,
}

impl TestNamespace {
    /// Starts (or reuses) the cluster and creates a namespace named after `test` plus a server-chosen suffix.
    pub async fn new(test: &str) -> Result<Self, Error> {
        let cluster = TestCluster::shared()?;
        let client = cluster.client().await?;
        let namespace = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(generate_name(test)),
                labels: Some([(NAMESPACE_LABEL.to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created =
            Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &namespace).await.map_err(
                |source| Error::Kube { what: format!("creating a namespace for test {test}"), source },
            )?;
        let name = created.metadata.name.expect("the API server names every object it creates");
        Ok(TestNamespace { name, client, cluster, finished: false })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A client of this test's runtime.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// An `Api` for namespaced resources of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }

    /// The cluster this namespace lives in.
    pub fn cluster(&self) -> &'static TestCluster {
        self.cluster
    }

    /// A `kubectl` command for this cluster and namespace ([`KUBECTL_ENV`] or `kubectl` on `PATH`; the
    /// `build` step of `scripts/k8s-test-cluster` installs one if there is none).
    pub fn kubectl(&self) -> Command {
        let program = std::env::var_os(KUBECTL_ENV)
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| OsString::from("kubectl"));
        let mut command = Command::new(program);
        command.arg("--kubeconfig").arg(self.cluster.kubeconfig()).arg("--namespace").arg(&self.name);
        command
    }

    /// The test passed: delete the namespace (the namespace controller removes its contents).
    pub async fn finish(mut self) -> Result<(), Error> {
        self.finished = true;
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.name, &DeleteParams::background())
            .await
            .map_err(|source| Error::Kube { what: format!("deleting namespace {}", self.name), source })?;
        Ok(())
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        match self.cluster.dir() {
            Some(dir) => {
                keep_dir(dir);
                eprintln!(
                    "k8s test harness: test failed; namespace {} kept until the cluster stops; \
                     kube-apiserver, etcd and kube-controller-manager logs: {}/logs (kept after exit); \
                     kubeconfig while the cluster runs: {}",
                    self.name,
                    dir.display(),
                    self.cluster.kubeconfig().display()
                );
            }
            None => eprintln!(
                "k8s test harness: test failed; namespace {} kept in the cluster of {}",
                self.name,
                self.cluster.kubeconfig().display()
            ),
        }
    }
}

/// `generateName` for a test's namespace: `t-<test as a DNS label prefix>-`; the server appends 5 characters,
/// and the whole stays within the 63 characters of a DNS label.
fn generate_name(test: &str) -> String {
    let prefix: String = test
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .take(40)
        .collect();
    let prefix = prefix.trim_matches('-');
    if prefix.is_empty() { "t-".to_owned() } else { format!("t-{prefix}-") }
}

/// Applies a CustomResourceDefinition (YAML) server-side and waits until it is `Established`.
pub async fn apply_crd(client: &Client, yaml: &str) -> Result<CustomResourceDefinition, Error> {
    let crd: CustomResourceDefinition = serde_saphyr::from_str(yaml).map_err(|e| Error::Fixture {
        name: "CustomResourceDefinition".to_owned(),
        message: e.to_string(),
    })?;
    let name = crd.metadata.name.clone().ok_or_else(|| Error::Fixture {
        name: "CustomResourceDefinition".to_owned(),
        message: "metadata.name is missing".to_owned(),
    })?;
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&crd))
        .await
        .map_err(|source| Error::Kube { what: format!("applying CRD {name}"), source })?;
    poll(&format!("CRD {name} to be Established"), Duration::from_secs(30), || async {
        let crd = api
            .get(&name)
            .await
            .map_err(|source| Error::Kube { what: format!("reading CRD {name}"), source })?;
        let established = crd.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|conditions| {
            conditions.iter().any(|c| c.type_ == "Established" && c.status == "True")
        });
        Ok(established.then_some(crd))
    })
    .await
}

/// Calls `check` every 200 ms until it returns `Some`, an error, or `timeout` passes.
pub async fn poll<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Timeout { what: what.to_owned(), after: timeout });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::generate_name;

    #[test]
    fn namespace_names_are_dns_labels() {
        assert_eq!(generate_name("watch_410"), "t-watch-410-");
        assert_eq!(generate_name("Crd::Status"), "t-crd--status-");
        assert_eq!(generate_name("__"), "t-");
        let long = generate_name(&"x".repeat(100));
        assert!(long.len() + 5 <= 63, "{long}");
    }
}
