//! Consumer-group scaling: three processors share a six-partition topic; one
//! stops mid-stream, the others take over its partitions, and every message
//! ends in the database exactly once (message rows and unread counts agree).

use std::time::Duration;

use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::pipeline::faults::Faults;

const WAIT: Duration = Duration::from_secs(120);
const WORKSPACES: usize = 24;
const BODIES_PER_WORKSPACE: usize = 10;
const MESSAGES_PER_BODY: usize = 5;

fn workspace(w: usize) -> String {
    format!("ws_scale_{w:02}")
}

async fn produce_round(env: &ProcessorEnv, round: usize) -> anyhow::Result<()> {
    for w in 0..WORKSPACES {
        let messages: Vec<Inbound> = (0..MESSAGES_PER_BODY)
            .map(|i| {
                let n = round * MESSAGES_PER_BODY + i;
                Inbound::new(
                    format!("wamid.s{w}.{n}"),
                    format!("55119{:08}", w * 10 + n % 4),
                    1_700_000_000 + n as i64,
                )
            })
            .collect();
        env.produce_meta(
            &workspace(w),
            &format!("pn-{w}"),
            &meta_body(&format!("pn-{w}"), &messages, &[]),
        )
        .await?;
    }
    Ok(())
}

async fn totals(env: &ProcessorEnv) -> anyhow::Result<(usize, i64)> {
    let mut stored = 0;
    let mut unread = 0;
    for w in 0..WORKSPACES {
        stored += env.message_count(&workspace(w)).await?;
        unread += env.unread_total(&workspace(w)).await?.0;
    }
    Ok((stored, unread))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processors_share_partitions_and_survive_one_stopping_mid_stream()
-> anyhow::Result<()> {
    let mut env = ProcessorEnv::new(6).await?;
    env.cfg.consumer.max_records = 20;
    let a = env.start(Faults::default()).await?;
    let b = env.start(Faults::default()).await?;
    let c = env.start(Faults::default()).await?;

    poll::until(
        "the six partitions spread over the three processors",
        WAIT,
        || async {
            let owned: Vec<i64> = [&a, &b, &c]
                .iter()
                .map(|p| p.metrics.assigned_partitions.get())
                .collect();
            Ok((owned.iter().all(|n| *n > 0) && owned.iter().sum::<i64>() == 6).then_some(()))
        },
    )
    .await?;

    let half = BODIES_PER_WORKSPACE / 2;
    for round in 0..half {
        produce_round(&env, round).await?;
    }
    let expected_half = (WORKSPACES * half * MESSAGES_PER_BODY) as u64;
    poll::until("the first half stored", WAIT, || async {
        let inserted: u64 = [&a, &b, &c]
            .iter()
            .map(|p| p.metrics.messages_inserted.get())
            .sum();
        Ok((inserted >= expected_half).then_some(()))
    })
    .await?;
    // Stop the busiest processor mid-stream; the others must take over its partitions.
    let mut processors = vec![a, b, c];
    processors.sort_by_key(|p| std::cmp::Reverse(p.metrics.messages_inserted.get()));
    let stopped = processors.remove(0);
    let stopped_metrics = stopped.metrics.clone();
    stopped.stop().await?;
    // Read once stopped: a batch in flight at the stop still counts its inserts.
    let stopped_after = stopped_metrics.messages_inserted.get();
    let (a, c) = (processors.remove(0), processors.remove(0));
    for round in half..BODIES_PER_WORKSPACE {
        produce_round(&env, round).await?;
    }

    let expected = WORKSPACES * BODIES_PER_WORKSPACE * MESSAGES_PER_BODY;
    let (stored, unread) = poll::until("every message stored and counted", WAIT, || async {
        let (stored, unread) = totals(&env).await?;
        Ok((stored >= expected && unread >= expected as i64).then_some((stored, unread)))
    })
    .await?;
    assert_eq!(stored, expected, "each message stored once");
    assert_eq!(unread, expected as i64, "each message counted once");
    assert!(stopped_after > 0);
    // Polled: the rows can land before the batches that wrote them count them.
    poll::until(
        "the survivors to count at least one insert per message",
        WAIT,
        || async {
            let inserted = a.metrics.messages_inserted.get()
                + c.metrics.messages_inserted.get()
                + stopped_after;
            Ok((inserted >= expected as u64).then_some(()))
        },
    )
    .await?;
    a.stop().await?;
    c.stop().await?;
    env.cleanup().await
}
