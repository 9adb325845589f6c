//! # inboxflow-shared
//!
//! Everything the `ingress` and `processor` binaries (and the tests) agree on.
//!
//! ## Layout
//! - [`backoff`]: capped exponential backoff (the delays, not the sleeping).
//! - [`config`]: layered configuration through figment (each binary's
//!   embedded defaults TOML, then a TOML file, then `INBOXFLOW_*` environment
//!   variables), validated at start-up, with [`config::Secret`] (secrecy)
//!   redacting secrets in `Debug`.
//! - [`telemetry`]: `tracing` initialisation (JSON or pretty).
//! - [`metrics`]: the Prometheus registry and the admin server
//!   (`/metrics`, `/healthz`, `/readyz`).
//! - [`mask`]: phone-number masking for logs.
//! - [`ids`]: deterministic UUIDv5 ids for contacts and conversations.
//! - [`signing`]: HMAC-SHA256 webhook signatures (Kapso and Meta formats).
//! - [`record`]: the Kafka record contract between ingress and processor:
//!   header names, schema version, and `RecordHeaders`, the one writer and
//!   reader of the headers (documented in `schemas/kafka-record.schema.json`).
//! - [`webhook`]: the Kapso and Meta payload model, routing extraction and the
//!   normaliser that turns a payload into [`webhook::Event`]s.
//! - [`shutdown`]: [`shutdown::Shutdown`], the one stop signal of both
//!   binaries (SIGTERM, ctrl-c or a test triggers it).

pub mod backoff;
pub mod config;
pub mod ids;
pub mod mask;
pub mod metrics;
pub mod record;
pub mod shutdown;
pub mod signing;
pub mod telemetry;
pub mod webhook;
