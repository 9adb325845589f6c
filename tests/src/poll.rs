//! Waiting without sleeping blindly: poll a condition until it holds or a
//! deadline passes, then fail with a message saying what was awaited.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every `interval`-ish (50 ms) until it returns `Some`, or
/// fails after `timeout` with `what` and the last observed state.
pub async fn until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            let detail = last_error
                .map(|e| format!(" (last error: {e:#})"))
                .unwrap_or_default();
            anyhow::bail!("timed out after {timeout:?} waiting for {what}{detail}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
