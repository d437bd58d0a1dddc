//! Drives the real `arcseal` binary: seal, unseal, merge, raw, validate, keygen, errors.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use arcseal_crypto::{Certificate, CertificateParams, KeyRing, PrivateKey};
use common::{KeyDir as Keys, arcseal, failed, ok};
use serde_json::Value;

mod common;

fn fixtures() -> PathBuf {
    std::env::var_os("ARCSEAL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/sealed-secrets"))
}

fn fixture(name: &str) -> String {
    let path = fixtures().join(name);
    assert!(path.exists(), "fixture {} missing (set ARCSEAL_FIXTURES)", path.display());
    path.display().to_string()
}

const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: team-a
  creationTimestamp: null
  uid: 0b6c8e7e-0000-0000-0000-000000000000
  resourceVersion: "42"
  labels: {app: db}
  annotations:
    team: payments
    kubectl.kubernetes.io/last-applied-configuration: '{"stringData":{"password":"hunter2"}}'
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: owner, uid: "1"}
type: Opaque
data:
  username: YWRtaW4=
stringData:
  password: hunter2
"#;

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

#[test]
fn seal_then_unseal_round_trips_and_output_is_gitops_clean() {
    let keys = Keys::new();
    let input = keys.write("secret.yaml", SECRET);
    let sealed_path = keys.path("sealed.yaml");
    ok(&arcseal(&["seal", "--cert", &keys.path("cert.pem"), "-f", &input, "-w", &sealed_path], None));
    let sealed_text = std::fs::read_to_string(&sealed_path).unwrap();
    assert!(!sealed_text.contains("hunter2") && !sealed_text.contains("YWRtaW4="));
    assert!(!sealed_text.contains("creationTimestamp") && !sealed_text.contains("status"));
    assert!(!sealed_text.contains("last-applied") && !sealed_text.contains("ownerReferences"));
    assert!(!sealed_text.contains("uid") && !sealed_text.contains("resourceVersion"));
    let doc = &yaml_docs(&sealed_text)[0];
    assert_eq!(doc["apiVersion"], "bitnami.com/v1alpha1");
    assert_eq!(doc["metadata"]["labels"]["app"], "db");
    assert_eq!(doc["metadata"]["annotations"]["team"], "payments");
    assert_eq!(doc["spec"]["template"]["metadata"]["annotations"]["team"], "payments");
    assert_eq!(doc["spec"]["template"]["metadata"]["labels"]["app"], "db");
    assert_eq!(doc["spec"]["template"]["type"], "Opaque");
    let fingerprint =
        Certificate::from_pem(&std::fs::read(keys.path("cert.pem")).unwrap()).unwrap().fingerprint();
    assert_eq!(doc["metadata"]["annotations"]["arcseal.dev/sealed-with"], format!("sha256:{fingerprint}"));

    // Stable: sealing again changes ciphertexts only, never layout or order.
    ok(&arcseal(
        &["seal", "--cert", &keys.path("cert.pem"), "-f", &input, "-w", &keys.path("again.yaml")],
        None,
    ));
    let again = std::fs::read_to_string(keys.path("again.yaml")).unwrap();
    let shape = |t: &str| t.lines().map(|l| l.split(": ").next().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(shape(&sealed_text), shape(&again));

    for key in [keys.path("key.pem"), keys.path("key-secret.yaml")] {
        let out = ok(&arcseal(&["unseal", "--private-key", &key, "-f", &sealed_path, "-o", "json"], None));
        let secret: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["metadata"]["name"], "db");
        assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
        assert_eq!(secret["data"]["username"], "YWRtaW4=");
    }
}

#[test]
fn fixture_sealed_secrets_unseal_with_fixture_key_secrets() {
    let keys = format!("{},{}", fixture("key-secret-2048.yaml"), fixture("key-secret-4096.yaml"));
    let mut count = 0;
    for scope in ["strict", "namespace-wide", "cluster-wide"] {
        for bits in ["2048", "4096"] {
            let file = fixture(&format!("sealedsecret-{scope}-{bits}.yaml"));
            let out = ok(&arcseal(&["unseal", "--private-key", &keys, "-f", &file], None));
            let secret = &yaml_docs(&out)[0];
            assert_eq!(secret["metadata"]["namespace"], "team-a");
            assert_eq!(secret["metadata"]["name"], "db-credentials");
            let item = |k: &str| arcseal_crypto::decode_base64(secret["data"][k].as_str().unwrap()).unwrap();
            assert_eq!(item("username"), b"admin");
            assert_eq!(String::from_utf8(item("password")).unwrap(), "s3cr3t-\u{2713}");
            assert_eq!(item("binary"), (0..=255u8).collect::<Vec<_>>());
            assert!(item("empty").is_empty());
            count += 1;
        }
    }
    assert_eq!(count, 6);
}

#[test]
fn kubeseal_recovery_flags_work() {
    let file = fixture("sealedsecret-strict-4096.yaml");
    let keys = format!("{},{}", fixture("key-2048.pem"), fixture("key-4096.pem"));
    let out =
        ok(&arcseal(&["seal", "--recovery-unseal", "--recovery-private-key", &keys, "-f", &file], None));
    assert!(out.contains("kind: Secret"));
    let out =
        ok(&arcseal(&["unseal", "--recovery-private-key", &fixture("key-4096.pem"), "-f", &file], None));
    assert!(out.contains("binary:"));
}

#[test]
fn wrong_key_fails_without_leaking_which_step() {
    let keys = Keys::new();
    let err = failed(&arcseal(
        &["unseal", "--private-key", &keys.path("key.pem"), "-f", &fixture("sealedsecret-strict-2048.yaml")],
        None,
    ));
    assert!(err.contains("SealedSecret team-a/db-credentials"), "{err}");
    assert!(err.contains("item \"binary\"") || err.contains("item \"empty\""), "{err}");
    for leak in ["padding", "tag", "OAEP", "GCM"] {
        assert!(!err.contains(leak), "{err}");
    }
}

#[test]
fn bad_input_names_the_item_writes_nothing_and_keeps_the_target() {
    let keys = Keys::new();
    let bad = SECRET.replace("username: YWRtaW4=", "username: not*base64");
    let input = keys.write("bad.yaml", &format!("{SECRET}---\n{}", bad.replace("name: db", "name: db2")));
    let target = keys.write("target.yaml", "precious\n");
    let err =
        failed(&arcseal(&["seal", "--cert", &keys.path("cert.pem"), "-f", &input, "-w", &target], None));
    assert!(err.contains("bad.yaml, document 2 (Secret team-a/db2), item \"username\""), "{err}");
    assert!(err.contains("base64"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("not*base64"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
    let leftovers: Vec<_> = std::fs::read_dir(keys.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".arcseal"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn namespace_conflict_and_missing_data_are_refused() {
    let keys = Keys::new();
    let cert = keys.path("cert.pem");
    let err = failed(&arcseal(&["seal", "--cert", &cert, "-n", "other"], Some(SECRET.as_bytes())));
    assert!(err.contains("conflicts with --namespace \"other\""), "{err}");
    let empty = "kind: Secret\napiVersion: v1\nmetadata: {name: e, namespace: n}\n";
    let err = failed(&arcseal(&["seal", "--cert", &cert], Some(empty.as_bytes())));
    assert!(err.contains("--allow-empty-data"), "{err}");
    let out = ok(&arcseal(&["seal", "--cert", &cert, "--allow-empty-data"], Some(empty.as_bytes())));
    assert!(out.contains("encryptedData: {}"), "{out}");
    let err = failed(&arcseal(&["seal"], Some(SECRET.as_bytes())));
    assert!(err.contains("--cert"), "{err}");
}

#[test]
fn expired_certificate_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let key = PrivateKey::generate(2048).unwrap();
    let params = CertificateParams {
        common_name: String::new(),
        not_before: SystemTime::now() - Duration::from_secs(7200),
        validity: Duration::from_secs(3600),
    };
    let path = dir.path().join("old.pem");
    std::fs::write(&path, Certificate::self_signed(&key, &params).unwrap().to_pem()).unwrap();
    let err = failed(&arcseal(&["seal", "--cert", path.to_str().unwrap()], Some(SECRET.as_bytes())));
    assert!(err.contains("expired") && err.contains("/v1/cert.pem"), "{err}");
    let out = arcseal(&["cert", "--cert", path.to_str().unwrap()], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("EXPIRED"));
}

#[test]
fn scopes_bind_what_they_say() {
    let keys = Keys::new();
    let cert = keys.path("cert.pem");
    let ring =
        KeyRing::new(vec![PrivateKey::from_pem(&std::fs::read(keys.path("key.pem")).unwrap()).unwrap()]);
    for (scope, other_ns_opens, other_name_opens) in
        [("strict", false, false), ("namespace-wide", false, true), ("cluster-wide", true, true)]
    {
        let out =
            ok(&arcseal(&["seal", "--cert", &cert, "--scope", scope, "-o", "json"], Some(SECRET.as_bytes())));
        let doc: Value = serde_json::from_str(&out).unwrap();
        let value = doc["spec"]["encryptedData"]["password"].as_str().unwrap();
        let annotations = &doc["metadata"]["annotations"];
        assert_eq!(
            annotations.get(format!("sealedsecrets.bitnami.com/{scope}")).is_some(),
            scope != "strict"
        );
        let opens = |ns: &str, name: &str| {
            let label = scope.parse::<arcseal_crypto::Scope>().unwrap().encryption_label(ns, name);
            ring.open_value(&label, value, None).is_ok()
        };
        assert!(opens("team-a", "db"));
        assert_eq!(opens("team-b", "db"), other_ns_opens, "{scope}");
        assert_eq!(opens("team-a", "other"), other_name_opens, "{scope}");
    }
}

#[test]
fn merge_into_keeps_other_items_byte_identical() {
    let keys = Keys::new();
    let cert = keys.path("cert.pem");
    let target = keys.path("sealed.yaml");
    ok(&arcseal(&["seal", "--cert", &cert, "-w", &target], Some(SECRET.as_bytes())));
    let before = yaml_docs(&std::fs::read_to_string(&target).unwrap())[0].clone();
    let update = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: team-a}\nstringData: {password: new, token: t0k}\n";
    ok(&arcseal(&["seal", "--cert", &cert, "--merge-into", &target], Some(update.as_bytes())));
    let after = yaml_docs(&std::fs::read_to_string(&target).unwrap())[0].clone();
    let (b, a) = (&before["spec"]["encryptedData"], &after["spec"]["encryptedData"]);
    assert_eq!(a["username"], b["username"], "untouched item keeps its ciphertext");
    assert_ne!(a["password"], b["password"]);
    assert!(a["token"].is_string());
    let out =
        ok(&arcseal(&["unseal", "--private-key", &keys.path("key.pem"), "-f", &target, "-o", "json"], None));
    let secret: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(secret["data"]["password"], "bmV3");
    assert_eq!(secret["data"]["username"], "YWRtaW4=");

    let wrong = update.replace("name: db", "name: other");
    let err = failed(&arcseal(&["seal", "--cert", &cert, "--merge-into", &target], Some(wrong.as_bytes())));
    assert!(err.contains("differs from \"db\""), "{err}");
}

#[test]
fn raw_prints_a_bare_value_that_opens() {
    let keys = Keys::new();
    let value = ok(&arcseal(
        &["seal", "--raw", "--cert", &keys.path("cert.pem"), "--namespace", "ns", "--name", "n"],
        Some(b"raw-secret"),
    ));
    assert!(!value.ends_with('\n') && !value.contains(' '));
    let ring =
        KeyRing::new(vec![PrivateKey::from_pem(&std::fs::read(keys.path("key.pem")).unwrap()).unwrap()]);
    assert_eq!(ring.open_value(b"ns/n", &value, None).unwrap().plaintext.as_bytes(), b"raw-secret");
    let err = arcseal(&["seal", "--raw", "--cert", &keys.path("cert.pem"), "--namespace", "ns"], Some(b"x"));
    assert!(String::from_utf8_lossy(&err.stderr).contains("--name"));
}

#[test]
fn multi_document_json_and_yaml_inputs() {
    let keys = Keys::new();
    let json = r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"a","namespace":"x"},"stringData":{"k":"v"}}
{"apiVersion":"v1","kind":"Secret","metadata":{"name":"b","namespace":"x"},"stringData":{"k":"w"}}"#;
    let out = ok(&arcseal(&["seal", "--cert", &keys.path("cert.pem")], Some(json.as_bytes())));
    let docs = yaml_docs(&out);
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["metadata"]["name"], "b");
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n",
        "{apiVersion: v1, kind: Secret, metadata: {name: c, namespace: x}, stringData: {k: v}}"
    );
    let out = ok(&arcseal(&["seal", "--cert", &keys.path("cert.pem"), "-o", "json"], Some(list.as_bytes())));
    assert!(out.contains("\"name\": \"c\""));
}

#[test]
fn alias_bomb_is_refused() {
    let keys = Keys::new();
    let mut bomb = String::from(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: b}\nx0: &x0 [a, a, a, a, a, a, a, a, a]\n",
    );
    for i in 1..10 {
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n",
            p = i - 1
        ));
    }
    bomb.push_str("stringData: {k: v}\n");
    let err = failed(&arcseal(&["seal", "--cert", &keys.path("cert.pem")], Some(bomb.as_bytes())));
    assert!(err.contains("<stdin>") && err.contains("invalid YAML"), "{err}");
}

#[test]
fn validate_passes_good_files_and_names_each_defect() {
    let keys = Keys::new();
    let cert = keys.path("cert.pem");
    let good = keys.path("good.yaml");
    ok(&arcseal(&["seal", "--cert", &cert, "-w", &good], Some(SECRET.as_bytes())));
    ok(&arcseal(&["validate", "--cert", &cert, "--private-key", &keys.path("key.pem"), &good], None));

    let text = std::fs::read_to_string(&good).unwrap();
    let doc = &yaml_docs(&text)[0];
    let password = doc["spec"]["encryptedData"]["password"].as_str().unwrap();
    let bad_b64 = keys.write("b64.yaml", &text.replace(password, "bm90*YmFzZTY0"));
    let err = String::from_utf8(arcseal(&["validate", &bad_b64], None).stdout).unwrap();
    assert!(err.contains("item \"password\"") && err.contains("base64"), "{err}");

    let fixture_4096 = fixture("sealedsecret-strict-4096.yaml");
    let out = arcseal(&["validate", "--cert", &cert, &fixture_4096], None);
    let report = failed_stdout(&out);
    assert!(report.contains("4096-bit key") && report.contains("2048 bits"), "{report}");

    let renamed = keys.write(
        "renamed.yaml",
        &text.replace("name: db\n  namespace: team-a\nspec", "name: db-renamed\n  namespace: team-a\nspec"),
    );
    let report =
        failed_stdout(&arcseal(&["validate", "--private-key", &keys.path("key.pem"), &renamed], None));
    assert!(
        report.contains("SealedSecret team-a/db-renamed") && report.contains("no given key opens it"),
        "{report}"
    );

    let sloppy = keys.write(
        "scope.yaml",
        &text.replace("  labels:\n    app: db\n  name: db", "  labels:\n    app: db\n  name: db\n").replace(
            "arcseal.dev/sealed-with",
            "sealedsecrets.bitnami.com/cluster-wide: 'True'\n    arcseal.dev/sealed-with",
        ),
    );
    let report = failed_stdout(&arcseal(&["validate", &sloppy], None));
    assert!(report.contains("exactly \\\"true\\\"") || report.contains("exactly \"true\""), "{report}");
}

fn failed_stdout(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[test]
fn keygen_never_overwrites_a_key_and_writes_it_private() {
    let keys = Keys::new();
    let before = std::fs::read(keys.path("key.pem")).unwrap();
    let err = failed(&arcseal(
        &["keygen", "--key-out", &keys.path("key.pem"), "--cert-out", &keys.path("c2.pem")],
        None,
    ));
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read(keys.path("key.pem")).unwrap(), before);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(keys.path("key.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let secret = &yaml_docs(&std::fs::read_to_string(keys.path("key-secret.yaml")).unwrap())[0];
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert_eq!(secret["metadata"]["labels"]["sealedsecrets.bitnami.com/sealed-secrets-key"], "active");
    let out = ok(&arcseal(&["cert", "--cert", &keys.path("cert.pem")], None));
    assert!(out.contains("RSA-2048") && out.contains("sha256:"));
}

#[test]
fn completions_and_demo_run() {
    let out = ok(&arcseal(&["completion", "bash"], None));
    assert!(out.contains("arcseal") && out.contains("--sealed-secret-file"));
    let out = arcseal(&["demo"], None);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("kind: SealedSecret") && !stdout.contains("correct horse"));
    assert!(Path::new(env!("CARGO_BIN_EXE_arcseal")).exists());
}

#[test]
fn offline_unseal_renders_templates_like_the_controller() {
    let keys = Keys::new();
    let input = keys.write("secret.yaml", SECRET);
    let sealed_path = keys.path("sealed.yaml");
    ok(&arcseal(&["seal", "--cert", &keys.path("cert.pem"), "-f", &input, "-w", &sealed_path], None));
    let mut doc = yaml_docs(&std::fs::read_to_string(&sealed_path).unwrap()).remove(0);
    doc["spec"]["template"]["data"] = serde_json::json!({
        "url": "postgres://{{ .username }}:{{ .password | upper }}@db",
        ".dockerconfigjson": "{{ dict \"auths\" (dict \"r.io\" (dict \"auth\" (printf \"%s:%s\" .username .password | b64enc))) | toJson }}",
        "plain": "no actions here",
    });
    let templated = keys.write("templated.json", &serde_json::to_string(&doc).unwrap());
    let out = ok(&arcseal(
        &["unseal", "--private-key", &keys.path("key.pem"), "-f", &templated, "-o", "json"],
        None,
    ));
    let secret: Value = serde_json::from_str(&out).unwrap();
    let decoded = |k: &str| {
        String::from_utf8(arcseal_crypto::decode_base64(secret["data"][k].as_str().unwrap()).unwrap())
            .unwrap()
    };
    assert_eq!(decoded("url"), "postgres://admin:HUNTER2@db");
    assert_eq!(decoded(".dockerconfigjson"), r#"{"auths":{"r.io":{"auth":"YWRtaW46aHVudGVyMg=="}}}"#);
    assert_eq!(decoded("plain"), "no actions here");
    assert_eq!(decoded("password"), "hunter2", "items stay beside the rendered keys");

    // A template the engine refuses fails with the key and the function, never a value, and writes nothing.
    doc["spec"]["template"]["data"] = serde_json::json!({"k": "{{ .password | encryptAES \"x\" }}"});
    let refused = keys.write("refused.json", &serde_json::to_string(&doc).unwrap());
    let target = keys.path("out.json");
    let err = failed(&arcseal(
        &["unseal", "--private-key", &keys.path("key.pem"), "-f", &refused, "-w", &target],
        None,
    ));
    assert!(err.contains("encryptAES") && err.contains("k:1"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("HUNTER2"), "{err}");
    assert!(!std::path::Path::new(&target).exists(), "no partial output");
}
