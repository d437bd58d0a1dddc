//! The pipelines in ci/, executed: each job's shell steps are read from the YAML (not copied here, so a
//! change to a pipeline changes what runs) and run in order with bash, as the GitHub runner or the Azure
//! Pipelines agent would, against a temporary config repository with a bare remote, the real `arcseal`
//! (installed by the pipeline's own install step from a loopback release site) and the pull request
//! API stand-ins.
//!
//! What a runner does around the scripts is emulated: step `env:` (every expression must be given a
//! value by the test, or the test fails naming it), `GITHUB_ENV`/`GITHUB_PATH`/`GITHUB_OUTPUT`,
//! `##vso[task.setvariable]`/`##vso[task.prependpath]`, `if:`/`condition:` for the forms the pipelines
//! use, composite actions and step templates. Steps that are hosted services (`actions/checkout`,
//! `azure/login`, artifact and test-result publishing) are not run; each job lists them, so a new one
//! fails the test until it is accounted for. `az` is a recording stand-in script: it serves
//! `keyvault secret download` from files and refuses anything else.

mod pr_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use arcseal_tests::arcseal_bin;
use arcseal_tests::pullrequests::StaticFiles;
use arcseal_tests::pullrequests::azure_devops::{AzureDevOpsStandIn, PROJECT_ID, REPOSITORY_ID};
use arcseal_tests::pullrequests::github::GitHubStandIn;
use pr_common::{BRANCH, ConfigRepo, SEALED_PATH, git};
use serde_json::Value;

const CI: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ci");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const TOKEN: &str = "ghs_pipeline_token_0123456789";

fn load(rel: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(CI).join(rel)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    GitHub,
    Azure,
}

/// What ran.
#[derive(Debug, Default)]
struct JobResult {
    /// (step name, succeeded, stdout + stderr).
    steps: Vec<(String, bool, String)>,
    /// Steps not run here (hosted services), by what they use.
    not_run: Vec<String>,
}

impl JobResult {
    fn ok(&self) -> bool {
        self.steps.iter().all(|(_, ok, _)| *ok)
    }

    fn log(&self) -> String {
        self.steps
            .iter()
            .map(|(n, ok, out)| format!("--- {n} ({})\n{out}", if *ok { "ok" } else { "FAILED" }))
            .collect()
    }
}

/// One job's runner: environment, PATH additions, workspace and temp directory.
struct Runner {
    kind: Kind,
    workspace: PathBuf,
    temp: PathBuf,
    env: BTreeMap<String, String>,
    path: Vec<PathBuf>,
    /// Values of the expressions the pipeline uses (`${{ vars.X }}`, `$(System.AccessToken)`, ...).
    exprs: BTreeMap<String, String>,
    /// Replaces the install step's default release site.
    release_site: Option<String>,
}

impl Runner {
    fn new(kind: Kind, workspace: &Path, temp: &Path, az: &Path) -> Runner {
        let mut env = BTreeMap::new();
        env.insert("CI".into(), "true".into());
        env.insert("HOME".into(), std::env::var("HOME").unwrap_or_else(|_| "/root".into()));
        env.insert("AZ_STUB_DIR".into(), az.display().to_string());
        match kind {
            Kind::GitHub => {
                env.insert("GITHUB_ACTIONS".into(), "true".into());
                env.insert("GITHUB_WORKSPACE".into(), workspace.display().to_string());
                env.insert("RUNNER_TEMP".into(), temp.display().to_string());
                for f in ["GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"] {
                    let p = temp.join(format!("{f}.txt"));
                    std::fs::write(&p, "").unwrap();
                    env.insert(f.into(), p.display().to_string());
                }
            }
            Kind::Azure => {
                env.insert("TF_BUILD".into(), "True".into());
                env.insert("AGENT_TEMPDIRECTORY".into(), temp.display().to_string());
                env.insert("BUILD_SOURCESDIRECTORY".into(), workspace.display().to_string());
            }
        }
        Runner {
            kind,
            workspace: workspace.into(),
            temp: temp.into(),
            env,
            path: vec![az.join("bin")],
            exprs: BTreeMap::new(),
            release_site: None,
        }
    }

    fn expr(mut self, expression: &str, value: &str) -> Runner {
        self.exprs.insert(expression.into(), value.into());
        self
    }

    fn var(mut self, name: &str, value: &str) -> Runner {
        self.env.insert(name.into(), value.into());
        self
    }

    /// The value of a YAML value as the runner would see it: literal, or an expression the test
    /// gave, or `inputs.X`/`parameters.X` from `scope`.
    fn resolve(&self, raw: &Value, scope: &BTreeMap<String, String>) -> String {
        let text = match raw {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            Value::Null => String::new(),
            other => panic!("unexpected env value {other}"),
        };
        if !(text.contains("${{") || text.contains("$(")) {
            return text;
        }
        // Azure macros naming pipeline variables (the job's `variables:` or `task.setvariable`).
        if let Some(name) = text.trim().strip_prefix("$(").and_then(|t| t.strip_suffix(')'))
            && let Some(v) = self.env.get(&name.to_uppercase().replace('.', "_"))
        {
            return v.clone();
        }
        if let Some(v) = self.exprs.get(text.trim()) {
            return v.clone();
        }
        let inner = text.trim().trim_start_matches("${{").trim_end_matches("}}").trim();
        if let Some(name) = inner.strip_prefix("inputs.").or_else(|| inner.strip_prefix("parameters."))
            && let Some(v) = scope.get(name)
        {
            return v.clone();
        }
        panic!(
            "the pipeline uses {text:?}, which this test gives no value: add it to the runner's expressions"
        );
    }

    fn condition(&self, raw: Option<&Value>, failed: bool) -> bool {
        let Some(raw) = raw else { return !failed };
        let cond = raw.as_str().map(str::to_owned).unwrap_or_else(|| raw.to_string());
        let c = cond.trim().trim_start_matches("${{").trim_end_matches("}}").trim();
        match c {
            "always()" | "!cancelled()" | "succeededOrFailed()" => return true,
            _ if failed => return false,
            _ => {}
        }
        if let Some((left, right)) = c.split_once(" == ")
            && let Some(var) = left.trim().strip_prefix("env.")
        {
            return self.env.get(var).map(String::as_str) == Some(right.trim().trim_matches('\''));
        }
        if let Some(rest) = c.strip_prefix("and(succeeded(), eq(variables['") {
            let (var, rest) = rest.split_once("'], '").expect("eq(variables['X'], 'v')");
            return self.env.get(var).map(String::as_str) == Some(rest.trim_end_matches("'))"));
        }
        match self.exprs.get(c).or_else(|| self.exprs.get(cond.trim())) {
            Some(v) => v == "true",
            None => panic!("the pipeline's condition {cond:?} has no value in this test"),
        }
    }

    /// Runs one script as the runner does and applies its effects on later steps.
    fn script(&mut self, name: &str, script: &str, env: &BTreeMap<String, String>) -> (bool, String) {
        let file = self.temp.join("step.sh");
        std::fs::write(&file, script).unwrap();
        let mut path: Vec<String> = self.path.iter().rev().map(|p| p.display().to_string()).collect();
        path.push(std::env::var("PATH").unwrap_or_default());
        let mut cmd = Command::new("bash");
        match self.kind {
            Kind::GitHub => cmd.args(["--noprofile", "--norc", "-eo", "pipefail"]),
            Kind::Azure => cmd.args(["--noprofile", "--norc"]),
        };
        let out = cmd
            .arg(&file)
            .current_dir(&self.workspace)
            .env_clear()
            .envs(&self.env)
            .envs(env)
            .env("PATH", path.join(":"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let text = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        match self.kind {
            Kind::GitHub => {
                let take = |var: &str| {
                    let p = PathBuf::from(&self.env[var]);
                    let text = std::fs::read_to_string(&p).unwrap();
                    std::fs::write(&p, "").unwrap();
                    text
                };
                for line in take("GITHUB_PATH").lines().filter(|l| !l.is_empty()) {
                    self.path.push(line.into());
                }
                for line in take("GITHUB_ENV").lines() {
                    let (k, v) = line.split_once('=').expect("GITHUB_ENV lines are NAME=value");
                    self.env.insert(k.into(), v.into());
                }
            }
            Kind::Azure => {
                for line in stdout.lines() {
                    if let Some(dir) = line.strip_prefix("##vso[task.prependpath]") {
                        self.path.push(dir.into());
                    } else if let Some(rest) = line.strip_prefix("##vso[task.setvariable variable=") {
                        let (k, v) = rest.split_once(']').unwrap();
                        self.env.insert(k.to_uppercase().replace('.', "_"), v.into());
                    }
                }
            }
        }
        let _ = name;
        (out.status.success(), text)
    }

    fn step_env(&self, step: &Value, scope: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        step.get("env")
            .and_then(Value::as_object)
            .map(|m| m.iter().map(|(k, v)| (k.clone(), self.resolve(v, scope))).collect())
            .unwrap_or_default()
    }

    /// Runs `steps`; `scope` holds `inputs`/`parameters` for composite actions and templates.
    fn steps(&mut self, steps: &[Value], scope: &BTreeMap<String, String>, result: &mut JobResult) {
        for step in steps {
            let failed = !result.ok();
            let cond = step.get("if").or_else(|| step.get("condition"));
            let name = step
                .get("name")
                .or_else(|| step.get("displayName"))
                .and_then(Value::as_str)
                .unwrap_or("step")
                .to_owned();
            if let Some(uses) = step.get("uses").and_then(Value::as_str) {
                if uses == "./.github/actions/setup-arcseal" {
                    if !self.condition(cond, failed) {
                        continue;
                    }
                    let with: BTreeMap<String, String> = step
                        .get("with")
                        .and_then(Value::as_object)
                        .map(|m| m.iter().map(|(k, v)| (k.clone(), self.resolve(v, scope))).collect())
                        .unwrap_or_default();
                    self.action("github/actions/setup-arcseal/action.yml", with, result);
                } else {
                    result.not_run.push(uses.split('@').next().unwrap().to_owned());
                }
                continue;
            }
            if let Some(template) = step.get("template").and_then(Value::as_str) {
                let params: BTreeMap<String, String> = step
                    .get("parameters")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), self.resolve(v, scope))).collect())
                    .unwrap_or_default();
                self.template(&format!("azure-pipelines/{template}"), params, result);
                continue;
            }
            if step.get("checkout").is_some() {
                continue;
            }
            let script = match step.get("task").and_then(Value::as_str) {
                Some("AzureCLI@2") => step.pointer("/inputs/inlineScript").and_then(Value::as_str),
                Some(task) => {
                    result.not_run.push(task.to_owned());
                    if task.starts_with("PublishTestResults") && self.condition(cond, failed) {
                        let file = step.pointer("/inputs/testResultsFiles").and_then(Value::as_str).unwrap();
                        let ok = self.workspace.join(file).exists();
                        result.steps.push((format!("{task}: {file} exists"), ok, String::new()));
                    }
                    continue;
                }
                None => step.get("run").or_else(|| step.get("bash")).and_then(Value::as_str),
            };
            let Some(script) = script else { panic!("a step this test does not know: {step}") };
            if !self.condition(cond, failed) {
                continue;
            }
            let mut env = self.step_env(step, scope);
            if step.pointer("/inputs/addSpnToEnvironment").and_then(Value::as_bool) == Some(true) {
                // What the task gives a workload identity federation service connection's script.
                env.insert("servicePrincipalId".into(), "00000000-0000-0000-0000-00000000c1d".into());
                env.insert("tenantId".into(), "00000000-0000-0000-0000-0000000007e4".into());
                env.insert("idToken".into(), "eyJ.federated-token.test".into());
            }
            let (ok, out) = self.script(&name, script, &env);
            result.steps.push((name, ok, out));
        }
    }

    fn action(&mut self, rel: &str, with: BTreeMap<String, String>, result: &mut JobResult) {
        let action = load(rel);
        let mut inputs = BTreeMap::new();
        for (name, spec) in action["inputs"].as_object().unwrap() {
            let mut value = with.get(name).cloned().or_else(|| spec["default"].as_str().map(str::to_owned));
            if name == "base-url" && !with.contains_key(name) && self.release_site.is_some() {
                value = self.release_site.clone();
            }
            inputs.insert(name.clone(), value.unwrap_or_default());
        }
        assert_eq!(action.pointer("/runs/using").and_then(Value::as_str), Some("composite"));
        self.steps(action.pointer("/runs/steps").unwrap().as_array().unwrap(), &inputs, result);
    }

    fn template(&mut self, rel: &str, params: BTreeMap<String, String>, result: &mut JobResult) {
        let template = load(rel);
        let mut values = BTreeMap::new();
        for p in template["parameters"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap().to_owned();
            let mut value = params.get(&name).cloned().or_else(|| p["default"].as_str().map(str::to_owned));
            if name == "baseUrl" && !params.contains_key(&name) && self.release_site.is_some() {
                value = self.release_site.clone();
            }
            values.insert(name, value.unwrap_or_default());
        }
        self.steps(template["steps"].as_array().unwrap(), &values, result);
    }

    /// Runs job `job` of the pipeline `rel` (workflow/job-level `env:` and Azure `variables:` first).
    fn job(&mut self, rel: &str, job: &str) -> JobResult {
        let doc = load(rel);
        let mut result = JobResult::default();
        let steps = match self.kind {
            Kind::GitHub => {
                for env in [doc.get("env"), doc.pointer(&format!("/jobs/{job}/env"))].into_iter().flatten() {
                    for (k, v) in env.as_object().unwrap() {
                        let v = self.resolve(v, &BTreeMap::new());
                        self.env.insert(k.clone(), v);
                    }
                }
                doc.pointer(&format!("/jobs/{job}/steps")).unwrap().clone()
            }
            Kind::Azure => {
                for v in doc["variables"].as_array().unwrap() {
                    if let (Some(n), Some(val)) = (v.get("name").and_then(Value::as_str), v.get("value")) {
                        let val = self.resolve(val, &BTreeMap::new());
                        self.env.entry(n.to_uppercase()).or_insert(val);
                    }
                }
                let j = doc["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|j| {
                        j.get("job").or_else(|| j.get("deployment")).and_then(Value::as_str) == Some(job)
                    })
                    .unwrap_or_else(|| panic!("{rel} has no job {job}"));
                j.get("steps").or_else(|| j.pointer("/strategy/runOnce/deploy/steps")).unwrap().clone()
            }
        };
        let params: BTreeMap<String, String> = doc
            .get("parameters")
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        let name = p["name"].as_str().unwrap().to_owned();
                        let v = self.exprs.get(&format!("${{{{ parameters.{name} }}}}")).cloned();
                        (name, v.unwrap_or_else(|| p["default"].as_str().unwrap_or("").to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.steps(steps.as_array().unwrap(), &params, &mut result);
        result
    }
}

/// The release site the install step downloads from: the real `arcseal` in the archive the action expects.
struct Release {
    site: StaticFiles,
    sha256: String,
}

impl Release {
    async fn start() -> Release {
        let (bytes, sha256) = Release::archive();
        let name = format!("/v{VERSION}/arcseal-{VERSION}-x86_64-unknown-linux-musl.tar.gz");
        let site = StaticFiles::start(vec![(name, bytes.clone())]).await;
        Release { site, sha256: sha256.clone() }
    }

    /// The archive, made once per test process: the binary stripped of debug info (a debug build is
    /// ~200 MB) and gzipped fast.
    fn archive() -> &'static (Vec<u8>, String) {
        static ARCHIVE: std::sync::OnceLock<(Vec<u8>, String)> = std::sync::OnceLock::new();
        ARCHIVE.get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            std::fs::copy(arcseal_bin(), dir.path().join("arcseal")).unwrap();
            // Best effort: an unstripped binary works too, only slower to pack.
            let _ = Command::new("strip").arg("--strip-debug").arg(dir.path().join("arcseal")).status();
            let archive = dir.path().join("release.tar.gz");
            let out = Command::new("bash")
                .arg("-c")
                .arg("tar -cf - -C \"$1\" arcseal | gzip -1 >\"$2\"")
                .arg("pack")
                .arg(dir.path())
                .arg(&archive)
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let bytes = std::fs::read(&archive).unwrap();
            let sum = Command::new("sha256sum").arg(&archive).output().unwrap();
            let sha256 = String::from_utf8_lossy(&sum.stdout).split(' ').next().unwrap().to_owned();
            (bytes, sha256)
        })
    }
}

/// `az` for the tests: `keyvault secret download --vault-name V --name N --file F` copies
/// `$AZ_STUB_DIR/secrets/V/N` to F (refusing an existing F, as az does) and records the call and F's
/// mode; anything else fails.
fn az_stub(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let script = r#"#!/usr/bin/env bash
set -euo pipefail
echo "az $*" >>"$AZ_STUB_DIR/calls"
[[ "$1 $2 $3" == "keyvault secret download" ]] || { echo "az stub: unsupported: $*" >&2; exit 2; }
shift 3
while (($#)); do
  case "$1" in
    --vault-name) vault=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --file) file=$2; shift 2 ;;
    *) echo "az stub: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ ! -e "$file" ]] || { echo "ERROR: File $file already exists" >&2; exit 1; }
cat "$AZ_STUB_DIR/secrets/$vault/$name" >"$file"
echo "mode $(stat -c %a "$file") $file" >>"$AZ_STUB_DIR/calls"
"#;
    let bin = dir.join("bin/az");
    std::fs::write(&bin, script).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// A config repository, a temp directory, the az stub with the key backups in "kv1", and the release.
struct Bench {
    repo: ConfigRepo,
    temp: PathBuf,
    az: PathBuf,
    release: Release,
}

impl Bench {
    async fn new(sealed_with: &str) -> Bench {
        let repo = ConfigRepo::new(sealed_with);
        let temp = repo.dir.path().join("runner-temp");
        let az = repo.dir.path().join("az");
        std::fs::create_dir_all(&temp).unwrap();
        az_stub(&az);
        std::fs::create_dir_all(az.join("secrets/kv1")).unwrap();
        std::fs::copy(repo.backup(), az.join("secrets/kv1/sealed-secrets-keys")).unwrap();
        for k in ["old", "new"] {
            std::fs::copy(
                repo.keys.join(format!("{k}-secret.yaml")),
                az.join(format!("secrets/kv1/keys-{k}")),
            )
            .unwrap();
        }
        let release = Release::start().await;
        Bench { repo, temp, az, release }
    }

    fn github(&self) -> Runner {
        Runner::new(Kind::GitHub, &self.repo.work, &self.temp, &self.az)
            .expr("${{ vars.ARCSEAL_VERSION }}", VERSION)
            .expr("${{ vars.ARCSEAL_SHA256 }}", &self.release.sha256)
            .expr("${{ vars.ARCSEAL_PATHS || '.' }}", ".")
            .expr("${{ vars.ARCSEAL_PATH || '.' }}", ".")
            .expr("${{ vars.ARCSEAL_CERT_PATH }}", "")
            .expr("${{ vars.AZURE_CLIENT_ID }}", "00000000-0000-0000-0000-00000000c1d")
            .expr("${{ vars.AZURE_TENANT_ID }}", "00000000-0000-0000-0000-0000000007e4")
            .expr("${{ vars.ARCSEAL_KEY_VAULT }}", "kv1")
            .expr("${{ vars.ARCSEAL_KEY_SECRET }}", "sealed-secrets-keys")
            .expr("${{ vars.ARCSEAL_KEY_SECRET_DEV }}", "keys-old")
            .expr("${{ vars.ARCSEAL_KEY_SECRET_PROD }}", "keys-new")
            .expr("${{ github.token }}", TOKEN)
            .expr("${{ inputs.rotate-values || false }}", "false")
            .expr("inputs.rotate-values", "false")
            .var("GITHUB_REPOSITORY", "acme/config")
    }

    fn azure(&self) -> Runner {
        Runner::new(Kind::Azure, &self.repo.work, &self.temp, &self.az)
            .expr("$(ARCSEAL_VERSION)", VERSION)
            .expr("$(ARCSEAL_SHA256)", &self.release.sha256)
            .expr("$(ARCSEAL_KEY_VAULT)", "kv1")
            .expr("$(ARCSEAL_KEY_SECRET)", "sealed-secrets-keys")
            .expr("$(ARCSEAL_KEY_SECRET_DEV)", "keys-old")
            .expr("$(ARCSEAL_KEY_SECRET_PROD)", "keys-new")
            .expr("$(System.AccessToken)", TOKEN)
            .expr("$(ARC_CLUSTER_NAME)", "arc-1")
            .expr("$(ARC_RESOURCE_GROUP)", "rg-1")
    }

    fn az_calls(&self) -> String {
        std::fs::read_to_string(self.az.join("calls")).unwrap_or_default()
    }
}

/// The install step with the test's release site as `base-url` / `baseUrl`.
fn install(runner: &mut Runner, release: &Release, sha256: &str) -> JobResult {
    let mut result = JobResult::default();
    let base = release.site.url();
    match runner.kind {
        Kind::GitHub => runner.action(
            "github/actions/setup-arcseal/action.yml",
            BTreeMap::from([
                ("version".into(), VERSION.into()),
                ("sha256".into(), sha256.into()),
                ("base-url".into(), base),
            ]),
            &mut result,
        ),
        Kind::Azure => runner.template(
            "azure-pipelines/templates/setup-arcseal.yml",
            BTreeMap::from([
                ("version".into(), VERSION.into()),
                ("sha256".into(), sha256.into()),
                ("baseUrl".into(), base),
            ]),
            &mut result,
        ),
    }
    result
}

#[test]
fn the_action_and_the_azure_template_run_the_same_install_script() {
    let action = load("github/actions/setup-arcseal/action.yml");
    let template = load("azure-pipelines/templates/setup-arcseal.yml");
    assert_eq!(
        action.pointer("/runs/steps/0/run").and_then(Value::as_str).unwrap(),
        template.pointer("/steps/0/bash").and_then(Value::as_str).unwrap(),
        "the install scripts drifted apart; keep them identical"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_step_installs_the_pinned_release_and_refuses_a_wrong_checksum() {
    let bench = Bench::new("new").await;
    for kind in [Kind::GitHub, Kind::Azure] {
        let mut runner = match kind {
            Kind::GitHub => bench.github(),
            Kind::Azure => bench.azure(),
        };
        let wrong = "0".repeat(64);
        let result = install(&mut runner, &bench.release, &wrong);
        assert!(!result.ok(), "{kind:?}: a wrong checksum installed:\n{}", result.log());
        assert!(result.log().contains("not the pinned"), "{}", result.log());
        assert!(
            !bench.temp.join(format!("arcseal-{VERSION}/arcseal")).exists(),
            "{kind:?}: binary left behind"
        );

        let result = install(&mut runner, &bench.release, "not-hex");
        assert!(!result.ok() && result.log().contains("64 lowercase hex"), "{}", result.log());

        let result = install(&mut runner, &bench.release, &bench.release.sha256);
        assert!(result.ok(), "{kind:?}:\n{}", result.log());
        // Later steps find it on PATH.
        let (ok, out) = runner.script("version", "arcseal --version", &BTreeMap::new());
        assert!(ok && out.trim() == format!("arcseal {VERSION}"), "{kind:?}: {out}");
    }
    // https only off loopback.
    let mut runner = bench.github();
    let mut result = JobResult::default();
    runner.action(
        "github/actions/setup-arcseal/action.yml",
        BTreeMap::from([
            ("version".into(), VERSION.into()),
            ("sha256".into(), bench.release.sha256.clone()),
            ("base-url".into(), "http://releases.example.invalid".into()),
        ]),
        &mut result,
    );
    assert!(!result.ok() && result.log().contains("must be an https:// URL"), "{}", result.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_pr_gate_passes_sealed_secrets_and_fails_a_plaintext_secret() {
    let bench = Bench::new("new").await;
    let mut runner = bench.github();
    let result = run_github_job(&mut runner, &bench, "arcseal-pr-gate.yml", "validate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(result.not_run, ["actions/checkout", "mikepenz/action-junit-report"]);
    let junit = std::fs::read_to_string(bench.repo.work.join("arcseal-junit.xml")).unwrap();
    assert!(junit.contains("failures=\"0\"") && junit.contains("db-credentials"), "{junit}");

    bench.repo.write("apps/team-a/leak.yaml", pr_common::SECRET);
    let mut runner = bench.github();
    let result = run_github_job(&mut runner, &bench, "arcseal-pr-gate.yml", "validate");
    assert!(!result.ok(), "a plaintext Secret passed the gate:\n{}", result.log());
    assert!(result.log().contains("plaintext Secret"), "{}", result.log());
    assert!(!result.log().contains("correct-horse"), "a value reached the log");
}

/// Runs a GitHub job with the install step pointed at the test's release site.
fn run_github_job(runner: &mut Runner, bench: &Bench, workflow: &str, job: &str) -> JobResult {
    point_install_at(runner, bench);
    runner.job(&format!("github/workflows/{workflow}"), job)
}

fn run_azure_job(runner: &mut Runner, bench: &Bench, pipeline: &str, job: &str) -> JobResult {
    point_install_at(runner, bench);
    runner.job(&format!("azure-pipelines/{pipeline}"), job)
}

/// The install step's `base-url`/`baseUrl` default names the project's release site; the test's own
/// stands in for it (the one value of the pipelines' files the test replaces).
fn point_install_at(runner: &mut Runner, bench: &Bench) {
    runner.release_site = Some(bench.release.site.url());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_rotation_job_opens_the_pull_request_then_updates_it() {
    let bench = Bench::new("old").await;
    let gh = GitHubStandIn::start("acme", "config", &bench.repo.remote, TOKEN).await;
    let runner = || bench.github().var("GITHUB_API_URL", &gh.url()).var("GITHUB_REF_NAME", "main");
    let result = run_github_job(&mut runner(), &bench, "arcseal-rotate.yml", "rotate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(result.not_run, ["actions/checkout", "azure/login", "actions/upload-artifact"]);
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1, "{}", result.log());
    assert_eq!((pulls[0].head.as_str(), pulls[0].base.as_str()), (BRANCH, "main"));
    assert!(pulls[0].body.contains(SEALED_PATH), "{}", pulls[0].body);
    assert_eq!(bench.repo.remote_head(BRANCH).unwrap(), pulls[0].head_sha);
    // The key backup came from Key Vault with mode 0600 and is gone after the job.
    let calls = bench.az_calls();
    assert!(
        calls.contains("az keyvault secret download --vault-name kv1 --name sealed-secrets-keys"),
        "{calls}"
    );
    assert!(calls.contains("mode 600 "), "{calls}");
    assert!(!bench.temp.join("arcseal-key-backup.yaml").exists());
    assert!(bench.temp.join("arcseal-report.json").exists());

    // Next week's run, nothing merged yet: the same pull request, updated.
    bench.repo.fresh_checkout();
    std::fs::remove_file(bench.az.join("calls")).unwrap();
    let result = run_github_job(&mut runner(), &bench, "arcseal-rotate.yml", "rotate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(gh.pulls().len(), 1, "a duplicate pull request");
    assert!(result.log().contains("updated the open pull request #1"), "{}", result.log());

    // Merged: the next run has nothing due and opens nothing.
    git(&bench.repo.work, &["checkout", "--quiet", "main"]);
    git(&bench.repo.work, &["merge", "--quiet", "--ff-only", BRANCH]);
    git(&bench.repo.work, &["push", "--quiet", "origin", "main"]);
    git(&bench.repo.work, &["branch", "--quiet", "-D", BRANCH]);
    let posts = gh.log().iter().filter(|l| !l.starts_with("GET")).count();
    let result = run_github_job(&mut runner(), &bench, "arcseal-rotate.yml", "rotate");
    assert!(result.ok(), "{}", result.log());
    assert!(result.log().contains("nothing to rotate"), "{}", result.log());
    assert_eq!(gh.log().iter().filter(|l| !l.starts_with("GET")).count(), posts, "a write with nothing due");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_promotion_reseals_dev_secrets_for_prod_and_opens_the_pull_request() {
    let bench = Bench::new("new").await;
    let repo = &bench.repo;
    let gh = GitHubStandIn::start("acme", "config", &repo.remote, TOKEN).await;
    // dev is sealed with the "old" key, prod's certificate is the "new" one.
    std::fs::create_dir_all(repo.work.join("envs/dev/team-a")).unwrap();
    std::fs::create_dir_all(repo.work.join("envs/prod")).unwrap();
    std::fs::copy(repo.cert("new"), repo.work.join("envs/prod/sealing-cert.pem")).unwrap();
    let seal = |cert: &str, secret: &str| {
        let mut child = Command::new(arcseal_bin())
            .args(["seal", "--cert", cert])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), secret.as_bytes()).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let old_cert = repo.cert("old").display().to_string();
    repo.write("envs/dev/team-a/db.yaml", &seal(&old_cert, pr_common::SECRET));
    git(&repo.work, &["add", "-A"]);
    git(&repo.work, &["commit", "--quiet", "-m", "dev and prod"]);
    let before = git(&repo.work, &["rev-parse", "HEAD"]);
    // The push that triggers promotion: a new dev value.
    repo.write(
        "envs/dev/team-a/db.yaml",
        &seal(&old_cert, &pr_common::SECRET.replace("correct-horse", "battery")),
    );
    git(&repo.work, &["commit", "--quiet", "-am", "dev: new db password"]);
    git(&repo.work, &["push", "--quiet", "origin", "main"]);
    let after = git(&repo.work, &["rev-parse", "HEAD"]);

    let mut runner = bench
        .github()
        .var("GITHUB_API_URL", &gh.url())
        .expr("${{ inputs.files }}", "")
        .expr("${{ github.event.before }}", &before)
        .expr("${{ github.sha }}", &after);
    let result = run_github_job(&mut runner, &bench, "arcseal-promote.yml", "promote");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(result.not_run, ["actions/checkout", "azure/login"]);
    let pulls = gh.pulls();
    assert_eq!(pulls.len(), 1, "{}", result.log());
    assert_eq!((pulls[0].head.as_str(), pulls[0].base.as_str()), ("arcseal/promote-dev-to-prod", "main"));
    // On the pushed branch, prod's copy opens with prod's key only, to dev's new value.
    let prod = git(&repo.remote, &["show", "arcseal/promote-dev-to-prod:envs/prod/team-a/db.yaml"]);
    let unseal = |key: &str| {
        let mut child = Command::new(arcseal_bin())
            .args(["unseal", "--private-key", repo.keys.join(key).to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), prod.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    };
    let opened = unseal("new.pem");
    assert!(opened.status.success(), "{}", String::from_utf8_lossy(&opened.stderr));
    assert!(
        String::from_utf8_lossy(&opened.stdout).contains("YmF0dGVyeQ"),
        "not dev's new value (base64 of battery)"
    );
    assert!(!unseal("old.pem").status.success(), "prod's copy still opens with dev's key");
    let calls = bench.az_calls();
    assert!(calls.contains("--name keys-old") && calls.contains("--name keys-new"), "{calls}");
    assert!(!bench.temp.join("arcseal-keys-to.yaml").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_pipelines_gate_rotation_and_promotion_run_against_azure_devops() {
    let bench = Bench::new("old").await;
    let repo = &bench.repo;
    let ado = AzureDevOpsStandIn::start("contoso", "config", "config", &repo.remote, TOKEN).await;
    // The agent checks out a detached HEAD.
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    git(&repo.work, &["checkout", "--quiet", &head]);
    let agent = || {
        bench
            .azure()
            .var("SYSTEM_COLLECTIONURI", &ado.collection_uri())
            .var("SYSTEM_TEAMPROJECTID", PROJECT_ID)
            .var("BUILD_REPOSITORY_ID", REPOSITORY_ID)
            .var("BUILD_SOURCEBRANCH", "refs/heads/main")
            .var("BUILD_SOURCEVERSION", &head)
    };

    // PR gate: the SealedSecret is valid (sealed with the old key, still a cluster key).
    let result = run_azure_job(&mut agent(), &bench, "pr-gate.yml", "validate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(result.not_run, ["PublishTestResults@2"]);

    // Rotation: opens, then updates.
    let result = run_azure_job(&mut agent(), &bench, "rotate.yml", "rotate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(result.not_run, ["PublishPipelineArtifact@1"]);
    let prs = ado.pull_requests();
    assert_eq!(prs.len(), 1, "{}", result.log());
    assert_eq!(prs[0].source, format!("refs/heads/{BRANCH}"));
    assert_eq!(prs[0].target, "refs/heads/main");
    assert!(prs[0].description.contains("| password |"), "{}", prs[0].description);
    assert!(bench.az_calls().contains("mode 600 "));
    git(&repo.work, &["checkout", "--quiet", &head]);
    git(&repo.work, &["branch", "--quiet", "-D", BRANCH]);
    let result = run_azure_job(&mut agent(), &bench, "rotate.yml", "rotate");
    assert!(result.ok(), "{}", result.log());
    assert_eq!(ado.pull_requests().len(), 1, "a duplicate pull request");
    assert!(!bench.temp.join("arcseal-key-backup.yaml").exists());

    // Promotion with nothing changed under envs/dev: nothing copied, nothing pushed, no pull request.
    git(&repo.work, &["checkout", "--quiet", &head]);
    let result =
        run_azure_job(&mut agent().expr("${{ parameters.files }}", " "), &bench, "promote.yml", "promote");
    assert!(result.ok(), "{}", result.log());
    assert!(result.log().contains("nothing to promote"), "{}", result.log());
    assert!(repo.remote_head("arcseal/promote-dev-to-prod").is_none());
    assert_eq!(ado.pull_requests().len(), 1);
}
