//! GitHub REST API v3 pull requests (github.com and GitHub Enterprise Server).
//!
//! - list: `GET /repos/{owner}/{repo}/pulls?state=open&head={owner}:{branch}&per_page=100` (the base is
//!   matched here),
//!   following `Link: <…>; rel="next"` on the API's own origin only;
//! - create: `POST /repos/{owner}/{repo}/pulls` `{title, head, base, body}` -> 201; 422 with
//!   "A pull request already exists for …" when one is open;
//! - update: `PATCH /repos/{owner}/{repo}/pulls/{number}` `{title, body}` -> 200.
//!
//! Settings from the Actions runner's environment: `GITHUB_TOKEN`, `GITHUB_REPOSITORY` (`owner/name`),
//! `GITHUB_API_URL` (set by the runner; `https://api.github.com` when absent, the GHES URL there).

use serde_json::{Value, json};

use super::{Answer, Api, Existing, Http, MAX_PAGES, PrError, PullRequest, Result, api_base};

const API: &str = "GitHub API";
/// GitHub's limit on a pull request body.
const MAX_BODY_CHARS: usize = 65_536;
const HEADERS: [(&str, &str); 2] =
    [("accept", "application/vnd.github+json"), ("x-github-api-version", "2022-11-28")];

/// The pulls API of one repository.
pub(super) struct GitHub {
    http: Http,
    /// `…/repos/{owner}/{repo}/pulls`.
    pulls: reqwest::Url,
    owner: String,
    repository: String,
}

impl GitHub {
    pub(super) fn from_env(
        token: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<GitHub, String> {
        let repository = env("GITHUB_REPOSITORY").filter(|r| !r.is_empty()).ok_or(
            "GITHUB_REPOSITORY is not set; GitHub Actions sets it (owner/name); elsewhere set it yourself",
        )?;
        let (owner, name) = repository
            .split_once('/')
            .filter(|(o, n)| {
                let ok = |s: &str| {
                    !s.is_empty()
                        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                };
                ok(o) && ok(n)
            })
            .ok_or_else(|| format!("GITHUB_REPOSITORY {repository:?} is not owner/name"))?;
        let base = env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
        let mut pulls = api_base("GITHUB_API_URL", &base)?;
        pulls
            .path_segments_mut()
            .map_err(|_| format!("GITHUB_API_URL {base:?} cannot be a base URL"))?
            .pop_if_empty()
            .extend(["repos", owner, name, "pulls"]);
        Ok(GitHub {
            http: Http::new(API, token)?,
            pulls,
            owner: owner.to_owned(),
            repository: repository.clone(),
        })
    }

    fn check(&self, action: &str, answer: &Answer, ok: u16) -> Result<()> {
        if answer.status == ok {
            return Ok(());
        }
        Err(self.http.error(action, answer, message(&answer.body), self.hint(answer.status)))
    }

    fn hint(&self, status: u16) -> String {
        match status {
            401 => "the token was refused (expired, revoked or not a token): pass GITHUB_TOKEN: ${{ github.token }} \
                    (or a GitHub App installation token) in the step's env"
                .into(),
            403 => "the token may not do this: give the job `permissions: contents: write, pull-requests: write` and \
                    allow GitHub Actions to create pull requests (repository or organisation Settings > Actions > \
                    General); a 403 with a rate-limit message means rerun later"
                .into(),
            404 => format!(
                "check GITHUB_REPOSITORY ({}) and GITHUB_API_URL; GitHub also answers 404 when the token cannot see \
                 the repository",
                self.repository
            ),
            422 => "GitHub refused the request: check that --pr-base names an existing branch and that the rotation \
                    branch has commits it lacks"
                .into(),
            _ => "GitHub is throttling or failing; rerun the job later".into(),
        }
    }
}

/// GitHub's error text: `message`, then each `errors[].message` (or `code`).
fn message(body: &Value) -> Option<String> {
    let mut text = body.get("message")?.as_str()?.to_owned();
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let details: Vec<&str> = errors
            .iter()
            .filter_map(|e| e.get("message").or_else(|| e.get("code")).and_then(Value::as_str))
            .collect();
        if !details.is_empty() {
            text.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    Some(text)
}

fn existing(pr: &Value) -> Option<Existing> {
    Some(Existing { number: pr.get("number")?.as_u64()?, url: pr.get("html_url")?.as_str()?.to_owned() })
}

impl Api for GitHub {
    fn find_open(&self, head: &str, base: &str) -> Result<Option<Existing>> {
        let action = format!("list open pull requests from {head}");
        let mut url = self.pulls.clone();
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("head", &format!("{}:{head}", self.owner))
            .append_pair("per_page", "100");
        for _ in 0..MAX_PAGES {
            let answer = self.http.send(&action, self.http.client.get(url.clone()), &HEADERS)?;
            self.check(&action, &answer, 200)?;
            let list = answer.body.as_array().ok_or_else(|| PrError::Transport {
                api: API,
                action: action.clone(),
                message: "the answer is not a list of pull requests".into(),
            })?;
            // One branch may have pull requests into several bases (paged); `head` is checked too in case
            // a server ignores the filter.
            let found = list.iter().find(|pr| {
                pr.pointer("/head/ref").and_then(Value::as_str) == Some(head)
                    && pr.pointer("/base/ref").and_then(Value::as_str) == Some(base)
            });
            if let Some(pr) = found {
                return existing(pr).map(Some).ok_or_else(|| PrError::Transport {
                    api: API,
                    action: action.clone(),
                    message: "a listed pull request lacks number or html_url".into(),
                });
            }
            match answer.link.as_deref().and_then(next_link) {
                // The token goes only to the API's own origin.
                Some(next) if next.origin() == self.pulls.origin() => url = next,
                Some(_) => {
                    return Err(PrError::Transport {
                        api: API,
                        action,
                        message: "the next page is on another host; not following it with the token".into(),
                    });
                }
                None => return Ok(None),
            }
        }
        Err(PrError::Transport {
            api: API,
            action,
            message: format!("more than {MAX_PAGES} pages of open pull requests from one branch"),
        })
    }

    fn create(&self, head: &str, base: &str, pr: &PullRequest) -> Result<Option<Existing>> {
        let action = format!("create a pull request from {head} into {base}");
        let body = json!({"title": pr.title, "head": head, "base": base, "body": pr.body, "maintainer_can_modify": false});
        let answer = self.http.send(
            &action,
            self.http
                .client
                .post(self.pulls.clone())
                .header("content-type", "application/json")
                .body(body.to_string()),
            &HEADERS,
        )?;
        if answer.status == 422
            && message(&answer.body).is_some_and(|m| m.contains("A pull request already exists"))
        {
            return Ok(None);
        }
        self.check(&action, &answer, 201)?;
        existing(&answer.body).map(Some).ok_or_else(|| PrError::Transport {
            api: API,
            action,
            message: "the created pull request lacks number or html_url".into(),
        })
    }

    fn update(&self, pr_found: &Existing, pr: &PullRequest) -> Result<Existing> {
        let action = format!("update pull request #{}", pr_found.number);
        let mut url = self.pulls.clone();
        url.path_segments_mut()
            .map_err(|_| PrError::Transport {
                api: API,
                action: action.clone(),
                message: "bad API URL".into(),
            })?
            .push(&pr_found.number.to_string());
        let body = json!({"title": pr.title, "body": pr.body});
        let answer = self.http.send(
            &action,
            self.http.client.patch(url).header("content-type", "application/json").body(body.to_string()),
            &HEADERS,
        )?;
        self.check(&action, &answer, 200)?;
        Ok(existing(&answer.body).unwrap_or_else(|| pr_found.clone()))
    }

    fn max_body_chars(&self) -> usize {
        MAX_BODY_CHARS
    }
}

/// The `rel="next"` URL of an RFC 8288 `Link` header (an untrusted server answer).
pub fn next_link(link: &str) -> Option<reqwest::Url> {
    link.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim();
            p == "rel=\"next\"" || p == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        if is_next { reqwest::Url::parse(target).ok() } else { None }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_give_the_next_page() {
        let link = "<https://api.github.com/repositories/1/pulls?page=2>; rel=\"next\", \
                    <https://api.github.com/repositories/1/pulls?page=5>; rel=\"last\"";
        assert_eq!(next_link(link).unwrap().as_str(), "https://api.github.com/repositories/1/pulls?page=2");
        assert!(next_link("<https://x/?page=1>; rel=\"prev\"").is_none());
        assert!(next_link("garbage").is_none());
    }

    #[test]
    fn error_messages_include_the_validation_errors() {
        let body = json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
            "message": "A pull request already exists for o:b."}], "status": "422"});
        assert_eq!(message(&body).unwrap(), "Validation Failed (A pull request already exists for o:b.)");
        assert_eq!(message(&json!({"message": "Bad credentials"})).unwrap(), "Bad credentials");
        assert!(message(&Value::Null).is_none());
    }

    #[test]
    fn settings_come_from_the_runner_environment() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        let gh = GitHub::from_env("t0ken", &env(&[("GITHUB_REPOSITORY", "acme/config")])).unwrap();
        assert_eq!(gh.pulls.as_str(), "https://api.github.com/repos/acme/config/pulls");
        let ghes = GitHub::from_env(
            "t0ken",
            &env(&[("GITHUB_REPOSITORY", "acme/config"), ("GITHUB_API_URL", "https://ghe.example/api/v3/")]),
        )
        .unwrap();
        assert_eq!(ghes.pulls.as_str(), "https://ghe.example/api/v3/repos/acme/config/pulls");
        assert!(GitHub::from_env("t", &env(&[])).err().unwrap().contains("GITHUB_REPOSITORY"));
        assert!(
            GitHub::from_env("t", &env(&[("GITHUB_REPOSITORY", "a/b/c")]))
                .err()
                .unwrap()
                .contains("owner/name")
        );
        let http = env(&[("GITHUB_REPOSITORY", "a/b"), ("GITHUB_API_URL", "http://ghe.example/api/v3")]);
        assert!(GitHub::from_env("t", &http).err().unwrap().contains("https"));
    }
}
