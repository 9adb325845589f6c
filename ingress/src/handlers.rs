//! The webhook handlers: verify, plan, write, answer.
//!
//! Guarantees: the signature is checked before the body is parsed; 200 is
//! answered only after Kafka acknowledged every planned record; a verified
//! body is never dropped (unparseable ones are dead-lettered, unroutable ones
//! go to the unrouted topic); a body Kafka cannot store is never dropped
//! silently: 503 when a retry may succeed, 413 (too large for the topic) or
//! 502 (any other permanent refusal) when it cannot, counted and logged; a
//! handler never fails (every outcome is a response), and never logs a body,
//! a secret or a phone number. A 401 carries `Connection: close`, so its
//! connection is closed after it.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::config::Secret;
use shared::record::{META_EVENT, Source, now_ms};
use shared::signing::SignatureError;
use shared::webhook::{is_meta_payload, routing_keys};
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::{Reply, Response};

use crate::metrics::{IngressMetrics, RouteLabel, SignatureFailure, TopicKind};
use crate::producer::{Envelope, KafkaWriter, Refusal, WriteError};
use crate::registry::RegistryHandle;
use crate::routing::{self, Diversion, PlannedRecord};
use crate::verify;

pub const KAPSO_EVENT_HEADER: &str = "x-webhook-event";
pub const KAPSO_IDEMPOTENCY_HEADER: &str = "x-idempotency-key";
const DEFAULT_CONTENT_TYPE: &str = "application/json";
/// Longest header value copied into a record header.
const MAX_COPIED_HEADER: usize = 256;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    pub registry: RegistryHandle,
    pub writer: KafkaWriter,
    pub metrics: IngressMetrics,
    pub kapso_secrets: Vec<Secret>,
    pub meta_app_secrets: Vec<Secret>,
    pub meta_verify_token: Secret,
    pub retry_after_secs: u64,
}

/// Attached to each response (as an extension, never sent) for the request log line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outcome {
    pub bytes: usize,
    pub records: usize,
}

/// `POST /webhooks/kapso` and `POST /webhooks/kapso/{workspace_id}`.
pub async fn kapso(
    state: Arc<AppState>,
    path_workspace: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Infallible> {
    let route = match path_workspace {
        Some(_) => RouteLabel::KapsoWorkspace,
        None => RouteLabel::Kapso,
    };
    let received_at_ms = now_ms();
    state.metrics.received(Source::Kapso, body.len());
    let registry = state.registry.current();
    let verified = verify::kapso(
        &headers,
        &body,
        &state.kapso_secrets,
        &registry,
        path_workspace.as_deref(),
    );
    let trust = match verified {
        Ok(trust) => trust,
        Err(err) => return Ok(state.unauthorized(Source::Kapso, route, &err, body.len())),
    };
    // Kapso's "meta" webhook kind forwards raw Meta payloads on this route.
    let (source, event) = match is_meta_payload(&body) {
        true => (Source::Meta, Some(META_EVENT.to_owned())),
        // The signed body's own event name wins over the unsigned header.
        false => (Source::Kapso, body_type(&body)),
    };
    let envelope = Envelope {
        source,
        event: event
            .or_else(|| header_text(&headers, KAPSO_EVENT_HEADER))
            .unwrap_or_else(|| "unknown".to_owned()),
        idempotency_key: header_text(&headers, KAPSO_IDEMPOTENCY_HEADER)
            .unwrap_or_else(|| body_digest(&body)),
        received_at_ms,
        content_type: content_type(&headers),
        trust: trust.clone(),
    };
    let parsed = routing_keys(source, &body);
    let plan = routing::plan(parsed, &registry, &trust);
    Ok(state.store(route, &envelope, &body, plan).await)
}

/// `POST /webhooks/meta`.
pub async fn meta(
    state: Arc<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Infallible> {
    let route = RouteLabel::Meta;
    let received_at_ms = now_ms();
    state.metrics.received(Source::Meta, body.len());
    let trust = match verify::meta(&headers, &body, &state.meta_app_secrets) {
        Ok(trust) => trust,
        Err(err) => return Ok(state.unauthorized(Source::Meta, route, &err, body.len())),
    };
    let envelope = Envelope {
        source: Source::Meta,
        event: META_EVENT.to_owned(),
        // Meta sends no delivery id: the body's digest makes replays recognisable.
        idempotency_key: body_digest(&body),
        received_at_ms,
        content_type: content_type(&headers),
        trust: trust.clone(),
    };
    let parsed = routing_keys(Source::Meta, &body);
    let plan = routing::plan(parsed, &state.registry.current(), &trust);
    Ok(state.store(route, &envelope, &body, plan).await)
}

/// The query of Meta's subscription handshake.
#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `GET /webhooks/meta`: echo `hub.challenge` when the token matches.
pub async fn meta_verify(state: Arc<AppState>, query: Handshake) -> Result<Response, Infallible> {
    let token_ok = query
        .verify_token
        .as_deref()
        .is_some_and(|t| verify::verify_token_matches(&state.meta_verify_token, t));
    if query.mode.as_deref() != Some("subscribe") || !token_ok {
        tracing::warn!(route = "meta_verify", "subscription handshake refused");
        return Ok(text(StatusCode::FORBIDDEN, "forbidden".to_owned()));
    }
    match query.challenge {
        Some(challenge) if challenge.len() <= MAX_COPIED_HEADER => {
            tracing::info!(route = "meta_verify", "subscription handshake accepted");
            Ok(text(StatusCode::OK, challenge))
        }
        _ => Ok(text(
            StatusCode::BAD_REQUEST,
            "missing hub.challenge".to_owned(),
        )),
    }
}

impl AppState {
    fn unauthorized(
        &self,
        source: Source,
        route: RouteLabel,
        err: &SignatureError,
        bytes: usize,
    ) -> Response {
        let reason = SignatureFailure::of(err);
        self.metrics.signature_failure(source, reason);
        tracing::warn!(route = route.as_str(), reason = reason.as_str(), cause = %err, "signature refused");
        let mut response = json(StatusCode::UNAUTHORIZED, r#"{"error":"invalid signature"}"#);
        // hyper closes the connection after this response: a client sending
        // bad signatures must reconnect (and pass admission) each time.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        with_outcome(response, Outcome { bytes, records: 0 })
    }

    async fn store(
        &self,
        route: RouteLabel,
        envelope: &Envelope,
        body: &Bytes,
        plan: Vec<PlannedRecord>,
    ) -> Response {
        log_diversions(route, &plan);
        let outcome = Outcome {
            bytes: body.len(),
            records: plan.len(),
        };
        match self.writer.write(envelope, body, &plan).await {
            Ok(()) => with_outcome(json(StatusCode::OK, r#"{"status":"accepted"}"#), outcome),
            Err(err) => {
                let response = match err.refusal() {
                    Some(refusal) => self.refused(route, refusal, &err, body.len()),
                    None => self.unavailable(route, &err),
                };
                with_outcome(
                    response,
                    Outcome {
                        records: 0,
                        ..outcome
                    },
                )
            }
        }
    }

    /// A failure that may pass (broker down, ack deadline): 503, retry later.
    fn unavailable(&self, route: RouteLabel, err: &WriteError) -> Response {
        tracing::warn!(route = route.as_str(), cause = %err, "webhook not stored; answering 503");
        let mut response = json(
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"error":"temporarily unable to store the webhook"}"#,
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, self.retry_after_secs.into());
        response
    }

    /// Kafka refused the record for good: a retry now would fail the same
    /// way, so no 503. Too large: 413; any other refusal: 502 (Kafka, behind
    /// us, refuses; the deployment must be fixed). Counted and logged as an
    /// error: the verified body was not stored.
    fn refused(
        &self,
        route: RouteLabel,
        refusal: Refusal,
        err: &WriteError,
        bytes: usize,
    ) -> Response {
        self.metrics.refused(refusal);
        tracing::error!(
            route = route.as_str(),
            reason = refusal.as_str(),
            bytes,
            cause = %err,
            "Kafka refused the verified webhook for good; it is NOT stored (see /readyz)"
        );
        match refusal {
            Refusal::TooLarge => json(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"error":"webhook larger than the Kafka topic accepts"}"#,
            ),
            Refusal::Rejected => json(
                StatusCode::BAD_GATEWAY,
                r#"{"error":"Kafka refused the webhook"}"#,
            ),
        }
    }
}

fn log_diversions(route: RouteLabel, plan: &[PlannedRecord]) {
    for record in plan {
        match record.kind {
            TopicKind::Routed => {}
            TopicKind::Unrouted => tracing::info!(
                route = route.as_str(),
                reason = record.reason_kind.map_or("unknown", Diversion::as_str),
                numbers = record.phone_number_ids.len(),
                "writing unrouted record"
            ),
            TopicKind::DeadLetter => tracing::warn!(
                route = route.as_str(),
                reason = record.reason_kind.map_or("unknown", Diversion::as_str),
                "writing dead-letter record: verified body is not a webhook we understand"
            ),
        }
    }
}

/// Lowercase hex SHA-256 of the body: the idempotency key when the sender gives none.
pub fn body_digest(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// A header's value when it is short visible ASCII; `None` otherwise.
fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?.trim();
    (!value.is_empty() && value.len() <= MAX_COPIED_HEADER).then(|| value.to_owned())
}

fn content_type(headers: &HeaderMap) -> String {
    header_text(headers, header::CONTENT_TYPE.as_str())
        .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned())
}

/// The body's top-level `type` (batches) or `event` (project events): the
/// Kapso event name, signed, so it wins over the `X-Webhook-Event` header.
fn body_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
        event: Option<serde_json::Value>,
    }
    let typed: Typed = serde_json::from_slice(body).ok()?;
    [typed.kind, typed.event]
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .find(|k| !k.is_empty() && k.len() <= MAX_COPIED_HEADER && k.is_ascii())
}

fn json(status: StatusCode, body: &'static str) -> Response {
    warp::reply::with_status(
        warp::reply::with_header(body, header::CONTENT_TYPE, "application/json"),
        status,
    )
    .into_response()
}

fn text(status: StatusCode, body: String) -> Response {
    warp::reply::with_status(
        warp::reply::with_header(body, header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        status,
    )
    .into_response()
}

fn with_outcome(mut response: Response, outcome: Outcome) -> Response {
    response.extensions_mut().insert(outcome);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kapso_event_falls_back_to_the_body_type() {
        let body = br#"{"type":"whatsapp.message.received","batch":true,"data":[]}"#;
        assert_eq!(
            body_type(body).as_deref(),
            Some("whatsapp.message.received")
        );
        assert_eq!(body_type(b"not json"), None);
        assert_eq!(body_type(br#"{"type":7}"#), None);
        assert_eq!(
            body_type(br#"{"event":"workflow.execution.failed"}"#).as_deref(),
            Some("workflow.execution.failed")
        );
    }

    #[test]
    fn copied_headers_must_be_short_visible_text() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static(" evt "));
        h.insert(
            "x-b",
            HeaderValue::from_str(&"x".repeat(300)).expect("value"),
        );
        h.insert("x-c", HeaderValue::from_bytes(b"\xff").expect("value"));
        assert_eq!(header_text(&h, "x-a").as_deref(), Some("evt"));
        assert_eq!(header_text(&h, "x-b"), None);
        assert_eq!(header_text(&h, "x-c"), None);
        assert_eq!(content_type(&h), DEFAULT_CONTENT_TYPE);
    }

    #[test]
    fn the_body_digest_is_the_sha256_hex_of_the_raw_bytes() {
        assert_eq!(
            body_digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
