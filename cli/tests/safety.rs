//! File, network and input safety of the real `arcseal` binary (issue 10, item 5 and the CLI parts of
//! item 7), and the PR gate's `validate` rules (issue 17).

use std::os::unix::fs::PermissionsExt;

use common::{FakeController, KeyDir as Dir, arcseal, arcseal_env, failed, ok};

mod common;

fn mode(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\nstringData:\n  password: hunter2-value\n";

#[test]
fn plaintext_and_keys_are_written_0600_over_wider_files_and_never_through_a_link() {
    let dir = Dir::new();
    let sealed = dir.write("sealed.yaml", &dir.seal(SECRET));
    // unseal -w over an existing 0644 file: the plaintext ends up 0600.
    let out_path = dir.write("plain.yaml", "old\n");
    std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(&arcseal(&["unseal", "--private-key", &dir.path("key.pem"), "-f", &sealed, "-w", &out_path], None));
    assert_eq!(mode(&out_path), 0o600);
    assert!(std::fs::read_to_string(&out_path).unwrap().contains("password"));
    // Through a symlink (to /dev/null, or to a file): refused, nothing written.
    let link = dir.path("null.yaml");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    let err = failed(&arcseal(
        &["unseal", "--private-key", &dir.path("key.pem"), "-f", &sealed, "-w", &link],
        None,
    ));
    assert!(err.contains("symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    // keygen --force over a 0666 key: 0600.
    std::fs::set_permissions(dir.path("key.pem"), std::fs::Permissions::from_mode(0o666)).unwrap();
    ok(&arcseal(
        &[
            "keygen",
            "--bits",
            "2048",
            "--force",
            "--key-out",
            &dir.path("key.pem"),
            "--cert-out",
            &dir.path("c2.pem"),
        ],
        None,
    ));
    assert_eq!(mode(&dir.path("key.pem")), 0o600);
    let key_link = dir.path("key-link.pem");
    std::os::unix::fs::symlink(dir.path("key.pem"), &key_link).unwrap();
    let before = std::fs::read(dir.path("key.pem")).unwrap();
    let err = failed(&arcseal(
        &["keygen", "--bits", "2048", "--force", "--key-out", &key_link, "--cert-out", &dir.path("c3.pem")],
        None,
    ));
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(dir.path("key.pem")).unwrap(), before);
}

#[test]
fn certificate_files_are_capped_and_errors_print_each_cause_once() {
    let dir = Dir::new();
    let big = dir.write("big.pem", &"A".repeat(2 << 20));
    let err = failed(&arcseal(&["cert", "--cert", &big], None));
    assert!(err.contains("larger than 1024 KiB"), "{err}");
    let err =
        failed(&arcseal(&["seal", "--cert", &dir.path("cert.pem"), "-f", &dir.path("missing.yaml")], None));
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn names_and_namespaces_the_api_server_refuses_are_refused() {
    let dir = Dir::new();
    for (secret, expect) in [
        ("metadata: {name: a/b, namespace: team-a}", "metadata.name \"a/b\""),
        ("metadata: {name: db, namespace: 'Bad Name!'}", "namespace \"Bad Name!\""),
    ] {
        let input =
            dir.write("bad.yaml", &format!("apiVersion: v1\nkind: Secret\n{secret}\nstringData: {{p: x}}\n"));
        let err = failed(&arcseal(&["seal", "--cert", &dir.path("cert.pem"), "-f", &input], None));
        assert!(err.contains(expect) && err.contains("API server would refuse"), "{err}");
    }
    let err = failed(&arcseal(
        &["seal", "--raw", "--cert", &dir.path("cert.pem"), "--name", "a/b", "--namespace", "x"],
        Some(b"v"),
    ));
    assert!(err.contains("--name \"a/b\""), "{err}");
}

#[test]
fn duplicate_json_keys_are_refused() {
    let dir = Dir::new();
    let input = dir.write(
        "dup.json",
        r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "a"},
            "stringData": {"password": "one-secret"}, "stringData": {"password": "two-secret"}}"#,
    );
    let err = failed(&arcseal(&["seal", "--cert", &dir.path("cert.pem"), "-f", &input], None));
    assert!(err.contains("duplicate key \"stringData\"") && err.contains("line 2"), "{err}");
    assert!(!err.contains("one-secret") && !err.contains("two-secret"), "{err}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = Dir::new();
    let script = format!(
        "{} completion bash | head -c 1 >/dev/null; {} cert --cert {} | head -n 1 >/dev/null",
        env!("CARGO_BIN_EXE_arcseal"),
        env!("CARGO_BIN_EXE_arcseal"),
        dir.path("cert.pem")
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn the_controller_is_never_followed_off_its_url() {
    let server = FakeController::start(|_, _, _| {
        (302, vec![("location".into(), "http://198.18.0.9/v1/cert.pem".into())], Vec::new())
    });
    let dir = Dir::new();
    dir.write("repo/s.yaml", &dir.seal(SECRET));
    let err = failed(&arcseal(&["rotate", &dir.path("repo"), "--controller-url", &server.url], None));
    assert!(err.contains("HTTP 302"), "{err}");
    assert_eq!(server.count(), 1);
}

#[test]
fn https_certificate_urls_only() {
    let err = failed(&arcseal(&["cert", "--cert", "http://127.0.0.1:1/v1/cert.pem"], None));
    assert!(err.contains("plain http"), "{err}");
}

/// A controller that serves `cert` and answers /v1/rotate with `rotate(body)`.
fn hostile(cert: String, rotate: fn(&serde_json::Value) -> serde_json::Value) -> FakeController {
    FakeController::start(move |_, path, body| match path {
        "/v1/cert.pem" => (200, vec![], cert.clone().into_bytes()),
        "/v1/rotate" => {
            let sent: serde_json::Value = serde_json::from_slice(body).unwrap();
            (200, vec![], rotate(&sent).to_string().into_bytes())
        }
        _ => (404, vec![], Vec::new()),
    })
}

#[test]
fn online_rotate_checks_every_value_from_the_controller_before_writing() {
    let dir = Dir::new();
    let old = Dir::new();
    let text = old.seal(SECRET);
    let file = dir.write("repo/s.yaml", &text);
    let cert = std::fs::read_to_string(dir.path("cert.pem")).unwrap();
    let attacks: [fn(&serde_json::Value) -> serde_json::Value; 3] = [
        // A value carrying a YAML block after a newline.
        |sent| {
            let mut a = sent.clone();
            let v = a["spec"]["encryptedData"]["password"].as_str().unwrap().to_owned();
            a["spec"]["encryptedData"]["password"] = format!("{v}\n  template:\n    type: Opaque").into();
            a
        },
        // Not base64 at all.
        |sent| {
            let mut a = sent.clone();
            a["spec"]["encryptedData"]["password"] = "not*base64".into();
            a
        },
        // Other items than were sent.
        |sent| {
            let mut a = sent.clone();
            a["spec"]["encryptedData"]["extra"] = "AAAA".into();
            a
        },
    ];
    for attack in attacks {
        let server = hostile(cert.clone(), attack);
        let err = failed(&arcseal(&["rotate", &dir.path("repo"), "--controller-url", &server.url], None));
        assert!(err.contains("nothing written"), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    }
    // The old key's values are a 2048-bit key's; an answer sealed for another key size is refused.
    let big = tempfile::tempdir().unwrap();
    let big_cert = big.path().join("c.pem").display().to_string();
    ok(&arcseal(
        &[
            "keygen",
            "--bits",
            "3072",
            "--key-out",
            &big.path().join("k.pem").display().to_string(),
            "--cert-out",
            &big_cert,
        ],
        None,
    ));
    let server = hostile(std::fs::read_to_string(&big_cert).unwrap(), |sent| sent.clone());
    let err = failed(&arcseal(&["rotate", &dir.path("repo"), "--controller-url", &server.url], None));
    assert!(err.contains("2048-bit key, not the controller's 3072-bit"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn online_validate_waits_out_429_and_gives_up_clearly() {
    let dir = Dir::new();
    dir.write("repo/s.yaml", &dir.seal(SECRET));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = busy.clone();
    let server = FakeController::start(move |_, _, _| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3 {
            (429, vec![("retry-after".into(), "1".into())], b"rate limited".to_vec())
        } else {
            (200, vec![], b"ok".to_vec())
        }
    });
    let started = std::time::Instant::now();
    ok(&arcseal(&["validate", &dir.path("repo"), "--controller-url", &server.url], None));
    assert_eq!(server.count(), 4);
    assert!(started.elapsed() >= std::time::Duration::from_secs(3), "Retry-After was honoured");

    let always = FakeController::start(|_, _, _| (429, vec![("retry-after".into(), "1".into())], Vec::new()));
    let out = arcseal(
        &["validate", &dir.path("repo"), "--controller-url", &always.url, "--rate-limit-wait", "2"],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("kept answering HTTP 429") && stdout.contains("--rate-limit-wait"), "{stdout}");
    assert_eq!(always.count(), 3, "two waits of 1 s fit in 2 s, then it stops");
}

#[test]
fn validate_fails_when_it_checked_nothing() {
    let dir = Dir::new();
    dir.write("empty/README.md", "no manifests\n");
    let out = arcseal(&["validate", &dir.path("empty")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was checked"));
    ok(&arcseal(&["validate", &dir.path("empty"), "--allow-empty"], None));
    let out = arcseal(&["validate"], Some(b""));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn validate_fails_on_a_plaintext_secret_anywhere_naming_items_never_values() {
    let dir = Dir::new();
    dir.write("repo/apps/sealed.yaml", &dir.seal(SECRET));
    dir.write(
        "repo/apps/deep/mistake.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n---\n# the one a PR gate exists to catch\napiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: team-a\ndata:\n  token: c2VjcmV0LXRva2Vu\nstringData:\n  password: hunter2-plain\n",
    );
    dir.write(
        "repo/list.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "in-list"}, "stringData": {"api-key": "plain-api-key"}}]}"#,
    );
    let out = arcseal(&["validate", &dir.path("repo")], None);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mistake.yaml:7") && stdout.contains("team-a/leaked"), "{stdout}");
    assert!(stdout.contains("item(s) password, token"), "{stdout}");
    assert!(
        stdout.contains("list.json:1") && stdout.contains("in-list") && stdout.contains("api-key"),
        "{stdout}"
    );
    for value in ["hunter2-plain", "c2VjcmV0LXRva2Vu", "plain-api-key"] {
        assert!(!stdout.contains(value), "{stdout}");
    }
}

#[test]
fn validate_refuses_what_rotate_values_would_refuse() {
    let dir = Dir::new();
    let sealed = dir.seal(SECRET);
    let bad_policy =
        sealed.replacen("annotations:\n", "annotations:\n    arcseal.dev/generate: password=4\n", 1);
    let missing_item =
        sealed.replacen("annotations:\n", "annotations:\n    arcseal.dev/generate: token=32\n", 1);
    assert_ne!(bad_policy, sealed, "the sealed output has annotations");
    for (text, expect) in [(bad_policy, "8 to 4096"), (missing_item, "names item \"token\"")] {
        let file = dir.write("repo/s.yaml", &text);
        let out = arcseal(&["validate", &file], None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains(expect) && stdout.contains("rotate --rotate-values"), "{stdout}");
    }
}

#[test]
fn the_namespace_comes_from_the_kubeconfig_like_kubectl() {
    let dir = Dir::new();
    let kubeconfig = dir.write(
        "kubeconfig",
        "apiVersion: v1\nkind: Config\ncurrent-context: dev\ncontexts:\n- name: dev\n  context: {cluster: c, user: u, namespace: team-dev}\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {}\n",
    );
    let nameless = "apiVersion: v1\nkind: Secret\nmetadata: {name: db}\nstringData: {p: x}\n";
    let cert = dir.path("cert.pem");
    let out = ok(&arcseal_env(
        &["seal", "--cert", &cert],
        Some(nameless.as_bytes()),
        &[("KUBECONFIG", &kubeconfig)],
    ));
    assert!(out.contains("namespace: team-dev"), "{out}");
    let out =
        ok(&arcseal(&["seal", "--cert", &cert, "--kubeconfig", &kubeconfig], Some(nameless.as_bytes())));
    assert!(out.contains("namespace: team-dev"), "{out}");
    // No kubeconfig at all: default, as kubectl.
    let out = ok(&arcseal(&["seal", "--cert", &cert], Some(nameless.as_bytes())));
    assert!(out.contains("namespace: default"), "{out}");
    // An unreadable kubeconfig or a missing context is an error when the namespace is needed...
    let broken = dir.write("broken", "contexts: [\n");
    let err = failed(&arcseal_env(
        &["seal", "--cert", &cert],
        Some(nameless.as_bytes()),
        &[("KUBECONFIG", &broken)],
    ));
    assert!(err.contains("cannot read this kubeconfig") && err.contains("names no namespace"), "{err}");
    let err = failed(&arcseal(
        &["seal", "--cert", &cert, "--kubeconfig", &kubeconfig, "--context", "prod"],
        Some(nameless.as_bytes()),
    ));
    assert!(err.contains("no context \"prod\""), "{err}");
    // ...and not when it is not.
    ok(&arcseal_env(&["seal", "--cert", &cert], Some(SECRET.as_bytes()), &[("KUBECONFIG", &broken)]));
    // A cluster-wide Secret without a namespace stays without one.
    let out = ok(&arcseal(
        &["seal", "--cert", &cert, "--scope", "cluster-wide", "--kubeconfig", &kubeconfig],
        Some(nameless.as_bytes()),
    ));
    assert!(!out.contains("namespace:"), "{out}");
}

#[test]
fn rotate_never_edits_a_copy_of_the_value_instead_of_its_node() {
    let old = Dir::new();
    let new = Dir::new();
    let sealed = old.seal(SECRET);
    let doc: serde_json::Value = serde_saphyr::from_str(&sealed).unwrap();
    let value = doc["spec"]["encryptedData"]["password"].as_str().unwrap().to_owned();
    // The node spells its first character as an escape; the annotation holds the plain copy.
    let escaped = format!("\"\\x{:02x}{}\"", value.as_bytes()[0], &value[1..]);
    let text = sealed.replacen(&format!("password: {value}"), &format!("password: {escaped}"), 1).replacen(
        "annotations:\n",
        &format!(
            "annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{{\"spec\":{{\"encryptedData\":{{\"password\":\"{value}\"}}}}}}'\n"
        ),
        1,
    );
    assert!(text.contains(&escaped) && text.contains("last-applied"), "{text}");
    let file = old.write("repo/s.yaml", &text);
    let keys = format!("{},{}", old.path("key.pem"), new.path("key.pem"));
    let out = arcseal(
        &["rotate", &old.path("repo"), "--private-key", &keys, "--cert", &new.path("cert.pem")],
        None,
    );
    let err = failed(&out);
    assert!(err.contains("cannot pin") && err.contains("last-applied-configuration"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
