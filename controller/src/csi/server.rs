//! The gRPC server: `v1alpha1.CSIDriverProvider` and `grpc.health.v1.Health` on a unix socket.
//!
//! A Mount is all-or-nothing: every object is fetched (from the cache or Key Vault) and rendered before anything is
//! returned, so the driver never writes a partial file set. Failures are gRPC errors whose message starts with a
//! stable code (`KeyVaultObjectNotFound: ...`) and names the object, the vault and what Key Vault said.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::{HttpClient, Transport};
use futures::future::try_join_all;
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use zeroize::Zeroizing;

use super::cache::Cache;
use super::cloud::{self, CloudOverrides};
use super::content;
use super::identity::{Identities, IdentityKey, VaultClients};
use super::keyvault::{self, FetchError, FetchErrorKind, Fetched, RetryPolicy};
use super::metrics::Metrics;
use super::params::{self, KeyVaultObject, MountParams, ObjectType, ParamError};
use super::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use super::proto::{self, MountRequest, MountResponse, VersionRequest, VersionResponse};

/// Name reported by Version.
pub const RUNTIME_NAME: &str = "arcseal";
/// The driver refuses responses above its 4 MiB receive limit.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// How the provider talks to Key Vault and how long it keeps what it read.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `--authority-host` / `--keyvault-dns-suffix`.
    pub cloud: CloudOverrides,
    /// Every Entra ID, IMDS and Key Vault request goes through this client.
    pub http_client: Arc<dyn HttpClient>,
    /// How long a "latest" object (and a version list) is served from the cache.
    pub latest_ttl: Duration,
    /// How long a pinned version is served from the cache (versions are immutable).
    pub pinned_ttl: Duration,
    /// Waiting for a throttled or failing Key Vault.
    pub retry: RetryPolicy,
    /// Most cached objects.
    pub max_cache_entries: usize,
}

impl ProviderConfig {
    /// Defaults with the given HTTP client.
    pub fn new(http_client: Arc<dyn HttpClient>) -> Self {
        Self {
            cloud: CloudOverrides::default(),
            http_client,
            latest_ttl: Duration::from_secs(60),
            pinned_ttl: Duration::from_secs(24 * 3600),
            retry: RetryPolicy::default(),
            max_cache_entries: 50_000,
        }
    }
}

/// Builds the production HTTP client: reqwest + rustls with the platform's roots, plus `ca_bundle` (PEM) if given.
/// `resolve` pins host names to addresses (used by tests that run a TLS stand-in; empty in production).
pub fn http_client(
    ca_bundle: Option<&Path>,
    resolve: &[(String, SocketAddr)],
) -> anyhow::Result<Arc<dyn HttpClient>> {
    use anyhow::Context as _;
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca_bundle {
        let pem = std::fs::read(path).with_context(|| format!("reading --ca-bundle {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-bundle {}: not a PEM certificate bundle", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "--ca-bundle {}: no certificate in the file", path.display());
        builder = builder.tls_certs_merge(certs);
    }
    for (host, addr) in resolve {
        builder = builder.resolve(host, *addr);
    }
    Ok(Arc::new(builder.build().context("building the HTTPS client")?))
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum CacheKey {
    Object {
        vault: String,
        object_type: ObjectType,
        name: String,
        version: Option<String>,
        identity: IdentityKey,
    },
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct VersionsKey {
    vault: String,
    object_type: ObjectType,
    name: String,
    identity: IdentityKey,
}

/// The provider: shared state of all mounts.
pub struct Provider {
    config: ProviderConfig,
    identities: Identities,
    objects: Cache<CacheKey, Fetched, FetchError>,
    versions: Cache<VersionsKey, Vec<String>, FetchError>,
    metrics: Arc<Metrics>,
}

/// An error of one mount, ready for the driver.
#[derive(Debug)]
pub struct MountError {
    code: &'static str,
    grpc: tonic::Code,
    message: String,
}

impl MountError {
    fn params(e: ParamError) -> Self {
        Self { code: "InvalidParameters", grpc: tonic::Code::InvalidArgument, message: e.to_string() }
    }

    fn object(o: &KeyVaultObject, vault: &str, e: &FetchError) -> Self {
        let grpc = match e.kind {
            FetchErrorKind::NotFound => tonic::Code::NotFound,
            FetchErrorKind::Forbidden => tonic::Code::PermissionDenied,
            FetchErrorKind::Disabled => tonic::Code::FailedPrecondition,
            FetchErrorKind::Throttled => tonic::Code::ResourceExhausted,
            FetchErrorKind::Authentication => tonic::Code::Unauthenticated,
            // Not UNAVAILABLE: the driver's gRPC client would retry that at once, three times.
            FetchErrorKind::Unavailable => tonic::Code::Aborted,
            _ => tonic::Code::FailedPrecondition,
        };
        Self {
            code: e.kind.code(),
            grpc,
            message: format!(
                "{} {} (file {}) in vault {vault}: {e}",
                o.object_type.as_str(),
                o.name,
                o.alias
            ),
        }
    }

    /// The stable code (also the metrics label).
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn into_status(self) -> Status {
        Status::new(self.grpc, format!("{}: {}", self.code, self.message))
    }
}

impl Provider {
    /// A provider with empty caches.
    pub fn new(config: ProviderConfig, metrics: Arc<Metrics>) -> Self {
        let transport = Transport::new(config.http_client.clone());
        Self {
            identities: Identities::new(transport),
            objects: Cache::new(config.max_cache_entries),
            versions: Cache::new(config.max_cache_entries),
            metrics,
            config,
        }
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Handles one mount: parse, authenticate, fetch every object, render every file.
    pub async fn mount(&self, req: &MountRequest) -> Result<MountResponse, MountError> {
        let params = params::parse_mount(&req.attributes, &req.secrets, &req.permission)
            .map_err(MountError::params)?;
        let endpoints = cloud::resolve(&params.cloud, &self.config.cloud).await.map_err(|e| MountError {
            code: "InvalidParameters",
            grpc: tonic::Code::InvalidArgument,
            message: e.to_string(),
        })?;
        let vault_url = endpoints.vault_url(&params.keyvault_name);
        let identity =
            IdentityKey::new(&params.identity, &params.tenant_id, &endpoints.authority_host, &params.pod);
        let clients = self
            .identities
            .clients(&identity, &params.identity, &params.tenant_id, &endpoints, &vault_url)
            .map_err(|e| MountError {
                code: "InvalidParameters",
                grpc: tonic::Code::InvalidArgument,
                message: e.to_string(),
            })?;
        let ctx = MountContext {
            provider: self,
            params: &params,
            vault_url: &vault_url,
            identity: &identity,
            clients: &clients,
        };
        let per_object = try_join_all(params.objects.iter().map(|o| ctx.object(o))).await?;
        let mut response = MountResponse::default();
        let mut size = 0usize;
        for (files, versions) in per_object {
            for f in &files {
                size += f.contents.len() + f.path.len() + 16;
            }
            response.files.extend(files);
            response.object_version.extend(versions);
        }
        if size > MAX_RESPONSE_BYTES {
            return Err(MountError {
                code: "MountTooLarge",
                grpc: tonic::Code::FailedPrecondition,
                message: format!(
                    "the objects add up to {size} bytes, above the driver's {MAX_RESPONSE_BYTES}-byte limit: mount fewer objects or versions per volume"
                ),
            });
        }
        Ok(response)
    }
}

struct MountContext<'a> {
    provider: &'a Provider,
    params: &'a MountParams,
    vault_url: &'a str,
    identity: &'a IdentityKey,
    clients: &'a Arc<VaultClients>,
}

impl MountContext<'_> {
    async fn fetch(&self, o: &KeyVaultObject, version: Option<&str>) -> Result<Arc<Fetched>, FetchError> {
        let p = self.provider;
        let key = CacheKey::Object {
            vault: self.vault_url.to_owned(),
            object_type: o.object_type,
            name: o.name.clone(),
            version: version.map(str::to_owned),
            identity: self.identity.clone(),
        };
        let ttl = if version.is_some() { p.config.pinned_ttl } else { p.config.latest_ttl };
        let clients = self.clients.clone();
        let (result, lookup) = p
            .objects
            .get_or_fetch(&key, ttl, || async move {
                keyvault::fetch(&clients, o.object_type, &o.name, version, p.config.retry, &p.metrics).await
            })
            .await;
        p.metrics.cache_lookup(lookup.as_str());
        result
    }

    async fn versions(&self, o: &KeyVaultObject) -> Result<Arc<Vec<String>>, FetchError> {
        let p = self.provider;
        let key = VersionsKey {
            vault: self.vault_url.to_owned(),
            object_type: o.object_type,
            name: o.name.clone(),
            identity: self.identity.clone(),
        };
        let clients = self.clients.clone();
        let (result, lookup) = p
            .versions
            .get_or_fetch(&key, p.config.latest_ttl, || async move {
                keyvault::list_versions(&clients, o.object_type, &o.name, p.config.retry, &p.metrics).await
            })
            .await;
        p.metrics.cache_lookup(lookup.as_str());
        result
    }

    fn mode(&self, o: &KeyVaultObject) -> i32 {
        // Both are at most 0o777 (validated by the parsers).
        o.file_permission.unwrap_or(self.params.default_mode) as i32
    }

    async fn object(
        &self,
        o: &KeyVaultObject,
    ) -> Result<(Vec<proto::File>, Vec<proto::ObjectVersion>), MountError> {
        let vault = self.params.keyvault_name.as_str();
        let err = |e: FetchError| MountError::object(o, vault, &e);
        if o.version_history <= 1 {
            let fetched = self.fetch(o, o.version.as_deref()).await.map_err(err)?;
            let contents = content::render(o, &fetched).map_err(err)?;
            return Ok((
                vec![file(o.alias.clone(), self.mode(o), contents)],
                vec![proto::ObjectVersion { id: o.id(), version: fetched.version().to_owned() }],
            ));
        }
        let all = self.versions(o).await.map_err(err)?;
        let start = match &o.version {
            None => 0,
            Some(v) => all.iter().position(|x| x == v).ok_or_else(|| {
                err(FetchError {
                    kind: FetchErrorKind::NotFound,
                    status: None,
                    service_code: None,
                    message: format!("objectVersion {v} is not among the object's enabled versions"),
                })
            })?,
        };
        let wanted: Vec<&String> = all.iter().skip(start).take(o.version_history as usize).collect();
        if wanted.is_empty() {
            return Err(err(FetchError {
                kind: FetchErrorKind::NotFound,
                status: None,
                service_code: None,
                message: "the object has no enabled version".into(),
            }));
        }
        let fetched = try_join_all(wanted.iter().map(|v| self.fetch(o, Some(v)))).await.map_err(err)?;
        let mut files = Vec::with_capacity(fetched.len());
        let mut versions = Vec::with_capacity(fetched.len());
        for (i, f) in fetched.iter().enumerate() {
            let contents = content::render(o, f).map_err(err)?;
            files.push(file(format!("{}/{i}", o.alias), self.mode(o), contents));
            versions.push(proto::ObjectVersion {
                id: format!("{}/{i}", o.id()),
                version: f.version().to_owned(),
            });
        }
        Ok((files, versions))
    }
}

fn file(path: String, mode: i32, contents: Zeroizing<Vec<u8>>) -> proto::File {
    // The gRPC message needs an owned Vec; tonic drops it after encoding.
    proto::File { path, mode, contents: contents.to_vec() }
}

/// The tonic service.
#[derive(Clone)]
pub struct ProviderService(pub Arc<Provider>);

#[tonic::async_trait]
impl CsiDriverProvider for ProviderService {
    async fn version(&self, _req: Request<VersionRequest>) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: "v1alpha1".into(),
            runtime_name: RUNTIME_NAME.into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
        }))
    }

    async fn mount(&self, req: Request<MountRequest>) -> Result<Response<MountResponse>, Status> {
        let start = Instant::now();
        let req = req.into_inner();
        let result = self.0.mount(&req).await;
        let took = start.elapsed();
        match result {
            Ok(resp) => {
                self.0.metrics.mount("ok", took);
                tracing::info!(files = resp.files.len(), ms = took.as_secs_f64() * 1000.0, "mount served");
                Ok(Response::new(resp))
            }
            Err(e) => {
                self.0.metrics.mount(e.code(), took);
                tracing::warn!(code = e.code(), error = %e.message, "mount failed");
                Err(e.into_status())
            }
        }
    }
}

/// Parses `unix:///path/to.sock` (or a plain absolute path).
pub fn socket_path(endpoint: &str) -> anyhow::Result<PathBuf> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    anyhow::ensure!(path.starts_with('/'), "--endpoint {endpoint:?} must be unix:///absolute/path.sock");
    Ok(PathBuf::from(path))
}

/// Binds the socket: removes a stale one, creates it with umask 0077 so only the driver (root) can connect.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::Context as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => anyhow::bail!("{} is a directory", path.display()),
        Ok(_) => {
            std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))?
        }
        Err(_) => {}
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let listener = UnixListener::bind(path);
    rustix::process::umask(old);
    listener.with_context(|| format!("binding {}", path.display()))
}

/// Serves the provider and health services on `listener` until `shutdown` resolves; in-flight mounts finish.
pub async fn serve(
    listener: UnixListener,
    provider: Arc<Provider>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<CsiDriverProviderServer<ProviderService>>().await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(ProviderService(provider)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
