//! Crash injection: the processor fails right after each pipeline step in
//! turn (nothing committed), a fresh processor in the same group takes over,
//! and the final rows must equal those of a clean run, unread counts and
//! last-message fields included.

use std::time::Duration;

use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use processor::pipeline::{Step, faults::Faults};

const WAIT: Duration = Duration::from_secs(90);
const WORKSPACE: &str = "ws_crash";
const PHONE_NUMBER_ID: &str = "pn-crash";
const EXPECTED_MESSAGES: usize = 13;

/// Records exercising every step: new contacts and conversations, messages,
/// a duplicate delivery, statuses before and after their messages.
fn scenario() -> Vec<Vec<u8>> {
    let senders = ["5511900000001", "5511900000002", "5511900000003"];
    let first: Vec<Inbound> = (0..10)
        .map(|i| {
            Inbound::new(
                format!("wamid.c{i}"),
                senders[i % 3],
                1_700_000_000 + i as i64,
            )
        })
        .collect();
    let st = |id: &str, status: &'static str, ts: i64| Status {
        id: id.into(),
        status,
        timestamp: ts,
        recipient: senders[0].into(),
    };
    let second = vec![
        Inbound::new("wamid.c3", senders[0], 1_700_000_003), // duplicate of a message in the first body
        Inbound::new("wamid.c10", senders[1], 1_700_000_100),
        Inbound::new("wamid.c11", "5511900000004", 1_700_000_101),
    ];
    vec![
        meta_body(
            PHONE_NUMBER_ID,
            &first,
            &[st("wamid.early", "delivered", 1_700_000_050)],
        ),
        meta_body(
            PHONE_NUMBER_ID,
            &second,
            &[
                st("wamid.c1", "read", 1_700_000_102),
                st("wamid.c1", "delivered", 1_700_000_101),
            ],
        ),
        meta_body(
            PHONE_NUMBER_ID,
            &[Inbound::new("wamid.c12", senders[2], 1_700_000_200)],
            &[st("wamid.c11", "read", 1_700_000_300)],
        ),
    ]
}

/// Runs the scenario with an optional crash, then a clean processor, and
/// returns the final snapshot.
async fn run(fail_after: Option<Step>) -> anyhow::Result<Vec<String>> {
    let env = ProcessorEnv::new(1).await?;
    for body in scenario() {
        env.produce_meta(WORKSPACE, PHONE_NUMBER_ID, &body).await?;
    }
    if let Some(step) = fail_after {
        let crashing = env
            .start(Faults {
                fail_after: Some(step),
                ..Faults::default()
            })
            .await?;
        let result = tokio::time::timeout(WAIT, crashing.join()).await?;
        assert!(
            result.is_err(),
            "the processor must stop on the injected failure after {step:?}"
        );
    }
    let clean = env.start(Faults::default()).await?;
    poll::until("every message stored and counted", WAIT, || async {
        let stored = env.message_count(WORKSPACE).await?;
        let (unread, _) = env.unread_total(WORKSPACE).await?;
        let statused = env.status_of(WORKSPACE, "wamid.c11").await?.is_some();
        Ok(
            (stored == EXPECTED_MESSAGES && unread == EXPECTED_MESSAGES as i64 && statused)
                .then_some(()),
        )
    })
    .await?;
    // The last record's status is written by the last step of its batch, so
    // every row is final once the condition above holds.
    clean.stop().await?;
    let snapshot = env.snapshot().await?;
    env.cleanup().await?;
    Ok(snapshot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_step_ends_in_the_same_rows_as_a_clean_run() -> anyhow::Result<()> {
    let clean = run(None).await?;
    assert!(
        clean.iter().any(|row| row.contains("\"unread_count\": 4")),
        "sanity: a conversation with 4 unread"
    );
    for step in Step::ALL {
        let after_crash = run(Some(step)).await?;
        assert_eq!(
            after_crash, clean,
            "rows differ after a crash following step {step:?}"
        );
    }
    Ok(())
}
