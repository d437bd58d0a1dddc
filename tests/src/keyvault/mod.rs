//! A wire-faithful Azure Key Vault + Entra ID stand-in for integration tests (see shared spec keyvault.md).
//!
//! One loopback HTTP (or HTTPS, with a test CA) server plays every host the official SDK talks to:
//! - `<vault>.<dns suffix>`: the Key Vault data plane (secrets, keys, certificates, their versions). A request
//!   without `Authorization` gets the 401 challenge (`WWW-Authenticate: Bearer authorization=..., resource=...`);
//!   version ids are 32 hex; errors have Key Vault's bodies (404 `SecretNotFound`, 403 `Forbidden` with
//!   `AccessDenied` / `SecretDisabled`, 429 `Throttled` + `Retry-After`).
//! - `login.*`: `POST /{tenant}/oauth2/v2.0/token` with `client_secret` or `client_assertion` (a service account JWT
//!   whose `sub` must be federated with the client id).
//! - `169.254.169.254`: IMDS `GET /metadata/identity/oauth2/token` with `Metadata: true`.
//!
//! The SDK reaches it unmodified through [`LoopbackTransport`] (its `ClientOptions.transport`): URLs keep their
//! `https://<real host>/` form, so the SDK's TLS-only bearer rule and challenge-resource check stay on; the transport
//! sends each request to the loopback port and passes the original host in `x-standin-host`. In TLS mode the
//! server presents a certificate for the given names, signed by a test CA, and the host comes from `Host`.
//!
//! Listing: `GET /secrets` pages the secrets' properties (latest version each: id without version, attributes,
//! contentType, tags), 25 a page with `nextLink`, as List Secrets does. [`KeyVaultStandIn::deny`] takes a secret
//! permission (`list`, `get`, `set`) away; [`KeyVaultStandIn::set_secret_enabled`] and
//! [`KeyVaultStandIn::delete_secret`] play an operator disabling or deleting a secret.
//!
//! Writes: `PUT /secrets/{name}` (body `{"value","contentType","attributes","tags"}`) adds a version with a new 32-hex id
//! and answers 200 with the whole secret, as Key Vault's Set Secret does; the vault must exist (any earlier
//! `set_secret`, or [`KeyVaultStandIn::create_vault`]). Other writes are refused.
//!
//! Faults ([`Fault`]) make the next N data-plane requests fail with 429 / 5xx / 403 / a delay.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

pub mod provider;

/// Header carrying the host the SDK addressed, set by [`LoopbackTransport`].
pub const HOST_HEADER: &str = "x-standin-host";

/// A data-plane fault applied to the next `count` matching requests.
#[derive(Debug, Clone)]
pub struct Fault {
    /// What to do.
    pub kind: FaultKind,
    /// How many requests it applies to.
    pub count: usize,
    /// Only requests whose path contains this (None: all data-plane requests).
    pub path_contains: Option<String>,
}

/// Kinds of fault.
#[derive(Debug, Clone)]
pub enum FaultKind {
    /// 429 Throttled with `Retry-After: secs`.
    Throttle {
        /// Seconds.
        retry_after: u64,
    },
    /// A 5xx status.
    ServerError(u16),
    /// Delay the response.
    Delay(Duration),
    /// 403 Forbidden / `AccessDenied`, as Key Vault answers a principal without the permission.
    Forbidden,
}

#[derive(Clone)]
struct SecretVersion {
    version: String,
    value: String,
    content_type: Option<String>,
    enabled: bool,
    created: i64,
    kid: Option<String>,
    tags: Value,
}

#[derive(Clone)]
struct KeyVersion {
    version: String,
    jwk: Value,
    created: i64,
}

#[derive(Clone)]
struct CertVersion {
    version: String,
    cer: Vec<u8>,
    created: i64,
}

#[derive(Default)]
struct Vault {
    secrets: HashMap<String, Vec<SecretVersion>>,
    keys: HashMap<String, Vec<KeyVersion>>,
    certs: HashMap<String, Vec<CertVersion>>,
    /// None: every authenticated principal may read.
    readers: Option<HashSet<String>>,
    /// Secret permissions (`list`, `get`, `set`) taken away from every principal.
    denied: HashSet<String>,
}

/// Request counts, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Authorized Key Vault data-plane requests (whatever their result).
    pub keyvault: u64,
    /// 401 challenges sent.
    pub challenges: u64,
    /// Entra ID token requests.
    pub tokens: u64,
    /// IMDS token requests.
    pub imds: u64,
}

#[derive(Default)]
struct State {
    vaults: HashMap<String, Vault>,
    /// client_id -> secret
    apps: HashMap<String, String>,
    /// (client_id, subject)
    federations: HashSet<(String, String)>,
    /// IMDS identities: None = system-assigned, Some(client id).
    managed: HashSet<Option<String>>,
    /// access token -> principal
    tokens: HashMap<String, String>,
    faults: Vec<Fault>,
    counters: Counters,
    /// Paths of data-plane requests, in order.
    log: Vec<String>,
    token_lifetime: u64,
}

/// The stand-in server.
pub struct KeyVaultStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    clock: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for KeyVaultStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn random_hex32() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(out.len() as u64);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// TLS material for [`KeyVaultStandIn::start_tls`].
pub struct TestCa {
    /// The CA certificate (PEM), to trust.
    pub ca_pem: String,
    server_cert_der: Vec<u8>,
    server_key_der: Vec<u8>,
}

impl TestCa {
    /// A CA and a server certificate for `names`.
    pub fn new(names: &[&str]) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, "arcseal test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("params");
        let cert = params.signed_by(&key, &issuer).expect("server cert");
        Self {
            ca_pem: ca_cert.pem(),
            server_cert_der: cert.der().to_vec(),
            server_key_der: key.serialize_der(),
        }
    }
}

impl KeyVaultStandIn {
    /// Starts a plain-HTTP stand-in on 127.0.0.1 (use with [`LoopbackTransport`]).
    pub async fn start() -> Self {
        Self::start_inner(None, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an HTTPS stand-in presenting a certificate from `ca`.
    pub async fn start_tls(ca: &TestCa) -> Self {
        Self::start_inner(Some(ca), SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts an HTTPS stand-in on `addr`, for clients that cannot reach loopback (a pod on the test node):
    /// only ever an address the test cluster created.
    pub async fn start_tls_at(ca: &TestCa, addr: SocketAddr) -> Self {
        Self::start_inner(Some(ca), addr).await
    }

    async fn start_inner(tls: Option<&TestCa>, addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind stand-in");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State { token_lifetime: 3599, ..Default::default() }));
        let clock = Arc::new(AtomicU64::new(1_700_000_000));
        let acceptor = tls.map(|ca| {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let cfg = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(
                    vec![ca.server_cert_der.clone().into()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(ca.server_key_der.clone().into()),
                )
                .expect("tls config");
            tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
        });
        let st = state.clone();
        let ck = clock.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let st = st.clone();
                let ck = ck.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let st = st.clone();
                        let ck = ck.clone();
                        async move { Ok::<_, Infallible>(handle(req, st, ck).await) }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acc) => {
                            if let Ok(tls) = acc.accept(stream).await {
                                let _ =
                                    builder.serve_connection(hyper_util::rt::TokioIo::new(tls), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                        }
                    }
                });
            }
        });
        Self { addr, state, clock, task }
    }

    /// The loopback address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An SDK transport that sends everything here.
    pub fn transport(&self) -> Arc<dyn azure_core::http::HttpClient> {
        Arc::new(LoopbackTransport::new(self.addr))
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    fn tick(&self) -> i64 {
        self.clock.fetch_add(1, Ordering::SeqCst) as i64
    }

    /// Adds a new version of a plain secret; returns its version id.
    pub fn set_secret(&self, vault: &str, name: &str, value: &str) -> String {
        self.set_secret_full(vault, name, value, None, true, None)
    }

    /// Adds a new version of a secret with every attribute.
    pub fn set_secret_full(
        &self,
        vault: &str,
        name: &str,
        value: &str,
        content_type: Option<&str>,
        enabled: bool,
        kid: Option<String>,
    ) -> String {
        let version = random_hex32();
        let created = self.tick();
        self.with(|s| {
            s.vaults.entry(vault.into()).or_default().secrets.entry(name.into()).or_default().push(
                SecretVersion {
                    version: version.clone(),
                    value: value.into(),
                    content_type: content_type.map(str::to_owned),
                    enabled,
                    created,
                    kid,
                    tags: json!({}),
                },
            )
        });
        version
    }

    /// Adds a key version from JWK public parameters (`kty`, `n`/`e` or `crv`/`x`/`y`, base64url-encoded).
    pub fn add_key(&self, vault: &str, name: &str, jwk: Value) -> String {
        let version = random_hex32();
        let created = self.tick();
        self.with(|s| {
            s.vaults.entry(vault.into()).or_default().keys.entry(name.into()).or_default().push(KeyVersion {
                version: version.clone(),
                jwk,
                created,
            })
        });
        version
    }

    /// Adds a certificate version as Key Vault does: the certificate (`cer`), its key (public part, if given) and its
    /// secret (`secret_value` with `content_type`, `kid` set, managed) under one version id.
    pub fn add_certificate(
        &self,
        vault: &str,
        name: &str,
        cer_der: &[u8],
        secret_value: &str,
        content_type: &str,
    ) -> String {
        let version = random_hex32();
        let created = self.tick();
        let kid = format!("https://{vault}.vault.azure.net/keys/{name}/{version}");
        self.with(|s| {
            let v = s.vaults.entry(vault.into()).or_default();
            v.certs.entry(name.into()).or_default().push(CertVersion {
                version: version.clone(),
                cer: cer_der.to_vec(),
                created,
            });
            v.secrets.entry(name.into()).or_default().push(SecretVersion {
                version: version.clone(),
                value: secret_value.into(),
                content_type: Some(content_type.into()),
                enabled: true,
                created,
                kid: Some(kid),
                tags: json!({}),
            });
        });
        version
    }

    /// Creates an empty vault (writes to a vault that does not exist fail like Key Vault's).
    pub fn create_vault(&self, vault: &str) {
        self.with(|s| {
            s.vaults.entry(vault.into()).or_default();
        });
    }

    /// Every version of a secret, oldest first: (version id, value, contentType).
    pub fn secret_versions(&self, vault: &str, name: &str) -> Vec<(String, String, Option<String>)> {
        self.with(|s| {
            s.vaults
                .get(vault)
                .and_then(|v| v.secrets.get(name))
                .map(|vs| {
                    vs.iter().map(|v| (v.version.clone(), v.value.clone(), v.content_type.clone())).collect()
                })
                .unwrap_or_default()
        })
    }

    /// Takes a secret permission (`list`, `get` or `set`) away from every principal on `vault`: requests needing it
    /// get Key Vault's 403 `Forbidden`/`AccessDenied` naming the permission.
    pub fn deny(&self, vault: &str, permission: &str) {
        self.with(|s| s.vaults.entry(vault.into()).or_default().denied.insert(permission.into()));
    }

    /// Gives back every permission taken by [`Self::deny`].
    pub fn allow_all(&self, vault: &str) {
        self.with(|s| s.vaults.entry(vault.into()).or_default().denied.clear());
    }

    /// Disables (or enables) the latest version of a secret, as `az keyvault secret set-attributes --enabled`.
    pub fn set_secret_enabled(&self, vault: &str, name: &str, enabled: bool) {
        self.with(|s| {
            if let Some(v) =
                s.vaults.get_mut(vault).and_then(|v| v.secrets.get_mut(name)).and_then(|v| v.last_mut())
            {
                v.enabled = enabled;
            }
        });
    }

    /// Deletes a secret with all its versions.
    pub fn delete_secret(&self, vault: &str, name: &str) {
        self.with(|s| s.vaults.get_mut(vault).and_then(|v| v.secrets.remove(name)));
    }

    /// Names of the secrets of `vault`.
    pub fn secret_names(&self, vault: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .with(|s| s.vaults.get(vault).map(|v| v.secrets.keys().cloned().collect()).unwrap_or_default());
        names.sort();
        names
    }

    /// The tags of the latest version of a secret.
    pub fn secret_tags(&self, vault: &str, name: &str) -> Value {
        self.with(|s| {
            s.vaults
                .get(vault)
                .and_then(|v| v.secrets.get(name))
                .and_then(|v| v.last())
                .map(|v| v.tags.clone())
                .unwrap_or(Value::Null)
        })
    }

    /// Restricts reads of `vault` to these principals (client ids, `mi-system`, `mi-<client id>`).
    pub fn set_readers(&self, vault: &str, readers: &[&str]) {
        self.with(|s| {
            s.vaults.entry(vault.into()).or_default().readers =
                Some(readers.iter().map(|r| r.to_string()).collect())
        });
    }

    /// Registers a service principal.
    pub fn add_app(&self, client_id: &str, secret: &str) {
        self.with(|s| s.apps.insert(client_id.into(), secret.into()));
    }

    /// Federates a Kubernetes service account (`system:serviceaccount:<ns>:<sa>`) with a client id.
    pub fn federate(&self, client_id: &str, subject: &str) {
        self.with(|s| s.federations.insert((client_id.into(), subject.into())));
    }

    /// Gives the "node" a managed identity: None = system-assigned, Some(client id) = user-assigned.
    pub fn add_managed_identity(&self, client_id: Option<&str>) {
        self.with(|s| s.managed.insert(client_id.map(str::to_owned)));
    }

    /// Sets the lifetime of issued tokens (seconds).
    pub fn set_token_lifetime(&self, secs: u64) {
        self.with(|s| s.token_lifetime = secs);
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Fault) {
        self.with(|s| s.faults.push(fault));
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Request counts so far.
    pub fn counters(&self) -> Counters {
        self.with(|s| s.counters.clone())
    }

    /// The sealing keys of `vault` under `prefix` as service principal `client_id` (registered with `secret`) reads
    /// them, reached through `transport` (normally [`Self::transport`]), retrying quickly.
    pub fn sealing_keys(
        vault: &str,
        prefix: &str,
        client_id: &str,
        secret: &str,
        transport: Arc<dyn azure_core::http::HttpClient>,
    ) -> arcseal_keyvault::sealing_keys::VaultKeys {
        use arcseal_keyvault::sealing_keys::{RetryPolicy, VaultKeys, client_options};
        let options = client_options(transport, "https://login.microsoftonline.com");
        let credential = azure_identity::ClientSecretCredential::new(
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            client_id.to_owned(),
            azure_core::credentials::Secret::new(secret.to_owned()),
            Some(azure_identity::ClientSecretCredentialOptions { client_options: options.clone() }),
        )
        .expect("credential");
        let retry = RetryPolicy {
            max_total_wait: Duration::from_secs(4),
            initial_backoff: Duration::from_millis(50),
            max_attempts: 5,
        };
        VaultKeys::new(&format!("https://{vault}.vault.azure.net/"), prefix, credential, options, retry)
            .expect("sealing keys client")
    }

    /// Data-plane request paths so far.
    pub fn log(&self) -> Vec<String> {
        self.with(|s| s.log.clone())
    }
}

/// A service account token as the kubelet would issue it, for the `csi.storage.k8s.io/serviceAccount.tokens`
/// attribute (unsigned: the stand-in checks `sub` and `aud` the way Entra ID's federation does).
pub fn service_account_jwt(namespace: &str, service_account: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"test"}"#);
    let claims = json!({
        "aud": ["api://AzureADTokenExchange"],
        "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
        "iss": "https://kubernetes.default.svc",
        "exp": 4_102_444_800u64,
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.c2lnbmF0dXJl")
}

fn respond(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn kv_error(status: StatusCode, code: &str, message: &str, inner: Option<&str>) -> Response<Full<Bytes>> {
    let mut err = json!({"code": code, "message": message});
    if let Some(i) = inner {
        err["innererror"] = json!({"code": i});
    }
    respond(status, json!({ "error": err }))
}

fn challenge(vault_host: &str, message: &str) -> Response<Full<Bytes>> {
    // The resource is the vault's DNS suffix, so the SDK's challenge-resource check passes for any cloud.
    let suffix = vault_host.split_once('.').map(|(_, s)| s).unwrap_or(vault_host);
    let suffix = suffix.split(':').next().unwrap_or(suffix);
    let mut r = kv_error(StatusCode::UNAUTHORIZED, "Unauthorized", message, None);
    r.headers_mut().insert(
        "www-authenticate",
        format!(r#"Bearer authorization="https://login.windows.net/00000000-0000-0000-0000-000000000000", resource="https://{suffix}""#)
            .parse()
            .expect("header"),
    );
    r
}

fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect()
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<Mutex<State>>,
    clock: Arc<AtomicU64>,
) -> Response<Full<Bytes>> {
    let host = req
        .headers()
        .get(HOST_HEADER)
        .or_else(|| req.headers().get("host"))
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let host_no_port = host.split(':').next().unwrap_or("").to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = parse_query(req.uri().query());
    let auth = req.headers().get("authorization").and_then(|h| h.to_str().ok()).map(str::to_owned);
    let metadata = req.headers().get("metadata").and_then(|h| h.to_str().ok()) == Some("true");
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);

    if host_no_port == "169.254.169.254" {
        let mut s = state.lock().unwrap();
        s.counters.imds += 1;
        if !metadata || path != "/metadata/identity/oauth2/token" {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"error":"invalid_request","error_description":"Required metadata header not specified"}),
            );
        }
        let id = query.get("client_id").cloned();
        if !s.managed.contains(&id) {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"error":"invalid_request","error_description":"Identity not found"}),
            );
        }
        let principal = id.map(|c| format!("mi-{c}")).unwrap_or_else(|| "mi-system".into());
        let token = format!("tok-{}", random_hex32());
        s.tokens.insert(token.clone(), principal);
        let lifetime = s.token_lifetime;
        return respond(
            StatusCode::OK,
            json!({"access_token": token, "expires_on": (now + lifetime).to_string(), "expires_in": lifetime.to_string(),
                   "token_type": "Bearer", "resource": query.get("resource").cloned().unwrap_or_default()}),
        );
    }

    if host_no_port.starts_with("login.") {
        let mut s = state.lock().unwrap();
        s.counters.tokens += 1;
        if method != hyper::Method::POST || !path.ends_with("/oauth2/v2.0/token") {
            return respond(StatusCode::NOT_FOUND, json!({"error":"invalid_request"}));
        }
        let form: BTreeMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        let client_id = form.get("client_id").cloned().unwrap_or_default();
        let bad = |code: u64, desc: &str| {
            respond(
                StatusCode::UNAUTHORIZED,
                json!({"error":"invalid_client","error_description": format!("AADSTS{code}: {desc}"),"error_codes":[code]}),
            )
        };
        if form.get("grant_type").map(String::as_str) != Some("client_credentials")
            || !form.get("scope").is_some_and(|s| s.ends_with("/.default"))
        {
            return respond(
                StatusCode::BAD_REQUEST,
                json!({"error":"invalid_request","error_description":"AADSTS900144: bad request","error_codes":[900144]}),
            );
        }
        let principal = if let Some(secret) = form.get("client_secret") {
            if s.apps.get(&client_id) != Some(secret) {
                return bad(7000215, "Invalid client secret provided.");
            }
            client_id.clone()
        } else if let Some(assertion) = form.get("client_assertion") {
            if form.get("client_assertion_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
            {
                return bad(50027, "Invalid JWT token.");
            }
            let claims = assertion
                .split('.')
                .nth(1)
                .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let Some(claims) = claims else { return bad(50027, "Invalid JWT token.") };
            let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
            let aud_ok =
                claims["aud"].as_array().is_some_and(|a| a.iter().any(|x| x == "api://AzureADTokenExchange"));
            if !aud_ok || !s.federations.contains(&(client_id.clone(), sub)) {
                return bad(70021, "No matching federated identity record found for presented assertion.");
            }
            client_id.clone()
        } else {
            return bad(7000216, "client_assertion or client_secret is required.");
        };
        let token = format!("tok-{}", random_hex32());
        s.tokens.insert(token.clone(), principal);
        let lifetime = s.token_lifetime;
        return respond(
            StatusCode::OK,
            json!({"token_type":"Bearer","expires_in": lifetime,"ext_expires_in": lifetime,"access_token": token}),
        );
    }

    // Key Vault data plane.
    let vault_name = host_no_port.split('.').next().unwrap_or("").to_owned();
    let Some(token) = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")) else {
        state.lock().unwrap().counters.challenges += 1;
        return challenge(&host, "AKV10000: Request is missing a Bearer or PoP token.");
    };
    let fault = {
        let mut s = state.lock().unwrap();
        s.counters.keyvault += 1;
        s.log.push(path.clone());
        let idx = s
            .faults
            .iter()
            .position(|f| f.count > 0 && f.path_contains.as_ref().is_none_or(|p| path.contains(p)));
        idx.map(|i| {
            s.faults[i].count -= 1;
            let k = s.faults[i].kind.clone();
            if s.faults[i].count == 0 {
                s.faults.remove(i);
            }
            k
        })
    };
    match fault {
        Some(FaultKind::Throttle { retry_after }) => {
            let mut r = kv_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
                None,
            );
            r.headers_mut().insert("retry-after", retry_after.to_string().parse().expect("header"));
            return r;
        }
        Some(FaultKind::ServerError(code)) => {
            return kv_error(
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "InternalServerError",
                "The service encountered an internal error.",
                None,
            );
        }
        Some(FaultKind::Forbidden) => {
            return kv_error(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &format!(
                    "The user, group or application does not have secrets set permission on key vault '{vault_name}'."
                ),
                Some("AccessDenied"),
            );
        }
        Some(FaultKind::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let mut s = state.lock().unwrap();
    let Some(principal) = s.tokens.get(token).cloned() else {
        drop(s);
        return challenge(&host, "AKV10022: Invalid audience or token.");
    };
    let base = format!("https://{host}");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let needed = match (&method, segments.as_slice()) {
        (&hyper::Method::PUT, _) => "set",
        (_, ["secrets"] | ["secrets", _, "versions"]) => "list",
        _ => "get",
    };
    if segments.first() == Some(&"secrets")
        && s.vaults.get(&vault_name).is_some_and(|v| v.denied.contains(needed))
    {
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "The user, group or application 'appid={principal}' does not have secrets {needed} permission on key vault '{vault_name}'."
            ),
            Some("AccessDenied"),
        );
    }
    if method == hyper::Method::PUT {
        let created = clock.fetch_add(1, Ordering::SeqCst) as i64;
        return set_secret(&mut s, &vault_name, &base, &segments, &body, created);
    }
    let Some(vault) = s.vaults.get(&vault_name) else {
        return kv_error(StatusCode::NOT_FOUND, "VaultNotFound", "The vault does not exist.", None);
    };
    if vault.readers.as_ref().is_some_and(|r| !r.contains(&principal)) {
        let kind = segments.first().copied().unwrap_or("secrets");
        return kv_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            &format!(
                "The user, group or application 'appid={principal}' does not have {kind} get permission on key vault '{vault_name}'."
            ),
            Some("AccessDenied"),
        );
    }
    if method != hyper::Method::GET {
        return kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadParameter",
            "Only reads are served by this stand-in.",
            None,
        );
    }
    let max = query.get("maxresults").and_then(|m| m.parse::<usize>().ok()).unwrap_or(25).clamp(1, 25);
    let skip = query.get("$skiptoken").and_then(|m| m.parse::<usize>().ok()).unwrap_or(0);
    let page = |items: Vec<Value>, next: String| {
        let total = items.len();
        let value: Vec<Value> = items.into_iter().skip(skip).take(max).collect();
        let next_link =
            (skip + max < total).then(|| format!("{next}?$skiptoken={}&maxresults={max}", skip + max));
        respond(StatusCode::OK, json!({"value": value, "nextLink": next_link}))
    };
    let attrs = |created: i64, enabled: bool| json!({"enabled": enabled, "created": created, "updated": created, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90});
    match segments.as_slice() {
        ["secrets"] => {
            let mut names: Vec<&String> = vault.secrets.keys().collect();
            names.sort();
            let items = names
                .into_iter()
                .filter_map(|name| {
                    let v = vault.secrets[name].last()?;
                    let mut j = json!({
                        "id": format!("{base}/secrets/{name}"),
                        "attributes": attrs(v.created, v.enabled),
                        "tags": v.tags,
                    });
                    if let Some(ct) = &v.content_type {
                        j["contentType"] = json!(ct);
                    }
                    if v.kid.is_some() {
                        j["managed"] = json!(true);
                    }
                    Some(j)
                })
                .collect();
            page(items, format!("{base}/secrets"))
        }
        ["secrets", name, rest @ ..] => {
            let Some(versions) = vault.secrets.get(*name) else {
                return kv_error(
                    StatusCode::NOT_FOUND,
                    "SecretNotFound",
                    &format!(
                        "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command."
                    ),
                    None,
                );
            };
            let to_json = |v: &SecretVersion, with_value: bool| {
                let mut j = json!({
                    "id": format!("{base}/secrets/{name}/{}", v.version),
                    "attributes": attrs(v.created, v.enabled),
                    "tags": v.tags,
                });
                if let Some(ct) = &v.content_type {
                    j["contentType"] = json!(ct);
                }
                if let Some(kid) = &v.kid {
                    j["managed"] = json!(true);
                    if with_value {
                        j["kid"] = json!(kid);
                    }
                }
                if with_value {
                    j["value"] = json!(v.value);
                }
                j
            };
            let pick = match rest {
                [] | [""] => versions.last(),
                ["versions"] => {
                    return page(
                        versions.iter().rev().map(|v| to_json(v, false)).collect(),
                        format!("{base}/secrets/{name}/versions"),
                    );
                }
                [v] => versions.iter().find(|x| x.version == *v),
                _ => None,
            };
            match pick {
                None => kv_error(
                    StatusCode::NOT_FOUND,
                    "SecretNotFound",
                    &format!(
                        "A secret with (name/id) {name}/{} was not found in this key vault.",
                        rest.join("/")
                    ),
                    None,
                ),
                Some(v) if !v.enabled => kv_error(
                    StatusCode::FORBIDDEN,
                    "Forbidden",
                    "Operation get is not allowed on a disabled secret.",
                    Some("SecretDisabled"),
                ),
                Some(v) => respond(StatusCode::OK, to_json(v, true)),
            }
        }
        ["keys", name, rest @ ..] => {
            let Some(versions) = vault.keys.get(*name) else {
                return kv_error(
                    StatusCode::NOT_FOUND,
                    "KeyNotFound",
                    &format!("A key with (name/id) {name} was not found in this key vault."),
                    None,
                );
            };
            let kid = |v: &KeyVersion| format!("{base}/keys/{name}/{}", v.version);
            let pick = match rest {
                [] | [""] => versions.last(),
                ["versions"] => {
                    return page(
                        versions
                            .iter()
                            .rev()
                            .map(|v| json!({"kid": kid(v), "attributes": attrs(v.created, true), "tags": {}}))
                            .collect(),
                        format!("{base}/keys/{name}/versions"),
                    );
                }
                [v] => versions.iter().find(|x| x.version == *v),
                _ => None,
            };
            match pick {
                None => kv_error(
                    StatusCode::NOT_FOUND,
                    "KeyNotFound",
                    &format!("A key with (name/id) {name} was not found in this key vault."),
                    None,
                ),
                Some(v) => {
                    let mut key = v.jwk.clone();
                    key["kid"] = json!(kid(v));
                    key["key_ops"] = json!(["sign", "verify", "wrapKey", "unwrapKey", "encrypt", "decrypt"]);
                    let mut a = attrs(v.created, true);
                    a["exportable"] = json!(false);
                    respond(StatusCode::OK, json!({"key": key, "attributes": a, "tags": {}}))
                }
            }
        }
        ["certificates", name, rest @ ..] => {
            let Some(versions) = vault.certs.get(*name) else {
                return kv_error(
                    StatusCode::NOT_FOUND,
                    "CertificateNotFound",
                    &format!("A certificate with (name/id) {name} was not found in this key vault."),
                    None,
                );
            };
            let id = |v: &CertVersion| format!("{base}/certificates/{name}/{}", v.version);
            let pick = match rest {
                [] | [""] => versions.last(),
                ["versions"] => {
                    return page(
                        versions.iter().rev().map(|v| json!({"id": id(v), "x5t": "dGVzdA", "attributes": attrs(v.created, true), "tags": {}})).collect(),
                        format!("{base}/certificates/{name}/versions"),
                    );
                }
                [v] => versions.iter().find(|x| x.version == *v),
                _ => None,
            };
            match pick {
                None => kv_error(
                    StatusCode::NOT_FOUND,
                    "CertificateNotFound",
                    &format!("A certificate with (name/id) {name} was not found in this key vault."),
                    None,
                ),
                Some(v) => respond(
                    StatusCode::OK,
                    json!({
                        "id": id(v),
                        "kid": format!("{base}/keys/{name}/{}", v.version),
                        "sid": format!("{base}/secrets/{name}/{}", v.version),
                        "x5t": "dGVzdA",
                        "cer": STANDARD.encode(&v.cer),
                        "contentType": "application/x-pkcs12",
                        "attributes": attrs(v.created, true),
                        "policy": {"id": format!("{base}/certificates/{name}/policy")},
                        "tags": {},
                    }),
                ),
            }
        }
        _ => kv_error(StatusCode::BAD_REQUEST, "BadParameter", "Unknown path.", None),
    }
}

/// Set Secret: `PUT /secrets/{name}` with `{"value", "contentType"?, "attributes"?, "tags"?}` adds a version.
fn set_secret(
    s: &mut State,
    vault_name: &str,
    base: &str,
    segments: &[&str],
    body: &[u8],
    created: i64,
) -> Response<Full<Bytes>> {
    let ["secrets", name] = segments else {
        return kv_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "BadParameter",
            "Only Set Secret is a write served here.",
            None,
        );
    };
    if name.is_empty() || name.len() > 127 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request URI contains an invalid name: secret names are 1-127 of 0-9, a-z, A-Z and -.",
            None,
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return kv_error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The request body is not valid JSON.",
            None,
        );
    };
    let Some(value) = request.get("value").and_then(Value::as_str) else {
        return kv_error(StatusCode::BAD_REQUEST, "BadParameter", "Property value is required.", None);
    };
    let Some(vault) = s.vaults.get_mut(vault_name) else {
        return kv_error(StatusCode::NOT_FOUND, "VaultNotFound", "The vault does not exist.", None);
    };
    let version = SecretVersion {
        version: random_hex32(),
        value: value.to_owned(),
        content_type: request.get("contentType").and_then(Value::as_str).map(str::to_owned),
        enabled: request.pointer("/attributes/enabled").and_then(Value::as_bool).unwrap_or(true),
        created,
        kid: None,
        tags: request.get("tags").filter(|t| t.is_object()).cloned().unwrap_or_else(|| json!({})),
    };
    let mut j = json!({
        "value": version.value,
        "id": format!("{base}/secrets/{name}/{}", version.version),
        "attributes": {"enabled": version.enabled, "created": created, "updated": created,
                       "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90},
        "tags": version.tags,
    });
    if let Some(ct) = &version.content_type {
        j["contentType"] = json!(ct);
    }
    vault.secrets.entry((*name).to_owned()).or_default().push(version);
    respond(StatusCode::OK, j)
}

/// The transport swap: keeps `https://<host>/...` URLs (so the SDK's TLS and challenge checks apply) and delivers
/// each request over plain HTTP to the stand-in, passing the original host in [`HOST_HEADER`].
#[derive(Debug)]
pub struct LoopbackTransport {
    addr: SocketAddr,
    client: reqwest::Client,
}

impl LoopbackTransport {
    /// A transport to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, client: reqwest::Client::builder().build().expect("reqwest client") }
    }
}

#[async_trait::async_trait]
impl azure_core::http::HttpClient for LoopbackTransport {
    async fn execute_request(
        &self,
        request: &azure_core::http::Request,
    ) -> azure_core::Result<azure_core::http::AsyncRawResponse> {
        let mut r = request.clone();
        let original = request.url().clone();
        let host = match original.port() {
            Some(p) => format!("{}:{p}", original.host_str().unwrap_or_default()),
            None => original.host_str().unwrap_or_default().to_owned(),
        };
        let url = r.url_mut();
        url.set_scheme("http").expect("scheme");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(self.addr.port())).expect("port");
        r.insert_header(HOST_HEADER, host);
        self.client.execute_request(&r).await
    }
}
