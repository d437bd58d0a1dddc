//! The behaviours where arcseal must give a pod what Azure's provider (v1.8) gives it, over the real unix socket
//! against the Key Vault + Entra ID stand-in driven by the official SDK. Each test backs rows of the behaviour table
//! in controller/README-csi.md. Assertions are on files, codes, messages and counters, never on wall time.

use std::collections::BTreeMap;
use std::time::Duration;

use arcseal_controller::csi::health::{self, HealthConfig};
use arcseal_controller::csi::proto::MountResponse;
use arcseal_tests::keyvault::provider::{ProviderHarness, test_config};
use arcseal_tests::keyvault::{Fault, FaultKind, KeyVaultStandIn};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

mod csi_common;
use csi_common::*;

fn text(r: &MountResponse, path: &str) -> String {
    let f = files(r);
    let (_, bytes) =
        f.get(path).unwrap_or_else(|| panic!("no file {path}: {:?}", f.keys().collect::<Vec<_>>()));
    String::from_utf8(bytes.clone()).expect("utf-8")
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/keyvault/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

fn fixture_text(name: &str) -> String {
    String::from_utf8(fixture(name)).expect("utf-8 fixture")
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).expect("pem");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("base64")
}

#[tokio::test]
async fn aliases_with_sub_folders_are_written_with_clean_relative_paths() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "tls-crt", "cert");
    kv.set_secret("kv1", "x", "in a folder");
    let r = p
        .mount(
            &sp_attrs(&[
                "objectName: tls-crt\nobjectType: secret\nobjectAlias: certs/tls.crt",
                "objectName: x\nobjectType: secret\nobjectAlias: folder//x/",
            ]),
            SP,
        )
        .await
        .expect("sub-folder aliases mount");
    assert_eq!(text(&r, "certs/tls.crt"), "cert");
    assert_eq!(text(&r, "folder/x"), "in a folder", "cleaned as the driver cleans it");
    // Azure refuses absolute paths and '..' (as a component or anywhere in the name): so does arcseal.
    for alias in ["/etc/passwd", "../x", "a/../b", "a..b"] {
        let e = p
            .mount(&sp_attrs(&[&format!("objectName: x\nobjectType: secret\nobjectAlias: \"{alias}\"")]), SP)
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{alias}");
        assert!(e.message().contains("objectAlias"), "{alias}: {}", e.message());
    }
}

#[tokio::test]
async fn two_objects_writing_one_file_are_refused() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "a", "1");
    kv.set_secret("kv1", "b", "2");
    for second in [
        "objectName: b\nobjectType: secret\nobjectAlias: a",
        "objectName: b\nobjectType: secret\nobjectAlias: a/b",
    ] {
        let e = p.mount(&sp_attrs(&["objectName: a\nobjectType: secret", second]), SP).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("collides with \"a\" of objectName a"), "{}", e.message());
    }
    assert_eq!(kv.counters().keyvault, 0, "refused before any Key Vault call");
}

#[tokio::test]
async fn version_history_above_64_returns_every_version_there_is() {
    let (kv, p) = setup().await;
    // More versions than one page of the version list (25).
    let ids: Vec<String> = (0..30).map(|i| kv.set_secret("kv1", "rotating", &format!("v{i}"))).collect();
    let r = p
        .mount(&sp_attrs(&["objectName: rotating\nobjectType: secret\nobjectVersionHistory: 200"]), SP)
        .await
        .expect("history 200");
    let f = files(&r);
    assert_eq!(f.len(), 30, "every version, no more");
    assert_eq!(text(&r, "rotating/0"), "v29");
    assert_eq!(text(&r, "rotating/29"), "v0");
    let v: BTreeMap<_, _> = r.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect();
    assert_eq!(v["secret/rotating/0"], ids[29]);
    assert_eq!(v["secret/rotating/29"], ids[0]);
    assert_eq!(kv.counters().keyvault, 2 + 30, "two list pages, then one read per version");
}

#[tokio::test]
async fn latest_with_history_is_the_newest_n() {
    let (kv, p) = setup().await;
    for i in 0..4 {
        kv.set_secret("kv1", "s", &format!("v{i}"));
    }
    let r = p
        .mount(
            &sp_attrs(&[
                "objectName: s\nobjectType: secret\nobjectVersion: latest\nobjectVersionHistory: 2",
                "objectName: s\nobjectType: secret\nobjectVersion: latest\nobjectAlias: single",
            ]),
            SP,
        )
        .await
        .expect("objectVersion latest");
    assert_eq!(files(&r).len(), 3);
    assert_eq!((text(&r, "s/0"), text(&r, "s/1")), ("v3".to_string(), "v2".to_string()));
    assert_eq!(text(&r, "single"), "v3");
}

#[tokio::test]
async fn history_is_bounded_by_response_size_not_by_count() {
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("app-1", "s3cret");
    let mut config = test_config(&kv);
    config.max_response_bytes = 4 * 1024;
    let p = ProviderHarness::start_with(config).await;
    for _ in 0..12 {
        kv.set_secret("kv1", "big", &"x".repeat(1024));
    }
    let e = p
        .mount(&sp_attrs(&["objectName: big\nobjectType: secret\nobjectVersionHistory: 12"]), SP)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().starts_with("MountTooLarge:"), "{}", e.message());
    assert!(e.message().contains("objectVersionHistory"), "{}", e.message());
    // One list, then reads a few at a time until the limit: not all twelve.
    assert!(kv.counters().keyvault < 1 + 12, "stopped early: {:?}", kv.counters());
}

#[tokio::test]
async fn pfx_format_on_a_plain_secret_writes_the_value() {
    let (kv, p) = setup().await;
    let pfx = fixture("tdes.pfx");
    kv.set_secret("kv1", "uploaded-pfx", &STANDARD.encode(&pfx));
    let r = p
        .mount(
            &sp_attrs(&[
                "objectName: uploaded-pfx\nobjectType: secret\nobjectFormat: pfx\nobjectEncoding: base64\nobjectAlias: app.pfx",
                "objectName: uploaded-pfx\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: app.pfx.b64",
            ]),
            SP,
        )
        .await
        .expect("pfx on a plain secret");
    let f = files(&r);
    assert_eq!(f["app.pfx"].1, pfx, "base64-decoded with objectEncoding base64");
    assert_eq!(f["app.pfx.b64"].1, STANDARD.encode(&pfx).into_bytes(), "as stored otherwise");
}

#[tokio::test]
async fn cert_and_key_in_separate_files_when_enabled() {
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("app-1", "s3cret");
    let leaf = pem_der(&fixture("leaf.pem"));
    let version = kv.add_certificate(
        "kv1",
        "tls",
        &leaf,
        &STANDARD.encode(fixture("tdes.pfx")),
        "application/x-pkcs12",
    );
    let pem_bundle = fixture_text("leaf.pkcs8.pem") + &fixture_text("leaf.pem");
    kv.add_certificate("kv1", "tls-pem", &leaf, &pem_bundle, "application/x-pem-file");
    kv.set_secret("kv1", "plain", "not a certificate");
    let objs = [
        "objectName: tls\nobjectType: secret",
        "objectName: tls-pem\nobjectType: secret\nobjectAlias: certs/stored",
        "objectName: plain\nobjectType: secret",
    ];

    // Off by default, as in Azure's provider.
    let p = ProviderHarness::start(&kv).await;
    let r = p.mount(&sp_attrs(&objs), SP).await.expect("mount");
    assert_eq!(files(&r).keys().cloned().collect::<Vec<_>>(), ["certs/stored", "plain", "tls"]);

    let mut config = test_config(&kv);
    config.write_cert_and_key_in_separate_files = true;
    let p = ProviderHarness::start_with(config).await;
    let r = p.mount(&sp_attrs(&objs), SP).await.expect("mount");
    let chain = fixture_text("leaf.pem") + &fixture_text("intermediate.pem") + &fixture_text("root.pem");
    assert_eq!(text(&r, "tls.crt"), chain, "leaf -> root");
    assert_eq!(text(&r, "tls.key"), fixture_text("leaf.pkcs8.pem"));
    assert_eq!(text(&r, "tls"), fixture_text("leaf.pkcs8.pem") + &chain, "the single file stays");
    assert_eq!(text(&r, "certs/stored.crt"), fixture_text("leaf.pem"));
    assert_eq!(text(&r, "certs/stored.key"), fixture_text("leaf.pkcs8.pem"));
    assert!(!files(&r).contains_key("plain.crt"), "only a certificate's secret is split");
    // Azure's ids: every file of the object carries the object's id and version.
    let tls: Vec<_> = r.object_version.iter().filter(|v| v.id == "secret/tls").collect();
    assert_eq!(tls.len(), 3);
    assert!(tls.iter().all(|v| v.version == version));
}

#[tokio::test]
async fn throttling_answers_unknown_like_azure_not_resource_exhausted() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "t", "v");
    kv.inject(Fault {
        kind: FaultKind::Throttle { retry_after: 30 },
        count: 100,
        path_contains: Some("/t".into()),
    });
    let e = p.mount(&sp_attrs(&["objectName: t\nobjectType: secret"]), SP).await.unwrap_err();
    assert_eq!(
        e.code(),
        tonic::Code::Unknown,
        "what Azure's provider answers; RESOURCE_EXHAUSTED means a size hint"
    );
    assert!(e.message().starts_with("KeyVaultThrottled: secret t (file t) in vault kv1"), "{}", e.message());
    assert_eq!(kv.counters().keyvault, 1, "a 30 s Retry-After is beyond the bounded wait: no second attempt");
}

#[tokio::test]
async fn authentication_failures_name_the_identity_never_the_secret() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "s", "v");
    let e = p
        .mount(
            &sp_attrs(&["objectName: s\nobjectType: secret"]),
            r#"{"clientid":"app-1","clientsecret":"wrong-pw"}"#,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    let m = e.message();
    assert!(
        m.starts_with(
            "AuthenticationFailed: secret s (file s) in vault kv1 as service principal (clientid app-1"
        ),
        "{m}"
    );
    assert!(!m.contains("wrong-pw"), "{m}");

    kv.add_managed_identity(Some("uami-1"));
    let e = p
        .mount(
            &sp_attrs_with(
                &["objectName: s\nobjectType: secret"],
                &[("useVMManagedIdentity", "true"), ("userAssignedIdentityID", "uami-2")],
            ),
            "null",
        )
        .await
        .unwrap_err();
    assert!(e.message().contains("as VM managed identity (userAssignedIdentityID uami-2"), "{}", e.message());
}

#[tokio::test]
async fn healthz_and_readyz_check_the_socket() {
    let (_kv, p) = setup().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let config = HealthConfig {
        socket: p.socket.clone(),
        timeout: Duration::from_secs(5),
        path: "/healthz".into(),
        reuse_for: Duration::ZERO,
    };
    tokio::spawn(health::serve(listener, config));
    for path in ["/healthz", "/readyz"] {
        let r = reqwest::get(format!("http://{addr}{path}")).await.expect("GET");
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.text().await.expect("body"), "ok");
    }
    let r = reqwest::get(format!("http://{addr}/metrics")).await.expect("GET");
    assert_eq!(r.status(), 404, "only the health paths");
    // A client that never finishes its request head is disconnected (header read timeout), not served forever.
    let mut slow = tokio::net::TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(60), slow.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "the server closed the slow connection");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "never answered");
    p.stop().await;
    let r = reqwest::get(format!("http://{addr}/healthz")).await.expect("GET");
    assert_eq!(r.status(), 503, "the socket no longer answers");
}

#[tokio::test]
async fn metrics_also_under_azure_names() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "s", "v");
    p.mount(&sp_attrs(&["objectName: s\nobjectType: secret"]), SP).await.expect("mount");
    p.mount(&sp_attrs(&["objectName: gone\nobjectType: secret"]), SP).await.unwrap_err();
    let text = p.provider.metrics().encode();
    for line in [
        r#"keyvault_request_count{object_type="secret",object_name="s",error="",provider="azure",os_type="linux"} 1"#,
        r#"keyvault_request_count{object_type="secret",object_name="gone",error="KeyVaultObjectNotFound",provider="azure",os_type="linux"} 1"#,
        r#"grpc_request_count{grpc_method="/v1alpha1.CSIDriverProvider/Mount",grpc_code="OK",grpc_message="",provider="azure",os_type="linux"} 1"#,
        r#"grpc_request_count{grpc_method="/v1alpha1.CSIDriverProvider/Mount",grpc_code="NotFound",grpc_message="KeyVaultObjectNotFound",provider="azure",os_type="linux"} 1"#,
        r#"arcseal_csi_keyvault_requests_total{operation="get_secret",result="ok"} 1"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
}

/// cloudEnvFileName (issue 10 item 6): read only for AzureStackCloud, only inside --cloud-env-dir, only a regular
/// file, size-capped, no symlink out; the content never appears in an error.
#[tokio::test]
async fn cloud_env_file_is_restricted_and_never_quoted() {
    let kv = KeyVaultStandIn::start().await;
    kv.add_app("app-1", "s3cret");
    kv.set_secret("kv1", "s", "from azure stack");
    let root = tempfile::tempdir().expect("tempdir");
    let allowed = root.path().join("clouds");
    std::fs::create_dir(&allowed).expect("mkdir");
    let marker = "TOPSECRET-node-file-content";
    let outside = root.path().join("node-secret.json");
    std::fs::write(&outside, format!("{{\"activeDirectoryEndpoint\": \"{marker}\"}}")).expect("write");
    std::fs::write(
        allowed.join("stack.json"),
        r#"{"activeDirectoryEndpoint":"https://login.microsoftonline.com/","keyVaultDNSSuffix":"vault.stack.test"}"#,
    )
    .expect("write");
    std::fs::write(allowed.join("broken.json"), format!("{{\"keyVaultDNSSuffix\": {marker}}}"))
        .expect("write");
    std::fs::write(allowed.join("huge.json"), vec![b' '; 70 * 1024]).expect("write");
    std::os::unix::fs::symlink(&outside, allowed.join("link.json")).expect("symlink");
    let stack = |file: &std::path::Path| {
        sp_attrs_with(
            &["objectName: s\nobjectType: secret"],
            &[("cloudName", "AzureStackCloud"), ("cloudEnvFileName", file.to_str().expect("utf-8 path"))],
        )
    };

    // Without --cloud-env-dir, no file is read at all.
    let p = ProviderHarness::start(&kv).await;
    let e = p.mount(&stack(&allowed.join("stack.json")), SP).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("cloudEnvFileName") && e.message().contains("--cloud-env-dir"),
        "{}",
        e.message()
    );

    let mut config = test_config(&kv);
    config.cloud.env_dir = Some(allowed.clone());
    let p = ProviderHarness::start_with(config).await;
    let r = p.mount(&stack(&allowed.join("stack.json")), SP).await.expect("Azure Stack mount");
    assert_eq!(files(&r)["s"].1, b"from azure stack");
    assert!(kv.log().iter().all(|path| path.starts_with("/secrets/s")), "{:?}", kv.log());

    for (file, why) in [
        (outside.clone(), "inside"),
        (allowed.join("link.json"), "inside"),
        (allowed.join("../node-secret.json"), "without '..'"),
        (allowed.join("broken.json"), "line 1 column"),
        (allowed.join("huge.json"), "larger than"),
        (allowed.clone(), "inside"),
        (std::path::PathBuf::from("/proc/self/environ"), "inside"),
    ] {
        let e = p.mount(&stack(&file), SP).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{file:?}");
        let m = e.message();
        assert!(m.contains("cloudEnvFileName") && m.contains(why), "{file:?}: {m}");
        assert!(!m.contains(marker) && !m.contains("TOPSECRET"), "content quoted: {m}");
    }

    // Other clouds never read cloudEnvFileName, as go-autorest reads it only for AzureStackCloud.
    let public = sp_attrs_with(
        &["objectName: s\nobjectType: secret"],
        &[("cloudName", "AzurePublicCloud"), ("cloudEnvFileName", outside.to_str().expect("utf-8"))],
    );
    assert_eq!(files(&p.mount(&public, SP).await.expect("public cloud"))["s"].1, b"from azure stack");
}

#[tokio::test]
async fn azure_wording_for_format_and_encoding_on_keys_and_certs() {
    let (kv, p) = setup().await;
    for (obj, words) in [
        (
            "objectName: k\nobjectType: key\nobjectFormat: pfx",
            "PFX format only supported for objectType: secret",
        ),
        (
            "objectName: c\nobjectType: cert\nobjectEncoding: hex",
            "objectEncoding only supported for objectType: secret",
        ),
        ("objectName: c\nobjectType: cert\nobjectFormat: der", "invalid objectFormat"),
    ] {
        let e = p.mount(&sp_attrs(&[obj]), SP).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{obj}");
        assert!(e.message().contains(words), "{obj}: {}", e.message());
    }
    assert_eq!(kv.counters().keyvault, 0);
}

#[tokio::test]
async fn pkcs12_key_attributes_are_not_written_like_azure() {
    // keyattr.pfx (OpenSSL -keysig -CSP): the PKCS#8 carries a key-usage attribute, as Windows-made PFX files do.
    let (kv, p) = setup().await;
    let leaf = pem_der(&fixture("leaf.pem"));
    kv.add_certificate("kv1", "win", &leaf, &STANDARD.encode(fixture("keyattr.pfx")), "application/x-pkcs12");
    let r = p.mount(&sp_attrs(&["objectName: win\nobjectType: secret"]), SP).await.expect("mount");
    let chain = fixture_text("leaf.pem") + &fixture_text("intermediate.pem") + &fixture_text("root.pem");
    assert_eq!(text(&r, "win"), fixture_text("leaf.pkcs8.pem") + &chain, "plain PKCS#8, then leaf -> root");
}
