//! A fatal producer error ends the ingress: `/healthz` turns 503 with the
//! reason, and the application's run future ends with an error (so `main`
//! exits non-zero and a supervisor starts a fresh process).
//!
//! The fatal error is real: librdkafka's in-process mock cluster answers the
//! idempotent producer's first ProduceRequest with OUT_OF_ORDER_SEQUENCE_NUMBER,
//! which librdkafka treats as a sequence desynchronisation, a fatal error.

use std::time::Duration;

use inboxflow_tests::ingress::{TEST_REGISTRY, TestTopics, kapso_message_body, spawn_ingress_with};
use inboxflow_tests::{poll, unique_name};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn a_fatal_producer_error_turns_healthz_unhealthy_and_ends_the_run_with_an_error()
-> anyhow::Result<()> {
    let cluster = MockCluster::new(1)?;
    let topics = TestTopics {
        routed: unique_name("fatal_routed"),
        unrouted: unique_name("fatal_unrouted"),
        dead_letter: unique_name("fatal_dlq"),
    };
    for topic in [&topics.routed, &topics.unrouted, &topics.dead_letter] {
        cluster.create_topic(topic, 1, 1)?;
    }
    let brokers = cluster.bootstrap_servers();
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.kafka.brokers = brokers;
        cfg
    })
    .await?;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );

    // A request still in flight (its body half sent) holds the shutdown's
    // drain open, so /healthz can be read while the process is stopping.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await?;
    slow.write_all(b"POST /webhooks/kapso HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
        .await?;

    let res = app
        .post_kapso(&kapso_message_body("100000000000001", "hi"))
        .await?;

    assert_ne!(res.status(), 200);
    let health = poll::until(
        "/healthz to turn unhealthy",
        Duration::from_secs(20),
        || async {
            let (status, text) = app.admin_get("/healthz").await?;
            Ok((status == 503).then_some(text))
        },
    )
    .await?;
    assert!(health.contains("producer_fatal"), "{health}");
    drop(slow);
    let ended = tokio::time::timeout(Duration::from_secs(30), app.shutdown()).await?;
    let err = ended.expect_err("the run future ends with an error");
    assert!(format!("{err:#}").contains("fatal"), "{err:#}");
    Ok(())
}
