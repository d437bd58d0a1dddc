//! The rule "no text derived from a decrypted value reaches a user", tested across every channel at once: random
//! plaintexts are sealed, hostile templates are put around them, and the SealedSecret goes through reconcile
//! (status, events, logs, against kube's mock API server), `/v1/verify` and `/v1/rotate`. Nothing any of them say
//! may share a 4-byte run of a plaintext (as is, upper or lower case), nor an 8-character run of its base64 or hex.
//!
//! The plaintext alphabet is chosen so that a chance match with the fixed words of a message is impossible: no
//! message is built from only these characters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ::http::{Method, Request, Response};
use arcseal_crypto::PrivateKey;
use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use proptest::prelude::*;
use tower::ServiceExt as _;

use super::crd::{SealedSecret, SealedSecretSpec, SecretTemplateSpec};
use super::http::{self as routes, Admission, Api, HttpLimits};
use super::keys::{KeySet, KeyStore, LoadedKey};
use super::metrics::Metrics;
use super::reconcile::{self, Context};

/// Templates that try to carry a value into an error, a status or an answer.
const HOSTILE: &[&str] = &[
    "{{ index . .password }}",
    "{{ index . (.password | upper) }}",
    "{{ .password | b64dec }}",
    "{{ fail .password }}",
    "{{ .password.field }}",
    "{{ template .password }}",
    "{{ index .password 99 }}",
    "{{ printf \"%d\" .password | atoi }}",
    "{{ .password | fromJson }}",
    "{{ regexMatch .password \"x\" }}",
    "{{ .password | toDate \"2006-01-02\" }}",
    "{{ semver .password }}",
    "{{ call .password }}",
    "{{ .password | int | div 0 }}",
    "{{ slice .password 5 1 }}",
    "{{ if eq .password \"x\" }}{{ else }}{{ .nope.deeper }}{{ end }}",
    "{{ .password | required \"x\" | lower | index . }}",
    "{{ dict .password 1 | toJson | fromYaml }}",
    "{{ .password | splitList \",\" | index 7 }}",
    "{{ $x := .password }}{{ $x.y }}",
];

fn key() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| PrivateKey::generate(2048).expect("RSA-2048 key generation"))
}

/// What a user could read: every body the controller sent to the API server, its log, and HTTP answers.
#[derive(Default, Clone)]
struct Said(Arc<Mutex<Vec<String>>>);

impl Said {
    fn push(&self, text: String) {
        self.0.lock().unwrap().push(text);
    }
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl std::io::Write for Said {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.push(String::from_utf8_lossy(buf).into_owned());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The independent check: the forms the rule names, computed here, not by the code under test.
fn leaked(text: &str, plaintext: &[u8]) -> Option<String> {
    let b = text.as_bytes();
    let contains = |needle: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    for w in plaintext.windows(4) {
        let s = String::from_utf8_lossy(w);
        for form in [w.to_vec(), s.to_uppercase().into_bytes(), s.to_lowercase().into_bytes()] {
            if contains(&form) {
                return Some(format!("raw/case run {s:?}"));
            }
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(plaintext);
    let hex: String = plaintext.iter().map(|x| format!("{x:02x}")).collect();
    for encoded in [b64, hex.clone(), hex.to_uppercase()] {
        for w in encoded.as_bytes().windows(8) {
            if contains(w) {
                return Some(format!("encoded run {:?}", String::from_utf8_lossy(w)));
            }
        }
    }
    None
}

fn sealed_secret(items: &BTreeMap<String, Vec<u8>>, template: &str) -> SealedSecret {
    let encrypted = items
        .iter()
        .map(|(k, v)| (k.clone(), arcseal_crypto::seal(key().public_key(), b"ns/db", v).unwrap()))
        .collect();
    let mut ss = SealedSecret::new(
        "db",
        SealedSecretSpec {
            encrypted_data: encrypted,
            template: Some(SecretTemplateSpec {
                data: Some([("out".to_owned(), template.to_owned())].into()),
                ..SecretTemplateSpec::default()
            }),
            ..SealedSecretSpec::default()
        },
    );
    ss.metadata.namespace = Some("ns".into());
    ss.metadata.uid = Some("uid-1".into());
    ss.metadata.generation = Some(1);
    ss
}

/// Answers whatever the controller asks like an API server without the Secret; records every request body but the
/// Secret's own.
async fn permissive_api(
    mut handle: tower_test::mock::Handle<Request<kube::client::Body>, Response<kube::client::Body>>,
    said: Said,
) {
    while let Some((request, send)) = handle.next_request().await {
        let (method, path) = (request.method().clone(), request.uri().path().to_owned());
        let body = request.into_body().collect_bytes().await.unwrap_or_default();
        // The Secret itself carries the values (that is the product); status and events are what users read.
        if !path.contains("/secrets") {
            said.push(String::from_utf8_lossy(&body).into_owned());
        }
        let (status, answer) = if method == Method::GET {
            (
                404,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404}),
            )
        } else if path.ends_with("/status") {
            (
                200,
                serde_json::json!({"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": "db", "namespace": "ns"}, "spec": {"encryptedData": {}}}),
            )
        } else {
            (201, serde_json::from_slice(&body).unwrap_or(serde_json::json!({})))
        };
        let response = Response::builder()
            .status(status)
            .body(kube::client::Body::from(serde_json::to_vec(&answer).unwrap()));
        send.send_response(response.unwrap());
    }
}

fn everything_said(items: &BTreeMap<String, Vec<u8>>, template: &str) -> Vec<String> {
    let said = Said::default();
    let writer = said.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let ss = sealed_secret(items, template);
        let store = Arc::new(KeyStore::default());
        store.replace(KeySet::new(vec![LoadedKey {
            key: key().clone(),
            cert: None,
            secret_name: "k".into(),
        }]));
        let metrics = Arc::new(Metrics::new());

        let (service, handle) =
            tower_test::mock::pair::<Request<kube::client::Body>, Response<kube::client::Body>>();
        let api_server = tokio::spawn(permissive_api(handle, said.clone()));
        let client = Client::new(service, "ns");
        let reporter = Reporter { controller: "test".into(), instance: None };
        let ctx = Arc::new(Context::new(
            client.clone(),
            store.clone(),
            Recorder::new(client, reporter),
            metrics.clone(),
            Duration::from_secs(600),
        ));
        if let Err(e) = reconcile::reconcile(Arc::new(ss.clone()), ctx.clone()).await {
            said.push(e.to_string());
        }
        drop(ctx);
        api_server.abort();

        let api = Arc::new(Api {
            keys: store,
            metrics: metrics.clone(),
            ready: Arc::default(),
            admission: Admission::new(HttpLimits::default()),
            webhook_cert: None,
        });
        for route in ["/v1/verify", "/v1/rotate"] {
            let request = Request::post(route)
                .extension(ConnectInfo::<SocketAddr>(([127, 0, 0, 1], 9).into()))
                .body(Body::from(serde_json::to_vec(&ss).unwrap()))
                .unwrap();
            let response = routes::router(api.clone()).oneshot(request).await.unwrap();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 22).await.unwrap();
            said.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        said.push(metrics.encode());
    });
    said.all()
}

/// Plaintexts from characters no fixed message is made of (see the module doc), plus bytes that are not UTF-8.
fn plaintext() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => proptest::sample::select(vec!["Q", "J", "X", "Z", "q", "j", "x", "z", "#", "%", "~", "^", "ß", "σ", "İ"])
            .prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::sample::select(vec![0xffu8, 0xfe, 0x80, 0xc3]).prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 4..24).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn no_plaintext_reaches_status_events_logs_or_answers(
        password in plaintext(),
        other in plaintext(),
        template in proptest::sample::select(HOSTILE.to_vec()),
    ) {
        let items: BTreeMap<String, Vec<u8>> =
            [("password".to_owned(), password), ("other".to_owned(), other)].into();
        let said = everything_said(&items, template);
        prop_assert!(said.len() >= 4, "reconcile, verify, rotate and metrics all said something");
        for text in &said {
            for value in items.values() {
                if let Some(how) = leaked(text, value) {
                    prop_assert!(false, "{how} of a plaintext in {text:?} (template {template:?})");
                }
            }
        }
    }
}

#[test]
fn the_check_itself_finds_a_leak() {
    // The property above must be able to fail: a message quoting the value is caught in every form.
    let v = b"QJXZ#%~^";
    for text in ["QJXZ", "qjxz", "UUpYWiMlfl4=", "514a585a", "514A585A"] {
        assert!(leaked(&format!("item {text} failed"), v).is_some(), "{text}");
    }
    assert!(leaked("no key could decrypt item \"password\"", v).is_none());
}
