//! Bounded polling: tests wait for something that happens on its own time
//! (a daemon answering, a rollout reaching a step), never forever.

use std::time::{Duration, Instant};

/// Calls `check` every `every` until it returns true, for at most `within`;
/// whether it did. The caller asserts, with its own message.
pub fn until(within: Duration, every: Duration, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while !check() {
        if started.elapsed() >= within {
            return false;
        }
        std::thread::sleep(every);
    }
    true
}

/// [`until`] for async checks, sleeping on tokio's clock between them so the
/// runtime's other tasks go on.
pub async fn until_async(
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> bool {
    let started = Instant::now();
    while !check().await {
        if started.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(every).await;
    }
    true
}

/// Polls `check` every 50 ms for up to `within`; fails the test with `what`
/// when it never holds.
pub async fn eventually(within: Duration, what: &str, check: impl AsyncFnMut() -> bool) {
    assert!(
        until_async(within, Duration::from_millis(50), check).await,
        "not within {within:?}: {what}"
    );
}

#[cfg(test)]
mod tests {
    use super::until;
    use std::time::Duration;

    #[test]
    fn until_is_bounded() {
        let mut calls = 0;
        assert!(until(Duration::from_secs(1), Duration::ZERO, || {
            calls += 1;
            calls == 3
        }));
        assert!(!until(
            Duration::from_millis(20),
            Duration::from_millis(5),
            || false
        ));
    }
}
