//! # loadgen: realistic signed webhooks against a running ingress
//!
//! The library half of `tests/src/bin/loadgen.rs` (the binary only parses
//! arguments and prints). Nothing here asserts anything: it measures.
//!
//! ## Layout
//! - [`layout`]: workspaces, their numbers and senders, the registry TOML,
//!   and the seeded PRNG.
//! - [`payload`]: workspaces, senders and the signed bodies (Kapso single
//!   events, Kapso batch envelopes, Meta payloads with messages or statuses),
//!   duplicates, and the registry TOML that makes their numbers routable.
//! - [`driver`]: sends them through a pooled HTTP client, at a target rate
//!   (open loop) or as fast as a concurrency bound allows (closed loop), and
//!   records every status and latency.
//! - [`visibility`]: waits until each message id answered `200` is visible in
//!   `message_index`, and records the latency from the `200` to the row.
//! - [`stats`]: percentiles, `/proc` CPU and RSS readings, and the
//!   processor's consumer lag read from its `/metrics`.

pub mod driver;
pub mod layout;
pub mod payload;
pub mod stats;
pub mod visibility;
