//! How long a caller waits for a throttled (429) or failing (5xx, unreachable) Key Vault: the CSI provider per
//! mounted object, the unseal controller and the CLI per sealing-key operation. The SDK's own retry is off for these
//! clients (it would sleep for any `Retry-After` the service sends); each attempt waits `Retry-After`, or a doubling
//! backoff when there is none, while the total wait stays under [`RetryPolicy::max_total_wait`].

use std::time::Duration;

/// Bounds on waiting for a throttled or failing Key Vault.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// The longest total time one operation may spend waiting between attempts.
    pub max_total_wait: Duration,
    /// First backoff when the service gives no Retry-After.
    pub initial_backoff: Duration,
    /// Most attempts.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_total_wait: Duration::from_secs(20),
            initial_backoff: Duration::from_millis(250),
            max_attempts: 6,
        }
    }
}
