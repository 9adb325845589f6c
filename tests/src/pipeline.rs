//! The whole pipeline in one test: a [`ProcessorEnv`] (topics, group,
//! migrated keyspace) and an in-process ingress writing to the same topics.

use ingress::IngressConfig;

use crate::ingress::{TestIngress, TestTopics, spawn_ingress_with};
use crate::processor::ProcessorEnv;

/// The topics of `env`, as the ingress names them.
pub fn topics_of(env: &ProcessorEnv) -> TestTopics {
    TestTopics {
        routed: env.cfg.kafka.webhook_topic.clone(),
        unrouted: env.cfg.kafka.unrouted_topic.clone(),
        dead_letter: env.cfg.kafka.dead_letter_topic.clone(),
    }
}

/// Starts an ingress with `registry_toml` that writes into `env`'s topics.
pub async fn spawn_ingress_for(
    env: &ProcessorEnv,
    registry_toml: &str,
    adjust: impl FnOnce(IngressConfig) -> IngressConfig,
) -> anyhow::Result<TestIngress> {
    spawn_ingress_with(registry_toml, topics_of(env), adjust).await
}
