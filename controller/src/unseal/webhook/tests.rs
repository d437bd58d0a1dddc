use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use arcseal_crypto::{Certificate, CertificateParams, PrivateKey, Scope};
use serde_json::json;

use super::*;
use crate::unseal::keys::LoadedKey;

/// Three 2048-bit keys, oldest first (certificates a day apart).
fn keys() -> &'static [LoadedKey; 3] {
    static KEYS: OnceLock<[LoadedKey; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        let day = Duration::from_secs(86_400);
        let start = SystemTime::now() - 10 * day;
        [0u32, 1, 2].map(|i| {
            let key = PrivateKey::generate(2048).unwrap();
            let params = CertificateParams {
                common_name: String::new(),
                not_before: start + i * day,
                validity: 1000 * day,
            };
            let cert = Certificate::self_signed(&key, &params).unwrap();
            LoadedKey { key, cert: Some(cert), secret_name: format!("key-{i}") }
        })
    })
}

fn set() -> KeySet {
    KeySet::new(keys().to_vec())
}

const SECRET: &[u8] = b"s3cret-Plaintext-value";

fn seal_with(key: usize, scope: Scope, namespace: &str, name: &str, plaintext: &[u8]) -> String {
    let label = scope.encryption_label(namespace, name);
    arcseal_crypto::seal(keys()[key].key.public_key(), &label, plaintext).unwrap()
}

fn object(name: &str, annotations: serde_json::Value, items: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": "team-a", "annotations": annotations},
        "spec": {"encryptedData": items},
    })
}

fn request(operation: &str, object: serde_json::Value, old: Option<serde_json::Value>) -> AdmissionRequest {
    AdmissionRequest {
        uid: "uid-1".into(),
        operation: operation.into(),
        name: object["metadata"]["name"].as_str().unwrap_or_default().into(),
        namespace: Some("team-a".into()),
        object: Some(object),
        old_object: old,
        dry_run: None,
    }
}

fn check(request: &AdmissionRequest, keys: &KeySet, limits: &WebhookLimits) -> (Verdict, u64) {
    let ops = AtomicU64::new(0);
    let verdict = check_request(request, keys, limits, &ops);
    let said = format!("{:?} {:?}", verdict.message, verdict.warnings);
    assert!(!said.contains(std::str::from_utf8(SECRET).unwrap()), "a plaintext reached the answer: {said}");
    (verdict, ops.load(Ordering::Relaxed))
}

#[test]
fn items_sealed_for_the_object_are_admitted_at_one_rsa_operation_each() {
    let items = json!({
        "a": seal_with(2, Scope::Strict, "team-a", "db", SECRET),
        "b": seal_with(2, Scope::Strict, "team-a", "db", SECRET),
        "c": seal_with(2, Scope::Strict, "team-a", "db", SECRET),
    });
    let (verdict, ops) =
        check(&request("CREATE", object("db", json!({}), items), None), &set(), &Default::default());
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.reason, "ok");
    assert!(verdict.warnings.is_empty(), "{verdict:?}");
    assert_eq!(ops, 3, "the newest key first, and then the hint: one RSA operation per item");
}

#[test]
fn items_sealed_for_another_name_namespace_scope_or_cluster_are_refused_by_name() {
    let other_cluster = PrivateKey::generate(2048).unwrap();
    let cases = [
        ("another name", seal_with(2, Scope::Strict, "team-a", "other", SECRET)),
        ("another namespace", seal_with(2, Scope::Strict, "team-b", "db", SECRET)),
        ("namespace-wide, object strict", seal_with(2, Scope::NamespaceWide, "team-a", "db", SECRET)),
        ("another cluster", arcseal_crypto::seal(other_cluster.public_key(), b"team-a/db", SECRET).unwrap()),
    ];
    for (case, wrong) in cases {
        let items = json!({"good": seal_with(2, Scope::Strict, "team-a", "db", SECRET), "wrong": wrong});
        let (verdict, ops) =
            check(&request("CREATE", object("db", json!({}), items), None), &set(), &Default::default());
        assert!(!verdict.allowed, "{case}");
        assert_eq!(verdict.reason, "no_key_opens", "{case}");
        let message = verdict.message.unwrap();
        assert!(message.contains("\"wrong\"") && !message.contains("\"good\""), "{case}: {message}");
        assert!(
            message.contains("strict (team-a/db)") && message.contains("team-a/db refused"),
            "{case}: {message}"
        );
        assert!(ops <= 1 + 3, "{case}: {ops} RSA operations");
    }
}

#[test]
fn malformed_values_and_key_sizes_no_key_has_are_named_by_class() {
    let big = PrivateKey::generate(3072).unwrap();
    let good = seal_with(2, Scope::Strict, "team-a", "db", SECRET);
    let items = json!({
        "not-base64": "***",
        "short": "AAE=",
        "bigger-key": arcseal_crypto::seal(big.public_key(), b"team-a/db", SECRET).unwrap(),
        "ok": good,
    });
    let (verdict, ops) =
        check(&request("CREATE", object("db", json!({}), items), None), &set(), &Default::default());
    assert!(!verdict.allowed);
    let message = verdict.message.unwrap();
    assert!(
        message.contains("\"not-base64\"") && message.contains("malformed: not standard base64"),
        "{message}"
    );
    assert!(message.contains("\"short\"") && message.contains("not a sealed value"), "{message}");
    assert!(message.contains("\"bigger-key\"") && message.contains("unknown-key"), "{message}");
    assert_eq!(ops, 1, "only the well-formed item costs an RSA operation");

    let not_an_object = AdmissionRequest {
        object: Some(json!({"metadata": {"name": "db"}, "spec": {"encryptedData": {"a": 5}}})),
        ..request("CREATE", json!({}), None)
    };
    let (verdict, _) = check(&not_an_object, &set(), &Default::default());
    assert!(!verdict.allowed && verdict.reason == "malformed", "{verdict:?}");
}

#[test]
fn scope_annotations_sealed_secrets_would_ignore_are_refused() {
    let ns_wide = seal_with(2, Scope::NamespaceWide, "team-a", "db", SECRET);
    // "True" is not "true": sealed-secrets reads the object as strict, and the item does not open.
    let (verdict, _) = check(
        &request(
            "CREATE",
            object("db", json!({"sealedsecrets.bitnami.com/namespace-wide": "True"}), json!({"a": ns_wide})),
            None,
        ),
        &set(),
        &Default::default(),
    );
    assert!(!verdict.allowed);
    assert_eq!(verdict.reason, "scope_annotation");
    assert!(verdict.message.as_deref().unwrap().contains("exactly \"true\""), "{verdict:?}");

    // Only in the template: ignored by sealed-secrets.
    let mut only_template =
        object("db", json!({}), json!({"a": seal_with(2, Scope::Strict, "team-a", "db", SECRET)}));
    only_template["spec"]["template"] =
        json!({"metadata": {"annotations": {"sealedsecrets.bitnami.com/cluster-wide": "true"}}});
    let (verdict, _) = check(&request("CREATE", only_template, None), &set(), &Default::default());
    assert!(!verdict.allowed);
    assert!(verdict.message.as_deref().unwrap().contains("in spec.template is ignored"), "{verdict:?}");

    // On the object and copied into the template (kubeseal's output): fine. Both scopes: a warning.
    let mut both = object(
        "db",
        json!({"sealedsecrets.bitnami.com/namespace-wide": "true", "sealedsecrets.bitnami.com/cluster-wide": "true"}),
        json!({"a": seal_with(2, Scope::ClusterWide, "team-a", "db", SECRET)}),
    );
    both["spec"]["template"] =
        json!({"metadata": {"annotations": {"sealedsecrets.bitnami.com/cluster-wide": "true"}}});
    let (verdict, _) = check(&request("CREATE", both, None), &set(), &Default::default());
    assert!(verdict.allowed, "{verdict:?}");
    assert!(verdict.warnings.iter().any(|w| w.contains("cluster-wide wins")), "{verdict:?}");
}

#[test]
fn items_sealed_with_a_retired_or_orphaned_key_are_admitted_with_a_warning() {
    let items = json!({
        "old": seal_with(0, Scope::Strict, "team-a", "db", SECRET),
        "new": seal_with(2, Scope::Strict, "team-a", "db", SECRET),
    });
    let req = request("CREATE", object("db", json!({}), items), None);
    let (verdict, _) = check(&req, &set(), &Default::default());
    assert!(verdict.allowed, "{verdict:?}");
    assert_eq!(verdict.warnings.len(), 1, "{verdict:?}");
    let warning = &verdict.warnings[0];
    assert!(warning.contains("\"old\"") && !warning.contains("\"new\""), "{warning}");
    assert!(warning.contains(&keys()[0].key.fingerprint().to_string()) && warning.contains("arcseal rotate"));

    let orphaned = KeySet::with_orphans(keys()[1..].to_vec(), vec![keys()[0].clone()]);
    let (verdict, _) = check(&req, &orphaned, &Default::default());
    assert!(verdict.allowed, "{verdict:?}");
    assert!(verdict.warnings.iter().any(|w| w.contains("\"old\"") && w.contains("key Secret was deleted")));
}

#[test]
fn the_rsa_cost_of_a_request_is_bounded() {
    // Every item fails: each would try all three keys; the budget stops at max_items + keys operations.
    let limits = WebhookLimits { max_items: 4, ..WebhookLimits::default() };
    let wrong: serde_json::Map<String, serde_json::Value> = (0..40)
        .map(|i| (format!("i{i:02}"), json!(seal_with(1, Scope::Strict, "team-a", "other", b"x"))))
        .collect();
    let (verdict, ops) = check(
        &request("CREATE", object("db", json!({}), serde_json::Value::Object(wrong)), None),
        &set(),
        &limits,
    );
    assert!(!verdict.allowed);
    assert!(ops <= (4 + 3) + 3, "{ops} RSA operations for one request");
    assert!(
        verdict.warnings.iter().any(|w| w.contains("were not checked") && w.contains("and ")),
        "{verdict:?}"
    );

    // Good items past max_items are admitted unchecked, with a warning naming them.
    let good: serde_json::Map<String, serde_json::Value> = (0..6)
        .map(|i| (format!("g{i}"), json!(seal_with(2, Scope::Strict, "team-a", "db", SECRET))))
        .collect();
    let (verdict, ops) = check(
        &request("CREATE", object("db", json!({}), serde_json::Value::Object(good)), None),
        &set(),
        &limits,
    );
    assert!(verdict.allowed && verdict.reason == "not_checked", "{verdict:?}");
    assert_eq!(ops, 4);
    assert!(verdict.warnings[0].contains("\"g4\", \"g5\""), "{verdict:?}");
}

#[test]
fn updates_that_keep_the_sealed_content_are_not_rechecked() {
    let wrong = json!({"a": seal_with(2, Scope::Strict, "team-a", "other", SECRET)});
    let old = object("db", json!({}), wrong.clone());
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"team": "a"});
    let (verdict, ops) =
        check(&request("UPDATE", relabelled, Some(old.clone())), &set(), &Default::default());
    assert!(verdict.allowed && verdict.reason == "unchanged" && ops == 0, "{verdict:?}");

    // Changing an item or a scope annotation is checked again.
    let mut changed = old.clone();
    changed["metadata"]["annotations"] = json!({"sealedsecrets.bitnami.com/namespace-wide": "true"});
    let (verdict, _) = check(&request("UPDATE", changed, Some(old)), &set(), &Default::default());
    assert!(!verdict.allowed, "{verdict:?}");
}

#[test]
fn deletes_and_a_controller_without_keys_are_not_judged() {
    let items = json!({"a": seal_with(2, Scope::Strict, "team-a", "other", SECRET)});
    let (verdict, _) =
        check(&request("DELETE", object("db", json!({}), items.clone()), None), &set(), &Default::default());
    assert!(verdict.allowed);
    let (verdict, ops) = check(
        &request("CREATE", object("db", json!({}), items), None),
        &KeySet::default(),
        &Default::default(),
    );
    assert!(verdict.allowed && verdict.reason == "no_keys" && ops == 0, "{verdict:?}");
    assert!(!verdict.warnings.is_empty());
}

#[test]
fn the_request_names_the_object_when_the_object_does_not() {
    // generateName on CREATE, or a namespace only in the URL.
    let items = json!({"a": seal_with(2, Scope::Strict, "team-a", "db-x7k2p", SECRET)});
    let mut o = object("", json!({}), items);
    o["metadata"].as_object_mut().unwrap().remove("namespace");
    let req = AdmissionRequest { name: "db-x7k2p".into(), ..request("CREATE", o, None) };
    let (verdict, _) = check(&req, &set(), &Default::default());
    assert!(verdict.allowed, "{verdict:?}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Whatever an object holds, a verdict comes back, and no answer quotes a value of the object.
    #[test]
    fn any_object_gets_a_verdict_that_quotes_no_value(
        name in "[a-z0-9.-]{0,20}",
        values in proptest::collection::btree_map("[a-zA-Z0-9_.-]{1,8}", "[A-Za-z0-9+/=]{0,40}", 0..6),
        annotation in proptest::option::of("[a-zA-Z]{0,6}"),
    ) {
        let annotations = annotation.map_or(json!({}), |v| json!({"sealedsecrets.bitnami.com/namespace-wide": v}));
        let items = serde_json::to_value(&values).unwrap();
        let (verdict, _) = check(&request("CREATE", object(&name, annotations, items), None), &set(), &Default::default());
        let said = format!("{:?} {:?}", verdict.message, verdict.warnings);
        for value in values.values().filter(|v| v.len() >= 12) {
            proptest::prop_assert!(!said.contains(value.as_str()));
        }
    }
}
