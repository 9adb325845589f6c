//! Issue 14, item 8, "the unanswered request": every request sent on a
//! pooled keep-alive connection gets an HTTP answer (200, or 503 while the
//! broker is down), across a broker stop and start.
//!
//! Sixteen senders, each with its own pooled `reqwest::Client` (so each
//! reuses one keep-alive connection), pause just under one
//! `header_read_timeout` between their requests (swept over the last 20 ms
//! before it), so their idle connections are reused right where hyper's
//! header timer, which also runs between requests, would close them; the
//! broker is stopped and started under them. A request the server drops
//! (the connection closed or reset under it) is a transport error here, and
//! the test fails naming each one.
//!
//! This binary holds ONE test: it stops the broker named by `KAFKA_BROKERS`
//! (`deploy/local/services kafka-stop`), and cargo runs test binaries one
//! at a time, so no other test sees the outage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use inboxflow_tests::faults::services::RestartOnDrop;
use inboxflow_tests::ingress::{
    ACME_PHONE, KAPSO_SECRET, TEST_REGISTRY, TestIngress, TestTopics, kapso_message_body,
    spawn_ingress_with,
};
use inboxflow_tests::{kafka, poll};
use shared::signing::kapso_signature;

const SENDERS: u64 = 16;
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Liveness bound for one answer (never asserted as a latency).
const ANSWER_BOUND: Duration = Duration::from_secs(2 * 2 + 5);
const WAIT: Duration = Duration::from_secs(120);

/// What the senders saw.
#[derive(Debug, Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
    silent: AtomicU64,
    errors: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Tally {
    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }

    fn summary(&self) -> String {
        format!(
            "sent {}, answered 200 {}, 503 {}, other status {}, unanswered {}",
            Self::get(&self.sent),
            Self::get(&self.ok),
            Self::get(&self.unavailable),
            Self::get(&self.other),
            Self::get(&self.silent)
        )
    }
}

/// An error and its causes, outermost first.
fn causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Sends signed webhooks to `app` on its own pooled client until told to
/// stop, each followed by a pause (pacing) of 20 ms to 1 ms under one header
/// read timeout, so the connection is reused right at that bound.
async fn sender(app: Arc<TestIngress>, tally: Arc<Tally>, n: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().build()?;
    let mut round = 0u64;
    while !tally.stop.load(Ordering::SeqCst) {
        let body = kapso_message_body(ACME_PHONE, &format!("sender {n} round {round}"));
        tally.sent.fetch_add(1, Ordering::SeqCst);
        let sent = client
            .post(app.url("/webhooks/kapso"))
            .header("content-type", "application/json")
            .header("x-webhook-signature", kapso_signature(KAPSO_SECRET, &body))
            .body(body)
            .timeout(ANSWER_BOUND)
            .send()
            .await
            .map(|r| r.status().as_u16());
        match sent {
            Ok(200) => tally.ok.fetch_add(1, Ordering::SeqCst),
            Ok(503) => tally.unavailable.fetch_add(1, Ordering::SeqCst),
            Ok(_) => tally.other.fetch_add(1, Ordering::SeqCst),
            Err(err) => {
                tally
                    .errors
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(format!("sender {n} round {round}: {}", causes(&err)));
                tally.silent.fetch_add(1, Ordering::SeqCst)
            }
        };
        round += 1;
        let under = 1 + (n * 7 + round * 3) % 20;
        tokio::time::sleep(HEADER_READ_TIMEOUT - Duration::from_millis(under)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_on_keep_alive_connections_across_a_broker_restart_are_all_answered()
-> anyhow::Result<()> {
    kafka::require_kafka()?;
    let topics = TestTopics::create().await?;
    let app = Arc::new(
        spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
            cfg.ack_timeout = ACK_TIMEOUT;
            cfg.header_read_timeout = HEADER_READ_TIMEOUT;
            cfg
        })
        .await?,
    );
    let tally = Arc::new(Tally::default());
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| tokio::spawn(sender(Arc::clone(&app), Arc::clone(&tally), n)))
        .collect();
    let ok_at_least = |count: u64| {
        let tally = Arc::clone(&tally);
        move || {
            let tally = Arc::clone(&tally);
            async move { Ok((Tally::get(&tally.ok) >= count).then_some(())) }
        }
    };
    poll::until("a first round of 200s", WAIT, ok_at_least(SENDERS * 2)).await?;
    let probe = app
        .post_kapso(&kapso_message_body(ACME_PHONE, "probe"))
        .await?;
    assert_eq!(
        probe.headers().get("keep-alive").map(|v| v.as_bytes()),
        Some(&b"timeout=119"[..]),
        "the idle timeout (120 s by default) is advertised"
    );

    let kafka = RestartOnDrop::stop("kafka-stop", "kafka-start").await?;
    poll::until("503s while the broker is down", WAIT, || async {
        Ok((Tally::get(&tally.unavailable) >= SENDERS).then_some(()))
    })
    .await?;
    kafka.start().await?;
    let after = Tally::get(&tally.ok) + SENDERS * 4;
    poll::until("200s again after the restart", WAIT, ok_at_least(after)).await?;

    tally.stop.store(true, Ordering::SeqCst);
    for sender in senders {
        sender.await??;
    }
    println!("[keepalive] {}", tally.summary());
    let errors = tally
        .errors
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    assert!(
        errors.is_empty(),
        "{} of {} requests got no HTTP answer ({}):\n{}",
        errors.len(),
        Tally::get(&tally.sent),
        tally.summary(),
        errors.join("\n")
    );
    assert_eq!(Tally::get(&tally.other), 0, "only 200 and 503 answers");
    Ok(())
}
