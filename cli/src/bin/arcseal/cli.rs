//! Command-line surface. Flags are kubeseal's where the meaning is the same.

use std::path::PathBuf;

use arcseal::output::Format;
use arcseal_crypto::Scope;
use clap::{Args, Parser, Subcommand};

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
    Rotate(RotateArgs),
    /// Generate a sealing key pair and the controller's self-signed certificate.
    Keygen(KeygenArgs),
    /// Show a sealing certificate: fingerprint, subject, validity.
    Cert(CertArgs),
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

#[derive(Debug, Args)]
pub struct SealArgs {
    /// Secret manifest(s) to seal; `-` or absent reads stdin.
    #[arg(short = 'f', long = "secret-file", value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Write here (atomically) instead of stdout; a .json/.yaml name implies the format.
    #[arg(short = 'w', long = "sealed-secret-file", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub cert: CertSource,
    /// Scope; default: the input Secret's scope annotations, else strict.
    #[arg(long, value_parser = parse_scope)]
    pub scope: Option<Scope>,
    /// Namespace for Secrets that name none (an input naming another one is an error).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Seal Secrets that have no data.
    #[arg(long)]
    pub allow_empty_data: bool,
    /// Seal one raw value (from --from-file or stdin) and print it bare, for encryptedData.
    #[arg(long, requires = "cert")]
    pub raw: bool,
    /// With --raw: the Secret name the value is bound to (strict scope).
    #[arg(long, requires = "raw")]
    pub name: Option<String>,
    /// With --raw: the file holding the value.
    #[arg(long, requires = "raw", value_name = "FILE")]
    pub from_file: Option<PathBuf>,
    /// Add or replace the input's items in this existing SealedSecret file (others stay byte-identical).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["raw", "output"])]
    pub merge_into: Option<PathBuf>,
    /// kubeseal compatibility: `--recovery-unseal` turns this into `arcseal unseal`.
    #[arg(long, hide = true, requires = "recovery_private_key")]
    pub recovery_unseal: bool,
    /// kubeseal compatibility: private keys for `--recovery-unseal`.
    #[arg(long, hide = true, value_delimiter = ',', value_name = "FILE")]
    pub recovery_private_key: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UnsealArgs {
    /// SealedSecret manifest(s); `-` or absent reads stdin.
    #[arg(short = 'f', long = "sealed-secret-file", value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the Secrets here (atomically, mode 0600) instead of stdout.
    #[arg(short = 'w', long = "secret-file", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "format", value_enum)]
    pub format: Option<Format>,
    /// Private key: PEM (PKCS#1 or PKCS#8) or a key Secret backup (Secret or v1 List). Repeatable.
    #[arg(
        long = "private-key",
        visible_alias = "recovery-private-key",
        value_delimiter = ',',
        required = true,
        value_name = "FILE"
    )]
    pub private_keys: Vec<PathBuf>,
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
    /// Also ask this controller's /v1/verify whether each SealedSecret decrypts (https, or http on loopback).
    #[arg(long, value_name = "URL")]
    pub controller_url: Option<String>,
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
        required_unless_present = "controller_url",
        value_name = "FILE"
    )]
    pub private_keys: Vec<PathBuf>,
    /// Online instead: re-seal through this controller's /v1/rotate (https, or http on loopback, e.g.
    /// after `kubectl port-forward`); rotates to its /v1/cert.pem.
    #[arg(long, value_name = "URL", conflicts_with_all = ["private_keys", "cert"])]
    pub controller_url: Option<String>,
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
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.parse().map_err(|e: arcseal_crypto::ScopeParseError| e.to_string())
}
