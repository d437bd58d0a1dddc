//! AdmissionReviews the API server forwards from anyone who may create SealedSecrets: parsing and the verdict must
//! never panic, and the RSA work stays within the per-review budget (max_items + keys).
#![no_main]
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use arcseal_controller::unseal::keys::{KeySet, LoadedKey};
use arcseal_controller::unseal::webhook::{self, WebhookLimits, review::AdmissionReview};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static KeySet {
    static KEYS: OnceLock<KeySet> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = arcseal_crypto::PrivateKey::generate(2048).expect("a key");
        KeySet::new(vec![LoadedKey { key, cert: None, secret_name: "fuzz".into() }])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(review) = AdmissionReview::parse(data) else { return };
    let limits = WebhookLimits { max_items: 8, ..WebhookLimits::default() };
    let ops = AtomicU64::new(0);
    let verdict = webhook::check_request(&review.request, keys(), &limits, &ops);
    assert!(ops.load(Ordering::Relaxed) <= 8 + 1, "RSA budget exceeded");
    let _ = review.answer(webhook::review::AdmissionResponse::new(
        &review.request.uid,
        verdict.allowed,
        verdict.message,
        verdict.warnings,
    ));
});
