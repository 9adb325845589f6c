//! A stop signal shared by the ingress's tasks: the HTTP server, the registry
//! watcher and the readiness probe all end when it fires.
//!
//! Guarantee: once triggered it stays triggered, and a listener created after
//! the trigger completes at once (it is a `watch`, not a one-shot event).

use tokio::sync::watch;

/// The sending side: [`StopSignal::trigger`] asks every listener to stop.
#[derive(Debug, Clone)]
pub struct StopSignal(watch::Sender<bool>);

impl Default for StopSignal {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl StopSignal {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    pub fn listener(&self) -> StopListener {
        StopListener(self.0.subscribe())
    }
}

/// The receiving side, cheap to clone.
#[derive(Debug, Clone)]
pub struct StopListener(watch::Receiver<bool>);

impl StopListener {
    /// Completes once the signal fires (or its sender is gone).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// [`StopListener::stopped`] as an owned future, for servers that take one.
    pub async fn into_stopped(mut self) {
        self.stopped().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listener_created_after_the_trigger_completes_at_once() {
        let signal = StopSignal::new();
        let mut early = signal.listener();
        signal.trigger();
        early.stopped().await;
        signal.listener().into_stopped().await;
        assert!(signal.is_triggered());
    }
}
