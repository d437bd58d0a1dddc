//! Runs `arcseal-controller csi-provider` in-process on a unix socket in a temporary directory, with the SDK's
//! transport pointed at a [`super::KeyVaultStandIn`], and talks to it exactly as the Secrets Store CSI Driver does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arcseal_controller::csi::keyvault::RetryPolicy;
use arcseal_controller::csi::metrics::Metrics;
use arcseal_controller::csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use arcseal_controller::csi::proto::{MountRequest, MountResponse};
use arcseal_controller::csi::server::{self, Provider, ProviderConfig};
use serde_json::{Map, Value};
use tonic::transport::{Channel, Endpoint};

use super::KeyVaultStandIn;

/// A provider serving on a unix socket.
pub struct ProviderHarness {
    /// The socket path.
    pub socket: PathBuf,
    /// The provider (for its metrics).
    pub provider: Arc<Provider>,
    _dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), server::SocketError>>>,
}

/// Test defaults: the stand-in's transport, and a short bounded wait so throttling tests are quick.
pub fn test_config(standin: &KeyVaultStandIn) -> ProviderConfig {
    let mut config = ProviderConfig::new(standin.transport());
    config.retry = RetryPolicy {
        max_total_wait: Duration::from_secs(3),
        initial_backoff: Duration::from_millis(50),
        max_attempts: 6,
    };
    config
}

impl ProviderHarness {
    /// Starts a provider talking to `standin`.
    pub async fn start(standin: &KeyVaultStandIn) -> Self {
        Self::start_with(test_config(standin)).await
    }

    /// Starts a provider with `config`.
    pub async fn start_with(config: ProviderConfig) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("arcseal.sock");
        let provider = Arc::new(Provider::new(config, Arc::new(Metrics::new())));
        let listener = server::bind(&socket).expect("bind provider socket");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server::serve(listener, provider.clone(), async {
            let _ = rx.await;
        }));
        Self { socket, provider, _dir: dir, shutdown: Some(tx), task: Some(task) }
    }

    /// A gRPC channel over the socket, dialled like the driver (authority `localhost`, no TLS).
    pub async fn channel(&self) -> Channel {
        unix_channel(self.socket.clone()).await
    }

    /// The generated client.
    pub async fn client(&self) -> CsiDriverProviderClient<Channel> {
        CsiDriverProviderClient::new(self.channel().await)
    }

    /// Mounts with the attributes JSON as the driver builds it.
    pub async fn mount(&self, attributes: &str, secrets: &str) -> Result<MountResponse, tonic::Status> {
        self.client()
            .await
            .mount(MountRequest {
                attributes: attributes.to_owned(),
                secrets: secrets.to_owned(),
                target_path: "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/secrets/mount".into(),
                permission: "420".into(),
                current_object_version: vec![],
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.expect("join").expect("server");
        }
    }
}

/// A channel to a unix socket.
pub async fn unix_channel(path: PathBuf) -> Channel {
    Endpoint::try_from("http://localhost")
        .expect("endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
        .expect("connect to provider socket")
}

/// The pod the tests mount for.
#[derive(Clone)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Service account.
    pub service_account: String,
    /// Include a workload identity token for the service account.
    pub token: bool,
}

impl Pod {
    /// A pod in `namespace` running as `service_account`.
    pub fn new(namespace: &str, service_account: &str) -> Self {
        Self { namespace: namespace.into(), service_account: service_account.into(), token: false }
    }

    /// With a projected token for api://AzureADTokenExchange (the CSIDriver's tokenRequests).
    pub fn with_token(mut self) -> Self {
        self.token = true;
        self
    }
}

/// The attributes JSON the driver sends: the SecretProviderClass parameters plus the pod's keys.
pub fn attributes(params: &[(&str, &str)], pod: &Pod) -> String {
    let mut m = Map::new();
    for (k, v) in params {
        m.insert((*k).into(), Value::String((*v).into()));
    }
    m.insert("csi.storage.k8s.io/pod.name".into(), "app-0".into());
    m.insert("csi.storage.k8s.io/pod.namespace".into(), pod.namespace.clone().into());
    m.insert("csi.storage.k8s.io/pod.uid".into(), "7f1c0f9e-0000-4000-8000-000000000001".into());
    m.insert("csi.storage.k8s.io/serviceAccount.name".into(), pod.service_account.clone().into());
    m.insert("csi.storage.k8s.io/ephemeral".into(), "false".into());
    if pod.token {
        let jwt = super::service_account_jwt(&pod.namespace, &pod.service_account);
        let tokens = serde_json::json!({
            "api://AzureADTokenExchange": {"token": jwt, "expirationTimestamp": "2099-01-01T00:00:00Z"}
        });
        m.insert("csi.storage.k8s.io/serviceAccount.tokens".into(), tokens.to_string().into());
    }
    Value::Object(m).to_string()
}

/// The `objects` parameter: `array:` of YAML strings, as users write it.
pub fn objects(items: &[&str]) -> String {
    let mut out = String::from("array:\n");
    for item in items {
        out.push_str("  - |\n");
        for line in item.trim().lines() {
            out.push_str("    ");
            out.push_str(line.trim());
            out.push('\n');
        }
    }
    out
}
