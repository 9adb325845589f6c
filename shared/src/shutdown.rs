//! The one stop signal of both binaries: a [`Shutdown`] handle that SIGTERM,
//! ctrl-c ([`Shutdown::on_os_signal`]) or a test ([`Shutdown::trigger`]) fires,
//! and that every task holding a clone can await ([`Shutdown::wait`]).
//!
//! Guarantees: once triggered it stays triggered; a clone made, or a wait
//! begun, after the trigger completes at once (it is a `watch`, not a
//! one-shot event); triggering is idempotent.

use tokio::sync::watch;

/// A cloneable, awaitable stop request.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Default for Shutdown {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder to stop (idempotent).
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the stop is requested (at once if it already was).
    pub async fn wait(&self) {
        self.owned_wait().await;
    }

    /// [`Shutdown::wait`] as an owned `'static` future, for servers that take one.
    pub fn owned_wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            // An error means every sender is gone: nobody can stop us later,
            // so treat it as stopped rather than waiting forever.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// The underlying receiver, for loops that `select!` on `changed()`.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }

    /// Triggers this handle when the process gets SIGTERM or ctrl-c.
    pub fn on_os_signal(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            signal().await;
            this.trigger();
        });
    }
}

/// Completes when the process is asked to stop (SIGTERM or SIGINT).
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_begun_after_the_trigger_completes_at_once() {
        let shutdown = Shutdown::new();
        let early = shutdown.owned_wait();
        shutdown.trigger();
        early.await;
        shutdown.clone().wait().await;
        assert!(shutdown.is_triggered());
    }

    #[tokio::test]
    async fn a_clone_triggers_every_holder() {
        let shutdown = Shutdown::new();
        let waiter = tokio::spawn(shutdown.owned_wait());
        shutdown.clone().trigger();
        waiter.await.expect("waiter ends");
        assert!(*shutdown.subscribe().borrow());
    }
}
