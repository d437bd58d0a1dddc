//! The CSI provider over its unix socket, as the Secrets Store CSI Driver calls it, against the Key Vault + Entra ID
//! stand-in driven by the official Azure SDK (transport swap; one test over real TLS with a test CA).

use std::collections::BTreeMap;
use std::time::Duration;

use arcseal_controller::csi::cloud::CloudOverrides;
use arcseal_controller::csi::proto::MountResponse;
use arcseal_tests::keyvault::provider::{Pod, ProviderHarness, attributes, objects, test_config};
use arcseal_tests::keyvault::{Fault, FaultKind, KeyVaultStandIn, TestCa};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

mod csi_common;
use csi_common::*;

fn versions(r: &MountResponse) -> BTreeMap<String, String> {
    r.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

#[tokio::test]
async fn secrets_plain_pinned_encoded_and_permissions() {
    let (kv, p) = setup().await;
    let v1 = kv.set_secret("kv1", "db-password", "first");
    let v2 = kv.set_secret("kv1", "db-password", "hunter2");
    kv.set_secret("kv1", "hexed", "68656c6c6f");
    kv.set_secret("kv1", "b64", &STANDARD.encode([0u8, 1, 2, 255]));
    let attrs = sp_attrs(&[
        "objectName: db-password\nobjectType: secret\nobjectAlias: DB_PASSWORD\nfilePermission: \"0600\"",
        &format!("objectName: db-password\nobjectType: secret\nobjectAlias: old\nobjectVersion: {v1}"),
        "objectName: hexed\nobjectType: secret\nobjectEncoding: hex",
        "objectName: b64\nobjectType: secret\nobjectEncoding: base64",
    ]);
    let r = p.mount(&attrs, SP).await.expect("mount");
    let f = files(&r);
    assert_eq!(f["DB_PASSWORD"], (0o600, b"hunter2".to_vec()));
    assert_eq!(f["old"], (0o644, b"first".to_vec()));
    assert_eq!(f["hexed"].1, b"hello");
    assert_eq!(f["b64"].1, vec![0u8, 1, 2, 255]);
    // One object_version per file, in order (Azure's ids: the same object twice shares its id).
    let v: Vec<(String, String)> =
        r.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect();
    assert_eq!(v[0], ("secret/db-password".to_string(), v2));
    assert_eq!(v[1], ("secret/db-password".to_string(), v1));
    assert_eq!(v.len(), 4);
}

#[tokio::test]
async fn version_history_is_exactly_n_newest_first() {
    let (kv, p) = setup().await;
    let ids: Vec<String> = (0..4).map(|i| kv.set_secret("kv1", "rotating", &format!("v{i}"))).collect();
    let attrs = sp_attrs(&["objectName: rotating\nobjectType: secret\nobjectVersionHistory: 3"]);
    let r = p.mount(&attrs, SP).await.expect("mount");
    let f = files(&r);
    assert_eq!(f.len(), 3, "exactly N files: {:?}", f.keys().collect::<Vec<_>>());
    assert_eq!(f["rotating/0"].1, b"v3");
    assert_eq!(f["rotating/1"].1, b"v2");
    assert_eq!(f["rotating/2"].1, b"v1");
    let v = versions(&r);
    assert_eq!(v["secret/rotating/0"], ids[3]);
    assert_eq!(v["secret/rotating/2"], ids[1]);
    // More than exist: all of them, no more.
    let attrs = sp_attrs(&["objectName: rotating\nobjectType: secret\nobjectVersionHistory: 10"]);
    assert_eq!(p.mount(&attrs, SP).await.unwrap().files.len(), 4);
}

fn pem_of(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/keyvault/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn pem_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

#[tokio::test]
async fn certificates_pkcs12_pem_and_pfx() {
    let (kv, p) = setup().await;
    let leaf = pem_der(&fixture("leaf.pem"));
    let pfx = fixture("tdes.pfx");
    kv.add_certificate("kv1", "tls", &leaf, &STANDARD.encode(&pfx), "application/x-pkcs12");
    let pem_bundle = String::from_utf8(fixture("leaf.pkcs8.pem")).unwrap()
        + &String::from_utf8(fixture("leaf.pem")).unwrap();
    kv.add_certificate("kv1", "tls-pem", &leaf, &pem_bundle, "application/x-pem-file");
    let attrs = sp_attrs(&[
        "objectName: tls\nobjectType: secret\nobjectAlias: tls.pem",
        "objectName: tls\nobjectType: cert\nobjectAlias: tls.crt",
        "objectName: tls\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: tls.pfx.b64",
        "objectName: tls\nobjectType: secret\nobjectFormat: pfx\nobjectEncoding: base64\nobjectAlias: tls.pfx",
        "objectName: tls-pem\nobjectType: secret\nobjectAlias: stored.pem",
    ]);
    let r = p.mount(&attrs, SP).await.expect("mount");
    let f = files(&r);
    let expected = String::from_utf8(fixture("leaf.pkcs8.pem")).unwrap()
        + &String::from_utf8(fixture("leaf.pem")).unwrap()
        + &String::from_utf8(fixture("intermediate.pem")).unwrap()
        + &String::from_utf8(fixture("root.pem")).unwrap();
    assert_eq!(String::from_utf8(f["tls.pem"].1.clone()).unwrap(), expected, "key first, then leaf -> root");
    assert_eq!(String::from_utf8(f["tls.crt"].1.clone()).unwrap(), pem_of("CERTIFICATE", &leaf));
    assert_eq!(f["tls.pfx.b64"].1, STANDARD.encode(&pfx).into_bytes());
    assert_eq!(f["tls.pfx"].1, pfx);
    assert_eq!(f["stored.pem"].1, pem_bundle.into_bytes());
}

#[tokio::test]
async fn keys_rsa_and_ec_public_pem() {
    let (kv, p) = setup().await;
    // An RSA key from the fixtures (made by OpenSSL): n/e from its certificate's SPKI.
    let leaf = pem_der(&fixture("leaf.pem"));
    use der::Decode as _;
    let cert = x509_cert::Certificate::from_der(&leaf).unwrap();
    let spki = cert.tbs_certificate().subject_public_key_info();
    use der::Encode as _;
    let spki_der = spki.to_der().unwrap();
    let rsa =
        pkcs1::RsaPublicKey::<der::asn1::UintRef<'_>>::from_der(spki.subject_public_key.raw_bytes()).unwrap();
    kv.add_key(
        "kv1",
        "signing",
        serde_json::json!({"kty": "RSA-HSM", "n": URL_SAFE_NO_PAD.encode(rsa.modulus.as_bytes()), "e": URL_SAFE_NO_PAD.encode(rsa.public_exponent.as_bytes())}),
    );
    // EC keys on the three curves, from the root/intermediate fixtures (P-256) and aws-lc for P-384/P-521.
    let root = x509_cert::Certificate::from_der(&pem_der(&fixture("root.pem"))).unwrap();
    let root_spki = root.tbs_certificate().subject_public_key_info();
    let point = root_spki.subject_public_key.raw_bytes();
    kv.add_key(
        "kv1",
        "ec256",
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])}),
    );
    let attrs = sp_attrs(&["objectName: signing\nobjectType: key", "objectName: ec256\nobjectType: key"]);
    let r = p.mount(&attrs, SP).await.expect("mount");
    let f = files(&r);
    assert_eq!(String::from_utf8(f["signing"].1.clone()).unwrap(), pem_of("PUBLIC KEY", &spki_der));
    assert_eq!(
        String::from_utf8(f["ec256"].1.clone()).unwrap(),
        pem_of("PUBLIC KEY", &root_spki.to_der().unwrap())
    );
    assert_eq!(versions(&r)["key/signing"].len(), 32);
}

#[tokio::test]
async fn workload_identity_and_identity_isolation() {
    let kv = KeyVaultStandIn::start().await;
    kv.federate("wi-client", "system:serviceaccount:team-a:app");
    kv.set_secret("kv1", "s", "for team-a");
    kv.set_readers("kv1", &["wi-client"]);
    let p = ProviderHarness::start(&kv).await;
    let o = objects(&["objectName: s\nobjectType: secret"]);
    let params =
        [("keyvaultName", "kv1"), ("tenantID", TENANT), ("clientID", "wi-client"), ("objects", o.as_str())];
    let ok = attributes(&params, &Pod::new("team-a", "app").with_token());
    for _ in 0..3 {
        let r = p.mount(&ok, "null").await.expect("workload identity mount");
        assert_eq!(files(&r)["s"].1, b"for team-a");
    }
    let c = kv.counters();
    assert_eq!(c.tokens, 1, "one token exchange, reused until near expiry");
    assert_eq!(c.keyvault, 1, "one Key Vault read, then the cache");

    // Another service account naming the same clientID is not federated: it must not get the cached value.
    let other = attributes(&params, &Pod::new("team-b", "intruder").with_token());
    let e = p.mount(&other, "null").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("AuthenticationFailed"), "{}", e.message());
    assert!(
        e.message().contains("as workload identity (clientID wi-client, service account team-b/intruder"),
        "which identity failed: {}",
        e.message()
    );

    // A service principal without access to the vault: forbidden, even though the object is cached for another.
    kv.add_app("app-1", "s3cret");
    let sp = attributes(
        &params[..2].iter().copied().chain([("objects", o.as_str())]).collect::<Vec<_>>(),
        &Pod::new("team-a", "app"),
    );
    let e = p.mount(&sp, SP).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    assert!(e.message().starts_with("KeyVaultForbidden: secret s (file s) in vault kv1"), "{}", e.message());
    assert!(e.message().contains("Forbidden/AccessDenied"), "{}", e.message());

    // No token in the request although clientID is set.
    let e = p.mount(&attributes(&params, &Pod::new("team-a", "app")), "null").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("tokenRequests"), "{}", e.message());
}

#[tokio::test]
async fn vm_managed_identity() {
    let kv = KeyVaultStandIn::start().await;
    kv.add_managed_identity(Some("uami-1"));
    kv.set_secret("kv1", "s", "node");
    kv.set_readers("kv1", &["mi-uami-1"]);
    let p = ProviderHarness::start(&kv).await;
    let o = objects(&["objectName: s\nobjectType: secret"]);
    let a = attributes(
        &[
            ("keyvaultName", "kv1"),
            ("tenantID", TENANT),
            ("useVMManagedIdentity", "true"),
            ("userAssignedIdentityID", "uami-1"),
            ("objects", &o),
        ],
        &Pod::new("team-a", "app"),
    );
    let r = p.mount(&a, "null").await.expect("mount");
    assert_eq!(files(&r)["s"].1, b"node");
    assert_eq!(kv.counters().imds, 1);
}

#[tokio::test]
async fn errors_name_object_vault_and_cause_and_return_no_files() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "present", "x");
    kv.set_secret_full("kv1", "off", "x", None, false, None);
    let e = p
        .mount(
            &sp_attrs(&[
                "objectName: present\nobjectType: secret",
                "objectName: missing\nobjectType: secret",
            ]),
            SP,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let m = e.message();
    assert!(m.starts_with("KeyVaultObjectNotFound: secret missing (file missing) in vault kv1: Key Vault answered 404 SecretNotFound"), "{m}");
    let e = p.mount(&sp_attrs(&["objectName: off\nobjectType: secret"]), SP).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().contains("Forbidden/SecretDisabled"), "{}", e.message());
    assert!(!e.message().contains(": x"), "never a value");

    let e = p
        .mount(&sp_attrs(&["objectName: present\nobjectType: secret\nfilePermission: \"999\""]), SP)
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("invalid filePermission"), "{}", e.message());

    let o = objects(&["objectName: present\nobjectType: secret"]);
    let a = attributes(
        &[("keyvaultName", "kv1"), ("tenantID", TENANT), ("usePodIdentity", "true"), ("objects", &o)],
        &Pod::new("a", "b"),
    );
    let e = p.mount(&a, "null").await.unwrap_err();
    assert!(e.message().contains("usePodIdentity is not supported"), "{}", e.message());
    let a = attributes(&[("tenantID", TENANT), ("objects", &o)], &Pod::new("a", "b"));
    assert!(p.mount(&a, SP).await.unwrap_err().message().contains("keyvaultName is not provided"));
}

#[tokio::test]
async fn throttling_honours_retry_after_within_a_bound() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "s", "v");
    kv.inject(Fault { kind: FaultKind::Throttle { retry_after: 1 }, count: 1, path_contains: None });
    let r = p.mount(&sp_attrs(&["objectName: s\nobjectType: secret"]), SP).await.expect("retried");
    assert_eq!(files(&r)["s"].1, b"v");
    assert_eq!(kv.counters().keyvault, 2, "the 429, then the retry after Retry-After");
    let text = p.provider.metrics().encode();
    assert!(
        text.contains(
            "arcseal_csi_keyvault_requests_total{operation=\"get_secret\",result=\"KeyVaultThrottled\"} 1"
        ),
        "{text}"
    );

    // A Retry-After beyond the bounded wait (3 s in tests): no sleep, no second attempt, the driver retries.
    kv.set_secret("kv1", "t", "v");
    kv.inject(Fault {
        kind: FaultKind::Throttle { retry_after: 30 },
        count: 100,
        path_contains: Some("/t".into()),
    });
    let before = kv.counters().keyvault;
    let e = p.mount(&sp_attrs(&["objectName: t\nobjectType: secret"]), SP).await.unwrap_err();
    assert_eq!(kv.counters().keyvault, before + 1, "bounded: gave up at once");
    assert_eq!(e.code(), tonic::Code::Unknown, "Azure's code; RESOURCE_EXHAUSTED is the driver's size hint");
    assert!(e.message().starts_with("KeyVaultThrottled:"), "{}", e.message());
    assert!(e.message().contains("the next wait would have been 30 s"), "{}", e.message());

    kv.set_secret("kv1", "u", "v");
    kv.inject(Fault { kind: FaultKind::ServerError(503), count: 2, path_contains: Some("/u".into()) });
    let before = kv.counters().keyvault;
    let r = p.mount(&sp_attrs(&["objectName: u\nobjectType: secret"]), SP).await.expect("5xx retried");
    assert_eq!(files(&r)["u"].1, b"v");
    assert_eq!(kv.counters().keyvault, before + 3, "two 503s, then the answer");
}

#[tokio::test]
async fn concurrent_mounts_share_one_keyvault_call() {
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "s", "v");
    kv.inject(Fault { kind: FaultKind::Delay(Duration::from_millis(200)), count: 1, path_contains: None });
    let attrs = sp_attrs(&["objectName: s\nobjectType: secret"]);
    let mounts: Vec<_> = (0..20).map(|_| p.mount(&attrs, SP)).collect();
    for r in futures::future::join_all(mounts).await {
        assert_eq!(files(&r.expect("mount"))["s"].1, b"v");
    }
    assert_eq!(kv.counters().keyvault, 1);
    let (hits, lookups) = p.provider.metrics().cache_totals();
    assert_eq!((hits, lookups), (19, 20));
    let text = p.provider.metrics().encode();
    assert!(
        text.contains("arcseal_csi_keyvault_requests_total{operation=\"get_secret\",result=\"ok\"} 1"),
        "{text}"
    );
    p.stop().await;
}

#[tokio::test]
async fn tls_stand_in_with_test_ca_and_private_cloud_settings() {
    let ca = TestCa::new(&["kv1.vault.test", "login.test"]);
    let kv = KeyVaultStandIn::start_tls(&ca).await;
    kv.add_app("app-1", "s3cret");
    kv.set_secret("kv1", "s", "over tls");
    let port = kv.addr().port();
    let resolve = vec![("kv1.vault.test".to_string(), kv.addr()), ("login.test".to_string(), kv.addr())];
    let mut config = test_config(&kv);
    config.http_client = arcseal_keyvault::http::http_client(Some(ca.ca_pem.as_bytes()), &resolve).unwrap();
    config.cloud = CloudOverrides {
        authority_host: Some(format!("https://login.test:{port}")),
        keyvault_dns_suffix: Some(format!("vault.test:{port}")),
        env_dir: None,
    };
    let p = ProviderHarness::start_with(config).await;
    let r = p.mount(&sp_attrs(&["objectName: s\nobjectType: secret"]), SP).await.expect("mount over TLS");
    assert_eq!(files(&r)["s"].1, b"over tls");
    assert_eq!(kv.counters().challenges, 1);
}
