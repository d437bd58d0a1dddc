//! `arcseal-controller unseal`: a drop-in replacement for the sealed-secrets controller. Same resource
//! (`bitnami.com/v1alpha1` SealedSecret), same key Secrets, same HTTP API and metric names; see
//! `controller/README-unseal.md` for flags, HA and figures.
//!
//! Shape of a running replica ([`start`]):
//! - [`keys::watch`] keeps the key set current from the key Secrets (every replica);
//! - [`http`] serves `/healthz`, `/readyz`, `/v1/cert.pem`, `/v1/verify`, `/v1/rotate` and metrics (every replica);
//! - [`webhook`] answers the API server's admission reviews of SealedSecrets over TLS (every replica, optional);
//! - [`leader`] elects one replica on a Lease (optional); the leader alone runs the [`reconcile`] controller and
//!   renews keys. Losing the Lease stops both; they start again if it is won back.
//!
//! Plaintexts never reach a log, event, status or error: errors name objects, items and template keys only.

pub mod crd;
pub mod http;
pub mod keys;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod redact;
pub mod secret;
pub mod template;
pub mod vault;
pub mod webhook;

#[cfg(test)]
mod leak_tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, watcher as watch_stream};
use kube::{Api, Client};
use tokio::sync::{oneshot, watch};

pub use crd::SealedSecret;
use keys::{KeyPolicy, KeyStore};
use leader::LeaderConfig;
use metrics::Metrics;
use reconcile::Context;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "arcseal-controller";

/// Everything `run` needs; `main` builds it from flags named like sealed-secrets'.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where keys live (`POD_NAMESPACE`, default kube-system) and how they are renewed.
    pub keys: KeyPolicy,
    /// Namespaces to watch for SealedSecrets; empty = all (`--all-namespaces`).
    pub watch_namespaces: Vec<String>,
    /// Concurrent reconciles (`--max-unseal-workers`... named `--workers` here, see README).
    pub workers: u16,
    /// Re-check every SealedSecret this often, restoring edited or deleted Secrets (0 = only on change).
    pub resync: Duration,
    /// HTTP API (`--listen-addr`); `None` = not served.
    pub listen_addr: Option<SocketAddr>,
    /// Metrics (`--listen-metrics-addr`); `None` = not served.
    pub metrics_addr: Option<SocketAddr>,
    /// Timeouts, connection caps and the request/item budgets of the HTTP API.
    pub http_limits: http::HttpLimits,
    /// The validating admission webhook (`--admission-addr`); `None` = not served.
    pub admission: Option<AdmissionConfig>,
    /// `None`: this replica always leads.
    pub leader_election: Option<LeaderConfig>,
    /// The `reportingInstance` of events (pod name).
    pub instance: String,
    /// Server-side timeout of each watch request in seconds (`None`: kube's default, 290 s). Each timeout resumes
    /// the watch from the last resourceVersion seen, which gets 410 Gone once etcd has compacted it; the watchers
    /// then relist.
    pub watch_timeout: Option<u32>,
    /// `--key-vault-url`: the keys are kept in Azure Key Vault and the key Secrets are a cache (see [`vault`]).
    pub key_vault: Option<vault::KeyVaultConfig>,
}

/// Where and how the admission webhook is served.
#[derive(Debug, Clone)]
pub struct AdmissionConfig {
    /// TLS listener (`--admission-addr`).
    pub addr: SocketAddr,
    /// Items per review, concurrency, queue and body timeouts.
    pub limits: webhook::WebhookLimits,
    /// The serving certificate's Secret and who keeps it.
    pub tls: webhook::tls::TlsConfig,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The admission webhook's TLS settings were refused.
    #[error("the admission webhook's TLS configuration: {0}")]
    Tls(rustls::Error),
    /// A listener could not be bound.
    #[error("binding {what} {addr}: {source}")]
    Bind {
        /// Which flag.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Handles on a running controller for tests and the benchmark.
#[derive(Clone)]
pub struct Handles {
    /// The metrics (RSA operation count, ...).
    pub metrics: Arc<Metrics>,
    /// The keys.
    pub keys: Arc<KeyStore>,
    /// Readiness.
    pub ready: Arc<AtomicBool>,
    /// Leadership.
    pub leading: watch::Receiver<bool>,
    /// Bound HTTP address, if any.
    pub http_addr: Option<SocketAddr>,
    /// Bound metrics address, if any (tests scrape it).
    pub metrics_addr: Option<SocketAddr>,
    /// Bound admission webhook address, if any.
    pub admission_addr: Option<SocketAddr>,
    /// The webhook's serving certificate (loaded once its Secret is read).
    pub admission_cert: Option<Arc<webhook::tls::ServingCert>>,
}

/// Starts a replica: binds listeners, then runs until `shutdown` resolves. Returns handles once listening.
pub async fn start(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(Handles, tokio::task::JoinHandle<()>), RunError> {
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(KeyStore::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (mut http_addr, mut metrics_addr) = (None, None);
    // Made before the HTTP API so `/readyz` can wait for it.
    let admission_cert = config.admission.as_ref().map(|_| Arc::new(webhook::tls::ServingCert::default()));
    if let Some(addr) = config.listen_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Bind {
            what: "--listen-addr",
            addr,
            source,
        })?;
        http_addr = listener.local_addr().ok();
        let api = Arc::new(http::Api {
            keys: store.clone(),
            metrics: metrics.clone(),
            ready: ready.clone(),
            admission: http::Admission::new(config.http_limits.clone()),
            webhook_cert: admission_cert.clone(),
        });
        let limits = config.http_limits.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve(listener, http::router(api), &limits).await {
                tracing::error!(error = %e, "HTTP API stopped");
            }
        });
    }
    if let Some(addr) = config.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| RunError::Bind {
            what: "--listen-metrics-addr",
            addr,
            source,
        })?;
        metrics_addr = listener.local_addr().ok();
        let router = http::metrics_router(metrics.clone());
        let limits = config.http_limits.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve(listener, router, &limits).await {
                tracing::error!(error = %e, "metrics endpoint stopped");
            }
        });
    }

    let mut admission_addr = None;
    if let (Some(admission), Some(serving)) = (&config.admission, &admission_cert) {
        let listener = tokio::net::TcpListener::bind(admission.addr)
            .await
            .map_err(|source| RunError::Bind { what: "--admission-addr", addr: admission.addr, source })?;
        admission_addr = listener.local_addr().ok();
        tokio::spawn(webhook::tls::watch(client.clone(), admission.tls.clone(), serving.clone()));
        let router =
            webhook::router(webhook::Webhook::new(store.clone(), metrics.clone(), admission.limits.clone()));
        let tls = serving.server_config().map_err(RunError::Tls)?;
        let connections = http::connection_limits(&config.http_limits);
        tokio::spawn(async move {
            if let Err(e) = crate::listener::serve_tls(listener, router, connections, tls).await {
                tracing::error!(error = %e, "admission webhook stopped");
            }
        });
    }

    let (keys_tx, keys_rx) = watch::channel(false);
    tokio::spawn(keys::watch(
        client.clone(),
        config.keys.namespace.clone(),
        config.watch_timeout,
        store.clone(),
        keys_tx,
        Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some(config.instance.clone()) },
        metrics.clone(),
    ));

    let (leading_tx, leading_rx) = watch::channel(config.leader_election.is_none());
    // The elector runs until supervise has stopped the leader's work and tells it to release the Lease.
    let elector = match config.leader_election.clone() {
        Some(lc) => {
            let (release_tx, release_rx) = oneshot::channel::<()>();
            let release = async move {
                let _ = release_rx.await;
            };
            let task = tokio::spawn(leader::run(client.clone(), lc, leading_tx, release));
            Some(Elector { release: release_tx, task })
        }
        None => {
            // Keep the sender alive so receivers never see a closed channel.
            std::mem::forget(leading_tx);
            None
        }
    };

    let handles = Handles {
        metrics: metrics.clone(),
        keys: store.clone(),
        ready: ready.clone(),
        leading: leading_rx.clone(),
        http_addr,
        metrics_addr,
        admission_addr,
        admission_cert,
    };
    let task = tokio::spawn(supervise(
        client, config, metrics, store, ready, keys_rx, leading_rx, elector, shutdown,
    ));
    Ok((handles, task))
}

/// The leader election task and the signal that ends it (it then releases the Lease if it holds it).
struct Elector {
    release: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

#[allow(clippy::too_many_arguments)]
async fn supervise(
    client: Client,
    config: Config,
    metrics: Arc<Metrics>,
    store: Arc<KeyStore>,
    ready: Arc<AtomicBool>,
    mut keys_rx: watch::Receiver<bool>,
    mut leading: watch::Receiver<bool>,
    elector: Option<Elector>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        stop_tx.send_replace(true);
    });
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    // Readiness: keys listed and at least one key (the leader makes one if there is none).
    {
        let (store, ready, metrics, mut rx) =
            (store.clone(), ready.clone(), metrics.clone(), keys_rx.clone());
        let policy = config.keys.clone();
        tokio::spawn(async move {
            loop {
                if *rx.borrow_and_update() {
                    let snapshot = store.snapshot();
                    let n = snapshot.keys().len();
                    metrics.keys.set(i64::try_from(n).unwrap_or(i64::MAX));
                    metrics.key_times(&snapshot, &policy);
                    if n > 0 {
                        ready.store(true, Ordering::SeqCst);
                    }
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        });
    }
    let _ = keys_rx.wait_for(|listed| *listed).await;
    loop {
        tokio::select! {
            _ = stopped(stop_rx.clone()) => break,
            r = leading.wait_for(|l| *l) => if r.is_err() { break },
        }
        metrics.is_leader.set(1);
        let lost = {
            let mut leading = leading.clone();
            async move {
                let _ = leading.wait_for(|l| !*l).await;
            }
        };
        let stop = stopped(stop_rx.clone());
        let end = async move {
            tokio::select! {
                _ = lost => {},
                _ = stop => {},
            }
        };
        let end = futures::FutureExt::shared(end);
        // With a Key Vault, sync before the first reconcile pass so a rebuilt cluster unseals everything on it.
        let syncer = match &config.key_vault {
            Some(kv) => Some(start_vault_sync(&client, &config, kv, &store, &metrics, keys_rx.clone()).await),
            None => None,
        };
        let renewer = tokio::spawn(renew_keys(
            client.clone(),
            config.clone(),
            store.clone(),
            metrics.clone(),
            keys_rx.clone(),
        ));
        let webhook_cert = config
            .admission
            .as_ref()
            .filter(|a| a.tls.managed)
            .map(|a| tokio::spawn(webhook::tls::keep_running(client.clone(), a.tls.clone())));
        run_controllers(client.clone(), &config, metrics.clone(), store.clone(), keys_rx.clone(), end).await;
        renewer.abort();
        if let Some(task) = webhook_cert {
            task.abort();
        }
        if let Some(syncer) = syncer {
            syncer.abort();
        }
        metrics.is_leader.set(0);
        if *stop_rx.borrow() {
            break;
        }
    }
    // Released only now, after the leader's work has stopped, and by the elector itself, which then ends: a
    // replica that is stopping can no longer take the Lease back from the one that should take over.
    if let Some(elector) = elector {
        let _ = elector.release.send(());
        let _ = elector.task.await;
    }
}

/// The first Key Vault sync of a leader's term (waiting until the watch has loaded the vault's keys), then one every
/// sync period in the returned task.
async fn start_vault_sync(
    client: &Client,
    config: &Config,
    kv: &vault::KeyVaultConfig,
    store: &Arc<KeyStore>,
    metrics: &Arc<Metrics>,
    mut keys_rx: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some(config.instance.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    let namespace = config.keys.namespace.clone();
    let loaded = vault::sync_and_report(client, &namespace, &kv.keys, store, metrics, &recorder).await;
    vault::wait_loaded(store, &mut keys_rx, &loaded, Duration::from_secs(30)).await;
    let (client, kv, store, metrics) = (client.clone(), kv.clone(), store.clone(), metrics.clone());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(kv.sync_period.max(Duration::from_secs(1))).await;
            vault::sync_and_report(&client, &namespace, &kv.keys, &store, &metrics, &recorder).await;
        }
    })
}

/// Makes the first key and the periodic ones (leader only); with a Key Vault, in the vault first.
async fn renew_keys(
    client: Client,
    config: Config,
    store: Arc<KeyStore>,
    metrics: Arc<Metrics>,
    mut keys_rx: watch::Receiver<bool>,
) {
    let policy = config.keys.clone();
    let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some(config.instance.clone()) };
    let recorder = Recorder::new(client.clone(), reporter);
    loop {
        let newest = store.snapshot().newest().map(|k| k.not_before());
        let now = SystemTime::now();
        match keys::next_renewal(&policy, newest, now) {
            Some(due) if due <= now => {
                let before = store.epoch();
                let created = match &config.key_vault {
                    Some(kv) => {
                        vault::create_key(&client, &policy, &kv.keys, &store, &metrics, &recorder).await
                    }
                    None => keys::create_key(&client, &policy).await,
                };
                match created {
                    Ok(_) => {
                        // Wait until the watch has loaded it, so the next round sees it as newest.
                        let _ = tokio::time::timeout(Duration::from_secs(60), async {
                            while store.epoch() == before {
                                if keys_rx.changed().await.is_err() {
                                    return;
                                }
                            }
                        })
                        .await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "creating a sealing key; retrying in 30 s");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
            planned => {
                let wait = planned.map_or(Duration::from_secs(3600), |due| {
                    due.duration_since(now).unwrap_or_default().min(Duration::from_secs(3600))
                });
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {},
                    r = keys_rx.changed() => if r.is_err() { return },
                }
            }
        }
    }
}

async fn run_controllers(
    client: Client,
    config: &Config,
    metrics: Arc<Metrics>,
    store: Arc<KeyStore>,
    keys_rx: watch::Receiver<bool>,
    end: futures::future::Shared<impl Future<Output = ()> + Send + 'static>,
) {
    let reporter = Reporter { controller: FIELD_MANAGER.to_owned(), instance: Some(config.instance.clone()) };
    let ctx = Arc::new(Context::new(
        client.clone(),
        store,
        Recorder::new(client.clone(), reporter),
        metrics.clone(),
        if config.resync.is_zero() { Duration::from_secs(365 * 24 * 3600) } else { config.resync },
    ));
    let scopes: Vec<Option<String>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let mut runs = Vec::new();
    let mut cache_tasks = Vec::new();
    let mut stores = Vec::new();
    for ns in scopes {
        let (ss_api, secret_api) = match &ns {
            None => (Api::<SealedSecret>::all(client.clone()), Api::<Secret>::all(client.clone())),
            Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        };
        // A new key may open SealedSecrets that failed before: reconcile everything when the key set changes.
        let key_changes = futures::stream::unfold(keys_rx.clone(), |mut rx| async move {
            rx.changed().await.ok().map(|()| ((), rx))
        });
        let wc = || match config.watch_timeout {
            Some(t) => watcher::Config::default().timeout(t),
            None => watcher::Config::default(),
        };
        // Metadata of the Secrets in scope: lets reconciles skip a GET when the answer is already known.
        let meta_api: Api<PartialObjectMeta<Secret>> = match &ns {
            None => Api::all(client.clone()),
            Some(ns) => Api::namespaced(client.clone(), ns),
        };
        let (secret_cache, secret_writer) = reflector::store();
        ctx.add_secret_cache(ns.clone(), secret_cache);
        let cache_task = tokio::spawn(
            reflector(secret_writer, watch_stream(meta_api, wc()))
                .default_backoff()
                .for_each(|_| std::future::ready(())),
        );
        cache_tasks.push(cache_task);
        let controller = Controller::new(ss_api, wc())
            .owns(secret_api, wc())
            .with_config(ControllerConfig::default().concurrency(config.workers))
            .reconcile_all_on(key_changes)
            .graceful_shutdown_on(end.clone());
        stores.push(controller.store());
        let metrics = metrics.clone();
        runs.push(controller.run(reconcile::reconcile, reconcile::error_policy, ctx.clone()).for_each(
            move |result| {
                let metrics = metrics.clone();
                async move {
                    match result {
                        Err(kube::runtime::controller::Error::QueueError(e)) => {
                            metrics.watch_error(watch_error_code(&e));
                            tracing::warn!(error = %e, "watch (kube retries and relists by itself)");
                        }
                        Err(e) => tracing::debug!(error = %e, "reconcile"),
                        Ok(_) => {}
                    }
                }
            },
        ));
    }
    // Deleted SealedSecrets are never reconciled again: drop what was remembered about them once per resync.
    let pruner = {
        let (ctx, period) = (ctx.clone(), ctx.resync.max(Duration::from_secs(60)));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if stores.iter().all(|s| s.wait_until_ready().now_or_never().is_some_and(|r| r.is_ok())) {
                    let live = stores
                        .iter()
                        .flat_map(|s| s.state())
                        .filter_map(|ss| ss.metadata.uid.clone())
                        .collect();
                    ctx.forget_all_but(&live);
                }
            }
        })
    };
    cache_tasks.push(pruner);
    futures::future::join_all(runs).await;
    for task in cache_tasks {
        task.abort();
    }
}

/// The HTTP status of a watch error (410: the watch relisted), 0 when it was not one.
fn watch_error_code(e: &watcher::Error) -> u16 {
    match e {
        watcher::Error::WatchError(status) => status.code,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status)) => status.code,
        _ => 0,
    }
}
