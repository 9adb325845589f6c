//! A crashed batch re-run in smaller batches. Writes carry the write clock
//! of their batch's last record (`processor::clocks`), so a re-run that
//! reads fewer records writes at a lower clock than the crashed attempt did;
//! whatever the crashed attempt wrote must therefore already hold every
//! record up to its batch's last. Here the attempt inserts a message whose
//! status and edit arrive in the same batch, crashes after its write wave
//! (steps 2, 4, 6 and 8: the message's status and edit reach it only as
//! folded into its insert), and a
//! processor reading one, two or three records at a time takes over: the
//! rows must equal a clean run's (before the fix, the message row kept no
//! status and its unedited body for good). A second workspace's records are
//! interleaved on the same partition: a workspace's writes carry the clock
//! of the batch's last record on the partition, often another workspace's,
//! so the re-run's lower clocks must still write the same values.

use std::time::Duration;

use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use processor::pipeline::{Wave, faults::Faults};

const WAIT: Duration = Duration::from_secs(90);
const WORKSPACE: &str = "ws_rerun";
const PHONE_NUMBER_ID: &str = "pn-rerun";
const CONTACT: &str = "5511955550000";
/// The workspace interleaved with the first on the same partition.
const OTHER: &str = "ws_rerun_b";
const OTHER_PHONE_NUMBER_ID: &str = "pn-rerun-b";
const OTHER_CONTACT: &str = "5511955550001";

fn edit_body(target: &str, text: &str, at: i64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "waba", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": PHONE_NUMBER_ID},
            "messages": [{
                "from": CONTACT, "id": format!("wamid.edit.{target}"),
                "timestamp": at.to_string(), "type": "edit",
                "edit": {"original_message_id": target,
                         "message": {"type": "text", "text": {"body": text}}}
            }]
        }}]}]
    }))
    .expect("a JSON body")
}

/// The records of the first workspace: a message, its `read` status, an
/// edit of it, then another message; the other workspace's (a message, its
/// `delivered` status, another message) come between them.
fn records() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let status = |id: &str, status, recipient: &str| Status {
        id: id.into(),
        status,
        timestamp: 1_700_000_010,
        recipient: recipient.into(),
    };
    let message = |pn, id, from, at| meta_body(pn, &[Inbound::new(id, from, at)], &[]);
    let (a, b) = ((WORKSPACE, PHONE_NUMBER_ID), (OTHER, OTHER_PHONE_NUMBER_ID));
    vec![
        (a.0, a.1, message(a.1, "wamid.r0", CONTACT, 1_700_000_000)),
        (
            b.0,
            b.1,
            message(b.1, "wamid.b0", OTHER_CONTACT, 1_700_000_001),
        ),
        (
            a.0,
            a.1,
            meta_body(a.1, &[], &[status("wamid.r0", "read", CONTACT)]),
        ),
        (
            b.0,
            b.1,
            meta_body(b.1, &[], &[status("wamid.b0", "delivered", OTHER_CONTACT)]),
        ),
        (a.0, a.1, edit_body("wamid.r0", "edited", 1_700_000_020)),
        (
            b.0,
            b.1,
            message(b.1, "wamid.b1", OTHER_CONTACT, 1_700_000_025),
        ),
        (a.0, a.1, message(a.1, "wamid.r1", CONTACT, 1_700_000_030)),
    ]
}

/// Runs the records (crashing first after the write wave in one batch when
/// `crash`, then in batches of `rerun_batch`) and returns the snapshot.
async fn run(crash: bool, rerun_batch: usize) -> anyhow::Result<Vec<String>> {
    let mut env = ProcessorEnv::new(1).await?;
    let records = records();
    for (workspace, phone_number_id, body) in &records {
        env.produce_meta(workspace, phone_number_id, body).await?;
    }
    let all = records.len() as i64;
    if crash {
        let faults = Faults {
            fail_after: Some(Wave::Writes),
            ..Faults::default()
        };
        let crashing = env.start(faults).await?;
        let ended = tokio::time::timeout(WAIT, crashing.join()).await?;
        assert!(ended.is_err(), "the first processor must stop on the crash");
    }
    env.cfg.consumer.max_records = rerun_batch;
    let clean = env.start(Faults::default()).await?;
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    poll::until("the group to commit every record", WAIT, || async {
        let committed = inboxflow_tests::faults::check::committed(group, topic).await?;
        Ok((committed.get(&0) == Some(&all)).then_some(()))
    })
    .await?;
    clean.stop().await?;
    let snapshot = env.snapshot().await?;
    env.cleanup().await?;
    Ok(snapshot)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_batch_re_run_in_smaller_batches_ends_as_a_clean_run() -> anyhow::Result<()> {
    let clean = run(false, 10).await?;
    let message = clean
        .iter()
        .find(|r| r.starts_with("messages ") && r.contains("wamid.r0"))
        .expect("sanity: the message is stored");
    assert!(
        message.contains("\"status\": \"read\"") && message.contains("\"body\": \"edited\""),
        "sanity: the clean run's row is read and edited: {message}"
    );
    let other = clean
        .iter()
        .filter(|r| r.starts_with("messages ") && r.contains("wamid.b"));
    assert_eq!(
        other.count(),
        2,
        "sanity: the other workspace's messages are stored"
    );
    for rerun_batch in [1, 2, 3] {
        let after = run(true, rerun_batch).await?;
        assert_eq!(
            after, clean,
            "rows differ after a crash and a re-run in batches of {rerun_batch}"
        );
    }
    Ok(())
}
