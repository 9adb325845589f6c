//! The owner cache (`processor::pipeline::OwnerCache`), on the real CQL
//! database: the same batches through the cached pipeline and through the
//! uncached one, each into its own keyspace, end in exactly the same rows
//! (contacts, conversations with their counters and last messages,
//! messages, the index, the inbound totals, the recency list and the inbox
//! list as read); and once
//! the cache knows a batch's contacts, conversations and totals, its lookup
//! wave reads only the message index.

use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, Status, meta_body};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, OwnerCache, WorkspaceRecords};
use processor::store::{DbStats, Store};
use serde_json::json;
use shared::record::Source;

const WORKSPACES: [&str; 2] = ["ws_cache_a", "ws_cache_b"];
const SENDERS: [&str; 3] = ["5511977770001", "5511977770002", "5511977770003"];
const T0: i64 = 1_700_000_000;

fn record(ws: &str, offset: i64, messages: &[Inbound], statuses: &[Status]) -> DecodedRecord {
    decoded(
        ws,
        offset,
        &meta_body(&format!("pn-{ws}"), messages, statuses),
    )
}

fn decoded(ws: &str, offset: i64, body: &[u8]) -> DecodedRecord {
    DecodedRecord {
        workspace_id: ws.to_owned(),
        partition: 0,
        offset,
        clock: processor::clocks::unstamped(offset),
        received_at_ms: None,
        events: shared::webhook::normalize(Source::Meta, None, body, &[])
            .expect("a valid Meta body"),
    }
}

/// A message from a customer known by phone and business-scoped user id in
/// round 0 and by the user id alone after (its phone hidden): its contact
/// and conversation are stored under the phone's ids, so from round 1 on
/// the uncached pipeline needs the `more_lookups` wave to find them.
fn hidden_phone_record(ws: &str, offset: i64, round: i64) -> DecodedRecord {
    let phone = if round == 0 { "15551230009" } else { "" };
    let message = json!({"from": phone, "from_user_id": "US.zoe", "id": format!("wamid.u{round}"),
        "timestamp": (T0 + round * 60 + 5).to_string(), "type": "text", "text": {"body": "hi"}});
    let value = json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": format!("pn-{ws}")},
        "contacts": [{"profile": {"name": "Zoe"}, "wa_id": phone, "user_id": "US.zoe"}],
        "messages": [message]});
    let body = json!({"object": "whatsapp_business_account",
        "entry": [{"id": "waba-1", "changes": [{"field": "messages", "value": value}]}]});
    decoded(ws, offset, body.to_string().as_bytes())
}

/// Round `round`: per workspace, a message from each sender (a minute
/// apart per round, so conversations move in the recency list), a status
/// of the previous round's first message, from round 2 on a redelivery of
/// round 0's first message and a late message older than all; and a
/// [`hidden_phone_record`].
fn round_records(round: i64, first_offset: i64) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    for (offset, ws) in (first_offset..).step_by(2).zip(WORKSPACES) {
        let mut messages: Vec<Inbound> = SENDERS
            .iter()
            .enumerate()
            .map(|(i, from)| {
                Inbound::new(
                    format!("wamid.k{round}.{i}"),
                    *from,
                    T0 + round * 60 + i as i64,
                )
            })
            .collect();
        if round >= 2 {
            messages.push(Inbound::new("wamid.k0.0", SENDERS[0], T0));
            messages.push(Inbound::new(
                format!("wamid.late{round}"),
                SENDERS[1],
                T0 - 600,
            ));
        }
        let statuses: Vec<Status> = (round > 0)
            .then(|| Status {
                id: format!("wamid.k{}.0", round - 1),
                status: "read",
                timestamp: T0 + round * 60 + 30,
                recipient: SENDERS[0].into(),
            })
            .into_iter()
            .collect();
        out.push(record(ws, offset, &messages, &statuses));
        out.push(hidden_phone_record(ws, offset + 1, round));
    }
    out
}

fn by_workspace(records: &[DecodedRecord]) -> Vec<WorkspaceRecords<'_>> {
    let mut groups: std::collections::BTreeMap<&str, Vec<&DecodedRecord>> = Default::default();
    for r in records {
        groups.entry(r.workspace_id.as_str()).or_default().push(r);
    }
    groups.into_iter().collect()
}

async fn rows(env: &ProcessorEnv) -> anyhow::Result<Vec<String>> {
    env.all_rows(&WORKSPACES, (T0 + 86_400) * 1000).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_pipeline_writes_the_same_rows_and_reads_only_the_index_in_steady_state()
-> anyhow::Result<()> {
    let (cached_env, plain_env) = (ProcessorEnv::new(1).await?, ProcessorEnv::new(1).await?);
    let cached = Store::with_session(cached_env.session.clone(), &cached_env.cfg.cql).await?;
    let plain = Store::with_session(plain_env.session.clone(), &plain_env.cfg.cql).await?;
    let mut cache = OwnerCache::default();
    let mut lookups = Vec::new();
    for round in 0..4 {
        let records = round_records(round, round * 2 * WORKSPACES.len() as i64);
        let batch = by_workspace(&records);
        let (cached_stats, plain_stats) = (DbStats::default(), DbStats::default());
        let with_cache =
            pipeline::run_batch_cached(&cached, &batch, &cached_stats, &mut cache).await?;
        let without = pipeline::run_batch(&plain, &batch, &plain_stats).await?;
        let counts = |o: &pipeline::BatchOutcome| -> Vec<(u64, u64, u64)> {
            let each = o.workspaces.iter();
            each.map(|w| {
                (
                    w.messages_inserted,
                    w.duplicates_skipped,
                    w.statuses_applied,
                )
            })
            .collect()
        };
        assert_eq!(counts(&with_cache), counts(&without), "round {round}");
        assert_eq!(
            without.lookup_keys.cache, 0,
            "round {round}: no cache, no hits"
        );
        if round > 0 {
            let keys = with_cache.lookup_keys;
            assert!(
                keys.database == 0 && keys.cache == without.lookup_keys.database,
                "round {round}: every key from the cache: {keys:?} against {:?}",
                without.lookup_keys
            );
        }
        lookups.push((cached_stats.requests(), plain_stats.requests()));
    }
    assert!(!cache.is_empty(), "the cache remembered the batches");
    let (with_cache, without) = (rows(&cached_env).await?, rows(&plain_env).await?);
    assert!(
        with_cache.iter().any(|r| r.contains("\"unread_count\": 6")),
        "sanity: counters moved over the rounds: {with_cache:#?}"
    );
    let listed = with_cache.iter().filter(|r| r.starts_with("~list")).count();
    assert_eq!(listed, 8, "sanity: four conversations listed per workspace");
    let missing: Vec<_> = without.iter().filter(|r| !with_cache.contains(r)).collect();
    let extra: Vec<_> = with_cache.iter().filter(|r| !without.contains(r)).collect();
    assert!(
        with_cache == without,
        "rows differ:\n uncached only: {missing:#?}\n cached only: {extra:#?}"
    );
    // Steady state (round 1 on): 1 index lookup + the writes, against 5
    // lookups (contacts, contact users have none: 4) + the same writes.
    for (round, (c, p)) in lookups.iter().enumerate().skip(1) {
        assert!(
            p - c >= 3,
            "round {round}: the cached run skips the contact, conversation and total \
             lookups ({c} requests against {p})"
        );
    }
    cached_env.cleanup().await?;
    plain_env.cleanup().await
}
