//! # inboxflow-ingress
//!
//! Receives WhatsApp webhooks from Kapso and Meta, verifies their signatures
//! on the raw bytes, and writes each body unchanged to Kafka, keyed by the
//! workspace that owns the phone number it concerns.
//!
//! The promise: **200 only after Kafka acknowledged every record of the
//! request** (idempotent producer, `acks=all`); otherwise 503 with
//! `Retry-After`, so the sender retries, unless Kafka refused the record for
//! good (413 too large for the topic, 502 any other refusal: counted, logged,
//! and reported by `/readyz`). A fatal producer error stops the process. Unverified requests get 401 and
//! write nothing; verified bodies are never dropped (unparseable ones go to
//! the dead-letter topic, unroutable ones to the unrouted topic).
//!
//! ## Layout
//! - [`config`]: [`IngressConfig`], its defaults and `validate()`.
//! - [`app`]: [`Application::build`] (binds ports, port 0 for tests) and
//!   `run_until_stopped` (graceful shutdown, producer flush).
//! - [`server`]: the connection loop of both listeners (webhooks, admin):
//!   hyper connections, the drain deadline; the request log line and request
//!   metrics.
//! - [`keepalive`]: each connection's header read deadline and its separate,
//!   advertised idle timeout between requests.
//! - [`admission`]: connection caps (total and per client) and the fast 503
//!   that refuses connections over them.
//! - [`routes`]: warp filters, the bounded body reader, `handle_rejection`.
//! - [`handlers`]: one function per webhook route: verify, plan, write, answer.
//! - [`verify`]: signature checks (Kapso, Meta) and the handshake token.
//! - [`routing`]: a verified body's phone numbers → the records to write.
//! - [`registry`] and [`reload`]: phone_number_id → workspace, reloaded on
//!   SIGHUP and on file change.
//! - [`producer`]: the Kafka writer with its ack deadline.
//! - [`readiness`] and [`topic_limits`]: the Kafka probe behind `/readyz` (topics
//!   exist and accept the largest record) and the fatal-error watch behind `/healthz`.
//! - [`replay`]: `ingress replay`, re-routing unrouted and dead-lettered
//!   records into the webhook topic.
//! - [`metrics`]: Prometheus metrics with fixed label sets.

pub mod admission;
pub mod app;
pub mod config;
pub mod handlers;
pub mod keepalive;
pub mod metrics;
pub mod producer;
pub mod readiness;
pub mod registry;
pub mod reload;
pub mod replay;
pub mod routes;
pub mod routing;
pub mod server;
pub mod topic_limits;
pub mod verify;

pub use app::Application;
pub use config::IngressConfig;
