//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's rules: the holder renews every
//! `retry_period`; another replica takes over once `leaseDurationSeconds` have passed since the last renewal it
//! observed (measured on its own clock, so clock skew between replicas does not matter); every write carries the
//! Lease's `resourceVersion`, so two candidates cannot both win. A leader that cannot renew within `renew_deadline`
//! steps down before anyone else may take over.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

/// Leader election settings (sealed-secrets' `--leader-elect*` flags have no equivalent; these follow client-go).
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (the controller's).
    pub namespace: String,
    /// Name of the Lease.
    pub lease_name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// How long a Lease is valid after its last renewal.
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (less than `lease_duration`).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs the election, publishing whether this replica leads on `leading`, until `release` completes; then gives the
/// Lease up if this replica holds it (client-go's `ReleaseOnCancel`) and returns. Only this task writes the Lease, so
/// nothing can take it back after the release: the caller completes `release` once its leader work has stopped.
pub async fn run(
    client: Client,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    release: impl Future<Output = ()> + Send,
) {
    let api = Api::<Lease>::namespaced(client, &config.namespace);
    tokio::pin!(release);
    tokio::select! {
        () = &mut release => {}
        () = elect(&api, &config, &leading) => {}
    }
    leading.send_replace(false);
    release_lease(&api, &config).await;
}

/// The election loop (never returns).
async fn elect(api: &Api<Lease>, config: &LeaderConfig, leading: &watch::Sender<bool>) {
    // What this replica last saw of someone else's Lease, and when (its own clock).
    let mut observed: Option<(Option<String>, Option<MicroTime>, Instant)> = None;
    let mut last_renewal: Option<Instant> = None;
    loop {
        let won = try_acquire_or_renew(api, config, &mut observed).await;
        match won {
            Ok(true) => {
                last_renewal = Some(Instant::now());
                if !*leading.borrow() {
                    tracing::info!(identity = %config.identity, lease = %config.lease_name, "became leader");
                    leading.send_replace(true);
                }
            }
            Ok(false) => {
                if *leading.borrow() {
                    tracing::warn!(identity = %config.identity, "lost the Lease to another replica");
                    leading.send_replace(false);
                }
                last_renewal = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, lease = %config.lease_name, "leader election");
                if *leading.borrow() && last_renewal.is_none_or(|t| t.elapsed() >= config.renew_deadline) {
                    tracing::warn!(identity = %config.identity, "could not renew the Lease in time: stepping down");
                    leading.send_replace(false);
                    last_renewal = None;
                }
            }
        }
        tokio::time::sleep(config.retry_period).await;
    }
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observed: &mut Option<(Option<String>, Option<MicroTime>, Instant)>,
) -> Result<bool, kube::Error> {
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.lease_name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.lease_name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let mine = holder.as_deref() == Some(config.identity.as_str());
    if !mine && holder.is_some() {
        let record = (holder.clone(), spec.renew_time.clone());
        let seen_at = match observed {
            Some((h, r, at)) if (h.clone(), r.clone()) == record => *at,
            _ => {
                *observed = Some((record.0, record.1, Instant::now()));
                Instant::now()
            }
        };
        let valid_for = spec
            .lease_duration_seconds
            .map_or(config.lease_duration, |s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
        if seen_at.elapsed() < valid_for {
            return Ok(false);
        }
    }
    let mut next = spec;
    if !mine {
        next.acquire_time = Some(now());
        next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
    }
    next.holder_identity = Some(config.identity.clone());
    next.lease_duration_seconds = Some(duration_secs);
    next.renew_time = Some(now());
    lease.spec = Some(next);
    // Carries the resourceVersion read above: a concurrent writer makes this a 409.
    match api.replace(&config.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (empty holder) if this replica holds it, so another replica takes over at once.
async fn release_lease(api: &Api<Lease>, config: &LeaderConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&config.lease_name).await else { return };
    let Some(spec) = lease.spec.as_mut() else { return };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    match api.replace(&config.lease_name, &PostParams::default(), &lease).await {
        Ok(_) => {
            tracing::info!(identity = %config.identity, lease = %config.lease_name, "released the Lease")
        }
        Err(e) => tracing::warn!(error = %e, "releasing the Lease"),
    }
}
