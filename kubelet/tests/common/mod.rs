//! Helpers shared by the kubelet's integration tests.

use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns `Some`, or panics naming `what` after
/// `timeout`: the components under test converge asynchronously.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
