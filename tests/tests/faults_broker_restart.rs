//! Fault: the Kafka broker restarts during a load.
//!
//! Webhooks arrive through the in-process ingress, a processor consumes;
//! the broker is stopped mid-load (the ingress must then answer 503, and the
//! sender retries like Meta does) and started again. Every 200 in the ledger
//! must end in the database exactly once, and every conversation must equal
//! a clean run. CI: 3,000 messages over 25 s; `INBOXFLOW_LONG_FAULTS=1`:
//! 20,000 over 60 s.
//!
//! This binary stops the shared broker, so it holds a single test; cargo
//! runs test binaries one at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use inboxflow_tests::faults::check::settle_and_verify;
use inboxflow_tests::faults::load::{Load, Scale, start_sending};
use inboxflow_tests::faults::long;
use inboxflow_tests::faults::services::RestartOnDrop;
use inboxflow_tests::pipeline::spawn_ingress_for;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use processor::pipeline::faults::Faults;

const WAIT: Duration = Duration::from_secs(180);
/// The ingress's wait for Kafka's acknowledgement before it answers 503.
const ACK_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_during_a_load_loses_no_acknowledged_webhook() -> anyhow::Result<()> {
    let started = Instant::now();
    let (bodies, seconds) = if long() { (4000, 60) } else { (600, 25) };
    let scale = Scale::spread_load(30, bodies, seconds);
    let env = ProcessorEnv::new(6).await?;
    let running = env.start(Faults::default()).await?;
    let load = Arc::new(Load::generate("broker", scale));
    let app = spawn_ingress_for(&env, &load.registry_toml, |mut cfg| {
        cfg.ack_timeout = ACK_TIMEOUT;
        cfg
    })
    .await?;
    let (ledger, sender) = start_sending(&app, &load, Duration::from_secs(150));

    poll::until("a fifth of the load acknowledged", WAIT, || async {
        let acked = ledger.acknowledged_webhooks.load(Ordering::SeqCst);
        Ok((acked >= bodies as u64 / 5).then_some(()))
    })
    .await?;
    let outage = Instant::now();
    let kafka = RestartOnDrop::stop("kafka-stop", "kafka-start").await?;
    let down = Instant::now();
    poll::until(
        "the ingress to refuse webhooks while Kafka is down",
        WAIT,
        || async { Ok((ledger.unavailable.load(Ordering::SeqCst) > 0).then_some(())) },
    )
    .await?;
    let starting = Instant::now();
    kafka.start().await?;
    let ready = Instant::now();
    let outage = outage.elapsed();
    sender.await?;
    // Read once every request is answered (a 200 still in flight would be
    // missed), over the requests whose acknowledgement wait ended before
    // Kafka was back (a second of slack): a later one may rightly get 200.
    let settled = ready.checked_sub(ACK_TIMEOUT + Duration::from_secs(1));
    let down_until = starting.min(settled.unwrap_or(down));
    let ok_while_down = ledger.ok_sent_between(down, down_until);
    let figures = settle_and_verify(&env, "broker restart", &scale, &ledger).await?;
    println!(
        "[faults] broker restart: outage {:.1} s (stop to ready), {ok_while_down} 200s for \
         requests sent while the broker was down, {}; {:.1} s",
        outage.as_secs_f64(),
        ledger.summary(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        ledger.unavailable.load(Ordering::SeqCst) > 0,
        "503s while Kafka was down"
    );
    assert_eq!(
        ok_while_down, 0,
        "no 200 for a request sent while the broker was down"
    );
    assert_eq!(
        figures.acknowledged, figures.sent,
        "every webhook was acknowledged in the end"
    );
    figures.assert_exact();
    running.stop().await?;
    env.cleanup().await
}
