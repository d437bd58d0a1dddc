//! When a sealing key is due to be replaced: the one rule the controller acts on and `arcseal status` reports.

use std::time::{Duration, SystemTime};

/// When the next sealing key is due, given the newest key's NotBefore; `None`: no renewal planned.
///
/// - no key yet: now;
/// - a `cutoff` (`--key-cutoff-time`) newer than the newest key: at the cutoff, or now once it has passed;
/// - otherwise the newest key's NotBefore plus `renew_period` (`--key-renew-period`); a zero period disables
///   renewal, though a future cutoff still schedules one.
///
/// Certificates carry whole seconds, so a key made within the cutoff's second satisfies it.
pub fn next_key_due(
    renew_period: Duration,
    cutoff: Option<SystemTime>,
    newest: Option<SystemTime>,
    now: SystemTime,
) -> Option<SystemTime> {
    let Some(newest) = newest else { return Some(now) };
    let cutoff = cutoff
        .map(|c| {
            let since = c.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
            SystemTime::UNIX_EPOCH + Duration::from_secs(since.as_secs())
        })
        .filter(|c| newest < *c);
    if let Some(cutoff) = cutoff
        && cutoff <= now
    {
        return Some(now);
    }
    if renew_period.is_zero() {
        return cutoff;
    }
    let due = newest + renew_period;
    Some(cutoff.map_or(due, |c| c.min(due)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_follows_period_and_cutoff() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(next_key_due(h(720), None, None, t0), Some(t0), "no key: make one now");
        assert_eq!(next_key_due(h(720), None, Some(t0), t0), Some(t0 + h(720)));
        assert_eq!(next_key_due(h(0), None, Some(t0), t0 + h(10_000)), None, "0 disables");
        // A cutoff in the past newer than the newest key: renew now.
        assert_eq!(next_key_due(h(0), Some(t0 + h(1)), Some(t0), t0 + h(2)), Some(t0 + h(2)));
        assert_eq!(next_key_due(h(720), Some(t0 + h(1)), Some(t0), t0 + h(2)), Some(t0 + h(2)));
        // A future cutoff before the period ends: renew at the cutoff; with no period, at the cutoff too.
        assert_eq!(next_key_due(h(720), Some(t0 + h(5)), Some(t0), t0), Some(t0 + h(5)));
        assert_eq!(next_key_due(h(0), Some(t0 + h(5)), Some(t0), t0), Some(t0 + h(5)));
        // A future cutoff after the period ends does not delay the period.
        assert_eq!(next_key_due(h(1), Some(t0 + h(5)), Some(t0), t0), Some(t0 + h(1)));
        // A key made within the cutoff's second satisfies it (NotBefore has whole seconds).
        let sub_second = t0 + h(5) + Duration::from_millis(700);
        assert_eq!(next_key_due(h(0), Some(sub_second), Some(t0 + h(5)), t0 + h(6)), None);
        // A cutoff older than the newest key is satisfied.
        assert_eq!(next_key_due(h(720), Some(t0 - h(5)), Some(t0), t0), Some(t0 + h(720)));
    }
}
