//! Fault: processors killed with SIGKILL every few seconds during a load.
//!
//! Two `processor run` OS processes share a six-partition topic; one of them
//! is killed (`kill -9`: no shutdown, no commit) and restarted every 1.5–4 s
//! while webhooks arrive through the real ingress. The ledger holds every
//! webhook answered 200; at the end each acknowledged message is in the
//! database exactly once and every conversation equals a clean run.
//! CI: 5,000 messages over 15 s, at least 4 kills; `INBOXFLOW_LONG_FAULTS=1`:
//! 25,000 messages over 60 s, at least 12 kills.
//!
//! Why through the ingress and not straight into Kafka: the ledger is then
//! exactly the set of 200s, the promise under test. The ingress is not the
//! bottleneck here (it answers as fast as Kafka acknowledges).

use std::sync::Arc;
use std::time::{Duration, Instant};

use inboxflow_tests::faults::check::settle_and_verify;
use inboxflow_tests::faults::load::{Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::faults::process::{ProcessorProcess, processor_binary};
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::unique_name;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processors_killed_with_sigkill_during_a_load_lose_and_double_nothing() -> anyhow::Result<()>
{
    let started = Instant::now();
    let (scale, min_kills) = if long() {
        (Scale::spread_load(100, 5000, 60), 12)
    } else {
        (Scale::spread_load(40, 1000, 15), 4)
    };
    processor_binary()?;
    let mut env = ProcessorEnv::new(6).await?;
    env.cfg.consumer.max_records = 200;
    let load = Arc::new(Load::generate("crash", scale));
    let app = spawn_ingress_for(&env, &load.registry_toml, |cfg| cfg).await?;
    let logs = std::env::temp_dir().join(unique_name("processor_logs"));
    std::fs::create_dir_all(&logs)?;
    let spawn = |n: usize| ProcessorProcess::spawn(&env.cfg, logs.join(format!("p{n}.log")));
    let mut processors = vec![spawn(0)?, spawn(1)?];

    let (ledger, sender) = start_sending(&app, &load, Duration::from_secs(60));

    let mut kills = 0usize;
    let mut spawned = 2usize;
    while !sender.is_finished() || kills < min_kills {
        // Chaos timing (1.5 to 4 s), not synchronisation.
        let pause = 1500 + (uuid::Uuid::new_v4().as_u128() % 2500) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let victim = kills % processors.len();
        processors[victim].ensure_running()?;
        let killed = processors.swap_remove(victim);
        killed.kill().await?;
        kills += 1;
        processors.push(spawn(spawned)?);
        spawned += 1;
    }
    sender.await?;
    let figures = settle_and_verify(&env, "processor kill -9", &scale, &ledger).await?;
    for p in &mut processors {
        p.ensure_running()?;
    }
    println!(
        "[faults] processor kill -9: {kills} kills, {}; {:.1} s",
        ledger.summary(),
        started.elapsed().as_secs_f64()
    );
    figures.assert_complete();
    for p in processors {
        p.kill().await?;
    }
    let _ = std::fs::remove_dir_all(&logs);
    env.cleanup().await
}
