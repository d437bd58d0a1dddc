//! An Azure DevOps Git `pullrequests` stand-in (REST API 7.1) for one repository in one project of
//! one organisation, as `dev.azure.com` answers
//! (<https://learn.microsoft.com/rest/api/azure/devops/git/pull-requests>):
//!
//! - `GET /{org}/{project}/_apis/git/repositories/{repo}/pullrequests?searchCriteria.sourceRefName=
//!   &searchCriteria.targetRefName=&searchCriteria.status=&$top=&$skip=&api-version=7.1` ->
//!   `{"value": [...], "count": n}`, newest first, status `active` by default, `$top` capped by
//!   [`AzureDevOpsStandIn::set_max_top`] (to exercise paging);
//! - `POST …/pullrequests?api-version=7.1` `{sourceRefName, targetRefName, title, description}` -> 201;
//!   409 `GitPullRequestExistsException` (TF401179) when an active one exists for the same branches; 400
//!   when a branch is not on the remote or the description exceeds 4000 characters;
//! - `PATCH …/pullrequests/{id}?api-version=7.1` `{title, description}` -> 200.
//!
//! Project and repository are accepted by name or id. Authentication as Azure DevOps does it: no
//! `Authorization` -> 203 with the HTML sign-in page; an unknown token -> 401 (TF400813); a token whose
//! identity lacks PullRequestContribute writing -> 403 (TF401027); no `api-version` -> 400; another
//! repository -> 404 (TF401019). Error bodies have the service's `$id/innerException/message/typeName/
//! typeKey/errorCode/eventId` shape.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{Remote, Req, Server, json, serve};

/// One pull request as the stand-in keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// `pullRequestId`.
    pub id: u64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `refs/heads/...`.
    pub source: String,
    /// `refs/heads/...`.
    pub target: String,
    /// `active`, `completed` or `abandoned`.
    pub status: String,
}

struct State {
    org: String,
    project: (String, String),
    repo: (String, String),
    /// Token -> may contribute to pull requests.
    tokens: Vec<(String, bool)>,
    prs: Vec<PullRequest>,
    max_top: usize,
    log: Vec<String>,
}

/// The stand-in server.
pub struct AzureDevOpsStandIn {
    server: Server,
    state: Arc<Mutex<State>>,
}

/// The project id the stand-in gives its project.
pub const PROJECT_ID: &str = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c";
/// The repository id the stand-in gives its repository.
pub const REPOSITORY_ID: &str = "3411ebc1-d5aa-464f-9615-0b527bc66719";

impl AzureDevOpsStandIn {
    /// Serves `org/project/_git/repo`, whose git remote is the bare repository `remote`; `token` may write.
    pub async fn start(org: &str, project: &str, repo: &str, remote: &std::path::Path, token: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            org: org.into(),
            project: (project.into(), PROJECT_ID.into()),
            repo: (repo.into(), REPOSITORY_ID.into()),
            tokens: vec![(token.into(), true)],
            prs: Vec::new(),
            max_top: 1000,
            log: Vec::new(),
        }));
        let st = state.clone();
        let remote = Remote(remote.to_path_buf());
        let server = serve(Arc::new(move |req| handle(&st, &remote, req))).await;
        AzureDevOpsStandIn { server, state }
    }

    /// `SYSTEM_COLLECTIONURI` for arcseal (with the trailing slash the agent gives it).
    pub fn collection_uri(&self) -> String {
        format!("http://{}/{}/", self.server.addr, self.state.lock().unwrap().org)
    }

    /// Adds a token whose identity may read but not contribute to pull requests.
    pub fn add_read_only_token(&self, token: &str) {
        self.state.lock().unwrap().tokens.push((token.into(), false));
    }

    /// Caps `$top`.
    pub fn set_max_top(&self, n: usize) {
        self.state.lock().unwrap().max_top = n.max(1);
    }

    /// Adds a pull request directly (as if someone else opened it); returns its id.
    pub fn add_pull_request(&self, source: &str, target: &str, title: &str, status: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        let id = s.prs.len() as u64 + 1;
        s.prs.push(PullRequest {
            id,
            title: title.into(),
            description: String::new(),
            source: format!("refs/heads/{source}"),
            target: format!("refs/heads/{target}"),
            status: status.into(),
        });
        id
    }

    /// Every pull request.
    pub fn pull_requests(&self) -> Vec<PullRequest> {
        self.state.lock().unwrap().prs.clone()
    }

    /// Requests so far (`METHOD path?query`).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }
}

type Answer = hyper::Response<http_body_util::Full<bytes::Bytes>>;

fn error(status: u16, message: &str, type_key: &str) -> Answer {
    let namespace = if type_key.starts_with("Git") {
        "Microsoft.TeamFoundation.Git.Server"
    } else {
        "Microsoft.VisualStudio.Services.WebApi"
    };
    json(
        status,
        &json!({
            "$id": "1",
            "innerException": null,
            "message": message,
            "typeName": format!("{namespace}.{type_key}, {namespace}"),
            "typeKey": type_key,
            "errorCode": 0,
            "eventId": 3000
        }),
        &[("activityid", "7d3f7a2e-0000-4000-8000-000000000000".into())],
    )
}

fn sign_in_page() -> Answer {
    let mut r = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
        b"<!DOCTYPE html><html><head><title>Azure DevOps Services | Sign In</title></head><body></body></html>",
    )));
    *r.status_mut() = hyper::StatusCode::NON_AUTHORITATIVE_INFORMATION;
    r.headers_mut().insert("content-type", "text/html; charset=utf-8".parse().expect("header"));
    r
}

fn render(s: &State, p: &PullRequest, base: &str) -> Value {
    let (project, project_id) = &s.project;
    let (repo, repo_id) = &s.repo;
    let api = format!("{base}/{}/{project_id}/_apis/git/repositories/{repo_id}", s.org);
    json!({
        "repository": {
            "id": repo_id,
            "name": repo,
            "url": api,
            "webUrl": format!("https://dev.azure.com/{}/{project}/_git/{repo}", s.org),
            "project": {"id": project_id, "name": project, "state": "wellFormed"}
        },
        "pullRequestId": p.id,
        "codeReviewId": p.id,
        "status": p.status,
        "createdBy": {"displayName": "Project Collection Build Service", "uniqueName": "Build\\6ce954b1"},
        "title": p.title,
        "description": p.description,
        "sourceRefName": p.source,
        "targetRefName": p.target,
        "mergeStatus": "queued",
        "isDraft": false,
        "url": format!("{api}/pullRequests/{}", p.id),
        "supportsIterations": true
    })
}

fn handle(state: &Mutex<State>, remote: &Remote, req: Req) -> Answer {
    let mut s = state.lock().unwrap();
    let query: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    s.log.push(format!("{} {}?{}", req.method, req.path, query.join("&")));
    let Some(auth) = req.header("authorization") else { return sign_in_page() };
    let token = auth.strip_prefix("Bearer ").unwrap_or("");
    let Some(&(_, may_write)) = s.tokens.iter().find(|(t, _)| !t.is_empty() && t == token) else {
        return error(
            401,
            "TF400813: The user '' is not authorized to access this resource.",
            "UnauthorizedRequestException",
        );
    };
    let base = format!("http://{}", req.header("host").unwrap_or("127.0.0.1"));
    // /{org}/{project}/_apis/git/repositories/{repo}/pullrequests[/{id}]
    let segments: Vec<String> = req.path.split('/').skip(1).map(percent_decode).collect();
    let (project_ok, repo_ok, rest) = match segments.as_slice() {
        [org, project, a, g, r, repo, pr, rest @ ..]
            if *org == s.org
                && a == "_apis"
                && g == "git"
                && r == "repositories"
                && pr.eq_ignore_ascii_case("pullrequests") =>
        {
            let matches = |name: &str, (n, id): &(String, String)| {
                name.eq_ignore_ascii_case(n) || name.eq_ignore_ascii_case(id)
            };
            (matches(project, &s.project), matches(repo, &s.repo), rest.to_vec())
        }
        _ => {
            return error(
                404,
                "The controller for path was not found or does not implement IController.",
                "HttpException",
            );
        }
    };
    if !project_ok || !repo_ok {
        return error(
            404,
            "TF401019: The Git repository with name or identifier x does not exist or you do not have permissions for the operation you are attempting.",
            "GitRepositoryNotFoundException",
        );
    }
    match req.param("api-version") {
        Some(v) if v.starts_with("7.") || v.starts_with("6.") => {}
        Some(_) => {
            return error(
                400,
                "The requested REST API version is out of range.",
                "VssVersionOutOfRangeException",
            );
        }
        None => {
            return error(
                400,
                &format!(
                    "No api-version was supplied for the \"{}\" request. The version must be supplied either as part of the Accept header (e.g. \"application/json; api-version=1.0\") or as a query parameter (e.g. \"?api-version=1.0\").",
                    req.method
                ),
                "VssVersionNotSpecifiedException",
            );
        }
    }
    if req.method != "GET" && !may_write {
        return error(
            403,
            "TF401027: You need the Git 'PullRequestContribute' permission to perform this action. Details: identity 'Build\\6ce954b1', scope 'repository'.",
            "GitNeedsPermissionException",
        );
    }
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => {
                return error(
                    400,
                    "Value cannot be null.\r\nParameter name: gitPullRequestToCreate",
                    "ArgumentNullException",
                );
            }
        }
    };
    let id: Option<u64> = match rest.as_slice() {
        [] => None,
        [id] => match id.parse() {
            Ok(id) => Some(id),
            Err(_) => {
                return error(400, "The pull request id is not valid.", "InvalidArgumentValueException");
            }
        },
        _ => return error(404, "The controller for path was not found.", "HttpException"),
    };
    match (req.method.as_str(), id) {
        ("GET", None) => {
            let status = req.param("searchCriteria.status").unwrap_or("active");
            let top = req.param("$top").and_then(|t| t.parse().ok()).unwrap_or(101usize).min(s.max_top);
            let skip = req.param("$skip").and_then(|t| t.parse().ok()).unwrap_or(0usize);
            let items: Vec<Value> = s
                .prs
                .iter()
                .rev()
                .filter(|p| status == "all" || p.status == status)
                .filter(|p| req.param("searchCriteria.sourceRefName").is_none_or(|r| p.source == r))
                .filter(|p| req.param("searchCriteria.targetRefName").is_none_or(|r| p.target == r))
                .skip(skip)
                .take(top)
                .map(|p| render(&s, p, &base))
                .collect();
            let count = items.len();
            json(200, &json!({"value": items, "count": count}), &[])
        }
        ("POST", None) => {
            let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_owned);
            let (Some(source), Some(target)) = (field("sourceRefName"), field("targetRefName")) else {
                return error(
                    400,
                    "The source and target ref names must be provided.",
                    "InvalidArgumentValueException",
                );
            };
            let branch = |r: &str| r.strip_prefix("refs/heads/").map(str::to_owned);
            let (Some(sb), Some(tb)) = (branch(&source), branch(&target)) else {
                return error(
                    400,
                    "TF401398: The pull request cannot be activated because the source and/or the target branch no longer exists, or the requested refs are not branches.",
                    "GitPullRequestCannotBeActivated",
                );
            };
            if remote.head(&sb).is_none() || remote.head(&tb).is_none() {
                return error(
                    400,
                    "TF401398: The pull request cannot be activated because the source and/or the target branch no longer exists, or the requested refs are not branches.",
                    "GitPullRequestCannotBeActivated",
                );
            }
            let description = field("description").unwrap_or_default();
            if description.chars().count() > 4000 {
                return error(
                    400,
                    "The description of the pull request is too long. The maximum length is 4000 characters.",
                    "InvalidArgumentValueException",
                );
            }
            if s.prs.iter().any(|p| p.status == "active" && p.source == source && p.target == target) {
                return error(
                    409,
                    "TF401179: An active pull request for the source and target branch already exists.",
                    "GitPullRequestExistsException",
                );
            }
            let id = s.prs.len() as u64 + 1;
            let pr = PullRequest {
                id,
                title: field("title").unwrap_or_default(),
                description,
                source,
                target,
                status: "active".into(),
            };
            s.prs.push(pr.clone());
            json(201, &render(&s, &pr, &base), &[])
        }
        ("PATCH", Some(id)) => {
            let Some(i) = s.prs.iter().position(|p| p.id == id) else {
                return error(
                    404,
                    "TF401180: The requested pull request was not found.",
                    "GitPullRequestNotFoundException",
                );
            };
            if let Some(d) = body.get("description").and_then(Value::as_str) {
                if d.chars().count() > 4000 {
                    return error(
                        400,
                        "The description of the pull request is too long. The maximum length is 4000 characters.",
                        "InvalidArgumentValueException",
                    );
                }
                s.prs[i].description = d.into();
            }
            if let Some(t) = body.get("title").and_then(Value::as_str) {
                s.prs[i].title = t.into();
            }
            let pr = s.prs[i].clone();
            json(200, &render(&s, &pr, &base), &[])
        }
        _ => error(405, "The requested resource does not support http method.", "HttpException"),
    }
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}
