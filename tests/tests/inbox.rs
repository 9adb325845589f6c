//! The inbox's reads and its one write on a real processor, Kafka and CQL
//! database: the recency list, a conversation's history across months,
//! unread totals, and mark-read racing the processor.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use inboxflow_tests::poll;
use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::inbox::cli::{self, InboxCommand};
use processor::inbox::{ConversationSummary, Inbox, MessageView, Page};
use processor::pipeline::faults::Faults;
use shared::ids;
use shared::record::now_ms;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(60);
const PN: &str = "pn-list";
/// 2026-10-31T23:50:00Z: ten minutes before a month boundary.
const OCT_END: i64 = 1_793_490_600;

fn conversation(ws: &str, phone: &str) -> Uuid {
    ids::conversation_id(ws, PN, ids::contact_id(ws, phone))
}

async fn send(env: &ProcessorEnv, ws: &str, messages: &[Inbound]) -> anyhow::Result<()> {
    env.produce_meta(ws, PN, &meta_body(PN, messages, &[]))
        .await
        .map(|_| ())
}

/// Every page of the list, `size` at a time.
async fn whole_list(
    inbox: &Inbox,
    ws: &str,
    size: usize,
) -> anyhow::Result<Vec<Vec<ConversationSummary>>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let Page { items, next } = inbox.list(ws, after.as_deref(), size, now_ms()).await?;
        pages.push(items);
        match next {
            Some(n) => after = Some(n),
            None => return Ok(pages),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_shows_conversations_newest_first_in_pages_that_never_overlap()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let _running = env.start(Faults::default()).await?;
    let inbox = Inbox::new(Arc::clone(&env.session), &env.cfg.cql.keyspace).await?;
    let ws = "ws_list";
    // 23 contacts, 37 s apart across a month boundary (several per minute),
    // the last two at the same second.
    let phones: Vec<String> = (0..23).map(|i| format!("155500{i:05}")).collect();
    let mut times: Vec<i64> = (0..23).map(|i| OCT_END + 37 * i).collect();
    times[22] = times[21];
    for (phone, at) in phones.iter().zip(&times) {
        send(
            &env,
            ws,
            &[Inbound::new(format!("wamid.l{phone}"), phone.clone(), *at)],
        )
        .await?;
    }
    // The oldest conversation speaks again, last of all: it moves to the top.
    let latest = times[22] + 600;
    send(
        &env,
        ws,
        &[Inbound::new("wamid.again", phones[0].clone(), latest)],
    )
    .await?;

    let pages = poll::until(
        "the list to show the moved conversation first",
        WAIT,
        || async {
            let pages = whole_list(&inbox, ws, 5).await?;
            let first = pages
                .first()
                .and_then(|p| p.first())
                .map(|c| c.last_message_at_ms);
            let total: usize = pages.iter().map(Vec::len).sum();
            Ok((first == Some(latest * 1000) && total == 23).then_some(pages))
        },
    )
    .await?;

    let all: Vec<&ConversationSummary> = pages.iter().flatten().collect();
    assert!(pages.iter().all(|p| p.len() <= 5), "pages hold at most 5");
    let distinct: HashSet<Uuid> = all.iter().map(|c| c.conversation_id).collect();
    assert_eq!(
        distinct.len(),
        23,
        "every conversation exactly once across the pages"
    );
    let order: Vec<(i64, Uuid)> = all
        .iter()
        .map(|c| (-c.last_message_at_ms, c.conversation_id))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "newest first, ties by conversation id");
    assert_eq!(all[0].conversation_id, conversation(ws, &phones[0]));
    assert_eq!(all[0].unread, 2, "two inbound messages, none read");
    assert_eq!(all[0].last_message_preview.as_deref(), Some("hello"));
    let expected: HashSet<(Uuid, i64)> = phones
        .iter()
        .zip(&times)
        .skip(1)
        .map(|(p, at)| (conversation(ws, p), at * 1000))
        .chain([(conversation(ws, &phones[0]), latest * 1000)])
        .collect();
    let got: HashSet<(Uuid, i64)> = all
        .iter()
        .map(|c| (c.conversation_id, c.last_message_at_ms))
        .collect();
    assert_eq!(got, expected);

    // `processor inbox list` prints the same first page, phones masked.
    let mut out = Vec::new();
    let command = InboxCommand::List {
        workspace: ws.into(),
        limit: 5,
        after: None,
        unmasked: false,
    };
    cli::run(&env.cfg.cql, command, &mut out).await?;
    let text = String::from_utf8(out)?;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "five conversations and the cursor: {text}");
    assert!(
        lines[0].starts_with(&all[0].conversation_id.to_string()),
        "{text}"
    );
    assert!(lines[5].starts_with("next: "), "{text}");
    // (The test's contact names spell the phone; the phone column is masked.)
    let masked = shared::mask::mask_phone(&phones[0]);
    assert!(
        lines[0].contains(&format!("unread   2  {masked} ")),
        "{text}"
    );
    env.cleanup().await
}

/// Every page of a conversation's history, `size` at a time.
async fn whole_history(
    inbox: &Inbox,
    ws: &str,
    id: Uuid,
    size: usize,
) -> anyhow::Result<Vec<MessageView>> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = inbox.history(ws, id, after.as_deref(), size).await?;
        assert!(page.items.len() <= size);
        out.extend(page.items);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_newest_first_across_months_even_for_messages_older_than_the_conversation()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let _running = env.start(Faults::default()).await?;
    let inbox = Inbox::new(Arc::clone(&env.session), &env.cfg.cql.keyspace).await?;
    let ws = "ws_history";
    let phone = "15557770001";
    let day = 86_400;
    // The newest message comes first and creates the conversation in
    // November; the older ones (September, October) arrive afterwards.
    let times = [
        OCT_END + 20 * day,
        OCT_END - 40 * day,
        OCT_END - 40 * day,
        OCT_END,
        OCT_END - 3 * day,
        OCT_END + 700,
        OCT_END - 45 * day,
    ];
    for (i, at) in times.iter().enumerate() {
        send(&env, ws, &[Inbound::new(format!("wamid.h{i}"), phone, *at)]).await?;
    }
    let id = conversation(ws, phone);
    let history = poll::until("all seven messages in the history", WAIT, || async {
        let h = whole_history(&inbox, ws, id, 3).await?;
        Ok((h.len() == times.len()).then_some(h))
    })
    .await?;
    let got: Vec<(i64, String)> = history
        .iter()
        .map(|m| (m.sent_at_ms, m.message_id.clone()))
        .collect();
    let mut expected: Vec<(i64, String)> = times
        .iter()
        .enumerate()
        .map(|(i, at)| (at * 1000, format!("wamid.h{i}")))
        .collect();
    // Newest first; a tie on sent_at in id order (the table's clustering order).
    expected.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    assert_eq!(got, expected);
    let missing = inbox.history(ws, Uuid::from_u128(1), None, 3).await;
    assert!(
        missing.is_err(),
        "an unknown conversation is an error, not an empty page"
    );
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mark_read_racing_the_processor_loses_no_update_on_either_side() -> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let _running = env.start(Faults::default()).await?;
    let inbox = Inbox::new(Arc::clone(&env.session), &env.cfg.cql.keyspace).await?;
    let ws = "ws_reads";
    let phones: Vec<String> = (0..4).map(|i| format!("155588800{i:02}")).collect();
    let ids: Vec<Uuid> = phones.iter().map(|p| conversation(ws, p)).collect();
    const MESSAGES: usize = 120;

    let done = Arc::new(AtomicBool::new(false));
    let marked = Arc::new(AtomicU64::new(0));
    let agents: Vec<_> = ids
        .iter()
        .map(|id| {
            let (inbox, done, marked, id) =
                (inbox.clone(), Arc::clone(&done), Arc::clone(&marked), *id);
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    match inbox.mark_read(ws, id, now_ms()).await {
                        Ok(m) => {
                            marked.fetch_add(u64::from(m.newly_read > 0), Ordering::Relaxed);
                        }
                        Err(processor::inbox::InboxError::NotFound(_)) => {}
                        Err(e) => return Err(anyhow::Error::from(e)),
                    }
                    tokio::task::yield_now().await;
                }
                Ok(())
            })
        })
        .collect();
    for i in 0..MESSAGES {
        let phone = &phones[i % phones.len()];
        let at = OCT_END + i as i64;
        send(
            &env,
            ws,
            &[Inbound::new(format!("wamid.r{i}"), phone.clone(), at)],
        )
        .await?;
    }
    poll::until("the processor to count every message", WAIT, || async {
        Ok((inbox.totals(ws).await?.inbound == MESSAGES as i64).then_some(()))
    })
    .await?;
    done.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await??;
    }

    let list: Vec<ConversationSummary> = whole_list(&inbox, ws, 10)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let totals = inbox.totals(ws).await?;
    let counted = env.unread_total(ws).await?.0;
    let unread: i64 = list.iter().map(|c| c.unread).sum();
    println!(
        "[inbox] {MESSAGES} messages, {} mark-reads that marked something; totals {totals:?}",
        marked.load(Ordering::Relaxed)
    );
    assert_eq!(counted, MESSAGES as i64, "every processor increment kept");
    assert_eq!(totals.inbound, MESSAGES as i64);
    assert_eq!(
        totals.unread, unread,
        "the workspace total equals the sum of its conversations"
    );
    assert_eq!(
        totals.read + totals.unread,
        totals.inbound,
        "no read marker lost or doubled"
    );

    for id in &ids {
        inbox.mark_read(ws, *id, now_ms()).await?;
    }
    assert_eq!(inbox.totals(ws).await?.unread, 0, "everything read");
    send(
        &env,
        ws,
        &[Inbound::new(
            "wamid.after",
            phones[1].clone(),
            OCT_END + 10_000,
        )],
    )
    .await?;
    let after = poll::until("the new message counted", WAIT, || async {
        let t = inbox.totals(ws).await?;
        Ok((t.inbound == MESSAGES as i64 + 1).then_some(t))
    })
    .await?;
    assert_eq!(after.unread, 1, "a message after the mark is unread again");
    let list: Vec<ConversationSummary> = whole_list(&inbox, ws, 10)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let unread: Vec<(Uuid, i64)> = list
        .iter()
        .filter(|c| c.unread > 0)
        .map(|c| (c.conversation_id, c.unread))
        .collect();
    assert_eq!(unread, vec![(ids[1], 1)]);
    env.cleanup().await
}
