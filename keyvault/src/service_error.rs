//! What Key Vault or Entra ID said when a call failed.
//!
//! Both services answer errors as `{"error":{"code":"...","message":"...","innererror":{"code":"..."}}}`; neither
//! echoes a request body, so no secret value can appear in what is read here. The text is still cut short and
//! stripped of control characters before anyone logs it.

use std::fmt;
use std::time::Duration;

use azure_core::error::ErrorKind;
use serde::Deserialize;

/// Longest message kept.
const MAX_MESSAGE_CHARS: usize = 300;

/// An error answer, as far as a person or a retry loop needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status, when the service answered.
    pub status: Option<u16>,
    /// `code`, with the inner code after a slash when it differs (`Forbidden/SecretDisabled`).
    pub code: Option<String>,
    /// `message`, or the SDK's description when there was no answer.
    pub message: String,
    /// `Retry-After` in seconds, as Key Vault sends it with 429 and 503.
    pub retry_after: Option<Duration>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
    innererror: Option<Box<ErrorDetail>>,
}

/// `s` without control characters, at most `MAX_MESSAGE_CHARS` characters.
pub fn sanitize(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(MAX_MESSAGE_CHARS).collect()
}

impl ServiceError {
    /// Reads an SDK error.
    pub fn read(e: &azure_core::Error) -> Self {
        let ErrorKind::HttpResponse { status, error_code, raw_response } = e.kind() else {
            return Self { status: None, code: None, message: sanitize(&e.to_string()), retry_after: None };
        };
        let mut code = error_code.clone();
        let mut inner = None;
        let mut message = String::new();
        let mut retry_after = None;
        if let Some(raw) = raw_response {
            if let Ok(ErrorBody { error: Some(d) }) = serde_json::from_slice::<ErrorBody>(raw.body()) {
                code = d.code.or(code);
                message = d.message.unwrap_or_default();
                inner = d.innererror.and_then(|i| i.code);
            }
            retry_after = raw
                .headers()
                .get_optional_str(&azure_core::http::headers::RETRY_AFTER)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
        }
        let code = match (code, inner) {
            (Some(c), Some(i)) if c != i => Some(format!("{c}/{i}")),
            (Some(c), _) => Some(c),
            (None, i) => i,
        };
        Self {
            status: Some(u16::from(*status)),
            code: code.map(|c| sanitize(&c)),
            message: sanitize(&message),
            retry_after,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(status) => {
                write!(f, "HTTP {status} {}: {}", self.code.as_deref().unwrap_or_default(), self.message)
            }
            None => f.write_str(&self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::{Headers, RETRY_AFTER};
    use azure_core::http::{RawResponse, StatusCode};

    fn answer(status: StatusCode, retry: Option<&str>, body: &str) -> azure_core::Error {
        let mut headers = Headers::new();
        if let Some(r) = retry {
            headers.insert(RETRY_AFTER, r.to_owned());
        }
        let raw = RawResponse::from_bytes(status, headers, body.as_bytes().to_vec());
        azure_core::Error::new(
            ErrorKind::HttpResponse { status, error_code: None, raw_response: Some(Box::new(raw)) },
            "request failed",
        )
    }

    #[test]
    fn reads_key_vault_error_bodies() {
        let e = answer(
            StatusCode::Forbidden,
            None,
            r#"{"error":{"code":"Forbidden","message":"Operation get is not enabled on this object.\n","innererror":{"code":"SecretDisabled"}}}"#,
        );
        let s = ServiceError::read(&e);
        assert_eq!(s.status, Some(403));
        assert_eq!(s.code.as_deref(), Some("Forbidden/SecretDisabled"));
        assert_eq!(
            s.to_string(),
            "HTTP 403 Forbidden/SecretDisabled: Operation get is not enabled on this object."
        );
        let throttled = ServiceError::read(&answer(StatusCode::TooManyRequests, Some("7"), "not json"));
        assert_eq!((throttled.status, throttled.retry_after), (Some(429), Some(Duration::from_secs(7))));
        assert_eq!(throttled.code, None);
    }

    proptest::proptest! {
        #[test]
        fn any_body_gives_a_short_clean_text(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let text = String::from_utf8_lossy(&body).into_owned();
            let retry: String = text.chars().filter(|c| c.is_ascii_graphic()).take(5).collect();
            let s = ServiceError::read(&answer(StatusCode::BadRequest, Some(&retry), &text));
            proptest::prop_assert!(s.message.chars().count() <= MAX_MESSAGE_CHARS);
            proptest::prop_assert!(!s.to_string().chars().any(char::is_control));
        }
    }
}
