//! `arcseal status`: one screen on a cluster's sealed-secrets controller, read with the user's kubeconfig (the
//! same rules as `seal`, see [`crate::cluster`]).
//!
//! What it reads, all through the API server: the controller's Deployment (replicas, and its args for the key
//! renewal period and cutoff), the leader Lease, the key Secrets (only `tls.crt` is looked at; the private key is
//! dropped unread), every SealedSecret's `Synced` condition, and the recent events about SealedSecrets and keys.
//!
//! The verdict is [`Health`]: `Healthy` (exit 0), `Degraded` (exit 3: something needs a look, e.g. a SealedSecret
//! not synced or a renewal overdue) or `Unhealthy` (exit 4: nothing is unsealing: no ready replica, no leader, or
//! no sealing key). Errors reaching the cluster exit 1, as every other command's.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde::Serialize;

use crate::cluster::{ClusterOptions, client_config, error_chain};
use crate::error::{Error, Result};

/// Label on the controller's key Secrets (sealed-secrets').
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// The controller's default `--key-renew-period`.
const DEFAULT_RENEW_PERIOD: Duration = Duration::from_secs(720 * 3600);
/// A renewal this late is overdue (the leader checks keys at least this often).
const RENEWAL_GRACE: Duration = Duration::from_secs(3600);
/// A sealing certificate this close to NotAfter is worth a warning (the expiry alert's threshold).
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86400);
/// Most events shown.
const MAX_EVENTS: usize = 10;
/// Longest event message shown.
const MAX_MESSAGE: usize = 160;

/// What to look at.
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Namespace of the controller and its keys.
    pub namespace: String,
    /// Name of the controller's Deployment (and Service).
    pub name: String,
    /// Only SealedSecrets and events of this namespace; `None`: all namespaces.
    pub sealed_secrets_namespace: Option<String>,
}

/// The overall verdict, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Nothing to do.
    Healthy,
    /// Unsealing works, but something needs a look.
    Degraded,
    /// Nothing is being unsealed.
    Unhealthy,
}

impl Health {
    /// The process exit code: 0, 3 or 4 (1 and 2 are errors and usage errors, as for every command).
    pub fn exit_code(self) -> u8 {
        match self {
            Health::Healthy => 0,
            Health::Degraded => 3,
            Health::Unhealthy => 4,
        }
    }
}

/// One finding behind the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// How bad.
    pub severity: Health,
    /// What is wrong and what to do.
    pub message: String,
}

/// The controller's Deployment.
#[derive(Debug, Clone, Serialize)]
pub struct ControllerStatus {
    /// `namespace/name`.
    pub deployment: String,
    /// Whether the Deployment exists.
    pub found: bool,
    /// spec.replicas.
    pub replicas: i32,
    /// status.readyReplicas.
    pub ready: i32,
    /// Lease holder; `None` when nobody holds it (or there is no Lease).
    pub leader: Option<String>,
    /// Seconds since the holder last renewed the Lease.
    pub leader_renewed_seconds_ago: Option<u64>,
    /// Whether the Lease ran out without a renewal.
    pub lease_expired: bool,
    /// Whether the Deployment runs with `--leader-elect=true`.
    pub leader_election: bool,
    /// `--key-renew-period` in seconds (0: renewal disabled).
    pub renew_period_seconds: u64,
    /// `--key-cutoff-time`, RFC 3339.
    pub cutoff: Option<String>,
}

/// One key Secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyStatus {
    /// The Secret.
    pub secret: String,
    /// SHA-256 of the public key, hex (sealed-secrets' key hint).
    pub fingerprint: String,
    /// `active`, or the retiring label value.
    pub state: String,
    /// Whether this is the key new SealedSecrets are sealed with.
    pub sealing: bool,
    /// NotBefore, RFC 3339.
    pub created: String,
    /// Age in seconds.
    pub age_seconds: u64,
    /// NotAfter, RFC 3339.
    pub expires: String,
}

/// The keys and the renewal schedule.
#[derive(Debug, Clone, Serialize)]
pub struct KeysStatus {
    /// Newest first.
    pub keys: Vec<KeyStatus>,
    /// When the next key is due, RFC 3339; `None`: no renewal planned.
    pub next_renewal: Option<String>,
    /// Key Secrets that could not be read (name and why).
    pub unreadable: Vec<String>,
}

/// A SealedSecret that is not synced.
#[derive(Debug, Clone, Serialize)]
pub struct Unsynced {
    /// `namespace/name`.
    pub name: String,
    /// The condition's message (names objects and items, never values).
    pub message: String,
}

/// SealedSecrets by condition.
#[derive(Debug, Clone, Serialize)]
pub struct SealedSecretsStatus {
    /// All of them.
    pub total: usize,
    /// Synced=True for the current generation.
    pub synced: usize,
    /// Synced=False.
    pub not_synced: Vec<Unsynced>,
    /// Not yet acted on by the controller (no status for the current generation).
    pub pending: Vec<String>,
}

/// One recent event.
#[derive(Debug, Clone, Serialize)]
pub struct EventLine {
    /// RFC 3339.
    pub time: String,
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reason.
    pub reason: String,
    /// `Kind namespace/name`.
    pub object: String,
    /// The message, first line, shortened.
    pub message: String,
}

/// Everything `arcseal status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The API server.
    pub server: String,
    /// When this was read, RFC 3339.
    pub time: String,
    /// The verdict.
    pub health: Health,
    /// Why.
    pub problems: Vec<Problem>,
    /// The controller.
    pub controller: ControllerStatus,
    /// Its keys.
    pub keys: KeysStatus,
    /// SealedSecrets.
    pub sealed_secrets: SealedSecretsStatus,
    /// Newest first.
    pub events: Vec<EventLine>,
}

/// Reads the status of the cluster of `cluster`.
pub fn read(cluster: &ClusterOptions, options: &StatusOptions) -> Result<Status> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("the async runtime", e))?;
    runtime.block_on(async {
        let config = client_config(cluster).await?;
        let server = config.cluster_url.to_string();
        let client = kube::Client::try_from(config)
            .map_err(|e| Error::Usage(format!("cannot set up the Kubernetes client: {}", error_chain(&e))))?;
        gather(client, server, options, SystemTime::now()).await
    })
}

async fn gather(
    client: kube::Client,
    server: String,
    options: &StatusOptions,
    now: SystemTime,
) -> Result<Status> {
    let ns = &options.namespace;
    let failed = |what: String| move |e: kube::Error| api_error(&what, &e);
    let deployment = Api::<Deployment>::namespaced(client.clone(), ns)
        .get_opt(&options.name)
        .await
        .map_err(failed(format!("reading Deployment {ns}/{}", options.name)))?;
    let args = deployment.as_ref().map(controller_args).unwrap_or_default();
    let lease_name = args.get("leader-elect-lease-name").cloned().unwrap_or_else(|| options.name.clone());
    let lease = Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(&lease_name)
        .await
        .map_err(failed(format!("reading Lease {ns}/{lease_name}")))?;
    let key_secrets = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(KEY_LABEL))
        .await
        .map_err(failed(format!("listing the key Secrets in {ns} (label {KEY_LABEL})")))?;
    let (sealed_api, events_api) = match &options.sealed_secrets_namespace {
        Some(n) => (
            Api::<DynamicObject>::namespaced_with(client.clone(), n, &sealed_secret_resource()),
            Api::<Event>::namespaced(client.clone(), n),
        ),
        None => (
            Api::<DynamicObject>::all_with(client.clone(), &sealed_secret_resource()),
            Api::<Event>::all(client.clone()),
        ),
    };
    let sealed = sealed_api
        .list(&ListParams::default())
        .await
        .map_err(failed("listing SealedSecrets (bitnami.com/v1alpha1)".to_owned()))?;
    let mut events = events_api
        .list(&ListParams::default().fields("involvedObject.kind=SealedSecret"))
        .await
        .map_err(failed("listing the events of SealedSecrets".to_owned()))?
        .items;
    events.extend(
        Api::<Event>::namespaced(client, ns)
            .list(&ListParams::default().fields("involvedObject.kind=Secret"))
            .await
            .map_err(failed(format!("listing the events of Secrets in {ns}")))?
            .items
            .into_iter()
            .filter(|e| {
                e.involved_object.name.as_deref().is_some_and(|n| n.starts_with("sealed-secrets-key"))
            }),
    );

    let controller = controller_status(ns, &options.name, deployment.as_ref(), &args, lease.as_ref(), now);
    let keys = keys_status(key_secrets.items, &controller, now);
    let sealed_secrets = sealed_secrets_status(&sealed.items);
    let events = event_lines(events);
    let problems = problems(&controller, &keys, &sealed_secrets, now);
    let health = problems.iter().map(|p| p.severity).max().unwrap_or(Health::Healthy);
    Ok(Status { server, time: rfc3339(now), health, problems, controller, keys, sealed_secrets, events })
}

fn api_error(what: &str, e: &kube::Error) -> Error {
    let hint = match e {
        kube::Error::Api(s) if s.code == 403 => {
            " (the API server denied it: status needs get/list on these objects, e.g. a cluster-wide view role)"
        }
        kube::Error::Api(s) if s.code == 404 => " (is the SealedSecret CRD installed?)",
        _ => "",
    };
    Error::Usage(format!("{what}: {}{hint}", error_chain(e)))
}

fn sealed_secret_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("bitnami.com", "v1alpha1", "SealedSecret"))
}

/// The controller container's `--flag=value` and `--flag value` args (the first container running `unseal`).
fn controller_args(deployment: &Deployment) -> BTreeMap<String, String> {
    let containers = deployment.spec.as_ref().and_then(|s| s.template.spec.as_ref()).map(|s| &s.containers);
    let args = containers
        .into_iter()
        .flatten()
        .find(|c| c.args.as_ref().is_some_and(|a| a.iter().any(|x| x == "unseal")))
        .and_then(|c| c.args.clone())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    let mut it = args.iter().peekable();
    while let Some(arg) = it.next() {
        let Some(flag) = arg.strip_prefix("--") else { continue };
        match flag.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None => {
                let value =
                    it.next_if(|v| !v.starts_with("--")).cloned().unwrap_or_else(|| "true".to_owned());
                out.insert(flag.to_owned(), value);
            }
        }
    }
    out
}

fn controller_status(
    ns: &str,
    name: &str,
    deployment: Option<&Deployment>,
    args: &BTreeMap<String, String>,
    lease: Option<&Lease>,
    now: SystemTime,
) -> ControllerStatus {
    let spec = deployment.and_then(|d| d.spec.as_ref());
    let status = deployment.and_then(|d| d.status.as_ref());
    let lease_spec = lease.and_then(|l| l.spec.as_ref());
    let holder = lease_spec.and_then(|s| s.holder_identity.clone()).filter(|h| !h.is_empty());
    let renewed = lease_spec.and_then(|s| s.renew_time.as_ref()).map(|t| system_time(t.0.as_second()));
    let renewed_ago = renewed.map(|t| now.duration_since(t).unwrap_or_default());
    let duration = lease_spec.and_then(|s| s.lease_duration_seconds).unwrap_or(15);
    let lease_expired = holder.is_some()
        && renewed_ago.is_some_and(|ago| ago > Duration::from_secs(u64::try_from(duration).unwrap_or(15)));
    ControllerStatus {
        deployment: format!("{ns}/{name}"),
        found: deployment.is_some(),
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        leader: holder,
        leader_renewed_seconds_ago: renewed_ago.map(|d| d.as_secs()),
        lease_expired,
        leader_election: args.get("leader-elect").is_some_and(|v| v == "true"),
        renew_period_seconds: args
            .get("key-renew-period")
            .map_or(Some(DEFAULT_RENEW_PERIOD), |v| crate::cluster::parse_timeout(v).ok())
            .unwrap_or(DEFAULT_RENEW_PERIOD)
            .as_secs(),
        cutoff: args.get("key-cutoff-time").filter(|v| !v.is_empty()).cloned(),
    }
}

fn keys_status(secrets: Vec<Secret>, controller: &ControllerStatus, now: SystemTime) -> KeysStatus {
    let mut keys = Vec::new();
    let mut unreadable = Vec::new();
    for secret in secrets {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let state =
            secret.metadata.labels.as_ref().and_then(|l| l.get(KEY_LABEL)).cloned().unwrap_or_default();
        // Only the certificate: the private key in the same Secret is never read.
        let cert = secret.data.as_ref().and_then(|d| d.get("tls.crt")).map(|b| b.0.clone());
        drop(secret);
        match cert.as_deref().map(arcseal_crypto::Certificate::from_pem) {
            Some(Ok(cert)) => keys.push((cert, name, state)),
            Some(Err(e)) => unreadable.push(format!("{name}: tls.crt: {e}")),
            None => unreadable.push(format!("{name}: no tls.crt")),
        }
    }
    keys.sort_by(|a, b| b.0.not_before().cmp(&a.0.not_before()).then(a.1.cmp(&b.1)));
    let sealing = keys.iter().position(|(_, _, state)| state == "active");
    let newest = sealing.map(|i| keys[i].0.not_before());
    let next_renewal = next_renewal(controller, newest, now);
    let keys = keys
        .into_iter()
        .enumerate()
        .map(|(i, (cert, secret, state))| KeyStatus {
            secret,
            fingerprint: cert.fingerprint().to_string(),
            sealing: Some(i) == sealing,
            state: if state.is_empty() { "(no label value)".to_owned() } else { state },
            created: rfc3339(cert.not_before()),
            age_seconds: now.duration_since(cert.not_before()).unwrap_or_default().as_secs(),
            expires: rfc3339(cert.not_after()),
        })
        .collect();
    KeysStatus { keys, next_renewal: next_renewal.map(rfc3339), unreadable }
}

/// When the controller will make its next key, by the controller's own rule ([`arcseal_crypto::next_key_due`]).
fn next_renewal(
    controller: &ControllerStatus,
    newest: Option<SystemTime>,
    now: SystemTime,
) -> Option<SystemTime> {
    let cutoff = controller
        .cutoff
        .as_deref()
        .and_then(|c| c.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| system_time(t.as_second()));
    arcseal_crypto::next_key_due(Duration::from_secs(controller.renew_period_seconds), cutoff, newest, now)
}

fn sealed_secrets_status(items: &[DynamicObject]) -> SealedSecretsStatus {
    let mut out =
        SealedSecretsStatus { total: items.len(), synced: 0, not_synced: Vec::new(), pending: Vec::new() };
    for ss in items {
        let name = format!(
            "{}/{}",
            ss.metadata.namespace.as_deref().unwrap_or(""),
            ss.metadata.name.as_deref().unwrap_or("")
        );
        let status = ss.data.get("status");
        let observed = status.and_then(|s| s.get("observedGeneration")).and_then(serde_json::Value::as_i64);
        let synced = status
            .and_then(|s| s.get("conditions"))
            .and_then(serde_json::Value::as_array)
            .and_then(|c| c.iter().find(|c| c.get("type").and_then(|t| t.as_str()) == Some("Synced")));
        let current = observed.is_some() && observed == ss.metadata.generation;
        match synced.and_then(|c| c.get("status")).and_then(|s| s.as_str()) {
            Some("True") if current => out.synced += 1,
            Some("False") => out.not_synced.push(Unsynced {
                name,
                message: synced
                    .and_then(|c| c.get("message"))
                    .and_then(|m| m.as_str())
                    .map(shorten)
                    .unwrap_or_default(),
            }),
            _ => out.pending.push(name),
        }
    }
    out.not_synced.sort_by(|a, b| a.name.cmp(&b.name));
    out.pending.sort();
    out
}

fn event_lines(mut events: Vec<Event>) -> Vec<EventLine> {
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.as_second()))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second()))
            .unwrap_or(0)
    };
    events.sort_by_key(|e| std::cmp::Reverse(when(e)));
    events
        .iter()
        .take(MAX_EVENTS)
        .map(|e| {
            let o = &e.involved_object;
            EventLine {
                time: rfc3339(system_time(when(e))),
                kind: e.type_.clone().unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                object: format!(
                    "{} {}/{}",
                    o.kind.as_deref().unwrap_or(""),
                    o.namespace.as_deref().unwrap_or(""),
                    o.name.as_deref().unwrap_or("")
                ),
                message: e.message.as_deref().map(shorten).unwrap_or_default(),
            }
        })
        .collect()
}

fn problems(
    controller: &ControllerStatus,
    keys: &KeysStatus,
    sealed: &SealedSecretsStatus,
    now: SystemTime,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut add = |severity, message: String| out.push(Problem { severity, message });
    let d = &controller.deployment;
    if !controller.found {
        add(
            Health::Unhealthy,
            format!(
                "no Deployment {d}: is the controller installed there? (--controller-namespace, --controller-name)"
            ),
        );
    } else if controller.ready == 0 {
        add(
            Health::Unhealthy,
            format!("no replica of {d} is ready: `kubectl -n {} describe deployment`", ns_of(d)),
        );
    } else if controller.ready < controller.replicas {
        add(Health::Degraded, format!("{d}: {} of {} replicas ready", controller.ready, controller.replicas));
    }
    if controller.found && controller.leader_election {
        match (&controller.leader, controller.lease_expired) {
            (None, _) => {
                add(Health::Unhealthy, format!("no replica of {d} holds the leader Lease: nothing unseals"))
            }
            (Some(h), true) => add(
                Health::Unhealthy,
                format!(
                    "the leader Lease held by {h} was last renewed {} ago and has expired: nothing unseals",
                    human(Duration::from_secs(controller.leader_renewed_seconds_ago.unwrap_or(0)))
                ),
            ),
            _ => {}
        }
    }
    match keys.keys.iter().find(|k| k.sealing) {
        None => add(
            Health::Unhealthy,
            format!("no active key Secret in {}: the controller cannot seal or unseal", ns_of(d)),
        ),
        Some(k) => {
            let expires =
                k.expires.parse::<k8s_openapi::jiff::Timestamp>().map(|t| system_time(t.as_second())).ok();
            if let Some(left) = expires.map(|e| e.duration_since(now).unwrap_or_default())
                && left < EXPIRY_WARNING
            {
                add(
                    Health::Degraded,
                    format!("the sealing key's certificate ({}) expires in {}", k.secret, human(left)),
                );
            }
        }
    }
    if let Some(due) =
        keys.next_renewal.as_deref().and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
    {
        let due = system_time(due.as_second());
        if let Ok(late) = now.duration_since(due)
            && late > RENEWAL_GRACE
        {
            add(
                Health::Degraded,
                format!("the next sealing key was due {} ago and none was made", human(late)),
            );
        }
    }
    for u in &keys.unreadable {
        add(Health::Degraded, format!("key Secret {u}"));
    }
    for u in &sealed.not_synced {
        add(Health::Degraded, format!("SealedSecret {} is not synced: {}", u.name, u.message));
    }
    out
}

fn ns_of(namespaced: &str) -> &str {
    namespaced.split('/').next().unwrap_or(namespaced)
}

fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    match line.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

fn system_time(seconds: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

fn rfc3339(t: SystemTime) -> String {
    let seconds = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    k8s_openapi::jiff::Timestamp::from_second(i64::try_from(seconds).unwrap_or(0))
        .map_or_else(|_| "?".to_owned(), |t| t.to_string())
}

/// `3d4h`, `5h12m`, `7m3s`, `12s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, m) => format!("{m}m{seconds}s"),
        (0, h, m) => format!("{h}h{m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d{h}h"),
    }
}

impl Status {
    /// The human screen.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let c = &self.controller;
        let _ = writeln!(o, "arcseal status of {} at {}", self.server, self.time);
        let _ = writeln!(o);
        let _ = writeln!(o, "Controller  {}", c.deployment);
        if c.found {
            let _ = writeln!(o, "  replicas   {}/{} ready", c.ready, c.replicas);
        } else {
            let _ = writeln!(o, "  (no such Deployment)");
        }
        let leader = match (&c.leader, c.leader_renewed_seconds_ago) {
            (Some(h), Some(ago)) => format!(
                "{h} (Lease renewed {} ago{})",
                human(Duration::from_secs(ago)),
                if c.lease_expired { ", EXPIRED" } else { "" }
            ),
            (Some(h), None) => h.clone(),
            (None, _) if c.leader_election => "none".to_owned(),
            (None, _) => "leader election off: every replica leads".to_owned(),
        };
        let _ = writeln!(o, "  leader     {leader}");
        let renew = match c.renew_period_seconds {
            0 => "disabled".to_owned(),
            s => format!("every {}", human(Duration::from_secs(s))),
        };
        let _ = writeln!(o, "  renewal    {renew}, cutoff {}", c.cutoff.as_deref().unwrap_or("none"));
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Keys ({}), next renewal {}",
            self.keys.keys.len(),
            self.keys.next_renewal.as_deref().unwrap_or("not planned")
        );
        if !self.keys.keys.is_empty() {
            let _ = writeln!(
                o,
                "  {:<16}  {:<16}  {:<8}  {:<20}  EXPIRES",
                "FINGERPRINT", "STATE", "AGE", "CREATED"
            );
        }
        for k in &self.keys.keys {
            let state = if k.sealing { format!("{} sealing", k.state) } else { k.state.clone() };
            let _ = writeln!(
                o,
                "  {:<16}  {:<16}  {:<8}  {:<20}  {}",
                &k.fingerprint[..k.fingerprint.len().min(16)],
                state,
                human(Duration::from_secs(k.age_seconds)),
                k.created,
                k.expires
            );
        }
        for u in &self.keys.unreadable {
            let _ = writeln!(o, "  unreadable: {u}");
        }
        let _ = writeln!(o);
        let s = &self.sealed_secrets;
        let _ = writeln!(
            o,
            "SealedSecrets  {} total: {} synced, {} not synced, {} pending",
            s.total,
            s.synced,
            s.not_synced.len(),
            s.pending.len()
        );
        for u in &s.not_synced {
            let _ = writeln!(o, "  NOT SYNCED  {}: {}", u.name, u.message);
        }
        for p in &s.pending {
            let _ = writeln!(o, "  pending     {p}");
        }
        let _ = writeln!(o);
        let _ = writeln!(o, "Recent events");
        if self.events.is_empty() {
            let _ = writeln!(o, "  (none)");
        }
        for e in &self.events {
            let _ = writeln!(o, "  {}  {:<7}  {:<22}  {}: {}", e.time, e.kind, e.reason, e.object, e.message);
        }
        let _ = writeln!(o);
        let verdict = match self.health {
            Health::Healthy => "HEALTHY",
            Health::Degraded => "DEGRADED",
            Health::Unhealthy => "UNHEALTHY",
        };
        let _ = writeln!(o, "Health: {verdict} (exit {})", self.health.exit_code());
        for p in &self.problems {
            let _ = writeln!(o, "  - {}", p.message);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(period_h: u64, cutoff: Option<&str>) -> ControllerStatus {
        ControllerStatus {
            deployment: "kube-system/sealed-secrets-controller".into(),
            found: true,
            replicas: 2,
            ready: 2,
            leader: Some("a".into()),
            leader_renewed_seconds_ago: Some(1),
            lease_expired: false,
            leader_election: true,
            renew_period_seconds: period_h * 3600,
            cutoff: cutoff.map(str::to_owned),
        }
    }

    #[test]
    fn renewal_follows_period_and_cutoff_as_the_controller_does() {
        let t0 = system_time(1_700_000_000);
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(next_renewal(&controller(720, None), None, t0), Some(t0), "no key: due now");
        assert_eq!(next_renewal(&controller(720, None), Some(t0), t0), Some(t0 + h(720)));
        assert_eq!(next_renewal(&controller(0, None), Some(t0), t0), None, "0 disables");
        // 2023-11-14T22:13:20Z is t0; a cutoff 5 h later comes before the period ends.
        let cutoff = "2023-11-15T03:13:20Z";
        assert_eq!(next_renewal(&controller(720, Some(cutoff)), Some(t0), t0), Some(t0 + h(5)));
        assert_eq!(next_renewal(&controller(0, Some(cutoff)), Some(t0), t0), Some(t0 + h(5)));
        // A key newer than the cutoff satisfies it.
        assert_eq!(next_renewal(&controller(720, Some(cutoff)), Some(t0 + h(6)), t0), Some(t0 + h(726)));
    }

    #[test]
    fn args_in_both_spellings() {
        let mut d = Deployment::default();
        let container = k8s_openapi::api::core::v1::Container {
            args: Some(
                [
                    "unseal",
                    "--leader-elect=true",
                    "--key-renew-period",
                    "24h",
                    "--key-cutoff-time=2026-01-01T00:00:00Z",
                ]
                .map(str::to_owned)
                .to_vec(),
            ),
            ..Default::default()
        };
        d.spec = Some(k8s_openapi::api::apps::v1::DeploymentSpec {
            template: k8s_openapi::api::core::v1::PodTemplateSpec {
                spec: Some(k8s_openapi::api::core::v1::PodSpec {
                    containers: vec![container],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        });
        let args = controller_args(&d);
        assert_eq!(args.get("leader-elect").map(String::as_str), Some("true"));
        assert_eq!(args.get("key-renew-period").map(String::as_str), Some("24h"));
        let c = controller_status("ns", "c", Some(&d), &args, None, SystemTime::now());
        assert_eq!(c.renew_period_seconds, 24 * 3600);
        assert_eq!(c.cutoff.as_deref(), Some("2026-01-01T00:00:00Z"));
        assert!(c.leader_election);
    }

    #[test]
    fn verdict_is_the_worst_problem() {
        let keys = KeysStatus { keys: vec![], next_renewal: None, unreadable: vec![] };
        let sealed = SealedSecretsStatus { total: 0, synced: 0, not_synced: vec![], pending: vec![] };
        let found = problems(&controller(720, None), &keys, &sealed, SystemTime::now());
        assert!(found.iter().any(|p| p.severity == Health::Unhealthy && p.message.contains("no active key")));
        assert_eq!(Health::Unhealthy.exit_code(), 4);
        assert_eq!(Health::Degraded.exit_code(), 3);
        assert_eq!(Health::Healthy.exit_code(), 0);
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(7 * 60 + 3)), "7m3s");
        assert_eq!(human(Duration::from_secs(5 * 3600 + 12 * 60)), "5h12m");
        assert_eq!(human(Duration::from_secs(3 * 86400 + 4 * 3600 + 5)), "3d4h");
        assert_eq!(human(Duration::from_secs(30 * 86400)), "30d");
    }
}
