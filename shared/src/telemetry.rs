//! `tracing` initialisation: JSON lines for machines, pretty output for humans.
//!
//! `RUST_LOG`, when set, overrides the configured level. Initialising twice is
//! harmless (the second call is ignored), which keeps tests simple.
//!
//! Guarantee: every event the level filter lets through is written, except
//! the CQL driver's echo of the two warnings Cassandra attaches to the
//! processor's multi-partition unlogged batches ([`is_expected_batch_warning`]):
//! the processor packs rows of many partitions into one batch on purpose
//! (measured in schemas/README.md), so those warnings would be one line per
//! request. Every other database warning (tombstones, say) still shows.

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::{LogFormat, TelemetryConfig};

/// The target under which the scylla driver logs a response's warnings.
const DRIVER_WARNINGS_TARGET: &str = "scylla::network::connection";

/// Installs the global subscriber according to `cfg`.
pub fn init(cfg: &TelemetryConfig) {
    let level = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let filter = level.and(QuietBatchWarnings);
    let layer = fmt::layer().with_target(true);
    let _ = match cfg.log_format {
        LogFormat::Json => {
            let layer = layer.json().flatten_event(true).with_filter(filter);
            tracing_subscriber::registry().with(layer).try_init()
        }
        LogFormat::Pretty => {
            let layer = layer.compact().with_filter(filter);
            tracing_subscriber::registry().with(layer).try_init()
        }
    };
}

/// Whether a database warning is one of the two Cassandra attaches to a
/// multi-partition or large unlogged batch (`unlogged_batch_across_partitions_warn_threshold`,
/// `batch_size_warn_threshold`).
pub fn is_expected_batch_warning(warning: &str) -> bool {
    warning.starts_with("Unlogged batch covering")
        || (warning.starts_with("Batch for") && warning.contains("exceeding specified threshold"))
}

/// Drops the driver's log events of expected batch warnings.
#[derive(Debug, Clone, Copy)]
struct QuietBatchWarnings;

impl<S> Filter<S> for QuietBatchWarnings {
    fn enabled(&self, _meta: &Metadata<'_>, _cx: &Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(&self, event: &Event<'_>, _cx: &Context<'_, S>) -> bool {
        if event.metadata().target() != DRIVER_WARNINGS_TARGET {
            return true;
        }
        let mut warning = WarningField::default();
        event.record(&mut warning);
        !warning.0.as_deref().is_some_and(is_expected_batch_warning)
    }
}

/// The `warning` field of an event, if it has one.
#[derive(Debug, Default)]
struct WarningField(Option<String>);

impl Visit for WarningField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "warning" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "warning" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Everything written, as one string.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut bytes = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            bytes.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_drivers_batch_warnings_are_dropped_and_every_other_warning_kept() {
        let out = Captured::default();
        let writer = out.clone();
        let layer = fmt::layer()
            .with_writer(move || writer.clone())
            .with_filter(EnvFilter::new("warn").and(QuietBatchWarnings));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let unlogged = "Unlogged batch covering 14 partitions detected against table [ks.messages]. You should use a logged batch for atomicity, or asynchronous writes for performance.";
            let size = "Batch for [ks.messages] is of size 17948, exceeding specified threshold of 5120 by 12828.";
            let tombstones = "Read 10 live rows and 5000 tombstone cells for query SELECT";
            tracing::warn!(target: "scylla::network::connection", warning = unlogged, "Response from the database contains a warning");
            tracing::warn!(target: "scylla::network::connection", warning = size, "Response from the database contains a warning");
            tracing::warn!(target: "scylla::network::connection", warning = tombstones, "Response from the database contains a warning");
            tracing::warn!(target: "scylla::network::connection", "connection broken");
            tracing::warn!(
                warning = "Unlogged batch covering 3 partitions",
                "not the driver"
            );
        });
        let text = String::from_utf8(out.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        assert!(!text.contains("Unlogged batch covering 14"), "{text}");
        assert!(!text.contains("exceeding specified threshold"), "{text}");
        assert!(text.contains("tombstone cells"), "{text}");
        assert!(text.contains("connection broken"), "{text}");
        assert!(text.contains("covering 3 partitions"), "{text}");
    }
}
