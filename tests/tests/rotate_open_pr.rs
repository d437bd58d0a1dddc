//! `arcseal rotate --branch --open-pr`: the real binary pushes to a bare remote and opens or updates
//! the pull request on the GitHub and Azure DevOps stand-ins (tests/src/pullrequests), on loopback.

mod pr_common;

use arcseal_tests::pullrequests::azure_devops::{AzureDevOpsStandIn, PROJECT_ID, REPOSITORY_ID};
use arcseal_tests::pullrequests::github::GitHubStandIn;
use pr_common::{BRANCH, ConfigRepo, SEALED_PATH, git, stderr};

const TOKEN: &str = "ghs_0123456789abcdefTOKEN";
const ADO_TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.ado-token.signature";

fn github_env(gh: &GitHubStandIn, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("GITHUB_TOKEN", token.to_owned()),
        ("GITHUB_REPOSITORY", "acme/config".to_owned()),
        ("GITHUB_API_URL", gh.url()),
    ]
}

fn ado_env(ado: &AzureDevOpsStandIn, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SYSTEM_ACCESSTOKEN", token.to_owned()),
        ("SYSTEM_COLLECTIONURI", ado.collection_uri()),
        ("SYSTEM_TEAMPROJECT", "Config Repos".to_owned()),
        ("BUILD_REPOSITORY_ID", REPOSITORY_ID.to_owned()),
    ]
}

fn assert_ok(out: &std::process::Output) {
    assert!(out.status.success(), "rotate failed: {}", stderr(out));
}

/// The error path's promises: non-zero exit, the API and status named, never the token.
fn assert_fails_naming(out: &std::process::Output, token: &str, needles: &[&str]) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success: {err}");
    assert!(!err.contains(token), "the token leaked into the error: {err}");
    for n in needles {
        assert!(err.contains(n), "error lacks {n:?}: {err}");
    }
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_opens_one_pull_request_then_updates_it_and_never_duplicates() {
    let repo = ConfigRepo::new("old");
    let gh = GitHubStandIn::start("acme", "config", &repo.remote, TOKEN).await;
    let before = repo.read(SEALED_PATH);

    let out = repo.rotate_open_pr("github", &github_env(&gh, TOKEN));
    assert_ok(&out);
    assert!(stderr(&out).contains("opened pull request #1"), "{}", stderr(&out));
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0];
    assert_eq!((pr.head.as_str(), pr.base.as_str(), pr.state.as_str()), (BRANCH, "main", "open"));
    let pushed = repo.remote_head(BRANCH).expect("the branch is pushed");
    assert_eq!(pushed, git(&repo.work, &["rev-parse", BRANCH]));
    assert_eq!(pr.head_sha, pushed);
    assert!(pr.title.contains("re-seal 2 item(s)"), "{}", pr.title);
    // The body is the report: every changed item, its file, object and the key it was sealed with.
    for needle in
        [SEALED_PATH, "team-a/db-credentials", "| password |", "| username |", "re-sealed", "sha256:"]
    {
        assert!(pr.body.contains(needle), "body lacks {needle:?}:\n{}", pr.body);
    }
    assert!(!pr.body.contains("correct-horse") && !pr.body.contains("admin |"), "plaintext in the body");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(repo.report()).unwrap()).unwrap();
    assert_eq!(report["rotated"], 2);
    assert!(pr.body.contains(report["target"].as_str().unwrap()));

    // The next scheduled run, before anyone merged: same branch, new ciphertexts, same pull request.
    repo.fresh_checkout();
    assert_eq!(repo.read(SEALED_PATH), before);
    // Pull requests from the same branch into other bases, newer, on pages before ours.
    gh.add_pull(BRANCH, "release/1", "other", "open");
    gh.add_pull(BRANCH, "release/2", "other", "open");
    gh.set_max_per_page(1);
    let out = repo.rotate_open_pr("github", &github_env(&gh, TOKEN));
    assert_ok(&out);
    assert!(stderr(&out).contains("updated the open pull request #1"), "{}", stderr(&out));
    let pulls = gh.pulls();
    assert_eq!(pulls.iter().filter(|p| p.base == "main").count(), 1, "a duplicate was opened");
    let repushed = repo.remote_head(BRANCH).unwrap();
    assert_ne!(repushed, pushed, "the branch was not force-pushed with the new rotation");
    assert_eq!(pulls[0].head_sha, repushed);
    let log = gh.log();
    assert_eq!(log.iter().filter(|l| l.starts_with("POST")).count(), 1, "{log:#?}");
    assert_eq!(
        log.iter().filter(|l| l.starts_with("PATCH /repos/acme/config/pulls/1")).count(),
        1,
        "{log:#?}"
    );
    // Our pull request was on page 3: the Link header was followed.
    assert!(log.iter().any(|l| l.starts_with("GET") && l.contains("page=3")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_due_pushes_nothing_and_opens_no_pull_request() {
    let repo = ConfigRepo::new("new");
    let gh = GitHubStandIn::start("acme", "config", &repo.remote, TOKEN).await;
    let out = repo.rotate_open_pr("github", &github_env(&gh, TOKEN));
    assert_ok(&out);
    assert!(stderr(&out).contains("nothing to rotate"), "{}", stderr(&out));
    assert!(gh.pulls().is_empty());
    assert!(repo.remote_head(BRANCH).is_none());
    // Only the up-front read that checks the token and the repository.
    let log = gh.log();
    assert!(log.iter().all(|l| l.starts_with("GET ")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_refusals_fail_before_anything_is_written_and_name_the_fix() {
    let repo = ConfigRepo::new("old");
    let gh = GitHubStandIn::start("acme", "config", &repo.remote, TOKEN).await;
    let before = repo.read(SEALED_PATH);
    let unchanged = |what: &str| {
        assert_eq!(repo.read(SEALED_PATH), before, "{what}: a file was changed");
        assert_eq!(git(&repo.work, &["branch", "--show-current"]), "main", "{what}");
        assert!(git(&repo.work, &["branch", "--list", BRANCH]).is_empty(), "{what}: branch made");
        assert!(repo.remote_head(BRANCH).is_none(), "{what}: branch pushed");
    };

    let wrong = "ghs_not-the-right-one-1234";
    let out = repo.rotate_open_pr("github", &github_env(&gh, wrong));
    assert_fails_naming(&out, wrong, &["GitHub API", "HTTP 401", "Bad credentials", "GITHUB_TOKEN"]);
    unchanged("bad token");

    let mut env = github_env(&gh, TOKEN);
    env[1].1 = "acme/other".into();
    let out = repo.rotate_open_pr("github", &env);
    assert_fails_naming(&out, TOKEN, &["GitHub API", "HTTP 404", "GITHUB_REPOSITORY (acme/other)"]);
    unchanged("wrong repository");

    let env: Vec<_> = github_env(&gh, TOKEN).into_iter().filter(|(k, _)| *k != "GITHUB_TOKEN").collect();
    let out = repo.rotate_open_pr("github", &env);
    assert_fails_naming(&out, TOKEN, &["GITHUB_TOKEN is not set", "pull-requests: write"]);
    unchanged("no token");

    let mut env = github_env(&gh, TOKEN);
    env[2].1 = format!("http://github.example.invalid:{}", gh.url().rsplit(':').next().unwrap());
    let out = repo.rotate_open_pr("github", &env);
    assert_fails_naming(&out, TOKEN, &["GITHUB_API_URL", "https"]);
    unchanged("plain http off loopback");
    assert!(gh.log().iter().all(|l| l.starts_with("GET ")), "a refused run wrote through the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_read_only_token_is_told_which_permissions_to_grant() {
    let repo = ConfigRepo::new("old");
    let gh = GitHubStandIn::start("acme", "config", &repo.remote, TOKEN).await;
    let read_only = "ghs_readonly_abcdef123456";
    gh.add_read_only_token(read_only);
    let out = repo.rotate_open_pr("github", &github_env(&gh, read_only));
    let err = assert_fails_naming(
        &out,
        read_only,
        &["GitHub API", "HTTP 403", "Resource not accessible by integration", "pull-requests: write"],
    );
    // Pushed and committed: the message says so, and a rerun with the permission opens it.
    assert!(err.contains(&format!("committed on branch {BRANCH}")), "{err}");
    assert!(gh.pulls().is_empty());
    repo.fresh_checkout();
    assert_ok(&repo.rotate_open_pr("github", &github_env(&gh, TOKEN)));
    assert_eq!(gh.pulls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_devops_updates_the_active_pull_request_for_the_branch() {
    let repo = ConfigRepo::new("old");
    let ado = AzureDevOpsStandIn::start("contoso", "Config Repos", "config", &repo.remote, ADO_TOKEN).await;
    // Azure Pipelines checks out a detached HEAD and names the branch in BUILD_SOURCEBRANCH.
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    git(&repo.work, &["checkout", "--quiet", &head]);
    // A completed one from an earlier rotation, and one into another target: neither is ours.
    ado.add_pull_request(BRANCH, "main", "old rotation", "completed");
    ado.add_pull_request(BRANCH, "release", "elsewhere", "active");
    ado.set_max_top(1);
    let mut env = ado_env(&ado, ADO_TOKEN);
    env.push(("BUILD_SOURCEBRANCH", "refs/heads/main".into()));

    let out = repo.rotate_open_pr("azure-devops", &env);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains(
            "opened pull request #3: https://dev.azure.com/contoso/Config Repos/_git/config/pullrequest/3"
        ),
        "{err}"
    );
    let prs = ado.pull_requests();
    let ours: Vec<_> = prs.iter().filter(|p| p.status == "active" && p.target == "refs/heads/main").collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].source, format!("refs/heads/{BRANCH}"));
    assert!(ours[0].description.contains("| password |"), "{}", ours[0].description);
    assert!(ours[0].description.chars().count() <= 4000);
    assert_eq!(repo.remote_head(BRANCH).unwrap(), git(&repo.work, &["rev-parse", BRANCH]));

    // Rerun from a fresh detached checkout: updated, not duplicated; addressed by project id this time.
    git(&repo.work, &["checkout", "--quiet", &head]);
    git(&repo.work, &["branch", "--quiet", "-D", BRANCH]);
    env[2] = ("SYSTEM_TEAMPROJECTID", PROJECT_ID.into());
    let out = repo.rotate_open_pr("azure-devops", &env);
    assert_ok(&out);
    assert!(stderr(&out).contains("updated the open pull request #3"), "{}", stderr(&out));
    assert_eq!(ado.pull_requests().len(), 3);
    let log = ado.log();
    assert_eq!(log.iter().filter(|l| l.starts_with("POST")).count(), 1, "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("PATCH") && l.contains("/pullrequests/3")), "{log:#?}");
    assert!(log.iter().all(|l| l.contains("api-version=7.1")), "{log:#?}");
    // Paged with $skip past the capped $top.
    assert!(log.iter().any(|l| l.contains("$skip=1")), "{log:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_devops_refusals_name_the_api_status_and_fix() {
    let repo = ConfigRepo::new("old");
    let ado = AzureDevOpsStandIn::start("contoso", "Config Repos", "config", &repo.remote, ADO_TOKEN).await;

    let out = repo.rotate_open_pr("azure-devops", &ado_env(&ado, "not-the-token-xyz"));
    assert_fails_naming(
        &out,
        "not-the-token-xyz",
        &["Azure DevOps API", "HTTP 401", "TF400813", "SYSTEM_ACCESSTOKEN"],
    );

    let env: Vec<_> =
        ado_env(&ado, ADO_TOKEN).into_iter().filter(|(k, _)| *k != "SYSTEM_ACCESSTOKEN").collect();
    let out = repo.rotate_open_pr("azure-devops", &env);
    assert_fails_naming(&out, ADO_TOKEN, &["SYSTEM_ACCESSTOKEN is not set", "$(System.AccessToken)"]);

    let mut env = ado_env(&ado, ADO_TOKEN);
    env[3].1 = "no-such-repository".into();
    let out = repo.rotate_open_pr("azure-devops", &env);
    assert_fails_naming(
        &out,
        ADO_TOKEN,
        &["Azure DevOps API", "HTTP 404", "TF401019", "BUILD_REPOSITORY_ID"],
    );
    assert!(repo.remote_head(BRANCH).is_none(), "a refused run pushed");

    let read_only = "readonly-token-abcdef";
    ado.add_read_only_token(read_only);
    let out = repo.rotate_open_pr("azure-devops", &ado_env(&ado, read_only));
    assert_fails_naming(&out, read_only, &["HTTP 403", "TF401027", "Contribute to pull requests"]);
    assert!(ado.pull_requests().is_empty());
}
