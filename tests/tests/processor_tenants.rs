//! One micro-batch across many workspaces, on the real CQL database: the
//! lookups are one `IN` over the keys of every workspace (the inbound
//! totals one per shard, at most 64), so the batch costs the same sequential
//! waves as a single workspace's and its requests do not grow one per
//! workspace; and every workspace sees only its own rows, even
//! when workspaces share a customer phone or a message id.

use inboxflow_tests::processor::ProcessorEnv;
use inboxflow_tests::webhooks::{Inbound, meta_body};
use processor::decode::DecodedRecord;
use processor::pipeline::{self, BatchOutcome, WorkspaceRecords};
use processor::store::{DbStats, Store};
use shared::record::Source;

/// The customer every workspace hears from.
const PHONE: &str = "5511900000042";
const WORKSPACES: usize = 200;

/// One record of `ws` at `offset` (partition 0) holding `messages`.
fn record(ws: &str, offset: i64, messages: &[Inbound]) -> anyhow::Result<DecodedRecord> {
    let body = meta_body(&format!("pn-{ws}"), messages, &[]);
    Ok(DecodedRecord {
        workspace_id: ws.to_owned(),
        partition: 0,
        offset,
        clock: processor::clocks::unstamped(offset),
        received_at_ms: None,
        events: shared::webhook::normalize(Source::Meta, None, &body, &[])?,
    })
}

/// Runs `records` as one micro-batch, one workspace per record.
async fn run(store: &Store, records: &[DecodedRecord]) -> anyhow::Result<(BatchOutcome, DbStats)> {
    let batch: Vec<WorkspaceRecords<'_>> = records
        .iter()
        .map(|r| (r.workspace_id.as_str(), vec![r]))
        .collect();
    let stats = DbStats::default();
    let outcome = pipeline::run_batch(store, &batch, &stats).await?;
    Ok((outcome, stats))
}

/// Each workspace's (messages inserted, duplicates skipped), in order.
fn inserted_and_duplicates(outcome: &BatchOutcome) -> Vec<(u64, u64)> {
    let each = outcome.workspaces.iter();
    each.map(|o| (o.messages_inserted, o.duplicates_skipped))
        .collect()
}

/// One round's records: one message from [`PHONE`] to each workspace.
fn round_records(workspaces: &[String], round: i64) -> anyhow::Result<Vec<DecodedRecord>> {
    let offset = |i: usize| round * workspaces.len() as i64 + i as i64;
    workspaces
        .iter()
        .enumerate()
        .map(|(i, ws)| {
            let m = Inbound::new(format!("wamid.mt{round}.{i}"), PHONE, 1_700_000_000 + round);
            record(ws, offset(i), &[m])
        })
        .collect()
}

/// The contact id stored for [`PHONE`] in `ws`.
async fn contact_of(env: &ProcessorEnv, ws: &str) -> anyhow::Result<Option<(uuid::Uuid,)>> {
    let cql = format!(
        "SELECT contact_id FROM {}.contacts WHERE identity_id = ?",
        env.cfg.cql.keyspace
    );
    let key = (shared::ids::contact_id(ws, PHONE),);
    let rows = env
        .session
        .query_unpaged(cql, key)
        .await?
        .into_rows_result()?;
    Ok(rows.maybe_first_row::<(uuid::Uuid,)>()?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_two_hundred_workspaces_costs_two_waves_and_far_fewer_requests_than_workspaces()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let store = Store::with_session(env.session.clone(), &env.cfg.cql).await?;
    let workspaces: Vec<String> = (0..WORKSPACES).map(|i| format!("ws_mt{i}")).collect();
    let mut observed = Vec::new();
    for round in 0..2i64 {
        let records = round_records(&workspaces, round)?;

        let (outcome, stats) = run(&store, &records).await?;

        let counts = inserted_and_duplicates(&outcome);
        assert_eq!(
            counts,
            vec![(1, 0); WORKSPACES],
            "round {round}: one message each"
        );
        println!(
            "round {round}: {} requests in {} waves for {WORKSPACES} workspaces",
            stats.requests(),
            outcome.round_trips
        );
        observed.push((stats.requests(), outcome.round_trips));
    }
    let (steady_requests, steady_waves) = observed[1];
    assert_eq!(steady_waves, 2, "lookups, writes");
    assert!(observed[0].1 <= 3, "first time: {observed:?}");
    // One lookup per workspace per table would alone be 3 × 200. The
    // totals take one lookup per shard the workspaces fall in (at most 64).
    let shards: std::collections::HashSet<i32> = workspaces
        .iter()
        .map(|ws| shared::ids::workspace_shard(ws))
        .collect();
    assert!(
        steady_requests < shards.len() as u64 + WORKSPACES as u64 / 4,
        "requests grow with the keys' chunks and the totals' {} shards, not one per \
         workspace: {steady_requests}",
        shards.len()
    );
    for ws in &workspaces[..3] {
        let contact = contact_of(&env, ws).await?;
        assert_eq!(contact, Some((shared::ids::contact_id(ws, PHONE),)), "{ws}");
        assert_eq!(
            env.unread_total(ws).await?,
            (2, 1),
            "{ws}: its own conversation"
        );
    }
    env.cleanup().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_seen_by_two_workspaces_is_stored_by_each_and_a_duplicate_only_within_one()
-> anyhow::Result<()> {
    let env = ProcessorEnv::new(1).await?;
    let store = Store::with_session(env.session.clone(), &env.cfg.cql).await?;
    let shared_id = || Inbound::new("wamid.shared", PHONE, 1_700_000_000);

    let first = [
        record("ws_a", 0, &[shared_id()])?,
        record("ws_b", 1, &[shared_id()])?,
    ];
    let (outcome, _) = run(&store, &first).await?;
    let counts = inserted_and_duplicates(&outcome);
    assert_eq!(
        counts,
        [(1, 0), (1, 0)],
        "each workspace stores its own copy"
    );

    let again = [
        record("ws_a", 2, &[shared_id()])?,
        record("ws_c", 3, &[shared_id()])?,
    ];
    let (outcome, _) = run(&store, &again).await?;
    let counts = inserted_and_duplicates(&outcome);
    assert_eq!(counts, [(0, 1), (1, 0)], "a duplicate in ws_a, new in ws_c");
    for ws in ["ws_a", "ws_b", "ws_c"] {
        assert_eq!(env.unread_total(ws).await?, (1, 1), "{ws}");
    }
    env.cleanup().await
}
