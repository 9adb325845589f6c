//! A real broker outage and recovery: stop the local Kafka, expect 503 with
//! Retry-After, start it again, and poll until a delivery is stored (200).
//!
//! This binary holds ONE test: it stops the shared broker, and cargo runs
//! test binaries one at a time, so no other test sees the outage.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use inboxflow_tests::ingress::TestTopics;
use inboxflow_tests::ingress::{ACME_PHONE, TEST_REGISTRY, kapso_message_body, spawn_ingress_with};
use inboxflow_tests::poll;

fn services_script() -> anyhow::Result<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("deploy/local/services");
    anyhow::ensure!(
        script.is_file(),
        "{} does not exist: this test needs the local services script (kafka-stop, kafka-start)",
        script.display()
    );
    Ok(script)
}

fn services(script: &std::path::Path, command: &str) -> anyhow::Result<()> {
    let out = Command::new("bash").arg(script).arg(command).output()?;
    anyhow::ensure!(
        out.status.success(),
        "`deploy/local/services {command}` failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Restarts Kafka if the test fails while it is stopped.
struct RestartKafka(Option<PathBuf>);

impl RestartKafka {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RestartKafka {
    fn drop(&mut self) {
        let Some(script) = self.0.take() else { return };
        if let Err(err) = services(&script, "kafka-start") {
            eprintln!("could not restart Kafka after the outage test: {err:#}");
        }
    }
}

#[tokio::test]
async fn a_broker_outage_gets_503_and_deliveries_are_stored_again_after_recovery()
-> anyhow::Result<()> {
    let script = services_script()?;
    let topics = TestTopics::create().await?;
    let app = spawn_ingress_with(TEST_REGISTRY, topics, |mut cfg| {
        cfg.ack_timeout = Duration::from_secs(2);
        cfg
    })
    .await?;
    let warm_up = kapso_message_body(ACME_PHONE, "before the outage");
    assert_eq!(app.post_kapso(&warm_up).await?.status(), 200);

    let restart = RestartKafka(Some(script.clone()));
    services(&script, "kafka-stop")?;
    let during = app
        .post_kapso(&kapso_message_body(ACME_PHONE, "during the outage"))
        .await?;
    assert_eq!(during.status(), 503);
    assert_eq!(during.headers()["retry-after"], "5");

    services(&script, "kafka-start")?;
    restart.disarm();
    let after = kapso_message_body(ACME_PHONE, "after the outage");
    poll::until(
        "a delivery to be stored after recovery",
        Duration::from_secs(60),
        || async { Ok((app.post_kapso(&after).await?.status() == 200).then_some(())) },
    )
    .await?;

    let values: Vec<Vec<u8>> = app
        .read_all(&app.topics.routed)
        .await?
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert!(values.contains(&warm_up) && values.contains(&after));
    Ok(())
}
