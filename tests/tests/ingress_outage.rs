//! Kafka unreachable: the ingress answers 503 with Retry-After within its
//! ack deadline (never 200 for a webhook that was not stored), reports not
//! ready, and still shuts down gracefully with a request in flight.

use std::time::{Duration, Instant};

use inboxflow_tests::ingress::{
    ACME_PHONE, TEST_REGISTRY, TestIngress, TestTopics, kapso_message_body, metric_value,
    metrics_text, spawn_ingress_with,
};
use inboxflow_tests::poll;

/// A loopback address where nothing listens: bound, then released.
fn dead_broker() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(addr.to_string())
}

fn offline_topics() -> TestTopics {
    TestTopics {
        routed: inboxflow_tests::unique_name("offline_routed"),
        unrouted: inboxflow_tests::unique_name("offline_unrouted"),
        dead_letter: inboxflow_tests::unique_name("offline_dlq"),
    }
}

/// An ingress whose broker is a closed port, with a 2 s ack deadline.
async fn offline_ingress() -> anyhow::Result<TestIngress> {
    let broker = dead_broker()?;
    spawn_ingress_with(TEST_REGISTRY, offline_topics(), |mut cfg| {
        cfg.kafka.brokers = broker;
        cfg.ack_timeout = Duration::from_secs(2);
        cfg
    })
    .await
}

#[tokio::test]
async fn an_unreachable_broker_gets_503_with_retry_after_within_the_deadline() -> anyhow::Result<()>
{
    let app = offline_ingress().await?;
    let started = Instant::now();

    let res = app
        .post_kapso(&kapso_message_body(ACME_PHONE, "lost?"))
        .await?;

    let waited = started.elapsed();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5");
    assert!(
        waited >= Duration::from_millis(1500),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(3500),
        "deadline overrun: {waited:?}"
    );
    let ready = app.client.get(app.admin_url("/readyz")).send().await?;
    assert_eq!(ready.status(), 503);
    let metrics = metrics_text(&app).await?;
    let series = "inboxflow_ingress_requests_total{route=\"kapso\",status=\"503\"}";
    assert_eq!(metric_value(&metrics, series), Some(1.0));
    Ok(())
}

#[tokio::test]
async fn shutdown_answers_the_in_flight_request_before_stopping() -> anyhow::Result<()> {
    let app = offline_ingress().await?;
    let request = tokio::spawn(
        app.kapso_request(
            "/webhooks/kapso",
            &kapso_message_body(ACME_PHONE, "in flight"),
            inboxflow_tests::ingress::KAPSO_SECRET,
        )
        .send(),
    );
    poll::until(
        "the request to be in flight",
        Duration::from_secs(10),
        || async {
            let text = metrics_text(&app).await?;
            Ok(
                (metric_value(&text, "inboxflow_ingress_requests_in_flight") == Some(1.0))
                    .then_some(()),
            )
        },
    )
    .await?;
    let health = app.url("/healthz");
    let client = app.client.clone();

    app.trigger_stop();

    let answered = request.await??;
    assert_eq!(
        answered.status(),
        503,
        "the in-flight request is answered, not cut"
    );
    app.shutdown().await?;
    assert!(
        client.get(health).send().await.is_err(),
        "listener still open after shutdown"
    );
    Ok(())
}
