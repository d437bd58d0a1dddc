//! Azure DevOps Git pull requests, REST API 7.1 (Services and Server).
//!
//! - search: `GET {collection}/{project}/_apis/git/repositories/{repository}/pullrequests
//!   ?searchCriteria.sourceRefName=refs/heads/{branch}&searchCriteria.status=active&$top=100&$skip=N
//!   &api-version=7.1` -> `{"value": [...], "count": n}` (the target is matched here; pages until an empty one);
//! - create: `POST …/pullrequests?api-version=7.1` `{sourceRefName, targetRefName, title, description}`
//!   -> 201; 409 `GitPullRequestExistsException` (TF401179) when one is active;
//! - update: `PATCH …/pullrequests/{id}?api-version=7.1` `{title, description}` -> 200.
//!
//! Settings from the agent's predefined variables: `SYSTEM_COLLECTIONURI`, `SYSTEM_TEAMPROJECTID` (else
//! `SYSTEM_TEAMPROJECT`), `BUILD_REPOSITORY_ID` (else `BUILD_REPOSITORY_NAME`), and `SYSTEM_ACCESSTOKEN`,
//! which a step only has when it maps it (`env: SYSTEM_ACCESSTOKEN: $(System.AccessToken)`).
//! Azure DevOps answers a request it cannot authenticate with HTTP 203 and its sign-in page; that is an
//! authentication failure here, not a success.

use serde_json::{Value, json};

use super::{Answer, Api, Existing, Http, MAX_PAGES, PrError, PullRequest, Result, api_base};

const API: &str = "Azure DevOps API";
const API_VERSION: &str = "7.1";
/// Azure DevOps' limit on a pull request description.
const MAX_DESCRIPTION_CHARS: usize = 4_000;
const PAGE: usize = 100;
const HEADERS: [(&str, &str); 1] = [("accept", "application/json")];

/// The pull request API of one repository.
pub(super) struct AzureDevOps {
    http: Http,
    /// `…/_apis/git/repositories/{repository}/pullrequests`.
    pullrequests: reqwest::Url,
}

impl AzureDevOps {
    pub(super) fn from_env(
        token: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> std::result::Result<AzureDevOps, String> {
        let var = |names: &[&str]| names.iter().find_map(|n| env(n).filter(|v| !v.trim().is_empty()));
        let missing = |what: &str| {
            format!("{what} is not set; Azure Pipelines sets it on every agent; elsewhere set it yourself")
        };
        let collection = var(&["SYSTEM_COLLECTIONURI"]).ok_or_else(|| missing("SYSTEM_COLLECTIONURI"))?;
        let project = var(&["SYSTEM_TEAMPROJECTID", "SYSTEM_TEAMPROJECT"])
            .ok_or_else(|| missing("SYSTEM_TEAMPROJECT"))?;
        let repository = var(&["BUILD_REPOSITORY_ID", "BUILD_REPOSITORY_NAME"])
            .ok_or_else(|| missing("BUILD_REPOSITORY_ID"))?;
        let mut url = api_base("SYSTEM_COLLECTIONURI", &collection)?;
        url.path_segments_mut()
            .map_err(|_| format!("SYSTEM_COLLECTIONURI {collection:?} cannot be a base URL"))?
            .pop_if_empty()
            // Segments are percent-encoded: project names may hold spaces.
            .extend([project.as_str(), "_apis", "git", "repositories", repository.as_str(), "pullrequests"]);
        Ok(AzureDevOps { http: Http::new(API, token)?, pullrequests: url })
    }

    fn url(&self, id: Option<u64>) -> reqwest::Url {
        let mut url = self.pullrequests.clone();
        if let Some(id) = id
            && let Ok(mut segments) = url.path_segments_mut()
        {
            segments.push(&id.to_string());
        }
        url.query_pairs_mut().append_pair("api-version", API_VERSION);
        url
    }

    fn check(&self, action: &str, answer: &Answer, ok: u16) -> Result<()> {
        if answer.status == ok {
            return Ok(());
        }
        let message = answer.body.get("message").and_then(Value::as_str).map(str::to_owned);
        Err(self.http.error(action, answer, message, hint(answer.status)))
    }
}

fn hint(status: u16) -> String {
    match status {
        203 | 401 => "the token was not accepted (Azure DevOps answers 203 with its sign-in page or 401): map \
                      SYSTEM_ACCESSTOKEN: $(System.AccessToken) into the step's env, and check the job's token \
                      scope is not limited away from this repository"
            .into(),
        403 => "the build service identity needs Contribute and Contribute to pull requests on the repository \
                (Project settings > Repositories > Security > <project> Build Service)"
            .into(),
        404 => "check SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT(ID) and BUILD_REPOSITORY_ID; Azure DevOps also answers \
                404 when the identity cannot read the repository"
            .into(),
        400 => "Azure DevOps refused the request: check that --pr-base names an existing branch".into(),
        _ => "Azure DevOps is throttling or failing; rerun the job later".into(),
    }
}

fn existing(pr: &Value) -> Option<Existing> {
    let number = pr.get("pullRequestId")?.as_u64()?;
    // The web page: the repository's webUrl + /pullrequest/{id}; else the API URL.
    let url = match pr.pointer("/repository/webUrl").and_then(Value::as_str) {
        Some(web) => format!("{}/pullrequest/{number}", web.trim_end_matches('/')),
        None => pr.get("url")?.as_str()?.to_owned(),
    };
    Some(Existing { number, url })
}

fn refs(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

impl Api for AzureDevOps {
    fn find_open(&self, head: &str, base: &str) -> Result<Option<Existing>> {
        let action = format!("search active pull requests from {head}");
        let mut skip = 0;
        for _ in 0..MAX_PAGES {
            let mut url = self.url(None);
            url.query_pairs_mut()
                .append_pair("searchCriteria.sourceRefName", &refs(head))
                .append_pair("searchCriteria.status", "active")
                .append_pair("$top", &PAGE.to_string())
                .append_pair("$skip", &skip.to_string());
            let answer = self.http.send(&action, self.http.client.get(url), &HEADERS)?;
            self.check(&action, &answer, 200)?;
            let list =
                answer.body.get("value").and_then(Value::as_array).ok_or_else(|| PrError::Transport {
                    api: API,
                    action: action.clone(),
                    message: "the answer has no `value` list".into(),
                })?;
            // One branch may have pull requests into several targets (paged); the target is matched here.
            let found = list.iter().find(|pr| {
                pr.get("sourceRefName").and_then(Value::as_str) == Some(&refs(head))
                    && pr.get("targetRefName").and_then(Value::as_str) == Some(&refs(base))
                    && pr.get("status").and_then(Value::as_str) == Some("active")
            });
            if let Some(pr) = found {
                return existing(pr).map(Some).ok_or_else(|| PrError::Transport {
                    api: API,
                    action: action.clone(),
                    message: "a listed pull request lacks pullRequestId".into(),
                });
            }
            // The server may cap `$top` below what was asked: only an empty page ends the list.
            if list.is_empty() {
                return Ok(None);
            }
            skip += list.len();
        }
        Err(PrError::Transport {
            api: API,
            action,
            message: format!("more than {MAX_PAGES} pages of active pull requests from one branch"),
        })
    }

    fn create(&self, head: &str, base: &str, pr: &PullRequest) -> Result<Option<Existing>> {
        let action = format!("create a pull request from {head} into {base}");
        let body = json!({
            "sourceRefName": refs(head),
            "targetRefName": refs(base),
            "title": pr.title,
            "description": pr.body,
        });
        let answer = self.http.send(
            &action,
            self.http
                .client
                .post(self.url(None))
                .header("content-type", "application/json")
                .body(body.to_string()),
            &HEADERS,
        )?;
        if answer.status == 409
            && answer.body.get("typeKey").and_then(Value::as_str) == Some("GitPullRequestExistsException")
        {
            return Ok(None);
        }
        self.check(&action, &answer, 201)?;
        existing(&answer.body).map(Some).ok_or_else(|| PrError::Transport {
            api: API,
            action,
            message: "the created pull request lacks pullRequestId".into(),
        })
    }

    fn update(&self, found: &Existing, pr: &PullRequest) -> Result<Existing> {
        let action = format!("update pull request {}", found.number);
        let body = json!({"title": pr.title, "description": pr.body});
        let answer = self.http.send(
            &action,
            self.http
                .client
                .patch(self.url(Some(found.number)))
                .header("content-type", "application/json")
                .body(body.to_string()),
            &HEADERS,
        )?;
        self.check(&action, &answer, 200)?;
        Ok(existing(&answer.body).unwrap_or_else(|| found.clone()))
    }

    fn max_body_chars(&self) -> usize {
        MAX_DESCRIPTION_CHARS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_from_the_agent_variables_and_encode_the_project() {
        let vars = [
            ("SYSTEM_COLLECTIONURI", "https://dev.azure.com/contoso/"),
            ("SYSTEM_TEAMPROJECT", "Config Repos"),
            ("BUILD_REPOSITORY_ID", "0f4c8a5e-0000-4000-8000-000000000001"),
        ];
        let env = |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
        let ado = AzureDevOps::from_env("t0ken", &env).unwrap();
        assert_eq!(
            ado.url(Some(7)).as_str(),
            "https://dev.azure.com/contoso/Config%20Repos/_apis/git/repositories/\
             0f4c8a5e-0000-4000-8000-000000000001/pullrequests/7?api-version=7.1"
        );
        let none = |_: &str| None;
        assert!(AzureDevOps::from_env("t", &none).err().unwrap().contains("SYSTEM_COLLECTIONURI"));
    }

    #[test]
    fn web_urls_prefer_the_repository_page() {
        let pr = json!({"pullRequestId": 12, "url": "https://api/x/12",
            "repository": {"webUrl": "https://dev.azure.com/contoso/p/_git/config"}});
        assert_eq!(existing(&pr).unwrap().url, "https://dev.azure.com/contoso/p/_git/config/pullrequest/12");
        assert_eq!(existing(&json!({"pullRequestId": 3, "url": "u"})).unwrap().url, "u");
        assert!(existing(&json!({"url": "u"})).is_none());
    }
}
