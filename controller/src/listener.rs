//! The accept loop of every HTTP listener of `arcseal-controller` (the unseal API and metrics, the CSI provider's
//! health and metrics): hyper's HTTP/1 server with a header read timeout, a cap on open connections overall and
//! per peer address, and a cap on a connection's life. (`axum::serve` has none of these knobs; a client that opens
//! connections and sends nothing would otherwise hold them forever.) Accept errors (out of file descriptors) pause
//! the loop instead of spinning.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// How much of the process one listener's clients may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Open connections at most; more wait in the kernel's listen backlog.
    pub max_connections: usize,
    /// Open connections from one peer address at most; more are closed at once.
    pub max_connections_per_peer: usize,
    /// A connection lives at most this long, however busy: keep-alive must not pin a slot forever.
    pub max_age: Duration,
}

impl ConnectionLimits {
    /// For a port only probes and a scraper call (health, metrics): few connections, short header wait.
    pub const PROBES: ConnectionLimits = ConnectionLimits {
        header_timeout: Duration::from_secs(5),
        max_connections: 64,
        max_connections_per_peer: 16,
        max_age: Duration::from_secs(300),
    };
}

/// Open connections per peer address.
#[derive(Default)]
struct PeerCounts(Mutex<HashMap<IpAddr, usize>>);

struct PeerSlot {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = counts.entry(ip).or_default();
        if *n >= max.max(1) {
            return None;
        }
        *n += 1;
        Some(PeerSlot { counts: self.clone(), ip })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until the process ends. Requests carry `ConnectInfo<SocketAddr>`.
pub async fn serve(listener: TcpListener, router: Router, limits: ConnectionLimits) -> std::io::Result<()> {
    serve_with(listener, router, limits, None).await
}

/// [`serve`] over TLS: the handshake must finish within the header timeout.
pub async fn serve_tls(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    serve_with(listener, router, limits, Some(tokio_rustls::TlsAcceptor::from(tls))).await
}

async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Arc::new(PeerCounts::default());
    let (header_timeout, per_peer, max_age) =
        (limits.header_timeout, limits.max_connections_per_peer, limits.max_age);
    loop {
        // Waiting here (not accepting) leaves further clients in the kernel's backlog until a slot frees.
        let Ok(permit) = connections.clone().acquire_owned().await else { return Ok(()) };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning on the error.
                tracing::warn!(error = %e, "accepting an HTTP connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = peers.take(peer.ip(), per_peer) else {
            drop(stream);
            continue;
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                router.clone().oneshot(request)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(max_age, connection).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = tokio::time::timeout(max_age, connection).await;
                }
            }
            drop((permit, slot));
        });
    }
}
