//! Reaching the cluster as kubectl and kubeseal do: the kubeconfig chosen by kubectl's rules, the
//! context, cluster and user flags on top, and the controller reached through the API server's service
//! proxy (`/api/v1/namespaces/<ns>/services/http:<name>:<port-name>/proxy/<path>`).
//!
//! kubectl's loading rules, which this follows:
//! - `--kubeconfig FILE`: that file only; an unreadable or invalid file is an error.
//! - else `$KUBECONFIG` (a path list): the files that exist, merged (the first to set a value wins);
//!   an existing but unreadable or invalid file is an error, a missing one is skipped.
//! - else `~/.kube/config` when it exists.
//! - The context is `--context`, else `current-context`; a named context that the files do not hold is
//!   an error. The namespace is `-n`, else the context's, else `default` (also with no kubeconfig).

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Location, Result};

/// Default name of the controller's Service (sealed-secrets' and arcseal's deploy/).
pub const DEFAULT_CONTROLLER_NAME: &str = "sealed-secrets-controller";
/// Default namespace of the controller.
pub const DEFAULT_CONTROLLER_NAMESPACE: &str = "kube-system";
/// Largest answer read through the proxy.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// kubectl's connection flags.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// `--kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`.
    pub context: Option<String>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--user`.
    pub user: Option<String>,
    /// `-s/--server`.
    pub server: Option<String>,
    /// `--token`.
    pub token: Option<String>,
    /// `--as`.
    pub impersonate: Option<String>,
    /// `--as-group`.
    pub impersonate_groups: Vec<String>,
    /// `--as-uid`.
    pub impersonate_uid: Option<String>,
    /// `--insecure-skip-tls-verify`.
    pub insecure_skip_tls_verify: bool,
    /// `--certificate-authority`.
    pub certificate_authority: Option<PathBuf>,
    /// `--tls-server-name`.
    pub tls_server_name: Option<String>,
    /// `--request-timeout`.
    pub request_timeout: Option<Duration>,
    /// `--client-certificate`.
    pub client_certificate: Option<PathBuf>,
    /// `--client-key`.
    pub client_key: Option<PathBuf>,
    /// `--username`.
    pub username: Option<String>,
    /// `--password`.
    pub password: Option<String>,
}

/// Parses kubectl's `--request-timeout`: `0` (none), a number of seconds, or a number with a unit
/// (`500ms`, `30s`, `2m`, `1h`).
pub fn parse_timeout(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: f64 = number.parse().map_err(|_| format!("{text:?}: expected e.g. 30s, 2m or 0"))?;
    let scale = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("{text:?}: out of range"))
}

fn kubeconfig_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::input(
        &Location::source(path.display().to_string()),
        format!("cannot read this kubeconfig: {e}; fix it, or point --kubeconfig/KUBECONFIG at another"),
    )
}

/// The kubeconfig kubectl would use, or `None` when there is none at all.
pub fn load_kubeconfig(options: &ClusterOptions) -> Result<Option<Kubeconfig>> {
    let read = |path: &Path| Kubeconfig::read_from(path).map_err(|e| kubeconfig_error(path, error_chain(&e)));
    if let Some(path) = &options.kubeconfig {
        return read(path).map(Some);
    }
    let paths: Vec<PathBuf> = match std::env::var_os("KUBECONFIG") {
        Some(list) if !list.is_empty() => {
            std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()).collect()
        }
        _ => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")).into_iter().collect(),
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            _ => {}
        }
        let next = read(&path)?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| kubeconfig_error(&path, error_chain(&e)))?,
        });
    }
    Ok(merged)
}

/// The context in use: `--context`, else `current-context`; an error when it names a context the
/// kubeconfig does not hold (kubectl: `context "x" does not exist`).
fn context<'a>(
    config: &'a Kubeconfig,
    options: &ClusterOptions,
) -> Result<Option<&'a kube::config::NamedContext>> {
    let Some(name) =
        options.context.as_deref().or(config.current_context.as_deref()).filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    config.contexts.iter().find(|c| c.name == name).map(Some).ok_or_else(|| {
        Error::Usage(format!(
            "the kubeconfig has no context {name:?}{}; pick one of `kubectl config get-contexts` with --context, \
             or fix current-context",
            if options.context.is_some() { " (--context)" } else { " (its current-context)" }
        ))
    })
}

/// The namespace kubectl would use: `flag`, else the context's namespace, else `default`.
pub fn namespace(options: &ClusterOptions, flag: Option<&str>) -> Result<String> {
    if let Some(ns) = flag.filter(|n| !n.is_empty()) {
        return Ok(ns.to_owned());
    }
    let Some(config) = load_kubeconfig(options)? else { return Ok("default".to_owned()) };
    Ok(context(&config, options)?
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.namespace.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned()))
}

/// kube's client configuration for `options`. Needs a tokio runtime (exec plugins run on it).
pub async fn client_config(options: &ClusterOptions) -> Result<kube::Config> {
    let loaded = load_kubeconfig(options)?;
    let mut config = match loaded {
        Some(kubeconfig) => {
            context(&kubeconfig, options)?;
            let kube_options = KubeConfigOptions {
                context: options.context.clone(),
                cluster: options.cluster.clone(),
                user: options.user.clone(),
            };
            match kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options).await {
                Ok(config) => config,
                Err(kube::config::KubeconfigError::MissingClusterUrl) if options.server.is_some() => {
                    kube::Config::new(default_uri())
                }
                Err(e) => {
                    return Err(Error::Usage(format!(
                        "kubeconfig: {}; check it with `kubectl config view`",
                        error_chain(&e)
                    )));
                }
            }
        }
        None if options.server.is_some() => kube::Config::new(default_uri()),
        None if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => kube::Config::incluster()
            .map_err(|e| Error::Usage(format!("in-cluster configuration: {}", error_chain(&e))))?,
        None => {
            return Err(Error::Usage(
                "no kubeconfig (--kubeconfig, KUBECONFIG or ~/.kube/config) and no --server: cannot reach the \
                 cluster; pass --cert FILE|URL to seal offline"
                    .into(),
            ));
        }
    };
    if let Some(server) = &options.server {
        config.cluster_url =
            server.parse().map_err(|e| Error::Usage(format!("--server {server:?}: not a URL ({e})")))?;
    }
    if let Some(token) = &options.token {
        config.auth_info = kube::config::AuthInfo { token: Some(token.clone().into()), ..Default::default() };
    }
    if let Some(path) = &options.client_certificate {
        config.auth_info.client_certificate = Some(path.display().to_string());
        config.auth_info.client_certificate_data = None;
    }
    if let Some(path) = &options.client_key {
        config.auth_info.client_key = Some(path.display().to_string());
        config.auth_info.client_key_data = None;
    }
    if let Some(user) = &options.username {
        config.auth_info.username = Some(user.clone());
    }
    if let Some(password) = &options.password {
        config.auth_info.password = Some(password.clone().into());
    }
    if let Some(user) = &options.impersonate {
        config.auth_info.impersonate = Some(user.clone());
    }
    if let Some(uid) = &options.impersonate_uid {
        config.auth_info.impersonate_uid = Some(uid.clone());
    }
    if !options.impersonate_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(options.impersonate_groups.clone());
    }
    if options.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
    }
    if let Some(path) = &options.certificate_authority {
        config.root_cert = Some(certificates_der(path)?);
    }
    if let Some(name) = &options.tls_server_name {
        config.tls_server_name = Some(name.clone());
    }
    if let Some(timeout) = options.request_timeout.filter(|t| !t.is_zero()) {
        config.read_timeout = Some(timeout);
        config.connect_timeout = Some(timeout);
    }
    Ok(config)
}

fn default_uri() -> http::Uri {
    http::Uri::from_static("https://localhost")
}

/// The DER certificates of a PEM bundle (`--certificate-authority`).
fn certificates_der(path: &Path) -> Result<Vec<Vec<u8>>> {
    let bytes = crate::keys::read_capped(path, 1 << 20)?;
    let at = Location::source(path.display().to_string());
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::input(&at, "not a PEM file"))?;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        match (&mut body, line) {
            (None, "-----BEGIN CERTIFICATE-----") => body = Some(String::new()),
            (Some(b), "-----END CERTIFICATE-----") => {
                out.push(
                    arcseal_crypto::decode_base64(b)
                        .map_err(|_| Error::input(&at, "a CERTIFICATE block is not valid base64"))?,
                );
                body = None;
            }
            (Some(b), l) => b.push_str(l),
            (None, _) => {}
        }
    }
    if out.is_empty() {
        return Err(Error::input(&at, "holds no PEM CERTIFICATE block; give the cluster's CA certificate"));
    }
    Ok(out)
}

/// The sealed-secrets controller behind the API server's service proxy.
pub struct ServiceProxy {
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
    namespace: String,
    name: String,
    port: std::sync::OnceLock<String>,
}

impl ServiceProxy {
    /// Connects (lazily) to the API server of `options`, for the controller Service `namespace/name`.
    pub fn new(options: &ClusterOptions, namespace: &str, name: &str) -> Result<ServiceProxy> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("the async runtime", e))?;
        let client = runtime.block_on(async {
            let config = client_config(options).await?;
            kube::Client::try_from(config).map_err(|e| {
                Error::Usage(format!("cannot set up the Kubernetes client: {}", error_chain(&e)))
            })
        })?;
        Ok(ServiceProxy {
            runtime,
            client,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port: std::sync::OnceLock::new(),
        })
    }

    /// What to call the controller in messages.
    pub fn describe(&self) -> String {
        format!("service {}/{} (through the API server's proxy)", self.namespace, self.name)
    }

    /// The Service's first port name, as kubeseal picks it (`http` for sealed-secrets' chart).
    fn port_name(&self) -> Result<String> {
        if let Some(p) = self.port.get() {
            return Ok(p.clone());
        }
        let path = format!("/api/v1/namespaces/{}/services/{}", self.namespace, self.name);
        let (status, _, body) = self.raw("GET", &path, None)?;
        if status != 200 {
            return Err(Error::Usage(format!(
                "cannot get the controller's Service {}/{}: HTTP {status} {}; is the sealed-secrets controller \
                 installed there? (--controller-namespace, --controller-name, or --cert to seal offline)",
                self.namespace,
                self.name,
                short(&body)
            )));
        }
        let service: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| Error::Usage(format!("{path}: the API server's answer is not JSON")))?;
        let port = service
            .pointer("/spec/ports/0/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        Ok(self.port.get_or_init(|| port).clone())
    }

    /// `method path` on the controller (e.g. `GET /v1/cert.pem`): status, `Retry-After` (seconds) and body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>)> {
        let port = self.port_name()?;
        let url =
            format!("/api/v1/namespaces/{}/services/http:{}:{port}/proxy{path}", self.namespace, self.name);
        self.raw(method, &url, body)
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>)> {
        use http_body_util::BodyExt;
        let mut request = http::Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(kube::client::Body::from(body.unwrap_or_default()))
            .map_err(|e| Error::Usage(format!("{path}: {e}")))?;
        let at = Location::source(path);
        self.runtime.block_on(async {
            let response = self
                .client
                .send(request)
                .await
                .map_err(|e| Error::input(&at, format!("request failed: {}", error_chain(&e))))?;
            let status = response.status().as_u16();
            let retry_after = crate::controller::retry_after(response.headers());
            let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
            let bytes = limited
                .collect()
                .await
                .map_err(|e| Error::input(&at, format!("reading the answer: {e} (at most 4 MiB)")))?
                .to_bytes();
            Ok((status, retry_after, bytes.to_vec()))
        })
    }
}

/// The first line of an answer, at most 200 characters.
pub fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(body).lines().next().unwrap_or("").chars().take(200).collect()
}

/// An error and its causes on one line, each cause once (libraries often repeat their source's text).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts_parse_like_kubectl() {
        assert_eq!(parse_timeout("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_timeout("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("3d").is_err());
    }

    #[test]
    fn namespace_follows_kubectl() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let with = |path: PathBuf, context: Option<&str>| ClusterOptions {
            kubeconfig: Some(path),
            context: context.map(str::to_owned),
            ..ClusterOptions::default()
        };
        let good = write(
            "good",
            "apiVersion: v1\nkind: Config\ncurrent-context: b\ncontexts:\n- name: a\n  context: {cluster: c, namespace: team-a}\n- name: b\n  context: {cluster: c, namespace: team-b}\n- name: none\n  context: {cluster: c}\n",
        );
        assert_eq!(namespace(&with(good.clone(), None), None).unwrap(), "team-b");
        assert_eq!(namespace(&with(good.clone(), Some("a")), None).unwrap(), "team-a");
        assert_eq!(namespace(&with(good.clone(), Some("none")), None).unwrap(), "default");
        assert_eq!(namespace(&with(good.clone(), None), Some("flag")).unwrap(), "flag");
        let err = namespace(&with(good, Some("zzz")), None).unwrap_err().to_string();
        assert!(err.contains("no context \"zzz\""), "{err}");
        let missing = write("missing", "apiVersion: v1\nkind: Config\ncurrent-context: gone\ncontexts: []\n");
        assert!(namespace(&with(missing, None), None).unwrap_err().to_string().contains("\"gone\""));
        let invalid = write("invalid", "current-context: [\n");
        let err = namespace(&with(invalid, None), None).unwrap_err().to_string();
        assert!(err.contains("cannot read this kubeconfig"), "{err}");
        let unreadable = dir.path().join("nope");
        assert!(namespace(&with(unreadable, None), None).is_err());
        let empty = write("empty", "");
        assert_eq!(namespace(&with(empty, None), None).unwrap(), "default");
    }
}
