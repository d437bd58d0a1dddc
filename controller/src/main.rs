//! `arcseal-controller`: the in-cluster binaries of arcseal.
//!
//! - `csi-provider`: the Secrets Store CSI Driver provider for Azure Key Vault (see controller/README-csi.md).
//! - `unseal`: the sealed-secrets unseal controller (not implemented yet).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arcseal_controller::csi::cloud::{self, CloudOverrides};
use arcseal_controller::csi::keyvault::RetryPolicy;
use arcseal_controller::csi::metrics::{self, Metrics};
use arcseal_controller::csi::server::{self, Provider, ProviderConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arcseal-controller", version, about = "arcseal's in-cluster controllers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve Azure Key Vault objects to the Secrets Store CSI Driver (provider name `arcseal`).
    CsiProvider(CsiProviderArgs),
    /// Decrypt SealedSecrets into Secrets in the cluster (not implemented yet).
    Unseal,
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
    match cli.command {
        Command::CsiProvider(args) => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_writer(std::io::stderr)
                .init();
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(csi_provider(args))
        }
        Command::Unseal => {
            anyhow::bail!(
                "`arcseal-controller unseal` is not implemented yet: it is being built in a separate issue"
            )
        }
    }
}

async fn csi_provider(args: CsiProviderArgs) -> anyhow::Result<()> {
    let overrides =
        CloudOverrides { authority_host: args.authority_host, keyvault_dns_suffix: args.keyvault_dns_suffix };
    cloud::validate_overrides(&overrides).map_err(anyhow::Error::msg)?;
    let mut config = ProviderConfig::new(server::http_client(args.ca_bundle.as_deref(), &[])?);
    config.cloud = overrides;
    config.latest_ttl = args.latest_ttl;
    config.pinned_ttl = args.pinned_ttl;
    config.retry = RetryPolicy { max_total_wait: args.keyvault_max_wait, ..RetryPolicy::default() };
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
    server::serve(listener, provider, shutdown_signal()).await?;
    let _ = std::fs::remove_file(&path);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
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
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight mounts"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight mounts"),
    }
}
