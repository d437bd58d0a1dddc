//! `arcseal`: seal, unseal, validate, keygen, cert, completion, demo.
//!
//! Every failure prints one `error:` line naming the input and the fix, exits 1, and writes nothing
//! (outputs are written atomically, once everything has succeeded). Usage errors exit 2.

mod cli;

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use arcseal::input::{self, Source};
use arcseal::keys;
use arcseal::keyvault;
use arcseal::manifest::SealedSecret;
use arcseal::output::{self, Format};
use arcseal::seal::{self, SealOptions};
use arcseal::validate::{self, Checks, Severity};
use arcseal::{Error, Location};
use arcseal_crypto::{Certificate, CertificateParams, KeyRing, PrivateKey, Scope};
use clap::{CommandFactory, Parser};
use zeroize::Zeroizing;

use crate::cli::{CertArgs, Cli, Command, KeygenArgs, RotateArgs, SealArgs, UnsealArgs, ValidateArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Seal(args) if args.recovery_unseal => unseal(UnsealArgs {
            input: args.secret_file,
            output: args.output,
            format: args.format,
            private_keys: args.recovery_private_key,
            recovery_unseal: true,
        }),
        Command::Seal(args) => seal(args),
        Command::Unseal(args) => unseal(args),
        Command::Validate(args) => validate(args),
        Command::Rotate(args) => rotate(args),
        Command::Keygen(args) => keygen(args),
        Command::Cert(args) => cert(args),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "arcseal", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => demo(),
    }
}

fn sealing_certificate(spec: Option<&str>) -> anyhow::Result<Certificate> {
    let Some(spec) = spec else {
        bail!(
            "no sealing certificate: pass --cert FILE|https-URL or set SEALED_SECRETS_CERT \
             (get it with `kubeseal --fetch-cert` or from the controller's /v1/cert.pem)"
        );
    };
    let cert = keys::certificate(spec)?;
    if cert.is_expired_at(SystemTime::now()) {
        return Err(Error::ExpiredCertificate {
            at: Box::new(Location::source(spec)),
            not_after: rfc3339(cert.not_after()),
        }
        .into());
    }
    Ok(cert)
}

fn seal(args: SealArgs) -> anyhow::Result<ExitCode> {
    let cert = sealing_certificate(args.cert.cert.as_deref())?;
    if args.raw {
        let source = Source::read(args.from_file.as_deref())?;
        let value = seal::seal_raw(
            &cert,
            args.scope.unwrap_or_default(),
            args.namespace.as_deref(),
            args.name.as_deref(),
            &source.bytes,
        )?;
        // Bare, without a newline, as kubeseal --raw prints it.
        output::emit(None, &value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = SealOptions {
        scope: args.scope,
        namespace: args.namespace.clone(),
        fallback_namespace: args.namespace.clone().unwrap_or_else(arcseal::kubeconfig::current_namespace),
        allow_empty_data: args.allow_empty_data,
    };
    let source = Source::read(args.secret_file.as_deref())?;
    let docs = input::documents(&source)?;
    if docs.is_empty() {
        bail!("{}: no Secret to seal (the input is empty)", source.name);
    }

    if let Some(target) = &args.merge_into {
        return merge_into(target, &docs, &cert, &options, args.format);
    }
    let sealed = seal::seal_documents(&docs, &cert, &options)?;
    let format = Format::choose(args.format, args.output.as_deref());
    output::emit(args.output.as_deref(), &output::render(&sealed, format)?)?;
    Ok(ExitCode::SUCCESS)
}

fn merge_into(
    target: &Path,
    docs: &[input::Document],
    cert: &Certificate,
    options: &SealOptions,
    format: Option<Format>,
) -> anyhow::Result<ExitCode> {
    let source = Source::read(Some(target))?;
    let existing_docs = input::documents(&source)?;
    let [existing_doc] = existing_docs.as_slice() else {
        bail!("{}: --merge-into needs a file holding exactly one SealedSecret", source.name);
    };
    let mut existing = SealedSecret::from_value(&existing_doc.value.0, &existing_doc.at)?;
    for doc in docs {
        seal::merge_into(&mut existing, &existing_doc.at, doc, cert, options)?;
    }
    let format = Format::choose(format, Some(target));
    output::write_atomic(target, output::render(&[existing], format)?.as_bytes(), None)?;
    Ok(ExitCode::SUCCESS)
}

fn key_ring(paths: &[std::path::PathBuf]) -> anyhow::Result<KeyRing> {
    let mut ring = KeyRing::default();
    for path in paths {
        keys::private_keys_from_file(path)?.into_iter().for_each(|k| ring.insert(k));
    }
    Ok(ring)
}

fn unseal(args: UnsealArgs) -> anyhow::Result<ExitCode> {
    let ring = key_ring(&args.private_keys)?;
    let source = Source::read(args.input.as_deref())?;
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
        // Plaintext on disk: readable by the owner only.
        Some(path) => output::write_atomic(path, text.as_bytes(), Some(0o600))?,
        None => output::emit(None, &text)?,
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
    let controller = args.controller_url.as_deref().map(arcseal::controller::Controller::new).transpose()?;
    let checks = Checks { cert: cert.as_ref(), keys: ring.as_ref(), controller: controller.as_ref() };
    let mut cases = Vec::new();
    if args.files.is_empty() {
        let source = Source::read(None)?;
        match input::documents(&source) {
            Ok(docs) => {
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
            for path in arcseal::repo::manifest_files(root)? {
                validate_file(&path, &checks, &mut problems, &mut cases);
            }
        }
    }
    for p in &problems {
        println!("{p}");
    }
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    eprintln!(
        "{} SealedSecret(s) checked: {errors} error(s), {} warning(s)",
        cases.len(),
        problems.len() - errors
    );
    if let Some(path) = &args.junit {
        output::write_atomic(path, validate::junit_xml(&cases).as_bytes(), None)?;
    }
    Ok(if errors > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn is_sealed_secret(value: &serde_json::Value) -> bool {
    value.get("kind").and_then(|k| k.as_str()) == Some(arcseal::manifest::KIND)
}

/// Checks every SealedSecret of one repository file, pointing each problem at its item's line.
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
            Err(e) if file.text()[chunk.start..chunk.end].contains(arcseal::manifest::KIND) => {
                let p = validate::Problem::from_error(&at, &e);
                cases.push((at.to_string(), vec![p.clone()]));
                problems.push(p);
                continue;
            }
            Err(_) => continue,
        };
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

fn rotate(args: RotateArgs) -> anyhow::Result<ExitCode> {
    let mut ring = KeyRing::default();
    let mut certs = Vec::new();
    for path in &args.private_keys {
        for (key, cert) in keys::key_pairs_from_file(path)? {
            ring.insert(key);
            certs.extend(cert);
        }
    }
    let controller = args.controller_url.as_deref().map(arcseal::controller::Controller::new).transpose()?;
    let target = match (args.cert.cert.as_deref(), &controller) {
        (_, Some(controller)) => controller.certificate()?,
        (Some(spec), None) => sealing_certificate(Some(spec))?,
        (None, None) => certs
            .into_iter()
            .max_by_key(|c| c.not_before())
            .context("no certificate to rotate to: pass --cert, or key Secret backups that carry tls.crt")?,
    };
    if target.is_expired_at(SystemTime::now()) {
        bail!(
            "the newest certificate (sha256:{}) has expired; the controller renews keys, fetch its current one",
            target.fingerprint()
        );
    }
    let files = arcseal::repo::manifest_files(&args.path)?;
    let options =
        arcseal::rotate::RotateOptions { target, keys: ring, rotate_values: args.rotate_values, controller };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = |done: usize, total: usize| {
        if terminal && (done == total || done.is_multiple_of(16)) {
            let width = 30 * done / total.max(1);
            eprint!("\rrotate [{}{}] {done}/{total} items", "#".repeat(width), " ".repeat(30 - width));
            if done == total {
                eprintln!();
            }
        }
    };
    let mut plan = arcseal::rotate::plan(&files, &options, &progress)?;
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
        print!("{}", rotate_message(&plan, &rotations));
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
    write_rotate_report(&args, &plan, &rotations)?;
    match (repo, &args.branch) {
        (Some(root), Some(branch)) => {
            git_commit(&root, &plan, &rotate_message(&plan, &rotations))?;
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

fn keyvault_settings(args: &RotateArgs) -> anyhow::Result<keyvault::Settings> {
    if let Some(a) = &args.authority_host
        && !a.starts_with("https://")
    {
        bail!("--authority-host {a:?} must be an https:// URL");
    }
    if let Some(s) = &args.keyvault_dns_suffix
        && (s.trim_start_matches('.').is_empty()
            || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':'))
    {
        bail!("--keyvault-dns-suffix {s:?} must be a DNS name such as vault.azure.net");
    }
    let resolve = args
        .resolve
        .iter()
        .map(|r| {
            let (host, addr) = r.split_once('=').context("--resolve takes HOST=ADDR:PORT")?;
            Ok((host.to_owned(), addr.parse().with_context(|| format!("--resolve {r:?}: not ADDR:PORT"))?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(keyvault::Settings {
        http: keyvault::http_client(args.ca_bundle.as_deref(), &resolve)?,
        authority_host: args.authority_host.clone(),
        keyvault_dns_suffix: args.keyvault_dns_suffix.clone(),
    })
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
    output::write_atomic(path, serde_json::to_string_pretty(&report)?.as_bytes(), None)?;
    Ok(())
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out =
        std::process::Command::new("git").arg("-C").arg(dir).args(args).output().context("running git")?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Checks the files to change have no uncommitted edits (they would be swept into the commit), then
/// creates the branch.
fn git_prepare(
    path: &Path,
    branch: &str,
    touched: &[std::path::PathBuf],
) -> anyhow::Result<std::path::PathBuf> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let root = std::path::PathBuf::from(git(&dir, &["rev-parse", "--show-toplevel"])?);
    let mut status = vec!["status", "--porcelain", "--"];
    let files: Vec<String> = touched.iter().map(|p| p.display().to_string()).collect();
    status.extend(files.iter().map(String::as_str));
    let dirty = git(&dir, &status)?;
    if !dirty.is_empty() {
        bail!("uncommitted changes in files rotate would change; commit or stash them first:\n{dirty}");
    }
    git(&dir, &["checkout", "-b", branch])?;
    Ok(root)
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
    output::write_atomic(&args.key_out, key_pem.as_bytes(), Some(0o600))?;
    output::write_atomic(&args.cert_out, cert.to_pem().as_bytes(), Some(0o644))?;
    if let Some(path) = &args.secret_out {
        let secret = keys::key_secret(&key, &cert, &args.secret_namespace)?;
        output::write_atomic(
            path,
            output::render(&[secret], Format::choose(None, Some(path)))?.as_bytes(),
            Some(0o600),
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
    let spec = args.cert.cert.context("pass --cert FILE|https-URL or set SEALED_SECRETS_CERT")?;
    let cert = keys::certificate(&spec)?;
    let expired = cert.is_expired_at(SystemTime::now());
    println!("fingerprint: sha256:{}", cert.fingerprint());
    println!("subject:     {}", if cert.subject().is_empty() { "(empty)" } else { cert.subject() });
    println!("serial:      {}", cert.serial());
    println!("key:         RSA-{}", cert.public_key().bits());
    println!("not before:  {}", rfc3339(cert.not_before()));
    println!("not after:   {}{}", rfc3339(cert.not_after()), if expired { " (EXPIRED)" } else { "" });
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
    let options = SealOptions { fallback_namespace: "default".into(), ..SealOptions::default() };
    let sealed = seal::seal_documents(&docs, &cert, &options)?;
    println!("{}", output::render(&sealed, Format::Yaml)?.as_str());

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
