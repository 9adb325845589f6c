//! `/readyz`: Kafka is reachable, every topic the ingress writes to exists,
//! and the producer has not hit a fatal (idempotence) error.
//!
//! A background task asks the broker for the metadata of the three topics
//! every `readiness_interval` and sets the shared [`Readiness`] flag. The flag
//! is advisory (load balancers stop sending traffic while it is down); the
//! durability promise does not depend on it, because each request still waits
//! for Kafka's acknowledgements.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, Producer};
use shared::metrics::Readiness;

use crate::producer::Topics;
use shared::shutdown::Shutdown;

/// Probes until `stop` fires.
pub async fn watch_kafka(
    producer: FutureProducer,
    topics: Topics,
    readiness: Readiness,
    interval: Duration,
    stop: Shutdown,
) {
    let timeout = interval.min(Duration::from_secs(5));
    loop {
        let probe_producer = producer.clone();
        let probe_topics = topics.clone();
        let probe =
            tokio::task::spawn_blocking(move || probe(&probe_producer, &probe_topics, timeout));
        let ready = match probe.await {
            Ok(Ok(())) => true,
            Ok(Err(cause)) => {
                if readiness.is_ready() {
                    tracing::warn!(%cause, "Kafka is not ready; /readyz answers 503");
                }
                false
            }
            Err(_) => false,
        };
        if ready && !readiness.is_ready() {
            tracing::info!("Kafka is ready");
        }
        readiness.set(ready);
        tokio::select! {
            biased;
            () = stop.wait() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

fn probe(producer: &FutureProducer, topics: &Topics, timeout: Duration) -> Result<(), String> {
    if let Some((code, reason)) = producer.client().fatal_error() {
        // An idempotent producer in a fatal state refuses every record: restart.
        return Err(format!(
            "producer fatal error {code:?}: {reason}; restart the ingress"
        ));
    }
    for topic in [&topics.routed, &topics.unrouted, &topics.dead_letter] {
        let metadata = producer
            .client()
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("metadata request failed: {e}"))?;
        let found = metadata
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
        if !found {
            return Err(format!("topic {topic} does not exist"));
        }
    }
    Ok(())
}
