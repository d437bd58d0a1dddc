//! The command line of `arcseal-controller`: every flag, its environment variable and its default. Start-up
//! (what the flags do) is in main.rs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "arcseal-controller", version, about = "arcseal's in-cluster controllers")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log line format: `text` (colour only on a terminal) or `json` (one object per line).
    #[arg(long, global = true, env = "SEALED_SECRETS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Least severe level logged (error, warn, info, debug, trace) or a tracing filter
    /// (`info,arcseal_controller=debug`); RUST_LOG is used when this is not given.
    #[arg(long, global = true, env = "SEALED_SECRETS_LOG_LEVEL")]
    pub log_level: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve Azure Key Vault objects to the Secrets Store CSI Driver (provider name `arcseal`).
    CsiProvider(Box<CsiProviderArgs>),
    /// Decrypt SealedSecrets into Secrets in the cluster: a drop-in sealed-secrets controller (see
    /// controller/README-unseal.md).
    Unseal(Box<UnsealArgs>),
}

/// Flags of `unseal`: sealed-secrets' names and defaults where the meaning is the same; each also reads
/// `SEALED_SECRETS_<FLAG>` from the environment as sealed-secrets does.
#[derive(clap::Args)]
pub struct UnsealArgs {
    /// HTTP API address (cert.pem, verify, rotate, healthz, readyz); empty disables it.
    #[arg(long, env = "SEALED_SECRETS_LISTEN_ADDR", default_value = ":8080")]
    pub listen_addr: String,
    /// Prometheus metrics address (/metrics); empty disables it.
    #[arg(long, env = "SEALED_SECRETS_LISTEN_METRICS_ADDR", default_value = ":8081")]
    pub listen_metrics_addr: String,
    /// Size in bits of new keys.
    #[arg(long, env = "SEALED_SECRETS_KEY_SIZE", default_value_t = 4096)]
    pub key_size: usize,
    /// Validity of new certificates.
    #[arg(long, env = "SEALED_SECRETS_KEY_TTL", default_value = "87600h", value_parser = parse_duration)]
    pub key_ttl: Duration,
    /// Make a new sealing key this often (old keys are kept); 0 disables renewal.
    #[arg(long, env = "SEALED_SECRETS_KEY_RENEW_PERIOD", default_value = "720h", value_parser = parse_duration)]
    pub key_renew_period: Duration,
    /// Make a new key at once if the newest is older than this instant (RFC 3339, e.g. 2026-01-02T15:04:05Z).
    #[arg(long, env = "SEALED_SECRETS_KEY_CUTOFF_TIME")]
    pub key_cutoff_time: Option<String>,
    /// Common name of new certificates (sealed-secrets' default: empty).
    #[arg(long, env = "SEALED_SECRETS_MY_CN", default_value = "")]
    pub my_cn: String,
    /// Watch SealedSecrets in every namespace; with false, only the controller's own and --additional-namespaces.
    #[arg(long, env = "SEALED_SECRETS_ALL_NAMESPACES", default_value_t = true, action = clap::ArgAction::Set)]
    pub all_namespaces: bool,
    /// Comma-separated namespaces to watch besides the controller's own when --all-namespaces=false.
    #[arg(long, env = "SEALED_SECRETS_ADDITIONAL_NAMESPACES", default_value = "")]
    pub additional_namespaces: String,
    /// /v1/verify and /v1/rotate requests per second, per caller (client address).
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT", default_value_t = 10.0)]
    pub rate_limit: f64,
    /// Burst of --rate-limit.
    #[arg(long, env = "SEALED_SECRETS_RATE_LIMIT_BURST", default_value_t = 20)]
    pub rate_limit_burst: u32,
    /// Items (RSA decryptions) per second per caller on /v1/verify and /v1/rotate.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS", default_value_t = 100.0)]
    pub rate_limit_items: f64,
    /// Burst of --rate-limit-items; also the most items one request may carry.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS_BURST", default_value_t = 500)]
    pub rate_limit_items_burst: u32,
    /// Items (RSA decryptions) per second on /v1/verify and /v1/rotate for all callers together.
    #[arg(long, env = "ARCSEAL_RATE_LIMIT_ITEMS_TOTAL", default_value_t = 300.0)]
    pub rate_limit_items_total: f64,
    /// Time a client has to send a request's headers.
    #[arg(long, env = "ARCSEAL_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub http_header_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, env = "ARCSEAL_HTTP_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub http_body_timeout: Duration,
    /// Open HTTP connections at most (API and metrics listeners each).
    #[arg(long, env = "ARCSEAL_HTTP_MAX_CONNECTIONS", default_value_t = 512)]
    pub http_max_connections: usize,
    /// Open HTTP connections from one client address at most.
    #[arg(long, env = "ARCSEAL_HTTP_MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64)]
    pub http_max_connections_per_client: usize,
    /// Concurrent reconciles.
    #[arg(long, env = "ARCSEAL_WORKERS", default_value_t = 8)]
    pub workers: u16,
    /// Re-check every SealedSecret this often, restoring Secrets edited or deleted by hand; 0 = only on change.
    #[arg(long, env = "ARCSEAL_RESYNC_PERIOD", default_value = "10m", value_parser = parse_duration)]
    pub resync_period: Duration,
    /// Run several replicas: only the holder of a coordination.k8s.io/v1 Lease reconciles and renews keys.
    #[arg(long, env = "ARCSEAL_LEADER_ELECT", default_value_t = false, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Name of the Lease, in the controller's namespace.
    #[arg(long, env = "ARCSEAL_LEADER_ELECT_LEASE_NAME", default_value = "sealed-secrets-controller")]
    pub leader_elect_lease_name: String,
    /// How long the Lease is valid after its last renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// The leader steps down if it could not renew for this long.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often to try to acquire or renew the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// Requests per second to the Kubernetes API, averaged over a burst (0: unlimited).
    #[arg(long, env = "ARCSEAL_KUBE_API_QPS", default_value_t = 200.0)]
    pub kube_api_qps: f64,
    /// Requests that may go to the Kubernetes API at once before --kube-api-qps applies.
    #[arg(long, env = "ARCSEAL_KUBE_API_BURST", default_value_t = 400)]
    pub kube_api_burst: u32,
    #[command(flatten)]
    pub admission: AdmissionArgs,
    // Sealing keys kept in Azure Key Vault (issue 16): see KeyVaultKeyArgs.
    #[command(flatten)]
    pub key_vault: KeyVaultKeyArgs,
}

/// The validating admission webhook for SealedSecrets (off unless --admission-addr is set).
#[derive(clap::Args, Debug, Clone)]
pub struct AdmissionArgs {
    /// TLS listen address of the admission webhook, e.g. :8443 (empty: no webhook).
    #[arg(long, env = "ARCSEAL_ADMISSION_ADDR", default_value = "")]
    pub admission_addr: String,
    /// The kubernetes.io/tls Secret (tls.crt, tls.key, ca.crt) in the controller's namespace it serves from.
    #[arg(long, env = "ARCSEAL_ADMISSION_TLS_SECRET", default_value = "arcseal-admission-tls")]
    pub admission_tls_secret: String,
    /// The controller makes and renews that Secret and the webhook's caBundle (false: cert-manager or you do).
    #[arg(long, env = "ARCSEAL_ADMISSION_TLS_MANAGED", default_value_t = true, action = clap::ArgAction::Set)]
    pub admission_tls_managed: bool,
    /// The ValidatingWebhookConfiguration whose caBundle the leader keeps current (managed TLS only).
    #[arg(long, env = "ARCSEAL_ADMISSION_WEBHOOK_CONFIG", default_value = "arcseal-sealedsecrets")]
    pub admission_webhook_config: String,
    /// The Service in front of the webhook: its DNS names go into the serving certificate.
    #[arg(long, env = "ARCSEAL_ADMISSION_SERVICE", default_value = "arcseal-admission")]
    pub admission_service: String,
    /// More names (DNS or IP address) for the serving certificate; repeat or separate with commas.
    #[arg(long, env = "ARCSEAL_ADMISSION_TLS_SANS", value_delimiter = ',')]
    pub admission_tls_san: Vec<String>,
    /// Validity of a serving certificate the controller makes (renewed when a third is left).
    #[arg(long, default_value = "8760h", value_parser = parse_duration)]
    pub admission_cert_validity: Duration,
    /// Items checked per SealedSecret (one RSA operation each); later items are admitted with a warning.
    #[arg(long, env = "ARCSEAL_ADMISSION_MAX_ITEMS", default_value_t = 256)]
    pub admission_max_items: usize,
    /// Reviews decrypting at once.
    #[arg(long, env = "ARCSEAL_ADMISSION_MAX_CONCURRENT", default_value_t = 4)]
    pub admission_max_concurrent: usize,
    /// How long a review may wait for a slot before the answer is 503 (the failurePolicy then applies).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub admission_queue_timeout: Duration,
}

/// `unseal --key-vault-url`: keep the sealing keys in Azure Key Vault; the key Secrets become a cache. Identity:
/// workload identity (`AZURE_FEDERATED_TOKEN_FILE`, `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, as the webhook sets them)
/// or a service principal (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).
#[derive(clap::Args)]
pub struct KeyVaultKeyArgs {
    /// The vault keeping the sealing keys, e.g. https://myvault.vault.azure.net/. Unset: keys live in Secrets only.
    #[arg(long, env = "ARCSEAL_KEY_VAULT_URL")]
    pub key_vault_url: Option<String>,
    /// Name prefix of this cluster's key pairs in the vault (one prefix per cluster, or one shared on purpose).
    #[arg(long, env = "ARCSEAL_KEY_VAULT_KEY_PREFIX", default_value = "sealed-secrets-key")]
    pub key_vault_key_prefix: String,
    /// How often the leader re-reads the vault and rewrites the cached key Secrets.
    #[arg(long, env = "ARCSEAL_KEY_VAULT_SYNC_PERIOD", default_value = "5m", value_parser = parse_duration)]
    pub key_vault_sync_period: Duration,
    /// Who the controller is to the vault: `environment` (workload identity, or a service principal from
    /// AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET) or `managed-identity` (the node's managed identity
    /// through IMDS, e.g. an AKS kubelet identity).
    #[arg(
        long,
        env = "ARCSEAL_KEY_VAULT_IDENTITY",
        default_value = "environment",
        value_parser = arcseal_keyvault::credential::IDENTITY_KINDS
    )]
    pub key_vault_identity: String,
    /// With `--key-vault-identity managed-identity`: the client id of the user-assigned identity to use (unset: the
    /// system-assigned one).
    #[arg(long, env = "ARCSEAL_KEY_VAULT_MANAGED_IDENTITY_CLIENT_ID", value_name = "CLIENT_ID")]
    pub key_vault_managed_identity_client_id: Option<String>,
    /// Entra ID authority host (other clouds, private clouds).
    #[arg(
        long,
        env = "ARCSEAL_KEY_VAULT_AUTHORITY_HOST",
        default_value = "https://login.microsoftonline.com"
    )]
    pub key_vault_authority_host: String,
    /// PEM file of extra CA certificates trusted for the vault and Entra ID.
    #[arg(long, env = "ARCSEAL_KEY_VAULT_CA_BUNDLE")]
    pub key_vault_ca_bundle: Option<PathBuf>,
    /// The longest total wait for a throttled (429) or failing (5xx) vault within one operation.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub key_vault_max_wait: Duration,
}

#[derive(clap::Args)]
pub struct CsiProviderArgs {
    /// Where to listen: the driver looks for `<provider>.sock` in /var/run/secrets-store-csi-providers or
    /// /etc/kubernetes/secrets-store-csi-providers.
    #[arg(
        long,
        env = "ARCSEAL_CSI_ENDPOINT",
        default_value = "unix:///var/run/secrets-store-csi-providers/arcseal.sock"
    )]
    pub endpoint: String,
    /// Serve Prometheus metrics on this address at /metrics (e.g. 0.0.0.0:8898). Off when unset.
    #[arg(long, env = "ARCSEAL_CSI_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Key Vault DNS suffix for every mount, replacing the cloud's (private clouds, Azure Stack Hub):
    /// e.g. vault.local.azurestack.external.
    #[arg(long, env = "ARCSEAL_CSI_KEYVAULT_DNS_SUFFIX")]
    pub keyvault_dns_suffix: Option<String>,
    /// Entra ID authority host for every mount, replacing the cloud's: e.g. https://login.mycloud.example.
    #[arg(long, env = "ARCSEAL_CSI_AUTHORITY_HOST")]
    pub authority_host: Option<String>,
    /// PEM file of extra CA certificates trusted for Key Vault and Entra ID, added to the system's roots.
    #[arg(long, env = "ARCSEAL_CSI_CA_BUNDLE")]
    pub ca_bundle: Option<PathBuf>,
    /// How long an object read without objectVersion (latest) is served from the cache.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub latest_ttl: Duration,
    /// How long a pinned objectVersion is served from the cache (versions never change).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub pinned_ttl: Duration,
    /// The longest total wait for a throttled (429) or failing (5xx) Key Vault within one mount.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub keyvault_max_wait: Duration,
    /// Serve the health endpoint (--healthz-path and /readyz) on this port, on all interfaces, as Azure's provider
    /// does; 0 turns it off.
    #[arg(long, env = "ARCSEAL_CSI_HEALTHZ_PORT", default_value_t = 8989)]
    pub healthz_port: u16,
    /// Path of the liveness check.
    #[arg(long, default_value = "/healthz")]
    pub healthz_path: String,
    /// Longest wait for the provider socket's answer to a health check.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub healthz_timeout: Duration,
    /// Also write a certificate's secret as <file>.crt (its certificates) and <file>.key (its private key), besides
    /// the usual file (Azure's flag of the same name).
    #[arg(long, env = "ARCSEAL_CSI_WRITE_CERT_AND_KEY_IN_SEPARATE_FILES", default_value_t = false,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub write_cert_and_key_in_separate_files: bool,
    /// The only directory whose files cloudEnvFileName may name (AzureStackCloud). Unset: no SecretProviderClass
    /// can make the provider read a node file; AzureStackCloud then needs --authority-host and
    /// --keyvault-dns-suffix.
    #[arg(long, env = "ARCSEAL_CSI_CLOUD_ENV_DIR")]
    pub cloud_env_dir: Option<PathBuf>,
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
