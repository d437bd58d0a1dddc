//! The controller's HTTP API as a client: `/v1/cert.pem`, `/v1/verify`, `/v1/rotate` (sealed-secrets'
//! API, served by arcseal's controller and by sealed-secrets' own). Reached over https, or over plain
//! http only on a loopback address (`kubectl port-forward`): a tampered `/v1/rotate` answer would put
//! someone else's ciphertext into the repository.

use std::io::Read;
use std::time::Duration;

use arcseal_crypto::Certificate;
use serde_json::Value;

use crate::error::{Error, Location, Result};
use crate::manifest::SealedSecret;

/// Largest answer read from the controller.
const MAX_ANSWER_BYTES: u64 = 4 << 20;

/// What `/v1/verify` said about one SealedSecret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 200: every item decrypts.
    Opens,
    /// 409: it does not decrypt with the controller's keys.
    DoesNotOpen,
    /// 400: the controller could not read it; its message.
    Invalid(String),
}

/// How long, in total, one run waits on the controller's rate limit (HTTP 429) before giving up.
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(300);
/// Longest single wait, whatever `Retry-After` says.
const MAX_SINGLE_WAIT: Duration = Duration::from_secs(30);

/// How requests reach the controller.
enum Transport {
    /// Its URL (https, or http on loopback).
    Direct { base: String, http: reqwest::blocking::Client },
    /// The API server's service proxy.
    Proxy(Box<crate::cluster::ServiceProxy>),
}

/// A controller's HTTP API.
pub struct Controller {
    transport: Transport,
    /// Total time this client may spend waiting on HTTP 429 answers.
    rate_limit_wait: Duration,
    waited: std::sync::Mutex<Duration>,
    /// Self-pacing after a 429: the least time between two requests, and when the last one started.
    /// Doubles on each 429 and shrinks slowly on success, so a run settles near the controller's rate
    /// instead of meeting a 429 (and a full wait) every few requests.
    pace: std::sync::Mutex<(Duration, Option<std::time::Instant>)>,
}

impl Controller {
    /// The API at `url` (e.g. `http://127.0.0.1:8080`). Redirects are not followed: the API never
    /// sends one, and one could lead off https.
    pub fn new(url: &str) -> Result<Controller> {
        let at = Location::source(url);
        let parsed = reqwest::Url::parse(url).map_err(|e| Error::input(&at, format!("not a URL: {e}")))?;
        let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]" | "::1"));
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => {
                return Err(Error::input(
                    &at,
                    "use https, or http only on a loopback address (kubectl port-forward): answers from /v1/rotate go into the repository",
                ));
            }
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::input(&at, format!("cannot set up HTTP: {e}")))?;
        Ok(Controller::with(Transport::Direct { base: url.trim_end_matches('/').to_owned(), http }))
    }

    /// The controller behind the API server's service proxy.
    pub fn through_proxy(proxy: crate::cluster::ServiceProxy) -> Controller {
        Controller::with(Transport::Proxy(Box::new(proxy)))
    }

    fn with(transport: Transport) -> Controller {
        Controller {
            transport,
            rate_limit_wait: DEFAULT_RATE_LIMIT_WAIT,
            waited: std::sync::Mutex::new(Duration::ZERO),
            pace: std::sync::Mutex::new((Duration::ZERO, None)),
        }
    }

    /// Sets the total time to wait on the controller's rate limit.
    pub fn rate_limit_wait(mut self, total: Duration) -> Controller {
        self.rate_limit_wait = total;
        self
    }

    fn url(&self, path: &str) -> String {
        match &self.transport {
            Transport::Direct { base, .. } => format!("{base}{path}"),
            Transport::Proxy(proxy) => format!("{} {path}", proxy.describe()),
        }
    }

    /// The controller's current sealing certificate, as PEM text.
    pub fn certificate_pem(&self) -> Result<Vec<u8>> {
        let url = self.url("/v1/cert.pem");
        let (status, body) = self.call("GET", "/v1/cert.pem", None)?;
        if status != 200 {
            return Err(Error::input(&Location::source(&url), format!("HTTP {status}: {}", short(&body))));
        }
        Ok(body)
    }

    /// The controller's current sealing certificate.
    pub fn certificate(&self) -> Result<Certificate> {
        let body = self.certificate_pem()?;
        Certificate::from_pem(&body)
            .map_err(|e| Error::Cert { at: Box::new(Location::source(self.url("/v1/cert.pem"))), source: e })
    }

    /// `POST /v1/verify` with one SealedSecret document.
    pub fn verify(&self, document: &Value, at: &Location) -> Result<Verdict> {
        let (status, body) = self.call("POST", "/v1/verify", Some(document.to_string().into_bytes()))?;
        match status {
            200 => Ok(Verdict::Opens),
            409 => Ok(Verdict::DoesNotOpen),
            400 => Ok(Verdict::Invalid(short(&body))),
            other => Err(Error::input(
                at,
                format!("{} answered HTTP {other}: {}", self.url("/v1/verify"), short(&body)),
            )),
        }
    }

    /// `POST /v1/rotate` with one SealedSecret document: the same object re-sealed to the newest key.
    /// The answer is not trusted: it must be a SealedSecret with exactly the items sent, each one line
    /// of standard base64 holding a value for a key of `modulus_len` bytes (when given).
    pub fn rotate(
        &self,
        document: &Value,
        at: &Location,
        modulus_len: Option<usize>,
    ) -> Result<SealedSecret> {
        let url = self.url("/v1/rotate");
        let (status, body) = self.call("POST", "/v1/rotate", Some(document.to_string().into_bytes()))?;
        if status != 200 {
            let why =
                if status == 409 { "the controller cannot decrypt it".to_owned() } else { short(&body) };
            return Err(Error::input(at, format!("{url} answered HTTP {status}: {why}")));
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| Error::input(at, format!("{url} did not answer with a SealedSecret")))?;
        let answer = SealedSecret::from_value(&value, at)?;
        let sent = SealedSecret::from_value(document, at)?;
        if answer.spec.encrypted_data.keys().ne(sent.spec.encrypted_data.keys()) {
            return Err(Error::input(
                at,
                format!(
                    "{url} answered with other items than were sent; nothing written (is it the controller?)"
                ),
            ));
        }
        for (item, v) in &answer.spec.encrypted_data {
            check_answer_value(v, modulus_len).map_err(|why| {
                Error::input(&at.item(item), format!("{url} answered a value that {why}; nothing written"))
            })?;
        }
        Ok(answer)
    }

    /// One request, waiting out HTTP 429 answers (honouring `Retry-After`) within the total budget.
    fn call(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<(u16, Vec<u8>)> {
        let mut backoff = Duration::from_millis(250);
        loop {
            self.keep_pace();
            let (status, retry_after, answer) = self.once(method, path, body.clone())?;
            self.adjust_pace(status == 429);
            if status != 429 {
                return Ok((status, answer));
            }
            let wait = retry_after.unwrap_or(backoff).min(MAX_SINGLE_WAIT);
            backoff = (backoff * 2).min(MAX_SINGLE_WAIT);
            {
                let mut waited = self.waited.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if *waited + wait > self.rate_limit_wait {
                    return Err(Error::input(
                        &Location::source(self.url(path)),
                        format!(
                            "the controller kept answering HTTP 429 (rate limited) after {} s of waiting in this \
                             run; rerun later, raise the wait with --rate-limit-wait, or raise the controller's limit",
                            waited.as_secs()
                        ),
                    ));
                }
                *waited += wait;
            }
            std::thread::sleep(wait);
        }
    }

    /// Sleeps until the pacing interval since the previous request has passed.
    fn keep_pace(&self) {
        let mut pace = self.pace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (interval, last) = *pace;
        if let Some(last) = last {
            let due = last + interval;
            let now = std::time::Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        pace.1 = Some(std::time::Instant::now());
    }

    fn adjust_pace(&self, limited: bool) {
        let mut pace = self.pace.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pace.0 = if limited {
            (pace.0 * 2).max(Duration::from_millis(20)).min(Duration::from_secs(2))
        } else {
            pace.0 * 15 / 16
        };
    }

    fn once(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Option<Duration>, Vec<u8>)> {
        let url = self.url(path);
        let at = Location::source(&url);
        match &self.transport {
            Transport::Proxy(proxy) => proxy.call(method, path, body),
            Transport::Direct { http, .. } => {
                let request = match body {
                    Some(b) => http.post(&url).header("content-type", "application/json").body(b),
                    None if method == "GET" => http.get(&url),
                    None => http.post(&url),
                };
                let response = request.send().map_err(|e| {
                    Error::input(&at, format!("request failed: {}", crate::cluster::error_chain(&e)))
                })?;
                let status = response.status().as_u16();
                let retry_after = retry_after(response.headers());
                let mut answer = Vec::new();
                response
                    .take(MAX_ANSWER_BYTES + 1)
                    .read_to_end(&mut answer)
                    .map_err(|e| Error::input(&at, format!("reading the answer: {e}")))?;
                if answer.len() as u64 > MAX_ANSWER_BYTES {
                    return Err(Error::input(&at, "answer larger than 4 MiB"));
                }
                Ok((status, retry_after, answer))
            }
        }
    }
}

/// Why a value from the controller cannot go into a file, if it cannot: it must be one line of
/// standard base64 (with padding) and hold a sealed value for a key of `modulus_len` bytes.
pub fn check_answer_value(value: &str, modulus_len: Option<usize>) -> std::result::Result<(), String> {
    if value.is_empty() || value.len() > 4 << 20 {
        return Err("is empty or too long".into());
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=') {
        return Err("is not one line of standard base64".into());
    }
    let raw = arcseal_crypto::decode_base64(value).map_err(|_| "is not valid standard base64".to_owned())?;
    let parts =
        arcseal_crypto::SealedValue::parse(&raw).map_err(|e| format!("is not a sealed value ({e})"))?;
    if let Some(len) = modulus_len
        && parts.rsa_ciphertext.len() != len
    {
        return Err(format!(
            "is sealed for a {}-bit key, not the controller's {}-bit certificate",
            parts.key_bits(),
            len * 8
        ));
    }
    Ok(())
}

/// The first line of an answer, at most 200 characters (answers carry no plaintext, but keep it short).
/// The `Retry-After` of an answer, in its seconds form (the HTTP-date form is not read).
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(body).lines().next().unwrap_or("").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_must_be_one_line_of_base64_for_the_key() {
        let key = arcseal_crypto::PrivateKey::generate(2048).unwrap();
        let good = arcseal_crypto::seal(key.public_key(), b"label", b"x").unwrap();
        assert!(check_answer_value(&good, Some(256)).is_ok());
        assert!(check_answer_value(&good, Some(512)).unwrap_err().contains("2048-bit"));
        let injected = format!("{good}\n  template:\n    data: {{}}");
        assert!(check_answer_value(&injected, Some(256)).unwrap_err().contains("one line"));
        assert!(check_answer_value("AAAA", None).unwrap_err().contains("not a sealed value"));
        assert!(check_answer_value("-_-_", None).is_err());
        assert!(check_answer_value("", None).is_err());
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(Controller::new("http://127.0.0.1:8080").is_ok());
        assert!(Controller::new("http://localhost:8080/").is_ok());
        assert!(Controller::new("https://sealed-secrets.example").is_ok());
        let err = Controller::new("http://sealed-secrets.example:8080").err().unwrap().to_string();
        assert!(err.contains("loopback"), "{err}");
        assert!(Controller::new("not a url").is_err());
    }
}
