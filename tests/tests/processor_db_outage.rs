//! Database outage: Cassandra is stopped while records arrive. The processor
//! retries without committing, stays in its group, and once the database is
//! back every message is stored exactly once.
//!
//! This binary stops the shared local Cassandra, so it holds a single test;
//! cargo runs test binaries one after another.

use std::time::Duration;

use inboxflow_tests::faults::services::services;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::pipeline::faults::Faults;

const WAIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_stalls_the_processor_without_loss_or_duplicates() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let running = env.start(Faults::default()).await?;
    let body = |from: usize| {
        let msgs: Vec<Inbound> = (from..from + 5)
            .map(|i| {
                Inbound::new(
                    format!("wamid.o{i}"),
                    "5511900000001",
                    1_700_000_000 + i as i64,
                )
            })
            .collect();
        meta_body("pn-o", &msgs, &[])
    };
    env.produce_meta("ws_outage", "pn-o", &body(0)).await?;
    poll::until("the first messages stored", WAIT, || async {
        Ok((env.message_count("ws_outage").await? == 5).then_some(()))
    })
    .await?;

    services("cassandra-stop").await?;
    let outcome = async {
        env.produce_meta("ws_outage", "pn-o", &body(5)).await?;
        env.produce_meta("ws_outage", "pn-o", &body(5)).await?; // a redelivery during the outage
        env.produce_meta("ws_outage", "pn-o", &body(10)).await?;
        poll::until(
            "the processor to hit the outage and retry",
            WAIT,
            || async { Ok((running.metrics.db_failures.get() >= 2).then_some(())) },
        )
        .await?;
        anyhow::Ok(running.metrics.batches.get())
    }
    .await;
    services("cassandra-start").await?;
    let batches_during_outage = outcome?;

    poll::until("every message stored after the outage", WAIT, || async {
        Ok((env.message_count("ws_outage").await? == 15).then_some(()))
    })
    .await?;
    let (unread, conversations) = poll::until("unread counts caught up", WAIT, || async {
        let t = env.unread_total("ws_outage").await?;
        Ok((t.0 == 15).then_some(t))
    })
    .await?;
    assert_eq!((unread, conversations), (15, 1));
    // Polled, not read once: the rows can be in the database before the
    // batch that wrote them completes (its responses still in flight, or a
    // retry after one write of the wave failed on the reconnecting pool).
    poll::until(
        "batches to complete again after the outage",
        WAIT,
        || async { Ok((running.metrics.batches.get() > batches_during_outage).then_some(())) },
    )
    .await?;
    running.stop().await?;
    env.cleanup().await
}
