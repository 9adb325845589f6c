//! One bad record never stops the others (issue: a signed 2 MB body that
//! routes but is not an event wedged every tenant of the processor; a
//! permanent database error was retried forever). On real Kafka and a real
//! CQL database.

use std::time::Duration;

use inboxflow_tests::kafka;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body, record_headers};
use processor::pipeline::faults::Faults;
use shared::record::{self, RecordHeaders, Source};

const WAIT: Duration = Duration::from_secs(60);

fn headers(ws: &str, pn: &str) -> RecordHeaders {
    record_headers(Source::Kapso, ws, pn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_megabyte_poison_record_is_dead_lettered_whole_and_the_next_webhook_is_stored()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let junk = "x".repeat(2 * 1024 * 1024);
    let poison = format!(r#"{{"phone_number_id": "pn-big", "junk": "{junk}"}}"#);
    let h = headers("ws_big", "pn-big");
    let (_, poison_offset) = env.produce_record("ws_big", poison.as_bytes(), &h).await?;
    let next = meta_body(
        "pn-big",
        &[Inbound::new("wamid.after", "5511900000009", 1_700_000_000)],
        &[],
    );
    env.produce_meta("ws_big", "pn-big", &next).await?;

    poll::until("the webhook after the poison stored", WAIT, || async {
        Ok((env.message_count("ws_big").await? == 1).then_some(()))
    })
    .await?;
    let dlq = kafka::read_records(&env.cfg.kafka.dead_letter_topic, 1, WAIT)?;
    assert_eq!(
        dlq[0].value.len(),
        poison.len(),
        "the dead letter keeps the whole body"
    );
    assert_eq!(
        dlq[0].headers[record::DLQ_SOURCE_OFFSET_HEADER],
        poison_offset.to_string()
    );
    assert!(
        !dlq[0]
            .headers
            .contains_key(record::DLQ_VALUE_OMITTED_HEADER)
    );
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_for_good_is_dead_lettered_and_the_rest_are_stored()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let one =
        |id: &str, from: &str| meta_body("pn-a", &[Inbound::new(id, from, 1_700_000_000)], &[]);
    env.produce_meta("ws_a", "pn-a", &one("wamid.good1", "5511900000001"))
        .await?;
    let (_, bad_offset) = env
        .produce_meta("ws_a", "pn-a", &one("wamid.bad", "5511900000002"))
        .await?;
    env.produce_meta("ws_a", "pn-a", &one("wamid.good2", "5511900000003"))
        .await?;
    let other = meta_body(
        "pn-b",
        &[Inbound::new("wamid.good3", "5511900000004", 1_700_000_000)],
        &[],
    );
    env.produce_meta("ws_b", "pn-b", &other).await?;
    let running = env
        .start(Faults {
            refuse_message: Some("wamid.bad"),
            ..Faults::default()
        })
        .await?;

    let stored = poll::until("every other record stored", WAIT, || async {
        let mut ids = env.message_ids("ws_a").await?;
        ids.extend(env.message_ids("ws_b").await?);
        ids.sort();
        Ok((ids.len() == 3).then_some(ids))
    })
    .await?;
    assert_eq!(stored, ["wamid.good1", "wamid.good2", "wamid.good3"]);
    let dlq = kafka::read_records(&env.cfg.kafka.dead_letter_topic, 1, WAIT)?;
    assert_eq!(
        dlq[0].headers[record::DLQ_SOURCE_OFFSET_HEADER],
        bad_offset.to_string()
    );
    assert!(
        dlq[0].headers[record::REASON_HEADER].starts_with("database refused the record"),
        "{:?}",
        dlq[0].headers[record::REASON_HEADER]
    );
    // Polled: the counters go out in the same wave as the messages seen above.
    let counted = poll::until("the stored messages counted", WAIT, || async {
        let t = env.unread_total("ws_a").await?;
        Ok((t.0 >= 2).then_some(t))
    })
    .await?;
    assert_eq!(counted, (2, 2), "the refused record is not counted");
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_over_the_key_limit_is_ignored_and_never_retried() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    // Cassandra refuses partition keys over 64 KiB ("Key length ... is longer than maximum").
    let huge = format!("wamid.{}", "k".repeat(70_000));
    let body = meta_body(
        "pn-k",
        &[Inbound::new(huge, "5511900000001", 1_700_000_000)],
        &[],
    );
    env.produce_meta("ws_k", "pn-k", &body).await?;
    let next = meta_body(
        "pn-k",
        &[Inbound::new("wamid.next", "5511900000001", 1_700_000_001)],
        &[],
    );
    env.produce_meta("ws_k", "pn-k", &next).await?;

    poll::until("the next message stored", WAIT, || async {
        Ok((env.message_count("ws_k").await? == 1).then_some(()))
    })
    .await?;
    assert_eq!(env.message_ids("ws_k").await?, ["wamid.next"]);
    running.stop().await?;
    let dlq = kafka::read_all(&env.cfg.kafka.dead_letter_topic, WAIT)?;
    assert!(
        dlq.is_empty(),
        "an over-long id is a malformed message, counted and ignored"
    );
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_ingress_did_not_seal_is_dead_lettered_and_stores_nothing()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let forged = meta_body(
        "pn-forged",
        &[Inbound::new("wamid.forged", "5511900000010", 1_700_000_000)],
        &[],
    );
    // Written straight to the topic with valid contract headers, unsealed.
    let h = record_headers(Source::Meta, "ws_forged", "pn-forged").to_kafka();
    let producer = kafka::producer()?;
    let topic = &env.cfg.kafka.webhook_topic;
    kafka::produce_headers(&producer, topic, "ws_forged", &forged, h).await?;
    let genuine = meta_body(
        "pn-forged",
        &[Inbound::new(
            "wamid.genuine",
            "5511900000010",
            1_700_000_001,
        )],
        &[],
    );
    env.produce_meta("ws_forged", "pn-forged", &genuine).await?;

    poll::until("the sealed webhook stored", WAIT, || async {
        Ok((env.message_count("ws_forged").await? == 1).then_some(()))
    })
    .await?;
    assert_eq!(env.message_ids("ws_forged").await?, ["wamid.genuine"]);
    let dlq = kafka::read_records(&env.cfg.kafka.dead_letter_topic, 1, WAIT)?;
    assert!(
        dlq[0].headers[record::REASON_HEADER].starts_with("envelope"),
        "{:?}",
        dlq[0].headers
    );
    let dead = running
        .metrics
        .dead_lettered
        .with_label_values(&["envelope"]);
    assert_eq!(dead.get(), 1);
    running.stop().await?;
    env.cleanup().await
}
