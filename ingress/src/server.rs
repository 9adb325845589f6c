//! The HTTP server: hyper's HTTP/1 connection handling around warp filters,
//! for both listeners (webhooks and admin), plus the per-request log line
//! and metrics of the webhook listener.
//!
//! Why not `warp::serve`: it bounds neither the request head nor idle
//! keep-alive connections. Here each connection gets the keep-alive policy of
//! [`crate::keepalive`]: `header_read_timeout` runs only while a request head
//! arrives (bodies are bounded by the body reader in [`crate::routes`]), and
//! an idle connection is closed after `idle_timeout`, which every keep-alive
//! answer advertises (`Keep-Alive: timeout=N`, N one second under it). hyper's
//! own header timer is off: it also runs between requests and so closed idle
//! connections under clients reusing them (their requests got no answer).
//!
//! Guarantees: at most `max_connections` connections are served at once, at
//! most `max_connections_per_client` of them to one source IP address; a
//! connection over either cap is accepted, answered a fast `503` with
//! `Retry-After` and `Connection: close`, closed and counted in
//! `inboxflow_ingress_connections_rejected_total{listener,reason}`, with
//! bounded work ([`crate::admission`]), so it never waits in the listen
//! backlog. A request head over about [`MAX_HEAD_BYTES`] gets 431, never
//! reaching a handler. A response carrying `Connection: close` (a 401 does)
//! closes its connection. A request sent on a connection within its advertised
//! keep-alive timeout is answered: the server never closes an idle
//! connection sooner. On stop, the listener closes first, in-flight
//! requests finish (idle keep-alive connections are closed) up to
//! `drain_timeout`, and then every connection still open is closed: no
//! connection outlives the deadline. On the webhook listener, every answered
//! request produces exactly one log line and one count in
//! `inboxflow_ingress_requests_total`, labelled with a fixed route name; the
//! admin listener's requests are not counted there.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use shared::shutdown::Shutdown;
use tokio::net::{TcpListener, TcpStream};
use warp::Filter;
use warp::http::{HeaderValue, Request, StatusCode, header};
use warp::reply::Response;

use crate::admission::{Admission, Admitted, Refusals};
use crate::handlers::Outcome;
use crate::keepalive::{KeepAlive, Stage, Watch, WatchedIo};
use crate::metrics::{IngressMetrics, ListenerLabel, RouteLabel};

/// hyper's read-buffer limit, which bounds the request head (request line
/// and headers): a head still incomplete once the buffer holds this much is
/// answered `431 Request Header Fields Too Large` and the connection closed.
/// hyper checks between reads, so a head of up to about twice this size may
/// still be accepted. Kapso and Meta send well under 8 KiB; hyper's default
/// (about 400 KiB) let a single header of 100 KiB through. Bodies are not
/// affected: they stream through the buffer (see [`crate::routes`]).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// Connection-level limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// Which listener this is (metrics label; only webhooks count requests).
    pub listener: ListenerLabel,
    /// The head deadline and the idle timeout of each connection.
    pub keep_alive: KeepAlive,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// On stop: how long in-flight requests may take before every
    /// connection still open is closed.
    pub drain_timeout: Duration,
    /// The `Retry-After` of a refused connection's 503, in seconds.
    pub retry_after_secs: u64,
}

/// Serves `filter` on `listener` until `stop` fires, then drains and closes
/// every connection by `drain_timeout`.
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
    let deadline_passed = Shutdown::new();
    let admission = Admission::new(options.max_connections, options.max_connections_per_client);
    let refusals = Refusals::new(options.retry_after_secs);
    let observed = options.listener == ListenerLabel::Webhooks;
    while let Some((stream, peer)) = next_connection(&listener, &stop).await {
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(reason) => {
                metrics.connection_rejected(options.listener, reason);
                tracing::debug!(
                    listener = options.listener.as_str(),
                    reason = reason.as_str(),
                    "connection refused"
                );
                refusals.refuse(stream);
                continue;
            }
        };
        spawn_connection(
            stream,
            &service,
            &metrics,
            observed,
            options.keep_alive,
            slot,
            (&graceful, &deadline_passed),
        );
    }
    drop(listener);
    drain(graceful, options).await;
    deadline_passed.trigger();
}

/// Serves one admitted connection in its own task, under its keep-alive
/// deadlines, the graceful stop and the drain deadline.
fn spawn_connection<S>(
    stream: TcpStream,
    service: &S,
    metrics: &IngressMetrics,
    observed: bool,
    keep_alive: KeepAlive,
    slot: Admitted,
    (graceful, drain): (&GracefulShutdown, &Shutdown),
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send,
{
    let watch = Watch::new();
    let service = service.clone();
    let metrics = metrics.clone();
    let watched = Arc::clone(&watch);
    let handle = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (service, metrics, watch) = (service.clone(), metrics.clone(), watched.clone());
        async move {
            watch.request_started();
            let mut answer = if observed {
                observe(req, &service, &metrics).await
            } else {
                hyper::service::Service::call(&service, req).await
            };
            if let Ok(response) = answer.as_mut() {
                keep_alive.advertise(response);
            }
            watch.answered();
            answer
        }
    });
    let io = TokioIo::new(WatchedIo::new(stream, Arc::clone(&watch)));
    let connection = http1::Builder::new()
        // hyper's header timer also runs between requests: off (see above).
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, handle);
    let connection = graceful.watch(connection);
    let deadlines = Deadlines {
        watch,
        keep_alive,
        drain: drain.clone(),
    };
    tokio::spawn(run_connection(connection, slot, deadlines));
}

/// What may end a connection besides its client.
struct Deadlines {
    watch: Arc<Watch>,
    keep_alive: KeepAlive,
    /// Fires at the drain deadline on stop.
    drain: Shutdown,
}

/// Runs one connection until it ends, its head or idle deadline passes, or
/// the drain deadline passes (then drops it, which closes the socket); frees
/// its slot either way.
async fn run_connection<C>(connection: C, slot: Admitted, deadlines: Deadlines)
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::select! {
        ended = connection => if let Err(err) = ended {
            tracing::debug!(cause = %err, "connection ended with an error");
        },
        expired = deadlines.watch.expired(deadlines.keep_alive) => match expired {
            Stage::Idle => tracing::debug!("idle connection closed at its keep-alive timeout"),
            _ => tracing::debug!("connection closed: request head not received in time"),
        },
        () = deadlines.drain.wait() => tracing::debug!("connection closed at the drain deadline"),
    }
    drop(slot);
}

/// The next client; `None` once `stop` fires. Every client is accepted at
/// once; the caller decides whether it is served or refused.
async fn next_connection(
    listener: &TcpListener,
    stop: &Shutdown,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            biased;
            () = stop.wait() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(err) => {
                    // Usually EMFILE: back off briefly instead of spinning.
                    tracing::warn!(cause = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Lets in-flight requests finish, up to `drain_timeout`.
async fn drain(graceful: GracefulShutdown, options: ServerOptions) {
    let listener = options.listener.as_str();
    tracing::info!(listener, "listener closed; waiting for in-flight requests");
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(listener, timeout = ?options.drain_timeout, "in-flight requests did not finish in time; closing their connections");
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
    if status == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = route.allow()
    {
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
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
