//! `arcseal-controller`: the in-cluster binaries of arcseal.
//!
//! - `csi-provider`: the Secrets Store CSI Driver provider for Azure Key Vault (see controller/README-csi.md).
//! - `unseal`: the sealed-secrets compatible unseal controller (see controller/README-unseal.md).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arcseal_controller::csi::cloud::{self, CloudOverrides};
use arcseal_controller::csi::health;
use arcseal_controller::csi::keyvault::RetryPolicy;
use arcseal_controller::csi::metrics::{self, Metrics};
use arcseal_controller::csi::server::{self, Provider, ProviderConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arcseal-controller", version, about = "arcseal's in-cluster controllers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format: `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(long, global = true, env = "SEALED_SECRETS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Least severe level logged (error, warn, info, debug, trace) or a tracing filter
    /// (`info,arcseal_controller=debug`); RUST_LOG is used when this is not given.
    #[arg(long, global = true, env = "SEALED_SECRETS_LOG_LEVEL")]
    log_level: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Azure Key Vault objects to the Secrets Store CSI Driver (provider name `arcseal`).
    CsiProvider(Box<CsiProviderArgs>),
    /// Decrypt SealedSecrets into Secrets in the cluster: a drop-in sealed-secrets controller (see
    /// controller/README-unseal.md).
    Unseal(Box<UnsealArgs>),
}

/// Flags of `unseal`: sealed-secrets' names and defaults where the meaning is the same; each also reads
/// `SEALED_SECRETS_<FLAG>` from the environment as sealed-secrets does.
#[derive(clap::Args)]
struct UnsealArgs {
    /// HTTP API address (cert.pem, verify, rotate, healthz, readyz); empty disables it.
    #[arg(long, env = "SEALED_SECRETS_LISTEN_ADDR", default_value = ":8080")]
    listen_addr: String,
    /// Prometheus metrics address (/metrics); empty disables it.
    #[arg(long, env = "SEALED_SECRETS_LISTEN_METRICS_ADDR", default_value = ":8081")]
    listen_metrics_addr: String,
    /// Size in bits of new keys.
    #[arg(long, env = "SEALED_SECRETS_KEY_SIZE", default_value_t = 4096)]
    key_size: usize,
    /// Validity of new certificates.
    #[arg(long, env = "SEALED_SECRETS_KEY_TTL", default_value = "87600h", value_parser = parse_duration)]
    key_ttl: Duration,
    /// Make a new sealing key this often (old keys are kept); 0 disables renewal.
    #[arg(long, env = "SEALED_SECRETS_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration)]
    key_renew_period: Duration,
    /// Make a new key at once if the newest is older than this instant (RFC 3339, e.g. 2026-01-02T15:04:05Z).
    #[arg(long, env = "SEALED_SECRETS_KEY_CUTOFF_TIME")]
    key_cutoff_time: Option<String>,
    /// Common name of new certificates (sealed-secrets' default: empty).
    #[arg(long, env = "SEALED_SECRETS_MY_CN", default_value = "")]
    my_cn: String,
    /// Watch SealedSecrets in every namespace; with false, only the controller's own and --additional-namespaces.
    #[arg(long, env = "SEALED_SECRETS_ALL_NAMESPACES", default_value_t = true, action = clap::ArgAction::Set)]
    all_namespaces: bool,
    /// Comma-separated namespaces to watch besides the controller's own when --all-namespaces=false.
    #[arg(long, env = "SEALED_SECRETS_ADDITIONAL_NAMESPACES", default_value = "")]
    additional_namespaces: String,
    /// /v1/verify and /v1/rotate requests per second, per caller (client address).
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT", default_value_t = 10.0)]
    rate_limit: f64,
    /// Burst of --rate-limit.
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT_BURST", default_value_t = 20)]
    rate_limit_burst: u32,
    /// Items (RSA decryptions) per second per caller on /v1/verify and /v1/rotate.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS", default_value_t = 100.0)]
    rate_limit_items: f64,
    /// Burst of --rate-limit-items; also the most items one request may carry.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS_BURST", default_value_t = 500)]
    rate_limit_items_burst: u32,
    /// Items (RSA decryptions) per second on /v1/verify and /v1/rotate for all callers together.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS_TOTAL", default_value_t = 300.0)]
    rate_limit_items_total: f64,
    /// Time a client has to send a request's headers.
    #[arg(long, env = "ARCSEAL_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    http_header_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, env = "ARCSEAL_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    http_body_timeout: Duration,
    /// Open HTTP connections at most (API and metrics listeners each).
    #[arg(long, env = "ARCSEAL_HTTP_MAX_CONNECTIONS", default_value_t = 512)]
    http_max_connections: usize,
    /// Open HTTP connections from one client address at most.
    #[arg(long, env = "ARCSEAL_HTTP_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64)]
    http_max_connections_per_client: usize,
    /// Concurrent reconciles.
    #[arg(long, env = "ARCSEAL_WORKERS", default_value_t = 8)]
    workers: u16,
    /// Re-check every SealedSecret this often, restoring Secrets edited or deleted by hand; 0 = only on change.
    #[arg(long, env = "ARCSEAL_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    resync_period: Duration,
    /// Run several replicas: only the holder of a coordination.k8s.io/v1 Lease reconciles and renews keys.
    #[arg(long, env = "ARCSEAL_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Name of the Lease, in the controller's namespace.
    #[arg(long, env = "ARCSEAL_LEADER_ELECT_LEASE_NAME", default_value = "sealed-secrets-controller")]
    leader_elect_lease_name: String,
    /// How long the Lease is valid after its last renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    leader_elect_lease_duration: Duration,
    /// The leader steps down if it could not renew for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    leader_elect_renew_deadline: Duration,
    /// How often to try to acquire or renew the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    leader_elect_retry_period: Duration,
    /// Requests per second to the Kubernetes API, averaged over a burst (0: unlimited).
    #[arg(long, env = "ARCSEAL_KUBE_API_QPS", default_value_t = 200.0)]
    kube_api_qps: f64,
    /// Requests that may go to the Kubernetes API at once before --kube-api-qps applies.
    #[arg(long, env = "ARCSEAL_KUBE_API_BURST", default_value_t = 400)]
    kube_api_burst: u32,
}

#[derive(clap::Args)]
struct CsiProviderArgs {
    /// Where to listen: the driver looks for `<provider>.sock` in /var/run/secrets-store-csi-providers or
    /// /etc/kubernetes/secrets-store-csi-providers.
    #[arg(
        long,
        env = "ARCSEAL_CSI_ENDPOINT",
        default_value = "unix:///var/run/secrets-store-csi-providers/arcseal.sock"
    )]
    endpoint: String,
    /// Serve Prometheus metrics on this address at /metrics (e.g. 0.0.0.0:8898). Off when unset.
    #[arg(long, env = "ARCSEAL_CSI_METRICS_ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Key Vault DNS suffix for every mount, replacing the cloud's (private clouds, Azure Stack Hub):
    /// e.g. vault.local.azurestack.external.
    #[arg(long, env = "ARCSEAL_CSI_KEYVAULT_DNS_SUFFIX")]
    keyvault_dns_suffix: Option<String>,
    /// Entra ID authority host for every mount, replacing the cloud's: e.g. https://login.mycloud.example.
    #[arg(long, env = "ARCSEAL_CSI_AUTHORITY_HOST")]
    authority_host: Option<String>,
    /// PEM file of extra CA certificates trusted for Key Vault and Entra ID, added to the system's roots.
    #[arg(long, env = "ARCSEAL_CSI_CA_BUNDLE")]
    ca_bundle: Option<PathBuf>,
    /// How long an object read without objectVersion (latest) is served from the cache.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    latest_ttl: Duration,
    /// How long a pinned objectVersion is served from the cache (versions never change).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pinned_ttl: Duration,
    /// The longest total wait for a throttled (429) or failing (5xx) Key Vault within one mount.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    keyvault_max_wait: Duration,
    /// Serve the health endpoint (--healthz-path and /readyz) on this port, on all interfaces, as Azure's provider
    /// does; 0 turns it off.
    #[arg(long, env = "ARCSEAL_CSI_HEALTHZ_PORT", default_value_t = 8989)]
    healthz_port: u16,
    /// Path of the liveness check.
    #[arg(long, default_value = "/healthz")]
    healthz_path: String,
    /// Longest wait for the provider socket's answer to a health check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    healthz_timeout: Duration,
    /// Also write a certificate's secret as <file>.crt (its certificates) and <file>.key (its private key), besides
    /// the usual file (Azure's flag of the same name).
    #[arg(long, env = "ARCSEAL_CSI_WRITE_CERT_AND_KEY_IN_SEPARATE_FILES", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    write_cert_and_key_in_separate_files: bool,
    /// The only directory whose files cloudEnvFileName may name (AzureStackCloud). Unset: no SecretProviderClass
    /// can make the provider read a node file; AzureStackCloud then needs --authority-host and
    /// --keyvault-dns-suffix.
    #[arg(long, env = "ARCSEAL_CSI_CLOUD_ENV_DIR")]
    cloud_env_dir: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 =
        num.parse().map_err(|_| format!("{s:?}: expected a number with a unit, e.g. 30s, 5m, 24h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

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
    cloud::validate_overrides(&overrides).map_err(anyhow::Error::msg)?;
    let mut config = ProviderConfig::new(server::http_client(args.ca_bundle.as_deref(), &[])?);
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

/// Waits for SIGTERM or SIGINT; `finishing` says what the mode finishes before it stops.
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
