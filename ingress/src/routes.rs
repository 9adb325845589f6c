//! The warp filters: which request goes to which handler, the bounded body
//! reader, and the one place where rejections become responses.
//!
//! Guarantees: a body larger than `max_body_bytes` is refused with 413 without
//! being read in full (a declared `Content-Length` is checked before reading;
//! a chunked body is counted while it streams and abandoned at the limit); a
//! body that takes longer than `body_read_timeout` gets 408; every rejection
//! maps to a 4xx ([`handle_rejection`]), never a 500. Memory held for a
//! body grows with the bytes received, never with the size a client merely
//! declares (at most [`MAX_INITIAL_BODY_CAPACITY`] is reserved up front).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt};
use warp::Filter;
use warp::http::StatusCode;
use warp::reject::{self, Reject, Rejection};
use warp::reply::{Reply, Response};

use crate::handlers::{self, AppState, Handshake};

/// How the body reader is bounded.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max_bytes: u64,
    pub read_timeout: Duration,
}

#[derive(Debug)]
struct BodyTooLarge;
impl Reject for BodyTooLarge {}

#[derive(Debug)]
struct BodyTimedOut;
impl Reject for BodyTimedOut {}

#[derive(Debug)]
struct BodyUnreadable;
impl Reject for BodyUnreadable {}

/// Every route of the webhook listener, with rejections already handled.
pub fn routes(
    state: Arc<AppState>,
    limits: BodyLimits,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_state = warp::any().map(move || Arc::clone(&state));
    let headers = warp::header::headers_cloned();

    let kapso = warp::path!("webhooks" / "kapso")
        .and(warp::post())
        .and(with_state.clone())
        .and(warp::any().map(|| None::<String>))
        .and(headers)
        .and(raw_body(limits))
        .and_then(handlers::kapso);
    let kapso_workspace = warp::path!("webhooks" / "kapso" / String)
        .and(warp::post())
        .and(with_state.clone())
        .map(|ws: String, state| (state, Some(ws)))
        .untuple_one()
        .and(headers)
        .and(raw_body(limits))
        .and_then(handlers::kapso);
    let meta = warp::path!("webhooks" / "meta")
        .and(warp::post())
        .and(with_state.clone())
        .and(headers)
        .and(raw_body(limits))
        .and_then(handlers::meta);
    let meta_verify = warp::path!("webhooks" / "meta")
        .and(warp::get())
        .and(with_state)
        .and(warp::query::<Handshake>())
        .and_then(handlers::meta_verify);
    let healthz = warp::path!("healthz").and(warp::get()).map(|| "ok");

    kapso
        .or(kapso_workspace)
        .unify()
        .or(meta)
        .unify()
        .or(meta_verify)
        .unify()
        .or(healthz.map(Reply::into_response))
        .unify()
        .recover(handle_rejection)
        .unify()
}

/// The admin listener's routes (`/metrics`, `/healthz`, `/readyz`), every
/// other request answered like the webhook listener's (404, 405).
pub fn admin_routes(
    registry: prometheus::Registry,
    readiness: shared::metrics::Readiness,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    shared::metrics::admin_routes(registry, readiness)
        .recover(handle_rejection)
        .unify()
}

/// The raw body, bounded in size and time, exactly as received.
pub fn raw_body(limits: BodyLimits) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and_then(move |declared: Option<u64>, body| read_bounded(body, declared, limits))
}

async fn read_bounded<S, B>(
    body: S,
    declared: Option<u64>,
    limits: BodyLimits,
) -> Result<Bytes, Rejection>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    if declared.is_some_and(|len| len > limits.max_bytes) {
        return Err(reject::custom(BodyTooLarge));
    }
    let max = usize::try_from(limits.max_bytes).unwrap_or(usize::MAX);
    let read = async move {
        let mut buf = BytesMut::with_capacity(initial_capacity(declared, max));
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| reject::custom(BodyUnreadable))?;
            if buf.len().saturating_add(chunk.remaining()) > max {
                return Err(reject::custom(BodyTooLarge));
            }
            buf.put(chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(limits.read_timeout, read)
        .await
        .map_err(|_| reject::custom(BodyTimedOut))?
}

/// Most memory reserved for a body before any of it arrives. A declared
/// `Content-Length` is only a claim (the signature is checked once the whole
/// body is in), so a larger body grows the buffer as its bytes arrive.
pub const MAX_INITIAL_BODY_CAPACITY: usize = 64 * 1024;

/// The buffer reserved up front for a body that declares `declared` bytes.
fn initial_capacity(declared: Option<u64>, max: usize) -> usize {
    let declared = declared.map_or(8 * 1024, |len| usize::try_from(len).unwrap_or(max));
    declared.min(max).min(MAX_INITIAL_BODY_CAPACITY)
}

/// Maps every rejection to a 4xx response.
pub async fn handle_rejection(err: Rejection) -> Result<Response, Infallible> {
    let (status, message) = rejection_status(&err);
    if status == StatusCode::BAD_REQUEST {
        tracing::debug!(rejection = ?err, "request rejected");
    }
    let body = format!("{{\"error\":\"{message}\"}}");
    let mut response = warp::reply::with_status(body, status).into_response();
    response.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        warp::http::HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
        // The body was not read to its end: the connection cannot be reused.
        response.headers_mut().insert(
            warp::http::header::CONNECTION,
            warp::http::HeaderValue::from_static("close"),
        );
    }
    Ok(response)
}

fn rejection_status(err: &Rejection) -> (StatusCode, &'static str) {
    if err.find::<BodyTooLarge>().is_some() || err.find::<reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "body too large")
    } else if err.find::<BodyTimedOut>().is_some() {
        (StatusCode::REQUEST_TIMEOUT, "body not received in time")
    } else if err.find::<BodyUnreadable>().is_some() {
        (StatusCode::BAD_REQUEST, "body could not be read")
    } else if err.find::<reject::InvalidQuery>().is_some() {
        (StatusCode::BAD_REQUEST, "invalid query")
    } else if err.find::<reject::InvalidHeader>().is_some()
        || err.find::<reject::MissingHeader>().is_some()
    {
        (StatusCode::BAD_REQUEST, "invalid header")
    } else if err.find::<reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "length required")
    } else if err.find::<reject::UnsupportedMediaType>().is_some() {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported media type")
    } else if err.find::<reject::MethodNotAllowed>().is_some() {
        // After the specific causes: another route may have matched the path
        // with the right method and failed for a better reason (warp's order).
        (StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    } else if err.is_not_found() {
        (StatusCode::NOT_FOUND, "not found")
    } else {
        // Anything else is still the client's request we cannot serve; never a 500.
        tracing::warn!(rejection = ?err, "unexpected rejection mapped to 400");
        (StatusCode::BAD_REQUEST, "bad request")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, warp::Error>> + Send {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 8,
        read_timeout: Duration::from_secs(15),
    };

    #[tokio::test]
    async fn an_undeclared_streamed_body_is_counted_and_stopped_at_the_limit() {
        let ok = read_bounded(chunks(&["1234", "5678"]), None, LIMITS)
            .await
            .expect("fits");
        assert_eq!(ok.as_ref(), b"12345678");
        let err = read_bounded(chunks(&["1234", "56789"]), None, LIMITS)
            .await
            .expect_err("too large");
        assert_eq!(rejection_status(&err).0, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn a_body_that_never_finishes_times_out_with_408() {
        let stalled = chunks(&["12"]).chain(futures::stream::pending());
        let limits = BodyLimits {
            read_timeout: Duration::from_millis(50),
            ..LIMITS
        };
        let err = read_bounded(stalled, Some(8), limits)
            .await
            .expect_err("stalls");
        assert_eq!(rejection_status(&err).0, StatusCode::REQUEST_TIMEOUT);
    }

    #[test]
    fn a_declared_length_reserves_at_most_the_initial_cap() {
        let max = 4 * 1024 * 1024;
        let declared = Some(max as u64);
        assert_eq!(initial_capacity(declared, max), MAX_INITIAL_BODY_CAPACITY);
        assert_eq!(initial_capacity(Some(100), max), 100);
        assert_eq!(initial_capacity(None, max), 8 * 1024);
        assert_eq!(initial_capacity(Some(u64::MAX), 8), 8);
    }

    #[tokio::test]
    async fn a_body_over_the_initial_cap_still_arrives_whole() {
        let big = "x".repeat(MAX_INITIAL_BODY_CAPACITY * 3);
        let part: &'static str = Box::leak(big.into_boxed_str());
        let limits = BodyLimits {
            max_bytes: (MAX_INITIAL_BODY_CAPACITY * 8) as u64,
            ..LIMITS
        };
        let body = read_bounded(chunks(&[part, part]), Some(part.len() as u64 * 2), limits)
            .await
            .expect("fits");
        assert_eq!(body.len(), part.len() * 2);
    }

    #[test]
    fn custom_rejections_map_to_their_4xx() {
        let cases = [
            (reject::custom(BodyTooLarge), StatusCode::PAYLOAD_TOO_LARGE),
            (reject::custom(BodyTimedOut), StatusCode::REQUEST_TIMEOUT),
            (reject::custom(BodyUnreadable), StatusCode::BAD_REQUEST),
            (reject::not_found(), StatusCode::NOT_FOUND),
        ];
        for (rejection, want) in cases {
            assert_eq!(rejection_status(&rejection).0, want);
        }
    }
}
