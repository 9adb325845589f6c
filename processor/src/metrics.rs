//! Processor metrics. Names follow Prometheus conventions; labels are fixed
//! sets (waves, reasons, event kinds from a closed list, partition numbers),
//! never message ids or phone numbers.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};
use shared::metrics::LATENCY_BUCKETS;

/// Every processor metric, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub records_consumed: IntCounter,
    pub messages_inserted: IntCounter,
    pub duplicates_skipped: IntCounter,
    pub contacts_created: IntCounter,
    pub conversations_created: IntCounter,
    pub statuses_applied: IntCounter,
    pub amendments_applied: IntCounter,
    pub reactions_written: IntCounter,
    pub account_events_stored: IntCounter,
    pub dead_lettered: IntCounterVec,
    pub events_skipped: IntCounterVec,
    pub batches: IntCounter,
    pub batch_records: Histogram,
    pub batch_duration: Histogram,
    pub wave_duration: HistogramVec,
    pub db_requests: IntCounter,
    pub db_requests_per_batch: Histogram,
    pub db_round_trips_per_batch: Histogram,
    pub db_failures: IntCounter,
    pub lookup_keys: IntCounterVec,
    pub end_to_end_latency: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub assigned_partitions: IntGauge,
    pub offset_commits: IntCounterVec,
    pub offsets_pending_commit: IntGauge,
}

const SIZE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0,
];

/// Creates metrics named `inboxflow_processor_<name>` and registers each.
struct Registrar {
    registry: Registry,
}

impl Registrar {
    fn name(name: &str) -> String {
        format!("inboxflow_processor_{name}")
    }

    fn register<M>(&self, metric: M) -> Result<M, prometheus::Error>
    where
        M: prometheus::core::Collector + Clone + 'static,
    {
        self.registry.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.register(IntCounter::new(Self::name(name), help)?)
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        label: &str,
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.register(IntCounterVec::new(
            Opts::new(Self::name(name), help),
            &[label],
        )?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, prometheus::Error> {
        let opts = HistogramOpts::new(Self::name(name), help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts)?)
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        label: &str,
    ) -> Result<HistogramVec, prometheus::Error> {
        let opts = HistogramOpts::new(Self::name(name), help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, &[label])?)
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.register(IntGauge::new(Self::name(name), help)?)
    }

    fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        label: &str,
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.register(IntGaugeVec::new(
            Opts::new(Self::name(name), help),
            &[label],
        )?)
    }
}

impl Metrics {
    /// Every metric, in a new registry (a declaration list, not logic).
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registrar {
            registry: Registry::new(),
        };
        let (counter, histogram) = (
            |name: &str, help: &str| r.counter(name, help),
            |name: &str, help: &str, buckets: &[f64]| r.histogram(name, help, buckets),
        );
        let counter_vec = |name: &str, help: &str, label: &str| r.counter_vec(name, help, label);
        let wave_duration = r.histogram_vec(
            "wave_duration_seconds",
            "Duration of one sequential wave of a micro-batch, across every workspace of the batch: its requests and the planning before them (waves that sent nothing are not observed).",
            LATENCY_BUCKETS,
            "wave",
        )?;
        let lookup_keys = counter_vec(
            "lookup_keys_total",
            "Contact identities, conversations and inbox totals micro-batches looked up, by where they were read (cache: the owner cache; database). Message ids always come from the database and are not counted.",
            "source",
        )?;
        // Both series exist from the start, so a hit ratio is defined at once.
        for source in ["cache", "database"] {
            lookup_keys.with_label_values(&[source]);
        }
        let consumer_lag = r.gauge_vec(
            "consumer_lag",
            "Records between the committed offset and the high watermark (librdkafka statistics).",
            "partition",
        )?;
        let assigned_partitions = r.gauge(
            "assigned_partitions",
            "Partitions of the webhook topic currently assigned to this processor.",
        )?;
        Ok(Self {
            records_consumed: counter("records_consumed_total", "Kafka records consumed.")?,
            messages_inserted: counter(
                "messages_inserted_total",
                "Messages stored for the first time.",
            )?,
            duplicates_skipped: counter(
                "duplicates_skipped_total",
                "Messages dropped because their id was already stored.",
            )?,
            contacts_created: counter("contacts_created_total", "Contacts created.")?,
            conversations_created: counter(
                "conversations_created_total",
                "Conversations created.",
            )?,
            statuses_applied: counter(
                "statuses_applied_total",
                "Delivery statuses written (an advance, or a redelivered equal status).",
            )?,
            amendments_applied: counter(
                "amendments_applied_total",
                "Messages edited or revoked by their sender.",
            )?,
            reactions_written: counter("reactions_written_total", "Reactions set or removed.")?,
            account_events_stored: counter(
                "account_events_stored_total",
                "Account-level (Meta) and project-level (Kapso) events stored.",
            )?,
            dead_lettered: counter_vec(
                "dead_lettered_total",
                "Poison records written to the dead-letter topic.",
                "reason",
            )?,
            events_skipped: counter_vec(
                "events_skipped_total",
                "Valid events ignored (not stored), by kind: unmodelled fields and types, malformed items.",
                "kind",
            )?,
            batches: counter(
                "batches_total",
                "Micro-batches completed: every record stored or dead-lettered (its offsets are stored for commit next).",
            )?,
            batch_records: histogram("batch_records", "Records per micro-batch.", SIZE_BUCKETS)?,
            batch_duration: histogram(
                "batch_duration_seconds",
                "Time from a micro-batch's decode until every record is stored or dead-lettered (before its offsets are stored for commit).",
                LATENCY_BUCKETS,
            )?,
            wave_duration,
            db_requests: counter(
                "db_requests_total",
                "Requests sent to the database (a batch counts once).",
            )?,
            db_requests_per_batch: histogram(
                "db_requests_per_batch",
                "Database requests per micro-batch.",
                SIZE_BUCKETS,
            )?,
            db_round_trips_per_batch: histogram(
                "db_round_trips_per_batch",
                "Sequential database round trips per micro-batch.",
                COUNT_BUCKETS,
            )?,
            db_failures: counter(
                "db_failures_total",
                "Micro-batch attempts that failed on the database (its writes, or reading the write clocks) and were retried.",
            )?,
            lookup_keys,
            end_to_end_latency: histogram(
                "end_to_end_latency_seconds",
                "From the ingress receiving a webhook to its offset being stored for commit.",
                LATENCY_BUCKETS,
            )?,
            consumer_lag,
            assigned_partitions,
            offset_commits: counter_vec(
                "offset_commits_total",
                "Offset commits the broker answered, by result (ok, failed).",
                "result",
            )?,
            offsets_pending_commit: r.gauge(
                "offsets_pending_commit",
                "Owned partitions whose stored offset no commit has confirmed yet.",
            )?,
            registry: r.registry.clone(),
        })
    }
}
