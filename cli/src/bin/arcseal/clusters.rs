//! The commands over the repository config (`.arcseal.yaml`): which certificate `seal` uses for a
//! path, `seal --all-clusters`, `validate` per cluster, `rotate --all-clusters`, `cert --pin/--check`.
//! The operations themselves are the single-cluster ones; this only routes files to clusters.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, bail};
use arcseal::Location;
use arcseal::controller::Controller;
use arcseal::keys;
use arcseal::output::{self, Access};
use arcseal::repo_config::{ClusterConfig, RepoConfig};
use arcseal::rotate::{Plan, RotateOptions};
use arcseal::seal;
use arcseal::validate::{self, Severity};
use arcseal_crypto::{Certificate, KeyRing};

use crate::Personality;
use crate::cli::{CertArgs, ClusterArgs, RotateArgs, SealArgs, ValidateArgs};

/// The directory to look for the config from: `path` itself when it is a directory, else its parent.
fn start_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A cluster's pinned certificate, refused when expired (as `seal` refuses any expired certificate).
fn pinned(config: &RepoConfig, cluster: &ClusterConfig, access: &ClusterArgs) -> anyhow::Result<Certificate> {
    crate::sealing_certificate(Some(&cluster.cert.display().to_string()), access).with_context(|| {
        format!(
            "cluster {} of {}: its pinned certificate; pin it with `arcseal cert --pin --for-cluster {}`",
            cluster.name,
            config.file.display(),
            cluster.name
        )
    })
}

/// The certificate `seal` uses: `--cert`; else the cluster of `.arcseal.yaml` that `--for-cluster` names (or
/// kubeseal's `--cluster`/`--context`, when they name a cluster or a context of the config) or whose paths match
/// the file written; else (no config, or an explicit kubeconfig cluster or context the config does not know) the
/// cluster's controller. As `kubeseal`, a file of no cluster and stdout keep kubeseal's fetch: its scripts run
/// unchanged.
pub(crate) fn seal_certificate(args: &SealArgs, personality: Personality) -> anyhow::Result<Certificate> {
    if args.cert.cert.is_some() {
        return crate::sealing_certificate(args.cert.cert.as_deref(), &args.cluster);
    }
    let target = args.output.as_deref().or(args.merge_into.as_deref());
    let start = target.map_or_else(|| PathBuf::from("."), start_dir);
    let config = match &args.for_cluster {
        Some(_) => RepoConfig::require(&start)?,
        None => match RepoConfig::discover(&start)? {
            Some(config) => config,
            None => return crate::sealing_certificate(None, &args.cluster),
        },
    };
    let selected = match &args.for_cluster {
        Some(name) => Some(name.clone()),
        None => selected_by_kubeconfig_flags(&config, &args.cluster)?,
    };
    let explicit_access = args.cluster.cluster.is_some() || args.cluster.context.is_some();
    let owner = target.and_then(|t| config.cluster_for(t));
    let cluster = match (&selected, target, owner) {
        (Some(name), Some(target), Some(owner)) if &owner.name != name => bail!(
            "{}: belongs to cluster {} in {}, not {name}: a SealedSecret sealed for {name} there would not \
             open; drop --for-cluster (or --cluster/--context), or write under {name}'s paths ({})",
            target.display(),
            owner.name,
            config.file.display(),
            config.cluster(name)?.paths.join(", ")
        ),
        (Some(name), _, _) => config.cluster(name)?,
        (None, Some(_), Some(owner)) => owner,
        (None, _, None) if personality == Personality::Kubeseal || explicit_access => {
            return crate::sealing_certificate(None, &args.cluster);
        }
        (None, Some(target), None) => bail!(
            "{}: matches no cluster's paths in {}; pass --for-cluster NAME (or --cert), or add the path to a \
             cluster's paths",
            target.display(),
            config.file.display()
        ),
        (None, None, _) => bail!(
            "{} maps clusters to certificates, but stdout names no cluster: pass --for-cluster NAME, or -w FILE \
             under a cluster's paths, or --cert",
            config.file.display()
        ),
    };
    pinned(&config, cluster, &args.cluster)
}

/// The config's cluster that kubeseal's `--cluster NAME` (a cluster of the config by that name) or `--context CTX`
/// (the cluster whose `context` is CTX) selects; `None` when neither names one (they then select a kubeconfig
/// cluster to fetch the certificate from, as kubeseal does).
fn selected_by_kubeconfig_flags(config: &RepoConfig, access: &ClusterArgs) -> anyhow::Result<Option<String>> {
    let by_name = access.cluster.as_deref().filter(|name| config.clusters.contains_key(*name));
    let by_context: Vec<&str> = match access.context.as_deref() {
        Some(context) => config
            .clusters
            .values()
            .filter(|c| c.context.as_deref() == Some(context))
            .map(|c| c.name.as_str())
            .collect(),
        None => Vec::new(),
    };
    match (by_name, by_context.as_slice()) {
        (Some(name), []) => Ok(Some(name.to_owned())),
        (Some(name), [other]) if *other == name => Ok(Some(name.to_owned())),
        (None, [one]) => Ok(Some((*one).to_owned())),
        (None, []) => Ok(None),
        (Some(name), others) => bail!(
            "--cluster {name} and --context {} name different clusters of {} ({}): pass one, or --for-cluster NAME",
            access.context.as_deref().unwrap_or_default(),
            config.file.display(),
            others.join(", ")
        ),
        (None, many) => bail!(
            "--context {}: clusters {} of {} all use it; pass --for-cluster NAME",
            access.context.as_deref().unwrap_or_default(),
            many.join(", "),
            config.file.display()
        ),
    }
}

/// `seal --all-clusters -w 'apps/{cluster}/x.yaml'` (or `--merge-into` the same pattern): the input sealed once
/// per cluster with its own certificate, written as a new file or merged into the cluster's existing one.
/// Everything is sealed and rendered before the first file is written.
pub(crate) fn seal_all(args: &SealArgs, personality: Personality) -> anyhow::Result<ExitCode> {
    let (flag, pattern) = match (&args.output, &args.merge_into) {
        (Some(p), None) => ("-w", p.as_path()),
        (None, Some(p)) => ("--merge-into", p.as_path()),
        _ => bail!(
            "--all-clusters needs -w PATTERN (new files) or --merge-into PATTERN (existing files), with {{cluster}} \
             in the path (e.g. apps/{{cluster}}/db.yaml)"
        ),
    };
    let text = pattern.to_str().with_context(|| format!("{flag}: the pattern is not UTF-8"))?;
    if !text.contains("{cluster}") {
        bail!(
            "{flag} {text:?}: --all-clusters writes one file per cluster; put {{cluster}} in the path (e.g. apps/{{cluster}}/db.yaml)"
        );
    }
    let config = RepoConfig::require(&start_dir(pattern))?;
    let (docs, options) = crate::seal_inputs(args)?;
    let mut outputs = Vec::new();
    for cluster in config.clusters.values() {
        let path = PathBuf::from(text.replace("{cluster}", &cluster.name));
        if config.cluster_for(&path).map(|c| &c.name) != Some(&cluster.name) {
            bail!(
                "{}: the output for cluster {} is not under its paths ({}) in {}; fix -w or the cluster's paths",
                path.display(),
                cluster.name,
                cluster.paths.join(", "),
                config.file.display()
            );
        }
        let cert = pinned(&config, cluster, &args.cluster)?;
        let rendered = if args.merge_into.is_some() {
            crate::merged(&path, &docs, &cert, &options, args.format, personality)
                .with_context(|| format!("cluster {}", cluster.name))?
        } else {
            let sealed = seal::seal_documents(&docs, &cert, &options)?;
            output::render(&sealed, personality.format(args.format, Some(&path)))?
        };
        outputs.push((cluster, path, rendered));
    }
    for (_, path, _) in &outputs {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create it", dir.display()))?;
        }
    }
    let files: Vec<(&Path, &[u8])> = outputs.iter().map(|(_, p, t)| (p.as_path(), t.as_bytes())).collect();
    output::write_atomic_all(&files, Access::Public)?;
    let done = if args.merge_into.is_some() { "merged" } else { "sealed" };
    for (cluster, path, _) in &outputs {
        eprintln!("{done} for {}: {}", cluster.name, path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `validate` without `--cert`: each PATH routed by the `.arcseal.yaml` above it, so paths in several repositories
/// (or a repository and a directory without a config) are each checked against their own clusters. Each config and
/// its certificates are read once, however many PATHs lead to it.
#[derive(Default)]
pub(crate) struct Repos {
    /// By the config file's canonical path.
    read: BTreeMap<PathBuf, RepoCerts>,
}

impl Repos {
    /// The config (with its certificates) that routes the files under `root`, if one is above it; a config read
    /// for the first time adds its certificates' problems.
    pub(crate) fn for_root(
        &mut self,
        root: &Path,
        problems: &mut Vec<validate::Problem>,
    ) -> anyhow::Result<Option<&RepoCerts>> {
        let Some(config) = RepoConfig::discover(&start_dir(root))? else { return Ok(None) };
        let key = std::fs::canonicalize(&config.file).unwrap_or_else(|_| config.file.clone());
        if !self.read.contains_key(&key) {
            let certs = RepoCerts::read(config, problems)?;
            self.read.insert(key.clone(), certs);
        }
        Ok(self.read.get(&key))
    }
}

/// A repository's config and its clusters' pinned certificates: each file against its own cluster's certificate.
pub(crate) struct RepoCerts {
    config: RepoConfig,
    certs: BTreeMap<String, Certificate>,
}

impl RepoCerts {
    /// Every pinned certificate of `config` read, and their problems (expired, soon).
    fn read(config: RepoConfig, problems: &mut Vec<validate::Problem>) -> anyhow::Result<RepoCerts> {
        let mut certs = BTreeMap::new();
        for c in config.clusters.values() {
            let cert = keys::certificate(&c.cert.display().to_string()).with_context(|| {
                format!(
                    "cluster {} of {}: pin its certificate with `arcseal cert --pin --for-cluster {}`",
                    c.name,
                    config.file.display(),
                    c.name
                )
            })?;
            problems.extend(validate::check_certificate(
                &cert,
                &Location::source(c.cert.display().to_string()),
                SystemTime::now(),
            ));
            certs.insert(c.name.clone(), cert);
        }
        Ok(RepoCerts { config, certs })
    }

    /// The certificate of the cluster `path` belongs to.
    pub(crate) fn cert_for(&self, path: &Path) -> Option<&Certificate> {
        self.config.cluster_for(path).and_then(|c| self.certs.get(&c.name))
    }

    /// The certificates of the clusters `path` does not belong to, by cluster name.
    pub(crate) fn others(&self, path: &Path) -> Vec<(String, arcseal_crypto::Fingerprint)> {
        // A file of no cluster belongs to none that could refuse it: the warning of `unrouted` covers it.
        let Some(owner) = self.config.cluster_for(path).map(|c| c.name.as_str()) else { return Vec::new() };
        self.certs
            .iter()
            .filter(|(name, _)| name.as_str() != owner)
            .map(|(n, c)| (n.clone(), c.fingerprint()))
            .collect()
    }

    /// The warning for a file of SealedSecrets that belongs to no cluster.
    pub(crate) fn unrouted(&self, path: &Path) -> validate::Problem {
        validate::Problem {
            at: Location::source(path.display().to_string()),
            severity: Severity::Warning,
            message: format!(
                "matches no cluster's paths in {}: its SealedSecrets were not checked against a certificate; add \
                 the path to a cluster's paths",
                self.config.file.display()
            ),
        }
    }
}

/// `--cluster-key NAME=FILE` flags: each cluster's key files, every NAME a cluster of `config`.
fn cluster_key_files(
    config: &RepoConfig,
    specs: &[String],
) -> anyhow::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut files: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for spec in specs {
        let (name, file) = spec.split_once('=').with_context(|| {
            format!("--cluster-key {spec:?}: give NAME=FILE (a cluster of {})", config.file.display())
        })?;
        files.entry(config.cluster(name)?.name.clone()).or_default().push(file.into());
    }
    Ok(files)
}

/// `validate --cluster-key NAME=FILE` and `validate --online` in a repository with a config: each file's items
/// opened with its own cluster's keys, and asked of its own cluster's controller (through the cluster's context,
/// reached when its first file comes, so a cluster without files is never called).
pub(crate) struct ClusterVerifiers {
    config: RepoConfig,
    keys: BTreeMap<String, KeyRing>,
    online: Option<(ClusterArgs, u64)>,
    controllers: BTreeMap<String, std::cell::OnceCell<Option<Controller>>>,
    /// The current context's controller, for files of no cluster or of a cluster without a context.
    current: std::cell::OnceCell<Option<Controller>>,
}

impl ClusterVerifiers {
    /// The verifiers `args` asks for; `None` when there is nothing per cluster (no `--cluster-key`, and no
    /// config or no `--online`).
    pub(crate) fn build(args: &ValidateArgs) -> anyhow::Result<Option<ClusterVerifiers>> {
        if args.cluster_keys.is_empty() && !args.online {
            return Ok(None);
        }
        let start = args.files.first().map_or_else(|| PathBuf::from("."), |f| start_dir(f));
        let config = if args.cluster_keys.is_empty() {
            match RepoConfig::discover(&start)? {
                Some(config) => config,
                None => return Ok(None),
            }
        } else {
            RepoConfig::require(&start)?
        };
        // Cluster names (and contexts) belong to one config: PATHs routed by another one cannot be checked with
        // them, and checking them with the current context instead would hide that.
        let own = std::fs::canonicalize(&config.file).unwrap_or_else(|_| config.file.clone());
        for path in args.files.iter().skip(1) {
            let other = RepoConfig::discover(&start_dir(path))?;
            let other = other.map(|c| std::fs::canonicalize(&c.file).unwrap_or(c.file));
            if other.as_ref() != Some(&own) {
                let theirs = other.map_or_else(|| "no .arcseal.yaml".to_owned(), |f| f.display().to_string());
                anyhow::bail!(
                    "{} is routed by {theirs}, {} by {}: --cluster-key and --online name the clusters of one \
                     repository config; run validate once per repository",
                    path.display(),
                    args.files[0].display(),
                    config.file.display()
                );
            }
        }
        let mut keys = BTreeMap::new();
        for (name, files) in cluster_key_files(&config, &args.cluster_keys)? {
            let (ring, _) =
                crate::key_backups(&files).with_context(|| format!("--cluster-key {name}=..."))?;
            keys.insert(name, ring);
        }
        // Stdin has no path to route: it is asked of the current context, as without a config.
        let route_online = args.online && !args.files.is_empty();
        let controllers = config
            .clusters
            .values()
            .filter(|c| route_online && c.context.is_some())
            .map(|c| (c.name.clone(), std::cell::OnceCell::new()))
            .collect();
        let online = route_online.then(|| (args.cluster.clone(), args.rate_limit_wait));
        Ok(Some(ClusterVerifiers { config, keys, online, controllers, current: std::cell::OnceCell::new() }))
    }

    /// The keys of the cluster `path` belongs to, when given.
    pub(crate) fn keys_for(&self, path: &Path) -> Option<&KeyRing> {
        self.config.cluster_for(path).and_then(|c| self.keys.get(&c.name))
    }

    /// Whether `--online` questions are routed here (then every file asks [`Self::controller_for`]).
    pub(crate) fn online(&self) -> bool {
        self.online.is_some()
    }

    /// The controller that checks `path` under `--online`: its cluster's (through the cluster's context), or the
    /// current context's for a file of no cluster or of a cluster without a context. Each is reached when its
    /// first file comes, so a cluster without files is never called; when one cannot be, that first file gets
    /// the error, and the others of that cluster are not asked of any other controller.
    pub(crate) fn controller_for(
        &self,
        path: &Path,
        problems: &mut Vec<validate::Problem>,
    ) -> Option<&Controller> {
        let (flags, wait) = self.online.as_ref()?;
        let own = self.config.cluster_for(path).and_then(|c| Some((c, self.controllers.get(&c.name)?)));
        let (cell, access, what) = match own {
            Some((cluster, cell)) => (
                cell,
                access(cluster, flags),
                format!("cluster {} of {}: its controller", cluster.name, self.config.file.display()),
            ),
            None => (&self.current, flags.clone(), "the current context's controller".to_owned()),
        };
        cell.get_or_init(|| match crate::cluster_controller(&access) {
            Ok(c) => Some(c.rate_limit_wait(std::time::Duration::from_secs(*wait))),
            Err(e) => {
                problems.push(validate::Problem {
                    at: Location::source(path.display().to_string()),
                    severity: Severity::Error,
                    message: format!(
                        "{what} cannot be asked: {e:#}; fix the context, or validate without --online"
                    ),
                });
                None
            }
        })
        .as_ref()
    }
}

/// `rotate --all-clusters`: one plan per cluster (its files, its keys and newest certificate, or with
/// `--online` its controller), joined into one so the rest of rotate (report, branch, pull request)
/// sees a single rotation.
pub(crate) fn plan_all(
    args: &RotateArgs,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> anyhow::Result<(Plan, Vec<PathBuf>)> {
    let config = RepoConfig::require(&start_dir(&args.path))?;
    if !args.online && args.cluster_keys.is_empty() {
        bail!(
            "--all-clusters needs each cluster's keys (--cluster-key NAME=FILE, the controller's key backup) or \
             --online (each cluster's controller, through the kubeconfig contexts of {})",
            config.file.display()
        );
    }
    let key_files = cluster_key_files(&config, &args.cluster_keys)?;
    let files = arcseal::repo::manifest_files(&args.path)?;
    let mut by_cluster: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    let mut unrouted = 0;
    for file in &files {
        match config.cluster_for(file) {
            Some(c) => by_cluster.entry(c.name.as_str()).or_default().push(file.clone()),
            None => unrouted += 1,
        }
    }
    let mut joined = Plan { target: String::new(), changes: Vec::new(), items: Vec::new() };
    for (name, files) in &by_cluster {
        let cluster = config.cluster(name)?;
        let options = if args.online {
            online_options(cluster, args)?
        } else {
            let keys = key_files.get(*name).with_context(|| {
                format!(
                    "{} manifest file(s) under {} belong to cluster {name} ({}), but no --cluster-key {name}=FILE \
                     was given: pass its controller's key backup (or rotate --online)",
                    files.len(),
                    args.path.display(),
                    config.file.display()
                )
            })?;
            offline_options(keys, args).with_context(|| format!("cluster {name}"))?
        };
        let plan =
            arcseal::rotate::plan(files, &options, progress).with_context(|| format!("cluster {name}"))?;
        if !joined.target.is_empty() {
            joined.target.push_str(", ");
        }
        joined.target.push_str(&format!("{name} {}", plan.target));
        joined.changes.extend(plan.changes);
        joined.items.extend(plan.items);
    }
    if unrouted > 0 {
        eprintln!(
            "{unrouted} manifest file(s) under {} match no cluster of {}: not rotated",
            args.path.display(),
            config.file.display()
        );
    }
    Ok((joined, files))
}

/// A cluster rotated offline: its key backups, to the newest certificate among them.
fn offline_options(keys: &[PathBuf], args: &RotateArgs) -> anyhow::Result<RotateOptions> {
    let (ring, certs) = crate::key_backups(keys)?;
    let target = crate::newest_certificate(certs).and_then(crate::not_expired)?;
    Ok(RotateOptions { target, keys: ring, rotate_values: args.rotate_values, controller: None })
}

/// A cluster rotated online: its controller (through its context) re-seals, to the certificate it serves.
fn online_options(cluster: &ClusterConfig, args: &RotateArgs) -> anyhow::Result<RotateOptions> {
    let at = || format!("cluster {}", cluster.name);
    let controller = crate::cluster_controller(&access(cluster, &args.cluster))
        .with_context(at)?
        .rate_limit_wait(std::time::Duration::from_secs(args.rate_limit_wait));
    let target = controller
        .certificate()
        .map_err(anyhow::Error::from)
        .and_then(crate::not_expired)
        .with_context(at)?;
    Ok(RotateOptions {
        target,
        keys: arcseal_crypto::KeyRing::default(),
        rotate_values: args.rotate_values,
        controller: Some(controller),
    })
}

/// `cert --pin` and `cert --check`: each cluster's certificate as its controller serves it now, through
/// its kube context, written to or compared with the pinned file.
pub(crate) fn pin_or_check(args: &CertArgs) -> anyhow::Result<ExitCode> {
    let config = RepoConfig::require(Path::new("."))?;
    let clusters = match &args.for_cluster {
        Some(name) => vec![config.cluster(name)?],
        None => config.clusters.values().collect(),
    };
    let mut failed = 0;
    for cluster in clusters {
        let result =
            if args.pin { pin(&config, cluster, &args.cluster) } else { check(cluster, &args.cluster) };
        match result {
            Ok(line) => println!("{}: {line}", cluster.name),
            Err(e) => {
                failed += 1;
                eprintln!("error: cluster {}: {}", cluster.name, crate::error_message(&e));
            }
        }
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The flags, with the cluster's own context and controller from the config.
fn access(cluster: &ClusterConfig, flags: &ClusterArgs) -> ClusterArgs {
    let mut access = flags.clone();
    if cluster.context.is_some() {
        access.context.clone_from(&cluster.context);
    }
    if let Some(name) = &cluster.controller_name {
        access.controller_name.clone_from(name);
    }
    if let Some(ns) = &cluster.controller_namespace {
        access.controller_namespace.clone_from(ns);
    }
    access
}

fn pin(config: &RepoConfig, cluster: &ClusterConfig, flags: &ClusterArgs) -> anyhow::Result<String> {
    let (pem, cert) = crate::live_certificate(&access(cluster, flags))?;
    // A pin that changes is worth a line in the review: which key it was.
    let was = keys::certificate(&cluster.cert.display().to_string())
        .ok()
        .filter(|old| old.fingerprint() != cert.fingerprint())
        .map(|old| format!(" (was sha256:{})", old.fingerprint()))
        .unwrap_or_default();
    if let Some(dir) = cluster.cert.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create it", dir.display()))?;
    }
    output::write_atomic(&cluster.cert, &pem, Access::Public)?;
    let relative = config.relative(&cluster.cert).unwrap_or_default();
    Ok(format!("pinned sha256:{} in {relative}{was}", cert.fingerprint()))
}

fn check(cluster: &ClusterConfig, flags: &ClusterArgs) -> anyhow::Result<String> {
    let pinned = keys::certificate(&cluster.cert.display().to_string())
        .with_context(|| format!("pin it with `arcseal cert --pin --for-cluster {}`", cluster.name))?;
    let (_, live) = crate::live_certificate(&access(cluster, flags))?;
    if live.fingerprint() != pinned.fingerprint() {
        bail!(
            "{} pins sha256:{} but the controller serves sha256:{} (a renewed or replaced key): review it, run \
             `arcseal cert --pin --for-cluster {}`, then reseal (`arcseal rotate`)",
            cluster.cert.display(),
            pinned.fingerprint(),
            live.fingerprint(),
            cluster.name
        );
    }
    Ok(format!("pinned certificate sha256:{} matches the controller's", live.fingerprint()))
}
