//! Fault: a rebalance storm. In-process processors join and leave the
//! consumer group every second or so (half of the departures graceful, half
//! abrupt, as a crash) while a load arrives through the real ingress. The
//! database must end exact: every acknowledged message once, conversations
//! as in a clean run. CI: 5,000 messages, at least 10 membership changes;
//! `INBOXFLOW_LONG_FAULTS=1`: 20,000 messages, at least 40.

use std::sync::Arc;
use std::time::{Duration, Instant};

use inboxflow_tests::faults::check::settle_and_verify;
use inboxflow_tests::faults::load::{Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::processor::ProcessorEnv;
use processor::app::RunningProcessor;
use processor::pipeline::faults::Faults;

const MAX_MEMBERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processors_joining_and_leaving_repeatedly_leave_the_database_exact() -> anyhow::Result<()>
{
    let started = Instant::now();
    let (bodies, seconds, min_changes) = if long() {
        (4000, 60, 40)
    } else {
        (1000, 15, 10)
    };
    let scale = Scale::spread_load(40, bodies, seconds);
    let mut env = ProcessorEnv::new(6).await?;
    env.cfg.consumer.max_records = 100;
    let load = Arc::new(Load::generate("storm", scale));
    let app = spawn_ingress_for(&env, &load.registry_toml, |cfg| cfg).await?;
    let mut members: Vec<RunningProcessor> = vec![env.start(Faults::default()).await?];
    let (ledger, sender) = start_sending(&app, &load, Duration::from_secs(60));

    let (mut joins, mut graceful, mut abrupt) = (0usize, 0usize, 0usize);
    while !sender.is_finished() || joins + graceful + abrupt < min_changes {
        // Storm timing (0.5 to 1.5 s), not synchronisation.
        let pause = 500 + (uuid::Uuid::new_v4().as_u128() % 1000) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let roll = uuid::Uuid::new_v4().as_u128() % 3;
        if members.len() < 2 || (roll == 0 && members.len() < MAX_MEMBERS) {
            members.push(env.start(Faults::default()).await?);
            joins += 1;
        } else {
            let leaving = members.remove((roll as usize) % members.len());
            if (graceful + abrupt) % 2 == 0 {
                leaving.stop().await?;
                graceful += 1;
            } else {
                leaving.abort();
                abrupt += 1;
            }
        }
    }
    sender.await?;
    let figures = settle_and_verify(&env, "rebalance storm", &scale, &ledger).await?;
    println!(
        "[faults] rebalance storm: {joins} joins, {graceful} graceful and {abrupt} abrupt \
         departures, {}; {:.1} s",
        ledger.summary(),
        started.elapsed().as_secs_f64()
    );
    figures.assert_complete();
    for member in members {
        member.stop().await?;
    }
    env.cleanup().await
}
