//! Fault: the database is down for 30 s during a load.
//!
//! Webhooks keep arriving through the in-process ingress (Kafka is up, so
//! every one is acknowledged) while Cassandra is stopped for at least 30 s.
//! The processor must stall without committing (its committed offsets do not
//! move during the outage), recover by itself, drain the lag, and leave every
//! acknowledged message in the database exactly once, with the counters of a
//! clean run. CI: 3,000 messages over 40 s; `INBOXFLOW_LONG_FAULTS=1`:
//! 20,000 over 90 s with a 60 s outage.
//!
//! This binary stops the shared database, so it holds a single test; cargo
//! runs test binaries one at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inboxflow_tests::faults::check::{committed, settle_and_verify};
use inboxflow_tests::faults::load::{Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::faults::services::RestartOnDrop;
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use processor::pipeline::faults::Faults;

const WAIT: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_30_s_database_outage_stalls_the_processor_then_it_drains_exactly() -> anyhow::Result<()>
{
    let started = Instant::now();
    let (bodies, seconds, outage_for) = if long() {
        (4000, 90, Duration::from_secs(60))
    } else {
        (600, 40, Duration::from_secs(30))
    };
    let scale = Scale::spread_load(30, bodies, seconds);
    let env = ProcessorEnv::new(6).await?;
    let running = env.start(Faults::default()).await?;
    let load = Arc::new(Load::generate("dbout", scale));
    let app = spawn_ingress_for(&env, &load.registry_toml, |cfg| cfg).await?;
    let (ledger, sender) = start_sending(&app, &load, Duration::from_secs(60));
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);

    poll::until("the first messages stored", WAIT, || async {
        Ok((running.metrics.messages_inserted.get() > 0).then_some(()))
    })
    .await?;
    let database = RestartOnDrop::stop("cassandra-stop", "cassandra-start").await?;
    let outage = Instant::now();
    poll::until("the processor to hit the outage", WAIT, || async {
        Ok((running.metrics.db_failures.get() > 0).then_some(()))
    })
    .await?;
    // librdkafka commits stored offsets on an interval: the last batch stored
    // before the outage may not be committed yet. Read once it is.
    poll::until(
        "the offsets stored before the outage to be committed",
        WAIT,
        || async { Ok((running.metrics.offsets_pending_commit.get() == 0).then_some(())) },
    )
    .await?;
    let stalled_at = committed(group, topic).await?;
    let batches_stalled = running.metrics.batches.get();
    // The outage itself lasts `outage_for` while the load goes on: a
    // scenario duration, not a wait for a condition.
    tokio::time::sleep_until((outage + outage_for).into()).await;
    let still_at = committed(group, topic).await?;
    let failures = running.metrics.db_failures.get();
    let batches_during = running.metrics.batches.get() - batches_stalled;
    database.start().await?;
    let outage = outage.elapsed();

    sender.await?;
    let figures = settle_and_verify(&env, "database outage", &scale, &ledger).await?;
    println!(
        "[faults] database outage: {:.1} s down (stop to ready), {failures} failed attempts, \
         {batches_during} batches completed while down, {}; {:.1} s",
        outage.as_secs_f64(),
        ledger.summary(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        stalled_at, still_at,
        "nothing committed while the database was down"
    );
    assert_eq!(
        batches_during, 0,
        "no batch completed while the database was down"
    );
    assert!(failures >= 2, "the processor kept retrying: {failures}");
    figures.assert_complete();
    running.stop().await?;
    env.cleanup().await
}
