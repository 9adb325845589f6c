//! # inboxflow-processor
//!
//! Consumes verified webhooks from Kafka in micro-batches and writes contacts,
//! conversations, messages and statuses into Cassandra or ScyllaDB with a
//! constant number of sequential round trips per batch.
//!
//! Delivery promise: a Kafka offset is committed only after every write of
//! its micro-batch has succeeded, and only for partitions still assigned.
//! Delivery is therefore at-least-once; the pipeline makes the *effect*
//! exactly-once (see [`pipeline`]).
//!
//! ## Layout
//! - [`config`]: settings and their validation.
//! - [`clocks`]: every write's client timestamp, from its record's Kafka
//!   position; the topic-layout checks and `processor clocks rebase`.
//! - [`store`]: the CQL session, prepared statements, batching, `migrate`.
//! - [`decode`]: Kafka record → normalised events, or a poison reason.
//! - [`inbox`]: the inbox's reads (recency list, history, unread totals) and its one write, mark-read.
//! - [`pipeline`]: the eight batched steps, each one wave across every workspace of a batch.
//!   With the cargo feature `fault-injection` (tests only), `pipeline::faults`
//!   injects crashes and refusals; production builds do not contain it.
//! - [`consumer`]: the consumer-group loop: micro-batches, retries, commits.
//! - [`dead_letter`]: poison records to the dead-letter topic.
//! - [`metrics`]: Prometheus metrics.
//! - [`app`]: wiring for `processor run` and `processor migrate`.

pub mod app;
pub mod clocks;
pub mod config;
pub mod consumer;
pub mod dead_letter;
pub mod decode;
pub mod inbox;
pub mod metrics;
pub mod pipeline;
pub mod store;
