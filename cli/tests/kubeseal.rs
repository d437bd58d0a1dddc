//! The binary invoked as `kubeseal` (a link so named) takes kubeseal's flags with kubeseal's defaults;
//! `arcseal seal` keeps its own. One test per row of the README's parity table that runs offline
//! (the cluster rows run against the real API server in tests/tests/kubeseal_proxy.rs).

use std::process::Output;

use arcseal_crypto::{KeyRing, PrivateKey, Scope};
use common::{FakeController, arcseal, arcseal_env, kubeseal, ok};
use serde_json::Value;

mod common;

fn failed(out: &Output) -> String {
    assert_ne!(out.status.code(), Some(0), "stdout: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stderr.clone()).unwrap()
}

struct Keys {
    dir: tempfile::TempDir,
    key: PrivateKey,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n).display().to_string();
        ok(&arcseal(
            &["keygen", "--bits", "2048", "--key-out", &p("key.pem"), "--cert-out", &p("cert.pem")],
            None,
        ));
        let key = PrivateKey::from_pem(&std::fs::read(p("key.pem")).unwrap()).unwrap();
        Keys { dir, key }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn cert(&self) -> String {
        self.path("cert.pem")
    }

    fn write(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn opens(&self, scope: Scope, ns: &str, name: &str, value: &str) -> Vec<u8> {
        KeyRing::new(vec![self.key.clone()])
            .open_value(&scope.encryption_label(ns, name), value, None)
            .unwrap()
            .plaintext
            .as_bytes()
            .to_vec()
    }
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: hunter2\n";

#[test]
fn output_is_json_by_default_and_format_is_case_insensitive() {
    let keys = Keys::new();
    let out = ok(&kubeseal(&["--cert", &keys.cert()], Some(SECRET.as_bytes()), &[]));
    let doc: Value = serde_json::from_str(&out).expect("kubeseal prints JSON by default");
    assert_eq!(doc["kind"], "SealedSecret");
    assert_eq!(
        keys.opens(Scope::Strict, "team-a", "db", doc["spec"]["encryptedData"]["password"].as_str().unwrap()),
        b"hunter2"
    );
    // arcseal seal keeps YAML.
    let out = ok(&arcseal(&["seal", "--cert", &keys.cert()], Some(SECRET.as_bytes())));
    assert!(out.starts_with("apiVersion:"), "{out}");
    for (tool, flag, yaml) in [
        ("kubeseal", "YAML", true),
        ("kubeseal", "yaml", true),
        ("arcseal", "JSON", false),
        ("kubeseal", "Json", false),
    ] {
        let out = if tool == "kubeseal" {
            ok(&kubeseal(&["--cert", &keys.cert(), "-o", flag], Some(SECRET.as_bytes()), &[]))
        } else {
            ok(&arcseal(&["seal", "--cert", &keys.cert(), "--format", flag], Some(SECRET.as_bytes())))
        };
        assert_eq!(out.starts_with("apiVersion:"), yaml, "{tool} -o {flag}: {out}");
        assert_eq!(out.starts_with('{'), !yaml, "{tool} -o {flag}: {out}");
    }
}

#[test]
fn sealed_secret_file_extension_rules() {
    let keys = Keys::new();
    for (name, json) in [("s.yaml", false), ("s.yml", false), ("s.json", true), ("s.txt", true), ("s", true)]
    {
        let path = keys.path(name);
        ok(&kubeseal(&["--cert", &keys.cert(), "-w", &path], Some(SECRET.as_bytes()), &[]));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.starts_with('{'), json, "kubeseal -w {name}: {text}");
    }
    // An explicit -o wins over the extension.
    let path = keys.path("x.yaml");
    ok(&kubeseal(&["--cert", &keys.cert(), "-w", &path, "-o", "json"], Some(SECRET.as_bytes()), &[]));
    assert!(std::fs::read_to_string(&path).unwrap().starts_with('{'));
    // arcseal seal: YAML unless the name says .json.
    let path = keys.path("a.txt");
    ok(&arcseal(&["seal", "--cert", &keys.cert(), "-w", &path], Some(SECRET.as_bytes())));
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("apiVersion:"));
}

#[test]
fn raw_with_from_file_in_both_syntaxes_and_name() {
    let keys = Keys::new();
    let value = keys.write("value.txt", "s3cret");
    for from in [value.clone(), format!("password={value}")] {
        let out = ok(&kubeseal(
            &["--raw", "--cert", &keys.cert(), "--namespace", "team-a", "--name", "db", "--from-file", &from],
            None,
            &[],
        ));
        assert!(!out.ends_with('\n'), "bare value");
        assert_eq!(keys.opens(Scope::Strict, "team-a", "db", &out), b"s3cret");
    }
    let out = ok(&kubeseal(
        &["--raw", "--cert", &keys.cert(), "--scope", "cluster-wide", "--from-file", &value],
        None,
        &[],
    ));
    assert_eq!(keys.opens(Scope::ClusterWide, "", "", &out), b"s3cret");
    // --raw without --from-file reads stdin.
    let out = ok(&kubeseal(
        &["--raw", "--cert", &keys.cert(), "--scope", "namespace-wide", "-n", "team-a"],
        Some(b"from-stdin"),
        &[],
    ));
    assert_eq!(keys.opens(Scope::NamespaceWide, "team-a", "", &out), b"from-stdin");
}

#[test]
fn name_and_from_file_without_raw_build_the_secret() {
    let keys = Keys::new();
    let user = keys.write("user.txt", "admin");
    let pw = keys.write("pw.txt", "hunter2");
    for tool in ["kubeseal", "arcseal"] {
        let args = [
            "--cert",
            &keys.cert(),
            "--name",
            "app",
            "-n",
            "team-b",
            "--from-file",
            &user,
            "--from-file",
            &format!("password={pw}"),
            "-o",
            "json",
        ];
        let out = if tool == "kubeseal" {
            ok(&kubeseal(&args, None, &[]))
        } else {
            ok(&arcseal(&[&["seal"], &args[..]].concat(), None))
        };
        let doc: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(doc["metadata"]["name"], "app");
        let data = &doc["spec"]["encryptedData"];
        assert_eq!(keys.opens(Scope::Strict, "team-b", "app", data["user.txt"].as_str().unwrap()), b"admin");
        assert_eq!(
            keys.opens(Scope::Strict, "team-b", "app", data["password"].as_str().unwrap()),
            b"hunter2"
        );
    }
    // --name names an input Secret that names none; a different name is an error.
    let nameless = "apiVersion: v1\nkind: Secret\nmetadata: {namespace: x}\nstringData: {a: b}\n";
    let out = ok(&kubeseal(&["--cert", &keys.cert(), "--name", "given"], Some(nameless.as_bytes()), &[]));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["metadata"]["name"], "given");
    let err = failed(&kubeseal(&["--cert", &keys.cert(), "--name", "other"], Some(SECRET.as_bytes()), &[]));
    assert!(err.contains("differs from --name"), "{err}");
}

#[test]
fn scope_merge_into_and_allow_empty_data() {
    let keys = Keys::new();
    let out =
        ok(&kubeseal(&["--cert", &keys.cert(), "--scope", "namespace-wide"], Some(SECRET.as_bytes()), &[]));
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["metadata"]["annotations"]["sealedsecrets.bitnami.com/namespace-wide"], "true");
    let target = keys.write("existing.json", &out);
    let more =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team-a}\nstringData: {extra: more}\n";
    ok(&kubeseal(&["--cert", &keys.cert(), "--merge-into", &target], Some(more.as_bytes()), &[]));
    let merged: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).expect("stays JSON");
    assert_eq!(merged["spec"]["encryptedData"]["password"], doc["spec"]["encryptedData"]["password"]);
    assert!(merged["spec"]["encryptedData"]["extra"].is_string());
    let empty = "apiVersion: v1\nkind: Secret\nmetadata: {name: e, namespace: x}\n";
    failed(&kubeseal(&["--cert", &keys.cert()], Some(empty.as_bytes()), &[]));
    ok(&kubeseal(&["--cert", &keys.cert(), "--allow-empty-data"], Some(empty.as_bytes()), &[]));
}

#[test]
fn recovery_unseal_and_fetch_cert_with_a_given_cert() {
    let keys = Keys::new();
    let sealed = ok(&kubeseal(&["--cert", &keys.cert()], Some(SECRET.as_bytes()), &[]));
    let out = ok(&kubeseal(
        &["--recovery-unseal", "--recovery-private-key", &keys.path("key.pem")],
        Some(sealed.as_bytes()),
        &[],
    ));
    assert!(out.contains("aHVudGVyMg=="), "{out}");
    let out = ok(&kubeseal(&["--fetch-cert", "--cert", &keys.cert()], None, &[]));
    assert!(out.starts_with("-----BEGIN CERTIFICATE-----"), "{out}");
}

#[test]
fn every_flag_reads_its_sealed_secrets_env_var() {
    let keys = Keys::new();
    let out = ok(&kubeseal(
        &[],
        Some(SECRET.as_bytes()),
        &[
            ("SEALED_SECRETS_CERT", &keys.cert()),
            ("SEALED_SECRETS_FORMAT", "yaml"),
            ("SEALED_SECRETS_SCOPE", "cluster-wide"),
        ],
    ));
    assert!(
        out.starts_with("apiVersion:") && out.contains("cluster-wide: \"true\"")
            || out.contains("cluster-wide: 'true'"),
        "{out}"
    );
    let help = ok(&arcseal(&["seal", "--help"], None));
    for var in [
        "SEALED_SECRETS_CONTROLLER_NAME",
        "SEALED_SECRETS_CONTROLLER_NAMESPACE",
        "SEALED_SECRETS_KUBECONFIG",
        "SEALED_SECRETS_FETCH_CERT",
        "SEALED_SECRETS_RE_ENCRYPT",
    ] {
        assert!(help.contains(var), "{var} missing from help");
    }
}

#[test]
fn no_cluster_and_no_cert_says_what_to_do() {
    let err = failed(&kubeseal(&[], Some(SECRET.as_bytes()), &[]));
    assert!(err.contains("no kubeconfig") && err.contains("--cert"), "{err}");
    // The controller flags name what is fetched.
    let kubeconfig = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        kubeconfig.path(),
        "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\n",
    )
    .unwrap();
    let err = failed(&kubeseal(
        &["--fetch-cert", "--kubeconfig", kubeconfig.path().to_str().unwrap(), "--request-timeout", "5s"],
        None,
        &[],
    ));
    assert!(err.contains("sealed-secrets-controller"), "{err}");
}

#[test]
fn re_encrypt_and_validate_talk_to_the_controller() {
    let keys = Keys::new();
    let sealed = ok(&kubeseal(&["--cert", &keys.cert()], Some(SECRET.as_bytes()), &[]));
    let answer = sealed.clone();
    let server = FakeController::start(move |_, path, _| match path {
        "/v1/rotate" => (200, vec![], answer.clone().into_bytes()),
        "/v1/verify" => (409, vec![], b"cannot decrypt".to_vec()),
        _ => (404, vec![], Vec::new()),
    });
    let base = format!("{}/v1/cert.pem", server.url);
    let out = ok(&kubeseal(&["--re-encrypt", "--cert", &base], Some(sealed.as_bytes()), &[]));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["kind"], "SealedSecret");
    let err = failed(&kubeseal(&["--validate", "--cert", &base], Some(sealed.as_bytes()), &[]));
    assert!(err.contains("unable to decrypt sealed secret"), "{err}");
}

#[test]
fn completions_list_values_for_scope_and_format() {
    let out = ok(&arcseal(&["completion", "bash"], None));
    assert!(out.contains("strict namespace-wide cluster-wide"), "scope values offered");
    assert!(out.contains("yaml json"), "format values offered");
}

#[test]
fn the_arcseal_env_helper_is_used() {
    let keys = Keys::new();
    let out = ok(&arcseal_env(&["seal"], Some(SECRET.as_bytes()), &[("SEALED_SECRETS_CERT", &keys.cert())]));
    assert!(out.contains("kind: SealedSecret"));
}

#[test]
fn a_terminal_on_stdin_gets_kubeseals_hint() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    }
    let keys = Keys::new();
    let command = format!("{} seal --cert {}", env!("CARGO_BIN_EXE_arcseal"), keys.cert());
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("KUBECONFIG", "/nonexistent")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    // The Secret typed on the terminal, then ^D.
    child.stdin.take().unwrap().write_all(format!("{SECRET}\u{4}").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(tty detected: expecting json/yaml k8s resource in stdin)"), "{text}");
    assert!(text.contains("kind: SealedSecret"), "{text}");
}
