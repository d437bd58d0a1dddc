//! Keys and certificates from files: PEM private keys, the key Secrets the sealed-secrets controller
//! keeps (a `kubernetes.io/tls` Secret, or a `v1` List of them, as `kubectl get secret -o yaml` backs
//! them up), and sealing certificates from a file or an https URL.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use arcseal_crypto::{Certificate, PrivateKey};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Location, Result};
use crate::input::{self, Source};
use crate::manifest::SecretOutput;

/// Label the controller puts on its key Secrets.
pub const KEY_LABEL: &str = "sealedsecrets.bitnami.com/sealed-secrets-key";
/// Value of [`KEY_LABEL`] on keys in use.
pub const KEY_LABEL_ACTIVE: &str = "active";
/// Largest certificate accepted from a URL.
const MAX_CERT_BYTES: u64 = 1 << 20;

/// Reads every private key in `path`: a PEM file, or a YAML/JSON key Secret backup (one Secret,
/// several documents, or a `v1` List).
pub fn private_keys_from_file(path: &Path) -> Result<Vec<PrivateKey>> {
    Ok(key_pairs_from_file(path)?.into_iter().map(|(key, _)| key).collect())
}

/// Reads every private key in `path` with its certificate when the file has one (a key Secret's
/// `tls.crt`, or a CERTIFICATE block next to a PEM key).
pub fn key_pairs_from_file(path: &Path) -> Result<Vec<(PrivateKey, Option<Certificate>)>> {
    key_pairs_from_source(&Source::read(Some(path))?)
}

/// Reads every private key in an already read source.
pub fn private_keys_from_source(source: &Source) -> Result<Vec<PrivateKey>> {
    Ok(key_pairs_from_source(source)?.into_iter().map(|(key, _)| key).collect())
}

/// Reads every private key, with its certificate when there is one, in an already read source.
pub fn key_pairs_from_source(source: &Source) -> Result<Vec<(PrivateKey, Option<Certificate>)>> {
    let at = source.location();
    if source.bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let key = PrivateKey::from_pem(&source.bytes)
            .map_err(|e| Error::Key { at: Box::new(at.clone()), source: e })?;
        let cert = Certificate::from_pem(&source.bytes).ok().filter(|c| c.fingerprint() == key.fingerprint());
        return Ok(vec![(key, cert)]);
    }
    let mut keys = Vec::new();
    for doc in input::documents(source)? {
        let value = &doc.value.0;
        let kind = value.get("kind").and_then(Value::as_str);
        if kind != Some("Secret") {
            return Err(Error::input(
                &doc.at,
                "not a key Secret; give PEM files or the controller's key Secrets (kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml)",
            ));
        }
        let meta = value.get("metadata");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
        let ns = meta.and_then(|m| m.get("namespace")).and_then(Value::as_str);
        let at = doc.at.object("Secret", ns, name).item("tls.key");
        let encoded =
            value.get("data").and_then(|d| d.get("tls.key")).and_then(Value::as_str).ok_or_else(|| {
                Error::input(&at, "the Secret has no data.tls.key; is it a sealed-secrets key Secret?")
            })?;
        let pem = Zeroizing::new(
            arcseal_crypto::decode_base64(encoded)
                .map_err(|_| Error::input(&at, "tls.key is not valid base64"))?,
        );
        let key = PrivateKey::from_pem(&pem).map_err(|e| Error::Key { at: Box::new(at), source: e })?;
        let cert = value
            .get("data")
            .and_then(|d| d.get("tls.crt"))
            .and_then(Value::as_str)
            .and_then(|c| arcseal_crypto::decode_base64(c).ok())
            .and_then(|pem| Certificate::from_pem(&pem).ok())
            .filter(|c| c.fingerprint() == key.fingerprint());
        keys.push((key, cert));
    }
    if keys.is_empty() {
        return Err(Error::input(&at, "holds no private key"));
    }
    Ok(keys)
}

/// Reads a sealing certificate from a file, or fetches it over https (`http://` is refused: a
/// certificate fetched in clear text could be anyone's).
pub fn certificate(spec: &str) -> Result<Certificate> {
    let at = Location::source(spec);
    let bytes = if spec.starts_with("https://") {
        fetch(spec)?
    } else if spec.starts_with("http://") {
        return Err(Error::input(
            &at,
            "refusing to fetch a sealing certificate over plain http; use https or a file",
        ));
    } else {
        read_capped(Path::new(spec), MAX_CERT_BYTES)?
    };
    Certificate::from_pem(&bytes).map_err(|e| Error::Cert { at: Box::new(at), source: e })
}

/// Reads at most `max` bytes of `path`; a larger file is refused (it is not what the flag wants).
pub fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path.display(), e))?;
    if bytes.len() as u64 > max {
        return Err(Error::input(
            &Location::source(path.display().to_string()),
            format!("larger than {} KiB; that is not a certificate file (give the PEM file)", max >> 10),
        ));
    }
    Ok(bytes)
}

/// A redirect policy that never leaves https: a certificate or an answer that arrived over plain
/// http after a redirect could be anyone's.
pub fn https_only_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.url().scheme() != "https" {
            let to = attempt.url().clone();
            attempt.error(format!("refusing a redirect from https to {}", to.scheme()))
        } else if attempt.previous().len() >= 5 {
            attempt.error("more than 5 redirects")
        } else {
            attempt.follow()
        }
    })
}

fn fetch(url: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let at = Location::source(url);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(https_only_redirects())
        .https_only(true)
        .build()
        .map_err(|e| Error::input(&at, format!("cannot set up HTTPS: {e}")))?;
    let response = client.get(url).send().map_err(|e| Error::input(&at, format!("fetch failed: {e}")))?;
    if !response.status().is_success() {
        return Err(Error::input(&at, format!("fetch failed: HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    response
        .take(MAX_CERT_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::input(&at, format!("fetch failed: {e}")))?;
    if body.len() as u64 > MAX_CERT_BYTES {
        return Err(Error::input(&at, "response larger than 1 MiB; that is not a certificate"));
    }
    Ok(body)
}

/// The key Secret the sealed-secrets controller would keep for `key`: `kubernetes.io/tls`, label
/// `active`, named `sealed-secrets-key<first 5 hex digits of the fingerprint>` like its generateName.
pub fn key_secret(key: &PrivateKey, cert: &Certificate, namespace: &str) -> Result<SecretOutput> {
    let pem = key
        .to_pkcs1_pem()
        .map_err(|e| Error::Key { at: Box::new(Location::source("generated key")), source: e })?;
    let mut data = BTreeMap::new();
    data.insert(
        "tls.crt".to_owned(),
        Zeroizing::new(arcseal_crypto::encode_base64(cert.to_pem().as_bytes())),
    );
    data.insert("tls.key".to_owned(), Zeroizing::new(arcseal_crypto::encode_base64(pem.as_bytes())));
    let suffix: String = key.fingerprint().to_string().chars().take(5).collect();
    Ok(SecretOutput {
        api_version: "v1",
        kind: "Secret",
        metadata: ObjectMeta {
            name: Some(format!("sealed-secrets-key{suffix}")),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(KEY_LABEL.to_owned(), KEY_LABEL_ACTIVE.to_owned())])),
            ..ObjectMeta::default()
        },
        immutable: None,
        type_: Some("kubernetes.io/tls".to_owned()),
        data,
    })
}
