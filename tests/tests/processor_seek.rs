//! A failed seek loses no record. While the database is down the consumer
//! pauses its partitions; a record polled meanwhile, from a partition
//! assigned during the wait, is sought back. Here that seek fails (injected:
//! reported as failed, not performed, so the position stays past the record,
//! as after a real failure). The record must still be stored exactly once,
//! and no commit may ever cover a record that is not stored.
//!
//! How the path is reached: a plain group member (the holder) takes one of
//! the two partitions; the processor takes the other and stalls on an
//! injected outage; records are written to the holder's partition and the
//! holder leaves, so that partition is assigned to the processor during its
//! pause, and its first record arrives while paused.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use inboxflow_tests::faults::check::committed;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use inboxflow_tests::{kafka, poll};
use processor::pipeline::faults::Faults;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

const WAIT: Duration = Duration::from_secs(60);
const PHONE_NUMBER_ID: &str = "pn-seek";

static OUTAGE: AtomicBool = AtomicBool::new(true);
static FAILED_SEEKS: AtomicUsize = AtomicUsize::new(0);

/// One record written by the test: where it went and the message it holds.
struct Sent {
    partition: i32,
    offset: i64,
    workspace: &'static str,
    message_id: &'static str,
}

/// A group member that takes partitions and never reads them.
fn holder(env: &ProcessorEnv) -> anyhow::Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka::brokers())
        .set("group.id", &env.cfg.consumer.group_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()?;
    consumer.subscribe(&[&env.cfg.kafka.webhook_topic])?;
    Ok(consumer)
}

/// The partitions `consumer` holds, serving its rebalance callbacks first.
fn held_partitions(consumer: &BaseConsumer) -> anyhow::Result<Vec<i32>> {
    let _ = consumer.poll(Duration::ZERO);
    Ok(consumer
        .assignment()?
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect())
}

async fn send(
    env: &ProcessorEnv,
    partition: i32,
    workspace: &'static str,
    message_id: &'static str,
    from: &str,
) -> anyhow::Result<Sent> {
    let body = meta_body(
        PHONE_NUMBER_ID,
        &[Inbound::new(message_id, from, 1_700_000_000)],
        &[],
    );
    let offset = env
        .produce_meta_to(partition, workspace, PHONE_NUMBER_ID, &body)
        .await?;
    Ok(Sent {
        partition,
        offset,
        workspace,
        message_id,
    })
}

/// Once the group has committed every record of `sent`: `Ok`; as soon as a
/// commit covers a record whose message is not stored: the violation.
async fn commits_cover_only_stored(env: &ProcessorEnv, sent: &[Sent]) -> anyhow::Result<()> {
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    let outcome = poll::until(
        "the group's commits to reach every record",
        WAIT,
        || async {
            // Commits first: a message stored before its commit is seen by the later read.
            let at = committed(group, topic).await?;
            for s in sent {
                let stored = env.message_ids(s.workspace).await?;
                let covered = at.get(&s.partition).is_some_and(|c| *c > s.offset);
                if covered && !stored.iter().any(|id| id == s.message_id) {
                    return Ok(Some(Err(format!(
                        "partition {} committed to {:?}, past offset {} ({}), which is not stored",
                        s.partition,
                        at.get(&s.partition),
                        s.offset,
                        s.message_id
                    ))));
                }
            }
            let all = sent.iter().all(|s| at.get(&s.partition) > Some(&s.offset));
            Ok(all.then_some(Ok(())))
        },
    )
    .await?;
    outcome.map_err(anyhow::Error::msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_seek_back_fails_during_a_pause_is_stored_once_and_never_skipped()
-> anyhow::Result<()> {
    let mut env = ProcessorEnv::new(2).await?;
    // Long waits between retries: the new partition's first record then
    // arrives inside a pause, not between two of them.
    env.cfg.retry.initial_backoff = Duration::from_secs(4);
    env.cfg.retry.max_backoff = Duration::from_secs(4);
    let holder = holder(&env)?;
    poll::until("the holder to own both partitions", WAIT, || async {
        Ok((held_partitions(&holder)?.len() == 2).then_some(()))
    })
    .await?;
    let faults = Faults {
        outage: Some(&OUTAGE),
        fail_seeks: Some(&FAILED_SEEKS),
        ..Faults::default()
    };
    let running = env.start(faults).await?;
    let kept = poll::until("the processor to take one partition", WAIT, || async {
        let held = held_partitions(&holder)?;
        let split = held.len() == 1 && running.metrics.assigned_partitions.get() == 1;
        Ok(split.then(|| held[0]))
    })
    .await?;
    let own = 1 - kept;

    let mut sent = vec![send(&env, own, "ws_seek_a", "wamid.x0", "5511900000021").await?];
    poll::until("the processor to stall on the outage", WAIT, || async {
        let _ = held_partitions(&holder)?;
        Ok((running.metrics.db_failures.get() >= 1).then_some(()))
    })
    .await?;
    for id in ["wamid.y0", "wamid.y1"] {
        sent.push(send(&env, kept, "ws_seek_b", id, "5511900000022").await?);
    }
    tokio::task::spawn_blocking(move || drop(holder)).await?;
    poll::until("a seek back to fail during the pause", WAIT, || async {
        Ok((FAILED_SEEKS.load(Ordering::SeqCst) >= 1).then_some(()))
    })
    .await?;
    OUTAGE.store(false, Ordering::SeqCst);

    commits_cover_only_stored(&env, &sent).await?;
    let mut by_workspace: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for ws in ["ws_seek_a", "ws_seek_b"] {
        let mut ids = env.message_ids(ws).await?;
        ids.sort();
        by_workspace.insert(ws, ids);
    }
    assert_eq!(by_workspace["ws_seek_a"], ["wamid.x0"]);
    assert_eq!(by_workspace["ws_seek_b"], ["wamid.y0", "wamid.y1"]);
    assert_eq!(env.unread_total("ws_seek_a").await?, (1, 1));
    assert_eq!(
        env.unread_total("ws_seek_b").await?,
        (2, 1),
        "counted once each"
    );
    running.stop().await?;
    env.cleanup().await
}
