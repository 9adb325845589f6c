//! # Processor benchmarks (the library half of `processor-bench`)
//!
//! Everything here runs on the real local database, side by side in one
//! run, and reports medians and ratios; nothing asserts a timing.
//!
//! ## Layout
//! - [`input`]: micro-batches of decoded records, as the consumer hands them
//!   to the pipeline (Meta bodies of up to ten messages each).
//! - [`naive`]: the reference design's "before": one message at a time,
//!   seven or eight sequential statements each, on the same schema.
//! - [`raw`]: the write ceiling: only the final message and index inserts.
//! - [`compare`]: messages/s of the pipeline against both, per batch size.
//! - [`round_trips`]: statements and sequential round trips per micro-batch.
//! - [`lookup`]: `IN` queries against concurrent single-partition lookups.
//! - [`tenants`]: multi-tenant batches (1 workspace, 10%, 20% and 100% distinct)
//!   through the cross-workspace pipeline, the per-workspace design, naive
//!   and raw.

pub mod compare;
pub mod inbox;
pub mod input;
pub mod lookup;
pub mod naive;
pub mod raw;
pub mod round_trips;
pub mod tenants;

use std::time::Duration;

/// The median of some durations (the upper one of an even count).
pub fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs.get(xs.len() / 2).copied().unwrap_or_default()
}

/// Milliseconds, for tables.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
