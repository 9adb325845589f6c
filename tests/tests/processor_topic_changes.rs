//! The webhook topic changes under a running system: partitions are added,
//! or the topic is deleted and created again. The write clocks
//! (`processor::clocks`) are only valid for the layout they were set for,
//! so the processor refuses the changed topic with an error naming the way
//! on, stores and commits nothing of it, and after `processor clocks
//! rebase` every new message is stored and counted exactly once (with the
//! old (partition, offset) watermark, the re-created topic's first records
//! were silently never counted).

use std::time::Duration;

use anyhow::Context;

use inboxflow_tests::kafka;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::app;
use processor::pipeline::faults::Faults;

const WAIT: Duration = Duration::from_secs(90);
const PHONE_NUMBER_ID: &str = "pn-topic";
const CONTACT: &str = "5511977770000";

fn body(id: &str, at: i64) -> Vec<u8> {
    meta_body(PHONE_NUMBER_ID, &[Inbound::new(id, CONTACT, at)], &[])
}

/// Waits until every workspace has `messages` messages, all unread in one
/// conversation.
async fn stored(env: &ProcessorEnv, workspaces: &[String], messages: usize) -> anyhow::Result<()> {
    poll::until("every message stored and counted", WAIT, || async {
        for ws in workspaces {
            let n = env.message_count(ws).await?;
            let unread = env.unread_total(ws).await?;
            if n != messages || unread != (messages as i64, 1) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
}

/// Starts a processor, runs it until it stops by itself, and returns its
/// error (at start-up or from a batch).
async fn refusal(env: &ProcessorEnv) -> anyhow::Result<String> {
    let running = match env.start(Faults::default()).await {
        Ok(running) => running,
        Err(err) => return Ok(format!("{err:#}")),
    };
    let ended = tokio::time::timeout(WAIT, running.join()).await?;
    match ended {
        Ok(batches) => anyhow::bail!("the processor stopped cleanly after {batches} batches"),
        Err(err) => Ok(format!("{err:#}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_are_refused_until_a_rebase_then_every_message_counts_once()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(2).await?;
    let workspaces: Vec<String> = (0..12).map(|i| format!("ws_grow_{i}")).collect();
    for ws in &workspaces {
        env.produce_meta(
            ws,
            PHONE_NUMBER_ID,
            &body(&format!("{ws}.m0"), 1_700_000_000),
        )
        .await?;
    }
    let first = env.start(Faults::default()).await?;
    stored(&env, &workspaces, 1).await?;
    first.stop().await?;

    let topic = &env.cfg.kafka.webhook_topic;
    kafka::add_partitions(topic, 8).await?;
    // A new producer sees the eight partitions at once.
    let producer = kafka::producer()?;
    let mut moved = 0;
    for ws in &workspaces {
        let body = body(&format!("{ws}.m1"), 1_700_000_100);
        let headers = inboxflow_tests::webhooks::record_headers(
            shared::record::Source::Meta,
            ws,
            PHONE_NUMBER_ID,
        );
        let sealed = inboxflow_tests::webhooks::sealed(ws, headers, &body);
        let (partition, _) = kafka::produce_headers(&producer, topic, ws, &body, sealed).await?;
        moved += usize::from(partition >= 2);
    }
    assert!(moved > 0, "sanity: some workspace moved to a new partition");

    let error = refusal(&env).await?;
    assert!(
        error.contains("has 8 partitions") && error.contains("processor clocks rebase"),
        "{error}"
    );
    for ws in &workspaces {
        assert_eq!(
            env.message_count(ws).await?,
            1,
            "nothing stored while refused"
        );
    }

    // The ingress kept writing, so the old partitions are not drained: a
    // plain rebase refuses, and --force is the operator's informed choice
    // (safe here: each workspace has one new record).
    let refused = app::rebase_clocks(&env.cfg, false).await;
    let refused = format!(
        "{:#}",
        refused.err().context("a rebase of an undrained topic")?
    );
    assert!(refused.contains("has not committed"), "{refused}");
    let report = app::rebase_clocks(&env.cfg, true).await?;
    assert_eq!(
        (report.previous_partitions, report.partitions),
        (Some(2), 8)
    );
    let after = env.start(Faults::default()).await?;
    stored(&env, &workspaces, 2).await?;
    after.stop().await?;
    println!("[topic] partitions 2 -> 8: {moved} of 12 workspaces moved; all counted once");
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_topic_is_refused_until_a_rebase_then_its_messages_count() -> anyhow::Result<()>
{
    let env = ProcessorEnv::new(1).await?;
    let ws = vec!["ws_recreated".to_owned()];
    for i in 0..5 {
        env.produce_meta(
            &ws[0],
            PHONE_NUMBER_ID,
            &body(&format!("old.{i}"), 1_700_000_000 + i),
        )
        .await?;
    }
    let first = env.start(Faults::default()).await?;
    stored(&env, &ws, 5).await?;
    let topic = env.cfg.kafka.webhook_topic.clone();
    poll::until(
        "the processor to note offset 4 as processed",
        WAIT,
        || async {
            let rows: Vec<(Option<i64>,)> = env
            .session
            .query_unpaged(
                format!(
                    "SELECT last_offset FROM {}.partition_clocks WHERE topic = ? AND partition = 0",
                    env.cfg.cql.keyspace
                ),
                (&topic,),
            )
            .await?
            .into_rows_result()?
            .rows::<(Option<i64>,)>()?
            .collect::<Result<_, _>>()?;
            Ok((rows.first().and_then(|r| r.0) == Some(4)).then_some(()))
        },
    )
    .await?;
    first.stop().await?;

    kafka::recreate_topic(&topic, 1).await?;
    let producer = kafka::producer()?;
    for i in 0..2 {
        let body = body(&format!("new.{i}"), 1_700_000_100 + i);
        let headers = inboxflow_tests::webhooks::record_headers(
            shared::record::Source::Meta,
            &ws[0],
            PHONE_NUMBER_ID,
        );
        let sealed = inboxflow_tests::webhooks::sealed(&ws[0], headers, &body);
        kafka::produce_headers(&producer, &topic, &ws[0], &body, sealed).await?;
    }

    let error = refusal(&env).await?;
    assert!(
        error.contains("re-created") && error.contains("processor clocks rebase"),
        "{error}"
    );
    assert_eq!(
        env.message_count(&ws[0]).await?,
        5,
        "nothing stored while refused"
    );

    app::rebase_clocks(&env.cfg, false).await?;
    let after = env.start(Faults::default()).await?;
    stored(&env, &ws, 7).await?;
    after.stop().await?;
    env.cleanup().await
}
