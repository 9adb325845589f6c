//! The keep-alive policy of one connection: a header read deadline that
//! runs only while a request head is arriving, and a separate, longer idle
//! timeout between requests, advertised to clients.
//!
//! Why not hyper's `header_read_timeout`: since hyper 1.4 its timer also
//! runs while a keep-alive connection is idle between requests, so hyper
//! closes every idle connection one header read timeout (10 s) after its
//! last answer, without telling the client. A pooled client that reuses the
//! connection at that moment has its request dropped (reset or closed under
//! it, no answer), and a POST that was already written is not retried by
//! the client (issue 14, item 8; `tests/tests/ingress_keepalive.rs`).
//!
//! Here a connection is in one of three stages ([`Watch`]): reading a head
//! (from accept, or from the first byte after an idle spell) bounded by
//! `header_read_timeout`; busy (the request is served; its body is bounded
//! in [`crate::routes`]), with no deadline; idle (answered, waiting for the
//! next request) bounded by `idle_timeout`. Every keep-alive answer carries
//! `Keep-Alive: timeout=N` with N one second under the idle timeout (whole
//! seconds), so a client that honours the hint never reuses a connection
//! the server is about to close; the default idle timeout is also longer
//! than common client pools keep idle connections (reqwest's and Go's 90 s).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;
use warp::http::{HeaderValue, header};
use warp::reply::Response;

/// The two deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct KeepAlive {
    /// From the first byte of a request head (or accept) to its end.
    pub header_read_timeout: Duration,
    /// From an answer to the first byte of the next request.
    pub idle_timeout: Duration,
}

impl KeepAlive {
    /// The `Keep-Alive` header value: one second under the idle timeout.
    pub fn hint(&self) -> HeaderValue {
        let secs = self.idle_timeout.as_secs().saturating_sub(1).max(1);
        HeaderValue::from_str(&format!("timeout={secs}")).unwrap_or(HeaderValue::from_static(""))
    }

    /// Adds the hint to `response` unless it closes its connection.
    pub fn advertise(&self, response: &mut Response) {
        let closes = response
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        if !closes {
            response.headers_mut().insert("keep-alive", self.hint());
        }
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// A request head is arriving (or the first is awaited after accept).
    Head,
    /// A request is being served.
    Busy,
    /// Answered; waiting for the next request.
    Idle,
}

#[derive(Debug, Clone, Copy)]
struct Phase {
    stage: Stage,
    since: Instant,
    epoch: u64,
}

/// The stage of one connection, shared by its reader, its service and the
/// task that enforces the deadlines.
#[derive(Debug)]
pub struct Watch {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Watch {
    /// A freshly accepted connection: its first head is awaited.
    pub fn new() -> Arc<Self> {
        let phase = Phase {
            stage: Stage::Head,
            since: Instant::now(),
            epoch: 0,
        };
        Arc::new(Self {
            phase: Mutex::new(phase),
            changed: Notify::new(),
        })
    }

    fn current(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn enter(&self, stage: Stage, only_from: Option<Stage>) {
        let mut phase = self.phase.lock().unwrap_or_else(PoisonError::into_inner);
        if only_from.is_some_and(|from| phase.stage != from) {
            return;
        }
        *phase = Phase {
            stage,
            since: Instant::now(),
            epoch: phase.epoch.wrapping_add(1),
        };
        drop(phase);
        self.changed.notify_one();
    }

    /// hyper has parsed a request head and calls the service.
    pub fn request_started(&self) {
        self.enter(Stage::Busy, None);
    }

    /// The service has answered; the connection idles until the next byte.
    pub fn answered(&self) {
        self.enter(Stage::Idle, None);
    }

    /// Bytes arrived: on an idle connection, a new request head begins.
    fn bytes_arrived(&self) {
        self.enter(Stage::Head, Some(Stage::Idle));
    }

    /// Returns the stage whose deadline passed (`Head` or `Idle`); never
    /// returns while the connection is busy.
    pub async fn expired(&self, limits: KeepAlive) -> Stage {
        loop {
            let changed = self.changed.notified();
            let phase = self.current();
            let limit = match phase.stage {
                Stage::Busy => {
                    changed.await;
                    continue;
                }
                Stage::Head => limits.header_read_timeout,
                Stage::Idle => limits.idle_timeout,
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(phase.since + limit) => {
                    if self.current().epoch == phase.epoch {
                        return phase.stage;
                    }
                }
            }
        }
    }
}

/// A connection's socket that reports arriving bytes to its [`Watch`].
#[derive(Debug)]
pub struct WatchedIo<T> {
    io: T,
    watch: Arc<Watch>,
}

impl<T> WatchedIo<T> {
    pub fn new(io: T, watch: Arc<Watch>) -> Self {
        Self { io, watch }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.watch.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: KeepAlive = KeepAlive {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(120),
    };

    #[test]
    fn the_hint_is_a_second_under_the_idle_timeout() {
        assert_eq!(LIMITS.hint(), "timeout=119");
        let short = KeepAlive {
            idle_timeout: Duration::from_millis(1500),
            ..LIMITS
        };
        assert_eq!(short.hint(), "timeout=1");
    }

    /// Short deadlines: these tests check which deadline ends a stage, not
    /// how long it took.
    const SHORT: KeepAlive = KeepAlive {
        header_read_timeout: Duration::from_millis(5),
        idle_timeout: Duration::from_millis(20),
    };

    #[tokio::test]
    async fn an_idle_connection_ends_on_the_idle_deadline() {
        let watch = Watch::new();
        watch.request_started();
        watch.answered();
        assert_eq!(watch.expired(SHORT).await, Stage::Idle);
    }

    #[test]
    fn bytes_start_a_head_only_on_an_idle_connection() {
        let watch = Watch::new();
        watch.answered();
        watch.bytes_arrived();
        assert_eq!(watch.current().stage, Stage::Head);
        watch.request_started();
        watch.bytes_arrived();
        assert_eq!(
            watch.current().stage,
            Stage::Busy,
            "body bytes keep it busy"
        );
    }

    #[tokio::test]
    async fn a_busy_connection_has_no_deadline() {
        let watch = Watch::new();
        watch.request_started();
        // Five times both deadlines: however slow the machine, a busy
        // connection's watch cannot fire.
        let busy = tokio::time::timeout(SHORT.idle_timeout * 5, watch.expired(SHORT));
        assert!(busy.await.is_err(), "no deadline while busy");
        watch.answered();
        assert_eq!(watch.expired(SHORT).await, Stage::Idle);
    }
}
