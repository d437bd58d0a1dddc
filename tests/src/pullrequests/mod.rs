//! Stand-ins for the pull request APIs `arcseal rotate --open-pr` talks to: GitHub REST v3 `pulls`
//! ([`github`]) and Azure DevOps Git `pullrequests` 7.1 ([`azure_devops`]).
//!
//! Each is a loopback HTTP server that behaves as the real service does where arcseal could get it
//! wrong: the `Authorization` header is checked (missing, wrong, read-only tokens), errors carry the
//! service's own status and body shapes, lists are paginated as the service paginates them, and a pull
//! request can only be opened for a branch that exists on the remote (a bare git repository the test
//! pushes to) and that has commits the base lacks. Every request is logged (`METHOD path?query`).

pub mod azure_devops;
pub mod github;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio::net::TcpListener;

/// Largest request body the stand-ins read (the real services refuse far smaller bodies than this).
const MAX_REQUEST_BYTES: usize = 1 << 20;

/// One request as the handler sees it.
pub(crate) struct Req {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A running loopback server; stops when dropped.
pub(crate) struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Handler = dyn Fn(Req) -> Response<Full<Bytes>> + Send + Sync;

/// Serves `handler` on 127.0.0.1 (HTTP/1.1; bodies over [`MAX_REQUEST_BYTES`] get 413).
pub(crate) async fn serve(handler: Arc<Handler>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stand-in");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => {
                                let mut r =
                                    Response::new(Full::new(Bytes::from_static(b"request too large")));
                                *r.status_mut() = hyper::StatusCode::PAYLOAD_TOO_LARGE;
                                return Ok::<_, Infallible>(r);
                            }
                        };
                        let query = parts
                            .uri
                            .query()
                            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                            .unwrap_or_default();
                        let req = Req {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            query,
                            headers: parts.headers,
                            body,
                        };
                        Ok::<_, Infallible>(handler(req))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Server { addr, task }
}

/// A JSON answer.
pub(crate) fn json(status: u16, body: &serde_json::Value, extra: &[(&str, String)]) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert("content-type", "application/json; charset=utf-8".parse().expect("header"));
    for (k, v) in extra {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            v.parse().expect("header value"),
        );
    }
    r
}

/// The remote the pull requests are about: a bare git repository.
#[derive(Clone)]
pub(crate) struct Remote(pub PathBuf);

impl Remote {
    fn git(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("git").arg("--git-dir").arg(&self.0).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The commit `branch` points at.
    pub fn head(&self, branch: &str) -> Option<String> {
        self.git(&["rev-parse", "--verify", "--quiet", &format!("refs/heads/{branch}^{{commit}}")])
    }

    /// Whether `head` has commits `base` lacks.
    pub fn ahead(&self, head: &str, base: &str) -> bool {
        self.git(&["rev-list", "--count", &format!("refs/heads/{base}..refs/heads/{head}")])
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    }
}

/// A loopback server of fixed files (`GET /path` -> 200 with the bytes, else 404): a release
/// download site for the pipelines' install step. Stops when dropped.
pub struct StaticFiles {
    server: Server,
}

impl StaticFiles {
    /// Serves `files` (path -> bytes).
    pub async fn start(files: Vec<(String, Vec<u8>)>) -> StaticFiles {
        let files: std::collections::HashMap<String, Bytes> =
            files.into_iter().map(|(p, b)| (p, Bytes::from(b))).collect();
        let server = serve(Arc::new(move |req: Req| match files.get(&req.path) {
            Some(bytes) if req.method == "GET" => Response::new(Full::new(bytes.clone())),
            _ => {
                let mut r = Response::new(Full::new(Bytes::from_static(b"Not Found")));
                *r.status_mut() = hyper::StatusCode::NOT_FOUND;
                r
            }
        }))
        .await;
        StaticFiles { server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}
