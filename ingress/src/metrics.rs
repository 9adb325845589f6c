//! The ingress's Prometheus metrics, registered in the registry that the
//! admin listener exposes on `/metrics` (`shared::metrics::admin_routes`,
//! served by [`crate::server::serve`]).
//!
//! Guarantee: every label value comes from a fixed set (`metrics/labels.rs`: the
//! routes, `kapso`/`meta`, the signature-failure reasons, the topic kinds,
//! the listeners and connection-rejection reasons; the refusal reasons; and
//! HTTP status codes), never from a raw path, an address, a workspace id or a
//! phone number.

use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};
use shared::metrics::LATENCY_BUCKETS;
use shared::record::Source;

mod labels;

use crate::producer::Refusal;

pub use labels::{
    ConnectionRejection, ListenerLabel, ReloadResult, ReloadTrigger, RouteLabel, SignatureFailure,
    TopicKind,
};

/// All ingress metrics; cheap to clone (each metric is an `Arc` inside).
#[derive(Debug, Clone)]
pub struct IngressMetrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    produce_duration: Histogram,
    signature_failures: IntCounterVec,
    received_bytes: IntCounterVec,
    in_flight: IntGauge,
    records_written: IntCounterVec,
    records_refused: IntCounterVec,
    registry_reloads: IntCounterVec,
    connections_rejected: IntCounterVec,
}

impl IngressMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let buckets = LATENCY_BUCKETS.to_vec();
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new("inboxflow_ingress_requests_total", "HTTP requests answered"),
                &["route", "status"],
            )?,
            request_duration: HistogramVec::new(
                HistogramOpts::new(
                    "inboxflow_ingress_request_duration_seconds",
                    "Time from request start to response",
                )
                .buckets(buckets.clone()),
                &["route"],
            )?,
            produce_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "inboxflow_ingress_kafka_produce_duration_seconds",
                    "Time until Kafka acknowledged every record of a request (or gave up)",
                )
                .buckets(buckets),
            )?,
            signature_failures: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_signature_failures_total",
                    "Deliveries refused with 401, by reason",
                ),
                &["source", "reason"],
            )?,
            received_bytes: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_received_bytes_total",
                    "Webhook body bytes read",
                ),
                &["source"],
            )?,
            in_flight: IntGauge::new(
                "inboxflow_ingress_requests_in_flight",
                "Requests being handled right now",
            )?,
            records_written: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_records_written_total",
                    "Records acknowledged by Kafka, by topic kind",
                ),
                &["topic_kind"],
            )?,
            records_refused: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_records_refused_total",
                    "Records Kafka refused for good (413 or 502, not retried), by reason",
                ),
                &["reason"],
            )?,
            registry_reloads: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_registry_reloads_total",
                    "Workspace registry reload attempts, by result",
                ),
                &["result"],
            )?,
            connections_rejected: IntCounterVec::new(
                Opts::new(
                    "inboxflow_ingress_connections_rejected_total",
                    "Connections answered 503 and closed instead of served, by listener and reason",
                ),
                &["listener", "reason"],
            )?,
        };
        // Every series exists from the start, so that rate() sees the first one.
        for listener in ListenerLabel::ALL {
            for reason in ConnectionRejection::ALL {
                m.connections_rejected
                    .with_label_values(&[listener.as_str(), reason.as_str()]);
            }
        }
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.request_duration.clone()))?;
        registry.register(Box::new(m.produce_duration.clone()))?;
        registry.register(Box::new(m.signature_failures.clone()))?;
        registry.register(Box::new(m.received_bytes.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.records_written.clone()))?;
        registry.register(Box::new(m.registry_reloads.clone()))?;
        registry.register(Box::new(m.connections_rejected.clone()))?;
        registry.register(Box::new(m.records_refused.clone()))?;
        for reason in Refusal::ALL {
            m.records_refused.with_label_values(&[reason.as_str()]);
        }
        Ok(m)
    }

    pub fn request_done(&self, route: RouteLabel, status: u16, seconds: f64) {
        let status = status.to_string();
        self.requests
            .with_label_values(&[route.as_str(), status.as_str()])
            .inc();
        self.request_duration
            .with_label_values(&[route.as_str()])
            .observe(seconds);
    }

    pub fn produce_done(&self, seconds: f64) {
        self.produce_duration.observe(seconds);
    }

    pub fn signature_failure(&self, source: Source, reason: SignatureFailure) {
        self.signature_failures
            .with_label_values(&[source.as_str(), reason.as_str()])
            .inc();
    }

    pub fn received(&self, source: Source, bytes: usize) {
        self.received_bytes
            .with_label_values(&[source.as_str()])
            .inc_by(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    pub fn written(&self, kind: TopicKind) {
        self.records_written
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    pub fn connection_rejected(&self, listener: ListenerLabel, reason: ConnectionRejection) {
        self.connections_rejected
            .with_label_values(&[listener.as_str(), reason.as_str()])
            .inc();
    }

    pub fn refused(&self, reason: Refusal) {
        self.records_refused
            .with_label_values(&[reason.as_str()])
            .inc();
    }

    pub fn registry_reload(&self, result: ReloadResult) {
        self.registry_reloads
            .with_label_values(&[result.as_str()])
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use warp::http::Method;

    use super::*;

    #[test]
    fn routes_are_classified_into_a_fixed_set() {
        let cases = [
            (Method::POST, "/webhooks/kapso", RouteLabel::Kapso),
            (Method::POST, "/webhooks/kapso/", RouteLabel::Kapso),
            (
                Method::POST,
                "/webhooks/kapso/ws_1",
                RouteLabel::KapsoWorkspace,
            ),
            (Method::POST, "/webhooks/meta", RouteLabel::Meta),
            (Method::GET, "/webhooks/meta", RouteLabel::MetaVerify),
            (Method::GET, "/readyz", RouteLabel::Health),
            (Method::GET, "/webhooks/kapso/a/b", RouteLabel::Other),
            (Method::GET, "/", RouteLabel::Other),
        ];
        for (method, path, want) in cases {
            assert_eq!(RouteLabel::classify(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn metrics_register_once_and_render_with_their_names() {
        let registry = Registry::new();
        let m = IngressMetrics::register(&registry).expect("register");
        m.request_done(RouteLabel::Kapso, 200, 0.01);
        m.written(TopicKind::DeadLetter);
        let text = shared::metrics::render(&registry);
        assert!(
            text.contains("inboxflow_ingress_requests_total{route=\"kapso\",status=\"200\"} 1")
        );
        assert!(
            text.contains("inboxflow_ingress_records_written_total{topic_kind=\"dead_letter\"} 1")
        );
        assert!(
            IngressMetrics::register(&registry).is_err(),
            "double registration"
        );
    }

    #[test]
    fn every_reason_and_kind_enum_has_distinct_labels() {
        fn distinct(labels: &[&str]) {
            let set: std::collections::HashSet<&&str> = labels.iter().collect();
            assert_eq!(set.len(), labels.len(), "{labels:?}");
        }
        distinct(
            &TopicKind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
        distinct(
            &SignatureFailure::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
        distinct(
            &ReloadResult::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
        distinct(
            &ListenerLabel::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
        distinct(
            &ConnectionRejection::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
        distinct(
            &ReloadTrigger::ALL
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>(),
        );
    }

    #[test]
    fn every_signature_failure_and_reload_result_renders_as_a_series() {
        let registry = Registry::new();
        let m = IngressMetrics::register(&registry).expect("register");
        for reason in SignatureFailure::ALL {
            m.signature_failure(Source::Meta, *reason);
        }
        for result in ReloadResult::ALL {
            m.registry_reload(*result);
        }
        m.connection_rejected(ListenerLabel::Admin, ConnectionRejection::ClientFull);
        let text = shared::metrics::render(&registry);
        for reason in SignatureFailure::ALL {
            let series = format!(
                "inboxflow_ingress_signature_failures_total{{reason=\"{}\",source=\"meta\"}} 1",
                reason.as_str()
            );
            assert!(text.contains(&series), "{series}");
        }
        for result in ReloadResult::ALL {
            let series = format!(
                "inboxflow_ingress_registry_reloads_total{{result=\"{}\"}} 1",
                result.as_str()
            );
            assert!(text.contains(&series), "{series}");
        }
        for listener in ListenerLabel::ALL {
            for reason in ConnectionRejection::ALL {
                let hit =
                    (*listener, *reason) == (ListenerLabel::Admin, ConnectionRejection::ClientFull);
                let series = format!(
                    "inboxflow_ingress_connections_rejected_total{{listener=\"{}\",reason=\"{}\"}} {}",
                    listener.as_str(),
                    reason.as_str(),
                    u8::from(hit)
                );
                assert!(text.contains(&series), "{series}");
            }
        }
    }
}
