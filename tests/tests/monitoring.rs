//! deploy/monitoring against the running binaries: the unseal controller (on the real API server) and the CSI
//! provider (on its unix socket, against the Key Vault stand-in) are driven through the situations the alerts are
//! about, then scraped over HTTP. Every metric the rules and dashboards name must be one the binaries declare in
//! that exposition (or a recording rule, or Prometheus' own `up`), and every label value an alert matches on
//! literally (`result="KeyVaultThrottled"`, `code="429"`, ...) must occur in a scraped sample: a rule that can never
//! match fails here, not in production. The dashboards' JSON is checked for the structure Grafana needs.
//!
//! `promtool check rules` and `promtool test rules` (deploy/monitoring/test.sh) parse the same expressions with
//! Prometheus' own parser; the extraction here is a small PromQL lexer, checked by its own test below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arcseal_controller::csi::metrics;
use arcseal_controller::unseal;
use arcseal_crypto::Scope;
use arcseal_tests::k8s::poll;
use arcseal_tests::keyvault::{Fault, FaultKind};
use kube::api::Api;

mod controller_common;
mod csi_common;
use controller_common::*;

/// Series Prometheus makes itself, which the rules may name.
const PROMETHEUS_OWN: &[&str] = &["up"];

fn monitoring_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/monitoring")
}

// ---------------------------------------------------------------------------------------------------------------
// A PromQL lexer: enough to find the selectors (metric name and matchers) of the expressions in deploy/monitoring.
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Matcher {
    label: String,
    op: String,
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector {
    name: String,
    matchers: Vec<Matcher>,
}

/// Aggregations, set operators and modifiers: identifiers that are not metric names.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

fn selectors(expr: &str) -> Result<Vec<Selector>, String> {
    let c: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut j: usize| {
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let closing = |open: usize, o: char, cl: char| -> Result<usize, String> {
        let mut depth = 0;
        for (j, ch) in c.iter().enumerate().skip(open) {
            if *ch == o {
                depth += 1;
            } else if *ch == cl {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
        }
        Err(format!("unbalanced {o} in {expr:?}"))
    };
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' || ch == '\'' {
            let end =
                c[i + 1..].iter().position(|x| *x == ch).ok_or(format!("unterminated string in {expr:?}"))?;
            i += end + 2;
        } else if ch == '[' {
            i = closing(i, '[', ']')? + 1;
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let next = skip_ws(i);
            if LABEL_LISTS.contains(&word.as_str()) {
                if next < c.len() && c[next] == '(' {
                    i = closing(next, '(', ')')? + 1;
                }
            } else if KEYWORDS.contains(&word.as_str()) || (next < c.len() && c[next] == '(') {
                // An aggregation or a function: its arguments are lexed next.
            } else if next < c.len() && c[next] == '{' {
                let end = closing(next, '{', '}')?;
                let body: String = c[next + 1..end].iter().collect();
                out.push(Selector { name: word, matchers: matchers(&body)? });
                i = end + 1;
            } else {
                out.push(Selector { name: word, matchers: Vec::new() });
            }
        } else if ch == '{' {
            return Err(format!("a selector without a metric name in {expr:?}: name the metric"));
        } else {
            i += 1;
        }
    }
    Ok(out)
}

fn matchers(body: &str) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let name_end = rest.find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_')).unwrap_or(rest.len());
        let label = rest[..name_end].to_owned();
        rest = rest[name_end..].trim_start();
        let op = ["=~", "!~", "!=", "="]
            .into_iter()
            .find(|op| rest.starts_with(op))
            .ok_or(format!("matcher {label:?}: no operator in {{{body}}}"))?;
        rest = rest[op.len()..].trim_start();
        let quote = rest
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'')
            .ok_or(format!("matcher {label}: unquoted value"))?;
        let end = rest[1..].find(quote).ok_or(format!("matcher {label}: unterminated value"))? + 1;
        out.push(Matcher { label, op: op.to_owned(), value: rest[1..end].to_owned() });
        rest = rest[end + 1..].trim_start().trim_start_matches(',').trim_start();
    }
    Ok(out)
}

#[test]
fn the_lexer_finds_selectors_and_only_selectors() {
    let found = selectors(
        r#"sum by (namespace, le) (rate(a_total{code="429", path!~"/healthz|/readyz"}[$__rate_interval]))
           / on (instance) group_left (pod) max without (x) (b) > 30 * 86400 and time() - c offset 1h
           or vector(0) or histogram_quantile(0.99, d_bucket{le!=""})"#,
    )
    .unwrap();
    let names: Vec<&str> = found.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a_total", "b", "c", "d_bucket"]);
    assert_eq!(
        found[0].matchers,
        [
            Matcher { label: "code".into(), op: "=".into(), value: "429".into() },
            Matcher { label: "path".into(), op: "!~".into(), value: "/healthz|/readyz".into() },
        ]
    );
    assert!(selectors("{job=\"x\"}").is_err(), "a nameless selector is refused");
    assert!(selectors("sum(rate(x[5m])").is_ok(), "unbalanced parens are promtool's to catch");
    assert!(selectors("x{a=\"1\"").is_err());
}

// ---------------------------------------------------------------------------------------------------------------
// What deploy/monitoring names.
// ---------------------------------------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(serde::Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(serde::Deserialize)]
struct Rule {
    record: Option<String>,
    alert: Option<String>,
    expr: String,
}

/// (where, expression, whether it is an alert) for every rule and dashboard target; and the recorded names.
fn expressions() -> (Vec<(String, String, bool)>, BTreeSet<String>) {
    let dir = monitoring_dir();
    let text = std::fs::read_to_string(dir.join("rules/arcseal.rules.yaml")).unwrap();
    let file: RuleFile = serde_saphyr::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    let mut recorded = BTreeSet::new();
    for rule in file.groups.into_iter().flat_map(|g| g.rules) {
        if let Some(r) = &rule.record {
            recorded.insert(r.clone());
        }
        let what = rule.alert.clone().or(rule.record.clone()).unwrap_or_default();
        exprs.push((format!("rules: {what}"), rule.expr, rule.alert.is_some()));
    }
    for (file, dashboard) in dashboards() {
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap().to_owned();
                exprs.push((format!("{file}: panel {:?}", panel["title"].as_str().unwrap()), expr, false));
            }
        }
    }
    (exprs, recorded)
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(monitoring_dir().join("dashboards")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).unwrap();
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path.file_name().unwrap().to_string_lossy().into_owned(), value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

// ---------------------------------------------------------------------------------------------------------------
// What the binaries export.
// ---------------------------------------------------------------------------------------------------------------

/// Names a text exposition declares (`# TYPE`, with the sample suffixes of each type) and its samples.
#[derive(Default)]
struct Exposition {
    declared: BTreeSet<String>,
    samples: Vec<(String, BTreeMap<String, String>, String)>,
}

impl Exposition {
    fn add(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "gauge" | "unknown" => &[""],
                    "summary" => &["", "_sum", "_count"],
                    "info" => &["_info"],
                    other => panic!("exposition type {other} of {name}"),
                };
                self.declared.extend(suffixes.iter().map(|s| format!("{name}{s}")));
            } else if !line.starts_with('#') && !line.is_empty() {
                let (series, value) = line.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, l)) => (n, l.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = matchers(labels)
                    .unwrap_or_else(|e| panic!("{line}: {e}"))
                    .into_iter()
                    .map(|m| (m.label, m.value))
                    .collect();
                self.samples.push((name.to_owned(), labels, value.to_owned()));
            }
        }
    }

    fn has_sample(&self, name: &str, label: &str, value: &str) -> bool {
        self.samples.iter().any(|(n, l, _)| n == name && l.get(label).is_some_and(|v| v == value))
    }
}

async fn scrape(addr: std::net::SocketAddr) -> String {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("scrape");
    assert!(response.status().is_success(), "scrape of {addr}: {}", response.status());
    response.text().await.unwrap()
}

/// The unseal controller on the real API server: one SealedSecret synced, one that cannot be decrypted (unseal
/// errors, Synced=False), certificate fetches, and /v1/verify calls past the rate limit (429).
async fn controller_exposition() -> String {
    let ns = k8s_ns("monitoring").await;
    let client = ns.client();
    arcseal_tests::k8s::apply_crd(&client, &unseal::crd::crd_yaml()).await.unwrap();
    let (key, cert) = new_key();
    store_key(&client, ns.name(), &key, &cert).await;
    let mut config = config(ns.name(), &[ns.name()]);
    config.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
    config.http_limits.request_rate = 0.5;
    config.http_limits.request_burst = 1;
    config.admission = Some(admission_config(ns.name(), "arcseal-monitoring-none", true));
    let running = start(client.clone(), config).await;
    let api = good_and_broken(&client, ns.name(), &key).await;
    let http = reqwest::Client::new();
    http.get(running.url("/v1/cert.pem")).send().await.unwrap().error_for_status().unwrap();
    let body = serde_json::to_vec(&api.get("good").await.unwrap()).unwrap();
    let mut limited = false;
    for _ in 0..5 {
        let r = http.post(running.url("/v1/verify")).body(body.clone()).send().await.unwrap();
        limited |= r.status() == 429;
    }
    assert!(limited, "five calls at once exceed a burst of 1");
    // The admission webhook: a body no API server sends gets no verdict (result="error").
    let tls = poll("the webhook's serving Secret", TIMEOUT, || async {
        Ok(ns
            .api::<k8s_openapi::api::core::v1::Secret>()
            .get_opt("arcseal-admission-tls")
            .await
            .ok()
            .flatten())
    })
    .await
    .unwrap();
    let ca = reqwest::Certificate::from_pem(&tls.data.unwrap()["ca.crt"].0).unwrap();
    poll("the webhook serves", TIMEOUT, || async {
        Ok(running.handles.admission_cert.as_ref().is_some_and(|c| c.is_loaded()).then_some(()))
    })
    .await
    .unwrap();
    let webhook = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    let addr = running.handles.admission_addr.expect("webhook bound");
    let answer = webhook
        .post(format!("https://{addr}{}", unseal::webhook::PATH))
        .header("content-type", "application/json")
        .body("not a review")
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_client_error(), "{}", answer.status());
    let text = scrape(running.handles.metrics_addr.expect("metrics bound")).await;
    running.stop().await;
    ns.finish().await.unwrap();
    text
}

async fn k8s_ns(test: &str) -> arcseal_tests::k8s::TestNamespace {
    arcseal_tests::k8s::TestNamespace::new(test).await.unwrap()
}

/// The CSI provider: a mount that works, one of a missing object, one throttled by Key Vault (retried), one the
/// vault forbids and one whose identity Entra ID refuses.
async fn provider_exposition() -> String {
    use csi_common::*;
    let (kv, p) = setup().await;
    kv.set_secret("kv1", "present", "v");
    let present = sp_attrs(&["objectName: present\nobjectType: secret"]);
    p.mount(&present, SP).await.expect("mount");
    p.mount(&sp_attrs(&["objectName: missing\nobjectType: secret"]), SP).await.expect_err("missing object");
    kv.set_secret("kv1", "throttled", "v");
    kv.inject(Fault { kind: FaultKind::Throttle { retry_after: 1 }, count: 1, path_contains: None });
    p.mount(&sp_attrs(&["objectName: throttled\nobjectType: secret"]), SP)
        .await
        .expect("retried after the 429");
    kv.set_secret("kv1", "forbidden", "v");
    kv.inject(Fault { kind: FaultKind::Forbidden, count: 1, path_contains: None });
    p.mount(&sp_attrs(&["objectName: forbidden\nobjectType: secret"]), SP).await.expect_err("403");
    let wrong = r#"{"clientid":"app-1","clientsecret":"wrong"}"#;
    kv.set_secret("kv1", "refused", "v");
    p.mount(&sp_attrs(&["objectName: refused\nobjectType: secret"]), wrong).await.expect_err("bad secret");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(metrics::serve(listener, p.provider.metrics().clone()));
    let text = scrape(addr).await;
    server.abort();
    p.stop().await;
    text
}

#[tokio::test]
async fn rules_and_dashboards_name_only_what_the_binaries_export() {
    let mut exposition = Exposition::default();
    exposition.add(&controller_exposition().await);
    exposition.add(&provider_exposition().await);
    let (exprs, recorded) = expressions();
    let mut problems = Vec::new();
    let mut named = BTreeSet::new();
    for (what, expr, alert) in &exprs {
        for s in selectors(expr).unwrap_or_else(|e| panic!("{what}: {e}")) {
            named.insert(s.name.clone());
            let known = exposition.declared.contains(&s.name)
                || recorded.contains(&s.name)
                || PROMETHEUS_OWN.contains(&s.name.as_str());
            if !known {
                problems.push(format!("{what}: {} is not exported by arcseal-controller", s.name));
                continue;
            }
            if !alert || !exposition.declared.contains(&s.name) {
                continue;
            }
            // The literal label values an alert matches on must be ones the binaries produce.
            for m in &s.matchers {
                let literals: Vec<&str> = match m.op.as_str() {
                    "=" => vec![m.value.as_str()],
                    "=~" if m.value.chars().all(|c| c.is_ascii_alphanumeric() || c == '|' || c == '_') => {
                        m.value.split('|').collect()
                    }
                    _ => continue,
                };
                for v in literals {
                    if !exposition.has_sample(&s.name, &m.label, v) {
                        problems.push(format!(
                            "{what}: no sample of {}{{{}=\"{v}\"}} after driving the binaries into that state",
                            s.name, m.label
                        ));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "deploy/monitoring names what the binaries do not export:\n{}",
        problems.join("\n")
    );
    // Not vacuous: the rules and dashboards cover both binaries.
    assert!(named.iter().filter(|n| n.starts_with("sealed_secrets_controller_")).count() >= 10, "{named:?}");
    assert!(named.iter().filter(|n| n.starts_with("arcseal_csi_")).count() >= 3, "{named:?}");
    assert!(named.contains("keyvault_request_count") && named.contains("grpc_request_count"), "{named:?}");
    println!("{} expressions name {} series, all exported: {named:?}", exprs.len(), named.len());
}

#[test]
fn dashboards_are_grafana_dashboards() {
    let all = dashboards();
    assert_eq!(all.len(), 2, "the controller's and the CSI provider's");
    let mut uids = BTreeSet::new();
    for (file, d) in &all {
        let at = |what: &str| format!("{file}: {what}");
        assert!(uids.insert(d["uid"].as_str().expect("uid").to_owned()), "{}", at("uid repeated"));
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{}", at("title"));
        assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36), "{}", at("schemaVersion"));
        let vars = d["templating"]["list"].as_array().expect("templating.list");
        assert!(
            vars.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{}",
            at("a Prometheus datasource variable")
        );
        let panels = d["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for p in panels {
            let title = p["title"].as_str().expect("panel title");
            let at = |what: &str| format!("{file}: panel {title:?}: {what}");
            assert!(ids.insert(p["id"].as_u64().expect("id")), "{}", at("id repeated"));
            assert!(["stat", "timeseries", "table"].contains(&p["type"].as_str().unwrap()), "{}", at("type"));
            assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", at("datasource"));
            let g = &p["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(w > 0 && h > 0 && x + w <= 24, "{}", at("gridPos outside Grafana's 24 columns"));
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(cells.insert((cx, cy)), "{}", at("overlaps another panel"));
                }
            }
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}", at("no query"));
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(refs.insert(t["refId"].as_str().expect("refId")), "{}", at("refId repeated"));
                let expr = t["expr"].as_str().expect("expr");
                assert!(!expr.trim().is_empty(), "{}", at("empty expr"));
                // Only Grafana's own interval variable: the expressions must parse once it is replaced.
                let vars: Vec<&str> = expr.match_indices('$').map(|(i, _)| &expr[i..]).collect();
                assert!(vars.iter().all(|v| v.starts_with("$__rate_interval")), "{}", at("unknown variable"));
            }
        }
    }
}

/// Not a check: traffic for the dashboard screenshots of docs/ (scripts/monitoring-screenshots runs it with
/// Prometheus scraping both binaries). The controller serves metrics on $ARCSEAL_DEMO_CONTROLLER_METRICS and the
/// provider on $ARCSEAL_DEMO_PROVIDER_METRICS for $ARCSEAL_DEMO_SECONDS, with a mix of the situations the
/// dashboards show: unseals and updates, one SealedSecret that cannot be decrypted, certificate fetches and
/// verify calls (some rate limited); mounts served from Key Vault and from the cache, missing objects, a spell of
/// throttling, and a client whose secret Entra ID refuses.
#[tokio::test]
#[ignore = "traffic generator for scripts/monitoring-screenshots"]
async fn traffic_for_screenshots() {
    use csi_common::*;
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"));
    let seconds: u64 = env("ARCSEAL_DEMO_SECONDS").parse().unwrap();
    let ns = k8s_ns("dashboards").await;
    let client = ns.client();
    arcseal_tests::k8s::apply_crd(&client, &unseal::crd::crd_yaml()).await.unwrap();
    let (key, cert) = new_key();
    store_key(&client, ns.name(), &key, &cert).await;
    let mut config = config(ns.name(), &[ns.name()]);
    config.metrics_addr = Some(env("ARCSEAL_DEMO_CONTROLLER_METRICS").parse().unwrap());
    config.http_limits.request_rate = 2.0;
    config.http_limits.request_burst = 4;
    config.keys.renew_period = Duration::from_secs(30 * 86400);
    let running = start(client.clone(), config).await;

    let (kv, p) = setup().await;
    let listener = tokio::net::TcpListener::bind(env("ARCSEAL_DEMO_PROVIDER_METRICS")).await.unwrap();
    let server = tokio::spawn(metrics::serve(listener, p.provider.metrics().clone()));
    for i in 0..5 {
        kv.set_secret("kv1", &format!("db-{i}"), "v");
    }

    let api: Api<unseal::SealedSecret> = Api::namespaced(client.clone(), ns.name());
    let (other, _) = new_key();
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    let mut tick = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick += 1;
        let phase = started.elapsed().as_secs() * 4 / seconds; // quarters of the run
        // Controller: a new or updated SealedSecret every tick; a broken one from the second quarter.
        let name = format!("app-{}", tick % 12);
        let value = format!("{tick}");
        let ss = sealed(ns.name(), &name, Scope::Strict, key.public_key(), &[("v", value.as_bytes())], None);
        let patch = kube::api::Patch::Apply(&ss);
        let _ = api.patch(&name, &kube::api::PatchParams::apply("screenshots").force(), &patch).await;
        if phase >= 1 && tick.is_multiple_of(10) {
            let bad = sealed(
                ns.name(),
                "broken",
                Scope::Strict,
                other.public_key(),
                &[("v", value.as_bytes())],
                None,
            );
            let _ = api
                .patch(
                    "broken",
                    &kube::api::PatchParams::apply("screenshots").force(),
                    &kube::api::Patch::Apply(&bad),
                )
                .await;
        }
        let _ = http.get(running.url("/v1/cert.pem")).send().await;
        let verifies = if phase == 2 { 6 } else { 1 };
        let body = serde_json::to_vec(&ss).unwrap();
        for _ in 0..verifies {
            let _ = http.post(running.url("/v1/verify")).body(body.clone()).send().await;
        }
        // Provider: mounts of a few objects (cache hits after the first), a missing one now and then, throttling
        // in the third quarter, a refused client secret in the last.
        let object = format!("objectName: db-{}\nobjectType: secret", tick % 5);
        let _ = p.mount(&sp_attrs(&[object.as_str()]), SP).await;
        if tick.is_multiple_of(7) {
            let _ = p.mount(&sp_attrs(&["objectName: missing\nobjectType: secret"]), SP).await;
        }
        if phase == 2 && tick.is_multiple_of(3) {
            kv.set_secret("kv1", &format!("hot-{tick}"), "v");
            kv.inject(Fault { kind: FaultKind::Throttle { retry_after: 1 }, count: 1, path_contains: None });
            let hot = format!("objectName: hot-{tick}\nobjectType: secret");
            let _ = p.mount(&sp_attrs(&[hot.as_str()]), SP).await;
        }
        if phase == 3 && tick.is_multiple_of(2) {
            let wrong = r#"{"clientid":"app-1","clientsecret":"rotated-away"}"#;
            let fresh = format!("objectName: db-{}\nobjectType: secret\nobjectVersion: v{tick}", tick % 5);
            let _ = p.mount(&sp_attrs(&[fresh.as_str()]), wrong).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    server.abort();
    p.stop().await;
    running.stop().await;
    ns.finish().await.unwrap();
}
