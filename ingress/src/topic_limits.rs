//! How large a record each topic accepts: the topic's `max.message.bytes`
//! (AdminClient `describe_configs`), else the broker's `message.max.bytes`.
//!
//! Guarantee: a limit is reported only as the broker states it; when it
//! cannot be read the caller gets an error, never a guess.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

/// The admin client the readiness probe reads topic configs with.
pub type Admin = AdminClient<DefaultClientContext>;

const TOPIC_LIMIT: &str = "max.message.bytes";
const BROKER_LIMIT: &str = "message.max.bytes";

/// Each topic's record size limit, in `topics` order. `broker` is the broker
/// asked for `message.max.bytes` when a topic reports no limit of its own.
pub async fn record_limits(
    admin: &Admin,
    topics: &[&str],
    broker: i32,
    timeout: Duration,
) -> Result<Vec<u64>, String> {
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let specifiers: Vec<ResourceSpecifier<'_>> =
        topics.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let results = admin
        .describe_configs(&specifiers, &options)
        .await
        .map_err(|e| format!("describing the topics' configs failed: {e}"))?;
    let mut limits = Vec::with_capacity(topics.len());
    let mut broker_limit = None;
    for (topic, result) in topics.iter().zip(results) {
        let resource = result.map_err(|code| format!("describing topic {topic} failed: {code}"))?;
        let own = resource
            .get(TOPIC_LIMIT)
            .and_then(|entry| entry.value.as_deref())
            .and_then(|value| value.parse().ok());
        let limit = match (own, broker_limit) {
            (Some(limit), _) | (None, Some(limit)) => limit,
            (None, None) => {
                let limit = broker_record_limit(admin, broker, &options).await?;
                broker_limit = Some(limit);
                limit
            }
        };
        limits.push(limit);
    }
    Ok(limits)
}

async fn broker_record_limit(
    admin: &Admin,
    broker: i32,
    options: &AdminOptions,
) -> Result<u64, String> {
    let results = admin
        .describe_configs(&[ResourceSpecifier::Broker(broker)], options)
        .await
        .map_err(|e| format!("describing broker {broker}'s config failed: {e}"))?;
    results
        .into_iter()
        .next()
        .and_then(Result::ok)
        .and_then(|resource| {
            resource
                .get(BROKER_LIMIT)
                .and_then(|entry| entry.value.as_deref())
                .and_then(|value| value.parse().ok())
        })
        .ok_or_else(|| format!("broker {broker} reports no {BROKER_LIMIT}"))
}
