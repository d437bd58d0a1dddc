//! Command-line surface. Flags are kubeseal's where the meaning is the same.

use std::path::PathBuf;

use arcseal::output::Format;
use arcseal_crypto::Scope;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep Kubernetes Secrets in Git as Bitnami-compatible SealedSecrets.
#[derive(Debug, Parser)]
#[command(name = "arcseal", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Seal Secrets (YAML or JSON, several documents) into SealedSecrets for a cluster's certificate.
    Seal(SealArgs),
    /// Recover Secrets from SealedSecrets offline, with the controller's private keys.
    Unseal(UnsealArgs),
    /// Check SealedSecret manifests offline: structure, values, scope, certificate, keys.
    Validate(ValidateArgs),
    /// Re-seal every SealedSecret under a path to the newest key, editing only the changed values.
    Rotate(Box<RotateArgs>),
    /// Generate a sealing key pair and the controller's self-signed certificate.
    Keygen(KeygenArgs),
    /// Show a sealing certificate: fingerprint, subject, validity.
    Cert(CertArgs),
    /// Sealing keys in Azure Key Vault: move existing keys into a vault once, or back the vault's keys up to a file.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// One screen on a cluster: controller replicas and leader, keys, SealedSecrets by condition, recent events.
    /// Exit 0 healthy, 3 degraded (needs a look), 4 unhealthy (nothing unseals), 1 cannot tell.
    Status(StatusArgs),
    /// Print shell completions.
    Completion {
        /// Shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Seal and unseal an example Secret with a throwaway key: no cluster, no files.
    Demo,
}

#[derive(Debug, Args)]
pub struct CertSource {
    /// Sealing certificate: a PEM file or an https URL (e.g. the controller's /v1/cert.pem).
    #[arg(long, env = "SEALED_SECRETS_CERT", value_name = "FILE|URL")]
    pub cert: Option<String>,
}

/// kubectl's connection flags and the controller's Service, as kubeseal takes them. Each flag also
/// reads `SEALED_SECRETS_<FLAG>` (kubeseal's environment convention).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster access (when no --cert is given)")]
pub struct ClusterArgs {
    /// Name of the controller's Service.
    #[arg(long, env = "SEALED_SECRETS_CONTROLLER_NAME", default_value = arcseal::cluster::DEFAULT_CONTROLLER_NAME)]
    pub controller_name: String,
    /// Namespace of the controller.
    #[arg(long, env = "SEALED_SECRETS_CONTROLLER_NAMESPACE", default_value = arcseal::cluster::DEFAULT_CONTROLLER_NAMESPACE)]
    pub controller_namespace: String,
    /// Path to the kubeconfig file (else $KUBECONFIG, else ~/.kube/config).
    #[arg(long, env = "SEALED_SECRETS_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, env = "SEALED_SECRETS_CONTEXT")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, env = "SEALED_SECRETS_CLUSTER")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, env = "SEALED_SECRETS_USER")]
    pub user: Option<String>,
    /// The address and port of the Kubernetes API server.
    #[arg(short = 's', long, env = "SEALED_SECRETS_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token for the API server.
    #[arg(long, env = "SEALED_SECRETS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Username to impersonate.
    #[arg(long = "as", env = "SEALED_SECRETS_AS", value_name = "USER")]
    pub impersonate: Option<String>,
    /// UID to impersonate.
    #[arg(long = "as-uid", env = "SEALED_SECRETS_AS_UID", value_name = "UID")]
    pub impersonate_uid: Option<String>,
    /// Group to impersonate (repeatable).
    #[arg(long = "as-group", env = "SEALED_SECRETS_AS_GROUP", value_name = "GROUP", value_delimiter = ',')]
    pub impersonate_groups: Vec<String>,
    /// Do not check the API server's certificate (insecure).
    #[arg(long, env = "SEALED_SECRETS_INSECURE_SKIP_TLS_VERIFY")]
    pub insecure_skip_tls_verify: bool,
    /// CA certificate(s) for the API server (PEM).
    #[arg(long, env = "SEALED_SECRETS_CERTIFICATE_AUTHORITY", value_name = "FILE")]
    pub certificate_authority: Option<PathBuf>,
    /// Server name to use for the API server's certificate check.
    #[arg(long, env = "SEALED_SECRETS_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Client certificate for TLS authentication (PEM file).
    #[arg(long, env = "SEALED_SECRETS_CLIENT_CERTIFICATE", value_name = "FILE")]
    pub client_certificate: Option<PathBuf>,
    /// Client key for TLS authentication (PEM file).
    #[arg(long, env = "SEALED_SECRETS_CLIENT_KEY", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
    /// Username for basic authentication.
    #[arg(long, env = "SEALED_SECRETS_USERNAME")]
    pub username: Option<String>,
    /// Password for basic authentication.
    #[arg(long, env = "SEALED_SECRETS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// How long to wait for one request (e.g. 30s, 1m; 0 = no limit).
    #[arg(long, env = "SEALED_SECRETS_REQUEST_TIMEOUT", value_parser = arcseal::cluster::parse_timeout, value_name = "DURATION")]
    pub request_timeout: Option<std::time::Duration>,
}

impl ClusterArgs {
    pub fn options(&self) -> arcseal::cluster::ClusterOptions {
        arcseal::cluster::ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            server: self.server.clone(),
            token: self.token.clone(),
            impersonate: self.impersonate.clone(),
            impersonate_groups: self.impersonate_groups.clone(),
            impersonate_uid: self.impersonate_uid.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
            certificate_authority: self.certificate_authority.clone(),
            tls_server_name: self.tls_server_name.clone(),
            request_timeout: self.request_timeout,
            client_certificate: self.client_certificate.clone(),
            client_key: self.client_key.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// `--scope`: the three scopes, listed for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScopeArg {
    /// Bound to the Secret's name and namespace.
    Strict,
    /// Bound to the namespace; any name.
    NamespaceWide,
    /// Any name, any namespace.
    ClusterWide,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Strict => Scope::Strict,
            ScopeArg::NamespaceWide => Scope::NamespaceWide,
            ScopeArg::ClusterWide => Scope::ClusterWide,
        }
    }
}

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Secret manifest(s) to seal; `-` or absent reads stdin.
    #[arg(short = 'f', long = "secret-file", env = "SEALED_SECRETS_SECRET_FILE", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Write here (atomically) instead of stdout; a .json/.yaml name implies the format.
    #[arg(
        short = 'w',
        long = "sealed-secret-file",
        env = "SEALED_SECRETS_SEALED_SECRET_FILE",
        value_name = "FILE"
    )]
    pub output: Option<PathBuf>,
    /// Output format (case-insensitive).
    #[arg(short = 'o', long = "format", env = "SEALED_SECRETS_FORMAT", value_enum, ignore_case = true)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub cert: CertSource,
    /// Seal for this cluster of the repository config (.arcseal.yaml): its pinned certificate. Without it,
    /// the cluster whose paths match -w/--merge-into's file is used.
    #[arg(long, value_name = "NAME", conflicts_with = "cert")]
    pub for_cluster: Option<String>,
    /// Seal the input once for every cluster of .arcseal.yaml, each with its own certificate, into
    /// -w's path with `{cluster}` replaced by the cluster's name (e.g. -w 'apps/{cluster}/db.yaml'), or
    /// merged into each cluster's existing file (--merge-into 'apps/{cluster}/db.yaml').
    #[arg(long, conflicts_with_all = ["cert", "for_cluster", "raw", "fetch_cert", "re_encrypt", "validate"])]
    pub all_clusters: bool,
    /// Print the controller's certificate (fetched through the API server) and exit.
    #[arg(long, env = "SEALED_SECRETS_FETCH_CERT")]
    pub fetch_cert: bool,
    /// Re-encrypt the SealedSecret on stdin with the controller's newest key (its /v1/rotate).
    #[arg(long, env = "SEALED_SECRETS_RE_ENCRYPT", conflicts_with_all = ["raw", "merge_into", "validate"])]
    pub re_encrypt: bool,
    /// Ask the controller whether the SealedSecret on stdin decrypts (its /v1/verify); exit 1 if not.
    #[arg(long, env = "SEALED_SECRETS_VALIDATE", conflicts_with_all = ["raw", "merge_into"])]
    pub validate: bool,
    /// Scope; default: the input Secret's scope annotations, else strict.
    #[arg(long, env = "SEALED_SECRETS_SCOPE", value_enum, ignore_case = true)]
    pub scope: Option<ScopeArg>,
    /// Namespace for Secrets that name none (an input naming another one is an error).
    #[arg(short = 'n', long, env = "SEALED_SECRETS_NAMESPACE")]
    pub namespace: Option<String>,
    /// Seal Secrets that have no data.
    #[arg(long, env = "SEALED_SECRETS_ALLOW_EMPTY_DATA")]
    pub allow_empty_data: bool,
    /// Seal one raw value (from --from-file or stdin) and print it bare, for encryptedData.
    #[arg(long, env = "SEALED_SECRETS_RAW")]
    pub raw: bool,
    /// The Secret's name: with --raw the name the value is bound to; otherwise the name of the Secret
    /// built from --from-file, or of an input Secret that names none.
    #[arg(long, env = "SEALED_SECRETS_NAME")]
    pub name: Option<String>,
    /// `[KEY=]FILE` (kubectl's syntax; the key defaults to the file name): with --raw the value; otherwise
    /// an item of a Secret built from files, named --name. Repeatable.
    #[arg(long, env = "SEALED_SECRETS_FROM_FILE", value_name = "[KEY=]FILE", value_delimiter = ',')]
    pub from_file: Vec<String>,
    /// Add or replace the input's items in this existing SealedSecret file (others stay byte-identical).
    #[arg(long, env = "SEALED_SECRETS_MERGE_INTO", value_name = "FILE", conflicts_with_all = ["raw", "output"])]
    pub merge_into: Option<PathBuf>,
    /// kubeseal compatibility: `--recovery-unseal` turns this into `arcseal unseal`.
    #[arg(long, env = "SEALED_SECRETS_RECOVERY_UNSEAL", requires = "recovery_private_key")]
    pub recovery_unseal: bool,
    /// kubeseal compatibility: private keys for `--recovery-unseal`.
    #[arg(long, env = "SEALED_SECRETS_RECOVERY_PRIVATE_KEY", value_delimiter = ',', value_name = "FILE")]
    pub recovery_private_key: Vec<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// SealedSecret manifest(s); `-` or absent reads stdin.
    #[arg(short = 'f', long = "sealed-secret-file", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the Secrets here (atomically, mode 0600) instead of stdout.
    #[arg(short = 'w', long = "secret-file", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format (case-insensitive).
    #[arg(short = 'o', long = "format", value_enum, ignore_case = true)]
    pub format: Option<Format>,
    /// Private key: PEM (PKCS#1 or PKCS#8) or a key Secret backup (Secret or v1 List). Repeatable.
    #[arg(
        long = "private-key",
        visible_alias = "recovery-private-key",
        value_delimiter = ',',
        required_unless_present = "key_vault_url",
        value_name = "FILE"
    )]
    pub private_keys: Vec<PathBuf>,
    #[command(flatten)]
    pub key_vault: VaultKeyArgs,
    /// kubeseal compatibility; no effect.
    #[arg(long, hide = true)]
    pub recovery_unseal: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files or directories (searched for *.yaml, *.yml, *.json); none reads stdin. Other kinds of
    /// documents are skipped.
    #[arg(value_name = "PATH")]
    pub files: Vec<PathBuf>,
    /// Also write the result as JUnit XML (one test case per SealedSecret) for CI systems.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    #[command(flatten)]
    pub cert: CertSource,
    /// Private keys (PEM or key Secret backups): also check that every item opens.
    #[arg(long = "private-key", value_delimiter = ',', value_name = "FILE")]
    pub private_keys: Vec<PathBuf>,
    /// `NAME=FILE`: a cluster's private keys (its controller's key Secret backup, or PEM): every item of the
    /// SealedSecrets under that cluster's paths in .arcseal.yaml must open with them. Repeatable; clusters
    /// without one are checked against their certificates only.
    #[arg(long = "cluster-key", value_name = "NAME=FILE", conflicts_with = "private_keys")]
    pub cluster_keys: Vec<String>,
    /// Also ask this controller's /v1/verify whether each SealedSecret decrypts (https, or http on loopback).
    #[arg(long, value_name = "URL")]
    pub controller_url: Option<String>,
    /// Also ask the cluster's controller (through the API server's service proxy, like kubeseal) whether
    /// each SealedSecret decrypts. In a repository with .arcseal.yaml, the files of a cluster that names a
    /// `context` ask that cluster's controller.
    #[arg(long, conflicts_with = "controller_url")]
    pub online: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Pass even when no SealedSecret was found (by default checking nothing fails: a mistyped path).
    #[arg(long)]
    pub allow_empty: bool,
    /// Longest total wait on the controller's rate limit (HTTP 429) in one run.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub rate_limit_wait: u64,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Repository directory or file to rotate.
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Private keys that open the current values, including the newest: PEM files or the controller's
    /// key Secret backup (Secret or v1 List). Repeatable.
    #[arg(
        long = "private-key",
        value_delimiter = ',',
        required_unless_present_any = ["controller_url", "online", "all_clusters", "key_vault_url"],
        value_name = "FILE"
    )]
    pub private_keys: Vec<PathBuf>,
    #[command(flatten)]
    pub key_vault: VaultKeyArgs,
    /// Online instead: re-seal through this controller's /v1/rotate (https, or http on loopback, e.g.
    /// after `kubectl port-forward`); rotates to its /v1/cert.pem.
    #[arg(long, value_name = "URL", conflicts_with_all = ["private_keys", "cert"])]
    pub controller_url: Option<String>,
    /// Online through the cluster instead: the controller behind the API server's service proxy
    /// (kubeconfig flags, --controller-name/--controller-namespace), as kubeseal reaches it.
    #[arg(long, conflicts_with_all = ["private_keys", "cert", "controller_url"])]
    pub online: bool,
    /// Rotate every cluster of the repository config (.arcseal.yaml) in one run: each file under PATH
    /// with its own cluster's keys (--cluster-key), to the newest certificate among them; or with
    /// --online, through each cluster's controller (its kubeconfig context from the config). Not with
    /// --key-vault-url: one vault's keys are one cluster's.
    #[arg(long, conflicts_with_all = ["private_keys", "cert", "controller_url", "key_vault_url"])]
    pub all_clusters: bool,
    /// `NAME=FILE`: a cluster's private keys (its controller's key Secret backup, or PEM), for
    /// --all-clusters. Repeatable; one per cluster that has SealedSecrets under PATH.
    #[arg(
        long = "cluster-key",
        value_name = "NAME=FILE",
        requires = "all_clusters",
        conflicts_with = "online"
    )]
    pub cluster_keys: Vec<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Certificate to rotate to; default: the newest certificate (by NotBefore) among the key backups.
    #[command(flatten)]
    pub cert: CertSource,
    /// Also give new random values to items named in the `arcseal.dev/generate` annotation.
    #[arg(long)]
    pub rotate_values: bool,
    /// Print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Create this git branch and commit the rotation on it (the pipeline opens the pull request).
    #[arg(long, value_name = "NAME")]
    pub branch: Option<String>,
    /// Write a JSON report of every item for the pipeline.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Push --branch and open its pull request (or update the one already open for it), body = the report.
    /// Token and repository from the pipeline's environment: GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL;
    /// SYSTEM_ACCESSTOKEN, SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT, BUILD_REPOSITORY_ID.
    #[arg(long, value_enum, value_name = "SERVICE", requires = "branch", conflicts_with = "dry_run")]
    pub open_pr: Option<arcseal::pr::Provider>,
    /// Branch the pull request goes into; default: the branch checked out (Azure Pipelines: BUILD_SOURCEBRANCH).
    #[arg(long, value_name = "BRANCH", requires = "open_pr")]
    pub pr_base: Option<String>,
    /// Remote to push --branch to for --open-pr (force-pushed: the branch belongs to the rotation job).
    #[arg(long, value_name = "NAME", default_value = "origin")]
    pub pr_remote: String,
    /// Key Vault DNS suffix for every vault (private clouds, AzureStackCloud), e.g. vault.azure.net.
    #[arg(long, value_name = "SUFFIX")]
    pub keyvault_dns_suffix: Option<String>,
    /// Entra ID authority for every vault (private clouds, AzureStackCloud), e.g. https://login.microsoftonline.com.
    #[arg(long, value_name = "URL")]
    pub authority_host: Option<String>,
    /// PEM bundle of extra CAs to trust for Key Vault and Entra ID (private clouds, TLS-inspecting proxies).
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: Option<PathBuf>,
    /// Connect to HOST at ADDR:PORT instead of resolving it (like curl --resolve; private endpoints without DNS).
    #[arg(long, value_name = "HOST=ADDR:PORT", hide = true)]
    pub resolve: Vec<String>,
    /// Longest total wait on the controller's rate limit (HTTP 429) in one run (--controller-url).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub rate_limit_wait: u64,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the private key (PKCS#1 PEM, mode 0600).
    #[arg(long, value_name = "FILE")]
    pub key_out: PathBuf,
    /// Where to write the self-signed certificate (PEM).
    #[arg(long, value_name = "FILE")]
    pub cert_out: PathBuf,
    /// RSA key size: 2048, 3072, 4096 or 8192.
    #[arg(long, default_value_t = arcseal_crypto::DEFAULT_KEY_BITS)]
    pub bits: usize,
    /// Certificate validity in days (sealed-secrets: 87600h = 3650 days).
    #[arg(long, default_value_t = 3650)]
    pub days: u64,
    /// Certificate common name (sealed-secrets' --my-cn; default empty).
    #[arg(long, default_value = "")]
    pub cn: String,
    /// Also write the key as the controller's key Secret manifest (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub secret_out: Option<PathBuf>,
    /// Namespace of that key Secret (the controller's).
    #[arg(long, default_value = "kube-system")]
    pub secret_namespace: String,
    /// Overwrite existing output files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CertArgs {
    #[command(flatten)]
    pub cert: CertSource,
    /// Fetch each cluster's certificate from its kube context (.arcseal.yaml) and pin it at its `cert`
    /// path (all clusters, or --for-cluster).
    #[arg(long, conflicts_with = "cert")]
    pub pin: bool,
    /// Check that each cluster's pinned certificate is the one its controller serves now; exit 1 if any
    /// differs or cannot be fetched.
    #[arg(long, conflicts_with_all = ["cert", "pin"])]
    pub check: bool,
    /// With --pin or --check: only this cluster of .arcseal.yaml.
    #[arg(long, value_name = "NAME")]
    pub for_cluster: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// The same binary invoked as `kubeseal` (a link named so): kubeseal's flags, defaults and output
/// (JSON unless `-o yaml` or a `.yaml`/`.yml` output file), so scripts and Makefiles run unchanged.
#[derive(Debug, Parser)]
#[command(
    name = "kubeseal",
    version,
    about = "kubeseal-compatible: seal Secrets into SealedSecrets (arcseal's kubeseal personality).",
    long_about = None
)]
pub struct KubesealCli {
    #[command(flatten)]
    pub seal: SealArgs,
    /// klog's verbosity (accepted for compatibility; no effect).
    #[arg(short = 'v', long = "v", hide = true, value_name = "LEVEL")]
    pub verbosity: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only SealedSecrets and events of this namespace (default: all namespaces).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = StatusFormat::Text)]
    pub output: StatusFormat,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// `status -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    /// The screen.
    Text,
    /// One JSON object, for scripts.
    Json,
}

/// Where the cluster's sealing keys are kept in Azure Key Vault (the controller's `--key-vault-url`), and who this
/// run is to Key Vault: from the environment (AZURE_FEDERATED_TOKEN_FILE for workload identity, or AZURE_TENANT_ID,
/// AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal) or the machine's managed identity.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Sealing keys in Azure Key Vault")]
pub struct VaultKeyArgs {
    /// The vault keeping the sealing keys, e.g. https://myvault.vault.azure.net/ (read instead of key files).
    #[arg(long, value_name = "URL")]
    pub key_vault_url: Option<String>,
    /// Name prefix of the cluster's key pairs in the vault (the controller's --key-vault-key-prefix).
    #[arg(long, value_name = "PREFIX", default_value = arcseal_keyvault::sealing_keys::DEFAULT_PREFIX)]
    pub key_vault_key_prefix: String,
    /// Who this run is to Key Vault, for the sealing keys and for `rotate --rotate-values`: `environment`
    /// (workload identity or a service principal, from AZURE_* variables) or `managed-identity` (the machine's
    /// managed identity through IMDS, e.g. a self-hosted pipeline agent's VM).
    #[arg(
        long,
        value_name = "KIND",
        default_value = "environment",
        value_parser = arcseal_keyvault::credential::IDENTITY_KINDS
    )]
    pub key_vault_identity: String,
    /// With `--key-vault-identity managed-identity`: the client id of the user-assigned identity (unset: the
    /// system-assigned one).
    #[arg(long, value_name = "CLIENT_ID")]
    pub key_vault_managed_identity_client_id: Option<String>,
    /// Entra ID authority host (other clouds, private clouds).
    #[arg(long, value_name = "URL", default_value = "https://login.microsoftonline.com")]
    pub key_vault_authority_host: String,
    /// PEM bundle of extra CAs to trust for the vault and Entra ID.
    #[arg(long, value_name = "FILE")]
    pub key_vault_ca_bundle: Option<PathBuf>,
    /// Connect to HOST at ADDR:PORT instead of resolving it (private endpoints without DNS).
    #[arg(long, value_name = "HOST=ADDR:PORT", hide = true)]
    pub key_vault_resolve: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Store key pairs in the vault, once: PEM files (key and its certificate) or the controller's key Secret backup
    /// (kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml). Keys already in
    /// the vault are skipped. Prints names and fingerprints only.
    Import(KeysImportArgs),
    /// Write the vault's key pairs to a key Secret backup file (mode 0600, never to a terminal), readable by
    /// `arcseal unseal --private-key` and `kubectl apply`.
    Export(KeysExportArgs),
}

#[derive(Debug, Args)]
pub struct KeysImportArgs {
    /// Key files: PEM with its CERTIFICATE block, or key Secret backups (Secret, several documents or a v1 List).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub key_vault: VaultKeyArgs,
}

#[derive(Debug, Args)]
pub struct KeysExportArgs {
    /// The backup file to write (atomically, mode 0600).
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: PathBuf,
    /// Namespace written into the key Secrets (the controller's).
    #[arg(long, default_value = "kube-system")]
    pub namespace: String,
    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub key_vault: VaultKeyArgs,
}
