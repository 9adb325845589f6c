//! A real broker outage and recovery: stop the local Kafka, expect 503 with
//! Retry-After, start it again, and poll until a delivery is stored (200).
//!
//! This binary holds ONE test: it stops the shared broker, and cargo runs
//! test binaries one at a time, so no other test sees the outage.

use std::time::Duration;

use inboxflow_tests::faults::services::RestartOnDrop;
use inboxflow_tests::ingress::TestTopics;
use inboxflow_tests::ingress::{ACME_PHONE, TEST_REGISTRY, kapso_message_body, spawn_ingress_with};
use inboxflow_tests::poll;

#[tokio::test]
async fn a_broker_outage_gets_503_and_deliveries_are_stored_again_after_recovery()
-> anyhow::Result<()> {
    let topics = TestTopics::create().await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.ack_timeout = Duration::from_secs(2);
        cfg
    })
    .await?;
    let warm_up = kapso_message_body(ACME_PHONE, "before the outage");
    assert_eq!(app.post_kapso(&warm_up).await?.status(), 200);

    let kafka = RestartOnDrop::stop("kafka-stop", "kafka-start").await?;
    let during = app
        .post_kapso(&kapso_message_body(ACME_PHONE, "during the outage"))
        .await?;
    assert_eq!(during.status(), 503);
    assert_eq!(during.headers()["retry-after"], "5");

    kafka.start().await?;
    let after = kapso_message_body(ACME_PHONE, "after the outage");
    poll::until(
        "a delivery to be stored after recovery",
        Duration::from_secs(60),
        || async { Ok((app.post_kapso(&after).await?.status() == 200).then_some(())) },
    )
    .await?;

    let values: Vec<Vec<u8>> = app
        .read_all(&app.topics.routed)
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert!(values.contains(&warm_up) && values.contains(&after));
    Ok(())
}
