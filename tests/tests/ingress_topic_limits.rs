//! A topic too small for the ingress's largest record (`max_body_bytes` +
//! 64 KiB): `/readyz` says so with a typed reason, and a webhook larger than
//! the topic accepts gets 413 (a permanent refusal, never 503 "retry later"),
//! counted in `inboxflow_ingress_records_refused_total`. Topics large enough
//! make it ready.

use std::time::Duration;

use inboxflow_tests::ingress::{
    ACME_PHONE, TEST_REGISTRY, TestIngress, TestTopics, kapso_message_body, metric_value,
    metrics_text, spawn_ingress_with,
};
use inboxflow_tests::poll;

/// The topics' `max.message.bytes`: far below 4 MiB + 64 KiB.
const TOPIC_LIMIT: usize = 100_000;

async fn small_topic_ingress() -> anyhow::Result<TestIngress> {
    let topics = TestTopics::create_for_large_records(TOPIC_LIMIT).await?;
    spawn_ingress_with(TEST_REGISTRY, topics, |cfg| cfg).await
}

/// A signed Kapso body of about `bytes` bytes that lz4 cannot shrink much.
fn incompressible_body(bytes: usize) -> Vec<u8> {
    let text: String = std::iter::repeat_with(|| uuid::Uuid::new_v4().simple().to_string())
        .take(bytes / 32)
        .collect();
    kapso_message_body(ACME_PHONE, &text)
}

#[tokio::test]
async fn a_topic_smaller_than_the_largest_record_makes_the_ingress_not_ready() -> anyhow::Result<()>
{
    let app = small_topic_ingress().await?;

    let body = poll::until(
        "/readyz to name the small topic",
        Duration::from_secs(20),
        || async {
            let (status, text) = app.admin_get("/readyz").await?;
            Ok((status == 503 && text.contains("topic_too_small")).then_some(text))
        },
    )
    .await?;

    assert!(body.contains(&app.topics.routed), "{body}");
    assert!(body.contains(&TOPIC_LIMIT.to_string()), "{body}");
    assert!(
        body.contains(&(4 * 1024 * 1024 + 64 * 1024).to_string()),
        "{body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_webhook_larger_than_the_topic_accepts_gets_413_and_is_counted() -> anyhow::Result<()> {
    let app = small_topic_ingress().await?;
    let body = incompressible_body(3 * TOPIC_LIMIT);

    let res = app.post_kapso(&body).await?;

    assert_eq!(res.status(), 413, "{}", res.text().await?);
    let metrics = metrics_text(&app).await?;
    let refused = "inboxflow_ingress_records_refused_total{reason=\"too_large\"}";
    assert_eq!(metric_value(&metrics, refused), Some(1.0), "{metrics}");
    let answered = "inboxflow_ingress_requests_total{route=\"kapso\",status=\"413\"}";
    assert_eq!(metric_value(&metrics, answered), Some(1.0), "{metrics}");
    // The producer is not broken by the refusal: a small webhook still gets 200.
    let small = app
        .post_kapso(&kapso_message_body(ACME_PHONE, "hello"))
        .await?;
    assert_eq!(small.status(), 200);
    app.shutdown().await
}

#[tokio::test]
async fn topics_that_accept_the_largest_record_make_the_ingress_ready() -> anyhow::Result<()> {
    let topics = TestTopics::create_for_large_records(5 * 1024 * 1024).await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |cfg| cfg).await?;

    poll::until("/readyz to answer 200", Duration::from_secs(20), || async {
        let (status, _) = app.admin_get("/readyz").await?;
        Ok((status == 200).then_some(()))
    })
    .await?;
    app.shutdown().await
}
