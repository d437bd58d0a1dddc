//! `arcseal rotate --open-pr`: push the rotation branch and open its pull request, or update the one
//! already open for that branch, on GitHub or Azure DevOps, so a pipeline needs no glue script.
//!
//! Contract:
//! - Everything the pull request needs (token, repository, API base URL, base branch, remote) is read
//!   and checked by [`Target::from_env`] before the rotation writes anything, including one read of
//!   the API (a refused token or a wrong repository fails even a run with nothing due).
//! - [`Target::publish`] force-pushes `refs/heads/<branch>` (the branch belongs to the rotation job: each
//!   run rebuilds it from the base) and then looks for an open pull request from that branch into the
//!   base. One open: its title and body are updated. None: one is created. A create refused because one
//!   appeared meanwhile (GitHub 422, Azure DevOps 409) is resolved by looking again and updating.
//! - The token comes from the pipeline's environment (`GITHUB_TOKEN`, `SYSTEM_ACCESSTOKEN`), travels only
//!   in the `Authorization` header, to the API base URL only (https, or http on loopback for tests), and
//!   never appears in an error: server messages and git output are scrubbed of it and of URL user-info.
//! - Every request has a timeout and every answer is read up to [`MAX_ANSWER_BYTES`].
//!
//! Wire formats: GitHub REST `pulls` (list with `head=owner:branch`, create, update; `Link` pagination)
//! and Azure DevOps Git `pullrequests` 7.1 (`searchCriteria.sourceRefName/targetRefName/status`,
//! `$top`/`$skip` pagination).

pub mod azure_devops;
pub mod github;

pub use github::next_link;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use zeroize::Zeroizing;

/// Largest API answer read; a pull request list page is far smaller.
pub const MAX_ANSWER_BYTES: u64 = 4 << 20;
/// How long one API request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most pages of a pull request list followed (100 per page); more open pull requests from one branch
/// than this means something else is wrong.
const MAX_PAGES: usize = 10;
/// Longest server message quoted in an error.
const MAX_MESSAGE_CHARS: usize = 400;

/// Where the pull request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Provider {
    /// GitHub or GitHub Enterprise Server (REST API v3).
    Github,
    /// Azure DevOps Services or Server (Git REST API 7.1).
    AzureDevops,
}

impl Provider {
    /// The API's name, for messages.
    pub fn api_name(self) -> &'static str {
        match self {
            Provider::Github => "GitHub API",
            Provider::AzureDevops => "Azure DevOps API",
        }
    }
}

/// What went wrong opening the pull request. No variant holds the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrError {
    /// The pipeline's environment lacks something or holds something unusable.
    #[error("--open-pr {provider}: {message}")]
    Config {
        /// `github` or `azure-devops`.
        provider: &'static str,
        /// What is missing and how to provide it.
        message: String,
    },
    /// The API answered with an error status.
    #[error("{api}: {action} answered HTTP {status}{detail}; {hint}")]
    Api {
        /// `GitHub API` or `Azure DevOps API`.
        api: &'static str,
        /// What was asked (`list open pull requests for arcseal/rotate`).
        action: String,
        /// HTTP status.
        status: u16,
        /// `: <server message>` (scrubbed), or empty.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// The API could not be reached or its answer could not be read.
    #[error("{api}: {action} failed: {message}; check the API URL and the runner's network, then rerun")]
    Transport {
        /// `GitHub API` or `Azure DevOps API`.
        api: &'static str,
        /// What was asked.
        action: String,
        /// Why (scrubbed).
        message: String,
    },
    /// `git push` of the rotation branch failed.
    #[error(
        "git push {remote} {branch} failed: {message}; the rotation is committed on the local branch {branch}: give the \
         pipeline push access (GitHub: permissions contents: write; Azure Pipelines: checkout persistCredentials: true and \
         Contribute for the build service) and rerun"
    )]
    Push {
        /// Remote name.
        remote: String,
        /// Branch.
        branch: String,
        /// git's message (scrubbed).
        message: String,
    },
}

/// Crate-local result.
pub type Result<T, E = PrError> = std::result::Result<T, E>;

/// The pull request to open or update.
pub struct PullRequest {
    /// Title.
    pub title: String,
    /// Body (Markdown).
    pub body: String,
}

/// What [`Target::publish`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// A new pull request.
    Created {
        /// Its number (GitHub) or id (Azure DevOps).
        number: u64,
        /// Its web page.
        url: String,
    },
    /// The open pull request for the branch, now with the new title and body.
    Updated {
        /// Its number or id.
        number: u64,
        /// Its web page.
        url: String,
    },
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Published::Created { number, url } => write!(f, "opened pull request #{number}: {url}"),
            Published::Updated { number, url } => {
                write!(f, "updated the open pull request #{number} (no duplicate made): {url}")
            }
        }
    }
}

/// One pull request as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Number (GitHub) or id (Azure DevOps).
    pub number: u64,
    /// Web page.
    pub url: String,
}

/// One hosting service's pull request API.
trait Api {
    /// The open pull request from `head` into `base`, if any.
    fn find_open(&self, head: &str, base: &str) -> Result<Option<Existing>>;
    /// Opens one; `Ok(None)` when the service says one is already open for the branch.
    fn create(&self, head: &str, base: &str, pr: &PullRequest) -> Result<Option<Existing>>;
    /// Replaces the title and body of `existing`.
    fn update(&self, existing: &Existing, pr: &PullRequest) -> Result<Existing>;
    /// Longest body the service takes, in characters.
    fn max_body_chars(&self) -> usize;
}

/// Where and how to publish, checked before the rotation starts.
pub struct Target {
    api: Box<dyn Api>,
    /// Repository root (the push runs there).
    root: PathBuf,
    remote: String,
    base: String,
    /// For scrubbing git's output.
    token: Zeroizing<String>,
}

impl Target {
    /// Reads the provider's settings from the environment (`env` is `std::env::var`, a parameter for
    /// tests), checks the repository at `dir` (base branch: `base`, else the checked-out branch, else the
    /// provider's pipeline variable; the push remote) and asks the API for open pull requests from
    /// `branch`, so a refused token or a wrong repository fails the run before anything is written.
    pub fn from_env(
        provider: Provider,
        dir: &Path,
        branch: &str,
        base: Option<&str>,
        remote: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Target> {
        let name = match provider {
            Provider::Github => "github",
            Provider::AzureDevops => "azure-devops",
        };
        let config = |message: String| PrError::Config { provider: name, message };
        let token_var = match provider {
            Provider::Github => "GITHUB_TOKEN",
            Provider::AzureDevops => "SYSTEM_ACCESSTOKEN",
        };
        let token = Zeroizing::new(env(token_var).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            config(match provider {
                Provider::Github => "GITHUB_TOKEN is not set; pass it to the step (env: GITHUB_TOKEN: \
                                     ${{ github.token }}) with permissions contents: write and pull-requests: write"
                    .into(),
                Provider::AzureDevops => "SYSTEM_ACCESSTOKEN is not set; Azure Pipelines only gives it to a step \
                                          that maps it (env: SYSTEM_ACCESSTOKEN: $(System.AccessToken))"
                    .into(),
            })
        })?);
        if token.chars().any(|c| c.is_control() || c == ' ') {
            return Err(config(format!(
                "{token_var} holds spaces or control characters; pass the bare token"
            )));
        }
        let api: Box<dyn Api> = match provider {
            Provider::Github => Box::new(github::GitHub::from_env(&token, env).map_err(config)?),
            Provider::AzureDevops => {
                Box::new(azure_devops::AzureDevOps::from_env(&token, env).map_err(config)?)
            }
        };
        let root = git(dir, &["rev-parse", "--show-toplevel"])
            .map(PathBuf::from)
            .map_err(|e| config(format!("needs a git work tree: {}", scrub(&e, &token))))?;
        if git(&root, &["remote", "get-url", remote]).is_err() {
            return Err(config(format!(
                "the repository has no remote {remote:?} to push the branch to; name it with --pr-remote"
            )));
        }
        let base = match base {
            Some(b) => b.to_owned(),
            None => default_base(provider, &root, env).ok_or_else(|| {
                config(
                    "no base branch: HEAD is detached and the pipeline names none; pass --pr-base (e.g. main)"
                        .into(),
                )
            })?,
        };
        if git(&root, &["check-ref-format", "--branch", &base]).is_err() {
            return Err(config(format!("--pr-base {base:?} is not a valid branch name")));
        }
        if branch == base {
            return Err(config(format!("--branch {branch:?} is the base branch; pick another name")));
        }
        api.find_open(branch, &base)?;
        Ok(Target { api, root, remote: remote.to_owned(), base, token })
    }

    /// The branch pull requests go into.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Pushes `branch` and opens or updates its pull request into the base branch.
    pub fn publish(&self, branch: &str, pr: &PullRequest) -> Result<Published> {
        self.push(branch)?;
        let pr =
            PullRequest { title: pr.title.clone(), body: truncate_body(&pr.body, self.api.max_body_chars()) };
        if let Some(existing) = self.api.find_open(branch, &self.base)? {
            let updated = self.api.update(&existing, &pr)?;
            return Ok(Published::Updated { number: updated.number, url: updated.url });
        }
        match self.api.create(branch, &self.base, &pr)? {
            Some(created) => Ok(Published::Created { number: created.number, url: created.url }),
            // Another run opened one between our look and our create.
            None => {
                let existing = self.api.find_open(branch, &self.base)?.ok_or_else(|| PrError::Api {
                    api: "pull request API",
                    action: format!("create a pull request from {branch}"),
                    status: 409,
                    detail: String::new(),
                    hint: "the service says one is open for this branch but lists none; rerun".into(),
                })?;
                let updated = self.api.update(&existing, &pr)?;
                Ok(Published::Updated { number: updated.number, url: updated.url })
            }
        }
    }

    fn push(&self, branch: &str) -> Result<()> {
        let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
        git(&self.root, &["push", "--quiet", &self.remote, &refspec]).map(drop).map_err(|e| PrError::Push {
            remote: self.remote.clone(),
            branch: branch.to_owned(),
            message: scrub(&e, &self.token),
        })
    }
}

/// The base when none is named: Azure Pipelines checks out a detached HEAD and names the branch in
/// `BUILD_SOURCEBRANCH`; GitHub Actions checks out the branch itself (`GITHUB_REF_NAME` as a fallback).
fn default_base(provider: Provider, root: &Path, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    // Before the rotation's `checkout -b`, HEAD is the branch the run started from.
    if let Ok(current) = git(root, &["symbolic-ref", "--quiet", "--short", "HEAD"]) {
        return Some(current);
    }
    match provider {
        Provider::Github => env("GITHUB_REF_TYPE")
            .filter(|t| t == "branch")
            .and_then(|_| env("GITHUB_REF_NAME"))
            .filter(|b| !b.is_empty()),
        Provider::AzureDevops => env("BUILD_SOURCEBRANCH")
            .and_then(|r| r.strip_prefix("refs/heads/").map(str::to_owned))
            .filter(|b| !b.is_empty()),
    }
}

fn git(dir: &Path, args: &[&str]) -> std::result::Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // A push must fail, not wait for a password nobody will type.
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Removes the token and any URL user-info (`https://user:secret@host`) from `text`, drops control
/// characters and caps its length: server and git messages are quoted in errors a CI log keeps.
pub fn scrub(text: &str, token: &str) -> String {
    let mut out = if token.len() >= 4 { text.replace(token, "***") } else { text.to_owned() };
    let mut from = 0;
    while let Some(i) = out[from..].find("://").map(|i| from + i + 3) {
        let end = out[i..]
            .find(|c: char| c.is_whitespace() || c == '/' || c == '\'' || c == '"')
            .map_or(out.len(), |e| i + e);
        if let Some(at) = out[i..end].rfind('@') {
            out.replace_range(i..i + at + 1, "");
        }
        from = i;
    }
    // Removing user-info joins text: a token could only now appear whole.
    if token.len() >= 4 {
        out = out.replace(token, "***");
    }
    let mut cleaned: String =
        out.chars().map(|c| if c.is_control() { ' ' } else { c }).take(MAX_MESSAGE_CHARS).collect();
    if out.chars().count() > MAX_MESSAGE_CHARS {
        cleaned.push('…');
    }
    cleaned
}

/// Cuts `body` to `max` characters on a line boundary, saying where the rest is.
pub fn truncate_body(body: &str, max: usize) -> String {
    if body.chars().count() <= max {
        return body.to_owned();
    }
    const NOTE: &str = "\n\n… truncated: the service limits the description; every item is in the commit message \
                        and the --report file.\n";
    let keep = max.saturating_sub(NOTE.chars().count());
    let cut = body.char_indices().nth(keep).map_or(body.len(), |(i, _)| i);
    let cut = body[..cut].rfind('\n').unwrap_or(cut);
    format!("{}{NOTE}", &body[..cut])
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.chars()
        .flat_map(|c| match c {
            '|' => vec!['\\', '|'],
            '<' => "&lt;".chars().collect(),
            '>' => "&gt;".chars().collect(),
            '`' => vec!['\''],
            c if c.is_control() => vec![' '],
            c => vec![c],
        })
        .collect()
}

/// The pull request for a rotation: the title names the count and the key; the body is the report
/// (every changed item with file, line, object, item, action and the key it was sealed with; the Key
/// Vault versions written, one line each as `describe` gives them).
pub fn rotation_pull_request(plan: &crate::rotate::Plan, key_vault: &[String]) -> PullRequest {
    let changed: Vec<&crate::rotate::ItemReport> = plan.changed().collect();
    let short = plan.target.get(..19).unwrap_or(&plan.target);
    let title = match (changed.len(), key_vault.len()) {
        (n, 0) => format!("arcseal rotate: re-seal {n} item(s) to key {short}…"),
        (0, k) => format!("arcseal rotate: new Key Vault versions for {k} secret(s)"),
        (n, k) => format!("arcseal rotate: re-seal {n} item(s) to key {short}…, {k} Key Vault secret(s)"),
    };
    let mut body =
        String::from("<!-- arcseal rotate --open-pr: this description is rewritten on every run -->\n");
    body.push_str(&format!(
        "## Rotation report\n\nTarget key: `{}`\n\n{} item(s) changed in {} file(s); {} item(s) already current.\n",
        plan.target,
        changed.len(),
        plan.changes.len(),
        plan.items.len() - changed.len()
    ));
    if !changed.is_empty() {
        body.push_str(
            "\n| File | Line | Object | Item | Action | Was sealed with |\n|---|---|---|---|---|---|\n",
        );
        for i in &changed {
            let action = match i.action {
                crate::rotate::Action::Regenerated => "new value",
                _ => "re-sealed",
            };
            body.push_str(&format!(
                "| {} | {} | {} | {} | {action} | {} |\n",
                cell(&i.file),
                i.line,
                cell(&i.object),
                cell(&i.item),
                cell(&i.sealed_with)
            ));
        }
    }
    if !key_vault.is_empty() {
        body.push_str("\n### Key Vault versions written\n\n");
        for line in key_vault {
            body.push_str(&format!("- {}\n", cell(line.trim_start_matches("- "))));
        }
    }
    body.push_str(
        "\nMerge to deliver: the controller unseals the new ciphertexts; no plaintext is in this pull request.\n",
    );
    PullRequest { title, body }
}

/// Checks an API base URL: https, or http on a loopback address (tests). Returns it without a trailing `/`.
fn api_base(var: &str, url: &str) -> std::result::Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{var} {url:?} is not a URL: {e}"))?;
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{var} {url:?} must be an https:// URL (the token travels with each request)"
            ));
        }
    }
    if !parsed.username().is_empty() || parsed.password().is_some() || parsed.query().is_some() {
        return Err(format!("{var} must be a plain base URL, without user-info or query"));
    }
    Ok(parsed)
}

/// An HTTP client for one API: bearer token, bounded answers, no redirects (the token stays on the
/// API's host).
struct Http {
    client: reqwest::blocking::Client,
    token: Zeroizing<String>,
    api: &'static str,
}

/// One answer: status, `Link` header, body.
struct Answer {
    status: u16,
    link: Option<String>,
    body: Value,
}

impl Http {
    fn new(api: &'static str, token: &str) -> std::result::Result<Http, String> {
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arcseal/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up HTTP: {e}"))?;
        Ok(Http { client, token: Zeroizing::new(token.to_owned()), api })
    }

    /// Sends a request and reads the answer (up to [`MAX_ANSWER_BYTES`]). Any status is returned; the
    /// caller decides which are errors.
    fn send(
        &self,
        action: &str,
        request: reqwest::blocking::RequestBuilder,
        headers: &[(&str, &str)],
    ) -> Result<Answer> {
        let transport = |message: String| PrError::Transport {
            api: self.api,
            action: action.to_owned(),
            message: scrub(&message, &self.token),
        };
        let mut request = request.bearer_auth(self.token.as_str());
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().map_err(|e| transport(e.without_url().to_string()))?;
        let status = response.status().as_u16();
        let link = response.headers().get("link").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.contains("json"));
        let mut bytes = Vec::new();
        response
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| transport(format!("reading the answer: {e}")))?;
        if bytes.len() as u64 > MAX_ANSWER_BYTES {
            return Err(transport(format!("the answer exceeds {MAX_ANSWER_BYTES} bytes")));
        }
        let body = if json && !bytes.is_empty() {
            serde_json::from_slice(&bytes)
                .map_err(|e| transport(format!("HTTP {status} with an answer that is not JSON ({e})")))?
        } else {
            Value::Null
        };
        Ok(Answer { status, link, body })
    }

    /// The error for an unexpected status, quoting the server's `message` (scrubbed).
    fn error(&self, action: &str, answer: &Answer, message: Option<String>, hint: String) -> PrError {
        PrError::Api {
            api: self.api,
            action: action.to_owned(),
            status: answer.status,
            detail: message.map(|m| format!(": {}", scrub(&m, &self.token))).unwrap_or_default(),
            hint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_tokens_and_url_credentials() {
        let t = "ghs_abcdef123456";
        let s = scrub("remote: https://x-access-token:ghs_abcdef123456@github.com/o/r.git denied", t);
        assert!(!s.contains("ghs_abcdef123456") && !s.contains("x-access-token"), "{s}");
        assert!(s.contains("https://github.com/o/r.git"), "{s}");
        let s = scrub("fatal: unable to access 'https://user:pw@dev.azure.com/org/_git/r/'", "zzzz");
        assert!(!s.contains("pw@") && s.contains("https://dev.azure.com/org"), "{s}");
        assert_eq!(scrub("line\nnext\u{7}", "zzzz"), "line next ");
        assert!(scrub(&"x".repeat(1000), "zzzz").chars().count() <= MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn bodies_are_cut_on_a_line_and_say_so() {
        let body: String = (0..100).map(|i| format!("| line {i} |\n")).collect();
        let cut = truncate_body(&body, 300);
        assert!(cut.chars().count() <= 300, "{}", cut.chars().count());
        assert!(cut.contains("truncated"));
        assert!(cut.split("\n\n…").next().unwrap().lines().all(|l| l.ends_with('|')));
        assert_eq!(truncate_body("short", 300), "short");
        // Multi-byte characters never split.
        let wide = "é".repeat(500);
        assert!(truncate_body(&wide, 300).chars().count() <= 300);
    }

    #[test]
    fn api_urls_are_https_except_on_loopback() {
        assert!(api_base("X", "https://api.github.com").is_ok());
        assert!(api_base("X", "http://127.0.0.1:8080/api").is_ok());
        assert!(api_base("X", "http://github.example/api").unwrap_err().contains("https"));
        assert!(api_base("X", "https://u:p@api.github.com").unwrap_err().contains("user-info"));
        assert!(api_base("X", "not a url").unwrap_err().contains("not a URL"));
    }

    proptest::proptest! {
        #[test]
        fn scrubbed_text_never_holds_the_token(
            before in ".{0,80}", after in ".{0,80}", token in "[A-Za-z0-9_]{4,40}", userinfo in "[a-z]{0,8}:?"
        ) {
            let text = format!("{before}https://{userinfo}{token}@host/x {token}{after}");
            let s = scrub(&text, &token);
            proptest::prop_assert!(!s.contains(&token), "{}", s);
            proptest::prop_assert!(s.chars().count() <= MAX_MESSAGE_CHARS + 1);
            proptest::prop_assert!(!s.chars().any(char::is_control));
        }

        #[test]
        fn truncated_bodies_fit_and_short_ones_are_kept(body in "(.{0,60}\n){0,80}", max in 200usize..3000) {
            let cut = truncate_body(&body, max);
            proptest::prop_assert!(cut.chars().count() <= max);
            if body.chars().count() <= max {
                proptest::prop_assert_eq!(cut, body);
            }
        }

        #[test]
        fn link_headers_never_panic(link in ".{0,200}") {
            let _ = next_link(&link);
        }
    }

    #[test]
    fn table_cells_cannot_break_the_table() {
        assert_eq!(cell("a|b<c>`d`\n"), "a\\|b&lt;c&gt;'d' ");
    }
}
