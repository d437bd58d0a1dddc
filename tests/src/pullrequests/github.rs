//! A GitHub REST API v3 `pulls` stand-in for one repository (`owner/name`), as
//! `api.github.com` answers (<https://docs.github.com/rest/pulls/pulls>):
//!
//! - `GET /repos/{o}/{r}/pulls?state=&head=owner:branch&base=&per_page=&page=`: open pull requests by
//!   default, newest first, `per_page` 30 by default and at most 100 (lower with
//!   [`GitHubStandIn::set_max_per_page`] to exercise paging), `Link` with `rel="next"`/`"last"`;
//! - `POST /repos/{o}/{r}/pulls` `{title, head, base, body}` -> 201; 422 `Validation Failed` when the head
//!   branch is not on the remote, has no commits the base lacks, or already has an open pull request into it;
//! - `PATCH /repos/{o}/{r}/pulls/{n}` `{title, body}` -> 200.
//!
//! Authentication as GitHub does it: no `Authorization` -> 401 `Requires authentication`; an unknown token ->
//! 401 `Bad credentials`; a read-only token writing -> 403 `Resource not accessible by integration`; no
//! `User-Agent` -> 403 (GitHub refuses such requests); another repository -> 404 `Not Found`.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{Remote, Req, Server, json, serve};

const DOCS: &str = "https://docs.github.com/rest/pulls/pulls";

/// One pull request as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// Number.
    pub number: u64,
    /// Title.
    pub title: String,
    /// Body.
    pub body: String,
    /// Head branch.
    pub head: String,
    /// Base branch.
    pub base: String,
    /// `open` or `closed`.
    pub state: String,
    /// Head commit when opened or last updated.
    pub head_sha: String,
}

struct State {
    owner: String,
    repo: String,
    /// Token -> may write.
    tokens: Vec<(String, bool)>,
    pulls: Vec<Pull>,
    max_per_page: usize,
    log: Vec<String>,
}

/// The stand-in server.
pub struct GitHubStandIn {
    server: Server,
    state: Arc<Mutex<State>>,
}

impl GitHubStandIn {
    /// Serves `owner/repo`, whose git remote is the bare repository `remote`. `token` may read and write.
    pub async fn start(owner: &str, repo: &str, remote: &std::path::Path, token: &str) -> GitHubStandIn {
        let state = Arc::new(Mutex::new(State {
            owner: owner.into(),
            repo: repo.into(),
            tokens: vec![(token.into(), true)],
            pulls: Vec::new(),
            max_per_page: 100,
            log: Vec::new(),
        }));
        let st = state.clone();
        let remote = Remote(remote.to_path_buf());
        let server = serve(Arc::new(move |req| handle(&st, &remote, req))).await;
        GitHubStandIn { server, state }
    }

    /// `GITHUB_API_URL` for arcseal.
    pub fn url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Adds a token that may only read (a `GITHUB_TOKEN` with `pull-requests: read`).
    pub fn add_read_only_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.push((token.into(), false));
    }

    /// Caps `per_page` (GitHub's cap is 100).
    pub fn set_max_per_page(&self, n: usize) {
        self.state.lock().unwrap().max_per_page = n.max(1);
    }

    /// Adds a pull request directly (as if someone else opened it); returns its number.
    pub fn add_pull(&self, head: &str, base: &str, title: &str, state: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let number = s.pulls.len() as u64 + 1;
        s.pulls.push(Pull {
            number,
            title: title.into(),
            body: String::new(),
            head: head.into(),
            base: base.into(),
            state: state.into(),
            head_sha: String::new(),
        });
        number
    }

    /// Every pull request.
    pub fn pulls(&self) -> Vec<Pull> {
        self.state.lock().unwrap().pulls.clone()
    }

    /// Requests so far (`METHOD path?query`).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

fn error(
    status: u16,
    message: &str,
    extra: Option<Value>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut body = json!({"message": message, "documentation_url": DOCS, "status": status.to_string()});
    if let Some(errors) = extra {
        body["errors"] = errors;
    }
    json(status, &body, &[])
}

fn render(s: &State, p: &Pull, base_url: &str) -> Value {
    let repo = format!("{}/{}", s.owner, s.repo);
    json!({
        "url": format!("{base_url}/repos/{repo}/pulls/{}", p.number),
        "id": 1_000_000 + p.number,
        "number": p.number,
        "html_url": format!("https://github.com/{repo}/pull/{}", p.number),
        "state": p.state,
        "title": p.title,
        "body": p.body,
        "head": {"label": format!("{}:{}", s.owner, p.head), "ref": p.head, "sha": p.head_sha},
        "base": {"label": format!("{}:{}", s.owner, p.base), "ref": p.base},
    })
}

fn handle(
    state: &Mutex<State>,
    remote: &Remote,
    req: Req,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut s = state.lock().unwrap();
    let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.log.push(format!("{} {}?{}", req.method, req.path, query.join("&")));
    if req.header("user-agent").is_none_or(str::is_empty) {
        return error(
            403,
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header \
             (https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required).",
            None,
        );
    }
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("token ")))
        .map(str::to_owned);
    let Some(token) = token else { return error(401, "Requires authentication", None) };
    let Some(&(_, may_write)) = s.tokens.iter().find(|(t, _)| *t == token) else {
        return error(401, "Bad credentials", None);
    };
    let host = req.header("host").unwrap_or("127.0.0.1").to_owned();
    let base_url = format!("http://{host}");
    let prefix = format!("/repos/{}/{}/pulls", s.owner, s.repo);
    let Some(rest) = req.path.strip_prefix(&prefix) else { return error(404, "Not Found", None) };
    let number: Option<u64> = match rest {
        "" | "/" => None,
        n => match n.trim_start_matches('/').parse() {
            Ok(n) => Some(n),
            Err(_) => return error(404, "Not Found", None),
        },
    };
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return error(400, "Problems parsing JSON", None),
        }
    };
    if req.method != "GET" && !may_write {
        return error(403, "Resource not accessible by integration", None);
    }
    match (req.method.as_str(), number) {
        ("GET", None) => list(&s, &req, &base_url, &prefix),
        ("POST", None) => create(&mut s, remote, &body, &base_url),
        ("PATCH", Some(n)) => {
            let Some(i) = s.pulls.iter().position(|p| p.number == n) else {
                return error(404, "Not Found", None);
            };
            if let Some(long) =
                body.get("body").and_then(Value::as_str).filter(|b| b.chars().count() > 65_536)
            {
                let _ = long;
                return error(
                    422,
                    "Validation Failed",
                    Some(json!([{"resource": "Issue", "code": "custom",
                    "field": "body", "message": "body is too long (maximum is 65536 characters)"}])),
                );
            }
            if let Some(t) = body.get("title").and_then(Value::as_str) {
                s.pulls[i].title = t.into();
            }
            if let Some(b) = body.get("body").and_then(Value::as_str) {
                s.pulls[i].body = b.into();
            }
            let head = s.pulls[i].head.clone();
            s.pulls[i].head_sha = remote.head(&head).unwrap_or_default();
            let p = s.pulls[i].clone();
            json(200, &render(&s, &p, &base_url), &[])
        }
        ("GET", Some(n)) => match s.pulls.iter().find(|p| p.number == n) {
            Some(p) => json(200, &render(&s, p, &base_url), &[]),
            None => error(404, "Not Found", None),
        },
        _ => error(404, "Not Found", None),
    }
}

fn list(
    s: &State,
    req: &Req,
    base_url: &str,
    prefix: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let state = req.param("state").unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "field": "state", "code": "invalid"}])),
        );
    }
    // `head` is `user:ref`; GitHub ignores a value without the owner prefix.
    let head =
        req.param("head").and_then(|h| h.split_once(':')).filter(|(o, _)| *o == s.owner).map(|(_, r)| r);
    let per_page =
        req.param("per_page").and_then(|p| p.parse().ok()).unwrap_or(30usize).clamp(1, s.max_per_page);
    let page = req.param("page").and_then(|p| p.parse().ok()).unwrap_or(1usize).max(1);
    let matching: Vec<&Pull> = s
        .pulls
        .iter()
        .rev()
        .filter(|p| state == "all" || p.state == state)
        .filter(|p| head.is_none_or(|h| p.head == h))
        .filter(|p| req.param("base").is_none_or(|b| p.base == b))
        .collect();
    let pages = matching.len().div_ceil(per_page).max(1);
    let items: Vec<Value> =
        matching.iter().skip((page - 1) * per_page).take(per_page).map(|p| render(s, p, base_url)).collect();
    let mut links = Vec::new();
    let page_url = |n: usize| {
        let mut q: Vec<(String, String)> = req.query.iter().filter(|(k, _)| k != "page").cloned().collect();
        q.push(("page".into(), n.to_string()));
        let q: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(q).finish();
        format!("{base_url}{prefix}?{q}")
    };
    if page < pages {
        links.push(format!("<{}>; rel=\"next\"", page_url(page + 1)));
        links.push(format!("<{}>; rel=\"last\"", page_url(pages)));
    }
    let extra: Vec<(&str, String)> = if links.is_empty() { vec![] } else { vec![("link", links.join(", "))] };
    json(200, &Value::Array(items), &extra)
}

fn create(
    s: &mut State,
    remote: &Remote,
    body: &Value,
    base_url: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
    let (Some(title), Some(head), Some(base)) = (field("title"), field("head"), field("base")) else {
        return error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "code": "missing_field", "field": "head"}])),
        );
    };
    let head = head.strip_prefix(&format!("{}:", s.owner)).unwrap_or(&head).to_owned();
    let invalid = |f: &str| {
        error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "field": f, "code": "invalid"}])),
        )
    };
    let Some(sha) = remote.head(&head) else { return invalid("head") };
    if remote.head(&base).is_none() {
        return invalid("base");
    }
    let text = field("body").unwrap_or_default();
    if text.chars().count() > 65_536 {
        return error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "Issue", "code": "custom", "field": "body",
            "message": "body is too long (maximum is 65536 characters)"}])),
        );
    }
    if s.pulls.iter().any(|p| p.state == "open" && p.head == head && p.base == base) {
        return error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "code": "custom",
            "message": format!("A pull request already exists for {}:{head}.", s.owner)}])),
        );
    }
    if !remote.ahead(&head, &base) {
        return error(
            422,
            "Validation Failed",
            Some(json!([{"resource": "PullRequest", "code": "custom",
            "message": format!("No commits between {base} and {head}")}])),
        );
    }
    let number = s.pulls.len() as u64 + 1;
    let pull = Pull { number, title, body: text, head, base, state: "open".into(), head_sha: sha };
    s.pulls.push(pull.clone());
    json(201, &render(s, &pull, base_url), &[])
}
