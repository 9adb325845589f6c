//! The HTTP server: hyper's HTTP/1 connection handling around the warp
//! filters, plus the per-request log line and metrics.
//!
//! Why not `warp::serve`: warp 0.4's server sets no timer, so hyper's header
//! read timeout is not in effect and a client could hold a connection open by
//! sending headers slowly. Here each connection gets `header_read_timeout`
//! (bodies are bounded by the body reader in [`crate::routes`]).
//!
//! Guarantees: at most `max_connections` connections are served at once; a
//! request head over about [`MAX_HEAD_BYTES`] gets 431, never reaching a handler; on
//! stop, the listener closes first, in-flight requests finish
//! (idle keep-alive connections are closed), up to `drain_timeout`; every
//! answered request produces exactly one log line and one count in
//! `inboxflow_ingress_requests_total`, labelled with a fixed route name.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use shared::shutdown::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use warp::Filter;
use warp::http::{HeaderValue, Request, StatusCode, header};
use warp::reply::Response;

use crate::handlers::Outcome;
use crate::metrics::{IngressMetrics, RouteLabel};

/// hyper's read-buffer limit, which bounds the request head (request line
/// and headers): a head still incomplete once the buffer holds this much is
/// answered `431 Request Header Fields Too Large` and the connection closed.
/// hyper checks between reads, so a head of up to about twice this size may
/// still be accepted. Kapso and Meta send well under 8 KiB; hyper's default
/// (about 400 KiB) let a single header of 100 KiB through. Bodies are not
/// affected: they stream through the buffer (see [`crate::routes`]).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
}

/// Serves `filter` on `listener` until `stop` fires, then drains.
pub async fn serve<F>(
    listener: TcpListener,
    filter: F,
    options: ServerOptions,
    metrics: IngressMetrics,
    stop: Shutdown,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
    F::Future: Send,
{
    let service = TowerToHyperService::new(warp::service(filter));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    while let Some((stream, slot)) = next_connection(&listener, &slots, &stop).await {
        let service = service.clone();
        let metrics = metrics.clone();
        let observed = hyper::service::service_fn(move |req: Request<Incoming>| {
            let service = service.clone();
            let metrics = metrics.clone();
            async move { observe(req, &service, &metrics).await }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), observed);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(cause = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    drain(graceful, options.drain_timeout).await;
}

/// Waits for a free connection slot, then for a client; `None` once `stop`
/// fires. At the limit, new clients wait in the listen backlog.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    stop: &Shutdown,
) -> Option<(TcpStream, OwnedSemaphorePermit)> {
    let slot = tokio::select! {
        biased;
        () = stop.wait() => return None,
        slot = Arc::clone(slots).acquire_owned() => slot.ok()?,
    };
    loop {
        tokio::select! {
            biased;
            () = stop.wait() => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => return Some((stream, slot)),
                Err(err) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(cause = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Lets in-flight requests finish, up to `timeout`.
async fn drain(graceful: GracefulShutdown, timeout: Duration) {
    tracing::info!("listener closed; waiting for in-flight requests");
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(timeout = ?timeout, "in-flight requests did not finish in time");
    }
}

/// Decrements the in-flight gauge even when the request future is dropped.
struct InFlight(prometheus::IntGauge);

impl InFlight {
    fn enter(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn observe<S>(
    req: Request<Incoming>,
    service: &S,
    metrics: &IngressMetrics,
) -> Result<Response, Infallible>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>,
{
    let route = RouteLabel::classify(req.method(), req.uri().path());
    let _in_flight = InFlight::enter(metrics.in_flight());
    let started = Instant::now();
    let mut response = service.call(req).await?;
    let status = response.status();
    if status == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(allow) = route.allow() {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
    }
    let elapsed = started.elapsed();
    metrics.request_done(route, status.as_u16(), elapsed.as_secs_f64());
    let outcome = response
        .extensions()
        .get::<Outcome>()
        .copied()
        .unwrap_or_default();
    let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    if route == RouteLabel::Health {
        tracing::debug!(
            route = route.as_str(),
            status = status.as_u16(),
            latency_ms,
            "request"
        );
    } else {
        tracing::info!(
            route = route.as_str(),
            status = status.as_u16(),
            latency_ms,
            bytes = outcome.bytes,
            records = outcome.records,
            "request"
        );
    }
    Ok(response)
}
