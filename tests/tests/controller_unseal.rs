//! `arcseal-controller unseal` against a real kube-apiserver: each test runs its own controller (in this process, with
//! its own client) scoped to its own namespace, with keys stored as sealed-secrets stores them.

use std::collections::BTreeMap;
use std::time::Duration;

use arcseal_controller::unseal::crd::{SealedSecret, SecretTemplateSpec};
use arcseal_controller::unseal::{self};
use arcseal_crypto::{Certificate, Scope};
use arcseal_tests::k8s::{self, TestNamespace, poll};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

mod controller_common;
use controller_common::*;

#[tokio::test]
async fn create_then_update_renamed_and_added_items() -> TestResult {
    let (ns, key, running) = setup("create-update").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let ss = sealed(
        ns.name(),
        "db",
        Scope::Strict,
        key.public_key(),
        &[("user", b"admin"), ("pass", b"s3cr3t")],
        None,
    );
    ssa.create(&pp, &ss).await?;
    let synced = wait_synced(&ssa, "db", "True").await;
    assert_eq!(data(&secrets, "db").await, map(&[("user", b"admin"), ("pass", b"s3cr3t")]));
    let secret = secrets.get("db").await?;
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("SealedSecret", synced.uid().unwrap().as_str(), Some(true))
    );
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let rv = secret.metadata.resource_version.clone();

    // Nothing changes on a resync: the Secret is not rewritten and no second event appears. Awaited by the
    // controller's own count of reconciles (this is the only SealedSecret it watches): two more passes, so at least
    // one whole resync ran after the one that synced it.
    let passes = running.handles.metrics.unseal_requests.get();
    poll("two resync passes", TIMEOUT, || async {
        Ok((running.handles.metrics.unseal_requests.get() >= passes + 2).then_some(()))
    })
    .await?;
    assert_eq!(secrets.get("db").await?.metadata.resource_version, rv, "no write when nothing differs");
    let unsealed = events(&ns.client(), ns.name(), "db").await;
    assert_eq!(unsealed.iter().filter(|(r, _)| r == "Unsealed").count(), 1, "{unsealed:?}");

    // Rename `user` to `username` (same ciphertext: item names are not in the label), change `pass`, add `port`.
    let mut next = ssa.get("db").await?;
    let user_value = next.spec.encrypted_data.remove("user").unwrap();
    next.spec.encrypted_data.insert("username".into(), user_value);
    let label = Scope::Strict.encryption_label(ns.name(), "db");
    next.spec.encrypted_data.insert("pass".into(), arcseal_crypto::seal(key.public_key(), &label, b"n3w")?);
    next.spec.encrypted_data.insert("port".into(), arcseal_crypto::seal(key.public_key(), &label, b"5432")?);
    ssa.replace("db", &pp, &next).await?;
    wait_synced(&ssa, "db", "True").await;
    assert_eq!(
        data(&secrets, "db").await,
        map(&[("username", b"admin"), ("pass", b"n3w"), ("port", b"5432")])
    );
    let unsealed = events(&ns.client(), ns.name(), "db").await;
    assert!(unsealed.iter().all(|(_, note)| !note.contains("s3cr3t") && !note.contains("admin")));
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn managed_takeover_patch_merge_and_unmanaged_refusal() -> TestResult {
    let (ns, key, running) = setup("managed-patch").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let existing = |name: &str, annotation: Option<&str>| Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([("hand".to_owned(), "made".to_owned())].into()),
            annotations: annotation.map(|a| [(a.to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some([("old".to_owned(), ByteString(b"o".to_vec()))].into()),
        ..Secret::default()
    };
    secrets.create(&pp, &existing("managed", Some("sealedsecrets.bitnami.com/managed"))).await?;
    secrets.create(&pp, &existing("patched", Some("sealedsecrets.bitnami.com/patch"))).await?;
    secrets.create(&pp, &existing("foreign", None)).await?;
    for name in ["managed", "patched", "foreign"] {
        ssa.create(&pp, &sealed(ns.name(), name, Scope::Strict, key.public_key(), &[("new", b"n")], None))
            .await?;
    }
    wait_synced(&ssa, "managed", "True").await;
    let managed = secrets.get("managed").await?;
    assert_eq!(data(&secrets, "managed").await, map(&[("new", b"n")]), "managed: replaced");
    assert!(managed.labels().is_empty());
    assert_eq!(managed.owner_references().len(), 1);

    wait_synced(&ssa, "patched", "True").await;
    let patched = secrets.get("patched").await?;
    assert_eq!(data(&secrets, "patched").await, map(&[("new", b"n"), ("old", b"o")]), "patch: merged");
    assert_eq!(patched.labels().get("hand").map(String::as_str), Some("made"));

    let refused = wait_synced(&ssa, "foreign", "False").await;
    let message = refused.synced_condition().and_then(|c| c.message.clone()).unwrap_or_default();
    assert_eq!(message, "Resource \"foreign\" already exists and is not managed by SealedSecret");
    let foreign = secrets.get("foreign").await?;
    assert_eq!(data(&secrets, "foreign").await, map(&[("old", b"o")]), "never touched");
    assert!(foreign.owner_references().is_empty());
    let warned = events(&ns.client(), ns.name(), "foreign").await;
    assert!(
        warned.iter().any(|(r, n)| r == "ErrUpdateFailed" && n.contains("is not managed by SealedSecret")),
        "{warned:?}"
    );
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn wrong_key_and_each_scope_with_a_wrong_name_or_namespace() -> TestResult {
    let (ns, key, running) = setup("scopes").await;
    let ssa = ns.api::<SealedSecret>();
    let secrets = ns.api::<Secret>();
    let pp = PostParams::default();
    let (other_key, _) = new_key();
    let n = ns.name();
    let pk = key.public_key();
    let cases: Vec<(SealedSecret, bool)> = vec![
        (sealed(n, "wrong-key", Scope::Strict, other_key.public_key(), &[("a", b"x")], None), false),
        (sealed(n, "strict-ok", Scope::Strict, pk, &[("a", b"x")], None), true),
        (sealed(n, "strict-wrong-name", Scope::Strict, pk, &[("a", b"x")], Some((n, "other"))), false),
        (
            sealed(
                n,
                "strict-wrong-ns",
                Scope::Strict,
                pk,
                &[("a", b"x")],
                Some(("other", "strict-wrong-ns")),
            ),
            false,
        ),
        (sealed(n, "nw-any-name", Scope::NamespaceWide, pk, &[("a", b"x")], Some((n, "other"))), true),
        (sealed(n, "nw-wrong-ns", Scope::NamespaceWide, pk, &[("a", b"x")], Some(("other", "x"))), false),
        (sealed(n, "cw-anywhere", Scope::ClusterWide, pk, &[("a", b"x")], Some(("other", "other"))), true),
    ];
    // A strict value whose SealedSecret claims cluster-wide only through its template must not open.
    let mut smuggled = sealed(n, "smuggled", Scope::Strict, pk, &[("a", b"x")], Some(("other", "smuggled")));
    smuggled.spec.template = Some(SecretTemplateSpec {
        metadata: Some(ObjectMeta {
            annotations: Some(
                [(arcseal_crypto::CLUSTER_WIDE_ANNOTATION.to_owned(), "true".to_owned())].into(),
            ),
            ..ObjectMeta::default()
        }),
        ..SecretTemplateSpec::default()
    });
    for (ss, _) in &cases {
        ssa.create(&pp, ss).await?;
    }
    ssa.create(&pp, &smuggled).await?;
    for (ss, opens) in cases.iter().chain([(smuggled.clone(), false)].iter()) {
        let name = ss.name_any();
        let got = wait_synced(&ssa, &name, if *opens { "True" } else { "False" }).await;
        if *opens {
            assert_eq!(data(&secrets, &name).await, map(&[("a", b"x")]), "{name}");
        } else {
            let message = got.synced_condition().and_then(|c| c.message.clone()).unwrap_or_default();
            assert!(message.starts_with("no key could decrypt item \"a\""), "{name}: {message}");
            assert!(secrets.get_opt(&name).await?.is_none(), "{name}: no Secret");
            let evs = events(&ns.client(), n, &name).await;
            assert!(evs.iter().any(|(r, _)| r == "ErrUnsealFailed"), "{name}: {evs:?}");
        }
    }
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn custom_type_template_data_and_immutable_secret() -> TestResult {
    let (ns, key, running) = setup("type-immutable").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let mut ss = sealed(
        ns.name(),
        "creds",
        Scope::Strict,
        key.public_key(),
        &[("username", b"admin"), ("password", b"pw")],
        None,
    );
    ss.spec.template = Some(SecretTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some([("app".to_owned(), "db".to_owned())].into()),
            annotations: Some([("note".to_owned(), "from template".to_owned())].into()),
            ..ObjectMeta::default()
        }),
        type_: Some("kubernetes.io/basic-auth".into()),
        immutable: Some(true),
        data: Some(
            [
                (
                    "url".to_owned(),
                    "postgres://{{ .username }}:{{ index . \"password\" | upper }}@db".to_owned(),
                ),
                ("password".to_owned(), "{{ .password | b64enc }}".to_owned()),
            ]
            .into(),
        ),
    });
    ssa.create(&pp, &ss).await?;
    wait_synced(&ssa, "creds", "True").await;
    let secret = secrets.get("creds").await?;
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(secret.labels().get("app").map(String::as_str), Some("db"));
    assert_eq!(
        data(&secrets, "creds").await,
        map(&[("username", b"admin"), ("password", b"cHc="), ("url", b"postgres://admin:PW@db")]),
        "a templated key overrides the item of the same name"
    );
    let first_uid = secret.uid();

    // Changing an immutable Secret's content means delete + create.
    let mut next = ssa.get("creds").await?;
    next.spec.template.as_mut().unwrap().data = None;
    ssa.replace("creds", &pp, &next).await?;
    wait_synced(&ssa, "creds", "True").await;
    let secret = secrets.get("creds").await?;
    assert_ne!(secret.uid(), first_uid, "recreated");
    assert_eq!(data(&secrets, "creds").await, map(&[("username", b"admin"), ("password", b"pw")]));

    // An unsupported template is a clear status error, without any value in it.
    let mut bad =
        sealed(ns.name(), "bad-template", Scope::Strict, key.public_key(), &[("password", b"hunter2")], None);
    bad.spec.template = Some(SecretTemplateSpec {
        data: Some([("x".into(), "{{ .password | encryptAES \"k\" }}".into())].into()),
        ..Default::default()
    });
    ssa.create(&pp, &bad).await?;
    let failed = wait_synced(&ssa, "bad-template", "False").await;
    let message = failed.synced_condition().and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("spec.template.data[\"x\"]") && message.contains("encryptAES"), "{message}");
    assert!(!message.contains("hunter2"));
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn drift_is_repaired_on_resync() -> TestResult {
    let (ns, key, running) = setup("drift").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let ss = sealed(ns.name(), "app", Scope::Strict, key.public_key(), &[("token", b"t0k")], None);
    ssa.create(&PostParams::default(), &ss).await?;
    wait_synced(&ssa, "app", "True").await;

    let edit = serde_json::json!({"data": {"token": "ZWRpdGVk", "extra": "eA=="}});
    secrets.patch("app", &PatchParams::default(), &Patch::Merge(&edit)).await?;
    poll("edited Secret restored", TIMEOUT, || async {
        let d = data(&secrets, "app").await;
        Ok((d == map(&[("token", b"t0k")])).then_some(()))
    })
    .await?;

    secrets.delete("app", &DeleteParams::default()).await?;
    poll("deleted Secret recreated", TIMEOUT, || async {
        Ok(secrets.get_opt("app").await.ok().flatten().map(|_| ()))
    })
    .await?;
    assert_eq!(data(&secrets, "app").await, map(&[("token", b"t0k")]));
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn verify_and_rotate_endpoints_read_scope_from_own_metadata_only() -> TestResult {
    let (ns, key, running) = setup("http-api").await;
    let n = ns.name();
    poll("ready", TIMEOUT, || async {
        Ok(running.handles.ready.load(std::sync::atomic::Ordering::SeqCst).then_some(()))
    })
    .await?;
    let http = reqwest::Client::new();
    let cert = http.get(running.url("/v1/cert.pem")).send().await?;
    assert_eq!(cert.status(), 200);
    let cert = Certificate::from_pem(&cert.bytes().await?)?;
    assert_eq!(cert.fingerprint(), key.fingerprint());
    assert_eq!(http.get(running.url("/healthz")).send().await?.text().await?, "ok");

    let good = sealed(n, "db", Scope::Strict, key.public_key(), &[("a", b"x")], None);
    let post = |path: &str, body: String| http.post(running.url(path)).body(body).send();
    assert_eq!(post("/v1/verify", serde_json::to_string(&good)?).await?.status(), 200);
    let wrong = sealed(n, "db", Scope::Strict, key.public_key(), &[("a", b"x")], Some((n, "other")));
    assert_eq!(post("/v1/verify", serde_json::to_string(&wrong)?).await?.status(), 409);
    assert_eq!(post("/v1/verify", "{not json".into()).await?.status(), 400);

    // The CVE-2026-22728 attack: a strict SealedSecret posted with a cluster-wide annotation in its template.
    let mut smuggled = good.clone();
    smuggled.spec.template = Some(SecretTemplateSpec {
        metadata: Some(ObjectMeta {
            annotations: Some(
                [(arcseal_crypto::CLUSTER_WIDE_ANNOTATION.to_owned(), "true".to_owned())].into(),
            ),
            ..ObjectMeta::default()
        }),
        ..SecretTemplateSpec::default()
    });
    let rotated = post("/v1/rotate", serde_json::to_string(&smuggled)?).await?;
    assert_eq!(rotated.status(), 200);
    let rotated: SealedSecret = serde_json::from_slice(&rotated.bytes().await?)?;
    let value = &rotated.spec.encrypted_data["a"];
    assert_ne!(value, &good.spec.encrypted_data["a"], "re-sealed");
    let ring = arcseal_crypto::KeyRing::new(vec![key.clone()]);
    assert_eq!(
        ring.open_value(&Scope::Strict.encryption_label(n, "db"), value, None)?.plaintext.as_bytes(),
        b"x"
    );
    assert!(ring.open_value(b"", value, None).is_err(), "rotate must not widen the scope to cluster-wide");
    // And a strict value with a cluster-wide claim in the template does not open as cluster-wide either.
    let mut claimed =
        sealed(n, "db", Scope::Strict, key.public_key(), &[("a", b"x")], Some(("else", "where")));
    claimed.spec.template = smuggled.spec.template.clone();
    assert_eq!(post("/v1/rotate", serde_json::to_string(&claimed)?).await?.status(), 409);
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

fn fixtures() -> std::path::PathBuf {
    let dir = std::env::var_os("ARCSEAL_FIXTURES").map(std::path::PathBuf::from).unwrap_or_else(|| {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/sealed-secrets")
    });
    assert!(dir.is_dir(), "interop fixtures not found at {} (set ARCSEAL_FIXTURES)", dir.display());
    dir
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[tokio::test]
async fn adopts_sealed_secrets_key_secrets_and_sealed_secrets() -> TestResult {
    let ns = TestNamespace::new("fixtures").await?;
    let client = ns.client();
    k8s::apply_crd(&client, &unseal::crd::crd_yaml()).await?;
    // The fixtures are sealed for team-a/db-credentials; this binary's cluster is private, so take that namespace.
    let team_a = Namespace {
        metadata: ObjectMeta { name: Some("team-a".into()), ..ObjectMeta::default() },
        ..Namespace::default()
    };
    match Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &team_a).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    for bits in [4096, 2048] {
        let mut key_secret: Secret = serde_saphyr::from_str(&fixture(&format!("key-secret-{bits}.yaml")))?;
        key_secret.metadata.namespace = Some(ns.name().to_owned());
        ns.api::<Secret>().create(&PostParams::default(), &key_secret).await?;
    }
    let running = start(client.clone(), config(ns.name(), &[ns.name(), "team-a"])).await;

    let vectors: BTreeMap<String, Vec<u8>> = fixture("vectors.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| {
            let ct = v.get("ciphertext")?.as_str()?.to_owned();
            let pt = arcseal_crypto::decode_base64(v.get("plaintext_b64")?.as_str()?).ok()?;
            Some((ct, pt))
        })
        .collect();
    // (fixture, namespace, name): strict as sealed; the wider scopes moved to prove the scope is honoured.
    let placements = [
        ("sealedsecret-strict-4096.yaml", "team-a", "db-credentials"),
        ("sealedsecret-namespace-wide-4096.yaml", "team-a", "renamed-nw-4096"),
        ("sealedsecret-namespace-wide-2048.yaml", "team-a", "renamed-nw-2048"),
        ("sealedsecret-cluster-wide-4096.yaml", ns.name(), "moved-cw-4096"),
        ("sealedsecret-cluster-wide-2048.yaml", ns.name(), "moved-cw-2048"),
    ];
    let mut created = Vec::new();
    for (file, namespace, name) in placements {
        let mut ss: SealedSecret = serde_saphyr::from_str(&fixture(file))?;
        ss.metadata.namespace = Some(namespace.to_owned());
        ss.metadata.name = Some(name.to_owned());
        let api = Api::<SealedSecret>::namespaced(client.clone(), namespace);
        let _ = api.delete(name, &DeleteParams::default()).await;
        api.create(&PostParams::default(), &ss).await?;
        created.push((ss, namespace, name));
    }
    for (ss, namespace, name) in &created {
        let api = Api::<SealedSecret>::namespaced(client.clone(), namespace);
        wait_synced(&api, name, "True").await;
        let secret = Api::<Secret>::namespaced(client.clone(), namespace).get(name).await?;
        let got: BTreeMap<String, Vec<u8>> =
            secret.data.clone().unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
        assert_eq!(got["binary"], (0..=255u8).collect::<Vec<_>>(), "{name}");
        assert!(got["empty"].is_empty(), "{name}");
        for (item, value) in &ss.spec.encrypted_data {
            if let Some(expected) = vectors.get(value) {
                assert_eq!(&got[item], expected, "{name}/{item}");
            }
        }
        assert_eq!(secret.labels().get("app").map(String::as_str), Some("db"), "template labels");
        assert_eq!(secret.metadata.name.as_deref(), Some(*name), "template name ignored");
    }
    // The 2048-bit strict fixture, sealed for team-a/db-credentials, does not open under another name.
    let mut ss: SealedSecret = serde_saphyr::from_str(&fixture("sealedsecret-strict-2048.yaml"))?;
    ss.metadata.namespace = Some("team-a".into());
    ss.metadata.name = Some("not-db-credentials".into());
    let api = Api::<SealedSecret>::namespaced(client.clone(), "team-a");
    let _ = api.delete("not-db-credentials", &DeleteParams::default()).await;
    api.create(&PostParams::default(), &ss).await?;
    wait_synced(&api, "not-db-credentials", "False").await;
    assert_eq!(running.handles.keys.snapshot().keys().len(), 2, "both fixture keys adopted, none generated");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn posts_are_rate_and_size_limited_and_metrics_use_sealed_secrets_names() -> TestResult {
    let (ns, key) = namespace_with_key("http-limits").await?;
    let metrics_port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port())?;
    let mut config = config(ns.name(), &[ns.name()]);
    config.http_limits.request_rate = 0.01;
    config.http_limits.request_burst = 2;
    config.metrics_addr = Some(format!("127.0.0.1:{metrics_port}").parse()?);
    let running = start(ns.client(), config).await;
    let ssa = ns.api::<SealedSecret>();
    ssa.create(
        &PostParams::default(),
        &sealed(ns.name(), "db", Scope::Strict, key.public_key(), &[("a", b"x")], None),
    )
    .await?;
    wait_synced(&ssa, "db", "True").await;

    let http = reqwest::Client::new();
    let good = serde_json::to_string(&sealed(
        ns.name(),
        "db",
        Scope::Strict,
        key.public_key(),
        &[("a", b"x")],
        None,
    ))?;
    let huge = "x".repeat(3 << 20);
    let post = |body: String| http.post(running.url("/v1/verify")).body(body).send();
    assert_eq!(post(huge.clone()).await?.status(), 413, "bodies are capped before any work");
    assert_eq!(post(good.clone()).await?.status(), 200);
    assert_eq!(post(good.clone()).await?.status(), 200);
    assert_eq!(post(good.clone()).await?.status(), 429, "the burst of 2 is spent");
    let rotate = http.post(running.url("/v1/rotate")).body(good).send().await?;
    assert_eq!(rotate.status(), 429, "verify and rotate share one budget");
    assert!(rotate.headers().contains_key("retry-after"), "a 429 says when to come back");

    let text = http.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await?.text().await?;
    for expected in [
        "sealed_secrets_controller_build_info{",
        "sealed_secrets_controller_unseal_requests_total ",
        &format!(
            "sealed_secrets_controller_condition_info{{namespace=\"{}\",name=\"db\",condition=\"Synced\"}} 1",
            ns.name()
        ),
        "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"200\",method=\"POST\"} 2",
        "sealed_secrets_controller_http_requests_total{path=\"/v1/verify\",code=\"429\",method=\"POST\"} 1",
        "sealed_secrets_controller_http_request_duration_seconds_bucket{",
        "sealed_secrets_controller_keys 1",
        "sealed_secrets_controller_reconcile_duration_seconds_count{result=\"ok\"}",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

#[tokio::test]
async fn kubectl_shows_the_printer_columns() -> TestResult {
    let (ns, key, running) = setup("printer-columns").await;
    let ssa = ns.api::<SealedSecret>();
    let pp = PostParams::default();
    ssa.create(&pp, &sealed(ns.name(), "ok", Scope::Strict, key.public_key(), &[("a", b"x")], None)).await?;
    let (other, _) = new_key();
    ssa.create(&pp, &sealed(ns.name(), "bad", Scope::Strict, other.public_key(), &[("a", b"x")], None))
        .await?;
    wait_synced(&ssa, "ok", "True").await;
    wait_synced(&ssa, "bad", "False").await;
    let output = ns.kubectl().args(["get", "sealedsecrets", "--sort-by=.metadata.name"]).output()?;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout)?;
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(&lines[0][..4], ["NAME", "STATUS", "SYNCED", "AGE"], "{text}");
    assert_eq!(lines[1][0], "bad");
    assert!(text.contains("no key could decrypt item"), "{text}");
    assert_eq!(lines[1][lines[1].len() - 2], "False", "{text}");
    assert_eq!((lines[2][0], lines[2][1]), ("ok", "True"), "an empty Status column, then Synced: {text}");
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Issue 10, attack 1: templates that put a value where an error message, a status, an event or `/v1/verify`'s
/// answer would quote it. The value must appear nowhere a user can read.
#[tokio::test]
async fn hostile_templates_leak_no_value_into_status_events_or_verify() -> TestResult {
    let (ns, key, running) = setup("oracle").await;
    let ssa = ns.api::<SealedSecret>();
    let pp = PostParams::default();
    let secret_value: &[u8] = b"QJXZ-hunter2-value";
    let hostile = [
        "{{ index . .password }}",
        "{{ index . (.password | upper) }}",
        "{{ printf \"%d\" .password | atoi | index . }}",
        "{{ .password.field }}",
        "{{ fail .password }}",
        "{{ template .password }}",
    ];
    let http = reqwest::Client::new();
    wait_ready(&running).await;
    for (i, template) in hostile.iter().enumerate() {
        let name = format!("oracle-{i}");
        let mut ss =
            sealed(ns.name(), &name, Scope::Strict, key.public_key(), &[("password", secret_value)], None);
        ss.spec.template = Some(SecretTemplateSpec {
            data: Some([("x".into(), (*template).to_owned())].into()),
            ..Default::default()
        });
        let verify = http.post(running.url("/v1/verify")).body(serde_json::to_string(&ss)?).send().await?;
        assert_eq!(verify.status(), 200, "verify checks that items decrypt, it does not render templates");
        let answer = verify.text().await?;
        ssa.create(&pp, &ss).await?;
        // Synced either way (Go renders some of these to an empty string); what matters is what is said.
        poll(&format!("{name} processed"), TIMEOUT, || async {
            let ss = ssa.get(&name).await.map_err(|e| k8s::Error::Kube { what: "get".into(), source: e })?;
            Ok(ss.status.and_then(|s| s.observed_generation).map(|_| ()))
        })
        .await?;
        let status = serde_json::to_string(&ssa.get(&name).await?.status)?;
        let notes: Vec<String> = events(&ns.client(), ns.name(), &name)
            .await
            .into_iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        for text in std::iter::once(&answer).chain([&status]).chain(notes.iter()) {
            for needle in ["hunter2", "HUNTER2", "QJXZ", "qjxz", "UUpYWi1odW50ZXIy"] {
                assert!(!text.contains(needle), "template {template:?} leaked {needle:?} into {text:?}");
            }
        }
    }
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Issue 10, attack 2: a template type the data cannot satisfy must not cost the live Secret; a Secret handed over
/// with `patch` is never recreated.
#[tokio::test]
async fn a_type_change_never_deletes_the_live_secret() -> TestResult {
    let (ns, key, running) = setup("type-change").await;
    let (ssa, secrets) = (ns.api::<SealedSecret>(), ns.api::<Secret>());
    let pp = PostParams::default();
    let ss = sealed(ns.name(), "owned", Scope::Strict, key.public_key(), &[("password", b"pw")], None);
    ssa.create(&pp, &ss).await?;
    wait_synced(&ssa, "owned", "True").await;
    let before = secrets.get("owned").await?;

    let mut next = ssa.get("owned").await?;
    next.spec.template =
        Some(SecretTemplateSpec { type_: Some("kubernetes.io/tls".into()), ..Default::default() });
    ssa.replace("owned", &pp, &next).await?;
    let failed = wait_synced(&ssa, "owned", "False").await;
    let message = failed.synced_condition().and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("invalid") && message.contains("kept"), "{message}");
    let after = secrets.get("owned").await?;
    assert_eq!(
        (after.uid(), after.data.clone()),
        (before.uid(), before.data.clone()),
        "the live Secret is untouched"
    );

    // A valid type change still goes through (dry run first, then delete + create).
    let mut valid = ssa.get("owned").await?;
    valid.spec.template =
        Some(SecretTemplateSpec { type_: Some("example.com/custom".into()), ..Default::default() });
    ssa.replace("owned", &pp, &valid).await?;
    wait_synced(&ssa, "owned", "True").await;
    let changed = secrets.get("owned").await?;
    assert_eq!(changed.type_.as_deref(), Some("example.com/custom"));
    assert_eq!(data(&secrets, "owned").await, map(&[("password", b"pw")]));

    // A Secret handed over with `patch` keeps its foreign keys, whatever the template asks.
    let handed = Secret {
        metadata: ObjectMeta {
            name: Some("handed".into()),
            annotations: Some([("sealedsecrets.bitnami.com/patch".to_owned(), "true".to_owned())].into()),
            ..ObjectMeta::default()
        },
        data: Some([("foreign".to_owned(), ByteString(b"theirs".to_vec()))].into()),
        ..Secret::default()
    };
    secrets.create(&pp, &handed).await?;
    let mut merged = sealed(ns.name(), "handed", Scope::Strict, key.public_key(), &[("ours", b"x")], None);
    ssa.create(&pp, &merged).await?;
    wait_synced(&ssa, "handed", "True").await;
    assert_eq!(data(&secrets, "handed").await, map(&[("foreign", b"theirs"), ("ours", b"x")]));
    merged = ssa.get("handed").await?;
    merged.spec.template =
        Some(SecretTemplateSpec { type_: Some("example.com/other".into()), ..Default::default() });
    ssa.replace("handed", &pp, &merged).await?;
    let refused = wait_synced(&ssa, "handed", "False").await;
    let message = refused.synced_condition().and_then(|c| c.message.clone()).unwrap_or_default();
    assert!(message.contains("patch") && message.contains("never deletes"), "{message}");
    assert_eq!(
        data(&secrets, "handed").await,
        map(&[("foreign", b"theirs"), ("ours", b"x")]),
        "no key of a Secret arcseal was handed is lost"
    );
    running.stop().await;
    ns.finish().await?;
    Ok(())
}

/// Issue 10, attack 3: slow clients are cut off, a caller's flood spends only its own budget, and a request with
/// more items than one request may carry is refused before any RSA work.
#[tokio::test]
async fn slow_clients_and_floods_do_not_starve_other_callers() -> TestResult {
    use std::io::{Read, Write};
    let (ns, key) = namespace_with_key("http-starve").await?;
    let mut config = config(ns.name(), &[ns.name()]);
    config.http_limits.header_timeout = Duration::from_secs(1);
    config.http_limits.request_rate = 0.01;
    config.http_limits.request_burst = 3;
    config.http_limits.item_burst = 4;
    let running = start(ns.client(), config).await;
    wait_ready(&running).await;
    let addr = running.handles.http_addr.expect("HTTP API bound");

    // A client that never finishes its headers is disconnected by the header timeout.
    let mut slow = std::net::TcpStream::connect(addr)?;
    slow.write_all(b"POST /v1/verify HTTP/1.1\r\nHo")?;
    slow.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "the slow client was cut off: {answer:?}");

    let http = reqwest::Client::new();
    let one = serde_json::to_string(&sealed(
        ns.name(),
        "a",
        Scope::Strict,
        key.public_key(),
        &[("a", b"x")],
        None,
    ))?;
    let post = |from: &'static str, body: String| {
        http.post(running.url("/v1/verify")).header("x-forwarded-for", from).body(body).send()
    };
    for _ in 0..3 {
        assert_eq!(post("203.0.113.1", one.clone()).await?.status(), 200);
    }
    let flooded = post("203.0.113.1", one.clone()).await?;
    assert_eq!(flooded.status(), 429, "the flooding caller spent its burst");
    assert!(flooded.headers().contains_key("retry-after"));
    let other = post("203.0.113.2", one.clone()).await?;
    let (code, text) = (other.status(), other.text().await?);
    assert_eq!(code, 200, "another caller is not locked out: {text}");

    let items: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("i{i}"), b"x".to_vec())).collect();
    let refs: Vec<(&str, &[u8])> = items.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
    let big = serde_json::to_string(&sealed(ns.name(), "b", Scope::Strict, key.public_key(), &refs, None))?;
    let before = unseal::reconcile::rsa_operations(&running.handles.metrics);
    let refused = post("203.0.113.3", big).await?;
    assert_eq!(refused.status(), 413, "five items, four per request");
    assert_eq!(
        unseal::reconcile::rsa_operations(&running.handles.metrics),
        before,
        "refused before any RSA work"
    );
    running.stop().await;
    ns.finish().await?;
    Ok(())
}
