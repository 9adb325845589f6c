//! The Prometheus registry and the admin HTTP server.
//!
//! The admin server answers `/metrics` (text exposition format), `/healthz`
//! (200 while the process runs, 503 with the reason once it is marked
//! unhealthy: it is about to exit) and `/readyz` (200 only while the
//! [`Readiness`] flag is set, 503 with the reason otherwise). It binds its own port so that
//! scraping never competes with webhook traffic.
//!
//! Metric names follow Prometheus conventions (snake_case, base units,
//! `_total`, `_seconds`); labels are low-cardinality by construction: never a
//! message id or a phone number.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{Encoder, Registry, TextEncoder};
use warp::http::StatusCode;
use warp::{Filter, Reply};

/// Latency buckets in seconds, from 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A shared "ready to serve" flag for `/readyz`, with the reason when not
/// ready, and the reason the process is unhealthy, for `/healthz`.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<ReadinessState>);

#[derive(Debug, Default)]
struct ReadinessState {
    ready: AtomicBool,
    not_ready: Mutex<Option<String>>,
    unhealthy: Mutex<Option<String>>,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        if ready {
            *lock(&self.0.not_ready) = None;
        }
        self.0.ready.store(ready, Ordering::Relaxed);
    }
    /// Not ready, and why (shown by `/readyz`).
    pub fn set_not_ready(&self, why: impl Into<String>) {
        *lock(&self.0.not_ready) = Some(why.into());
        self.0.ready.store(false, Ordering::Relaxed);
    }
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Relaxed)
    }
    /// Why the process is not ready, when it said.
    pub fn not_ready_reason(&self) -> Option<String> {
        lock(&self.0.not_ready).clone()
    }
    /// Unhealthy for good (`/healthz` answers 503 from now on), and not ready.
    pub fn set_unhealthy(&self, why: impl Into<String>) {
        let why = why.into();
        *lock(&self.0.unhealthy) = Some(why.clone());
        self.set_not_ready(why);
    }
    /// Why the process is unhealthy, if it is.
    pub fn unhealthy(&self) -> Option<String> {
        lock(&self.0.unhealthy).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Renders every metric in `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut buf = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&registry.gather(), &mut buf) {
        tracing::warn!(cause = %err, "failed to encode metrics");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// The admin routes: `/metrics`, `/healthz`, `/readyz` (anything else is
/// rejected, for the caller's recovery), for a server of the caller's choice.
pub fn admin_routes(
    registry: Registry,
    readiness: Readiness,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
+ Clone
+ Send
+ Sync
+ 'static {
    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .map(move || {
            warp::reply::with_header(
                render(&registry),
                "content-type",
                "text/plain; version=0.0.4",
            )
            .into_response()
        });
    let health = readiness.clone();
    let healthz =
        warp::path("healthz")
            .and(warp::path::end())
            .map(move || match health.unhealthy() {
                None => warp::reply::with_status("ok".to_owned(), StatusCode::OK).into_response(),
                Some(why) => warp::reply::with_status(
                    format!("unhealthy: {why}"),
                    StatusCode::SERVICE_UNAVAILABLE,
                )
                .into_response(),
            });
    let readyz = warp::path("readyz").and(warp::path::end()).map(move || {
        if readiness.is_ready() {
            return warp::reply::with_status("ready".to_owned(), StatusCode::OK).into_response();
        }
        let text = match readiness.not_ready_reason() {
            Some(why) => format!("not ready: {why}"),
            None => "not ready".to_owned(),
        };
        warp::reply::with_status(text, StatusCode::SERVICE_UNAVAILABLE).into_response()
    });
    metrics.or(healthz).unify().or(readyz).unify()
}

/// Binds the admin server on `addr` (port 0 picks a free port) and returns
/// the bound address and the server future, which ends when `shutdown` does.
/// (warp's own server: no header timeout, no connection cap; the ingress
/// serves [`admin_routes`] with its own connection loop instead.)
pub fn admin_server(
    addr: SocketAddr,
    registry: Registry,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, impl Future<Output = ()> + Send)> {
    let routes = admin_routes(registry, readiness);
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let bound = listener.local_addr()?;
    let server = warp::serve(routes)
        .incoming(listener)
        .graceful(shutdown)
        .run();
    Ok((bound, server))
}
