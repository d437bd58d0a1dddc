//! Admission control for the decrypting routes (`/v1/verify`, `/v1/rotate`): what a caller may spend before the
//! controller reads its body, and how much RSA work its body may cost.
//!
//! Order, per request: a request token from the caller's own bucket (no body read yet), a body slot (bounds memory:
//! at most `max_bodies_in_flight` bodies of at most 2 MiB are buffered at once, `max_bodies_per_client` of them for
//! one caller), then the body, then one item token per RSA operation the body asks for, from the caller's item
//! bucket and from the controller-wide one. A caller that floods spends its own buckets; others keep theirs. The
//! controller-wide item bucket bounds the CPU all callers together can take from reconciles.
//!
//! A caller is its peer address, plus the last `X-Forwarded-For` hop when there is one: requests relayed by the
//! API server's service proxy (how kubeseal reaches the controller) all come from the API server, which appends
//! the real client's address. A client that forges the header only splits itself into more callers, each still
//! bounded by the controller-wide item bucket and the connection caps (see SECURITY.md).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits of the HTTP API. `Default` holds the documented defaults.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers (`--http-header-timeout`).
    pub header_timeout: Duration,
    /// Time a client has to send a request's body (`--http-body-timeout`).
    pub body_timeout: Duration,
    /// Open connections at most (`--http-max-connections`).
    pub max_connections: usize,
    /// Open connections from one peer address at most.
    pub max_connections_per_client: usize,
    /// Bodies buffered at once, all callers.
    pub max_bodies_in_flight: usize,
    /// Bodies buffered at once for one caller.
    pub max_bodies_per_client: usize,
    /// Requests per second per caller (sealed-secrets' `--rate-limit`).
    pub request_rate: f64,
    /// Burst of `request_rate` (`--rate-limit-burst`).
    pub request_burst: u32,
    /// Items (RSA operations) per second per caller (`--rate-limit-items`).
    pub item_rate: f64,
    /// Burst of `item_rate`; also the most items one request may carry.
    pub item_burst: u32,
    /// Items per second for all callers together (`--rate-limit-items-total`).
    pub total_item_rate: f64,
    /// Burst of `total_item_rate`.
    pub total_item_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_connections_per_client: 64,
            max_bodies_in_flight: 16,
            max_bodies_per_client: 4,
            request_rate: 10.0,
            request_burst: 20,
            item_rate: 100.0,
            item_burst: 500,
            total_item_rate: 300.0,
            total_item_burst: 1000,
        }
    }
}

impl HttpLimits {
    /// The most items one request may carry: a request that can never be paid for is refused outright.
    pub fn max_items_per_request(&self) -> u32 {
        self.item_burst.min(self.total_item_burst).max(1)
    }
}

/// Why a request was turned away before any RSA work.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The caller's or the controller's bucket is empty: retry after this long.
    RateLimited(Duration),
    /// Every body slot is taken (many callers at once): retry soon.
    Busy,
    /// The request carries more items than one request may.
    TooManyItems {
        /// Items in the request.
        items: usize,
        /// The most allowed.
        max: u32,
    },
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Bucket { tokens: f64::from(burst.max(1)), last: now }
    }

    fn refill(&mut self, rate: f64, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst.max(1)));
        self.last = now;
    }

    /// How long until `n` tokens are there (zero: now).
    fn wait_for(&self, n: f64, rate: f64) -> Duration {
        if self.tokens >= n {
            Duration::ZERO
        } else if rate <= 0.0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_secs_f64((n - self.tokens) / rate)
        }
    }
}

struct Caller {
    requests: Bucket,
    items: Bucket,
    bodies: usize,
    last_seen: Instant,
}

/// Callers remembered at most; idle ones (full buckets) are forgotten first.
const MAX_CALLERS: usize = 4096;

/// The shared admission state of one HTTP API.
pub struct Admission {
    limits: HttpLimits,
    callers: Mutex<HashMap<String, Caller>>,
    total: Mutex<Bucket>,
    bodies: Arc<Semaphore>,
}

/// Held while a body is read and its work done; frees the body slots on drop.
pub struct BodyPermit {
    admission: Arc<Admission>,
    caller: String,
    _slot: OwnedSemaphorePermit,
}

impl Drop for BodyPermit {
    fn drop(&mut self) {
        if let Ok(mut callers) = self.admission.callers.lock()
            && let Some(c) = callers.get_mut(&self.caller)
        {
            c.bodies = c.bodies.saturating_sub(1);
        }
    }
}

/// The caller a request counts against (see the module doc).
pub fn caller_key(peer: SocketAddr, headers: &HeaderMap) -> String {
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|hop| !hop.is_empty());
    match forwarded {
        // Bounded: a header value is at most what hyper accepts, and only the last hop's first 64 bytes count.
        Some(hop) => format!("{}|{}", peer.ip(), hop.chars().take(64).collect::<String>()),
        None => peer.ip().to_string(),
    }
}

impl Admission {
    /// Admission with `limits`.
    pub fn new(limits: HttpLimits) -> Arc<Self> {
        let now = Instant::now();
        Arc::new(Admission {
            bodies: Arc::new(Semaphore::new(limits.max_bodies_in_flight.max(1))),
            total: Mutex::new(Bucket::full(limits.total_item_burst, now)),
            callers: Mutex::default(),
            limits,
        })
    }

    /// The limits.
    pub fn limits(&self) -> &HttpLimits {
        &self.limits
    }

    fn with_caller<T>(&self, key: &str, f: impl FnOnce(&mut Caller, &HttpLimits, Instant) -> T) -> T {
        let now = Instant::now();
        let l = &self.limits;
        let mut callers = self.callers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if callers.len() >= MAX_CALLERS && !callers.contains_key(key) {
            // Forget callers whose buckets have refilled: they have nothing left to remember.
            callers.retain(|_, c| {
                c.bodies > 0
                    || now.saturating_duration_since(c.last_seen).as_secs_f64()
                        < f64::from(l.request_burst) / l.request_rate.max(0.001)
                            + f64::from(l.item_burst) / l.item_rate.max(0.001)
            });
        }
        let caller = callers.entry(key.to_owned()).or_insert_with(|| Caller {
            requests: Bucket::full(l.request_burst, now),
            items: Bucket::full(l.item_burst, now),
            bodies: 0,
            last_seen: now,
        });
        caller.last_seen = now;
        f(caller, l, now)
    }

    /// Before the body is read: one request token and a body slot.
    pub fn admit(self: &Arc<Self>, key: &str) -> Result<BodyPermit, Refusal> {
        self.with_caller(key, |c, l, now| {
            c.requests.refill(l.request_rate, l.request_burst, now);
            let wait = c.requests.wait_for(1.0, l.request_rate);
            if !wait.is_zero() {
                return Err(Refusal::RateLimited(wait));
            }
            if c.bodies >= l.max_bodies_per_client.max(1) {
                return Err(Refusal::Busy);
            }
            let slot = self.bodies.clone().try_acquire_owned().map_err(|_| Refusal::Busy)?;
            c.requests.tokens -= 1.0;
            c.bodies += 1;
            Ok(slot)
        })
        .map(|slot| BodyPermit { admission: self.clone(), caller: key.to_owned(), _slot: slot })
    }

    /// After the body is parsed: one token per item from the caller's and the controller-wide item buckets, taken
    /// from both or from neither.
    pub fn charge_items(&self, key: &str, items: usize) -> Result<(), Refusal> {
        let max = self.limits.max_items_per_request();
        if items > max as usize {
            return Err(Refusal::TooManyItems { items, max });
        }
        // `items` <= max <= u32::MAX, so the conversion is exact.
        let n = f64::from(u32::try_from(items).unwrap_or(u32::MAX));
        let mut total = self.total.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.with_caller(key, |c, l, now| {
            c.items.refill(l.item_rate, l.item_burst, now);
            total.refill(l.total_item_rate, l.total_item_burst, now);
            let wait = c.items.wait_for(n, l.item_rate).max(total.wait_for(n, l.total_item_rate));
            if !wait.is_zero() {
                return Err(Refusal::RateLimited(wait));
            }
            c.items.tokens -= n;
            total.tokens -= n;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            request_rate: 0.001,
            request_burst: 3,
            item_rate: 0.001,
            item_burst: 10,
            total_item_rate: 0.001,
            total_item_burst: 15,
            max_bodies_per_client: 2,
            max_bodies_in_flight: 3,
            ..HttpLimits::default()
        }
    }

    #[test]
    fn one_callers_flood_leaves_the_others_their_requests() {
        let a = Admission::new(limits());
        let mut held = Vec::new();
        for _ in 0..2 {
            held.push(a.admit("flood").unwrap());
        }
        assert_eq!(a.admit("flood").err(), Some(Refusal::Busy), "two bodies at once per caller");
        drop(held);
        assert!(a.admit("flood").is_ok(), "a refusal for a body slot costs no request token");
        assert!(
            matches!(a.admit("flood"), Err(Refusal::RateLimited(_))),
            "three requests, then the bucket is dry"
        );
        assert!(a.admit("ci").is_ok(), "another caller still gets in");
    }

    #[test]
    fn items_are_charged_to_the_caller_and_to_the_controller() {
        let a = Admission::new(limits());
        assert_eq!(a.charge_items("x", 11), Err(Refusal::TooManyItems { items: 11, max: 10 }));
        a.charge_items("x", 10).unwrap();
        assert!(matches!(a.charge_items("x", 1), Err(Refusal::RateLimited(_))), "x spent its items");
        a.charge_items("y", 5).unwrap();
        let Err(Refusal::RateLimited(wait)) = a.charge_items("z", 1) else { panic!("the total is spent") };
        assert!(wait > Duration::from_secs(100), "the wait reflects the refill rate: {wait:?}");
        assert!(a.charge_items("z", 0).is_ok(), "nothing to decrypt costs nothing");
    }

    #[test]
    fn body_slots_are_shared_and_given_back() {
        let a = Admission::new(limits());
        let p1 = a.admit("a").unwrap();
        let p2 = a.admit("b").unwrap();
        let p3 = a.admit("c").unwrap();
        assert_eq!(a.admit("d").err(), Some(Refusal::Busy), "three bodies in flight at most");
        drop((p1, p2, p3));
        assert!(a.admit("d").is_ok());
    }

    #[test]
    fn the_caller_is_the_peer_plus_the_last_forwarded_hop() {
        let peer: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(caller_key(peer, &h), "10.0.0.1");
        h.append("x-forwarded-for", "203.0.113.9, 198.51.100.7".parse().unwrap());
        assert_eq!(caller_key(peer, &h), "10.0.0.1|198.51.100.7");
        h.append("x-forwarded-for", "192.0.2.1".parse().unwrap());
        assert_eq!(caller_key(peer, &h), "10.0.0.1|192.0.2.1");
    }
}
