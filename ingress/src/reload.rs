//! Reloads the workspace registry without a restart: on SIGHUP, and when the
//! file's modification time or length changes (checked every
//! `registry_poll_interval`).
//!
//! Guarantee: a reload that fails (unreadable file, bad TOML, invalid
//! content) keeps the previous registry and logs an error; the process never
//! runs without a valid registry. Write the file atomically (write a temporary
//! file, then rename) so that a half-written file is never seen.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::MissedTickBehavior;

use crate::metrics::{IngressMetrics, ReloadResult, ReloadTrigger};
use crate::registry::{Registry, RegistryHandle};
use shared::shutdown::Shutdown;

/// What the watcher compares to notice a changed file.
type Stamp = Option<(SystemTime, u64)>;

async fn stamp(path: &Path) -> Stamp {
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Watches the registry file until `stop` fires.
pub async fn watch_registry(
    path: PathBuf,
    handle: RegistryHandle,
    interval: Duration,
    metrics: IngressMetrics,
    stop: Shutdown,
) {
    let mut hangups = hangup_signals();
    let mut last = stamp(&path).await;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let trigger = tokio::select! {
            biased;
            () = stop.wait() => return,
            Some(()) = recv_hangup(&mut hangups) => ReloadTrigger::Sighup,
            _ = tick.tick() => {
                let now = stamp(&path).await;
                if now == last {
                    continue;
                }
                last = now;
                ReloadTrigger::FileChanged
            }
        };
        reload(&path, &handle, &metrics, trigger).await;
    }
}

async fn reload(
    path: &Path,
    handle: &RegistryHandle,
    metrics: &IngressMetrics,
    trigger: ReloadTrigger,
) {
    let trigger = trigger.as_str();
    let owned = path.to_owned();
    let loaded = tokio::task::spawn_blocking(move || Registry::load(&owned)).await;
    match loaded {
        Ok(Ok(registry)) => {
            tracing::info!(
                trigger,
                workspaces = registry.workspace_count(),
                phone_numbers = registry.phone_number_count(),
                "workspace registry reloaded"
            );
            handle.replace(registry);
            metrics.registry_reload(ReloadResult::Ok);
        }
        Ok(Err(err)) => {
            tracing::error!(trigger, cause = %err, "registry reload failed; keeping the previous registry");
            metrics.registry_reload(ReloadResult::Error);
        }
        Err(err) => {
            tracing::error!(trigger, cause = %err, "registry reload task failed; keeping the previous registry");
            metrics.registry_reload(ReloadResult::Error);
        }
    }
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangup_signals() -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            tracing::warn!(cause = %err, "cannot listen for SIGHUP; registry reloads on file change only");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signals() -> Hangups {
    None
}

/// The next SIGHUP; pending forever when signals are unavailable.
#[cfg(unix)]
async fn recv_hangup(hangups: &mut Hangups) -> Option<()> {
    match hangups {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangups) -> Option<()> {
    std::future::pending().await
}
