//! Fault: a zombie processor. A `processor run` OS process stops itself with
//! SIGSTOP in the middle of a batch (after its lookups, before any of its
//! writes), past its session timeout, so the group evicts it. A second processor takes over,
//! reads those records again and every record after them, and stores all
//! of the load. Only then is the first continued (SIGCONT): its batch goes
//! on and sends all of its stale writes, computed from the rows it read
//! before it stopped. The write clocks (`processor::clocks`) must make them
//! lose: at the end every acknowledged message is stored once and every
//! conversation's counters and last message equal a clean run's.
//!
//! CI: 800 messages over 8 s; `INBOXFLOW_LONG_FAULTS=1`: 5,000 over 30 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inboxflow_tests::faults::check::{settle_and_verify, verify};
use inboxflow_tests::faults::load::{Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::faults::process::{ProcessorProcess, processor_binary};
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::unique_name;
use processor::pipeline::faults::STOP_AFTER_ENV;

const WAIT: Duration = Duration::from_secs(120);
const WENT_ON: &str = "fault: the stopped batch went on";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_processor_stopped_mid_batch_past_its_session_cannot_overwrite_its_successor()
-> anyhow::Result<()> {
    let started = Instant::now();
    let scale = if long() {
        Scale::spread_load(6, 1000, 30)
    } else {
        Scale::spread_load(4, 160, 8)
    };
    processor_binary()?;
    let mut env = ProcessorEnv::new(2).await?;
    env.cfg.consumer.max_records = 40;
    // The broker's smallest allowed session (group.min.session.timeout.ms).
    env.cfg.consumer.session_timeout = Duration::from_secs(6);
    let load = Arc::new(Load::generate("zombie", scale));
    let app = spawn_ingress_for(&env, &load.registry_toml, |cfg| cfg).await?;
    let logs = std::env::temp_dir().join(unique_name("zombie_logs"));
    std::fs::create_dir_all(&logs)?;
    let zombie_log = logs.join("zombie.log");
    // A request timeout longer than the stop: the driver's timers run on
    // through a SIGSTOP, so with the default 5 s the stale batch's writes
    // could time out on resume instead of being sent (seen in CI), and then
    // nothing stale would be tested.
    let stop = [
        (STOP_AFTER_ENV, "lookups"),
        ("INBOXFLOW_CQL__REQUEST_TIMEOUT", "60s"),
    ];
    let mut zombie = ProcessorProcess::spawn_with(&env.cfg, zombie_log.clone(), &stop)?;
    let (ledger, sender) = start_sending(&app, &load, Duration::from_secs(90));

    poll::until(
        "the first processor to stop itself mid-batch",
        WAIT,
        || async { Ok(zombie.is_stopped()?.then_some(())) },
    )
    .await?;
    let stopped = Instant::now();
    let mut successor = ProcessorProcess::spawn(&env.cfg, logs.join("successor.log"))?;
    sender.await?;
    let acknowledged = ledger.acknowledged();
    poll::until(
        "the successor to store every acknowledged message",
        WAIT,
        || async {
            let sent = scale.messages() as u64;
            let f = verify(&env.session, &env.cfg.cql.keyspace, sent, &acknowledged).await?;
            Ok((f.found == f.acknowledged && f.conversation_mismatches.is_empty()).then_some(()))
        },
    )
    .await?;
    let stopped_for = stopped.elapsed();
    anyhow::ensure!(
        zombie.is_stopped()?,
        "the first processor was continued early"
    );
    zombie.signal("CONT").await?;
    poll::until("the stopped batch to send its last wave", WAIT, || async {
        let log = std::fs::read_to_string(&zombie_log)?;
        Ok(log
            .lines()
            .any(|l| l.contains(WENT_ON) && l.contains("\"writes\""))
            .then_some(()))
    })
    .await?;
    let figures = settle_and_verify(&env, "zombie", &scale, &ledger).await?;
    zombie.ensure_running()?;
    successor.ensure_running()?;
    println!(
        "[faults] zombie: stopped for {:.1} s (session timeout 6 s), {}; {:.1} s",
        stopped_for.as_secs_f64(),
        ledger.summary(),
        started.elapsed().as_secs_f64()
    );
    figures.assert_complete();
    zombie.kill().await?;
    successor.kill().await?;
    let _ = std::fs::remove_dir_all(&logs);
    env.cleanup().await
}
