//! The processor on real Kafka and a real CQL database: the reference
//! example, duplicates, statuses out of order, and poison records.

use std::time::Duration;

use inboxflow_tests::faults::check::group_lag;
use inboxflow_tests::kafka;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, faults::Faults};
use processor::store::{DbStats, Store};
use shared::record::{self, Source};

const WAIT: Duration = Duration::from_secs(60);

fn ten_messages_from_three_senders(prefix: &str) -> Vec<Inbound> {
    (0..10)
        .map(|i| {
            Inbound::new(
                format!("{prefix}.m{i}"),
                ["5511900000001", "5511900000002", "5511900000003"][i % 3],
                1_700_000_000 + i as i64,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_webhook_gives_three_contacts_three_conversations_and_ten_messages()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let body = meta_body("pn-ref", &ten_messages_from_three_senders("wamid.ref"), &[]);
    env.produce_meta("ws_ref", "pn-ref", &body).await?;

    poll::until("10 messages stored", WAIT, || async {
        Ok((env.message_count("ws_ref").await? == 10).then_some(()))
    })
    .await?;
    let (unread, conversations) = poll::until("unread counts written", WAIT, || async {
        let (u, c) = env.unread_total("ws_ref").await?;
        Ok((u == 10).then_some((u, c)))
    })
    .await?;
    assert_eq!(conversations, 3);
    assert_eq!(unread, 10);
    // Polled: the contacts go out in the same wave as the rows seen above.
    let contacts = poll::until("the contacts stored", WAIT, || async {
        let n = env.contact_count("ws_ref").await?;
        Ok((n >= 3).then_some(n))
    })
    .await?;
    assert_eq!(contacts, 3);
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_offsets_are_committed_and_lag_comes_from_librdkafka_statistics()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    for round in 0..3 {
        let prefix = format!("wamid.commit{round}");
        let body = meta_body("pn-commit", &ten_messages_from_three_senders(&prefix), &[]);
        env.produce_meta("ws_commit", "pn-commit", &body).await?;
    }
    poll::until("30 messages stored", WAIT, || async {
        Ok((env.message_count("ws_commit").await? == 30).then_some(()))
    })
    .await?;
    let m = &running.metrics;
    poll::until(
        "the group's committed offset at the high watermark",
        WAIT,
        || async { Ok((group_lag(group, topic).await? == 0).then_some(())) },
    )
    .await?;
    poll::until("the commit's confirmation handled", WAIT, || async {
        Ok((m.offsets_pending_commit.get() == 0).then_some(()))
    })
    .await?;
    assert!(m.offset_commits.with_label_values(&["ok"]).get() >= 1);
    assert_eq!(m.offset_commits.with_label_values(&["failed"]).get(), 0);
    // librdkafka's statistics report the committed partition with no lag;
    // nothing else sets this gauge.
    poll::until("partition 0's lag reported as 0", WAIT, || async {
        Ok((lag_series(m) == [("0".to_owned(), 0)]).then_some(()))
    })
    .await?;
    running.stop().await?;
    env.cleanup().await
}

/// The `consumer_lag` series of `metrics`, as (partition, value).
fn lag_series(metrics: &processor::metrics::Metrics) -> Vec<(String, i64)> {
    let text = shared::metrics::render(&metrics.registry);
    let prefix = "inboxflow_processor_consumer_lag{partition=\"";
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| {
            let (partition, value) = rest.split_once("\"} ")?;
            Some((partition.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn decoded(body: &[u8], offset: i64) -> anyhow::Result<DecodedRecord> {
    let events = shared::webhook::normalize(Source::Meta, None, body, &[])?;
    Ok(DecodedRecord {
        workspace_id: "ws_rt".into(),
        partition: 0,
        offset,
        clock: processor::clocks::unstamped(offset),
        received_at_ms: None,
        events,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_round_trips_per_batch_do_not_grow_with_batch_size() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let store = Store::with_session(env.session.clone(), &env.cfg.cql).await?;
    let mut observed = Vec::new();
    for (i, size) in [10usize, 1000].into_iter().enumerate() {
        let messages: Vec<Inbound> = (0..size)
            .map(|n| {
                Inbound::new(
                    format!("wamid.rt{size}.{n}"),
                    format!("55119{:08}", n % 3 + i * 10),
                    1_700_000_000 + n as i64,
                )
            })
            .collect();
        let record = decoded(&meta_body("pn-rt", &messages, &[]), i as i64)?;
        let stats = DbStats::default();
        let outcome = pipeline::run_workspace(&store, "ws_rt", &[&record], &stats).await?;
        assert_eq!(outcome.messages_inserted, size as u64);
        println!(
            "batch of {size}: {} requests, {} sequential round trips",
            stats.requests(),
            stats.round_trips()
        );
        observed.push((stats.requests(), stats.round_trips()));
    }
    assert_eq!(
        observed[0].1, observed[1].1,
        "round trips must not depend on batch size"
    );
    assert!(
        observed[0].1 <= 8,
        "at most 8 sequential round trips, got {}",
        observed[0].1
    );
    assert!(
        observed[1].0 < 1000 / 10,
        "requests stay far below one per message: {}",
        observed[1].0
    );
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_within_and_across_batches_are_stored_once() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let a = Inbound::new("wamid.dup.a", "5511900000001", 1_700_000_000);
    let b = Inbound::new("wamid.dup.b", "5511900000001", 1_700_000_001);
    // Within one body, and the same body delivered twice (a sender retry).
    let body = meta_body("pn-dup", &[a.clone(), a.clone(), b.clone()], &[]);
    env.produce_meta("ws_dup", "pn-dup", &body).await?;
    env.produce_meta("ws_dup", "pn-dup", &body).await?;
    poll::until("both messages stored", WAIT, || async {
        Ok((env.message_count("ws_dup").await? >= 2).then_some(()))
    })
    .await?;
    // Across batches: the first batch is committed before this one arrives.
    let c = Inbound::new("wamid.dup.c", "5511900000001", 1_700_000_002);
    env.produce_meta("ws_dup", "pn-dup", &meta_body("pn-dup", &[b, c], &[]))
        .await?;
    poll::until("the third message stored", WAIT, || async {
        Ok((env.message_count("ws_dup").await? >= 3).then_some(()))
    })
    .await?;
    let duplicates_skipped = poll::until("duplicates counted", WAIT, || async {
        let n = running.metrics.duplicates_skipped.get();
        Ok((n >= 5).then_some(n))
    })
    .await?;

    let mut ids = env.message_ids("ws_dup").await?;
    ids.sort();
    assert_eq!(ids, vec!["wamid.dup.a", "wamid.dup.b", "wamid.dup.c"]);
    assert_eq!(env.unread_total("ws_dup").await?, (3, 1));
    // 6 occurrences of a and b in the twice-delivered body hold 4 repeats; b again in the third body is the 5th.
    assert_eq!(duplicates_skipped, 5);
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_out_of_order_end_monotonic_and_early_ones_are_kept() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let st = |id: &str, status: &'static str, ts: i64| Status {
        id: id.into(),
        status,
        timestamp: ts,
        recipient: "5511900000001".into(),
    };
    // read before delivered; a late delivered; failed is terminal; a status for an unknown message.
    let bodies = [
        [st("out.1", "read", 3), st("out.1", "delivered", 2)],
        [st("out.1", "sent", 1), st("out.2", "failed", 5)],
        [st("out.2", "read", 6), st("ghost", "delivered", 7)],
    ];
    for statuses in bodies {
        env.produce_meta("ws_st", "pn-st", &meta_body("pn-st", &[], &statuses))
            .await?;
    }

    poll::until("statuses applied", WAIT, || async {
        let done = env.status_of("ws_st", "ghost").await?.is_some();
        Ok(done.then_some(()))
    })
    .await?;
    assert_eq!(
        env.status_of("ws_st", "out.1").await?.as_deref(),
        Some("read")
    );
    assert_eq!(
        env.status_of("ws_st", "out.2").await?.as_deref(),
        Some("failed")
    );
    assert_eq!(
        env.status_of("ws_st", "ghost").await?.as_deref(),
        Some("delivered")
    );
    running.stop().await?;
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_goes_to_the_dead_letter_topic_and_does_not_block_the_partition()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let (_, poison_offset) = env
        .produce_raw(
            "ws_p",
            b"not json at all",
            &[
                (record::SCHEMA_VERSION_HEADER, "1"),
                (record::SOURCE_HEADER, "meta"),
            ],
        )
        .await?;
    let body = meta_body(
        "pn-p",
        &[Inbound::new(
            "wamid.after.poison",
            "5511900000001",
            1_700_000_000,
        )],
        &[],
    );
    env.produce_meta("ws_p", "pn-p", &body).await?;

    poll::until("the record after the poison is stored", WAIT, || async {
        Ok((env.message_count("ws_p").await? == 1).then_some(()))
    })
    .await?;
    let dlq = kafka::read_records(&env.cfg.kafka.dead_letter_topic, 1, WAIT)?;
    assert_eq!(dlq[0].value, b"not json at all");
    assert_eq!(dlq[0].key.as_deref(), Some("ws_p"));
    assert_eq!(
        dlq[0].headers[record::DLQ_SOURCE_TOPIC_HEADER],
        env.cfg.kafka.webhook_topic
    );
    assert_eq!(
        dlq[0].headers[record::DLQ_SOURCE_OFFSET_HEADER],
        poison_offset.to_string()
    );
    assert!(
        dlq[0].headers[record::REASON_HEADER].starts_with("shape"),
        "{:?}",
        dlq[0].headers
    );
    running.stop().await?;
    env.cleanup().await
}
