//! The gRPC server: `v1alpha1.CSIDriverProvider` and `grpc.health.v1.Health` on a unix socket.
//!
//! A Mount is all-or-nothing: every object is fetched (from the cache or Key Vault) and rendered before anything is
//! returned, so the driver never writes a partial file set. Failures are gRPC errors whose message starts with a
//! stable code (`KeyVaultObjectNotFound: ...`) and names the object, the vault and what Key Vault said.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azure_core::http::{HttpClient, Transport};
use futures::future::try_join_all;
use futures::{StreamExt as _, stream};
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
use super::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use super::proto::{self, MountRequest, MountResponse, VersionRequest, VersionResponse};
use arcseal_keyvault::params::{self, KeyVaultObject, MountParams, ObjectType, ParamError};

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
    /// Largest response (sum of file sizes); the driver's own receive limit is [`MAX_RESPONSE_BYTES`].
    pub max_response_bytes: usize,
    /// `--write-cert-and-key-in-separate-files` (Azure's flag): a certificate's secret also gives `<file>.crt` and
    /// `<file>.key`, besides the usual file.
    pub write_cert_and_key_in_separate_files: bool,
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
            max_response_bytes: MAX_RESPONSE_BYTES,
            write_cert_and_key_in_separate_files: false,
        }
    }
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

    fn object(o: &KeyVaultObject, params: &MountParams, e: &FetchError) -> Self {
        let vault = &params.keyvault_name;
        let grpc = match e.kind {
            FetchErrorKind::NotFound => tonic::Code::NotFound,
            FetchErrorKind::Forbidden => tonic::Code::PermissionDenied,
            FetchErrorKind::Disabled => tonic::Code::FailedPrecondition,
            // What Azure's provider answers for every failure (a plain Go error): the driver reports
            // RESOURCE_EXHAUSTED as a --max-call-recv-msg-size problem, which a throttled vault is not.
            FetchErrorKind::Throttled => tonic::Code::Unknown,
            FetchErrorKind::Authentication => tonic::Code::Unauthenticated,
            // Not UNAVAILABLE: the driver's gRPC client would retry that at once, three times.
            FetchErrorKind::Unavailable => tonic::Code::Aborted,
            _ => tonic::Code::FailedPrecondition,
        };
        // One node serves many identities: say which one Entra ID refused.
        let who = match e.kind {
            FetchErrorKind::Authentication => format!(" as {}", params.identity.describe(&params.pod)),
            _ => String::new(),
        };
        Self {
            code: e.kind.code(),
            grpc,
            message: format!(
                "{} {} (file {}) in vault {vault}{who}: {e}",
                o.object_type.as_str(),
                o.name,
                o.alias
            ),
        }
    }

    fn too_large(size: usize, limit: usize) -> Self {
        Self {
            code: "MountTooLarge",
            grpc: tonic::Code::FailedPrecondition,
            message: format!(
                "the objects add up to at least {size} bytes, above the {limit}-byte limit of one mount: mount fewer objects or versions per volume (objectVersionHistory)"
            ),
        }
    }

    fn collision(a: &str, b: &str) -> Self {
        Self {
            code: "InvalidParameters",
            grpc: tonic::Code::InvalidArgument,
            message: format!(
                "files {a:?} and {b:?} cannot both be written (the same file, or a file that is another's folder): set unique objectAlias values"
            ),
        }
    }

    /// The stable code (also the metrics label).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The gRPC status code the driver gets.
    pub fn grpc_code(&self) -> tonic::Code {
        self.grpc
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
            size += files.iter().map(file_size).sum::<usize>();
            response.files.extend(files);
            response.object_version.extend(versions);
        }
        if size > self.config.max_response_bytes {
            return Err(MountError::too_large(size, self.config.max_response_bytes));
        }
        // History folders and .crt/.key files can collide with another object's file; refuse, never overwrite.
        let mut paths = std::collections::HashSet::with_capacity(response.files.len());
        for f in &response.files {
            if !paths.insert(f.path.as_str()) {
                return Err(MountError::collision(&f.path, &f.path));
            }
        }
        for f in &response.files {
            // Every folder of the path (`a` and `a/b` of `a/b/c`) must not also be a file.
            let mut folders = f.path.match_indices('/').map(|(i, _)| &f.path[..i]);
            if let Some(folder) = folders.find(|d| paths.contains(d)) {
                return Err(MountError::collision(folder, &f.path));
            }
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
                let start = Instant::now();
                let r =
                    keyvault::fetch(&clients, o.object_type, &o.name, version, p.config.retry, &p.metrics)
                        .await;
                let error = r.as_ref().err().map_or("", |e| e.kind.code());
                p.metrics.azure_keyvault_request(o.object_type.as_str(), &o.name, error, start.elapsed());
                r
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
                let start = Instant::now();
                let r = keyvault::list_versions(&clients, o.object_type, &o.name, p.config.retry, &p.metrics)
                    .await;
                let error = r.as_ref().err().map_or("", |e| e.kind.code());
                p.metrics.azure_keyvault_request(o.object_type.as_str(), &o.name, error, start.elapsed());
                r
            })
            .await;
        p.metrics.cache_lookup(lookup.as_str());
        result
    }

    fn mode(&self, o: &KeyVaultObject) -> i32 {
        // Both are at most 0o777 (validated by the parsers).
        o.file_permission.unwrap_or(self.params.default_mode) as i32
    }

    /// The file(s) of one fetched version: `path`, plus `path.crt` and `path.key` for a certificate's secret when
    /// the provider writes them separately (Azure's order: .crt, .key, then the file itself).
    fn files_of(
        &self,
        o: &KeyVaultObject,
        fetched: &Fetched,
        path: String,
        id: String,
    ) -> Result<(Vec<proto::File>, Vec<proto::ObjectVersion>), FetchError> {
        let contents = content::render(o, fetched)?;
        let version = fetched.version().to_owned();
        let mut files = Vec::with_capacity(3);
        if self.provider.config.write_cert_and_key_in_separate_files
            && let Fetched::Secret(s) = fetched
            && s.kid.is_some()
        {
            let (certs, keys) = content::split_cert_and_key(&contents);
            files.push(file(format!("{path}.crt"), self.mode(o), certs));
            files.push(file(format!("{path}.key"), self.mode(o), keys));
        }
        files.push(file(path, self.mode(o), contents));
        let versions =
            files.iter().map(|_| proto::ObjectVersion { id: id.clone(), version: version.clone() }).collect();
        Ok((files, versions))
    }

    async fn object(
        &self,
        o: &KeyVaultObject,
    ) -> Result<(Vec<proto::File>, Vec<proto::ObjectVersion>), MountError> {
        let err = |e: FetchError| MountError::object(o, self.params, &e);
        if o.version_history <= 1 {
            let fetched = self.fetch(o, o.version.as_deref()).await.map_err(err)?;
            return self.files_of(o, &fetched, o.alias.clone(), o.id()).map_err(err);
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
        // Every version asked for, or all there are when fewer exist (Azure's behaviour, without its extra one).
        let wanted: Vec<&String> = all.iter().skip(start).take(o.version_history as usize).collect();
        if wanted.is_empty() {
            return Err(err(FetchError {
                kind: FetchErrorKind::NotFound,
                status: None,
                service_code: None,
                message: "the object has no enabled version".into(),
            }));
        }
        // A few versions at a time, stopping once the response would exceed the driver's limit: a large
        // objectVersionHistory costs Key Vault calls only for what can be returned.
        // Made up front (not yet polled): a closure inside the stream would not be Send for every lifetime.
        let pending: Vec<_> = wanted.iter().map(|v| self.fetch(o, Some(v.as_str()))).collect();
        let mut fetches = stream::iter(pending).buffered(4);
        let mut files = Vec::with_capacity(wanted.len());
        let mut versions = Vec::with_capacity(wanted.len());
        let mut size = 0usize;
        let mut i = 0usize;
        while let Some(fetched) = fetches.next().await {
            let fetched = fetched.map_err(err)?;
            let (f, v) = self
                .files_of(o, &fetched, format!("{}/{i}", o.alias), format!("{}/{i}", o.id()))
                .map_err(err)?;
            size += f.iter().map(file_size).sum::<usize>();
            let limit = self.provider.config.max_response_bytes;
            if size > limit {
                return Err(MountError::too_large(size, limit));
            }
            files.extend(f);
            versions.extend(v);
            i += 1;
        }
        Ok((files, versions))
    }
}

/// What a file adds to the response, roughly as encoded.
fn file_size(f: &proto::File) -> usize {
    f.contents.len() + f.path.len() + 16
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
        self.0.metrics.azure_grpc_request(VERSION_METHOD, "OK", "", Duration::ZERO);
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
                self.0.metrics.azure_grpc_request(MOUNT_METHOD, "OK", "", took);
                tracing::info!(files = resp.files.len(), ms = took.as_secs_f64() * 1000.0, "mount served");
                Ok(Response::new(resp))
            }
            Err(e) => {
                self.0.metrics.mount(e.code(), took);
                self.0.metrics.azure_grpc_request(
                    MOUNT_METHOD,
                    grpc_code_name(e.grpc_code()),
                    e.code(),
                    took,
                );
                tracing::warn!(code = e.code(), error = %e.message, "mount failed");
                Err(e.into_status())
            }
        }
    }
}

/// The full gRPC method names, as Azure's `grpc_method` label has them.
const MOUNT_METHOD: &str = "/v1alpha1.CSIDriverProvider/Mount";
const VERSION_METHOD: &str = "/v1alpha1.CSIDriverProvider/Version";

/// Go's `codes.Code.String()` for the codes a mount can end with (Azure's `grpc_code` label).
fn grpc_code_name(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::Ok => "OK",
        tonic::Code::InvalidArgument => "InvalidArgument",
        tonic::Code::NotFound => "NotFound",
        tonic::Code::PermissionDenied => "PermissionDenied",
        tonic::Code::FailedPrecondition => "FailedPrecondition",
        tonic::Code::Unauthenticated => "Unauthenticated",
        tonic::Code::Aborted => "Aborted",
        tonic::Code::ResourceExhausted => "ResourceExhausted",
        tonic::Code::Unavailable => "Unavailable",
        tonic::Code::Internal => "Internal",
        _ => "Unknown",
    }
}

/// Why the provider's socket could not be set up or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// `--endpoint` is not a unix socket path.
    #[error("--endpoint {0:?} must be unix:///absolute/path.sock")]
    Endpoint(String),
    /// A directory stands where the socket goes.
    #[error("{0} is a directory: point --endpoint at a socket file")]
    IsDirectory(String),
    /// A file system call failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gRPC server stopped with an error.
    #[error("serving the provider socket: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// Parses `unix:///path/to.sock` (or a plain absolute path).
pub fn socket_path(endpoint: &str) -> Result<PathBuf, SocketError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(SocketError::Endpoint(endpoint.to_owned()));
    }
    Ok(PathBuf::from(path))
}

/// Binds the socket: removes a stale one, creates it with umask 0077 so only the driver (root) can connect.
pub fn bind(path: &Path) -> Result<UnixListener, SocketError> {
    let io = |action, path: &Path| {
        let path = path.display().to_string();
        move |source| SocketError::Io { action, path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => return Err(SocketError::IsDirectory(path.display().to_string())),
        Ok(_) => std::fs::remove_file(path).map_err(io("removing stale socket", path))?,
        Err(_) => {}
    }
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let listener = UnixListener::bind(path);
    rustix::process::umask(old);
    listener.map_err(io("binding", path))
}

/// Serves the provider and health services on `listener` until `shutdown` resolves; in-flight mounts finish.
pub async fn serve(
    listener: UnixListener,
    provider: Arc<Provider>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), SocketError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<CsiDriverProviderServer<ProviderService>>().await;
    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(ProviderService(provider)))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await?;
    Ok(())
}
