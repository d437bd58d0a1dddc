//! `arcseal`: seal, unseal, validate, keygen, cert, completion, demo.
//!
//! Every failure prints one `error:` line naming the input and the fix, exits 1, and writes nothing
//! (outputs are written atomically, once everything has succeeded). Usage errors exit 2.

mod cli;
mod clusters;

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arcseal::controller::{Controller, Verdict};
use arcseal::input::{self, Source};
use arcseal::keys;
use arcseal::keyvault;
use arcseal::manifest::SealedSecret;
use arcseal::output::{self, Access, Format};
use arcseal::seal::{self, SealOptions};
use arcseal::validate::{self, Checks, Severity};
use arcseal::{Error, Location};
use arcseal_crypto::{Certificate, CertificateParams, KeyRing, PrivateKey, Scope};
use clap::{CommandFactory, Parser};
use zeroize::Zeroizing;

use crate::cli::{
    CertArgs, Cli, ClusterArgs, Command, KeygenArgs, KeysCommand, KubesealCli, RotateArgs, SealArgs,
    StatusArgs, StatusFormat, UnsealArgs, ValidateArgs, VaultKeyArgs,
};

/// Exit status after a closed stdout (`arcseal cert | head -1`): what a shell reports for SIGPIPE.
const BROKEN_PIPE_EXIT: u8 = 141;

fn main() -> ExitCode {
    let result = if invoked_as_kubeseal() {
        let cli = KubesealCli::parse();
        seal(cli.seal, Personality::Kubeseal)
    } else {
        run(Cli::parse())
    };
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_EXIT),
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Whether the program's file name (a symlink or hard link to this binary) is `kubeseal`.
fn invoked_as_kubeseal() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_stem().map(|s| s.to_os_string()))
        .is_some_and(|s| s == "kubeseal")
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each cause once: library errors often repeat their source's
/// message in their own.
fn error_message(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Writes to stdout; a closed pipe becomes an error `main` ends quietly on (never a panic).
fn out(text: &str) -> anyhow::Result<()> {
    output::emit(None, text)?;
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Seal(args) => seal(args, Personality::Arcseal),
        Command::Unseal(args) => unseal(args),
        Command::Validate(args) => validate(args),
        Command::Rotate(args) => rotate(*args),
        Command::Keygen(args) => keygen(args),
        Command::Cert(args) => cert(args),
        Command::Keys(command) => keys_command(command),
        Command::Completion { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "arcseal", &mut text);
            out(&String::from_utf8_lossy(&text))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => demo(),
        Command::Status(args) => status(&args),
    }
}

/// Which command line is speaking: they differ only in defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Personality {
    /// `arcseal seal`: YAML unless told otherwise.
    Arcseal,
    /// `kubeseal`: JSON unless `-o yaml` or a `.yaml`/`.yml` output file.
    Kubeseal,
}

impl Personality {
    fn format(self, explicit: Option<Format>, output: Option<&Path>) -> Format {
        match self {
            Personality::Arcseal => Format::choose(explicit, output),
            Personality::Kubeseal => explicit
                .or_else(|| output.and_then(Format::from_path).filter(|f| *f == Format::Yaml))
                .unwrap_or(Format::Json),
        }
    }
}

/// The controller behind the API server's service proxy, as `cluster` names it.
fn cluster_controller(cluster: &ClusterArgs) -> anyhow::Result<Controller> {
    let proxy = arcseal::cluster::ServiceProxy::new(
        &cluster.options(),
        &cluster.controller_namespace,
        &cluster.controller_name,
    )?;
    Ok(Controller::through_proxy(proxy))
}

/// `arcseal status`: the screen or JSON, and the verdict as the exit code.
fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let options = arcseal::status::StatusOptions {
        namespace: args.cluster.controller_namespace.clone(),
        name: args.cluster.controller_name.clone(),
        sealed_secrets_namespace: args.namespace.clone(),
    };
    let status = arcseal::status::read(&args.cluster.options(), &options)?;
    match args.output {
        StatusFormat::Text => out(&status.render())?,
        StatusFormat::Json => out(&(serde_json::to_string_pretty(&status)? + "\n"))?,
    }
    Ok(ExitCode::from(status.health.exit_code()))
}

/// The controller `validate`/`rotate` talk to online: `--controller-url`, or with `--online` the
/// cluster's, through the API server's service proxy.
fn online_controller(
    url: Option<&str>,
    online: bool,
    cluster: &ClusterArgs,
) -> anyhow::Result<Option<Controller>> {
    Ok(match (url, online) {
        (Some(url), _) => Some(Controller::new(url)?),
        (None, true) => Some(cluster_controller(cluster)?),
        (None, false) => None,
    })
}

/// `--cert` (file or https URL) when given, else the controller's certificate fetched through the
/// API server, as kubeseal does.
fn sealing_certificate(spec: Option<&str>, cluster: &ClusterArgs) -> anyhow::Result<Certificate> {
    let (cert, at) = match spec {
        Some(spec) => (keys::certificate(spec)?, spec.to_owned()),
        None => {
            let controller = cluster_controller(cluster).context(
                "no --cert given, so the certificate is fetched from the cluster; pass --cert FILE|https-URL \
                 (or SEALED_SECRETS_CERT) to seal offline",
            )?;
            let cert = controller.certificate()?;
            (cert, format!("service {}/{}", cluster.controller_namespace, cluster.controller_name))
        }
    };
    if cert.is_expired_at(SystemTime::now()) {
        return Err(Error::ExpiredCertificate {
            at: Box::new(Location::source(at)),
            not_after: rfc3339(cert.not_after()),
        }
        .into());
    }
    Ok(cert)
}

/// Reads `-f` or stdin, with kubeseal's hint when stdin is a terminal.
fn read_input(path: Option<&Path>) -> anyhow::Result<Source> {
    if path.is_none_or(|p| p.as_os_str() == "-") && std::io::stdin().is_terminal() {
        eprintln!("(tty detected: expecting json/yaml k8s resource in stdin)");
    }
    Ok(Source::read(path)?)
}

/// `[KEY=]FILE` (kubectl's `--from-file`): the key and the path. A path that exists as given wins,
/// so a file name holding `=` still works.
fn from_file_spec(spec: &str) -> (String, std::path::PathBuf) {
    if !Path::new(spec).exists()
        && let Some((key, path)) = spec.split_once('=')
        && !key.is_empty()
    {
        return (key.to_owned(), path.into());
    }
    let path = std::path::PathBuf::from(spec);
    let key = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| spec.to_owned());
    (key, path)
}

fn seal(args: SealArgs, personality: Personality) -> anyhow::Result<ExitCode> {
    if args.recovery_unseal {
        return unseal(UnsealArgs {
            input: args.secret_file,
            output: args.output,
            format: args.format,
            private_keys: args.recovery_private_key,
            key_vault: VaultKeyArgs::default(),
            recovery_unseal: true,
        });
    }
    if args.fetch_cert {
        return fetch_cert(&args);
    }
    if args.re_encrypt || args.validate {
        return online(&args, personality);
    }
    if args.all_clusters {
        return clusters::seal_all(&args, personality);
    }
    let cert = clusters::seal_certificate(&args, personality)?;
    if args.raw {
        let scope = args.scope.map(Scope::from);
        let source = match args.from_file.as_slice() {
            [] => read_input(None)?,
            [one] => Source::read(Some(&from_file_spec(one).1))?,
            _ => bail!("--raw seals one value: give one --from-file"),
        };
        let value = seal::seal_raw(
            &cert,
            scope.unwrap_or_default(),
            args.namespace.as_deref(),
            args.name.as_deref(),
            &source.bytes,
        )?;
        // Bare, without a newline, as kubeseal --raw prints it.
        out(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let (docs, options) = seal_inputs(&args)?;
    if let Some(target) = &args.merge_into {
        let text = merged(target, &docs, &cert, &options, args.format, personality)?;
        output::write_atomic(target, text.as_bytes(), Access::Public)?;
        return Ok(ExitCode::SUCCESS);
    }
    let sealed = seal::seal_documents(&docs, &cert, &options)?;
    let format = personality.format(args.format, args.output.as_deref());
    output::emit(args.output.as_deref(), &output::render(&sealed, format)?)?;
    Ok(ExitCode::SUCCESS)
}

/// The Secrets to seal (`-f`, stdin, or `--from-file`, named `--name`) and how to seal them.
fn seal_inputs(args: &SealArgs) -> anyhow::Result<(Vec<input::Document>, SealOptions)> {
    let options = SealOptions {
        scope: args.scope.map(Scope::from),
        namespace: args.namespace.clone(),
        fallback_namespace: arcseal::cluster::namespace(&args.cluster.options(), args.namespace.as_deref())
            .map_err(|e| format!("the kubeconfig's namespace cannot be read ({e})")),
        allow_empty_data: args.allow_empty_data,
    };
    let mut docs = if args.from_file.is_empty() {
        let source = read_input(args.secret_file.as_deref())?;
        let docs = input::documents(&source)?;
        if docs.is_empty() {
            bail!("{}: no Secret to seal (the input is empty)", source.name);
        }
        docs
    } else {
        vec![secret_from_files(args)?]
    };
    if let Some(name) = &args.name {
        for doc in &mut docs {
            name_document(doc, name)?;
        }
    }
    Ok((docs, options))
}

/// `--name` without `--raw`: names an input Secret that names none; a different name is an error.
fn name_document(doc: &mut input::Document, name: &str) -> anyhow::Result<()> {
    let Some(object) = doc.value.0.as_object_mut() else { return Ok(()) };
    let meta = object.entry("metadata").or_insert_with(|| serde_json::json!({}));
    let Some(meta) = meta.as_object_mut() else { return Ok(()) };
    match meta.get("name").and_then(serde_json::Value::as_str) {
        Some(given) if !given.is_empty() && given != name => {
            bail!("{}: metadata.name {given:?} differs from --name {name:?}; drop one of them", doc.at)
        }
        _ => {
            meta.insert("name".into(), name.into());
            Ok(())
        }
    }
}

/// A Secret built from `--from-file [KEY=]FILE` items, named `--name` (as `kubectl create secret
/// generic NAME --from-file` would make it).
fn secret_from_files(args: &SealArgs) -> anyhow::Result<input::Document> {
    let name = args.name.as_deref().context("--from-file without --raw builds a Secret: give it a --name")?;
    let mut data = serde_json::Map::new();
    for spec in &args.from_file {
        let (key, path) = from_file_spec(spec);
        let source = Source::read(Some(&path))?;
        if data.insert(key.clone(), arcseal_crypto::encode_base64(&source.bytes).into()).is_some() {
            bail!("--from-file: item {key:?} is given twice");
        }
    }
    let mut metadata = serde_json::json!({ "name": name });
    if let Some(ns) = &args.namespace {
        metadata["namespace"] = ns.as_str().into();
    }
    let value = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "data": data,
    });
    Ok(input::Document { at: Location::source("--from-file"), value: input::Wiped(value) })
}

/// `--fetch-cert`: the PEM of `--cert` or of the controller, on stdout or in `-w`.
fn fetch_cert(args: &SealArgs) -> anyhow::Result<ExitCode> {
    let pem = match args.cert.cert.as_deref() {
        Some(spec) => keys::certificate(spec)?.to_pem(),
        None => String::from_utf8_lossy(&live_certificate(&args.cluster)?.0).into_owned(),
    };
    output::emit(args.output.as_deref(), &pem)?;
    Ok(ExitCode::SUCCESS)
}

/// The certificate the cluster's controller serves (through the API server), as it sent it and parsed:
/// checked before anyone prints or pins it.
fn live_certificate(cluster: &ClusterArgs) -> anyhow::Result<(Vec<u8>, Certificate)> {
    let body = cluster_controller(cluster)?.certificate_pem()?;
    let cert = Certificate::from_pem(&body).map_err(|e| Error::Cert {
        at: Box::new(Location::source(format!(
            "service {}/{} /v1/cert.pem",
            cluster.controller_namespace, cluster.controller_name
        ))),
        source: e,
    })?;
    Ok((body, cert))
}

/// `--re-encrypt` (the controller's /v1/rotate) and `--validate` (its /v1/verify) on the SealedSecrets
/// of `-f` or stdin.
fn online(args: &SealArgs, personality: Personality) -> anyhow::Result<ExitCode> {
    let controller = match &args.cert.cert {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            let base = url.trim_end_matches("/v1/cert.pem");
            Controller::new(base)?
        }
        _ => cluster_controller(&args.cluster)?,
    };
    let source = read_input(args.secret_file.as_deref())?;
    let docs = input::documents(&source)?;
    if docs.is_empty() {
        bail!("{}: no SealedSecret given (the input is empty)", source.name);
    }
    let mut results = Vec::new();
    for doc in &docs {
        let sealed = SealedSecret::from_value(&doc.value.0, &doc.at)?;
        let at = sealed.location(&doc.at);
        if args.validate {
            match controller.verify(&doc.value.0, &at)? {
                Verdict::Opens => {}
                Verdict::DoesNotOpen => bail!(
                    "{at}: unable to decrypt sealed secret: the controller's keys do not open it (sealed with \
                     another key, or for another name, namespace or scope)"
                ),
                Verdict::Invalid(why) => bail!("{at}: the controller refused it: {why}"),
            }
        } else {
            let mut rotated = controller.rotate(&doc.value.0, &at, None)?;
            rotated.status = None;
            results.push(rotated);
        }
    }
    if args.re_encrypt {
        let format = personality.format(args.format, args.output.as_deref());
        output::emit(args.output.as_deref(), &output::render(&results, format)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The SealedSecret file `target` with the items of `docs` sealed with `cert` added or replaced, rendered in the
/// file's own format (or `format`); nothing is written.
fn merged(
    target: &Path,
    docs: &[input::Document],
    cert: &Certificate,
    options: &SealOptions,
    format: Option<Format>,
    personality: Personality,
) -> anyhow::Result<Zeroizing<String>> {
    let source = Source::read(Some(target))?;
    let existing_docs = input::documents(&source)?;
    let [existing_doc] = existing_docs.as_slice() else {
        bail!("{}: --merge-into needs a file holding exactly one SealedSecret", source.name);
    };
    let mut existing = SealedSecret::from_value(&existing_doc.value.0, &existing_doc.at)?;
    for doc in docs {
        seal::merge_into(&mut existing, &existing_doc.at, doc, cert, options)?;
    }
    // The file keeps its own format: a JSON file stays JSON, a YAML file YAML.
    let text = std::str::from_utf8(&source.bytes).unwrap_or_default().trim_start();
    let own = if text.starts_with('{') { Format::Json } else { Format::Yaml };
    let format = format.unwrap_or(match personality {
        Personality::Arcseal => Format::choose(None, Some(target)),
        Personality::Kubeseal => own,
    });
    Ok(output::render(&[existing], format)?)
}

fn key_ring(paths: &[std::path::PathBuf]) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::default();
    for path in paths {
        keys::private_keys_from_file(path)?.into_iter().for_each(|k| ring.insert(k));
    }
    Ok(ring)
}

/// `--key-vault-identity` with `--key-vault-managed-identity-client-id`.
fn key_vault_identity(args: &VaultKeyArgs) -> anyhow::Result<arcseal_keyvault::credential::Identity> {
    Ok(arcseal_keyvault::credential::Identity::from_flags(
        &args.key_vault_identity,
        args.key_vault_managed_identity_client_id.as_deref(),
    )?)
}

/// `--key-vault-url` and its companions, or `None` when no vault is named.
fn vault_access(args: &VaultKeyArgs) -> anyhow::Result<Option<arcseal::vault_keys::VaultAccess>> {
    let Some(url) = args.key_vault_url.clone().filter(|u| !u.is_empty()) else { return Ok(None) };
    let resolve = parse_resolve(&args.key_vault_resolve)?;
    Ok(Some(arcseal::vault_keys::VaultAccess {
        url,
        prefix: args.key_vault_key_prefix.clone(),
        identity: key_vault_identity(args)?,
        authority_host: args.key_vault_authority_host.clone(),
        ca_bundle: args.key_vault_ca_bundle.clone(),
        resolve,
    }))
}

/// The key pairs kept in the vault `args` names (none when it names none).
fn vault_key_pairs(args: &VaultKeyArgs) -> anyhow::Result<Vec<(PrivateKey, Certificate)>> {
    let Some(access) = vault_access(args)? else { return Ok(Vec::new()) };
    let pairs = arcseal::vault_keys::load(&access)?;
    if pairs.is_empty() {
        bail!(
            "Key Vault {}: no sealing key pair under the prefix {:?} (check --key-vault-key-prefix)",
            access.url,
            access.prefix
        );
    }
    eprintln!("read {} sealing key pair(s) from Key Vault {}", pairs.len(), access.url);
    Ok(pairs)
}

fn keys_command(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Import(args) => {
            let access = vault_access(&args.key_vault)?.context("keys import needs --key-vault-url")?;
            let mut pairs = Vec::new();
            for path in &args.files {
                for (key, cert) in keys::key_pairs_from_file(path)? {
                    let cert = cert.with_context(|| {
                        format!(
                            "{}: key {} has no certificate with it; the controller seals with the certificate, so \
                             import the key Secret backup (it carries tls.crt) or a PEM file holding both",
                            path.display(),
                            key.fingerprint()
                        )
                    })?;
                    pairs.push((key, cert));
                }
            }
            for imported in arcseal::vault_keys::import(&access, &pairs)? {
                let what = if imported.written { "imported" } else { "already in the vault" };
                eprintln!("{what}: {} (sha256:{})", imported.name, imported.fingerprint);
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Export(args) => {
            if args.out.as_os_str() == "-" {
                bail!("--out -: keys export writes to a file only (mode 0600), never to a terminal or pipe");
            }
            if args.out.exists() && !args.force {
                bail!(
                    "{}: already exists; keys export never overwrites a key file (pass --force)",
                    args.out.display()
                );
            }
            vault_access(&args.key_vault)?.context("keys export needs --key-vault-url")?;
            let pairs = vault_key_pairs(&args.key_vault)?;
            let secrets = pairs
                .iter()
                .map(|(key, cert)| keys::key_secret(key, cert, &args.namespace))
                .collect::<Result<Vec<_>, _>>()?;
            let text = Zeroizing::new(output::render(&secrets, Format::choose(None, Some(&args.out)))?);
            output::write_atomic(&args.out, text.as_bytes(), Access::Private)?;
            eprintln!("wrote {} key pair(s) to {} (mode 0600)", pairs.len(), args.out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn unseal(args: UnsealArgs) -> anyhow::Result<ExitCode> {
    let mut ring = key_ring(&args.private_keys)?;
    vault_key_pairs(&args.key_vault)?.into_iter().for_each(|(key, _)| ring.insert(key));
    let source = read_input(args.input.as_deref())?;
    let docs = input::documents(&source)?;
    if docs.is_empty() {
        bail!("{}: no SealedSecret to unseal (the input is empty)", source.name);
    }
    let secrets = docs
        .iter()
        .map(|doc| {
            let sealed = SealedSecret::from_value(&doc.value.0, &doc.at)?;
            arcseal::unseal::unseal(&sealed, &ring, &doc.at)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let format = Format::choose(args.format, args.output.as_deref());
    let text = output::render(&secrets, format)?;
    match &args.output {
        // Plaintext on disk: readable by the owner only, always.
        Some(path) => output::write_atomic(path, text.as_bytes(), Access::Private)?,
        None => out(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn validate(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    let cert = args.cert.cert.as_deref().map(keys::certificate).transpose()?;
    let ring = if args.private_keys.is_empty() { None } else { Some(key_ring(&args.private_keys)?) };
    let mut problems = Vec::new();
    if let (Some(c), Some(spec)) = (&cert, &args.cert.cert) {
        problems.extend(validate::check_certificate(c, &Location::source(spec), now));
    }
    let per_cluster = clusters::ClusterVerifiers::build(&args)?;
    // In a repository with a config, --online asks each file's own cluster (`per_cluster`); else one controller.
    let routed_online = per_cluster.as_ref().is_some_and(clusters::ClusterVerifiers::online);
    let controller =
        online_controller(args.controller_url.as_deref(), args.online && !routed_online, &args.cluster)?
            .map(|c| c.rate_limit_wait(Duration::from_secs(args.rate_limit_wait)));
    let checks = Checks {
        cert: cert.as_ref(),
        keys: ring.as_ref(),
        controller: controller.as_ref(),
        ..Checks::default()
    };
    // With no --cert, the repository config above each PATH routes its files to their own cluster's certificate.
    let mut repos = clusters::Repos::default();
    let mut cases = Vec::new();
    let mut files = 0;
    if args.files.is_empty() {
        let source = read_input(None)?;
        files = 1;
        match input::documents(&source) {
            Ok(docs) => {
                for doc in &docs {
                    problems.extend(validate::plaintext_secret_problems(&doc.value.0, &doc.at));
                }
                for doc in docs.iter().filter(|d| is_sealed_secret(&d.value.0)) {
                    let found = validate::check_document(doc, &checks);
                    cases.push((doc.at.to_string(), found.clone()));
                    problems.extend(found);
                }
            }
            Err(e) => problems.push(validate::Problem::from_error(&source.location(), &e)),
        }
    } else {
        for root in &args.files {
            let repo = if cert.is_none() { repos.for_root(root, &mut problems)? } else { None };
            for path in arcseal::repo::manifest_files(root)? {
                files += 1;
                let routed = repo.and_then(|r| r.cert_for(&path));
                let foreign = repo.map(|r| r.others(&path)).unwrap_or_default();
                let own_keys = per_cluster.as_ref().and_then(|v| v.keys_for(&path));
                let own_controller = match per_cluster.as_ref().filter(|_| routed_online) {
                    Some(v) => v.controller_for(&path, &mut problems),
                    None => checks.controller,
                };
                let checks = Checks {
                    cert: routed.or(checks.cert),
                    keys: own_keys.or(checks.keys),
                    controller: own_controller,
                    foreign: &foreign,
                };
                let before = cases.len();
                validate_file(&path, &checks, &mut problems, &mut cases);
                if let Some(repo) = repo.filter(|_| routed.is_none() && cases.len() > before) {
                    problems.push(repo.unrouted(&path));
                }
            }
        }
    }
    if cases.is_empty() && !args.allow_empty {
        problems.push(validate::Problem {
            at: Location::source(if args.files.is_empty() {
                "<stdin>".to_owned()
            } else {
                args.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", ")
            }),
            severity: Severity::Error,
            message: format!(
                "no SealedSecret found in {files} manifest file(s): nothing was checked (a mistyped path?); \
                 pass --allow-empty if that is expected"
            ),
        });
    }
    let mut report = String::new();
    for p in &problems {
        report.push_str(&format!("{p}\n"));
    }
    out(&report)?;
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    eprintln!(
        "{} SealedSecret(s) checked: {errors} error(s), {} warning(s)",
        cases.len(),
        problems.len() - errors
    );
    if let Some(path) = &args.junit {
        output::write_atomic(path, validate::junit_xml(&cases).as_bytes(), Access::Public)?;
    }
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn is_sealed_secret(value: &serde_json::Value) -> bool {
    value.get("kind").and_then(|k| k.as_str()) == Some(arcseal::manifest::KIND)
}

/// Checks every SealedSecret of one repository file, pointing each problem at its item's line, and
/// flags every plaintext Secret in it.
fn validate_file(
    path: &Path,
    checks: &Checks<'_>,
    problems: &mut Vec<validate::Problem>,
    cases: &mut Vec<(String, Vec<validate::Problem>)>,
) {
    let file = match arcseal::repo::ManifestFile::read(path) {
        Ok(f) => f,
        Err(e) => {
            return problems
                .push(validate::Problem::from_error(&Location::source(path.display().to_string()), &e));
        }
    };
    for d in 0..file.chunks.len() {
        let at = file.location(d);
        let chunk = file.chunks[d];
        let value = match file.parse(d) {
            Ok(v) => v,
            // A Secret or SealedSecret that cannot be read is a failure; other documents are skipped.
            Err(e) if file.text()[chunk.start..chunk.end].contains("Secret") => {
                let p = validate::Problem::from_error(&at, &e);
                cases.push((at.to_string(), vec![p.clone()]));
                problems.push(p);
                continue;
            }
            Err(_) => continue,
        };
        problems.extend(validate::plaintext_secret_problems(&value.0, &at));
        if !is_sealed_secret(&value.0) {
            continue;
        }
        let doc = input::Document { at: at.clone(), value };
        let mut found = validate::check_document(&doc, checks);
        for p in &mut found {
            if let Some(line) =
                p.at.item.as_deref().and_then(|item| file.line_of(d, Some("encryptedData"), item))
            {
                p.at.source = format!("{}:{line}", file.path.display());
            }
        }
        cases.push((at.to_string(), found.clone()));
        problems.extend(found);
    }
}

/// The keys of key backups (PEM or the controller's key Secrets) and the certificates they carry.
fn key_backups(paths: &[std::path::PathBuf]) -> anyhow::Result<(KeyRing, Vec<Certificate>)> {
    let mut ring = KeyRing::default();
    let mut certs = Vec::new();
    for path in paths {
        for (key, cert) in keys::key_pairs_from_file(path)? {
            ring.insert(key);
            certs.extend(cert);
        }
    }
    Ok((ring, certs))
}

/// The certificate to rotate to when none is given: the newest (by NotBefore) of the key backups.
fn newest_certificate(certs: Vec<Certificate>) -> anyhow::Result<Certificate> {
    certs
        .into_iter()
        .max_by_key(|c| c.not_before())
        .context("no certificate to rotate to: pass --cert, or key Secret backups that carry tls.crt")
}

/// The rotation target, unless it has expired.
fn not_expired(target: Certificate) -> anyhow::Result<Certificate> {
    if target.is_expired_at(SystemTime::now()) {
        bail!(
            "the newest certificate (sha256:{}) has expired; the controller renews keys, fetch its current one",
            target.fingerprint()
        );
    }
    Ok(target)
}

/// A progress bar on a terminal's stderr; nothing otherwise.
fn progress_bar() -> impl Fn(usize, usize) + Sync {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |done: usize, total: usize| {
        if terminal && (done == total || done.is_multiple_of(16)) {
            let width = 30 * done / total.max(1);
            eprint!("\rrotate [{}{}] {done}/{total} items", "#".repeat(width), " ".repeat(30 - width));
            if done == total {
                eprintln!();
            }
        }
    }
}

fn rotate(args: RotateArgs) -> anyhow::Result<ExitCode> {
    // Everything `--branch` needs is checked before anything is read from a controller or written.
    if let Some(branch) = args.branch.as_deref().filter(|_| !args.dry_run) {
        git_preflight(&args.path, branch)?;
    }
    // So is everything `--open-pr` needs (token, repository, base branch, remote).
    let pr_target = match (args.open_pr.filter(|_| !args.dry_run), args.branch.as_deref()) {
        (Some(provider), Some(branch)) => Some(arcseal::pr::Target::from_env(
            provider,
            &git_dir(&args.path),
            branch,
            args.pr_base.as_deref(),
            &args.pr_remote,
            &|name| std::env::var(name).ok(),
        )?),
        _ => None,
    };
    let (mut plan, files) = if args.all_clusters {
        clusters::plan_all(&args, &progress_bar())?
    } else {
        single_cluster_plan(&args)?
    };
    let changed = plan.changed().count();
    // Key Vault backed secrets marked as generated (SecretProviderClass objects).
    let manifests = if args.rotate_values {
        files.iter().map(|p| arcseal::repo::ManifestFile::read(p)).collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let targets = keyvault::find(&manifests)?;
    let settings = keyvault_settings(&args)?;
    if changed == 0 && targets.is_empty() {
        write_rotate_report(&args, &plan, &[])?;
        eprintln!("nothing to rotate: all {} item(s) are sealed with {}", plan.items.len(), plan.target);
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run {
        let rotations = keyvault::dry_run(&targets, &settings)?;
        write_rotate_report(&args, &plan, &rotations)?;
        out(&rotate_message(&plan, &rotations))?;
        eprintln!("dry run: nothing written (no file, no Key Vault version)");
        return Ok(ExitCode::SUCCESS);
    }
    let mut touched: Vec<std::path::PathBuf> = plan.changes.iter().map(|(p, _)| p.clone()).collect();
    touched.extend(targets.iter().filter(|t| t.pinned.is_some()).map(|t| t.file.clone()));
    touched.sort();
    touched.dedup();
    // Unpinned Key Vault objects alone change no file: no branch to make then.
    let repo = match &args.branch {
        Some(branch) if !touched.is_empty() => Some(git_prepare(&args.path, branch, &touched)?),
        _ => None,
    };
    let result = (|| -> anyhow::Result<Vec<keyvault::Rotation>> {
        // Every Key Vault write first: a failure leaves every repository file as it was.
        let rotations = if targets.is_empty() {
            Vec::new()
        } else {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime for Key Vault")?;
            runtime.block_on(keyvault::write(&targets, &settings))?
        };
        keyvault::edit_pins(&mut plan.changes, &manifests, &targets, &rotations)?;
        arcseal::rotate::apply(&plan)?;
        if let Some(repo) = &repo {
            git_commit(&repo.root, &plan, &rotate_message(&plan, &rotations))?;
        }
        Ok(rotations)
    })();
    let rotations = match (result, &repo) {
        (Ok(r), _) => r,
        (Err(e), Some(repo)) => {
            let undo = git_undo(repo, &touched);
            return Err(match undo {
                Ok(()) => e.context(
                    "rotate --branch undone: the files, the index and the branches are as they were",
                ),
                Err(u) => e.context(format!("and undoing the branch failed too ({u:#}); check `git status`")),
            });
        }
        (Err(e), None) => return Err(e),
    };
    write_rotate_report(&args, &plan, &rotations)?;
    if let (Some(target), Some(_), Some(branch)) = (&pr_target, &repo, &args.branch) {
        let key_vault: Vec<String> = rotations.iter().map(|r| r.describe()).collect();
        let published =
            target.publish(branch, &arcseal::pr::rotation_pull_request(&plan, &key_vault)).with_context(
                || format!("the rotation is committed on branch {branch}; rerun to open its pull request"),
            )?;
        eprintln!("{published}");
    }
    match (repo, &args.branch) {
        (Some(_), Some(branch)) => {
            eprintln!("committed on branch {branch}");
        }
        (None, Some(_)) => {
            eprintln!("no repository file changed (unpinned Key Vault objects only): no branch made")
        }
        _ => {}
    }
    eprintln!("rotated {changed} item(s) in {} file(s) to {}", plan.changes.len(), plan.target);
    for r in &rotations {
        eprintln!("{}", r.describe().trim_start_matches("- "));
    }
    Ok(ExitCode::SUCCESS)
}

/// The plan of a rotation to one certificate: the key backups', `--cert`'s, or the controller's.
fn single_cluster_plan(
    args: &RotateArgs,
) -> anyhow::Result<(arcseal::rotate::Plan, Vec<std::path::PathBuf>)> {
    let (mut ring, mut certs) = key_backups(&args.private_keys)?;
    for (key, cert) in vault_key_pairs(&args.key_vault)? {
        ring.insert(key);
        certs.push(cert);
    }
    let controller = online_controller(args.controller_url.as_deref(), args.online, &args.cluster)?
        .map(|c| c.rate_limit_wait(Duration::from_secs(args.rate_limit_wait)));
    let target = match (args.cert.cert.as_deref(), &controller) {
        (_, Some(controller)) => controller.certificate()?,
        (Some(spec), None) => keys::certificate(spec)?,
        (None, None) => newest_certificate(certs)?,
    };
    let target = not_expired(target)?;
    let files = arcseal::repo::manifest_files(&args.path)?;
    let options =
        arcseal::rotate::RotateOptions { target, keys: ring, rotate_values: args.rotate_values, controller };
    let plan = arcseal::rotate::plan(&files, &options, &progress_bar())?;
    Ok((plan, files))
}

fn keyvault_settings(args: &RotateArgs) -> anyhow::Result<keyvault::Settings> {
    let overrides = arcseal_keyvault::cloud::Overrides {
        authority_host: args.authority_host.clone(),
        keyvault_dns_suffix: args.keyvault_dns_suffix.clone(),
    };
    overrides.validate()?;
    let resolve = parse_resolve(&args.resolve)?;
    Ok(keyvault::Settings {
        http: keyvault::http_client(args.ca_bundle.as_deref(), &resolve)?,
        overrides,
        identity: key_vault_identity(&args.key_vault)?,
    })
}

/// `--resolve HOST=ADDR:PORT` pairs.
fn parse_resolve(specs: &[String]) -> anyhow::Result<Vec<(String, std::net::SocketAddr)>> {
    specs
        .iter()
        .map(|r| {
            let (host, addr) = r.split_once('=').context("--resolve takes HOST=ADDR:PORT")?;
            Ok((host.to_owned(), addr.parse().with_context(|| format!("--resolve {r:?}: not ADDR:PORT"))?))
        })
        .collect()
}

/// The commit message: the re-sealed items, then the Key Vault versions written.
fn rotate_message(plan: &arcseal::rotate::Plan, rotations: &[keyvault::Rotation]) -> String {
    let mut msg = if plan.changed().count() == 0 {
        format!("arcseal rotate: new Key Vault versions for {} secret(s)\n\n", rotations.len())
    } else {
        plan.commit_message()
    };
    if !rotations.is_empty() {
        if plan.changed().count() != 0 {
            msg.push_str("\nKey Vault:\n");
        }
        for r in rotations {
            msg.push_str(&r.describe());
            msg.push('\n');
        }
    }
    msg
}

fn write_rotate_report(
    args: &RotateArgs,
    plan: &arcseal::rotate::Plan,
    rotations: &[keyvault::Rotation],
) -> anyhow::Result<()> {
    let Some(path) = &args.report else { return Ok(()) };
    let changed = plan.changed().count();
    let report = serde_json::json!({
        "target": plan.target,
        "dryRun": args.dry_run,
        "changedFiles": plan.changes.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>(),
        "rotated": changed,
        "current": plan.items.len() - changed,
        "items": plan.items,
        "keyVault": rotations,
    });
    output::write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes(), Access::Public)?;
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out =
        std::process::Command::new("git").arg("-C").arg(dir).args(args).output().context("running git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.first().unwrap_or(&""), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks, before anything is written, what committing on a new branch needs: a git work tree, a
/// committer identity (CI runners often have none), and a valid branch name that does not exist yet.
fn git_preflight(path: &Path, branch: &str) -> anyhow::Result<()> {
    let dir = git_dir(path);
    git(&dir, &["rev-parse", "--show-toplevel"]).context("--branch needs a git work tree")?;
    for ident in ["GIT_AUTHOR_IDENT", "GIT_COMMITTER_IDENT"] {
        if git(&dir, &["var", ident]).is_err() {
            bail!(
                "--branch: git has no identity to commit with; set one first (git config user.name \"...\" and \
                 git config user.email \"...\", or GIT_AUTHOR_NAME/GIT_AUTHOR_EMAIL/GIT_COMMITTER_NAME/\
                 GIT_COMMITTER_EMAIL); nothing was changed"
            );
        }
    }
    if git(&dir, &["check-ref-format", "--branch", branch]).is_err() {
        bail!("--branch {branch:?} is not a valid git branch name; nothing was changed");
    }
    if git(&dir, &["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}")]).is_ok() {
        bail!("--branch {branch:?} already exists; pick a new name or delete it; nothing was changed");
    }
    Ok(())
}

fn git_dir(path: &Path) -> std::path::PathBuf {
    if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
    }
}

/// The branch made for a rotation, and how to go back.
struct GitBranch {
    root: std::path::PathBuf,
    /// Branch (or commit, when detached) checked out before.
    previous: String,
    branch: String,
}

/// Checks the files to change have no uncommitted edits (they would be swept into the commit), then
/// creates the branch.
fn git_prepare(path: &Path, branch: &str, touched: &[std::path::PathBuf]) -> anyhow::Result<GitBranch> {
    let dir = git_dir(path);
    let root = std::path::PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    let mut status = vec!["status", "--porcelain", "--"];
    let files: Vec<String> = touched.iter().map(|p| p.display().to_string()).collect();
    status.extend(files.iter().map(String::as_str));
    let dirty = git(&dir, &status)?;
    if !dirty.is_empty() {
        bail!(
            "uncommitted changes in files rotate would change; commit or stash them first (nothing was changed):\n{dirty}"
        );
    }
    let previous = match git(&dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]) {
        Ok(name) => name,
        Err(_) => git(&dir, &["rev-parse", "HEAD"])?,
    };
    git(&dir, &["checkout", "--quiet", "-b", branch])?;
    Ok(GitBranch { root, previous, branch: branch.to_owned() })
}

/// Puts the touched files, the index and the checked-out branch back as they were, and deletes the
/// branch made for the rotation.
fn git_undo(repo: &GitBranch, touched: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let files: Vec<String> = touched
        .iter()
        .map(|p| {
            std::fs::canonicalize(p)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| p.display().to_string())
        })
        .collect();
    let mut restore = vec!["checkout", "--quiet", "HEAD", "--"];
    restore.extend(files.iter().map(String::as_str));
    git(&repo.root, &restore)?;
    git(&repo.root, &["checkout", "--quiet", &repo.previous])?;
    git(&repo.root, &["branch", "--quiet", "-D", &repo.branch])?;
    Ok(())
}

fn git_commit(root: &Path, plan: &arcseal::rotate::Plan, message: &str) -> anyhow::Result<()> {
    let files: Vec<String> = plan
        .changes
        .iter()
        .map(|(p, _)| std::fs::canonicalize(p).map(|p| p.display().to_string()))
        .collect::<Result<_, _>>()?;
    let mut add = vec!["add", "--"];
    add.extend(files.iter().map(String::as_str));
    git(root, &add)?;
    git(root, &["commit", "--quiet", "-m", message])?;
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let outputs = [Some(&args.key_out), Some(&args.cert_out), args.secret_out.as_ref()];
    if !args.force
        && let Some(existing) = outputs.into_iter().flatten().find(|p| p.exists())
    {
        bail!(
            "{}: already exists; keygen never overwrites a key (pass --force to replace it)",
            existing.display()
        );
    }
    let key = PrivateKey::generate(args.bits).context("keygen")?;
    let params = CertificateParams {
        common_name: args.cn.clone(),
        not_before: SystemTime::now(),
        validity: Duration::from_secs(args.days.saturating_mul(86_400)),
    };
    let cert = Certificate::self_signed(&key, &params).context("keygen")?;
    let key_pem = key.to_pkcs1_pem().context("keygen")?;
    output::write_atomic(&args.key_out, key_pem.as_bytes(), Access::Private)?;
    output::write_atomic(&args.cert_out, cert.to_pem().as_bytes(), Access::Public)?;
    if let Some(path) = &args.secret_out {
        let secret = keys::key_secret(&key, &cert, &args.secret_namespace)?;
        output::write_atomic(
            path,
            output::render(&[secret], Format::choose(None, Some(path)))?.as_bytes(),
            Access::Private,
        )?;
    }
    eprintln!(
        "generated RSA-{} key {} (certificate valid until {})",
        args.bits,
        key.fingerprint(),
        rfc3339(cert.not_after())
    );
    Ok(ExitCode::SUCCESS)
}

fn cert(args: CertArgs) -> anyhow::Result<ExitCode> {
    if args.pin || args.check {
        return clusters::pin_or_check(&args);
    }
    if args.for_cluster.is_some() {
        bail!("--for-cluster with `arcseal cert` needs --pin or --check");
    }
    let cert = match args.cert.cert.as_deref() {
        Some(spec) => keys::certificate(spec)?,
        None => cluster_controller(&args.cluster)
            .context("no --cert given, so the certificate is fetched from the cluster")?
            .certificate()?,
    };
    let expired = cert.is_expired_at(SystemTime::now());
    let text = format!(
        "fingerprint: sha256:{}\nsubject:     {}\nserial:      {}\nkey:         RSA-{}\nnot before:  {}\nnot after:   {}{}\n",
        cert.fingerprint(),
        if cert.subject().is_empty() { "(empty)" } else { cert.subject() },
        cert.serial(),
        cert.public_key().bits(),
        rfc3339(cert.not_before()),
        rfc3339(cert.not_after()),
        if expired { " (EXPIRED)" } else { "" }
    );
    out(&text)?;
    Ok(if expired { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

const DEMO_SECRET: &str = "apiVersion: v1
kind: Secret
metadata:
  name: db-credentials
  namespace: team-a
  labels:
    app: db
type: Opaque
stringData:
  username: admin
  password: correct horse battery staple
";

/// The whole round trip a user makes, on an embedded Secret and a throwaway key.
fn demo() -> anyhow::Result<ExitCode> {
    eprintln!("# generating a throwaway RSA-2048 key and certificate (the controller's would be RSA-4096)");
    let key = PrivateKey::generate(2048)?;
    let params = CertificateParams {
        common_name: String::new(),
        not_before: SystemTime::now(),
        validity: arcseal_crypto::DEFAULT_CERT_VALIDITY,
    };
    let cert = Certificate::self_signed(&key, &params)?;
    eprintln!("# sealing this Secret for certificate sha256:{}:\n{DEMO_SECRET}", cert.fingerprint());
    let docs = input::documents(&Source::from_bytes("demo Secret", DEMO_SECRET.as_bytes().to_vec()))?;
    let options = SealOptions::default();
    let sealed = seal::seal_documents(&docs, &cert, &options)?;
    out(&format!("{}\n", output::render(&sealed, Format::Yaml)?.as_str()))?;

    eprintln!("# unsealing it again with the private key, as `arcseal unseal --private-key` does");
    let ring = KeyRing::new(vec![key]);
    let secret = arcseal::unseal::unseal(&sealed[0], &ring, &Location::source("demo SealedSecret"))?;
    let expected = arcseal::manifest::SecretInput::from_value(&docs[0].value.0, &docs[0].at)?;
    let matches = expected.items.len() == secret.data.len()
        && expected.items.iter().all(|(k, v)| {
            let opened =
                secret.data.get(k).and_then(|b| arcseal_crypto::decode_base64(b).ok()).map(Zeroizing::new);
            opened.is_some_and(|o| o.as_slice() == v.as_slice())
        });
    if !matches {
        bail!("demo: the unsealed items differ from the sealed ones");
    }
    let wrong = Scope::Strict.encryption_label("team-b", "db-credentials");
    let refused = ring.open_value(&wrong, &sealed[0].spec.encrypted_data["password"], None).is_err();
    eprintln!(
        "# ok: {} items round-tripped; opening them as team-b/db-credentials was {}",
        secret.data.len(),
        if refused { "refused, as it must be" } else { "NOT refused" }
    );
    Ok(if refused { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn rfc3339(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "?".into())
}
