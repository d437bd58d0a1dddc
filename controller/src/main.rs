//! `arcseal-controller`: the in-cluster binaries of arcseal.
//!
//! - `csi-provider`: the Secrets Store CSI Driver provider for Azure Key Vault (see controller/README-csi.md).
//! - `unseal`: the sealed-secrets compatible unseal controller (see controller/README-unseal.md).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arcseal_controller::csi::cloud::{self, CloudOverrides};
use arcseal_controller::csi::health;
use arcseal_controller::csi::keyvault::RetryPolicy;
use arcseal_controller::csi::metrics::{self, Metrics};
use arcseal_controller::csi::server::{self, Provider, ProviderConfig};
use clap::Parser as _;

mod cli;

use cli::{Cli, Command, CsiProviderArgs, LogFormat, UnsealArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::CsiProvider(args) => runtime.block_on(csi_provider(*args)),
        Command::Unseal(args) => runtime.block_on(unseal(*args)),
    }
}

/// Logs to stderr: plain text without ANSI colour unless stderr is a terminal (pod logs stay readable),
/// or one JSON object per line.
fn init_logging(format: LogFormat, level: Option<&str>) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level)
            .with_context(|| format!("--log-level {level:?}: expected error, warn, info, debug or trace"))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.with_ansi(false).event_format(JsonLines).init(),
    }
    Ok(())
}

/// `--log-format json`: `{"time", "level", "target", "message", fields...}` per line.
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        struct Fields(serde_json::Map<String, serde_json::Value>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(field.name().to_owned(), format!("{value:?}").into());
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.insert(field.name().to_owned(), value.into());
            }
            fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
                self.0.insert(field.name().to_owned(), value.into());
            }
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                self.0.insert(field.name().to_owned(), value.into());
            }
            fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
                self.0.insert(field.name().to_owned(), value.into());
            }
        }
        let meta = event.metadata();
        let mut fields = Fields(serde_json::Map::new());
        let mut time = String::new();
        tracing_subscriber::fmt::time::FormatTime::format_time(
            &tracing_subscriber::fmt::time::SystemTime,
            &mut tracing_subscriber::fmt::format::Writer::new(&mut time),
        )?;
        fields.0.insert("time".into(), time.into());
        fields.0.insert("level".into(), meta.level().as_str().to_ascii_lowercase().into());
        fields.0.insert("target".into(), meta.target().into());
        event.record(&mut fields);
        writeln!(writer, "{}", serde_json::Value::Object(fields.0))
    }
}

async fn csi_provider(args: CsiProviderArgs) -> anyhow::Result<()> {
    let overrides = CloudOverrides {
        authority_host: args.authority_host,
        keyvault_dns_suffix: args.keyvault_dns_suffix,
        env_dir: args.cloud_env_dir,
    };
    cloud::validate_overrides(&overrides)?;
    let ca_bundle = match &args.ca_bundle {
        Some(path) => Some(read_ca_bundle(path)?),
        None => None,
    };
    let http = arcseal_keyvault::http::http_client(ca_bundle.as_deref(), &[]).with_context(|| {
        format!("--ca-bundle {}", args.ca_bundle.as_deref().unwrap_or(Path::new("")).display())
    })?;
    let mut config = ProviderConfig::new(http);
    config.cloud = overrides;
    config.latest_ttl = args.latest_ttl;
    config.pinned_ttl = args.pinned_ttl;
    config.retry = RetryPolicy { max_total_wait: args.keyvault_max_wait, ..RetryPolicy::default() };
    config.write_cert_and_key_in_separate_files = args.write_cert_and_key_in_separate_files;
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = args.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --metrics-addr {addr}"))?;
        tracing::info!(%addr, "serving metrics at /metrics");
        tokio::spawn(metrics::serve(listener, metrics.clone()));
    }
    let provider = Arc::new(Provider::new(config, metrics));
    let path = server::socket_path(&args.endpoint)?;
    let listener = server::bind(&path)?;
    tracing::info!(socket = %path.display(), "arcseal CSI provider listening");
    if args.healthz_port != 0 {
        anyhow::ensure!(
            args.healthz_path.starts_with('/'),
            "--healthz-path {:?} must start with /",
            args.healthz_path
        );
        let addr = SocketAddr::from(([0, 0, 0, 0], args.healthz_port));
        let health_listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding --healthz-port {addr}"))?;
        let health = health::HealthConfig {
            socket: path.clone(),
            timeout: args.healthz_timeout,
            path: args.healthz_path.clone(),
            reuse_for: Duration::from_secs(1),
        };
        tracing::info!(%addr, path = %args.healthz_path, "serving health checks");
        tokio::spawn(health::serve(health_listener, health));
    }
    server::serve(listener, provider, shutdown_signal("finishing in-flight mounts")).await?;
    let _ = std::fs::remove_file(&path);
    tracing::info!("stopped");
    Ok(())
}

fn parse_listen(flag: &str, value: &str) -> anyhow::Result<Option<SocketAddr>> {
    if value.is_empty() {
        return Ok(None);
    }
    let full = if value.starts_with(':') { format!("0.0.0.0{value}") } else { value.to_owned() };
    full.parse().map(Some).with_context(|| format!("{flag} {value:?}: expected host:port or :port"))
}

async fn unseal(args: UnsealArgs) -> anyhow::Result<()> {
    use arcseal_controller::unseal::{self, http::HttpLimits, keys::KeyPolicy, leader::LeaderConfig};
    let namespace =
        std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()).unwrap_or("kube-system".into());
    let identity = std::env::var("POD_NAME")
        .ok()
        .filter(|n| !n.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_owned()))
        .unwrap_or_else(|| format!("arcseal-controller-{}", std::process::id()));
    if !arcseal_crypto::SUPPORTED_KEY_BITS.contains(&args.key_size) {
        anyhow::bail!("--key-size {}: use one of {:?}", args.key_size, arcseal_crypto::SUPPORTED_KEY_BITS);
    }
    let cutoff = match &args.key_cutoff_time {
        None => None,
        Some(t) if t.is_empty() => None,
        Some(t) => {
            let ts: k8s_openapi::jiff::Timestamp =
                t.parse().with_context(|| format!("--key-cutoff-time {t:?}: expected RFC 3339"))?;
            let secs = u64::try_from(ts.as_second()).context("--key-cutoff-time before 1970")?;
            Some(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }
    };
    let mut watch_namespaces = Vec::new();
    if !args.all_namespaces {
        watch_namespaces.push(namespace.clone());
        watch_namespaces.extend(
            args.additional_namespaces.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned),
        );
    }
    let config = unseal::Config {
        keys: KeyPolicy {
            namespace: namespace.clone(),
            bits: args.key_size,
            ttl: args.key_ttl,
            renew_period: args.key_renew_period,
            cutoff,
            common_name: args.my_cn,
        },
        watch_namespaces,
        workers: args.workers.max(1),
        resync: args.resync_period,
        listen_addr: parse_listen("--listen-addr", &args.listen_addr)?,
        metrics_addr: parse_listen("--listen-metrics-addr", &args.listen_metrics_addr)?,
        http_limits: HttpLimits {
            header_timeout: args.http_header_timeout,
            body_timeout: args.http_body_timeout,
            max_connections: args.http_max_connections,
            max_connections_per_client: args.http_max_connections_per_client,
            request_rate: args.rate_limit,
            request_burst: args.rate_limit_burst,
            item_rate: args.rate_limit_items,
            item_burst: args.rate_limit_items_burst,
            total_item_rate: args.rate_limit_items_total,
            total_item_burst: args.rate_limit_items_burst.max(1).saturating_mul(2),
            ..HttpLimits::default()
        },
        leader_election: args.leader_elect.then(|| LeaderConfig {
            namespace: namespace.clone(),
            lease_name: args.leader_elect_lease_name,
            identity: identity.clone(),
            lease_duration: args.leader_elect_lease_duration,
            renew_deadline: args.leader_elect_renew_deadline,
            retry_period: args.leader_elect_retry_period,
        }),
        instance: identity,
        watch_timeout: None,
        admission: admission_config(&args.admission, &namespace)?,
        key_vault: key_vault_config(&args.key_vault)?,
    };
    let kube_config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration (kubeconfig or in-cluster)")?;
    let builder =
        kube::client::ClientBuilder::try_from(kube_config).context("building the Kubernetes client")?;
    let client = if args.kube_api_qps > 0.0 {
        // A window of `burst` requests every burst/qps seconds: qps on average, bursts of `burst`.
        let burst = u64::from(args.kube_api_burst.max(1));
        let window = Duration::from_secs_f64(burst as f64 / args.kube_api_qps);
        builder.with_layer(&tower::limit::RateLimitLayer::new(burst, window)).build()
    } else {
        builder.build()
    };
    tracing::info!(namespace = %namespace, "arcseal unseal controller starting");
    let (_handles, task) =
        unseal::start(client, config, shutdown_signal("finishing in-flight reconciles")).await?;
    task.await.context("the controller task failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// The webhook's settings from `--admission-*`; `None` when `--admission-addr` is empty.
fn admission_config(
    args: &cli::AdmissionArgs,
    namespace: &str,
) -> anyhow::Result<Option<arcseal_controller::unseal::AdmissionConfig>> {
    use arcseal_controller::unseal::webhook::{WebhookLimits, tls::TlsConfig};
    let Some(addr) = parse_listen("--admission-addr", &args.admission_addr)? else { return Ok(None) };
    let service = &args.admission_service;
    let mut dns_names =
        vec![format!("{service}.{namespace}.svc"), format!("{service}.{namespace}.svc.cluster.local")];
    let mut ips = Vec::new();
    for san in args.admission_tls_san.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match san.parse() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns_names.push(san.to_owned()),
        }
    }
    anyhow::ensure!(
        args.admission_cert_validity >= Duration::from_secs(3600),
        "--admission-cert-validity {:?}: at least 1h",
        args.admission_cert_validity
    );
    Ok(Some(arcseal_controller::unseal::AdmissionConfig {
        addr,
        limits: WebhookLimits {
            max_items: args.admission_max_items.max(1),
            max_concurrent: args.admission_max_concurrent.max(1),
            queue_timeout: args.admission_queue_timeout,
            ..WebhookLimits::default()
        },
        tls: TlsConfig {
            namespace: namespace.to_owned(),
            secret_name: args.admission_tls_secret.clone(),
            managed: args.admission_tls_managed,
            webhook_config: Some(args.admission_webhook_config.clone()).filter(|n| !n.is_empty()),
            dns_names,
            ips,
            validity: args.admission_cert_validity,
        },
    }))
}

/// `unseal --key-vault-url`: the vault client, identity from the environment.
fn key_vault_config(
    args: &cli::KeyVaultKeyArgs,
) -> anyhow::Result<Option<arcseal_controller::unseal::vault::KeyVaultConfig>> {
    use arcseal_keyvault::sealing_keys;
    let Some(url) = args.key_vault_url.as_deref().filter(|u| !u.is_empty()) else { return Ok(None) };
    anyhow::ensure!(
        url.starts_with("https://"),
        "--key-vault-url {url:?}: expected https://<vault>.vault.azure.net/"
    );
    let ca_bundle = match &args.key_vault_ca_bundle {
        Some(path) => Some(read_ca_bundle(path)?),
        None => None,
    };
    let http =
        arcseal_keyvault::http::http_client(ca_bundle.as_deref(), &[]).context("--key-vault-ca-bundle")?;
    let retry = sealing_keys::RetryPolicy { max_total_wait: args.key_vault_max_wait, ..Default::default() };
    let identity = arcseal_keyvault::credential::Identity::from_flags(
        &args.key_vault_identity,
        args.key_vault_managed_identity_client_id.as_deref(),
    )?;
    let keys = sealing_keys::connect(
        url,
        &args.key_vault_key_prefix,
        &args.key_vault_authority_host,
        &identity,
        http,
        retry,
    )
    .map_err(|e| anyhow::anyhow!("--key-vault-url {url}: {e}"))?;
    Ok(Some(arcseal_controller::unseal::vault::KeyVaultConfig {
        keys: Arc::new(keys),
        sync_period: args.key_vault_sync_period,
    }))
}

/// Waits for SIGTERM or SIGINT; `finishing` says what the mode finishes before it stops.
/// Reads `--ca-bundle` (at most [`arcseal_keyvault::http::MAX_CA_BUNDLE_BYTES`]).
fn read_ca_bundle(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Read as _;
    let limit = arcseal_keyvault::http::MAX_CA_BUNDLE_BYTES;
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(limit + 1).read_to_end(&mut pem))
        .with_context(|| format!("reading --ca-bundle {}", path.display()))?;
    anyhow::ensure!(pem.len() as u64 <= limit, "--ca-bundle {}: larger than {limit} bytes", path.display());
    Ok(pem)
}

async fn shutdown_signal(finishing: &'static str) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: {finishing}"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: {finishing}"),
    }
}
