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

/// A controller's HTTP API.
pub struct Controller {
    base: String,
    http: reqwest::blocking::Client,
}

impl Controller {
    /// The API at `url` (e.g. `http://127.0.0.1:8080`).
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
            .build()
            .map_err(|e| Error::input(&at, format!("cannot set up HTTP: {e}")))?;
        Ok(Controller { base: url.trim_end_matches('/').to_owned(), http })
    }

    /// The controller's current sealing certificate.
    pub fn certificate(&self) -> Result<Certificate> {
        let url = format!("{}/v1/cert.pem", self.base);
        let (status, body) = self.call(self.http.get(&url), &url)?;
        if status != 200 {
            return Err(Error::input(&Location::source(&url), format!("HTTP {status}")));
        }
        Certificate::from_pem(&body)
            .map_err(|e| Error::Cert { at: Box::new(Location::source(url)), source: e })
    }

    /// `POST /v1/verify` with one SealedSecret document.
    pub fn verify(&self, document: &Value, at: &Location) -> Result<Verdict> {
        let url = format!("{}/v1/verify", self.base);
        let (status, body) = self.call(
            self.http.post(&url).header("content-type", "application/json").body(document.to_string()),
            &url,
        )?;
        match status {
            200 => Ok(Verdict::Opens),
            409 => Ok(Verdict::DoesNotOpen),
            400 => Ok(Verdict::Invalid(short(&body))),
            other => Err(Error::input(at, format!("{url} answered HTTP {other}: {}", short(&body)))),
        }
    }

    /// `POST /v1/rotate` with one SealedSecret document: the same object re-sealed to the newest key.
    pub fn rotate(&self, document: &Value, at: &Location) -> Result<SealedSecret> {
        let url = format!("{}/v1/rotate", self.base);
        let (status, body) = self.call(
            self.http.post(&url).header("content-type", "application/json").body(document.to_string()),
            &url,
        )?;
        if status != 200 {
            let why =
                if status == 409 { "the controller cannot decrypt it".to_owned() } else { short(&body) };
            return Err(Error::input(at, format!("{url} answered HTTP {status}: {why}")));
        }
        let value: Value = serde_json::from_slice(&body)
            .map_err(|_| Error::input(at, format!("{url} did not answer with a SealedSecret")))?;
        SealedSecret::from_value(&value, at)
    }

    fn call(&self, request: reqwest::blocking::RequestBuilder, url: &str) -> Result<(u16, Vec<u8>)> {
        let at = Location::source(url);
        let response = request.send().map_err(|e| Error::input(&at, format!("request failed: {e}")))?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        response
            .take(MAX_ANSWER_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| Error::input(&at, format!("reading the answer: {e}")))?;
        if body.len() as u64 > MAX_ANSWER_BYTES {
            return Err(Error::input(&at, "answer larger than 4 MiB"));
        }
        Ok((status, body))
    }
}

/// The first line of an answer, at most 200 characters (answers carry no plaintext, but keep it short).
fn short(body: &[u8]) -> String {
    String::from_utf8_lossy(body).lines().next().unwrap_or("").chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
