//! Crash injection: the processor fails right after each of the pipeline's
//! waves in turn, or inside its write wave (steps 2, 4, 6 and 8) once some
//! of its writes have landed (nothing committed); a fresh processor in the same group takes
//! over, and the final rows must equal those of a clean run, statuses,
//! unread counts and last-message fields included, and so must the
//! workspace's inbox list as `processor::inbox` reads it (the recency list
//! itself may keep an entry the reader skips, see `pipeline::inbox_rows`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use inboxflow_tests::faults::check::committed;
use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use processor::inbox::Inbox;
use processor::pipeline::{Wave, faults::Faults};

const WAIT: Duration = Duration::from_secs(90);
const WORKSPACE: &str = "ws_crash";
const PHONE_NUMBER_ID: &str = "pn-crash";

fn status(id: &str, status: &'static str, ts: i64, recipient: &str) -> Status {
    Status {
        id: id.into(),
        status,
        timestamp: ts,
        recipient: recipient.into(),
    }
}

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
    let st = |id: &str, s: &'static str, ts: i64| status(id, s, ts, senders[0]);
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

/// Step 8 over messages stored by an earlier, committed phase: the first
/// phase stores four messages, the second brings their statuses (each write
/// of step 8 then raises an index rank or a message row's status, with no
/// later step to mend a half-applied one) and a new message two minutes
/// later, which moves its conversation in the recency list.
fn stored_then_statused() -> Vec<Vec<Vec<u8>>> {
    let senders = ["5511900000011", "5511900000012"];
    let messages: Vec<Inbound> = (0..4)
        .map(|i| {
            Inbound::new(
                format!("wamid.s{i}"),
                senders[i % 2],
                1_700_000_000 + i as i64,
            )
        })
        .collect();
    let st = |id: &str, s: &'static str, ts: i64| status(id, s, ts, senders[0]);
    let statuses = [
        st("wamid.s0", "delivered", 1_700_000_010),
        st("wamid.s0", "read", 1_700_000_011),
        st("wamid.s1", "read", 1_700_000_012),
        st("wamid.s2", "delivered", 1_700_000_013),
        st("wamid.s3", "played", 1_700_000_014),
    ];
    let later = [Inbound::new("wamid.s4", senders[1], 1_700_000_140)];
    vec![
        vec![meta_body(PHONE_NUMBER_ID, &messages, &[])],
        vec![meta_body(PHONE_NUMBER_ID, &later, &statuses)],
    ]
}

/// A crash to inject into the last phase, and the error it must stop with.
struct Crash {
    faults: Faults,
    error: String,
}

impl Crash {
    fn after(wave: Wave) -> Self {
        Crash {
            faults: Faults {
                fail_after: Some(wave),
                ..Faults::default()
            },
            error: format!("injected failure after wave {}", wave.as_str()),
        }
    }

    fn within(wave: Wave, landed: usize) -> Self {
        Crash {
            faults: Faults {
                fail_within: Some((wave, landed)),
                ..Faults::default()
            },
            error: format!(
                "injected failure in wave {} after {landed} of its writes",
                wave.as_str()
            ),
        }
    }
}

/// Produces `bodies`; returns, by partition, the offset after the last one.
async fn produce(env: &ProcessorEnv, bodies: &[Vec<u8>]) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut ends = BTreeMap::new();
    for body in bodies {
        let (partition, offset) = env.produce_meta(WORKSPACE, PHONE_NUMBER_ID, body).await?;
        ends.insert(partition, offset + 1);
    }
    Ok(ends)
}

/// Runs a clean processor until the group has committed up to `ends`
/// (offsets are stored only once every write of their batch has landed).
async fn store_all(env: &ProcessorEnv, ends: &BTreeMap<i32, i64>) -> anyhow::Result<()> {
    let clean = env.start(Faults::default()).await?;
    let (group, topic) = (&env.cfg.consumer.group_id, &env.cfg.kafka.webhook_topic);
    poll::until("every record stored and committed", WAIT, || async {
        let at = committed(group, topic).await?;
        Ok(ends
            .iter()
            .all(|(p, end)| at.get(p) >= Some(end))
            .then_some(()))
    })
    .await?;
    clean.stop().await?;
    Ok(())
}

/// Stores each phase in turn; the last one first with `crash` (the
/// processor must stop on it), then with a fresh processor. Returns the
/// final snapshot. `one_row_per_request` sets `cql.max_batch_statements` to
/// 1, so a wave sends one write per row.
async fn run(
    phases: &[Vec<Vec<u8>>],
    crash: Option<Crash>,
    one_row_per_request: bool,
) -> anyhow::Result<Vec<String>> {
    let mut env = ProcessorEnv::new(1).await?;
    if one_row_per_request {
        env.cfg.cql.max_batch_statements = 1;
    }
    let Some((last, earlier)) = phases.split_last() else {
        anyhow::bail!("a scenario has at least one phase");
    };
    for phase in earlier {
        let ends = produce(&env, phase).await?;
        store_all(&env, &ends).await?;
    }
    let ends = produce(&env, last).await?;
    if let Some(crash) = crash {
        let crashing = env.start(crash.faults).await?;
        let result = tokio::time::timeout(WAIT, crashing.join()).await?;
        let error = format!(
            "{:#}",
            result.expect_err("the processor must stop on the crash")
        );
        assert!(
            error.contains(&crash.error),
            "the crash must be the injected one ({}), got: {error}",
            crash.error
        );
    }
    store_all(&env, &ends).await?;
    let mut snapshot = env.snapshot().await?;
    snapshot.extend(inbox_list(&env).await?);
    env.cleanup().await?;
    Ok(snapshot)
}

/// The workspace's inbox list, newest first, as the inbox reads it.
async fn inbox_list(env: &ProcessorEnv) -> anyhow::Result<Vec<String>> {
    let inbox = Inbox::new(Arc::clone(&env.session), &env.cfg.cql.keyspace).await?;
    let page = inbox.list(WORKSPACE, None, 100, 1_700_100_000_000).await?;
    Ok(page
        .items
        .iter()
        .enumerate()
        .map(|(i, c)| format!("~inbox list {i}: {c:?}"))
        .collect())
}

/// Fails, naming only the rows that differ, unless `after_crash` equals `clean`.
fn assert_same_rows(after_crash: &[String], clean: &[String], what: &str) {
    let missing: Vec<_> = clean.iter().filter(|r| !after_crash.contains(r)).collect();
    let extra: Vec<_> = after_crash.iter().filter(|r| !clean.contains(r)).collect();
    assert!(
        after_crash == clean,
        "rows differ {what}:\n clean run only: {missing:#?}\n after the crash only: {extra:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_any_wave_ends_in_the_same_rows_as_a_clean_run() -> anyhow::Result<()> {
    let phases = [scenario()];
    let clean = run(&phases, None, false).await?;
    assert!(
        clean.iter().any(|row| row.contains("\"unread_count\": 4")),
        "sanity: a conversation with 4 unread"
    );
    let messages = clean.iter().filter(|r| r.starts_with("messages ")).count();
    assert_eq!(messages, 13, "sanity: every distinct message stored once");
    for wave in Wave::ALL {
        let after_crash = run(&phases, Some(Crash::after(wave)), false).await?;
        assert_same_rows(
            &after_crash,
            &clean,
            &format!("after a crash following wave {wave:?}"),
        );
    }
    Ok(())
}

/// The write wave creates contacts and conversations, writes messages,
/// their index rows, recency rows and statuses, all at once: a crash after
/// its first write, after about half of them, and after all but a few, is
/// completed by the retry (every message once, counters as in a clean run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_the_write_wave_of_new_messages_ends_in_the_same_rows_as_a_clean_run()
-> anyhow::Result<()> {
    let phases = [scenario()];
    let clean = run(&phases, None, true).await?;
    for landed in [1, 20, 36] {
        let crash = Crash::within(Wave::Writes, landed);
        let after_crash = run(&phases, Some(crash), true).await?;
        assert_same_rows(
            &after_crash,
            &clean,
            &format!("after a crash in the write wave after {landed} writes"),
        );
    }
    Ok(())
}

/// Step 8 raises the index rank and the message row's status in the write
/// wave: with only the first write landed (an index rank), or every index
/// rank and no message status, the retry must still write each message's
/// status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_inside_the_status_writes_of_stored_messages_ends_in_the_same_rows_as_a_clean_run()
-> anyhow::Result<()> {
    let phases = stored_then_statused();
    let clean = run(&phases, None, true).await?;
    assert!(
        clean
            .iter()
            .any(|row| row.starts_with("messages ") && row.contains("\"status\": \"played\"")),
        "sanity: the clean run stores a message's status"
    );
    let listed = clean
        .iter()
        .filter(|r| r.starts_with("~inbox list"))
        .count();
    assert_eq!(listed, 2, "sanity: both conversations listed");
    // 1: only the moved conversation's update landed (counters are sent
    // first), not its recency-list entry.
    for landed in [1, 4] {
        let crash = Crash::within(Wave::Writes, landed);
        let after_crash = run(&phases, Some(crash), true).await?;
        assert_same_rows(
            &after_crash,
            &clean,
            &format!("after a crash among the status writes after {landed} writes"),
        );
    }
    Ok(())
}
